"""Initialisation: Xavier/Glorot and Kaiming/He derived from variance propagation, checked against
``jax.nn.initializers``, measured through a 50-layer Flax MLP, and zero initialisation made precise.

Seeds: S001-15, S002-20, S002-19, S001-37. Run ``python -m derivations.init`` to print the derivations
and check the claims.
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

from derivations.claims import Evidence, claim, derivation
from derivations.harness import verdict
from models.mlp_stacks import TwoLayerMLP, layer_profile, stacked_kernels

fan_in, fan_out = sp.symbols("n_in n_out", positive=True)
sigma_w, sigma_x = sp.symbols("sigma_w sigma_x", positive=True)
s2 = sp.Symbol("sigma_w^2", positive=True)  # the weight variance being solved for

# Monte-Carlo checks accept |measured - derived| <= Z_MAX standard errors.
Z_MAX = 4.5
WIDTH, DEPTH, BATCH = 64, 50, 256


# --- derivations -------------------------------------------------------------------------------------


@derivation
@functools.cache
def forward_variance() -> sp.Eq:
    """One unit y = sum_i w_i x_i with independent zero-mean w, x: Var(y) = n_in Var(w) Var(x)
    (the per-term variance from sympy.stats, summed over n_in independent terms) (S001-15)."""
    w, x = stats.Normal("w", 0, sigma_w), stats.Normal("x", 0, sigma_x)
    return sp.Eq(sp.Symbol("Var(y)"), fan_in * stats.variance(w * x), evaluate=False)


def _layer_gain() -> sp.Expr:
    """Var(y) / Var(x) for a linear layer, from :func:`forward_variance`."""
    return forward_variance().rhs.subs(sigma_w, sp.sqrt(s2)) / sigma_x**2


@derivation
@functools.cache
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
@functools.cache
def xavier_uniform_limit() -> sp.Eq:
    """Xavier uniform: U(-a, a) has variance a^2/3 (sympy.stats), so a = sqrt(6 / (n_in + n_out))."""
    a = sp.Symbol("a", positive=True)
    equation = sp.Eq(stats.variance(stats.Uniform("u", -a, a)), xavier_variance()[2].rhs)
    return sp.Eq(a, sp.solve(equation, a)[0], evaluate=False)


@derivation
@functools.cache
def relu_second_moment() -> sp.Eq:
    """For a pre-activation z ~ N(0, sigma^2), E(relu(z)^2) = sigma^2 / 2: ReLU keeps half the energy."""
    sigma, z = sp.Symbol("sigma", positive=True), sp.Symbol("z", real=True)
    value = stats.E(sp.Max(stats.Normal("z", 0, sigma), 0) ** 2)
    return sp.Eq(sp.Function("E")(sp.Max(z, 0) ** 2), value, evaluate=False)


@derivation
@functools.cache
def kaiming_variance() -> sp.Eq:
    """Kaiming/He for ReLU: Var(z_next) = n_in Var(W) E(relu(z)^2) = n_in Var(W) Var(z) / 2, kept
    constant when Var(W) = 2 / n_in (S001-15, S002-20)."""
    half = relu_second_moment().rhs / sp.Symbol("sigma", positive=True) ** 2
    return sp.Eq(sp.Symbol("Var(W)_He"), sp.solve(sp.Eq(_layer_gain() * half, 1), s2)[0], evaluate=False)


@derivation
@functools.cache
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
    for i, shape in enumerate(shapes):
        n_in, n_out = fans(shape)
        repeats = -(-min_draws // math.prod(shape))
        keys = jax.random.split(jax.random.key(seed + i), repeats)
        weights = np.asarray(_drawer(init, tuple(shape))(keys)).ravel()
        var = float(np.var(weights, ddof=1))
        centred = weights - weights.mean()
        se = float(np.sqrt((np.mean(centred**4) - var**2) / weights.size))
        want = float(predicted(n_in, n_out))
        z = abs(var - want) / se
        ok = ok and z <= Z_MAX
        rows[str(tuple(shape))] = {"fan_in": n_in, "fan_out": n_out, "variance": var, "derived": want,
                                   "standard_error": se, "z": z, "draws": int(weights.size)}
    return ok, rows


@functools.cache
def _drawer(init: Callable[..., jax.Array], shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    """One compiled draw of ``init`` per (initializer, shape), vectorised over keys."""
    return jax.jit(jax.vmap(lambda key: init(key, shape, jnp.float64)))


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

# name -> (activation, initializer, weight variance or None where not a plain normal of known variance)
PROFILES: dict[str, tuple[str, Callable[..., jax.Array], float]] = {
    "ReLU, He (2/n)": ("relu", jax.nn.initializers.he_normal(), 2 / WIDTH),
    "ReLU, Xavier (1/n)": ("relu", jax.nn.initializers.glorot_normal(), 1 / WIDTH),
    "ReLU, N(0, 1)": ("relu", jax.nn.initializers.normal(1.0), 1.0),
    "ReLU, N(0, 0.01^2)": ("relu", jax.nn.initializers.normal(0.01), 1e-4),
    "tanh, Xavier (1/n)": ("tanh", jax.nn.initializers.glorot_normal(), 1 / WIDTH),
}


@functools.cache
def variance_profiles() -> dict[str, dict[str, np.ndarray]]:
    """Each configuration of PROFILES through a DEPTH-layer, WIDTH-wide MLP at initialisation: the variance
    of every layer's output and the norm of the gradient reaching it (fixed seeds, float64)."""
    x = jax.random.normal(jax.random.key(0), (BATCH, WIDTH), jnp.float64)
    readout = jax.random.normal(jax.random.key(1), (WIDTH,), jnp.float64)
    out = {}
    for name, (activation, init, _) in PROFILES.items():
        kernels = stacked_kernels(init, jax.random.key(2), DEPTH, WIDTH, jnp.float64)
        variance, grad_norm = layer_profile(x, kernels, jnp.zeros((DEPTH, WIDTH)), readout, activation=activation)
        out[name] = {"variance": np.asarray(variance), "grad_norm": np.asarray(grad_norm)}
    return out


