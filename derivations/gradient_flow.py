"""Gradient flow: why gradients vanish or explode with depth, what ReLU, BatchNorm and skip connections
change, derived and measured on 50-layer Flax MLPs in float64.

Seeds: S000-05, S001-17, S002-23, S003-12, S001-33, S000-26, S001-08 (its ResNet paragraph). The claims are in
``derivations/ledger/gradient_flow.py``; run ``python -m derivations.gradient_flow`` to print the derivations
and check the claims.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
import sympy.stats as stats

from derivations import bridge
from derivations.activations import sigmoid
from derivations.bridge import instantiate
from derivations.claims import derivation
from derivations.compare import Comparison, compare
from models.mlp_stacks import layer_profile, residual_block, stacked_kernels

DEPTH_SYMBOLIC = 4  # the scalar chains derived in SymPy
WIDTH, DEPTH, BATCH = 64, 50, 128
INIT = jax.nn.initializers

x = sp.Symbol("x", real=True)
ws = sp.symbols(f"w1:{DEPTH_SYMBOLIC + 1}", real=True)
bs = sp.symbols(f"b1:{DEPTH_SYMBOLIC + 1}", real=True)
zs = sp.symbols(f"z1:{DEPTH_SYMBOLIC + 1}", real=True)  # the pre-activations, named for display
n_units, sigma_weight = sp.symbols("n sigma_w", positive=True)


def linear_chain() -> sp.Expr:
    """y = w_L ... w_1 x: a deep linear network of width 1 with zero biases."""
    return sp.Mul(*ws) * x


def sigmoid_chain() -> tuple[sp.Expr, list[sp.Expr]]:
    """h_l = sigmoid(z_l), z_l = w_l h_(l-1) + b_l, h_0 = x; returns h_L and the pre-activations z_l."""
    h, pre = x, []
    for w, b in zip(ws, bs, strict=True):
        pre.append(w * h + b)
        h = sigmoid(pre[-1])
    return h, pre


# --- derivations -------------------------------------------------------------------------------------


@derivation
@bridge.cache
def linear_chain_gradient() -> sp.Eq:
    """In a deep linear network the gradient reaching the first weight is the input times the product of
    all the other weights (S002-23, S000-05)."""
    return sp.Eq(sp.Derivative(sp.Symbol("y"), ws[0]), sp.diff(linear_chain(), ws[0]), evaluate=False)


LAYER = sp.Symbol("l", integer=True, positive=True)
N_LAYERS = sp.Symbol("L", integer=True, positive=True)
W_INDEXED, Z_INDEXED = sp.IndexedBase("w"), sp.IndexedBase("z")
SIGMA_PRIME = sp.Function("sigma'")


@derivation
@bridge.cache
def sigmoid_chain_gradient() -> list[sp.Expr]:
    """Through a sigmoid chain the input gradient is a product of w_l sigma'(z_l); since sigma' <= 1/4
    its size is at most prod |w_l| / 4^L <= (max |w| / 4)^L (S001-17, S003-12)."""
    factors = sp.Mul(*[w * sigmoid(z) * (1 - sigmoid(z)) for w, z in zip(ws, zs, strict=True)])
    bound = sp.Mul(*[sp.Abs(w) for w in ws]) / 4**DEPTH_SYMBOLIC
    gradient = sp.Derivative(sp.Symbol(f"h_{DEPTH_SYMBOLIC}"), x)
    return [
        sp.Eq(sp.Derivative(sp.Symbol("h_L"), x),
              sp.Product(W_INDEXED[LAYER] * SIGMA_PRIME(Z_INDEXED[LAYER]), (LAYER, 1, N_LAYERS)), evaluate=False),
        sp.Eq(gradient, factors, evaluate=False),
        sp.Le(sp.Abs(gradient), bound, evaluate=False),
    ]


def sigmoid_chain_product_at_depth(depth: int = DEPTH_SYMBOLIC) -> sp.Expr:
    """The general product of :func:`sigmoid_chain_gradient` (its first item) instantiated at L = ``depth``,
    in the chain's symbols w1..wL, z1..zL, with sigma'(z) = sigma(z)(1 - sigma(z))."""
    product = instantiate(sigmoid_chain_gradient()[0], {N_LAYERS: depth})
    names = {W_INDEXED[i + 1]: ws[i] for i in range(depth)} | {Z_INDEXED[i + 1]: zs[i] for i in range(depth)}
    named = product.subs(names)
    return named.replace(SIGMA_PRIME, lambda v: sigmoid(v) * (1 - sigmoid(v)))


def sigmoid_chain_gradient_in_inputs() -> sp.Expr:
    """The product of :func:`sigmoid_chain_gradient` with each z_l replaced by w_l h_(l-1) + b_l."""
    _, pre = sigmoid_chain()
    return sigmoid_chain_gradient()[1].rhs.subs(dict(zip(zs, pre, strict=True)))


@derivation
@bridge.cache
def relu_backward_factor() -> sp.Eq:
    """Backward through a ReLU layer of width n: Var(dL/dh_(l-1)) = n sigma_w^2 P(z > 0) Var(dL/dh_l), and
    P(z > 0) = 1/2 (sympy.stats), so the squared gradient norm changes by n sigma_w^2 / 2 per layer."""
    n, sigma_w = n_units, sigma_weight
    p_active = stats.P(stats.Normal("z", 0, 1) > 0)
    return sp.Eq(sp.Symbol("g"), n * sigma_w**2 * p_active, evaluate=False)


RESIDUAL_N = 2  # the size the residual Jacobian is displayed at


@bridge.cache
def residual_symbols(n: int = RESIDUAL_N):
    """x, W1, b1, W2 as explicit SymPy matrices of symbols (the block's concrete form)."""
    xs = sp.Matrix(sp.symbols(f"x1:{n + 1}", real=True))
    w1 = sp.Matrix(n, n, sp.symbols(f"u1:{n * n + 1}", real=True))
    b1 = sp.Matrix(sp.symbols(f"c1:{n + 1}", real=True))
    w2 = sp.Matrix(n, n, sp.symbols(f"v1:{n * n + 1}", real=True))
    return xs, w1, b1, w2


def residual_block_symbolic(n: int = RESIDUAL_N) -> sp.Matrix:
    """H(x) = x + W2 tanh(W1 x + b1), the block of :func:`models.mlp_stacks.residual_block` with b2 = 0."""
    xs, w1, b1, w2 = residual_symbols(n)
    return xs + w2 * (w1 * xs + b1).applyfunc(sp.tanh)


RESIDUAL_PLACEHOLDERS = (sp.MatrixSymbol("W_1", RESIDUAL_N, RESIDUAL_N), sp.MatrixSymbol("W_2", RESIDUAL_N, RESIDUAL_N),
                         sp.MatrixSymbol("D", RESIDUAL_N, RESIDUAL_N))


@derivation
@bridge.cache
def residual_jacobian() -> list[sp.Eq]:
    """H(x) = x + F(x) with F(x) = W2 tanh(W1 x + b1): the Jacobian of H is I + W2 D W1, the identity plus
    F's Jacobian, with D = diag(1 - tanh^2(W1 x + b1)) (S000-26, S001-08); shown for n = 2 and evaluated by the
    claim on concrete matrices against jax.jacobian."""
    xs, w1, b1, _w2 = residual_symbols()
    w1_, w2_, d = RESIDUAL_PLACEHOLDERS
    jac = sp.MatrixSymbol("J_H", RESIDUAL_N, RESIDUAL_N)
    return [
        sp.Eq(jac, sp.Identity(RESIDUAL_N) + w2_ * d * w1_, evaluate=False),
        sp.Eq(d, sp.diag(*[1 - sp.tanh(p) ** 2 for p in w1 * xs + b1]), evaluate=False),
    ]


def residual_jacobian_closed_form(xv: jax.Array, w1: jax.Array, b1: jax.Array, w2: jax.Array) -> jax.Array:
    """The Jacobian of :func:`models.mlp_stacks.residual_block`, I + W2 diag(1 - tanh^2(W1 x + b1)) W1."""
    return jnp.eye(xv.shape[0]) + w2 @ jnp.diag(1 - jnp.tanh(w1 @ xv + b1) ** 2) @ w1


def residual_points(n: int, points: int, seed: int) -> list[np.ndarray]:
    """Random (x, W1, b1, W2, b2) for the residual block, float64, leading axis over the points."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(points, *s)) for s in [(n,), (n, n), (n,), (n, n), (n,)]]


def jacobian_check(closed_form: Callable[..., jax.Array], *, n: int = 5, points: int = 64, seed: int = 0,
                   rtol: float = 1e-10) -> Comparison:
    """``closed_form(x, w1, b1, w2)`` against ``jax.jacobian`` of the residual block at random points."""
    args = [jax.device_put(a) for a in residual_points(n, points, seed)]
    got, want = _closed_form_and_jacobian(closed_form, *args)
    return compare(lambda *_: got, lambda *_: want, args, rtol=rtol)


@functools.partial(jax.jit, static_argnums=0)  # both sides in one program per n
def _closed_form_and_jacobian(closed_form, *args):
    return (jax.vmap(lambda xv, w1, b1, w2, b2: closed_form(xv, w1, b1, w2))(*args),
            jax.vmap(jax.jacobian(residual_block))(*args))


# --- the depth profiles (figure and claims) ----------------------------------------------------------

INITIALIZERS: dict[str, Callable[..., jax.Array]] = {"Xavier": INIT.glorot_normal(), "He": INIT.he_normal()}
# name -> (activation, initializer name, residual, BatchNorm): the curves of the chapter's figure
CONFIGS: dict[str, tuple[str, str, bool, bool]] = {
    "sigmoid, Xavier": ("sigmoid", "Xavier", False, False),
    "tanh, Xavier": ("tanh", "Xavier", False, False),
    "ReLU, Xavier": ("relu", "Xavier", False, False),
    "ReLU, He": ("relu", "He", False, False),
    "sigmoid + BN": ("sigmoid", "Xavier", False, True),
    "sigmoid + residual": ("sigmoid", "Xavier", True, False),
    "ReLU, He + residual": ("relu", "He", True, False),
    "ReLU, He + BN": ("relu", "He", False, True),
    "ReLU, He + BN + residual": ("relu", "He", True, True),
}
WEIGHT_VARIANCE = {"Xavier": 1 / WIDTH, "He": 2 / WIDTH}  # both square layers: 2/(n + n) and 2/n


@bridge.cache
def _inputs() -> tuple[jax.Array, jax.Array]:
    return _draw_inputs()


@jax.jit  # one program for both draws (eagerly, one per primitive)
def _draw_inputs() -> tuple[jax.Array, jax.Array]:
    return (jax.random.normal(jax.random.key(0), (BATCH, WIDTH), jnp.float64),
            jax.random.normal(jax.random.key(1), (WIDTH,), jnp.float64))


@bridge.cache
def profile(activation: str, init: str, residual: bool, normalize: bool, depth: int = DEPTH) -> np.ndarray:
    """||dL/dh_l|| for every layer l of a ``depth``-layer, WIDTH-wide MLP at initialisation (index 0 is the
    first layer), float64. Each configuration draws its own kernels (its seed is a hash of the
    configuration), so two initialisers never share a draw (He's kernels would be sqrt(2) x Xavier's)."""
    if init not in INITIALIZERS:
        raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
    xs, readout = _inputs()
    seed = int(hashlib.sha256(f"{activation}|{init}|{residual}|{normalize}|{depth}".encode()).hexdigest()[:7], 16)
    key = jax.random.fold_in(jax.random.key(2), seed)
    kernels = stacked_kernels(INITIALIZERS[init], key, depth, WIDTH, jnp.float64)
    _, grad_norm = layer_profile(xs, kernels, jnp.zeros((depth, WIDTH)), readout, activation=activation,
                                 residual=residual, normalize=normalize)
    return np.asarray(grad_norm)


def first_over_last(activation: str, init: str, residual: bool, normalize: bool, depth: int = DEPTH) -> float:
    """||dL/dh_1|| / ||dL/dh_depth||: below 1 the gradient shrinks on its way to the input, above 1 it grows."""
    g = profile(activation, init, residual, normalize, depth)
    return float(g[0] / g[-1])


def gradient_profiles() -> dict[str, np.ndarray]:
    """The profile of every configuration of CONFIGS at DEPTH layers (the chapter's figure)."""
    return {name: profile(*config) for name, config in CONFIGS.items()}


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "gradient_flow"]) or main(["check", "gradient_flow"]))
