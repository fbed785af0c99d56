"""The claims of the initialisation chapter: the derived variances tested by what they are derived for (the
forward and backward gain of non-square layers, with weights drawn from the formula itself), the libraries'
initializers as a convention, the depth law with each configuration on its own draw and the gradient measured
too, and zero initialisation over learning rates, activations and bias initialisations."""

from __future__ import annotations

import functools

import jax
import mpmath
import numpy as np
import sympy as sp
from flax import nnx

from derivations.bridge import value
from derivations.claims import Evidence, claim, core, evidence, scoped
from derivations.init import (
    BATCH,
    DEPTH,
    PROFILES,
    WIDTH,
    _as_function,
    fan_in,
    fan_out,
    forward_variance,
    initializer_variance_check,
    kaiming_variance,
    layer_gains,
    relu_layer_factor,
    relu_second_moment,
    sigma_w,
    sigma_x,
    variance_profiles,
    xavier_uniform_limit,
    xavier_variance,
    zero_init_run,
)

NON_SQUARE = [[64, 256], [256, 64], [128, 128]]
LIBRARY_SHAPES = [(300, 100), (3, 3, 16, 32)]  # one dense, one conv (HWIO): each shape is a compile


def _z(measured: float, se: float, want: float) -> float:
    return abs(measured - want) / se


def _gain(variance: float, n_in: int) -> float:
    """The displayed Var(y) = n_in sigma_w^2 sigma_x^2, evaluated at sigma_x = 1: the forward gain."""
    return value(forward_variance(), {fan_in: n_in, sigma_w: sp.sqrt(sp.Float(variance, 30)), sigma_x: 1})


@claim(
    "init/xavier-variance-is-two-over-fan-in-plus-fan-out",
    sources=["S001-15"],
    says="Common initialisation methods (derive the Xavier parameter). [S001-15 is a heading; this claim tests the "
    "derivation it asks for: Var(W) = 2/(n_in + n_out), the compromise between keeping the forward-pass variance "
    "(which needs 1/n_in) and the backward-pass variance (which needs 1/n_out).]",
    expected="holds",
    scope={"shapes": NON_SQUARE, "draws": 16, "batch": 128, "z_max": 4.5,
           "library_shapes": LIBRARY_SHAPES, "library_draws": 50_000,
           "library": "jax.nn.initializers.glorot_normal / glorot_uniform (HWIO fans)"},
    tolerance="Monte-Carlo: each measured gain (mean over 16 independent layers) and each initializer's "
    "empirical variance within z_max standard errors of the derived value",
)
def _xavier(scope) -> Evidence:
    forward_eq, backward_eq, xavier_eq = xavier_variance()
    rows, forward_kept, backward_kept, compromise, neither = {}, [], [], [], []
    for i, (n_in, n_out) in enumerate(scope["shapes"]):
        fans = {fan_in: n_in, fan_out: n_out}
        row = {}
        for name, eq in (("forward", forward_eq), ("backward", backward_eq), ("xavier", xavier_eq)):
            var = value(eq, fans)
            g = layer_gains((n_in, n_out), var, draws=scope["draws"], batch=scope["batch"], seed=10 * i + len(row))
            # The derived gains: forward n_in Var(W) (the displayed Var(y)), backward n_out Var(W) (the same
            # formula with the layer transposed).
            g.update(derived_forward=_gain(var, n_in), derived_backward=_gain(var, n_out), variance=var)
            g["z_forward"] = _z(g["forward"], g["forward_se"], g["derived_forward"])
            g["z_backward"] = _z(g["backward"], g["backward_se"], g["derived_backward"])
            row[name] = g
        rows[f"{n_in}x{n_out}"] = row
        forward_kept.append(_z(row["forward"]["forward"], row["forward"]["forward_se"], 1.0) <= scope["z_max"])
        backward_kept.append(_z(row["backward"]["backward"], row["backward"]["backward_se"], 1.0) <= scope["z_max"])
        x = row["xavier"]
        mean_gain = (x["forward"] + x["backward"]) / 2
        compromise.append(abs(mean_gain - 1) <= scope["z_max"] * np.hypot(x["forward_se"], x["backward_se"]) / 2
                          and x["z_forward"] <= scope["z_max"] and x["z_backward"] <= scope["z_max"])
        if n_in != n_out:
            neither.append(_z(x["forward"], x["forward_se"], 1.0) > scope["z_max"]
                           and _z(x["backward"], x["backward_se"], 1.0) > scope["z_max"])
    limit = xavier_uniform_limit()
    ok_n, rows_n = initializer_variance_check(jax.nn.initializers.glorot_normal(), _as_function(xavier_eq.rhs),
                                              scope["library_shapes"], min_draws=scope["library_draws"])
    ok_u, rows_u = initializer_variance_check(
        jax.nn.initializers.glorot_uniform(),
        lambda n_in, n_out: value(limit, {fan_in: n_in, fan_out: n_out}) ** 2 / 3, scope["library_shapes"], seed=10,
        min_draws=scope["library_draws"])
    return evidence(
        "measurement",
        core(f"Var(W) = 1/n_in keeps the forward variance (gain 1) on every layer of {scope['shapes']}",
             all(forward_kept)),
        core("Var(W) = 1/n_out keeps the backward variance (gain 1) on every layer", all(backward_kept)),
        core("Xavier's 2/(n_in + n_out): forward gain 2 n_in/(n_in + n_out), backward 2 n_out/(n_in + n_out), so "
             "their average is 1, on every layer", all(compromise)),
        core("on a non-square layer Xavier keeps neither pass exactly (a compromise, not a solution)", all(neither),
             non_square=len(neither)),
        scoped("jax.nn.initializers.glorot_normal draws Var(W) = 2/(fan_in + fan_out), conv kernels counting the "
               "receptive field in both fans", ok_n, max_z=max(r["z"] for r in rows_n.values())),
        scoped("glorot_uniform draws U(-a, a) with the derived a = sqrt(6/(n_in + n_out))", ok_u,
               max_z=max(r["z"] for r in rows_u.values())),
        details={"gains": rows, "glorot_normal": rows_n, "glorot_uniform": rows_u},
    )


