"""Backpropagation by hand: the notes' 2-2-1 sigmoid network, the delta-recursion of an L-layer MLP, the
backward pass of a convolution, and what stop_gradient (JAX's torch.no_grad) cuts and saves.

Seeds: S000-14, S000-23, S000-24, S001-07, S002-37, S002-53, S003-11 (narrative: S002-31, in the
appendix). Run ``python -m derivations.backprop`` to print the derivations and check the claims.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp
from flax import nnx
from jax import lax

from derivations.bridge import to_jax
from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict
from models.backprop import MLP, TWO_TWO_ONE_PARAMS, TwoTwoOne, two_two_one

x1, x2, y = sp.symbols("x1 x2 y", real=True)
w1, w2, w3, w4, w5, w6, b1, b2 = WEIGHTS = sp.symbols("w1 w2 w3 w4 w5 w6 b1 b2", real=True)
h1, h2, y_hat = sp.symbols(r"h1 h2 \hat{y}", real=True)  # the forward values, as the notes name them
learning_rate = sp.Symbol("lambda", positive=True)


class sigma(sp.Function):
    """The logistic sigmoid as an opaque SymPy function whose derivative is sigma (1 - sigma), so that chain-rule
    expressions stay in the notes' terms and compare with ``diff`` by expansion alone; the derivative itself is
    proved from 1 / (1 + e^-v) in ``sigmoid_derivative_is_s_times_one_minus_s``."""

    def fdiff(self, argindex=1):
        return sigma(self.args[0]) * (1 - sigma(self.args[0]))


def sigmoid(v: sp.Expr) -> sp.Expr:
    return sigma(v)


def explicit(expr: sp.Expr) -> sp.Expr:
    """``expr`` with sigma written out as 1 / (1 + e^-v), for lambdify."""
    return expr.replace(sigma, lambda v: 1 / (1 + sp.exp(-v)))


def sigmoid_derivative_is_s_times_one_minus_s() -> bool:
    v = sp.Symbol("v", real=True)
    return sp.simplify(sp.diff(explicit(sigma(v)), v) - explicit(sigma(v).diff(v))) == 0


def is_zero(expr: sp.Expr) -> bool:
    """SymPy decides expr == 0: by expansion (enough for chain-rule products), else by simplify."""
    return sp.expand(expr) == 0 or sp.simplify(expr) == 0


def two_two_one_forward() -> dict[sp.Symbol, sp.Expr]:
    """The notes' network (S003-11): h1, h2 share b1; y_hat = sigma(w5 h1 + w6 h2 + b2)."""
    hidden1 = sigmoid(w1 * x1 + w2 * x2 + b1)
    hidden2 = sigmoid(w3 * x1 + w4 * x2 + b1)
    return {h1: hidden1, h2: hidden2, y_hat: sigmoid(w5 * hidden1 + w6 * hidden2 + b2)}


def two_two_one_loss() -> sp.Expr:
    return (two_two_one_forward()[y_hat] - y) ** 2


# --- derivations -------------------------------------------------------------------------------------


@derivation
def two_two_one_gradients() -> list[sp.Eq]:
    """Every gradient of the notes' 2-2-1 network by the chain rule, with delta_out = dL/dy_hat * sigma' and
    delta_h = delta_out * w * sigma'(h): the shared b1 collects both hidden units' paths (S003-11)."""
    return [sp.Eq(sp.Derivative(sp.Symbol("L"), name), expr, evaluate=False) for name, expr in
            chain_rule_gradients().items()]


def chain_rule_gradients() -> dict[sp.Symbol, sp.Expr]:
    """dL/dparam for L = (y_hat - y)^2, in the forward values h1, h2, y_hat (sigma' = s(1 - s))."""
    delta_out = 2 * (y_hat - y) * y_hat * (1 - y_hat)
    delta_h1 = delta_out * w5 * h1 * (1 - h1)
    delta_h2 = delta_out * w6 * h2 * (1 - h2)
    return {
        w5: delta_out * h1, w6: delta_out * h2, b2: delta_out,
        w1: delta_h1 * x1, w2: delta_h1 * x2, w3: delta_h2 * x1, w4: delta_h2 * x2,
        b1: delta_h1 + delta_h2,
    }  # fmt: skip


