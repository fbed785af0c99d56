"""The claims of the backpropagation chapter: the notes' 2-2-1 network by hand against nnx.grad, the
delta-recursion over drawn depths, widths, activations and biases, the convolution backward over strides
and paddings, and what not differentiating (JAX's counterpart of torch.no_grad) cuts and saves."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp
from flax import nnx
from jax import lax

from derivations.backprop import (
    CONV_CASES,
    WEIGHTS,
    _conv_1d_symbols,
    activation_derivative_jax,
    b1,
    chain_rule_gradients,
    conv_backward_1d,
    conv_case,
    deep_tanh,
    deep_tanh_case,
    delta_recursion,
    delta_recursion_is_the_chain_rule,
    explicit,
    h1,
    hand_gradients,
    is_zero,
    mlp_case,
    no_grad_footprints,
    sigmoid_derivative_is_s_times_one_minus_s,
    substituted,
    two_two_one_case,
    two_two_one_loss,
    w5,
    x1,
    x2,
    y,
    y_hat,
)
from derivations.bridge import instantiate, to_jax
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from models.backprop import TWO_TWO_ONE_PARAMS, two_two_one


def _worst(results):
    """One comparison standing for several: the worst errors, ok only when all are."""
    worst = max(results, key=lambda r: (r.max_rel_err, r.max_abs_err))
    return dataclasses.replace(worst, ok=all(r.ok for r in results), samples=sum(r.samples for r in results))


def _squared_error(model, x, label):
    return (model(x) - label) ** 2


_network = jax.jit(two_two_one)
_squared_error_grad = nnx.jit(nnx.grad(_squared_error))  # compiled once (eagerly, one program per primitive)


# --- the notes' network -----------------------------------------------------------------------------


@claim(
    "backprop/two-two-one-chain-rule-matches-autodiff",
    sources=["S003-11", "S000-14", "S002-37"],
    says="For h1 = sigmoid(w1 x1 + w2 x2 + b1), h2 = sigmoid(w3 x1 + w4 x2 + b1), y_hat = sigmoid(w5 h1 + w6 h2 + "
    "b2), loss = (y_hat - y)^2: \"w5+ = w5 - lambda dL/dy_hat dy_hat/dw5\", \"w1+ = w1 - lambda dl/dy_hat dy_hat/dh1 "
    "dh1/dw1\" (S003-11). [The note writes w5's and w1's gradients as products of chain-rule factors; this claim "
    "tests every parameter's gradient by the chain rule. b1, shared by both hidden units, gets a sum of two "
    "products: the next claim.]",
    expected="holds",
    scope={"seeds": [0, 1, 2, 3], "labels": [0.0, 1.0, 0.25], "parameters": list(TWO_TWO_ONE_PARAMS)},
)
def _two_two_one(scope, rtol) -> Evidence:
    loss = two_two_one_loss()
    proved_all = {str(name): is_zero(sp.diff(loss, name) - substituted(expr))
                  for name, expr in chain_rule_gradients().items()}
    results = []
    for seed in scope["seeds"]:
        model, x, _ = two_two_one_case(seed)
        for label in scope["labels"]:
            autodiff = _squared_error_grad(model, x, label)
            hand = hand_gradients(model.params(), x, label)
            got = np.stack([np.asarray(autodiff[name][...]) for name in TWO_TWO_ONE_PARAMS])
            want = np.stack([np.asarray(hand[name]) for name in TWO_TWO_ONE_PARAMS])
            results.append(compare(lambda w=want: w, lambda g=got: g, [], rtol=rtol))
    return evidence(
        "autodiff",
        core("SymPy: each of the 8 displayed chain-rule gradients equals diff(L)", all(proved_all.values())),
        core("SymPy: sigma' = sigma (1 - sigma), from 1 / (1 + e^-v)", sigmoid_derivative_is_s_times_one_minus_s()),
        compared(f"the displayed gradients, evaluated, equal nnx.grad of the Flax TwoTwoOne module ({len(results)} "
                 "parameter draws x labels)", _worst(results)),
        details={"proved": proved_all},
    )


@claim(
    "backprop/shared-bias-collects-both-paths",
    sources=["S003-11"],
    says="\"更新其他参数同理\" (the other parameters are updated the same way) (S003-11), after the chain rule for w5 "
    "and w1.",
    expected="holds",
    scope={"seeds": [0, 1, 2, 3], "labels": [0.0, 1.0], "shared": "b1 (both hidden units)"},
)
def _shared_bias(scope, rtol) -> Evidence:
    delta_out = 2 * (y_hat - y) * y_hat * (1 - y_hat)
    one_path = delta_out * w5 * h1 * (1 - h1)
    exact = sp.diff(two_two_one_loss(), b1)
    two_paths_ok = is_zero(exact - substituted(chain_rule_gradients()[b1]))
    one_path_wrong = not is_zero(exact - substituted(one_path))
    symbols = [x1, x2, y, *WEIGHTS]
    single_path = to_jax(explicit(substituted(one_path)), symbols)
    results, single_gaps = [], []
    for seed in scope["seeds"]:
        model, x, _ = two_two_one_case(seed)
        for label in scope["labels"]:
            autodiff = float(_squared_error_grad(model, x, label).b1[...])
            values = [float(x[0]), float(x[1]), label, *(float(model.params()[str(w)]) for w in WEIGHTS)]
            both = hand_gradients(model.params(), x, label)["b1"]
            results.append(compare(lambda b=both: b, lambda a=autodiff: np.asarray(a), [], rtol=rtol))
            single_gaps.append(float(abs(float(single_path(*values)) - autodiff) / abs(autodiff)))
    return evidence(
        "autodiff",
        core("by the same chain rule, the shared b1's gradient is the sum over its two paths, delta_h1 + delta_h2 "
             "(SymPy)", two_paths_ok),
        compared("that sum equals nnx.grad's dL/db1", _worst(results)),
        core("the other seven parameters each have one path: one product of factors (SymPy, as in the claim above)",
             all(is_zero(sp.diff(two_two_one_loss(), name) - substituted(expr))
                 for name, expr in chain_rule_gradients().items() if name != b1)),
        details={"one_path_only_is_wrong": one_path_wrong, "one_path_relative_gap": single_gaps,
                 "note": "'the same way' is the chain rule; the w1 formula copied literally (one path through h1) "
                 "would miss h2's path for b1"},
    )


@claim(
    "backprop/hand-sgd-step-matches-optax",
    sources=["S003-11", "S002-53"],
    says="\"w5+ = w5 - lambda dL/dy_hat dy_hat/dw5\" (S003-11): each parameter is updated as w+ = w - lambda dL/dw.",
    expected="holds",
    scope={"learning_rates": [0.01, 0.5, 2.0], "seeds": [1, 2], "first_order_within": 0.05},
    tolerance="optax's step against the hand step: the standard 1e-10; the loss change of the smallest step against "
    "its first-order prediction -lambda ||dL/dw||^2: within first_order_within relative (the rest is O(lambda^2))",
)
def _sgd_step(scope, rtol) -> Evidence:
    results, losses, first_order = [], {}, {}
    small = min(scope["learning_rates"])
    for seed in scope["seeds"]:
        for rate in scope["learning_rates"]:
            model, x, label = two_two_one_case(seed)
            before = model.params()
            gradients = hand_gradients(before, x, label)
            hand = {name: before[name] - rate * g for name, g in gradients.items()}
            optimizer = nnx.Optimizer(model, optax.sgd(rate), wrt=nnx.Param)
            optimizer.update(model, _squared_error_grad(model, x, label))
            after = model.params()
            got = np.stack([np.asarray(after[n]) for n in TWO_TWO_ONE_PARAMS])
            want = np.stack([np.asarray(hand[n]) for n in TWO_TWO_ONE_PARAMS])
            results.append(compare(lambda w=want: w, lambda g=got: g, [], rtol=rtol))
            losses[f"seed {seed}, lr {rate:g}"] = [float((_network(before, x) - label) ** 2),
                                                   float((_network(after, x) - label) ** 2)]
            if rate == small:  # the step descends: dL = -lambda ||g||^2 to first order (a wrong sign or g fails)
                predicted = -rate * sum(float(np.sum(np.square(g))) for g in gradients.values())
                first_order[f"seed {seed}"] = (losses[f"seed {seed}, lr {rate:g}"][1]
                                               - losses[f"seed {seed}, lr {rate:g}"][0]) / predicted
    return evidence(
        "autodiff",
        compared(f"w - lambda dL/dw with the hand gradients equals optax.sgd's step on the Flax module, for lambda = "
                 f"{scope['learning_rates']}", _worst(results)),
        core(f"the step descends: at lambda = {small:g} the loss falls by lambda ||dL/dw||^2 to first order (within "
             f"{scope['first_order_within']:.0%})", all(abs(r - 1) <= scope["first_order_within"]
                                                        for r in first_order.values()),
             **{f"change_over_prediction_{k.replace(' ', '_')}": v for k, v in first_order.items()}),
        details={"loss_before_after": losses},
    )


# --- an L-layer MLP ---------------------------------------------------------------------------------


def _displayed_recursion(activation: str, rtol: float) -> list:
    """The displayed delta_recursion equations, instantiated with one network's matrices (width 3, batch 1),
    against autodiff: delta^l as dL/dz^l (jax.grad with respect to an additive perturbation of z^l)."""
    widths = (3, 3, 3, 3)
    (_, _), (kernel_grads, bias_grads), (kernels, biases, x, dy, _) = mlp_case(widths, 1, 11, activation)
    f_prime = activation_derivative_jax(activation)
    depth = len(kernels)

    def loss(perturbations):
        a, pre = x, []
        for layer, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
            zl = a @ kernel + bias + perturbations[layer]
            pre.append(zl)
            a = zl if layer == depth - 1 else jnp.tanh(zl) if activation == "tanh" else (
                jax.nn.sigmoid(zl) if activation == "sigmoid" else jax.nn.relu(zl))
        return jnp.sum(dy * a), pre

    @jax.jit
    def measured():  # the deltas, pre-activations, activations and f'(z^l) in one program
        deltas, pre = jax.grad(loss, has_aux=True)([jnp.zeros((1, 3)) for _ in range(depth)])
        activations = [x] + [jnp.tanh(z) if activation == "tanh" else jax.nn.sigmoid(z) if activation == "sigmoid"
                             else jax.nn.relu(z) for z in pre[:-1]]
        return deltas, activations, [f_prime(z) for z in pre[:-1]]

    deltas, activations, slopes = measured()
    shown = delta_recursion()
    names = {str(m): m for eq in shown for m in eq.atoms(sp.MatrixSymbol)}
    col = lambda a: sp.Matrix(np.asarray(a).reshape(-1, 1))  # noqa: E731
    results = []
    for layer in range(depth - 1):
        subs = {names["W^{l+1}"]: sp.Matrix(np.asarray(kernels[layer + 1]).T),
                names[r"\delta^{l+1}"]: col(deltas[layer + 1]), names[r"f'(z^{l})"]: col(slopes[layer])}
        got = np.asarray(instantiate(shown[0], subs), dtype=float).ravel()
        want = np.asarray(deltas[layer]).ravel()
        results.append(compare(lambda g=got: g, lambda d=want: d, [], rtol=rtol))
    for layer in range(depth):
        subs = {names[r"\delta^{l}"]: col(deltas[layer]), names["a^{l-1}"]: col(activations[layer])}
        dw = np.asarray(instantiate(shown[1], subs), dtype=float)
        db = np.asarray(instantiate(shown[2], {names[r"\delta^{l}"]: col(deltas[layer])}), dtype=float).ravel()
        want_w, want_b = np.asarray(kernel_grads[layer]).T, np.asarray(bias_grads[layer]).ravel()
        results.append(compare(lambda g=dw: g, lambda k=want_w: k, [], rtol=rtol))
        results.append(compare(lambda g=db: g, lambda b=want_b: b, [], rtol=rtol))
    return results


@claim(
    "backprop/delta-recursion-matches-autodiff-for-any-depth",
    sources=["S001-07", "S000-14", "S002-37", "S002-53"],
    says="\"反向传播的推导\" (the derivation of backpropagation, S001-07; the note's answer is empty) and "
    "\"手动推到一边反向传播\" (derive backpropagation by hand, S000-14). Tested: the standard derivation, "
    "delta^l = (W^(l+1))^T "
    "delta^(l+1) * f'(z^l), dL/dW^l = delta^l (a^(l-1))^T, dL/db^l = delta^l.",
    expected="holds",
    scope={"activations": ["tanh", "sigmoid", "relu"], "depths": [1, 6], "widths": [1, 8], "networks_per_activation": 2,
           "displayed_with": "tanh",
           "batch": 5, "bias_scale": 1.0, "symbolic_widths": [[2, 2, 1], [2, 1, 2, 1]]},
    atol=1e-14, tolerance="a gradient entry that cancels to ~0 (sums of products of O(1) terms) is compared to "
    "absolute 1e-14; the rest to relative 1e-10",
)
def _delta_recursion(scope, rtol, atol) -> Evidence:
    symbolic = all(delta_recursion_is_the_chain_rule(tuple(w), a) for w in scope["symbolic_widths"]
                   for a in ("tanh", "sigmoid"))
    rng = np.random.default_rng(7)
    results, configs, without_bias = [], [], []
    seed = 0
    for activation in scope["activations"]:
        for _ in range(scope["networks_per_activation"]):
            depth = int(rng.integers(scope["depths"][0], scope["depths"][1] + 1))
            widths = tuple(int(w) for w in rng.integers(scope["widths"][0], scope["widths"][1] + 1, depth + 1))
            (dk, db), (ak, ab), (_, _, _, _, (nk, _)) = mlp_case(widths, scope["batch"], seed, activation,
                                                                  scope["bias_scale"])
            for derived, autodiff in zip(dk + db, ak + ab, strict=True):
                results.append(compare(lambda d=derived: d, lambda a=autodiff: a, [], rtol=rtol, atol=atol))
            # The power of the draw: a recursion that leaves the biases out of the forward pass is rejected.
            if depth > 1:
                without_bias.append(not all(compare(lambda d=d: d, lambda a=a: a, [], rtol=rtol, atol=atol).ok
                                            for d, a in zip(nk, ak, strict=True)))
            configs.append({"activation": activation, "widths": list(widths)})
            seed += 1
    displayed = _displayed_recursion(scope["displayed_with"], rtol)
    return evidence(
        "autodiff",
        core("SymPy: dL/dW^l = delta^l a^(l-1)^T and dL/db^l = delta^l on symbolic MLPs "
             f"{scope['symbolic_widths']} (tanh, sigmoid), biases included", symbolic),
        compared(f"the recursion in code equals nnx.grad of a Flax MLP for {len(configs)} drawn networks (depth "
                 f"{scope['depths'][0]}-{scope['depths'][1]}, widths {scope['widths'][0]}-{scope['widths'][1]}, "
                 f"{', '.join(scope['activations'])}, biases ~ N(0, {scope['bias_scale']:g}))", _worst(results)),
        compared("the displayed equations, instantiated with a 3-3-3-3 network's matrices, equal autodiff's "
                 "delta^l = dL/dz^l and its kernel and bias gradients", _worst(displayed)),
        scoped("the drawn biases matter: a recursion that drops them from the forward pass is rejected on every "
               "network deeper than one layer", all(without_bias), networks=len(without_bias)),
        details={"networks": configs},
    )


# --- convolution ------------------------------------------------------------------------------------


@claim(
    "backprop/conv-backward-is-correlation-and-full-convolution",
    sources=["S000-24"],
    says="\"前向传播的时候，卷积操作就是线性操作，因此权重反向更新的时候就类似于全连接网络的梯度更新，"
    "使用loss的链式求导\" (in the forward pass convolution is a linear operation, so its weights are updated "
    "like a fully connected "
    "network's, by the chain rule of the loss) (S000-24).",
    expected="holds",
    scope={"strides_paddings": [[s, [list(p) for p in pad]] for s, pad in CONV_CASES], "kernel": 3, "size": 7,
           "channels": [3, 4], "one_d": {"inputs": 5, "taps": 3}},
)
def _conv_backward(scope, rtol) -> Evidence:
    xs, ws, dys = _conv_1d_symbols()
    shown = conv_backward_1d()
    syms = [*xs, *ws, *dys]
    rng = np.random.default_rng(3)
    points = [rng.normal(size=16) for _ in syms]
    xv, wv, dyv = np.stack(points[:5], -1), np.stack(points[5:8], -1), np.stack(points[8:], -1)

    def conv1d(xx, ww):
        return jnp.correlate(xx, ww, mode="valid")

    def reference(xx, ww, dd):
        out, vjp = jax.vjp(conv1d, xx, ww)
        dx, dw = vjp(dd)
        return out, dw, dx

    displayed = [to_jax(eq, syms) for eq in shown]

    @jax.jit
    def one_d_sides(xv, wv, dyv, points):  # the three displayed formulas and jax.vjp, in one program
        formulas = [jnp.stack([jnp.broadcast_to(e, (16,)) for e in f(*points)[:, 0]], -1) for f in displayed]
        return formulas, jax.vmap(reference)(xv, wv, dyv)

    formulas, references = one_d_sides(xv, wv, dyv, points)
    one_d = [compare(lambda g=g: g, lambda r=r: r, [], rtol=rtol) for g, r in zip(formulas, references, strict=True)]
    cases = []
    for stride, padding in CONV_CASES:
        dw, dw_ref, dx, dx_ref, _, _ = conv_case(stride, padding)
        cases += [compare(lambda a=dw: a, lambda b=dw_ref: b, [], rtol=rtol),
                  compare(lambda a=dx: a, lambda b=dx_ref: b, [], rtol=rtol)]
    # Linear like a dense layer: with the input unrolled into patches (im2col), y = patches @ W, dW = patches^T dy.
    _, dw_ref, _, _, dy, x = conv_case(2, ((1, 1), (1, 1)))
    dense_w = _im2col_kernel_grad(x, dy)
    return evidence(
        "autodiff",
        compared("1-D (5 inputs, 3 taps): the displayed y, dL/dw (correlation of x with dy) and dL/dx (full "
                 "convolution of dy with w) equal jax.vjp of jnp.correlate", _worst(one_d)),
        compared("2-D: the lax forms of dW and dx equal jax.vjp of nnx.Conv for strides 1, 2 and paddings 0, 1, "
                 "(1,0)x(2,1)", _worst(cases)),
        compared("as a dense layer on im2col patches, dW = patches^T dy equals jax.vjp's",
                 compare(lambda: dense_w, lambda: dw_ref, [], rtol=rtol)),
    )


@jax.jit
def _im2col_kernel_grad(x, dy):
    """dW of a 3x3, stride-2, padding-1 convolution (3 -> 4 channels) as patches^T dy on its im2col patches."""
    patches = lax.conv_general_dilated_patches(x, (3, 3), (2, 2), ((1, 1), (1, 1)),
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    # conv_general_dilated_patches orders each patch's features channel-major: (C, kh, kw).
    dense = patches.reshape(-1, patches.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    return dense.reshape(3, 3, 3, 4).transpose(1, 2, 0, 3)


# --- not differentiating ----------------------------------------------------------------------------


# Each compiled once per number of frozen layers (eagerly, every primitive of every call is a program).
_deep_tanh_value = jax.jit(deep_tanh, static_argnames="frozen")
_deep_tanh_grad = jax.jit(jax.grad(deep_tanh), static_argnames="frozen")


@claim(
    "backprop/stop-gradient-cuts-the-gradient-not-the-value",
    sources=["S000-23"],
    says="\"with torch.no_grad()关闭之后不启用梯度更新与记录\" (inside torch.no_grad() gradients are neither "
    "updated nor recorded) (S000-23). Tested: JAX's counterpart for part of a computation, lax.stop_gradient "
    "(a gloss).",
    expected="holds",
    scope={"depth": 4, "width": 16, "batch": 8, "frozen_after_layer": [1, 2, 3]},
)
def _stop_gradient(scope, rtol) -> Evidence:
    kernels, x = deep_tanh_case(depth=scope["depth"], width=scope["width"], batch=scope["batch"])
    full = [np.asarray(g) for g in _deep_tanh_grad(kernels, x)]
    same_value, zero_before, after = True, True, []
    for frozen in scope["frozen_after_layer"]:
        cut = [np.asarray(g) for g in _deep_tanh_grad(kernels, x, frozen=frozen)]
        same_value &= float(_deep_tanh_value(kernels, x)) == float(_deep_tanh_value(kernels, x, frozen=frozen))
        zero_before &= all(bool(np.all(g == 0)) for g in cut[:frozen])
        after += [compare(lambda a=a: a, lambda b=b: b, [], rtol=rtol) for a, b in zip(cut[frozen:], full[frozen:],
                                                                                        strict=True)]
    return evidence(
        "autodiff",
        core("the forward value is unchanged, bit for bit", same_value),
        core("every layer before the stop gets exactly 0, where the full gradient is non-zero",
             zero_before and all(bool(np.any(g != 0)) for g in full)),
        compared("the layers after it get the full gradient", _worst(after)),
    )


@claim(
    "backprop/not-differentiating-saves-compute-and-memory",
    sources=["S000-23"],
    says="\"with torch.no_grad()关闭之后不启用梯度更新与记录，节省算力\" (inside torch.no_grad() gradients are neither "
    "updated nor recorded, which saves compute) (S000-23).",
    expected="qualified",
    correction="What not recording saves is memory: a forward pass that records keeps the residuals for the "
    "backward pass (here every layer's activations, some hundreds of KiB for a 6-layer width-64 network), one "
    "that does not keeps none. The forward arithmetic recording adds is the derivative factors (JAX computes "
    "1 - tanh^2 in the recording pass), elementwise work that matters only against small matrix products: "
    "at width 64 it is about 1% of the forward's FLOPs, at width 4 about 14%. Beyond that, compute is saved only "
    "because no backward pass runs (about twice the forward's FLOPs), which outside training one would not run "
    "anyway. PyTorch's graph bookkeeping is also saved; JAX has none to save.",
    scope={"depth": 6, "width": 64, "widths": [4, 8, 16, 64], "batch": 32, "dtype": "float64",
           "compute_saving_counts_from": 0.05,
           "measured_by": "jax.vjp residuals and XLA cost_analysis / memory_analysis (no timing)"},
)
def _no_grad_savings(scope) -> Evidence:
    table = no_grad_footprints(scope["depth"], scope["width"], scope["batch"])
    plain, recording, both = table["forward only"], table["forward that records"], table["forward + backward"]
    activation_bytes = scope["depth"] * scope["batch"] * scope["width"] * 8
    extra = {}
    for width in scope["widths"]:
        t = table if width == scope["width"] else no_grad_footprints(scope["depth"], width, scope["batch"])
        extra[width] = t["forward that records"]["flops"] / t["forward only"]["flops"] - 1
    widths = sorted(extra)
    return evidence(
        "measurement",
        core("not recording keeps no residuals (its program returns nothing beyond the value); the recording forward "
             "keeps at least every layer's activations (jax.vjp's residuals) and XLA's program for it outputs them",
             plain["residual_bytes"] == 0 and recording["residual_bytes"] >= activation_bytes
             and recording["output_bytes"] > plain["output_bytes"] + activation_bytes,
             residual_bytes=recording["residual_bytes"], activation_bytes=activation_bytes),
        core("and it costs no more arithmetic than recording", all(v >= 0 for v in extra.values()),
             **{f"extra_flops_fraction_width_{w}": v for w, v in extra.items()}),
        core(f"recording's extra arithmetic shrinks as the layers widen (widths {widths})",
             all(extra[a] > extra[b] for a, b in itertools.pairwise(widths))),
        scoped(f"what it saves is compute: recording adds more than {scope['compute_saving_counts_from']:.0%} to the "
               f"forward pass's FLOPs at every width of {widths}",
               all(v > scope["compute_saving_counts_from"] for v in extra.values()),
               backward_over_forward=(both["flops"] - plain["flops"]) / plain["flops"]),
        details={**table, "extra_forward_flops_by_width": {str(w): v for w, v in extra.items()}},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "backprop"]))