@claim(
    "init/kaiming-variance-is-two-over-fan-in-for-relu",
    sources=["S001-15", "S002-20"],
    says="The initialisation methods are Xavier initialisation, Kaiming initialisation and random initialisation "
    "[S002-20 names Kaiming; this claim tests its derivation for ReLU: Var(W) = 2/n_in].",
    expected="holds",
    scope={"shapes": NON_SQUARE, "draws": 16, "batch": 128, "z_max": 4.5, "sigmas": [0.5, 1.0, 3.0],
           "library_shapes": LIBRARY_SHAPES, "library_draws": 50_000,
           "library": "jax.nn.initializers.he_normal / he_uniform"},
    tolerance="Monte-Carlo: each measured gain and each initializer's empirical variance within z_max standard "
    "errors; E[relu(z)^2] against mpmath quadrature to 1e-10 relative",
)
def _kaiming(scope, rtol) -> Evidence:
    sigma = sp.Symbol("sigma", positive=True)
    moment = relu_second_moment()
    # The quadrature integrates the displayed left-hand side E(g(z)) itself, g read from the equation, over the
    # whole line against the N(0, sigma^2) density: a wrong label (say max(z, 0)^3) fails here, not only a
    # wrong right-hand side.
    (inner,) = moment.lhs.args
    (z,) = inner.free_symbols
    g = sp.lambdify(z, inner, "mpmath")
    quadrature = []
    for s in scope["sigmas"]:
        exact = float(mpmath.quad(lambda v, s=s: g(v) * mpmath.npdf(v, 0, s), [-mpmath.inf, 0, mpmath.inf]))
        quadrature.append(abs(value(moment, {sigma: s}) - exact) <= rtol * exact)
    he = kaiming_variance()
    rows, kept = {}, []
    for i, (n_in, n_out) in enumerate(scope["shapes"]):
        var = value(he, {fan_in: n_in})
        g = layer_gains((n_in, n_out), var, activation="relu", draws=scope["draws"], batch=scope["batch"], seed=100 + i)
        g["z_forward"] = _z(g["forward"], g["forward_se"], 1.0)
        rows[f"{n_in}x{n_out}"] = g
        kept.append(g["z_forward"] <= scope["z_max"])
    ok_n, rows_n = initializer_variance_check(jax.nn.initializers.he_normal(), _as_function(he.rhs),
                                              scope["library_shapes"], seed=20, min_draws=scope["library_draws"])
    ok_u, rows_u = initializer_variance_check(jax.nn.initializers.he_uniform(), _as_function(he.rhs),
                                              scope["library_shapes"], seed=30, min_draws=scope["library_draws"])
    return evidence(
        "measurement",
        core(f"E[relu(z)^2] = sigma^2/2 (sympy.stats) agrees with quadrature at sigma = {scope['sigmas']}",
             all(quadrature)),
        core("through relu then a layer with Var(W) = 2/n_in the second moment is kept (forward gain 1) on every "
             f"layer of {scope['shapes']}", all(kept), max_z=max(r["z_forward"] for r in rows.values())),
        scoped("jax.nn.initializers.he_normal draws Var(W) = 2/fan_in", ok_n,
               max_z=max(r["z"] for r in rows_n.values())),
        scoped("he_uniform draws the same variance", ok_u, max_z=max(r["z"] for r in rows_u.values())),
        # fan_in mode keeps the forward pass only: backward the gain is n_out / n_in (He et al. offer a fan_out
        # mode for the backward pass; either keeps a deep stack's product bounded). Reported, not tested.
        details={"gains": rows, "he_normal": rows_n, "he_uniform": rows_u},
    )