@derivation
def delta_recursion() -> list[sp.Eq]:
    """Backpropagation through z^l = W^l a^(l-1) + b^l, a^l = f(z^l): the delta-recursion and the
    parameter gradients (S001-07, S000-14). Flax's kernel is (W^l)^T, so in code the recursion reads
    delta^l = (delta^(l+1) @ kernel^(l+1).T) * f'(z^l) on row vectors."""
    n = sp.Symbol("n")
    delta = sp.MatrixSymbol(r"\delta^{l}", n, 1)
    delta_next = sp.MatrixSymbol(r"\delta^{l+1}", n, 1)
    weight_next = sp.MatrixSymbol("W^{l+1}", n, n)
    f_prime = sp.MatrixSymbol(r"f'(z^{l})", n, 1)
    a_prev = sp.MatrixSymbol("a^{l-1}", n, 1)
    return [
        sp.Eq(delta, sp.HadamardProduct(weight_next.T * delta_next, f_prime), evaluate=False),
        sp.Eq(sp.MatrixSymbol(r"\partial L / \partial W^{l}", n, n), delta * a_prev.T, evaluate=False),
        sp.Eq(sp.MatrixSymbol(r"\partial L / \partial b^{l}", n, 1), delta, evaluate=False),
    ]


def delta_recursion_is_the_chain_rule(widths: tuple[int, ...] = (2, 2, 1)) -> bool:
    """On a symbolic tanh MLP, SymPy's dL/dW^l equals delta^l (a^(l-1))^T from the recursion, entrywise."""
    xs = sp.Matrix(sp.symbols(f"a0_1:{widths[0] + 1}", real=True))
    weights = [sp.Matrix(m, n, lambda i, j, layer=layer: sp.Symbol(f"W{layer}_{i}{j}", real=True))
               for layer, (n, m) in enumerate(itertools.pairwise(widths), start=1)]
    activations, pre = [xs], []
    for layer, weight in enumerate(weights):
        pre.append(weight * activations[-1])
        last = layer == len(weights) - 1
        activations.append(pre[-1] if last else pre[-1].applyfunc(sp.tanh))
    loss = sum(v**2 for v in activations[-1]) / 2
    delta = activations[-1]  # dL/dz^L for L = |z^L|^2 / 2 with a linear last layer
    for layer in range(len(weights) - 1, -1, -1):
        claimed = delta * activations[layer].T
        derived = sp.Matrix(*weights[layer].shape, lambda i, j, layer=layer: sp.diff(loss, weights[layer][i, j]))
        if not all(is_zero(e) for e in derived - claimed):
            return False
        if layer:
            delta = sp.matrix_multiply_elementwise(weights[layer].T * delta,
                                                   pre[layer - 1].applyfunc(lambda v: 1 - sp.tanh(v) ** 2))
    return True


@derivation
def conv_backward_1d() -> list[sp.Eq]:
    """A 1-D convolution layer (cross-correlation, as in Flax) y_j = sum_k w_k x_(j+k): dL/dw_k = sum_j dy_j
    x_(j+k), the correlation of the input with dy; dL/dx_i = sum_k dy_(i-k) w_k, the full convolution of dy
    with the kernel, i.e. the correlation of zero-padded dy with the flipped kernel (S000-24)."""
    xs, ws, dys = _conv_1d_symbols()
    out = _conv_1d(xs, ws)
    upstream = sum(d * o for d, o in zip(dys, out, strict=True))
    return [
        sp.Eq(sp.Symbol("y"), sp.Matrix(out), evaluate=False),
        sp.Eq(sp.Symbol(r"\nabla_w L"), sp.Matrix([sp.diff(upstream, w) for w in ws]), evaluate=False),
        sp.Eq(sp.Symbol(r"\nabla_x L"), sp.Matrix([sp.diff(upstream, v) for v in xs]), evaluate=False),
    ]


