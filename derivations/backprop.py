"""Backpropagation by hand: the notes' 2-2-1 sigmoid network, the delta-recursion of an L-layer MLP, the
backward pass of a convolution, and what stop_gradient (JAX's torch.no_grad) cuts and saves.

Seeds: S000-14, S000-23, S000-24, S001-07, S002-37, S002-53, S003-11 (narrative: S002-31, in the
appendix). The claims are in ``derivations/ledger/backprop.py``; run ``python -m derivations.backprop`` to print
the derivations and check the claims.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx
from jax import lax

from derivations import bridge
from derivations.activations import sigmoid
from derivations.bridge import instantiate, to_jax
from derivations.claims import derivation
from models.backprop import MLP, TwoTwoOne

x1, x2, y = sp.symbols("x1 x2 y", real=True)
w1, w2, w3, w4, w5, w6, b1, b2 = WEIGHTS = sp.symbols("w1 w2 w3 w4 w5 w6 b1 b2", real=True)
h1, h2, y_hat = sp.symbols(r"h1 h2 \hat{y}", real=True)  # the forward values, as the notes name them
learning_rate = sp.Symbol("lambda", positive=True)


class sigma(sp.Function):
    """The logistic sigmoid as an opaque SymPy function whose derivative is sigma (1 - sigma), so that chain-rule
    expressions stay in the notes' terms and compare with ``diff`` by expansion alone; the derivative itself is
    proved from 1 / (1 + e^-v) (``derivations.activations.sigmoid``) in
    ``sigmoid_derivative_is_s_times_one_minus_s``."""

    def fdiff(self, argindex=1):
        return sigma(self.args[0]) * (1 - sigma(self.args[0]))


def explicit(expr: sp.Expr) -> sp.Expr:
    """``expr`` with sigma written out as 1 / (1 + e^-v) (the activations chapter's sigmoid), for lambdify."""
    return expr.replace(sigma, sigmoid)


def sigmoid_derivative_is_s_times_one_minus_s() -> bool:
    v = sp.Symbol("v", real=True)
    return bridge.vanishes(sp.diff(explicit(sigma(v)), v) - explicit(sigma(v).diff(v)))


def is_zero(expr: sp.Expr) -> bool:
    """SymPy decides expr == 0: by expansion (enough for chain-rule products), else by simplify."""
    return sp.expand(expr) == 0 or bridge.vanishes(expr)


def two_two_one_forward() -> dict[sp.Symbol, sp.Expr]:
    """The notes' network (S003-11): h1, h2 share b1; y_hat = sigma(w5 h1 + w6 h2 + b2)."""
    hidden1 = sigma(w1 * x1 + w2 * x2 + b1)
    hidden2 = sigma(w3 * x1 + w4 * x2 + b1)
    return {h1: hidden1, h2: hidden2, y_hat: sigma(w5 * hidden1 + w6 * hidden2 + b2)}


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


_v = sp.Symbol("v", real=True)
# The activations the delta-recursion is checked with, as SymPy functions of one variable. ReLU's derivative
# at 0 is a choice (the subdifferential is [0, 1]); Piecewise makes it 0 there, as jax.nn.relu does.
ACTIVATION_FUNCTIONS: dict[str, sp.Expr] = {
    "tanh": sp.tanh(_v), "sigmoid": sigmoid(_v), "relu": sp.Piecewise((_v, _v > 0), (0, True)),
}


def activation_derivative(name: str) -> sp.Expr:
    """f'(v) of an activation, by SymPy."""
    if name not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATION_FUNCTIONS)}, got {name!r}")
    return sp.diff(ACTIVATION_FUNCTIONS[name], _v)


@bridge.cache
def activation_jax(name: str):
    """An activation, compiled to JAX from its SymPy form."""
    if name not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATION_FUNCTIONS)}, got {name!r}")
    return to_jax(ACTIVATION_FUNCTIONS[name], [_v])


@bridge.cache
def activation_derivative_jax(name: str):
    """f' of an activation, compiled to JAX from SymPy's derivative."""
    return to_jax(activation_derivative(name), [_v])