@claim(
    "init/matched-initialisation-keeps-activations-from-vanishing-or-exploding",
    sources=["S002-20"],
    says="The purpose of weight initialisation is to stop the layers' activation outputs from exploding "
    "(infinity) or vanishing (0) in the forward pass of a deep network. If the layers' outputs explode or vanish, "
    "the gradient of the loss also becomes very large or very small and cannot be propagated back effectively.",
    expected="qualified",
    correction="For ReLU it holds on average: Var(W) = 2/n (He) keeps the mean per-layer factor of the activation "
    "variance at 1, and no draw vanishes or explodes over 50 layers, while any other scale multiplies the variance "
    "and the gradient by (n sigma_w^2 / 2) per layer, as derived. Single draws at finite width drift downwards: "
    "the log-variance is a random walk whose mean falls below the log of the mean (Jensen's gap), so at width 64 "
    "the median draw ends 50 layers down at about 0.4 of the first layer's variance, and some draws below 0.25. "
    "For tanh, Xavier's linear-regime derivation does not hold: tanh contracts large pre-activations, so the "
    "variance keeps falling, to about 3% of the first layer's after 50 layers: below the band, not vanished.",
    scope={"depth": DEPTH, "width": WIDTH, "batch": BATCH, "configurations": list(PROFILES), "z_max": 4.5,
           "kept_band": [0.25, 4.0], "vanished_below": 1e-3, "exploded_above": 1e3, "seeds": list(range(4))},
    tolerance="the mean per-layer variance ratio (49 layers x 4 draws) within z_max standard errors of "
    "n sigma_w^2 / 2; 'vanish'/'explode' and 'kept' are the scope's thresholds on the last layer's variance "
    "over the first's (and the first layer's gradient norm over the last's)",
)
def _depth(scope) -> Evidence:
    factor = relu_layer_factor()
    low, high = scope["kept_band"]
    vanished, exploded = scope["vanished_below"], scope["exploded_above"]
    draws = [variance_profiles(seed) for seed in scope["seeds"]]
    rows, law_ok = {}, True
    for name, (activation, _, variance) in PROFILES.items():
        v = np.stack([d[name]["variance"] for d in draws])
        g = np.stack([d[name]["grad_norm"] for d in draws])
        ratios, grad_ratios = v[:, -1] / v[:, 0], g[:, 0] / g[:, -1]
        escaped = lambda r: (r < vanished) | (r > exploded)  # noqa: E731
        row = {"variance_ratio_median": float(np.median(ratios)), "variance_ratio_min": float(ratios.min()),
               "variance_ratio_max": float(ratios.max()), "gradient_ratio_median": float(np.median(grad_ratios)),
               "kept_every_draw": bool(np.all((ratios >= low) & (ratios <= high))),
               "escaped_every_draw": bool(np.all(escaped(ratios))), "escaped_any_draw": bool(np.any(escaped(ratios))),
               "gradient_escaped_every_draw": bool(np.all(escaped(grad_ratios))),
               "gradient_escaped_any_draw": bool(np.any(escaped(grad_ratios)))}
        if activation == "relu":
            # Variance propagation is a statement about the expectation: the mean per-layer ratio (the mean of
            # logs drifts below log E by Jensen's gap, ~ Var/2 per layer at finite width).
            gains = (v[:, 1:] / v[:, :-1]).ravel()
            predicted = value(factor, {sigma_w: sp.sqrt(sp.Float(variance, 30)), fan_in: scope["width"]})
            z_score = float(abs(gains.mean() - predicted) / (gains.std(ddof=1) / np.sqrt(gains.size)))
            row.update(measured_factor=float(gains.mean()), derived_factor=predicted, z=z_score)
            law_ok = law_ok and z_score <= scope["z_max"]
        rows[name] = row
    he, tanh = rows["ReLU, He (2/n)"], rows["tanh, Xavier (1/n)"]
    mismatched = [n for n in PROFILES if n.startswith("ReLU") and "He" not in n]
    return evidence(
        "measurement",
        core("ReLU layers multiply the activation variance by the derived n sigma_w^2 / 2 per layer on average, at "
             f"every weight scale ({len(draws)} draws)", law_ok,
             **{f"z {n}": r["z"] for n, r in rows.items() if "z" in r}),
        core(f"every mismatched ReLU scale (1/n, 1, 1e-4) makes the activations vanish (< {vanished:g}) or explode "
             f"(> {exploded:g}) over {scope['depth']} layers in every draw, and the first layer's gradient with them",
             all(rows[n]["escaped_every_draw"] and rows[n]["gradient_escaped_every_draw"] for n in mismatched)),
        core("the matched ReLU initialisation (He, 2/n) makes neither the activations nor the gradient vanish or "
             "explode in any draw", not he["escaped_any_draw"] and not he["gradient_escaped_any_draw"],
             smallest=he["variance_ratio_min"], largest=he["variance_ratio_max"],
             gradient_ratio=he["gradient_ratio_median"]),
        scoped(f"at width {scope['width']} He keeps the variance within {scope['kept_band']} in every draw (finite "
               "width: the log-variance wanders like a random walk, its spread growing with depth / width)",
               he["kept_every_draw"], median=he["variance_ratio_median"]),
        scoped(f"with tanh, Xavier's matched variance keeps the activations within {scope['kept_band']} too",
               tanh["kept_every_draw"], median_ratio=tanh["variance_ratio_median"]),
        details=rows,
    )