def _conv_1d_symbols() -> tuple[tuple[sp.Symbol, ...], ...]:
    return sp.symbols("x1:6", real=True), sp.symbols("w1:4", real=True), sp.symbols("dy1:4", real=True)


def _conv_1d(xs, ws) -> list[sp.Expr]:
    return [sum(ws[k] * xs[j + k] for k in range(len(ws))) for j in range(len(xs) - len(ws) + 1)]


# --- the derived backward passes, as code -------------------------------------------------------------


def mlp_backward(kernels: list[jax.Array], biases: list[jax.Array], x: jax.Array, dy: jax.Array):
    """Gradients of sum(dy * MLP(x)) for the tanh MLP of ``models.backprop.MLP`` by the delta-recursion
    delta^l = (delta^(l+1) @ kernel^(l+1).T) * tanh'(z^l), dL/dkernel^l = a^(l-1).T @ delta^l, dL/db^l =
    sum over the batch of delta^l (S001-07). Returns (kernel grads, bias grads), one per layer."""
    if len(kernels) != len(biases) or not kernels:
        raise ValueError(f"need as many kernels as biases (at least 1), got {len(kernels)} and {len(biases)}")
    activations, pre = [x], []
    for layer, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
        pre.append(activations[-1] @ kernel + bias)
        activations.append(pre[-1] if layer == len(kernels) - 1 else jnp.tanh(pre[-1]))
    delta = dy  # the last layer is linear
    kernel_grads, bias_grads = [], []
    for layer in range(len(kernels) - 1, -1, -1):
        kernel_grads.insert(0, activations[layer].T @ delta)
        bias_grads.insert(0, jnp.sum(delta, axis=0))
        if layer:
            delta = (delta @ kernels[layer].T) * (1 - jnp.tanh(pre[layer - 1]) ** 2)
    return kernel_grads, bias_grads


Padding = tuple[tuple[int, int], tuple[int, int]]


def _check_conv_args(stride: int, padding: Padding) -> None:
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if any(p < 0 for pair in padding for p in pair):
        raise ValueError(f"padding must be non-negative (low, high) pairs, got {padding}")


def conv_kernel_grad(x: jax.Array, dy: jax.Array, kernel_size: tuple[int, int], *, stride: int,
                     padding: Padding) -> jax.Array:
    """dL/dW (HWIO) of an NHWC convolution y = conv(x, W): the cross-correlation of the padded input with dy
    dilated by the stride, summed over the batch (which plays the role of the input channels here) (S000-24).
    Rows and columns of the padded input that the forward stride never reached are cut off at the end."""
    _check_conv_args(stride, padding)
    grad = lax.conv_general_dilated(
        x, dy, window_strides=(1, 1), padding=padding, rhs_dilation=(stride, stride),
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
    )
    return grad[: kernel_size[0], : kernel_size[1]]


def conv_input_grad(dy: jax.Array, kernel: jax.Array, input_shape: tuple[int, ...], *, stride: int,
                    padding: Padding) -> jax.Array:
    """dL/dx of an NHWC convolution: the full convolution of dy (dilated by the stride) with the kernel, i.e.
    its correlation with the spatially flipped kernel whose in/out channels are swapped; the padding K - 1 - p
    (plus the rows the forward stride skipped) undoes the forward padding (S000-24)."""
    _check_conv_args(stride, padding)
    kh, kw = kernel.shape[:2]
    pads = []
    for axis, (k, (low, high)) in enumerate(zip((kh, kw), padding, strict=True)):
        skipped = (input_shape[axis + 1] + low + high - k) % stride
        pads.append((k - 1 - low, k - 1 - high + skipped))
    flipped = kernel[::-1, ::-1]
    return lax.conv_general_dilated(
        dy, flipped, window_strides=(1, 1), padding=pads, lhs_dilation=(stride, stride),
        dimension_numbers=("NHWC", "HWOI", "NHWC"),
    )


