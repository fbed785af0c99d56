"""Normalization: BatchNorm's backward derived and checked against autodiff, what γ and β are, eval mode,
and which axes BN, LN, IN and GN normalize over.

Seeds: S000-19, S000-20, S000-21, S001-09, S001-16, S001-32, S002-48, S003-02. This module is the
chapter's library (derivations and measuring helpers); its claims are in ``derivations/ledger/normalization.py``.
The closed-form backward's
numeric code is ``models.normalization.batchnorm_backward`` (it is the backward of the custom-VJP
``models.normalization.BatchNorm``); this chapter derives it in SymPy, proves the two agree, and
re-exports it here as ``derivations.normalization.batchnorm_backward``. Run
``python -m derivations.normalization`` to print the derivations and check the claims.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations import bridge
from derivations.bridge import instantiate, to_jax
from derivations.claims import derivation
from derivations.compare import compare
from models.normalization import BatchNorm, batch_statistics, batchnorm_backward, normalize

__all__ = ["batchnorm_backward"]

i, j = sp.symbols("i j", integer=True, positive=True)
N = sp.Symbol("N", integer=True, positive=True)
x = sp.IndexedBase("x", real=True)
dy = sp.IndexedBase(r"\partial{y}", real=True)  # dL/dy_j, the upstream gradient
x_hat = sp.IndexedBase(r"\hat{x}", real=True)
gamma, beta, mu = sp.symbols("gamma beta mu", real=True)
eps = sp.Symbol("epsilon", positive=True)
sigma = sp.Symbol("sigma", positive=True)  # sqrt(variance + epsilon)
variance = sp.Symbol("sigma_B^2", nonnegative=True)  # the biased batch variance

EPS = 1e-5  # nnx.BatchNorm's default epsilon, used by every numeric check here
DENSE_SHAPES = ((16, 3), (7, 5), (64, 2))
CONV_SHAPES = ((4, 5, 6, 3), (2, 3, 3, 4), (8, 4, 4, 2))


def _over_batch(expr: sp.Expr) -> sp.Sum:
    return sp.Sum(expr, (j, 1, N))


def _d(name: str) -> sp.Symbol:
    return sp.Symbol(rf"\frac{{\partial L}}{{\partial {name}}}")


# --- derivations -------------------------------------------------------------------------------------


@derivation
def batchnorm_forward() -> list[sp.Eq]:
    """BatchNorm in training mode (S001-09): batch mean, biased batch variance, x_hat, y = gamma x_hat + beta."""
    return [
        sp.Eq(mu, _over_batch(x[j]) / N, evaluate=False),
        sp.Eq(variance, _over_batch((x[j] - mu) ** 2) / N, evaluate=False),
        sp.Eq(sigma, sp.sqrt(variance + eps), evaluate=False),
        sp.Eq(x_hat[i], (x[i] - mu) / sigma, evaluate=False),
        sp.Eq(sp.Symbol("y_i"), gamma * x_hat[i] + beta, evaluate=False),
    ]


def backward_closed_form() -> dict[str, sp.Expr]:
    """The closed forms (general N): dL/dbeta, dL/dgamma and dL/dx_i, in x_hat, sigma and dy."""
    return {
        r"\beta": _over_batch(dy[j]),
        r"\gamma": _over_batch(dy[j] * x_hat[j]),
        "x_i": gamma / (N * sigma) * (N * dy[i] - _over_batch(dy[j]) - x_hat[i] * _over_batch(dy[j] * x_hat[j])),
    }


@derivation
def batchnorm_backward_closed_form() -> list[sp.Eq]:
    """BatchNorm's backward for a batch of N (S000-20): dgamma and dbeta sum over the batch, dx has three terms."""
    return [sp.Eq(_d(name), expr, evaluate=False) for name, expr in backward_closed_form().items()]


def _normalized_batch(values, epsilon: sp.Expr = eps) -> tuple[sp.Expr, list[sp.Expr]]:
    """``batchnorm_forward``'s definitions at N = len(values): (sigma, [x_hat_1, ..., x_hat_N])."""
    n = len(values)
    at_n = {x[k + 1]: values[k] for k in range(n)}
    forward = {eq.lhs: eq.rhs for eq in batchnorm_forward()}
    mean = forward[mu].subs(N, n).doit().subs(at_n)
    var = forward[variance].subs(N, n).doit().subs(at_n).subs(mu, mean)
    std = forward[sigma].subs({variance: var, eps: epsilon})
    return std, [forward[x_hat[i]].subs(i, k + 1).subs(at_n).subs({mu: mean, sigma: std}) for k in range(n)]