ZERO_SCOPE = {"learning_rates": [0.01, 0.1, 0.5], "steps": 20, "hidden": 8, "hidden_bias_sd": 0.5}


@claim(
    "init/zero-init-relu-and-tanh-learn-only-the-output-bias",
    sources=["S001-37", "S002-19"],
    says="What happens when we initialize all weights to zero with ReLu activation? There will be no learning.",
    expected="qualified",
    correction="Every hidden weight and bias and every output weight gets exactly zero gradient forever (the "
    "output weights are 0, so no error reaches the hidden layer, and the hidden outputs are 0, so the "
    "output weights get no gradient); the same holds for tanh. But the output bias learns: the network "
    "converges to the constant mean of the targets. And it needs the biases at 0 too: with zero weights but "
    "random hidden biases, relu(b) != 0 reaches the output weights and the hidden weights learn.",
    scope={**ZERO_SCOPE, "activations": ["relu", "tanh"]},
    tolerance="the output bias against its closed form mean(y)(1 - (1 - 2 lr)^t) to 1e-10 relative",
)
def _zero_relu_tanh(scope, rtol) -> Evidence:
    rows, frozen_all, bias_all, moves_with_bias = {}, True, True, True
    for activation in scope["activations"]:
        for lr in scope["learning_rates"]:
            model, losses, y = zero_init_run(activation, scope["steps"], lr, hidden=scope["hidden"])
            frozen = [model.hidden.kernel[...], model.hidden.bias[...], model.out.kernel[...]]
            all_zero = all(bool(np.all(np.asarray(p) == 0.0)) for p in frozen)
            # MSE's gradient in the bias is 2 (b - mean y), so SGD gives b_t = mean(y) (1 - (1 - 2 lr)^t).
            expected_bias = float(np.mean(y)) * (1 - (1 - 2 * lr) ** len(losses))
            bias = float(model.out.bias[...][0])
            bias_ok = abs(bias - expected_bias) <= rtol * abs(expected_bias)
            frozen_all &= all_zero
            bias_all &= bias_ok and losses[-1] < losses[0]
            rows[f"{activation}, lr {lr}"] = {"frozen_all_zero": all_zero, "output_bias": bias,
                                              "closed_form_bias": expected_bias, "loss_first": losses[0],
                                              "loss_last": losses[-1]}
        biased, _, _ = zero_init_run(activation, scope["steps"], max(scope["learning_rates"]),
                                     hidden_bias_sd=scope["hidden_bias_sd"], hidden=scope["hidden"])
        moved = float(np.max(np.abs(np.asarray(biased.hidden.kernel[...]))))
        rows[f"{activation}, random hidden biases"] = {"max_abs_hidden_weight": moved}
        moves_with_bias &= moved == 0.0
    return evidence(
        "autodiff",
        core("every hidden weight and bias and every output weight stays exactly 0 at every learning rate",
             frozen_all, configurations=len(scope["activations"]) * len(scope["learning_rates"])),
        scoped("no parameter learns at all, the output bias included (it does learn, to its closed form "
               "mean(y)(1 - (1 - 2 lr)^t), and the loss falls)", not bias_all),
        scoped(f"with zero weights but hidden biases ~ N(0, {scope['hidden_bias_sd']}^2) the hidden weights also "
               "stay 0", moves_with_bias),
        details=rows,
    )