# --- claims: the notes' network -----------------------------------------------------------------------


def _two_two_one_case(seed: int = 0):
    model = TwoTwoOne(rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    return model, jnp.asarray(rng.normal(size=2)), float(rng.integers(0, 2))


def _substituted(expr: sp.Expr) -> sp.Expr:
    return expr.subs(two_two_one_forward())


@functools.cache
def _compiled_gradients() -> dict[str, object]:
    symbols = [x1, x2, y, *WEIGHTS]
    return {str(name): to_jax(explicit(_substituted(expr)), symbols) for name, expr in chain_rule_gradients().items()}


def hand_gradients(params: dict[str, jax.Array], x: jax.Array, label: float) -> dict[str, jax.Array]:
    """The chain-rule gradients of ``chain_rule_gradients``, evaluated (float64)."""
    values = [x[0], x[1], label, *(params[str(w)] for w in WEIGHTS)]
    return {name: f(*values) for name, f in _compiled_gradients().items()}


@claim(
    "backprop/two-two-one-chain-rule-matches-autodiff",
    sources=["S003-11", "S000-14", "S002-37"],
    says="For the 2-2-1 sigmoid network with loss (y_hat - y)^2, each parameter's gradient is a product of "
    "chain-rule factors, e.g. dL/dw5 = dL/dy_hat * dy_hat/dw5 and dL/dw1 = dL/dy_hat * dy_hat/dh1 * dh1/dw1.",
    expected="holds",
)
def _two_two_one() -> Evidence:
    loss = two_two_one_loss()
    proved = {str(name): is_zero(sp.diff(loss, name) - _substituted(expr))
              for name, expr in chain_rule_gradients().items()}
    proved["sigma' = sigma (1 - sigma)"] = sigmoid_derivative_is_s_times_one_minus_s()
    model, x, label = _two_two_one_case()
    autodiff = nnx.grad(lambda m: (m(x) - label) ** 2)(model)
    hand = hand_gradients(model.params(), x, label)
    got = jnp.stack([autodiff[name][...] for name in TWO_TWO_ONE_PARAMS])
    want = jnp.stack([hand[name] for name in TWO_TWO_ONE_PARAMS])
    cmp = compare(lambda: want, lambda: got, [])
    ok = all(proved.values()) and cmp.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"SymPy proves all 8 chain-rule gradients equal diff(L) (and sigma' = sigma(1 - sigma)): "
        f"{all(proved.values())}; evaluated vs nnx.grad of the Flax TwoTwoOne module: {cmp.describe()}",
        max_abs_err=cmp.max_abs_err,
        max_rel_err=cmp.max_rel_err,
        samples=len(TWO_TWO_ONE_PARAMS),
        dtype=cmp.dtype,
        details={"proved": proved, "gradients": dict(zip(TWO_TWO_ONE_PARAMS, np.asarray(got).tolist(), strict=True))},
    )