def delta_recursion_is_the_chain_rule(widths: tuple[int, ...] = (2, 2, 1), activation: str = "tanh") -> bool:
    """On a symbolic MLP z^l = W^l a^(l-1) + b^l, SymPy's dL/dW^l equals delta^l (a^(l-1))^T and dL/db^l equals
    delta^l from the recursion, entrywise."""
    # The sigmoid stays the opaque sigma (derivative sigma (1 - sigma)) so that expansion decides the identity.
    form = sigma(_v) if activation == "sigmoid" else ACTIVATION_FUNCTIONS[activation]
    f, f_prime = sp.Lambda(_v, form), sp.Lambda(_v, sp.diff(form, _v))
    xs = sp.Matrix(sp.symbols(f"a0_1:{widths[0] + 1}", real=True))
    weights = [sp.Matrix(m, n, lambda i, j, layer=layer: sp.Symbol(f"W{layer}_{i}{j}", real=True))
               for layer, (n, m) in enumerate(itertools.pairwise(widths), start=1)]
    biases = [sp.Matrix(sp.symbols(f"b{layer}_1:{m + 1}", real=True))
              for layer, m in enumerate(widths[1:], start=1)]
    activations, pre = [xs], []
    for layer, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        pre.append(weight * activations[-1] + bias)
        last = layer == len(weights) - 1
        activations.append(pre[-1] if last else pre[-1].applyfunc(f))
    loss = sum(v**2 for v in activations[-1]) / 2
    delta = activations[-1]  # dL/dz^L for L = |z^L|^2 / 2 with a linear last layer
    for layer in range(len(weights) - 1, -1, -1):
        claimed = delta * activations[layer].T
        derived = sp.Matrix(*weights[layer].shape, lambda i, j, layer=layer: sp.diff(loss, weights[layer][i, j]))
        derived_b = sp.Matrix([sp.diff(loss, b) for b in biases[layer]])
        if not all(is_zero(e) for e in [*(derived - claimed), *(derived_b - delta)]):
            return False
        if layer:
            delta = sp.matrix_multiply_elementwise(weights[layer].T * delta, pre[layer - 1].applyfunc(f_prime))
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


def mlp_backward(kernels: list[jax.Array], biases: list[jax.Array], x: jax.Array, dy: jax.Array,
                 activation: str = "tanh"):
    """Gradients of sum(dy * MLP(x)) for the MLP of ``models.backprop.MLP`` by the delta-recursion
    delta^l = (delta^(l+1) @ kernel^(l+1).T) * f'(z^l), dL/dkernel^l = a^(l-1).T @ delta^l, dL/db^l =
    sum over the batch of delta^l (S001-07), with f' from SymPy (``activation_derivative``). Returns
    (kernel grads, bias grads), one per layer."""
    if len(kernels) != len(biases) or not kernels:
        raise ValueError(f"need as many kernels as biases (at least 1), got {len(kernels)} and {len(biases)}")
    f, f_prime = activation_jax(activation), activation_derivative_jax(activation)
    activations, pre = [x], []
    for layer, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
        pre.append(activations[-1] @ kernel + bias)
        activations.append(pre[-1] if layer == len(kernels) - 1 else f(pre[-1]))
    delta = dy  # the last layer is linear
    kernel_grads, bias_grads = [], []
    for layer in range(len(kernels) - 1, -1, -1):
        kernel_grads.insert(0, activations[layer].T @ delta)
        bias_grads.insert(0, jnp.sum(delta, axis=0))
        if layer:
            delta = (delta @ kernels[layer].T) * f_prime(pre[layer - 1])
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


# --- the measurements the claims share --------------------------------------------------------------