@bridge.cache
def _concrete_batch(n: int) -> dict:
    """The forward pass for a symbolic batch of ``n`` (from ``batchnorm_forward``'s definitions), the
    loss L = sum dy_k y_k, its exact derivatives by ``sympy.diff``, and the closed forms at N = n."""
    xs = sp.symbols(f"x1:{n + 1}", real=True)
    dys = sp.symbols(f"dy1:{n + 1}", real=True)
    # The closed forms are in x_hat, dy and sigma only (no x): dy_k and x_hat_k (below) are what they take.
    at_n = {dy[k + 1]: dys[k] for k in range(n)}
    std, normalized = _normalized_batch(xs)
    loss = sum(d * (gamma * h + beta) for d, h in zip(dys, normalized, strict=True))
    exact = {"beta": sp.diff(loss, beta), "gamma": sp.diff(loss, gamma)}
    exact |= {f"x{k + 1}": sp.diff(loss, xs[k]) for k in range(n)}
    closed_at_n = {name.strip("\\"): expr.subs(N, n).doit() for name, expr in backward_closed_form().items()}
    hats = {x_hat[k + 1]: normalized[k] for k in range(n)}
    closed = {name: closed_at_n[name].subs(at_n).subs(hats).subs(sigma, std) for name in ("beta", "gamma")}
    for k in range(n):
        closed[f"x{k + 1}"] = closed_at_n["x_i"].subs(i, k + 1).doit().subs(at_n).subs(hats).subs(sigma, std)
    return {"xs": xs, "dys": dys, "exact": exact, "closed": closed}


@derivation
def gamma_beta_restore_the_input() -> sp.Eq:
    """With gamma = sqrt(sigma_B^2 + epsilon) and beta = mu, BatchNorm returns its input (S000-19)."""
    # Subs keeps the substitution on the page: substituted at once, the left side would cancel to x_i = x_i.
    bn = gamma * (x[i] - mu) / sp.sqrt(variance + eps) + beta
    restored = sp.Subs(bn, (gamma, beta), (sp.sqrt(variance + eps), mu))
    return sp.Eq(restored, sp.simplify(restored.doit()), evaluate=False)


x_i = sp.Symbol("x_i", real=True)
sigma_1, sigma_2 = sp.symbols("sigma_1 sigma_2", positive=True)
mu_1, mu_2 = sp.symbols("mu_1 mu_2", real=True)


@derivation
def restore_on_another_batch() -> list[sp.Eq]:
    """gamma = sigma_1, beta = mu_1 fitted to one batch, then BN in training mode on another batch (mean mu_2,
    sigma_2): the output and its residual y_i - x_i, zero for every x_i only when mu_2 = mu_1, sigma_2 = sigma_1."""
    forward = {eq.lhs: eq.rhs for eq in batchnorm_forward()}
    y = forward[sp.Symbol("y_i")].subs(x_hat[i], forward[x_hat[i]]).subs(x[i], x_i)
    y = y.subs({gamma: sigma_1, beta: mu_1, mu: mu_2, sigma: sigma_2})
    centred = sp.Dummy()
    residual = sp.collect(sp.expand((y - x_i).subs(x_i, centred + mu_2)), centred).subs(centred, x_i - mu_2)
    return [sp.Eq(sp.Symbol("y_i"), y, evaluate=False), sp.Eq(sp.Symbol("y_{i}-x_{i}"), residual, evaluate=False)]


def expected_batch_variance(n: int) -> sp.Expr:
    """E[biased variance of a batch of n i.i.d. draws of variance s^2]: expand the quadratic form and replace
    each monomial by its moment (E[x_k^2] = s^2, E[x_k x_l] = 0; the variance is shift-invariant, so mean 0)."""
    s2 = sp.Symbol("s^2", positive=True)
    xs = sp.symbols(f"x1:{n + 1}", real=True)
    mean = sum(xs) / n
    poly = sp.Poly(sp.expand(sum((v - mean) ** 2 for v in xs) / n), *xs)
    return sum(c * s2 for powers, c in poly.terms() if sorted(powers)[-1] == 2 and sum(powers) == 2)