@claim(
    "backprop/shared-bias-collects-both-paths",
    sources=["S003-11"],
    says="The other parameters are updated the same way (更新其他参数同理): one chain of factors per parameter.",
    expected="qualified",
    correction="Not for b1, which both hidden units share: dL/db1 is the sum of two chains, through h1 and "
    "through h2. Following one chain, as for the other parameters, gives a wrong gradient.",
)
def _shared_bias() -> Evidence:
    delta_out = 2 * (y_hat - y) * y_hat * (1 - y_hat)
    one_path = delta_out * w5 * h1 * (1 - h1)
    exact = sp.diff(two_two_one_loss(), b1)
    two_paths_ok = is_zero(exact - _substituted(chain_rule_gradients()[b1]))
    one_path_wrong = not is_zero(exact - _substituted(one_path))
    model, x, label = _two_two_one_case()
    autodiff = float(nnx.grad(lambda m: (m(x) - label) ** 2)(model).b1[...])
    symbols = [x1, x2, y, *WEIGHTS]
    values = [x[0], x[1], label, *(model.params()[str(w)] for w in WEIGHTS)]
    single = float(to_jax(explicit(_substituted(one_path)), symbols)(*values))
    both = float(hand_gradients(model.params(), x, label)["b1"])
    ok = two_paths_ok and one_path_wrong and abs(both - autodiff) <= 1e-10 * abs(autodiff) and \
        abs(single - autodiff) > 1e-3 * abs(autodiff)
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary=f"SymPy: dL/db1 = delta_h1 + delta_h2 (proved: {two_paths_ok}), one path alone differs (proved: "
        f"{one_path_wrong}); numbers: jax.grad {autodiff:.6e}, both paths {both:.6e}, through h1 only {single:.6e}",
        max_abs_err=abs(both - autodiff),
        max_rel_err=abs(both - autodiff) / abs(autodiff),
        samples=1,
        dtype="float64",
        details={"autodiff": autodiff, "two_paths": both, "one_path": single},
    )


@claim(
    "backprop/hand-sgd-step-matches-optax",
    sources=["S003-11", "S002-53"],
    says="Each parameter is updated as w+ = w - lambda dL/dw.",
    expected="holds",
)
def _sgd_step() -> Evidence:
    model, x, label = _two_two_one_case(1)
    rate = 0.5
    before = model.params()
    hand = {name: before[name] - rate * g for name, g in hand_gradients(before, x, label).items()}
    optimizer = nnx.Optimizer(model, optax.sgd(rate), wrt=nnx.Param)
    optimizer.update(model, nnx.grad(lambda m: (m(x) - label) ** 2)(model))
    after = model.params()
    got = jnp.stack([after[n] for n in TWO_TWO_ONE_PARAMS])
    want = jnp.stack([hand[n] for n in TWO_TWO_ONE_PARAMS])
    cmp = compare(lambda: want, lambda: got, [])
    loss_before = float((two_two_one(before, x) - label) ** 2)
    loss_after = float((two_two_one(after, x) - label) ** 2)
    ok = cmp.ok and loss_after < loss_before
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"one step w+ = w - {rate} dL/dw with the hand gradients vs optax.sgd({rate}) on the Flax module: "
        f"{cmp.describe()}; loss {loss_before:.6f} -> {loss_after:.6f}",
        max_abs_err=cmp.max_abs_err,
        max_rel_err=cmp.max_rel_err,
        samples=len(TWO_TWO_ONE_PARAMS),
        dtype=cmp.dtype,
    )


# --- claims: an L-layer MLP ---------------------------------------------------------------------------


@functools.cache
def _mlp_gradients(graphdef: nnx.GraphDef, depth: int):
    """jit-compiled (derived, autodiff) MLP gradients, one compile per architecture."""
    layers = range(depth)

    @jax.jit
    def both(params, x, dy):
        grads = jax.grad(lambda q: jnp.sum(dy * nnx.merge(graphdef, q)(x)))(params)
        autodiff = ([grads["layers"][i]["kernel"][...] for i in layers],
                    [grads["layers"][i]["bias"][...] for i in layers])
        kernels = [params["layers"][i]["kernel"][...] for i in layers]
        biases = [params["layers"][i]["bias"][...] for i in layers]
        return mlp_backward(kernels, biases, x, dy), autodiff

    return both


def mlp_case(widths: tuple[int, ...], batch: int, seed: int):
    """A float64 Flax MLP, inputs and upstream gradients, and (derived, autodiff) kernel and bias gradients."""
    model = MLP(widths, rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(batch, widths[0])))
    dy = jnp.asarray(rng.normal(size=(batch, widths[-1])))
    graphdef, params = nnx.split(model)
    return _mlp_gradients(graphdef, len(widths) - 1)(params, x, dy)