# --- zero initialisation -------------------------------------------------------------------------------


def zero_init_run(activation: str, steps: int = 20, lr: float = 0.1) -> tuple[TwoLayerMLP, list[float], jax.Array]:
    """A 4-8-1 MLP with every weight and bias 0, trained by SGD on a fixed regression problem; returns the
    trained model, the loss per step and the targets."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(64, 4)))
    y = jnp.asarray(x @ rng.normal(size=(4, 1)) + 0.5)
    model = TwoLayerMLP(4, 8, 1, activation=activation, kernel_init=jax.nn.initializers.zeros,
                        bias_init=jax.nn.initializers.zeros, rngs=nnx.Rngs(0), param_dtype=jnp.float64)

    def loss(m: TwoLayerMLP) -> jax.Array:
        return jnp.mean((m(x) - y) ** 2)

    optimizer = nnx.Optimizer(model, optax.sgd(lr), wrt=nnx.Param)

    @nnx.jit
    def step(m: TwoLayerMLP, opt: nnx.Optimizer) -> jax.Array:
        value, grads = nnx.value_and_grad(loss)(m)
        opt.update(m, grads)
        return value

    losses = [float(step(model, optimizer)) for _ in range(steps)]
    return model, losses, y


# --- claims ------------------------------------------------------------------------------------------


@claim(
    "init/xavier-variance-is-two-over-fan-in-plus-fan-out",
    sources=["S001-15"],
    says="Xavier initialisation: Var(W) = 2/(n_in + n_out), the compromise between keeping the forward-pass "
    "variance (which needs 1/n_in) and the backward-pass variance (which needs 1/n_out).",
    expected="holds",
    tolerance=f"Monte-Carlo: each empirical variance within {Z_MAX} standard errors of the derived one",
)
def _xavier() -> Evidence:
    derived = xavier_variance()[2].rhs
    limit = xavier_uniform_limit().rhs
    ok_n, rows_n = initializer_variance_check(jax.nn.initializers.glorot_normal(), _as_function(derived),
                                              DENSE_AND_CONV)
    ok_u, rows_u = initializer_variance_check(jax.nn.initializers.glorot_uniform(), _as_function(limit**2 / 3),
                                              DENSE_AND_CONV, seed=10)
    return Evidence(
        verdict=verdict(ok_n and ok_u, "holds"),
        method="measurement",
        summary=f"derived Var(W) = {derived}; glorot_normal: {_summary(rows_n)}; glorot_uniform (a = {limit}): "
        f"max z {max(r['z'] for r in rows_u.values()):.1f}",
        samples=sum(r["draws"] for r in (*rows_n.values(), *rows_u.values())),
        dtype="float64",
        details={"glorot_normal": rows_n, "glorot_uniform": rows_u},
    )


@claim(
    "init/kaiming-variance-is-two-over-fan-in-for-relu",
    sources=["S001-15", "S002-20"],
    says="Kaiming initialisation for ReLU: Var(W) = 2/n_in.",
    expected="holds",
    tolerance=f"Monte-Carlo: each empirical variance within {Z_MAX} standard errors of the derived one",
)
def _kaiming() -> Evidence:
    derived = kaiming_variance().rhs
    ok_n, rows_n = initializer_variance_check(jax.nn.initializers.he_normal(), _as_function(derived), DENSE_AND_CONV,
                                              seed=20)
    ok_u, rows_u = initializer_variance_check(jax.nn.initializers.he_uniform(), _as_function(derived), DENSE_AND_CONV,
                                              seed=30)
    return Evidence(
        verdict=verdict(ok_n and ok_u and relu_second_moment().rhs == sp.Symbol("sigma", positive=True) ** 2 / 2,
                        "holds"),
        method="measurement",
        summary=f"E[relu(z)^2] = sigma^2/2 (sympy.stats) gives Var(W) = {derived}; he_normal: {_summary(rows_n)}; "
        f"he_uniform: max z {max(r['z'] for r in rows_u.values()):.1f}",
        samples=sum(r["draws"] for r in (*rows_n.values(), *rows_u.values())),
        dtype="float64",
        details={"he_normal": rows_n, "he_uniform": rows_u},
    )


@claim(
    "init/matched-initialisation-keeps-activations-from-vanishing-or-exploding",
    sources=["S002-20"],
    says="Initialisation exists to stop the layers' activations from exploding or vanishing in the forward pass.",
    expected="holds",
    tolerance=f"the measured per-layer log growth of the variance (mean of {DEPTH - 1} layer ratios) within "
    f"{Z_MAX} standard errors of log(n sigma_w^2 / 2); 'stays' means within a factor 4 over {DEPTH} layers",
)
def _depth() -> Evidence:
    profiles = variance_profiles()
    factor = relu_layer_factor().rhs
    rows, law_ok = {}, True
    for name, (activation, _, variance) in PROFILES.items():
        v = profiles[name]["variance"]
        row = {"first": float(v[0]), "last": float(v[-1]), "ratio": float(v[-1] / v[0])}
        if activation == "relu":
            logs = np.diff(np.log(v))
            predicted = float(factor.subs({sigma_w: sp.sqrt(variance), fan_in: WIDTH}))
            z_score = abs(logs.mean() - np.log(predicted)) / (logs.std(ddof=1) / np.sqrt(logs.size))
            row.update(measured_factor=float(np.exp(logs.mean())), derived_factor=predicted, z=float(z_score))
            law_ok = law_ok and z_score <= Z_MAX
        rows[name] = row
    stays = 0.25 <= rows["ReLU, He (2/n)"]["ratio"] <= 4
    breaks = (rows["ReLU, Xavier (1/n)"]["ratio"] < 1e-10 and rows["ReLU, N(0, 0.01^2)"]["ratio"] < 1e-10
              and rows["ReLU, N(0, 1)"]["ratio"] > 1e10)
    return Evidence(
        verdict=verdict(law_ok and stays and breaks, "holds"),
        method="measurement",
        summary=f"{DEPTH}-layer, width-{WIDTH} MLP, variance of layer {DEPTH}'s output / layer 1's: "
        + "; ".join(f"{n}: {r['ratio']:.2e}" + _per_layer_law(r) for n, r in rows.items()),
        samples=BATCH * WIDTH * DEPTH,
        dtype="float64",
        details=rows,
    )


@claim(
    "init/zero-init-relu-and-tanh-learn-only-the-output-bias",
    sources=["S001-37", "S002-19"],
    says="If all weights are initialised to zero with ReLU there will be no learning.",
    expected="qualified",
    correction="Every hidden weight and bias and every output weight gets exactly zero gradient forever (the "
    "output weights are 0, so no error reaches the hidden layer, and the hidden outputs are 0, so the "
    "output weights get no gradient); the same holds for tanh. But the output bias learns: the network "
    "converges to the constant mean of the targets.",
)
def _zero_relu_tanh() -> Evidence:
    rows, ok = {}, True
    for activation in ("relu", "tanh"):
        model, losses, y = zero_init_run(activation)
        frozen = [model.hidden.kernel[...], model.hidden.bias[...], model.out.kernel[...]]
        all_zero = all(bool(jnp.all(p == 0.0)) for p in frozen)
        # MSE's gradient in the bias is 2 (b - mean y), so SGD gives b_t = mean(y) (1 - (1 - 2 lr)^t).
        expected_bias = float(jnp.mean(y)) * (1 - (1 - 2 * 0.1) ** len(losses))
        bias = float(model.out.bias[...][0])
        bias_ok = abs(bias - expected_bias) <= 1e-10 * abs(expected_bias)
        ok = ok and all_zero and bias_ok and losses[-1] < losses[0]
        rows[activation] = {"frozen_all_zero": all_zero, "output_bias": bias, "closed_form_bias": expected_bias,
                            "loss_first": losses[0], "loss_last": losses[-1]}
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary="after 20 SGD steps from all-zero init: " + "; ".join(
            f"{a}: hidden W, b and output W all exactly 0: {r['frozen_all_zero']}, output bias {r['output_bias']:.6f} "
            f"= closed form {r['closed_form_bias']:.6f}, loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}"
            for a, r in rows.items()),
        max_abs_err=max(abs(r["output_bias"] - r["closed_form_bias"]) for r in rows.values()),
        samples=64,
        dtype="float64",
        details=rows,
    )


@claim(
    "init/zero-init-sigmoid-trains-but-hidden-units-stay-identical",
    sources=["S002-19"],
    says="A network initialised with zero weights cannot train: every input gives the same result and the "
    "network cannot update.",
    expected="refuted",
    correction="With sigmoid hidden units (sigmoid(0) = 1/2 != 0) the weights do update, the loss falls and the "
    "outputs come to depend on the input. What fails is symmetry breaking: every hidden unit receives the "
    "same gradient, so all hidden units stay identical forever and the hidden layer acts as one unit.",
)
def _zero_sigmoid() -> Evidence:
    model, losses, _ = zero_init_run("sigmoid")
    kernel = np.asarray(model.hidden.kernel[...])
    spread = float(np.max(np.abs(kernel - kernel[:, :1])))
    out_spread = float(np.ptp(np.asarray(model.out.kernel[...])))
    moved = float(np.max(np.abs(kernel)))
    x = jnp.asarray(np.random.default_rng(4).normal(size=(5, 4)))
    outputs = np.asarray(model(x))[:, 0]
    depends_on_input = float(np.ptp(outputs)) > 1e-6
    identical = spread == 0.0 and out_spread == 0.0
    note_holds = moved == 0.0 or not depends_on_input
    return Evidence(
        verdict=verdict(note_holds, "holds", "refuted" if identical and losses[-1] < losses[0] else "qualified"),
        method="autodiff",
        summary=f"sigmoid, 20 SGD steps from all-zero init: hidden weights moved (max |W| = {moved:.3e}), loss "
        f"{losses[0]:.3f} -> {losses[-1]:.3f}, outputs on 5 inputs span {np.ptp(outputs):.3e}; yet all 8 hidden "
        f"units' weight columns differ by at most {spread:g} and the output weights by {out_spread:g}",
        max_abs_err=spread,
        samples=64,
        dtype="float64",
        details={"max_abs_hidden_weight": moved, "column_spread": spread, "outputs": outputs.tolist(),
                 "losses": losses},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "init"]) or main(["check", "init"]))