@derivation
def batch_variance_is_biased() -> list[sp.Eq]:
    """The batch variance (divide by N) underestimates the variance: E = (N - 1)/N s^2, for N = 2 ... 5."""
    s2 = sp.Symbol("s^2", positive=True)
    return [sp.Eq(sp.Symbol(rf"E[\sigma_{{B,N={n}}}^2]"), sp.factor(expected_batch_variance(n) / s2) * s2,
                  evaluate=False) for n in (2, 3, 4, 5)]  # fmt: skip


@derivation
def constant_feature_gradient() -> sp.Eq:
    """A constant feature (sigma_B^2 = 0, so x_hat = 0 and sigma = sqrt(epsilon)): dx is gamma/sqrt(epsilon)
    times dy minus its batch mean, so its 2-norm is at most gamma/sqrt(epsilon) times that of dy."""
    dx = backward_closed_form()["x_i"].replace(lambda e: isinstance(e, sp.Indexed) and e.base == x_hat,
                                               lambda e: sp.S.Zero)  # fmt: skip
    return sp.Eq(_d("x_i"), dx.subs(sigma, sp.sqrt(eps)), evaluate=False)


@derivation
def batchnorm_of_one_and_two() -> list[sp.Eq]:
    """Batches of one and two (S003-02): x_hat = 0 whatever x for N = 1; for N = 2, x_hat_1 is the sign of
    x_1 - x_2 up to a factor 1/sqrt(1 + 4 epsilon/(x_1 - x_2)^2)."""
    one = _normalized_batch(sp.symbols("x1:2", real=True))[1][0]
    two = _normalized_batch(sp.symbols("x1:3", real=True))[1][0]
    return [sp.Eq(sp.Symbol(r"\hat{x}_1^{(N=1)}"), sp.simplify(one), evaluate=False),
            sp.Eq(sp.Symbol(r"\hat{x}_1^{(N=2)}"), sp.simplify(two), evaluate=False)]  # fmt: skip


scale = sp.Symbol("a", positive=True)


@derivation
def batchnorm_is_scale_invariant() -> list[sp.Eq]:
    """Without epsilon, scaling a feature by a > 0 scales its mean by a and its variance by a^2 and leaves x_hat
    unchanged, so BN(aWx) = BN(Wx); then L(aW) = L(W), and the chain rule gives the gradient at aW as the
    gradient at W divided by a."""
    forward = {eq.lhs: eq.rhs for eq in batchnorm_forward()}
    plain = forward[x_hat[i]].subs(sigma, forward[sigma]).subs(eps, 0)
    scaled = plain.subs({x[i]: scale * x[i], mu: scale * mu, variance: scale**2 * variance})
    at_aw = sp.Symbol(r"\left.\frac{\partial L}{\partial W}\right|_{aW}")
    at_w = sp.Symbol(r"\left.\frac{\partial L}{\partial W}\right|_{W}")
    return [sp.Eq(scaled, plain, evaluate=False), sp.Eq(at_aw, at_w / scale, evaluate=False)]


# Which axes of an NHWC input each method averages over (GN: of the input reshaped to N, H, W, G, C/G).
NORMALIZATION_AXES = {
    "BatchNorm": ("N, H, W", "one mean/variance per channel, shared by the batch"),
    "LayerNorm": ("H, W, C", "one per example"),
    "InstanceNorm": ("H, W", "one per example and channel"),
    "GroupNorm (G groups)": ("H, W, C/G", "one per example and group of C/G channels"),
}


# --- shared numeric helpers --------------------------------------------------------------------------


UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)


def variance_condition(x_in: jax.Array, axes: tuple[int, ...], epsilon: float) -> float:
    """max over features of max x^2 / (Var[x] + epsilon): how much the one-pass variance E[x^2] - E[x]^2
    (Flax's and ``models.normalization``'s) amplifies round-off. Its absolute error is a few ulps of x^2,
    and x_hat, y and dx move by (that error)/(2 (Var + epsilon)) relative: well conditioned for spread-out
    features, up to x^2/epsilon for a constant one (BatchNorm of a batch of one or two nearly equal values)."""
    return float(_variance_condition(x_in, tuple(axes), float(epsilon)))