@claim(
    "backprop/delta-recursion-matches-autodiff-for-any-depth",
    sources=["S001-07", "S000-14", "S002-37", "S002-53"],
    says="Backpropagation computes every layer's gradient from the next layer's: delta^l = (W^(l+1))^T "
    "delta^(l+1) * f'(z^l), dL/dW^l = delta^l (a^(l-1))^T.",
    expected="holds",
)
def _delta_recursion() -> Evidence:
    symbolic = delta_recursion_is_the_chain_rule((2, 2, 1)) and delta_recursion_is_the_chain_rule((2, 1, 2, 1))
    rng = np.random.default_rng(7)
    worst_abs, worst_rel, configs, ok = 0.0, 0.0, [], symbolic
    for seed in range(6):
        depth = int(rng.integers(1, 7))
        widths = tuple(int(w) for w in rng.integers(1, 9, depth + 1))
        (dk, db), (ak, ab) = mlp_case(widths, 5, seed)
        for derived, autodiff in zip(dk + db, ak + ab, strict=True):
            cmp = compare(lambda d=derived: d, lambda a=autodiff: a, [])
            ok &= cmp.ok
            worst_abs, worst_rel = max(worst_abs, cmp.max_abs_err), max(worst_rel, cmp.max_rel_err)
        configs.append(list(widths))
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"SymPy proves dL/dW^l = delta^l a^(l-1)^T on symbolic tanh MLPs 2-2-1 and 2-1-2-1: {symbolic}; the "
        f"recursion in code vs nnx.grad of a Flax MLP for widths {configs}: max rel err {worst_rel:.2e}",
        max_abs_err=worst_abs,
        max_rel_err=worst_rel,
        samples=len(configs),
        dtype="float64",
        details={"widths": configs},
    )


# --- claims: convolution ------------------------------------------------------------------------------


CONV_CASES = [  # (stride, padding ((top, bottom), (left, right)))
    (1, ((0, 0), (0, 0))), (1, ((1, 1), (1, 1))), (2, ((0, 0), (0, 0))), (2, ((1, 1), (1, 1))), (2, ((1, 0), (2, 1))),
]  # fmt: skip


@functools.cache
def _conv_gradients(graphdef: nnx.GraphDef, stride: int, padding: Padding):
    """jit-compiled (derived dW, vjp dW, derived dx, vjp dx), one compile per configuration."""

    @jax.jit
    def both(params, x, dy):
        _, vjp = jax.vjp(lambda q, v: nnx.merge(graphdef, q)(v), params, x)
        d_params, d_x = vjp(dy)
        kernel = params["kernel"][...]
        derived_w = conv_kernel_grad(x, dy, kernel.shape[:2], stride=stride, padding=padding)
        derived_x = conv_input_grad(dy, kernel, x.shape, stride=stride, padding=padding)
        return derived_w, d_params["kernel"][...], derived_x, d_x

    return both


def conv_case(stride: int, padding: Padding, *, size: int = 7, kernel: int = 3, seed: int = 0):
    """(derived dW, vjp dW, derived dx, vjp dx, dy, x) for an nnx.Conv(3 -> 4) on a (2, size, size, 3) input x."""
    conv = nnx.Conv(3, 4, (kernel, kernel), strides=stride, padding=padding, rngs=nnx.Rngs(params=seed),
                    param_dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(2, size, size, 3)))
    dy = jnp.asarray(rng.normal(size=jax.eval_shape(conv, x).shape))
    graphdef, params = nnx.split(conv)
    return (*_conv_gradients(graphdef, stride, padding)(params, x, dy), dy, x)