@functools.partial(jax.jit, static_argnums=0)
def _outputs(graph, state, x):
    """The trained model's outputs, one compiled program for every learning rate."""
    return nnx.merge(graph, state)(x)


@claim(
    "init/zero-initialised-network-cannot-train",
    sources=["S002-19"],
    says="If the network is initialised with zero weights, can it train normally? No: because the initial "
    "weights are 0, every input gives the same result, and the network cannot update.",
    expected="qualified",
    correction="The answer is right: a zero-initialised network cannot train normally, because the symmetry is "
    "never broken. The reasons hold only where the activation is 0 at 0 (ReLU, tanh): there the hidden weights stay "
    "0 and every input gives the same output (only the output bias learns). With sigmoid hidden units "
    "(sigmoid(0) = 1/2) the weights do update and the outputs come to depend on the input; what fails is that "
    "every hidden unit receives the same gradient, so all stay identical and the hidden layer acts as one unit: "
    "enough for a target one unit can fit (a linear one), not for one that needs several (x1 x2).",
    scope={**ZERO_SCOPE, "activations": ["relu", "tanh", "sigmoid"], "probe_inputs": 5,
           "against_random": {"activation": "sigmoid", "steps": 2000, "lr": 0.1, "worse_by": 10.0,
                              "targets": ["product", "linear"]}},
    aliases=["init/zero-init-sigmoid-trains-but-hidden-units-stay-identical"],
)
def _zero_sigmoid(scope) -> Evidence:
    race = scope["against_random"]
    final = {(target, random): zero_init_run(race["activation"], race["steps"], race["lr"], hidden=scope["hidden"],
                                             target=target, random_kernels=random)[1][-1]
             for target in race["targets"] for random in (False, True)}  # fmt: skip
    worse = {target: final[target, False] / final[target, True] for target in race["targets"]}
    x = np.random.default_rng(4).normal(size=(scope["probe_inputs"], 4))
    rows = {}
    for activation in scope["activations"]:
        for lr in scope["learning_rates"]:
            model, losses, _ = zero_init_run(activation, scope["steps"], lr, hidden=scope["hidden"])
            kernel = np.asarray(model.hidden.kernel[...])
            outputs = np.asarray(_outputs(*nnx.split(model), x))[:, 0]
            rows[f"{activation}, lr {lr}"] = {
                "activation": activation, "max_abs_hidden_weight": float(np.max(np.abs(kernel))),
                "output_span": float(np.ptp(outputs)), "column_spread": float(np.max(np.abs(kernel - kernel[:, :1]))),
                "output_weight_spread": float(np.ptp(np.asarray(model.out.kernel[...]))),
                "loss_first": losses[0], "loss_last": losses[-1]}  # fmt: skip

    def every(activation, test):
        return all(test(r) for r in rows.values() if r["activation"] == activation)

    reasons = []
    for activation in scope["activations"]:
        reasons += [
            scoped(f"{activation}: the network cannot update (every hidden weight stays 0, at every learning rate)",
                   every(activation, lambda r: r["max_abs_hidden_weight"] == 0.0),
                   largest_hidden_weight=max(r["max_abs_hidden_weight"] for r in rows.values()
                                             if r["activation"] == activation)),
            scoped(f"{activation}: after training every input still gives the same output",
                   every(activation, lambda r: r["output_span"] == 0.0),
                   largest_output_span=max(r["output_span"] for r in rows.values() if r["activation"] == activation)),
        ]  # fmt: skip
    return evidence(
        "autodiff",
        core("it cannot train normally: for every activation and learning rate all hidden units stay exactly "
             "identical (the symmetry is never broken)",
             all(r["column_spread"] == 0.0 and r["output_weight_spread"] == 0.0 for r in rows.values())),
        core(f"so on a target no single unit can fit (y = x1 x2) the zero-initialised {race['activation']} network "
             f"ends more than {race['worse_by']:g}x above a randomly initialised one ({race['steps']} steps, lr "
             f"{race['lr']})", worse["product"] > race["worse_by"], loss_ratio=worse["product"],
             zero_init_loss=final["product", False], random_init_loss=final["product", True]),
        scoped(f"on the linear target (one unit is enough) it ends more than {race['worse_by']:g}x above the random "
               "initialisation too", worse["linear"] > race["worse_by"], loss_ratio=worse["linear"]),
        *reasons,
        details=rows,
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "init"]))