def two_two_one_case(seed: int = 0):
    """A float64 TwoTwoOne module, an input and a 0/1 label, from ``seed``."""
    model = TwoTwoOne(rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    return model, jax.device_put(rng.normal(size=2)), float(rng.integers(0, 2))


def substituted(expr: sp.Expr) -> sp.Expr:
    """A gradient in the forward values h1, h2, y_hat, written in the inputs and parameters."""
    return expr.subs(two_two_one_forward())


@bridge.cache
def _compiled_gradients() -> dict[str, object]:
    """The displayed chain-rule gradients (``two_two_one_gradients``), in the inputs and parameters, compiled."""
    symbols = [x1, x2, y, *WEIGHTS]
    return {str(eq.lhs.variables[0]): to_jax(explicit(instantiate(eq, two_two_one_forward())), symbols)
            for eq in two_two_one_gradients()}


def hand_gradients(params: dict[str, jax.Array], x: jax.Array, label: float) -> dict[str, jax.Array]:
    """The chain-rule gradients of ``two_two_one_gradients``, evaluated (float64)."""
    compiled = _compiled_gradients()
    return dict(zip(compiled, _evaluate_gradients(tuple(compiled.values()), params, x, label), strict=True))


@functools.partial(jax.jit, static_argnums=0)  # the eight formulas in one program (each alone is one)
def _evaluate_gradients(functions, params, x, label):
    values = [x[0], x[1], label, *(params[str(w)] for w in WEIGHTS)]
    return [f(*values) for f in functions]


def mlp_case(widths: tuple[int, ...], batch: int, seed: int, activation: str = "tanh", bias_scale: float = 1.0):
    """A float64 Flax MLP with kernels drawn from N(0, 1/fan_in) and biases from N(0, bias_scale^2), inputs and
    upstream gradients, and (derived, autodiff) kernel and bias gradients: ((kernels, biases), (kernels,
    biases), (kernels, biases, x, dy, the derived gradients of a recursion that leaves the biases out)).
    The module is built abstractly and filled from NumPy draws (Flax's
    initializers would compile for every new shape)."""
    abstract = nnx.eval_shape(lambda: MLP(widths, activation=activation, rngs=nnx.Rngs(params=0), dtype=jnp.float64))
    graphdef, params = nnx.split(abstract)
    rng = np.random.default_rng(seed)
    draws = []
    for fan_in, fan_out in itertools.pairwise(widths):
        draws.append((rng.normal(0.0, 1.0 / np.sqrt(fan_in), (fan_in, fan_out)), rng.normal(0.0, bias_scale, fan_out)))
    # device_put, not jnp.asarray: the same float64 arrays without a compiled copy program per shape.
    for layer, (kernel, bias) in enumerate(draws):
        params["layers"][layer]["kernel"].set_value(jax.device_put(kernel))
        params["layers"][layer]["bias"].set_value(jax.device_put(bias))
    x = jax.device_put(rng.normal(size=(batch, widths[0])))
    dy = jax.device_put(rng.normal(size=(batch, widths[-1])))
    derived, autodiff, no_bias = _mlp_gradients(graphdef, len(widths) - 1, activation)(params, x, dy)
    kernels = [jax.device_put(k) for k, _ in draws]
    biases = [jax.device_put(b) for _, b in draws]
    return derived, autodiff, (kernels, biases, x, dy, no_bias)


@bridge.cache
def _mlp_gradients(graphdef: nnx.GraphDef, depth: int, activation: str):
    """jit-compiled (derived, autodiff) MLP gradients, one compile per architecture (eager autodiff would
    compile every primitive of every new shape separately)."""
    layers = range(depth)

    @jax.jit
    def both(params, x, dy):
        grads = jax.grad(lambda q: jnp.sum(dy * nnx.merge(graphdef, q)(x)))(params)
        autodiff = ([grads["layers"][i]["kernel"][...] for i in layers],
                    [grads["layers"][i]["bias"][...] for i in layers])
        kernels = [params["layers"][i]["kernel"][...] for i in layers]
        biases = [params["layers"][i]["bias"][...] for i in layers]
        # The same recursion with the biases left out of its forward pass: a control the drawn biases must catch.
        no_bias = mlp_backward(kernels, [jnp.zeros_like(b) for b in biases], x, dy, activation)
        return mlp_backward(kernels, biases, x, dy, activation), autodiff, no_bias

    return both


CONV_CASES = [  # (stride, padding ((top, bottom), (left, right)))
    (1, ((0, 0), (0, 0))), (1, ((1, 1), (1, 1))), (2, ((0, 0), (0, 0))), (2, ((1, 1), (1, 1))), (2, ((1, 0), (2, 1))),
]  # fmt: skip


@bridge.cache
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
    x = jax.device_put(rng.normal(size=(2, size, size, 3)))
    dy = jax.device_put(rng.normal(size=jax.eval_shape(conv, x).shape))
    graphdef, params = nnx.split(conv)
    return (*_conv_gradients(graphdef, stride, padding)(params, x, dy), dy, x)


def deep_tanh(kernels: list[jax.Array], x: jax.Array, frozen: int = 0) -> jax.Array:
    """sum(tanh(... tanh(x @ k1) ...) ** 2); the first ``frozen`` layers' output passes through stop_gradient."""
    for layer, kernel in enumerate(kernels):
        x = jnp.tanh(x @ kernel)
        if layer + 1 == frozen:
            x = lax.stop_gradient(x)
    return jnp.sum(x**2)


@functools.partial(jax.jit, static_argnames=("depth", "width", "batch"))  # one program for the draws
def deep_tanh_case(depth: int = 6, width: int = 64, batch: int = 32):
    keys = jax.random.split(jax.random.key(0), depth + 1)
    kernels = [jax.random.normal(k, (width, width), jnp.float64) / np.sqrt(width) for k in keys[:-1]]
    return kernels, jax.random.normal(keys[-1], (batch, width), jnp.float64)


def compiled_footprint(f, *args) -> dict[str, float]:
    """XLA's count for ``jit(f)`` at ``args``: FLOPs, and the bytes of its outputs and temporaries."""
    compiled = jax.jit(f).lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    memory = compiled.memory_analysis()
    return {"flops": float(cost.get("flops", 0.0)), "output_bytes": float(memory.output_size_in_bytes),
            "temp_bytes": float(memory.temp_size_in_bytes)}


def residual_bytes(f, *args) -> int:
    """Bytes that ``jax.vjp(f, *args)`` keeps for the backward pass beyond the arguments themselves (the
    residuals: what a recording forward pass, like PyTorch's outside ``no_grad``, saves)."""
    _, backward = jax.vjp(f, *args)
    given = {id(leaf) for leaf in jax.tree.leaves(args)}
    return int(sum(leaf.nbytes for leaf in jax.tree.leaves(backward) if id(leaf) not in given))


def recording_forward(f):
    """The forward pass that records: ``f``'s value together with the residuals its vjp keeps beyond the arguments
    (those the caller holds anyway; returning them would count the inputs as recorded)."""

    def forward(*args):
        out, backward = jax.vjp(f, *args)
        given = {id(leaf) for leaf in jax.tree.leaves(args)}
        return out, [leaf for leaf in jax.tree.leaves(backward) if id(leaf) not in given]

    return forward


@bridge.cache
def no_grad_footprints(depth: int = 6, width: int = 64, batch: int = 32) -> dict[str, dict[str, float]]:
    """XLA's FLOPs and bytes for the forward pass alone, the forward pass that records (value + residuals), and
    forward + backward, of ``deep_tanh``; with the residual bytes jax.vjp keeps."""
    kernels, x = deep_tanh_case(depth, width, batch)
    table = {
        "forward only": compiled_footprint(deep_tanh, kernels, x),
        "forward that records": compiled_footprint(recording_forward(deep_tanh), kernels, x),
        "forward + backward": compiled_footprint(jax.grad(deep_tanh), kernels, x),
    }
    value = jax.eval_shape(deep_tanh, kernels, x)
    # What the plain forward's program hands back beyond its value (nothing is kept for a backward pass).
    table["forward only"]["residual_bytes"] = table["forward only"]["output_bytes"] - value.size * value.dtype.itemsize
    table["forward that records"]["residual_bytes"] = float(residual_bytes(deep_tanh, kernels, x))
    return table


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "backprop"]) or main(["check", "backprop"]))