@claim(
    "backprop/conv-backward-is-correlation-and-full-convolution",
    sources=["S000-24"],
    says="Convolution is a linear operation, so its weights are updated like a fully connected layer's, by "
    "the chain rule.",
    expected="holds",
)
def _conv_backward() -> Evidence:
    xs, ws, dys = _conv_1d_symbols()
    grads = conv_backward_1d()
    n_out = len(dys)
    correlation = sp.Matrix([sum(dys[j] * xs[j + k] for j in range(n_out)) for k in range(len(ws))])
    full_conv = sp.Matrix([sum(dys[i - k] * ws[k] for k in range(len(ws)) if 0 <= i - k < n_out)
                           for i in range(len(xs))])
    symbolic = grads[1].rhs == correlation and sp.simplify(grads[2].rhs - full_conv) == sp.zeros(len(xs), 1)
    worst_abs, worst_rel, ok, per_case = 0.0, 0.0, symbolic, {}
    for stride, padding in CONV_CASES:
        dw, dw_ref, dx, dx_ref, _, _ = conv_case(stride, padding)
        cw, cx = compare(lambda a=dw: a, lambda b=dw_ref: b, []), compare(lambda a=dx: a, lambda b=dx_ref: b, [])
        ok &= cw.ok and cx.ok
        worst_abs = max(worst_abs, cw.max_abs_err, cx.max_abs_err)
        worst_rel = max(worst_rel, cw.max_rel_err, cx.max_rel_err)
        per_case[f"stride {stride}, padding {padding}"] = [cw.max_rel_err, cx.max_rel_err]
    # Linear like a dense layer: with the input unrolled into patches (im2col), y = patches @ W, dW = patches^T dy.
    _, dw_ref, _, _, dy, x = conv_case(2, ((1, 1), (1, 1)))
    patches = lax.conv_general_dilated_patches(x, (3, 3), (2, 2), ((1, 1), (1, 1)),
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    # conv_general_dilated_patches orders each patch's features channel-major: (C, kh, kw).
    dense = patches.reshape(-1, patches.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    dense_w = dense.reshape(3, 3, 3, 4).transpose(1, 2, 0, 3)
    dense_cmp = compare(lambda: dense_w, lambda: dw_ref, [])
    ok &= dense_cmp.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"SymPy (1-D, 5 inputs, 3 taps): dL/dw = correlation of x with dy, dL/dx = full convolution of dy "
        f"with w: {symbolic}; the 2-D lax forms vs jax.vjp of nnx.Conv for strides 1, 2 and paddings 0, 1, "
        f"(1,0)x(2,1): max rel err {worst_rel:.2e}; as a dense layer on im2col patches, dW = patches^T dy: max rel "
        f"err {dense_cmp.max_rel_err:.2e}",
        max_abs_err=max(worst_abs, dense_cmp.max_abs_err),
        max_rel_err=max(worst_rel, dense_cmp.max_rel_err),
        samples=len(CONV_CASES),
        dtype="float64",
        details={"max_rel_err_dw_dx": per_case},
    )


# --- claims: not differentiating ----------------------------------------------------------------------


def _deep_tanh(kernels: list[jax.Array], x: jax.Array, frozen: int = 0) -> jax.Array:
    """sum(tanh(... tanh(x @ k1) ...) ** 2); the first ``frozen`` layers' output passes through stop_gradient."""
    for layer, kernel in enumerate(kernels):
        x = jnp.tanh(x @ kernel)
        if layer + 1 == frozen:
            x = lax.stop_gradient(x)
    return jnp.sum(x**2)


def _deep_tanh_case(depth: int = 6, width: int = 256, batch: int = 128):
    keys = jax.random.split(jax.random.key(0), depth + 1)
    kernels = [jax.random.normal(k, (width, width), jnp.float64) / np.sqrt(width) for k in keys[:-1]]
    return kernels, jax.random.normal(keys[-1], (batch, width), jnp.float64)


@claim(
    "backprop/stop-gradient-cuts-the-gradient-not-the-value",
    sources=["S000-23"],
    says="Inside torch.no_grad() no gradient is recorded; JAX's counterpart for part of a computation is "
    "lax.stop_gradient.",
    expected="holds",
)
def _stop_gradient() -> Evidence:
    kernels, x = _deep_tanh_case(depth=4, width=16, batch=8)
    full = jax.grad(_deep_tanh)(kernels, x)
    cut = jax.grad(lambda ks: _deep_tanh(ks, x, frozen=2))(kernels)
    same_value = float(_deep_tanh(kernels, x)) == float(_deep_tanh(kernels, x, frozen=2))
    zero_before = all(bool(jnp.all(g == 0)) for g in cut[:2])
    after = [compare(lambda a=a: a, lambda b=b: b, []) for a, b in zip(cut[2:], full[2:], strict=True)]
    nonzero_full = all(bool(jnp.any(g != 0)) for g in full[:2])
    ok = same_value and zero_before and nonzero_full and all(c.ok for c in after)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"4-layer tanh network, stop_gradient after layer 2: forward value unchanged: {same_value}; "
        f"layers 1-2 get exactly 0 (full gradient non-zero: {nonzero_full}); layers 3-4 get the full gradient: "
        f"max rel err {max(c.max_rel_err for c in after):.2e}",
        max_abs_err=max(c.max_abs_err for c in after),
        max_rel_err=max(c.max_rel_err for c in after),
        samples=len(kernels),
        dtype="float64",
    )