@functools.partial(jax.jit, static_argnums=(1,))  # epsilon traced: one compile per shape and axes
def _variance_condition(x_in, axes, epsilon):
    _, var = batch_statistics(x_in, axes)
    peak = jnp.max(jnp.square(x_in), axis=axes, keepdims=True)
    return jnp.max(peak / (var + epsilon))


def conditioned_rtol(rtol: float, x_in: jax.Array, axes: tuple[int, ...], epsilon: float, ulps: float) -> float:
    """``rtol`` plus ``ulps`` units of round-off amplified by ``variance_condition``: the tolerance of a
    float64 comparison whose inputs go through the one-pass batch variance. The comparisons use it as an
    elementwise rtol and, times the largest reference value, as an atol (the amplified round-off is absolute
    where an output crosses 0, as dx, whose entries sum to 0, does)."""
    return rtol + ulps * UNIT_ROUNDOFF * variance_condition(x_in, axes, epsilon)


def constant_feature_tolerance(
    level: float, gamma_value: float, upstream: jax.Array, epsilon: float, rtol: float, ulps: float
) -> tuple[float, float]:
    """(rtol, atol) for dx of a constant feature of value ``level`` against (gamma/sqrt(epsilon))(dy - mean dy).

    Two round-offs are amplified: the one-pass variance of a constant is not exactly 0 but a few ulps of
    level^2, and dx moves by that over 2 epsilon relative (rtol term ``ulps u level^2/epsilon``); and
    dy - mean dy cancels where dy is close to its mean, an absolute error of a few ulps of |dy| multiplied by
    |gamma|/sqrt(epsilon), about 316 |gamma| at epsilon = 1e-5 (atol term)."""
    u = UNIT_ROUNDOFF
    scale = abs(gamma_value) / np.sqrt(epsilon)
    return (rtol + ulps * u * level**2 / epsilon, ulps * u * scale * float(np.max(np.abs(np.asarray(upstream)))))


def flax_batchnorm(features: int, **kwargs) -> nnx.BatchNorm:
    """``nnx.BatchNorm`` with float64 parameters and float64 running statistics (Flax keeps the
    statistics in float32 whatever the parameter dtype; float64 checks need float64 throughout)."""
    module = nnx.BatchNorm(features, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0), **kwargs)
    module.mean = nnx.BatchStat(jax.device_put(np.zeros(features)))  # device_put: no compiled fill per size
    module.var = nnx.BatchStat(jax.device_put(np.ones(features)))
    return module


@nnx.jit
def apply_module(module: nnx.Module, inputs: jax.Array) -> jax.Array:
    """``module(inputs)``, compiled once per module structure and input shape (an eager Flax module compiles
    every primitive of its forward pass separately for every new shape); state updates (BatchNorm's running
    averages in training mode) are written back to ``module`` as in an eager call."""
    return module(inputs)


