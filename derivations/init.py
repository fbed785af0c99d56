"""Initialisation: Xavier/Glorot and Kaiming/He derived from variance propagation, checked against
``jax.nn.initializers``, measured through a 50-layer Flax MLP, and zero initialisation made precise.

Seeds: S001-15, S002-20, S002-19, S001-37. The claims are in ``derivations/ledger/init.py``; run
``python -m derivations.init`` to print the derivations and check the claims.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp
import sympy.stats as stats
from flax import nnx

from derivations import bridge
from derivations.claims import derivation
from models import OPTIMISED
from models.mlp_stacks import TwoLayerMLP, layer_profile, stacked_kernels

fan_in, fan_out = sp.symbols("n_in n_out", positive=True)
sigma_w, sigma_x = sp.symbols("sigma_w sigma_x", positive=True)
s2 = sp.Symbol("sigma_w^2", positive=True)  # the weight variance being solved for

# Monte-Carlo checks accept |measured - derived| <= Z_MAX standard errors.
Z_MAX = 4.5
WIDTH, DEPTH, BATCH = 64, 50, 256


# --- derivations -------------------------------------------------------------------------------------


@derivation
@bridge.cache
def forward_variance() -> sp.Eq:
    """One unit y = sum_i w_i x_i with independent zero-mean w, x: Var(y) = n_in Var(w) Var(x)
    (the per-term variance from sympy.stats, summed over n_in independent terms) (S001-15)."""
    w, x = stats.Normal("w", 0, sigma_w), stats.Normal("x", 0, sigma_x)
    return sp.Eq(sp.Symbol("Var(y)"), fan_in * stats.variance(w * x), evaluate=False)


def _layer_gain() -> sp.Expr:
    """Var(y) / Var(x) for a linear layer, from :func:`forward_variance`."""
    return forward_variance().rhs.subs(sigma_w, sp.sqrt(s2)) / sigma_x**2


@derivation
@bridge.cache
def xavier_variance() -> list[sp.Eq]:
    """Xavier/Glorot: the forward pass keeps Var(x) when n_in Var(W) = 1, the backward pass keeps
    Var(dL/dx) when n_out Var(W) = 1; both hold only if n_in = n_out, and Glorot takes the variance
    that satisfies their average, (n_in + n_out)/2 Var(W) = 1 (S001-15)."""
    forward = sp.solve(sp.Eq(_layer_gain(), 1), s2)[0]
    backward = sp.solve(sp.Eq(_layer_gain().subs(fan_in, fan_out), 1), s2)[0]
    compromise = sp.solve(sp.Eq(_layer_gain().subs(fan_in, (fan_in + fan_out) / 2), 1), s2)[0]
    return [
        sp.Eq(sp.Symbol("Var(W)_forward"), forward, evaluate=False),
        sp.Eq(sp.Symbol("Var(W)_backward"), backward, evaluate=False),
        sp.Eq(sp.Symbol("Var(W)_Xavier"), compromise, evaluate=False),
    ]


@derivation
@bridge.cache
def xavier_uniform_limit() -> sp.Eq:
    """Xavier uniform: U(-a, a) has variance a^2/3 (sympy.stats), so a = sqrt(6 / (n_in + n_out))."""
    a = sp.Symbol("a", positive=True)
    equation = sp.Eq(stats.variance(stats.Uniform("u", -a, a)), xavier_variance()[2].rhs)
    return sp.Eq(a, sp.solve(equation, a)[0], evaluate=False)


@derivation
@bridge.cache
def relu_second_moment() -> sp.Eq:
    """For a pre-activation z ~ N(0, sigma^2), E(relu(z)^2) = sigma^2 / 2: ReLU keeps half the energy."""
    sigma, z = sp.Symbol("sigma", positive=True), sp.Symbol("z", real=True)
    # relu(z)^2 is z^2 on z > 0 and 0 elsewhere: integrate the normal density (sympy.stats) over z > 0.
    value = sp.integrate(z**2 * stats.density(stats.Normal("z", 0, sigma))(z), (z, 0, sp.oo))
    return sp.Eq(sp.Function("E")(sp.Max(z, 0) ** 2), value, evaluate=False)


@derivation
@bridge.cache
def kaiming_variance() -> sp.Eq:
    """Kaiming/He for ReLU: Var(z_next) = n_in Var(W) E(relu(z)^2) = n_in Var(W) Var(z) / 2, kept
    constant when Var(W) = 2 / n_in (S001-15, S002-20)."""
    half = relu_second_moment().rhs / sp.Symbol("sigma", positive=True) ** 2
    return sp.Eq(sp.Symbol("Var(W)_He"), sp.solve(sp.Eq(_layer_gain() * half, 1), s2)[0], evaluate=False)


@derivation
@bridge.cache
def relu_layer_factor() -> sp.Eq:
    """Through a ReLU layer of width n with weight variance sigma_w^2, the activation variance is
    multiplied by n sigma_w^2 / 2 per layer, so over L layers by (n sigma_w^2 / 2)^L."""
    half = relu_second_moment().rhs / sp.Symbol("sigma", positive=True) ** 2
    return sp.Eq(sp.Symbol("g"), (_layer_gain() * half).subs(s2, sigma_w**2), evaluate=False)


# --- the harness: an initializer's empirical variance against a derived one --------------------------


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a dense (in, out) or conv HWIO kernel: the receptive field (all axes but the
    last two) times the input and output channels, the convention of ``jax.nn.initializers``."""
    if len(shape) < 2 or any(int(d) < 1 for d in shape):
        raise ValueError(f"shape must have >= 2 positive axes (dense (in, out) or conv HWIO), got {shape}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def initializer_variance_check(
    init: Callable[..., jax.Array],
    predicted: Callable[[int, int], float],
    shapes: Sequence[tuple[int, ...]],
    *,
    min_draws: int = 200_000,
    seed: int = 0,
) -> tuple[bool, dict[str, dict[str, float]]]:
    """Draw ``init`` for each shape (repeatedly, to at least ``min_draws`` weights) and compare the sample
    variance with ``predicted(fan_in, fan_out)``; ok when every |z| = |var - predicted| / se <= Z_MAX,
    with se = sqrt((m4 - var^2) / N) the standard error of a sample variance."""
    rows, ok = {}, True
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    for shape in shapes:
        fans(shape)
    repeats = tuple(-(-min_draws // math.prod(shape)) for shape in shapes)
    drawn = _drawer(init, tuple(shapes), repeats)(np.arange(seed, seed + len(shapes)))
    for shape, weights in zip(shapes, drawn, strict=True):
        n_in, n_out = fans(shape)
        weights = np.asarray(weights).ravel()
        var = float(np.var(weights, ddof=1))
        centred = weights - weights.mean()
        se = float(np.sqrt((np.mean(centred**4) - var**2) / weights.size))
        want = float(predicted(n_in, n_out))
        z = abs(var - want) / se
        ok = ok and z <= Z_MAX
        rows[str(tuple(shape))] = {"fan_in": n_in, "fan_out": n_out, "variance": var, "derived": want,
                                   "standard_error": se, "z": z, "draws": int(weights.size)}
    return ok, rows


@bridge.cache
def _drawer(init: Callable[..., jax.Array], shapes: tuple[tuple[int, ...], ...],
            repeats: tuple[int, ...]) -> Callable[[jax.Array], list[jax.Array]]:
    """One compiled program per (initializer, shapes): for shape i, ``repeats[i]`` draws of ``init`` from the
    keys split off ``key(seeds[i])`` (the seeds traced)."""

    def draw(seeds):
        return [jax.vmap(lambda key, shape=shape: init(key, shape, jnp.float64))(jax.random.split(jax.random.key(
            seeds[i]), n)) for i, (shape, n) in enumerate(zip(shapes, repeats, strict=True))]

    return jax.jit(draw)


def _as_function(expr: sp.Expr) -> Callable[[int, int], float]:
    return lambda n_in, n_out: float(expr.subs({fan_in: n_in, fan_out: n_out}))


DENSE_AND_CONV = [(64, 256), (300, 100), (3, 3, 16, 32), (5, 5, 3, 64)]


def _per_layer_law(row: dict[str, float]) -> str:
    """The measured and derived per-layer factor of a depth-profile row, where the row has one."""
    if "z" not in row:
        return ""
    return (f" (variance per layer x{row['measured_factor']:.4g} vs derived x{row['derived_factor']:.4g}, "
            f"z {row['z']:.1f})")


def _summary(rows: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{shape}: var {r['variance']:.3e} vs {r['derived']:.3e} (z {r['z']:.1f})"
                     for shape, r in rows.items())


# --- depth -------------------------------------------------------------------------------------------

# name -> (activation, initializer, weight variance of the square WIDTH x WIDTH layers)
PROFILES: dict[str, tuple[str, Callable[..., jax.Array], float]] = {
    "ReLU, He (2/n)": ("relu", jax.nn.initializers.he_normal(), 2 / WIDTH),
    "ReLU, Xavier (1/n)": ("relu", jax.nn.initializers.glorot_normal(), 1 / WIDTH),
    "ReLU, N(0, 1)": ("relu", jax.nn.initializers.normal(1.0), 1.0),
    "ReLU, N(0, 0.01^2)": ("relu", jax.nn.initializers.normal(0.01), 1e-4),
    "tanh, Xavier (1/n)": ("tanh", jax.nn.initializers.glorot_normal(), 1 / WIDTH),
}


@bridge.cache
def variance_profiles(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Each configuration of PROFILES through a DEPTH-layer, WIDTH-wide MLP at initialisation: the variance
    of every layer's output and the norm of the gradient reaching it (float64). Each configuration (and each
    ``seed``) draws from its own key: with one key, he_normal's kernels would be exactly sqrt(2) x
    glorot_normal's and the two ReLU curves one draw seen twice."""
    profiles = jax.device_get(_profiles(np.int64(seed)))
    return {name: {"variance": np.asarray(variance), "grad_norm": np.asarray(grad_norm)}
            for name, (variance, grad_norm) in zip(PROFILES, profiles, strict=True)}


@functools.partial(jax.jit, compiler_options=OPTIMISED)
def _profiles(seed: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    # Every configuration in one compiled program, the seed traced (one compile for every seed).
    x = jax.random.normal(jax.random.key(0), (BATCH, WIDTH), jnp.float64)
    readout = jax.random.normal(jax.random.key(1), (WIDTH,), jnp.float64)
    out = []
    for i, (activation, init, _) in enumerate(PROFILES.values()):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(2), seed), i)
        kernels = stacked_kernels(init, key, DEPTH, WIDTH, jnp.float64)
        out.append(layer_profile(x, kernels, jnp.zeros((DEPTH, WIDTH)), readout, activation=activation))
    return out


# --- one layer, forward and backward -------------------------------------------------------------------


def layer_gains(shape: tuple[int, int], variance: float, *, activation: str = "linear", draws: int = 64,
                batch: int = 256, seed: int = 0) -> dict[str, float]:
    """Forward and backward gain of one dense layer ``z -> act(z) @ W`` with ``W ~ N(0, variance)`` drawn
    directly (NumPy's seeded normal generator, not an initializer), inputs z ~ N(0, 1) and output gradients
    ~ N(0, 1): forward E[y^2] / E[z^2], backward E[(dL/dz)^2] / E[(dL/dy)^2] (the backward pass by
    ``jax.vjp``). Returns each gain's mean over ``draws`` independent layers and its standard error. The
    draws are made outside the compiled program: a jitted ``jax.random`` draw of this size costs seconds of
    XLA compilation per shape, the matmul and its vjp a few milliseconds."""
    if len(shape) != 2 or min(shape) < 1 or variance <= 0:
        raise ValueError(f"shape must be a dense (n_in, n_out) and variance > 0, got {shape}, {variance}")
    n_in, n_out = shape
    rng = np.random.default_rng(seed)
    w = np.sqrt(variance) * rng.standard_normal((draws, n_in, n_out))
    z = rng.standard_normal((draws, batch, n_in))
    gy = rng.standard_normal((draws, batch, n_out))
    forward, backward = _gains(activation)(w, z, gy)
    forward, backward = np.asarray(forward), np.asarray(backward)
    se = lambda v: float(v.std(ddof=1) / np.sqrt(v.size))  # noqa: E731
    return {"forward": float(forward.mean()), "forward_se": se(forward), "backward": float(backward.mean()),
            "backward_se": se(backward), "draws": draws}


_ACT = {"linear": lambda v: v, "relu": jax.nn.relu, "tanh": jnp.tanh}


@bridge.cache
def _gains(activation: str):
    act = _ACT[activation]

    def one(w, z, gy):
        y, pullback = jax.vjp(lambda v: act(v) @ w, z)
        (gz,) = pullback(gy)
        return jnp.mean(y**2) / jnp.mean(z**2), jnp.mean(gz**2) / jnp.mean(gy**2)

    return jax.jit(jax.vmap(one))


# --- zero initialisation -------------------------------------------------------------------------------


TARGETS = ("linear", "product")


def zero_init_run(activation: str, steps: int = 20, lr: float = 0.1, *, hidden_bias_sd: float = 0.0,
                  hidden: int = 8, target: str = "linear", random_kernels: bool = False,
                  ) -> tuple[TwoLayerMLP, list[float], jax.Array]:  # fmt: skip
    """A 4-``hidden``-1 MLP with every weight 0 (and every bias 0, unless ``hidden_bias_sd`` > 0 draws the
    hidden biases from N(0, sd^2)), trained by SGD on a fixed regression problem (``target``: a linear function of
    the inputs plus 0.5, or the product x1 x2, which no single hidden unit can fit); returns the trained model,
    the loss per step and the targets. ``random_kernels``: the control, both kernels drawn N(0, 1/fan_in)."""
    if steps < 1 or lr <= 0 or hidden_bias_sd < 0 or target not in TARGETS:
        raise ValueError(f"steps >= 1, lr > 0, hidden_bias_sd >= 0 and target in {TARGETS} required, got {steps}, "
                         f"{lr}, {hidden_bias_sd}, {target!r}")  # fmt: skip
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4))
    y = x @ rng.normal(size=(4, 1)) + 0.5 if target == "linear" else x[:, :1] * x[:, 1:2]
    # Every weight and bias 0 is what Flax's zeros initializer gives: the state is filled from NumPy, not
    # initialised (which would compile a fill per parameter shape).
    abstract = nnx.eval_shape(lambda: TwoLayerMLP(4, hidden, 1, activation=activation,
                                                  kernel_init=jax.nn.initializers.zeros,
                                                  bias_init=jax.nn.initializers.zeros, rngs=nnx.Rngs(0),
                                                  param_dtype=jnp.float64))
    graph, params, rest = nnx.split(abstract, nnx.Param, ...)
    params = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), params)
    if hidden_bias_sd:
        params["hidden"]["bias"][...] = np.random.default_rng(5).normal(0, hidden_bias_sd, hidden)
    if random_kernels:
        draw = np.random.default_rng(6)
        for layer, fan_in in (("hidden", 4), ("out", hidden)):
            shape = params[layer]["kernel"][...].shape
            params[layer]["kernel"][...] = draw.normal(0, 1 / np.sqrt(fan_in), shape)
    params, losses = _sgd_run(graph, steps, params, rest, x, y, np.float64(lr))
    return nnx.merge(graph, params, rest), [float(v) for v in np.asarray(losses)], y


@functools.partial(jax.jit, static_argnums=(0, 1))
def _sgd_run(graph, steps: int, params, rest, x, y, lr):
    """``steps`` steps of ``optax.sgd(lr)`` on the mean squared error of ``merge(graph, params, rest)``: the
    final parameters and the loss before each step. One compile per (model structure, steps): the learning
    rate is traced."""
    tx = optax.sgd(lr)

    def loss(p):
        return jnp.mean((nnx.merge(graph, p, rest)(x) - y) ** 2)

    def step(carry, _):
        p, opt_state = carry
        value, grads = jax.value_and_grad(loss)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), value

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return params, losses


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "init"]) or main(["check", "init"]))