def compiled_footprint(f, *args) -> dict[str, float]:
    """XLA's temp buffer bytes and FLOPs for ``jit(f)`` at ``args``."""
    compiled = jax.jit(f).lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"temp_bytes": float(compiled.memory_analysis().temp_size_in_bytes), "flops": float(cost.get("flops", 0.0))}


@functools.cache
def no_grad_footprints(depth: int = 6, width: int = 256, batch: int = 128) -> dict[str, dict[str, float]]:
    kernels, x = _deep_tanh_case(depth, width, batch)
    return {
        "forward only": compiled_footprint(_deep_tanh, kernels, x),
        "forward + backward": compiled_footprint(jax.grad(_deep_tanh), kernels, x),
        f"backward through the last {depth // 2} layers": compiled_footprint(
            jax.grad(lambda ks, v: _deep_tanh(ks, v, frozen=depth // 2)), kernels, x),
    }


@claim(
    "backprop/not-differentiating-saves-compute-and-memory",
    sources=["S000-23"],
    says="Under torch.no_grad() gradients are not recorded, which saves computation.",
    expected="holds",
)
def _no_grad_savings() -> Evidence:
    depth, width, batch = 6, 256, 128
    table = no_grad_footprints(depth, width, batch)
    forward, both = table["forward only"], table["forward + backward"]
    half = table[f"backward through the last {depth // 2} layers"]
    backward_ratio = (both["flops"] - forward["flops"]) / forward["flops"]
    # Temp bytes are XLA's scheduling result (buffers reused, residuals partly in the output), so only the
    # direction is asserted, and only for the whole backward pass: it needs buffers the forward pass does not.
    ok = backward_ratio > 1 and both["temp_bytes"] > forward["temp_bytes"] and \
        forward["flops"] < half["flops"] < both["flops"]
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"XLA's counts for a {depth}-layer tanh network (width {width}, batch {batch}, float64): "
        + "; ".join(f"{name}: {v['flops'] / 1e6:.0f} MFLOP, {v['temp_bytes'] / 2**20:.2f} MiB temp"
                    for name, v in table.items())
        + f". The backward pass costs {backward_ratio:.2f} x the forward FLOPs. Stopping it halfway saves FLOPs; "
        f"its temp memory is {'smaller' if half['temp_bytes'] < both['temp_bytes'] else 'not smaller'} than the "
        "full backward's (that depends on XLA's buffer schedule and is not asserted)",
        samples=len(table),
        dtype="float64",
        details={**table, "backward_flops_over_forward": backward_ratio},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "backprop"]) or main(["check", "backprop"]))