def module_vjp(module: nnx.Module, inputs: jax.Array, upstream: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``jax.vjp`` of a normalization module (training mode) at ``inputs``: (dx, dscale, dbias)."""
    graph, params, rest = nnx.split(module, nnx.Param, ...)
    dx, dparams = _jitted_vjp(graph, inputs, params, rest, upstream)
    return dx, dparams["scale"][...], dparams["bias"][...]


@functools.partial(jax.jit, static_argnums=0)
def _jitted_vjp(graph, inputs, params, rest, upstream):
    def apply(v, p):
        return nnx.merge(graph, p, rest, copy=True)(v)

    return jax.vjp(apply, inputs, params)[1](upstream)


def _random_case(shape: tuple[int, ...], seed: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    c = shape[-1]
    # device_put, not jnp.asarray: the same float64 arrays without a compiled copy program per shape.
    return (jax.device_put(rng.normal(1.5, 2.0, shape)), jax.device_put(rng.normal(size=c) * 2),
            jax.device_put(rng.normal(size=c)), jax.device_put(rng.normal(size=shape)))  # fmt: skip


def autodiff_reference(module_type, x_in, g, b, upstream, epsilon: float = EPS):
    """``jax.vjp`` of a training-mode BatchNorm module (``nnx.BatchNorm`` or the custom-VJP one) with scale
    ``g`` and bias ``b``: (dx, dscale, dbias)."""
    module = (
        flax_batchnorm(x_in.shape[-1], epsilon=epsilon)
        if module_type is nnx.BatchNorm
        else module_type(x_in.shape[-1], epsilon=epsilon, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    )
    module.scale[...], module.bias[...] = g, b
    return module_vjp(module, x_in, upstream)


# --- comparison helpers ------------------------------------------------------------------------------


def closed_form_vs_models(
    n: int = 4, points: int = 64, seed: int = 3, *, epsilon: float = EPS, rtol: float = 1e-10, ulps: float = 0.0
):
    """The SymPy closed form at N = n, lambdified, against ``models.normalization.batchnorm_backward``
    at ``points`` random batches (each point is one batch of n; its gamma is the feature)."""
    batch = _concrete_batch(n)
    symbols = (*batch["xs"], *batch["dys"], gamma, eps)
    names = [f"x{k + 1}" for k in range(n)] + ["gamma", "beta"]
    derived = [to_jax(batch["closed"][name], symbols) for name in names]
    rng = np.random.default_rng(seed)
    xs, dys = rng.normal(0.5, 2.0, (points, n)), rng.normal(size=(points, n))
    g = rng.normal(size=points) * 2
    inputs = [jax.device_put(v) for v in (*xs.T, *dys.T, g, np.full(points, epsilon))]

    # Each side one compiled program (the lambdified formulas and the model inlined into it).
    @jax.jit
    def symbolic(*cols):
        return jnp.concatenate([jnp.stack([f(*cols) for f in derived[:n]], axis=1),
                                jnp.stack([f(*cols) for f in derived[n:]], axis=1)], axis=1)  # fmt: skip

    @jax.jit
    def numeric(*cols):
        dx, dg, db = batchnorm_backward(jnp.stack(cols[:n], 1), cols[-2], jnp.stack(cols[n : 2 * n], 1), epsilon, (1,))
        return jnp.concatenate([dx, dg[:, None], db[:, None]], axis=1)

    # Each batch (point) is compared with its own conditioned tolerance: one nearly equal pair would otherwise set
    # the tolerance, relative and absolute, of every other point (at N = 2 its absolute part would be a few percent
    # of a typical dx).
    got, reference = np.asarray(symbolic(*inputs)), np.asarray(numeric(*inputs))
    per_point = []
    for i in range(points):
        tol = conditioned_rtol(rtol, jax.device_put(xs[i][:, None]), (0,), epsilon, ulps)
        per_point.append(compare(lambda i=i: got[i], lambda i=i: reference[i], [], rtol=tol,
                                 atol=(tol - rtol) * float(np.max(np.abs(reference[i])))))  # fmt: skip
    worst = max(per_point, key=lambda c: c.max_rel_err)
    return dataclasses.replace(worst, samples=points, ok=all(c.ok for c in per_point))


@bridge.cache
def constant_feature_dx(n: int):
    """``constant_feature_gradient`` at N = n, lambdified and compiled as one program: (dy of one feature,
    gamma, epsilon) -> dx; elementwise in the features, so dy of shape (n, F) with F gammas gives all F at once."""
    dys = sp.symbols(f"dy1:{n + 1}", real=True)
    general = instantiate(constant_feature_gradient(), {N: n})
    per_i = [general.subs(i, k + 1).subs({dy[m + 1]: dys[m] for m in range(n)}) for k in range(n)]
    compiled = to_jax(per_i, (*dys, gamma, eps))

    @jax.jit
    def dx(upstream: jax.Array, g, epsilon: float) -> jax.Array:
        return jnp.stack(compiled(*upstream, g, epsilon))

    return dx


def backward_vs_autodiff(
    backward,
    shapes,
    seed: int = 0,
    module_type=nnx.BatchNorm,
    *,
    epsilon: float = EPS,
    rtol: float = 1e-10,
    ulps: float = 0.0,
):
    """``backward(x, gamma, dy, eps, axes)`` against ``jax.vjp`` of a Flax BatchNorm module in training
    mode, for each shape (statistics over every axis but the last), to ``rtol`` plus ``ulps`` round-offs
    amplified by the batch's ``variance_condition``."""
    results = {}
    for k, shape in enumerate(shapes):
        x_in, g, b, upstream = _random_case(shape, seed + k)
        axes = tuple(range(len(shape) - 1))
        want, got, condition, sizes = _backward_case(backward, module_type, float(epsilon), axes)(x_in, g, b, upstream)
        tol = rtol + ulps * UNIT_ROUNDOFF * float(condition)
        results[shape] = [
            compare(lambda a=a: a, lambda w=w: w, [], rtol=tol, atol=(tol - rtol) * float(size))
            for a, w, size in zip(got, want, sizes, strict=True)
        ]
    return results


@functools.cache
def _backward_case(backward, module_type, epsilon: float, axes: tuple[int, ...]):
    """One compiled program per shape for ``backward_vs_autodiff``: the autodiff reference, ``backward``, the
    variance condition and the gradient magnitudes (separately, each is a compile of its own per shape)."""

    def case(x_in, g, b, upstream):
        want = autodiff_reference(module_type, x_in, g, b, upstream, epsilon)
        got = backward(x_in, g, upstream, epsilon, axes)
        return (want, got, _variance_condition(x_in, axes, epsilon),
                _gradient_magnitudes(x_in, g, upstream, epsilon, axes))  # fmt: skip

    return jax.jit(case)


def gradient_magnitudes(x_in, g, upstream, epsilon: float, axes) -> tuple[float, float, float]:
    """The size of the terms that make up dx, dgamma and dbeta: max |gamma| |dy| / sigma, max sum |dy x_hat|,
    max sum |dy|. Round-off is relative to these, not to the result, which may cancel to 0 (dx of a batch of
    one is exactly 0 in exact arithmetic, and a few ulps of |gamma| |dy|/sqrt(epsilon) in floating point)."""
    return tuple(float(v) for v in _gradient_magnitudes(x_in, g, upstream, float(epsilon), tuple(axes)))


@functools.partial(jax.jit, static_argnums=(4,))
def _gradient_magnitudes(x_in, g, upstream, epsilon, axes):
    _, var = batch_statistics(x_in, axes)
    x_hat = normalize(x_in, axes, epsilon)
    return (
        jnp.max(jnp.abs(g)) * jnp.max(jnp.abs(upstream)) * jnp.max(jax.lax.rsqrt(var + epsilon)),
        jnp.max(jnp.sum(jnp.abs(upstream * x_hat), axis=axes)),
        jnp.max(jnp.sum(jnp.abs(upstream), axis=axes)),
    )


def _custom_vjp_backward(x_in, g, upstream, epsilon, axes):
    module = BatchNorm(x_in.shape[-1], epsilon=epsilon, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    module.scale[...] = g
    return module_vjp(module, x_in, upstream)


# --- LN, IN, GN ----------------------------------------------------------------------------------------

SHAPE = (3, 4, 5, 6)  # NHWC


def _flax_norms(c: int, groups: int) -> dict[str, nnx.Module]:
    kw = {"param_dtype": jnp.float64, "rngs": nnx.Rngs(params=0), "epsilon": EPS}
    return {
        "BatchNorm": flax_batchnorm(c),
        "LayerNorm": nnx.LayerNorm(c, reduction_axes=(1, 2, 3), **kw),
        "InstanceNorm": nnx.InstanceNorm(c, **kw),
        "GroupNorm (G groups)": nnx.GroupNorm(c, num_groups=groups, **kw),
    }


def group_normalize(v: jax.Array, groups: int, epsilon: float) -> jax.Array:
    """GroupNorm's core: split C into ``groups`` of C/G channels and normalize each (example, group)
    over H, W and its channels."""
    n, h, w, c = v.shape
    if groups < 1 or c % groups:
        raise ValueError(f"groups must divide the {c} channels, got {groups}")
    return normalize(v.reshape(n, h, w, groups, c // groups), (1, 2, 4), epsilon).reshape(v.shape)


def _reference_norms(v: jax.Array, groups: int) -> dict[str, jax.Array]:
    return {
        "BatchNorm": normalize(v, (0, 1, 2), EPS),
        "LayerNorm": normalize(v, (1, 2, 3), EPS),
        "InstanceNorm": normalize(v, (1, 2), EPS),
        "GroupNorm (G groups)": group_normalize(v, groups, EPS),
    }


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "normalization"]) or main(["check", "normalization"]))
