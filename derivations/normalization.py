"""Normalization: BatchNorm's backward derived and checked against autodiff, what γ and β are, eval mode,
and which axes BN, LN, IN and GN normalize over.

Seeds: S000-19, S000-20, S000-21, S001-09, S001-16, S001-32, S002-48, S003-02. The closed-form backward's
numeric code is ``models.normalization.batchnorm_backward`` (it is the backward of the custom-VJP
``models.normalization.BatchNorm``); this chapter derives it in SymPy, proves the two agree, and
re-exports it here as ``derivations.normalization.batchnorm_backward``. Run
``python -m derivations.normalization`` to print the derivations and check the claims.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp
from flax import nnx

from derivations.bridge import to_jax
from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict
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


@functools.cache
def _concrete_batch(n: int) -> dict:
    """The forward pass for a symbolic batch of ``n`` (from ``batchnorm_forward``'s definitions), the
    loss L = sum dy_k y_k, its exact derivatives by ``sympy.diff``, and the closed forms at N = n."""
    xs = sp.symbols(f"x1:{n + 1}", real=True)
    dys = sp.symbols(f"dy1:{n + 1}", real=True)
    at_n = {x[k + 1]: xs[k] for k in range(n)} | {dy[k + 1]: dys[k] for k in range(n)}
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
    y = (gamma * (x[i] - mu) / sp.sqrt(variance + eps) + beta).subs({gamma: sp.sqrt(variance + eps), beta: mu})
    return sp.Eq(y, sp.simplify(y), evaluate=False)


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
    scaled = forward[x_hat[i]].subs(sigma, forward[sigma])
    scaled = scaled.subs({x[i]: scale * x[i], mu: scale * mu, variance: scale**2 * variance, eps: 0})
    at_aw = sp.Symbol(r"\left.\frac{\partial L}{\partial W}\right|_{aW}")
    at_w = sp.Symbol(r"\left.\frac{\partial L}{\partial W}\right|_{W}")
    return [sp.Eq(scaled, sp.simplify(scaled), evaluate=False), sp.Eq(at_aw, at_w / scale, evaluate=False)]


# Which axes of an NHWC input each method averages over (GN: of the input reshaped to N, H, W, G, C/G).
NORMALIZATION_AXES = {
    "BatchNorm": ("N, H, W", "one mean/variance per channel, shared by the batch"),
    "LayerNorm": ("H, W, C", "one per example"),
    "InstanceNorm": ("H, W", "one per example and channel"),
    "GroupNorm (G groups)": ("H, W, C/G", "one per example and group of C/G channels"),
}


# --- shared numeric helpers --------------------------------------------------------------------------


def flax_batchnorm(features: int, **kwargs) -> nnx.BatchNorm:
    """``nnx.BatchNorm`` with float64 parameters and float64 running statistics (Flax keeps the
    statistics in float32 whatever the parameter dtype; float64 checks need float64 throughout)."""
    module = nnx.BatchNorm(features, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0), **kwargs)
    module.mean = nnx.BatchStat(jnp.zeros(features, jnp.float64))
    module.var = nnx.BatchStat(jnp.ones(features, jnp.float64))
    return module


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
    return (jnp.asarray(rng.normal(1.5, 2.0, shape)), jnp.asarray(rng.normal(size=c) * 2),
            jnp.asarray(rng.normal(size=c)), jnp.asarray(rng.normal(size=shape)))  # fmt: skip


def autodiff_reference(module_type, x_in, g, b, upstream):
    module = flax_batchnorm(x_in.shape[-1]) if module_type is nnx.BatchNorm else module_type(
        x_in.shape[-1], param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    module.scale[...], module.bias[...] = g, b
    return module_vjp(module, x_in, upstream)


# --- claims: the backward pass -----------------------------------------------------------------------


@claim(
    "normalization/batchnorm-backward-closed-form-is-the-chain-rule",
    sources=["S000-20"],
    says="BN's backward is the chain rule; the gradient of gamma is the sum over the batch of each sample's "
    "contribution.",
    expected="holds",
)
def _closed_form_symbolic() -> Evidence:
    proved = {}
    for n in (2, 3, 4):
        batch = _concrete_batch(n)
        for name, exact in batch["exact"].items():
            proved[f"N={n} d{name}"] = sp.simplify(exact - batch["closed"][name]) == 0
    ok = all(proved.values())
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="symbolic",
        summary=f"sympy.diff of L = sum dy_k y_k for symbolic batches N = 2, 3, 4 equals the closed forms "
        f"for dbeta, dgamma and every dx_k: {sum(proved.values())} of {len(proved)} identities proved by simplify",
        samples=len(proved),
        details={"proved": proved},
    )


def closed_form_vs_models(n: int = 4, points: int = 64, seed: int = 3):
    """The SymPy closed form at N = n, lambdified, against ``models.normalization.batchnorm_backward``
    at ``points`` random batches (each point is one batch of n; its gamma is the feature)."""
    batch = _concrete_batch(n)
    symbols = (*batch["xs"], *batch["dys"], gamma, eps)
    names = [f"x{k + 1}" for k in range(n)] + ["gamma", "beta"]
    derived = [to_jax(batch["closed"][name], symbols) for name in names]
    rng = np.random.default_rng(seed)
    xs, dys = rng.normal(0.5, 2.0, (points, n)), rng.normal(size=(points, n))
    g = rng.normal(size=points) * 2
    inputs = [*xs.T, *dys.T, g, np.full(points, EPS)]

    def symbolic(*cols):
        return jnp.concatenate([jnp.stack([f(*cols) for f in derived[:n]], axis=1),
                                jnp.stack([f(*cols) for f in derived[n:]], axis=1)], axis=1)  # fmt: skip

    def numeric(*cols):
        dx, dg, db = batchnorm_backward(jnp.stack(cols[:n], 1), cols[-2], jnp.stack(cols[n:2 * n], 1), EPS, (1,))
        return jnp.concatenate([dx, dg[:, None], db[:, None]], axis=1)

    return compare(symbolic, numeric, inputs)


@functools.cache
def constant_feature_dx(n: int):
    """``constant_feature_gradient`` at N = n, lambdified: (dy of one feature, gamma, epsilon) -> dx."""
    dys = sp.symbols(f"dy1:{n + 1}", real=True)
    general = constant_feature_gradient().rhs.subs(N, n).doit()
    per_i = [general.subs(i, k + 1).subs({dy[m + 1]: dys[m] for m in range(n)}) for k in range(n)]
    compiled = to_jax(per_i, (*dys, gamma, eps))

    def dx(upstream: jax.Array, g, epsilon: float) -> jax.Array:
        return jnp.stack(compiled(*upstream, g, epsilon))

    return dx


def backward_vs_autodiff(backward, shapes, seed: int = 0, module_type=nnx.BatchNorm):
    """``backward(x, gamma, dy, eps, axes)`` against ``jax.vjp`` of a Flax BatchNorm module in training
    mode, for each shape (statistics over every axis but the last)."""
    results = {}
    for k, shape in enumerate(shapes):
        x_in, g, b, upstream = _random_case(shape, seed + k)
        axes = tuple(range(len(shape) - 1))
        want = autodiff_reference(module_type, x_in, g, b, upstream)
        got = backward(x_in, g, upstream, EPS, axes)
        results[shape] = [compare(lambda a=a: a, lambda w=w: w, []) for a, w in zip(got, want, strict=True)]
    return results


def _custom_vjp_backward(x_in, g, upstream, epsilon, axes):
    module = BatchNorm(x_in.shape[-1], epsilon=epsilon, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    module.scale[...] = g
    return module_vjp(module, x_in, upstream)


@claim(
    "normalization/batchnorm-backward-matches-autodiff-for-dense-and-conv-inputs",
    sources=["S000-20", "S001-09"],
    says="dgamma = sum dy x_hat, dbeta = sum dy, dx = gamma/(N sigma) (N dy - sum dy - x_hat sum dy x_hat), with "
    "the sums over the N·H·W positions of a channel for convolutional inputs.",
    expected="holds",
)
def _closed_form_vs_autodiff() -> Evidence:
    symbolic = closed_form_vs_models()
    closed = backward_vs_autodiff(batchnorm_backward, DENSE_SHAPES + CONV_SHAPES)
    module = backward_vs_autodiff(_custom_vjp_backward, DENSE_SHAPES + CONV_SHAPES, seed=100)
    comparisons = [symbolic] + [c for r in (closed, module) for cs in r.values() for c in cs]
    ok = all(c.ok for c in comparisons)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"SymPy closed form (N = 4, lambdified) vs models.batchnorm_backward: {symbolic.describe()}; "
        f"batchnorm_backward and the custom-VJP BatchNorm vs jax.vjp of nnx.BatchNorm (training mode) for "
        f"dense {list(DENSE_SHAPES)} and NHWC {list(CONV_SHAPES)}: max rel err "
        f"{max(c.max_rel_err for c in comparisons[1:]):.1e} over dx, dgamma, dbeta",
        max_abs_err=max(c.max_abs_err for c in comparisons),
        max_rel_err=max(c.max_rel_err for c in comparisons),
        samples=sum(c.samples for c in comparisons),
        dtype="float64",
        details={str(s): {"dx": cs[0].max_rel_err, "dgamma": cs[1].max_rel_err, "dbeta": cs[2].max_rel_err}
                 for s, cs in closed.items()},
    )


@claim(
    "normalization/gamma-gradient-is-a-sum-over-the-batch",
    sources=["S000-20"],
    says="Because gamma acts on the whole batch, its partial derivative is the sum over the batch of every "
    "sample's partial derivative.",
    expected="holds",
)
def _gamma_sum() -> Evidence:
    x_in, g, b, upstream = _random_case((6, 4, 4, 3), 7)
    _, dscale, _ = autodiff_reference(nnx.BatchNorm, x_in, g, b, upstream)
    # Per-sample contributions dy_k * x_hat_k, with x_hat from the batch statistics (they are shared).
    per_position = upstream * normalize(x_in, (0, 1, 2), EPS)
    per_sample = jnp.sum(per_position, axis=(1, 2))
    summed = compare(lambda: jnp.sum(per_sample, axis=0), lambda: dscale, [])
    ok = summed.ok and float(jnp.min(jnp.max(jnp.abs(per_sample), axis=0))) > 0
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"jax.vjp of nnx.BatchNorm on NHWC (6, 4, 4, 3): dgamma equals the sum over the 6 samples (and "
        f"their 4x4 positions) of dy * x_hat: {summed.describe()}",
        max_abs_err=summed.max_abs_err,
        max_rel_err=summed.max_rel_err,
        samples=summed.samples,
        dtype=summed.dtype,
        details={"per_sample_contributions": np.asarray(per_sample).tolist(), "dgamma": np.asarray(dscale).tolist()},
    )


@claim(
    "normalization/conv-batchnorm-pools-batch-height-width",
    sources=["S001-09"],
    says="In a CNN all b x w x h neurons of one feature map are normalized together.",
    expected="holds",
)
def _conv_axes() -> Evidence:
    shape = (4, 5, 6, 3)
    x_in, *_ = _random_case(shape, 11)
    module = flax_batchnorm(3, momentum=0.0)  # momentum 0: the running mean becomes the batch mean
    y = module(x_in)
    per_channel = compare(lambda: module.mean[...], lambda: jnp.mean(x_in, axis=(0, 1, 2)), [])
    per_position_differs = float(jnp.max(jnp.abs(jnp.mean(x_in, axis=0) - module.mean[...])))
    centred = float(jnp.max(jnp.abs(jnp.mean(y, axis=(0, 1, 2)))))
    count = x_in.size // shape[-1]
    ok = per_channel.ok and count == 4 * 5 * 6 and centred < 1e-12 and per_position_differs > 0.1
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"nnx.BatchNorm on NHWC {shape}: the batch mean it uses equals the mean over axes (N, H, W) "
        f"per channel ({per_channel.describe()}), b*h*w = {count} values per channel; the output's mean over "
        f"(N, H, W) is {centred:.1e}; per-position statistics would differ by up to {per_position_differs:.2f}",
        max_abs_err=per_channel.max_abs_err,
        max_rel_err=per_channel.max_rel_err,
        samples=per_channel.samples,
        dtype=per_channel.dtype,
    )


# --- claims: gamma, beta, evaluation mode ------------------------------------------------------------


@claim(
    "normalization/gamma-sigma-beta-mu-restores-the-input",
    sources=["S000-19", "S001-09"],
    says="When normalization squeezes a well-spread distribution, the learned scale and shift can undo it and "
    "restore the input.",
    expected="qualified",
    correction="Only against fixed statistics. gamma and beta are learned constants while the batch mean and "
    "variance change with every batch, so in training mode gamma = sigma_B, beta = mu_B fitted to one batch "
    "restores that batch alone; on another batch the residual is mu_1 - mu_2 + (sigma_1/sigma_2 - 1)(x - mu_2). "
    "In eval mode, where BN uses the running averages, gamma = sqrt(running var + epsilon), beta = running mean "
    "restores every input exactly: what the scale and shift guarantee is that BN can represent the identity.",
)
def _restore() -> Evidence:
    proved = gamma_beta_restore_the_input().rhs == x[i]
    rng = np.random.default_rng(5)
    fitted, fresh = (jnp.asarray(rng.normal(1.5, 2.0, (32, 4))) for _ in range(2))
    mean_1, var_1 = batch_statistics(fitted, (0,))
    module = flax_batchnorm(4, momentum=0.9)
    module.scale[...], module.bias[...] = jnp.sqrt(var_1[0] + EPS), mean_1[0]
    same_batch = compare(lambda: module(fitted), lambda: fitted, [])
    y_formula = to_jax(restore_on_another_batch()[0].rhs, (x_i, sigma_1, mu_1, sigma_2, mu_2))
    mean_2, var_2 = batch_statistics(fresh, (0,))
    on_fresh = module(fresh)
    formula = compare(lambda: on_fresh,
                      lambda: y_formula(fresh, module.scale[...], module.bias[...], jnp.sqrt(var_2 + EPS), mean_2), [])
    residual = float(jnp.linalg.norm(on_fresh - fresh) / jnp.linalg.norm(fresh - mean_2))
    # Eval mode: the same substitution with the running averages (after the two training passes above).
    module.scale[...], module.bias[...] = jnp.sqrt(module.var[...] + EPS), module.mean[...]
    module.eval()
    eval_restores = [compare(lambda v=v: module(v), lambda v=v: v, []) for v in (fitted, fresh)]
    comparisons = [same_batch, formula, *eval_restores]
    ok = proved and all(c.ok for c in comparisons) and residual > 0.01
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"SymPy: gamma x_hat + beta with gamma = sqrt(sigma_B^2 + eps), beta = mu simplifies to x_i: "
        f"{proved}. nnx.BatchNorm (training mode) with gamma, beta fitted to one (32, 4) batch returns that batch "
        f"({same_batch.describe()}), but on a fresh batch from the same N(1.5, 2^2) its output is off the input "
        f"by {residual:.1%} of the input's spread, as the residual formula predicts ({formula.describe()}); "
        f"in eval mode, gamma, beta set from the running statistics restore both batches (max rel err "
        f"{max(c.max_rel_err for c in eval_restores):.1e})",
        max_abs_err=max(c.max_abs_err for c in comparisons),
        max_rel_err=max(c.max_rel_err for c in comparisons),
        samples=sum(c.samples for c in comparisons),
        dtype="float64",
        details={"fresh_batch_relative_residual": residual},
    )


@claim(
    "normalization/gamma-and-beta-are-learned-parameters",
    sources=["S000-19"],
    says="BN has two important hyperparameters, the scale and the shift; a switch turns their learning on, and "
    "then backpropagation updates them.",
    expected="qualified",
    correction="gamma and beta are parameters, not hyperparameters: they get gradients (dgamma = sum dy x_hat, "
    "dbeta = sum dy) and the optimizer updates them like weights. The hyperparameters of BN are epsilon and "
    "the momentum of the running averages. The note's switch is, in Flax, nnx.BatchNorm(use_scale=..., "
    "use_bias=...): switched off, the parameter does not exist (gamma = 1, beta = 0 fixed).",
)
def _learned() -> Evidence:
    x_in, _, _, upstream = _random_case((16, 3), 2)
    module = flax_batchnorm(3)
    params = nnx.state(module, nnx.Param)
    _, dscale, dbias = module_vjp(module, x_in, upstream)
    before = nnx.clone(params)
    optimizer = nnx.Optimizer(module, optax.sgd(0.1), wrt=nnx.Param)
    optimizer.update(module, nnx.grad(lambda m: jnp.sum(upstream * m(x_in)))(module))
    moved = {k: float(jnp.max(jnp.abs(getattr(module, k)[...] - before[k][...]))) for k in ("scale", "bias")}
    switched_off = nnx.state(flax_batchnorm(3, use_scale=False, use_bias=False), nnx.Param)
    fixed = flax_batchnorm(3, use_scale=False, use_bias=False)(x_in)
    fixed_is_x_hat = compare(lambda: fixed, lambda: normalize(x_in, (0,), EPS), [])
    ok = sorted(params.keys()) == ["bias", "scale"] and bool(jnp.all(dscale != 0)) and bool(jnp.all(dbias != 0))
    ok = ok and all(v > 0 for v in moved.values()) and not jax.tree.leaves(switched_off) and fixed_is_x_hat.ok
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary=f"nnx.state(BatchNorm, nnx.Param) holds {sorted(params.keys())}; their gradients are non-zero "
        f"(|dgamma| >= {float(jnp.min(jnp.abs(dscale))):.2f}, |dbeta| >= {float(jnp.min(jnp.abs(dbias))):.2f}); "
        f"one optax.sgd(0.1) step moves scale by up to {moved['scale']:.3f} and bias by {moved['bias']:.3f}; "
        f"with use_scale=False, use_bias=False nnx.state holds no Param ({len(jax.tree.leaves(switched_off))}) and "
        f"the output is x_hat (max rel err {fixed_is_x_hat.max_rel_err:.1e})",
        samples=16,
        dtype="float64",
        details={"moved": moved},
    )


@claim(
    "normalization/eval-mode-freezes-the-statistics-not-gamma-beta",
    sources=["S000-21"],
    says="model.eval() makes BN use the mean and variance from training; without it, testing would change "
    "BN's scale and shift parameters.",
    expected="qualified",
    correction="Without eval mode a forward pass on test data changes the running mean and variance and "
    "normalizes with the test batch's own statistics (so each output depends on the rest of the batch); gamma "
    "and beta change only when an optimizer step is taken, in either mode.",
)
def _eval_mode() -> Evidence:
    rng = np.random.default_rng(4)
    train_batch, test_batch = jnp.asarray(rng.normal(0, 1, (32, 3))), jnp.asarray(rng.normal(2, 3, (32, 3)))
    module = flax_batchnorm(3, momentum=0.9)
    module.scale[...] = jnp.asarray([0.5, 1.5, 2.0])
    module(train_batch)
    snapshot = nnx.clone(nnx.state(module))
    module(test_batch)  # training mode on test data
    after = nnx.state(module)
    params_same = all(bool(jnp.array_equal(after[k][...], snapshot[k][...])) for k in ("scale", "bias"))
    stats_moved = {k: float(jnp.max(jnp.abs(after[k][...] - snapshot[k][...]))) for k in ("mean", "var")}
    other = test_batch.at[1:].set(jnp.asarray(rng.normal(-4, 0.5, (31, 3))))
    train_dependence = float(jnp.max(jnp.abs(module(test_batch)[0] - module(other)[0])))
    module.eval()
    eval_dependence = float(jnp.max(jnp.abs(module(test_batch)[0] - module(other)[0])))
    ok = params_same and min(stats_moved.values()) > 0 and train_dependence > 1e-3 and eval_dependence == 0.0
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"a training-mode pass over a test batch leaves scale and bias bit-identical ({params_same}) but "
        f"moves the running mean by {stats_moved['mean']:.3f} and variance by {stats_moved['var']:.3f}; changing "
        f"the other 31 examples changes example 0's output by {train_dependence:.3f} in training mode and by "
        f"{eval_dependence:g} in eval mode",
        samples=32,
        dtype="float64",
        details={"running_stats_moved": stats_moved, "train_dependence": train_dependence},
    )


@claim(
    "normalization/eval-statistics-are-running-averages",
    sources=["S001-09", "S000-21"],
    says="At prediction time the mean and variance used are the expectations of the training batches' means "
    "and variances.",
    expected="qualified",
    correction="Flax's nnx.BatchNorm (and the custom-VJP BatchNorm here) keeps exponential moving averages, "
    "stat <- momentum stat + (1 - momentum) batch_stat (momentum 0.99 by default), of the batch mean and of the "
    "biased batch variance: recent batches weigh most, it is not the expectation over all training batches. "
    "For batches of N the biased batch variance has expectation (N - 1)/N of the variance; the BN paper "
    "multiplies by N/(N - 1) at inference, Flax does not.",
    tolerance="Monte-Carlo: the mean batch variance must lie within 4.5 standard errors of (N - 1)/N s^2",
)
def _running_averages() -> Evidence:
    batch, steps, momentum, s = 8, 4000, 0.9, 2.0
    rng = np.random.default_rng(12)
    batches = rng.normal(3.0, s, (steps, batch, 2))
    flax_module, ours = flax_batchnorm(2, momentum=momentum), BatchNorm(
        2, momentum=momentum, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    flax_path, ours_path, ema, ema_path = [], [], np.ones(2), []
    for b in batches[:50]:
        flax_module(jnp.asarray(b))
        ours(jnp.asarray(b))
        ema = momentum * ema + (1 - momentum) * b.var(axis=0)  # numpy's var divides by N (ddof=0)
        flax_path.append(flax_module.var[...])
        ours_path.append(ours.var[...])
        ema_path.append(ema)
    recurrence = compare(lambda: jnp.stack(flax_path), lambda: np.stack(ema_path), [])
    drop_in = compare(lambda: jnp.stack(ours_path), lambda: jnp.stack(flax_path), [])
    batch_vars = batches[..., 0].var(axis=1)
    mean_var, stderr = float(batch_vars.mean()), float(batch_vars.std(ddof=1) / np.sqrt(steps))
    biased = float(expected_batch_variance(batch).subs(sp.Symbol("s^2", positive=True), s**2))
    ok = (recurrence.ok and drop_in.ok and abs(mean_var - biased) <= 4.5 * stderr
          and abs(mean_var - s**2) > 4.5 * stderr)  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"over 50 training batches, nnx.BatchNorm's running variance follows the EMA (momentum {momentum}) "
        f"of the biased batch variances step by step ({recurrence.describe()}), and the custom-VJP BatchNorm's "
        f"equals Flax's (max rel err {drop_in.max_rel_err:.1e}); over {steps} batches of N = {batch} from "
        f"Normal(3, {s:g}^2) the mean batch variance is {mean_var:.3f} +/- {stderr:.3f}: (N - 1)/N s^2 = {biased:.3f} "
        f"(SymPy), not s^2 = {s**2:g}",
        max_abs_err=max(recurrence.max_abs_err, drop_in.max_abs_err),
        max_rel_err=max(recurrence.max_rel_err, drop_in.max_rel_err),
        samples=recurrence.samples,
        dtype=recurrence.dtype,
        details={"mean_batch_variance": mean_var, "standard_error": stderr, "expected_biased": biased,
                 "monte_carlo_batches": steps},
    )


@claim(
    "normalization/the-notes-formula-needs-epsilon",
    sources=["S001-09"],
    says="x_hat = (x - E[x]) / sqrt(Var[x]), where Var[x] is the batch's standard deviation.",
    expected="qualified",
    correction="Var[x] is the (biased) batch variance, its square root the standard deviation; and the formula "
    "needs epsilon under the root: for a constant feature (variance 0) the note's formula gives 0/0 = NaN. With "
    "epsilon the output is beta, and the gradient is finite: x_hat = 0 there, so dx = (gamma/sqrt(epsilon))"
    "(dy - mean dy) and ||dx||_2 <= (gamma/sqrt(epsilon)) ||dy||_2, with equality when dy has mean 0.",
)
def _epsilon() -> Evidence:
    n, g = 16, jnp.asarray([1.0, 1.5, 0.5])
    rng = np.random.default_rng(9)
    x_in = jnp.asarray(rng.normal(size=(n, 3))).at[:, 1].set(2.5)  # feature 1 is constant
    upstream = jnp.asarray(rng.normal(size=(n, 3)))
    without = normalize(x_in, (0,), 0.0)
    module = flax_batchnorm(3)
    module.scale[...] = g
    y = module(x_in)
    dx, dscale, dbias = module_vjp(module, x_in, upstream)
    ours = _custom_vjp_backward(x_in, g, upstream, EPS, (0,))
    finite = all(bool(jnp.all(jnp.isfinite(v))) for v in (y, dx, dscale, dbias, *ours))
    derived = constant_feature_dx(n)
    formula = compare(lambda: derived(upstream[:, 1], g[1], EPS), lambda: dx[:, 1], [])
    same = compare(lambda: ours[0], lambda: dx, [])
    bound = float(g[1] / np.sqrt(EPS))
    gain = float(jnp.linalg.norm(dx[:, 1]) / jnp.linalg.norm(upstream[:, 1]))
    centred = upstream[:, 1] - jnp.mean(upstream[:, 1])
    attained = compare(lambda: jnp.linalg.norm(derived(centred, g[1], EPS)) / jnp.linalg.norm(centred),
                       lambda: jnp.asarray(bound), [])  # fmt: skip
    ok = (bool(jnp.all(jnp.isnan(without[:, 1]))) and bool(jnp.all(jnp.isfinite(without[:, [0, 2]]))) and finite
          and bool(jnp.all(y[:, 1] == 0.0)) and formula.ok and same.ok and gain <= bound and attained.ok)  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary=f"a ({n}, 3) batch whose feature 1 is constant: without epsilon that feature normalizes to "
        f"{float(without[0, 1])}; nnx.BatchNorm (epsilon = {EPS:g}) outputs exactly beta = 0 there and its "
        f"gradients (and the custom-VJP's) are finite; jax.vjp's dx on that feature equals the derived "
        f"(gamma/sqrt(epsilon))(dy - mean dy) ({formula.describe()}); ||dx||/||dy|| = {gain:.1f} <= "
        f"gamma/sqrt(epsilon) = {bound:.1f}, reached by a mean-zero dy (rel err {attained.max_rel_err:.1e})",
        max_abs_err=max(formula.max_abs_err, same.max_abs_err),
        max_rel_err=max(formula.max_rel_err, same.max_rel_err),
        samples=formula.samples + same.samples,
        dtype="float64",
        details={"gain": gain, "bound": bound},
    )


# --- claims: why it helps -----------------------------------------------------------------------------


@claim(
    "normalization/batchnorm-moves-sigmoid-inputs-out-of-saturation",
    sources=["S001-32", "S002-48"],
    says="BN helps against vanishing gradients: it removes outliers and centres the activation's input at 0 with "
    "unit variance, where the sigmoid does not saturate.",
    expected="qualified",
    correction="It centres and scales each feature, so inputs that a shift or scale had pushed into the "
    "sigmoid's flat tails come back to where sigma' is large (at gamma = 1, beta = 0; gamma and beta are learned "
    "and can move them out again). It does not remove outliers: BN is one affine map per feature, so an outlier "
    "stays an outlier; it inflates the batch variance, so after BN it still sits in the sigmoid's flat tail and "
    "the rest of the batch is squeezed together.",
)
def _saturation() -> Evidence:
    rng = np.random.default_rng(21)
    shifts = (0.0, 4.0, 8.0)
    sigmoid_slope = jax.vmap(jax.grad(jax.nn.sigmoid))
    before, after = {}, {}
    module = flax_batchnorm(1)
    for shift in shifts:
        z = jnp.asarray(rng.normal(shift, 3.0, (4096, 1)))
        before[shift] = float(jnp.mean(sigmoid_slope(z[:, 0])))
        after[shift] = float(jnp.mean(sigmoid_slope(module(z)[:, 0])))
    clean = jnp.asarray(rng.normal(0, 1, (64, 1)))
    with_outlier = clean.at[0, 0].set(25.0)
    normalized = module(with_outlier)[:, 0]
    outlier_slope = float(sigmoid_slope(normalized[:1])[0])
    rest_std, clean_std = float(jnp.std(normalized[1:])), float(jnp.std(module(clean)[1:, 0]))
    ok = (all(after[s] > 0.18 for s in shifts) and before[8.0] < 0.05 and before[8.0] < after[8.0] / 4
          and outlier_slope < 0.01 and rest_std < 0.5 * clean_std)  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary="mean sigmoid'(z) over 4096 pre-activations z ~ N(shift, 3^2), before / after nnx.BatchNorm: "
        + ", ".join(f"shift {s:g}: {before[s]:.3f} / {after[s]:.3f}" for s in shifts)
        + f"; a batch of 64 N(0, 1) values with one set to 25: after BN the outlier is at "
        f"{float(normalized[0]):.2f}, where sigmoid' = {outlier_slope:.1e} (its peak is 0.25), and the other 63 "
        f"have standard deviation {rest_std:.2f} (without the outlier BN gives them {clean_std:.2f})",
        samples=4096 * len(shifts) + 64,
        dtype="float64",
        details={"before": before, "after": after, "outlier_after_bn": float(normalized[0]),
                 "outlier_sigmoid_slope": outlier_slope, "rest_std": rest_std, "clean_std": clean_std},
    )


@claim(
    "normalization/batchnorm-is-invariant-to-the-scale-of-its-weights",
    sources=["S000-19"],
    says="BN mainly constrains the trainable parameters (收束可训练参数), which makes the system more robust and "
    "speeds up convergence.",
    expected="qualified",
    correction="What can be checked is the mechanism: BN makes a layer invariant to the scale of the weights "
    "feeding it, BN(aWx) = BN(Wx) for a > 0, and the gradient shrinks as the weights grow, dL/d(aW) = "
    "(1/a) dL/dW: exactly at epsilon = 0, up to O(epsilon/sigma^2) with epsilon > 0. That training converges "
    "faster is an empirical finding that this workbook does not settle.",
)
def _scale_invariance() -> Evidence:
    xs = sp.symbols("x1:4", real=True)
    scaled, plain = _normalized_batch([scale * v for v in xs], 0)[1], _normalized_batch(xs, 0)[1]
    proved = all(sp.simplify(a - b) == 0 for a, b in zip(scaled, plain, strict=True))
    rng = np.random.default_rng(17)
    inputs, weights = jnp.asarray(rng.normal(size=(32, 5))), jnp.asarray(rng.normal(size=(5, 4)))
    upstream = jnp.asarray(rng.normal(size=(32, 4)))
    graph, params, rest = nnx.split(flax_batchnorm(4, epsilon=0.0), nnx.Param, ...)

    def layer(w):
        return nnx.merge(graph, params, rest, copy=True)(inputs @ w)

    grad = jax.jit(jax.grad(lambda w: jnp.sum(upstream * layer(w))))
    factors = (0.1, 10.0)
    outputs = [compare(lambda a=a: layer(a * weights), lambda: layer(weights), []) for a in factors]
    grads = [compare(lambda a=a: grad(a * weights), lambda a=a: grad(weights) / a, []) for a in factors]
    with_eps = flax_batchnorm(4)
    eps_gap = float(jnp.max(jnp.abs(with_eps(inputs @ (0.1 * weights)) - with_eps(inputs @ weights))))
    comparisons = outputs + grads
    ok = proved and all(c.ok for c in comparisons) and eps_gap > 0
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary=f"SymPy proves x_hat(a x) = x_hat(x) at epsilon = 0 for a symbolic batch of 3: {proved}; "
        f"nnx.BatchNorm (epsilon = 0) after x @ W, (32, 5) @ (5, 4), for a = {factors}: BN(x aW) vs BN(x W) max rel "
        f"err {max(c.max_rel_err for c in outputs):.1e}, jax.grad at aW vs (1/a) jax.grad at W max rel err "
        f"{max(c.max_rel_err for c in grads):.1e}; with epsilon = {EPS:g} the outputs at a = 0.1 differ by "
        f"{eps_gap:.1e}",
        max_abs_err=max(c.max_abs_err for c in comparisons),
        max_rel_err=max(c.max_rel_err for c in comparisons),
        samples=sum(c.samples for c in comparisons),
        dtype="float64",
        details={"epsilon_gap_at_a_0.1": eps_gap},
    )


# --- claims: LN, IN, GN -------------------------------------------------------------------------------

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


@claim(
    "normalization/bn-ln-in-gn-normalize-over-different-axes",
    sources=["S003-02", "S001-16"],
    says="BN normalizes within a mini-batch, LN over all the neurons of a layer for one example, IN within "
    "each example; GN over groups of channels.",
    expected="holds",
)
def _axes() -> Evidence:
    v = jnp.asarray(np.random.default_rng(1).normal(2.0, 3.0, SHAPE))
    flax = {name: module(v) for name, module in _flax_norms(SHAPE[-1], 2).items()}
    ours = _reference_norms(v, 2)
    results = {name: compare(lambda a=flax[name]: a, lambda b=ours[name]: b, []) for name in flax}
    # Each method's output must differ from every other method's: the axes are a real distinction.
    names = list(flax)
    distinct = min(float(jnp.max(jnp.abs(flax[a] - flax[b]))) for a in names for b in names if a < b)
    ok = all(r.ok for r in results.values()) and distinct > 0.1
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"on NHWC {SHAPE}, nnx.BatchNorm, LayerNorm(reduction_axes=(1, 2, 3)), InstanceNorm and "
        f"GroupNorm(2) each equal (x - mean)/sqrt(var + eps) over "
        + "; ".join(f"{k.split(' ')[0]}: ({a})" for k, (a, _) in NORMALIZATION_AXES.items())
        + f" (max rel err {max(r.max_rel_err for r in results.values()):.1e}); any two differ by >= {distinct:.2f}",
        max_abs_err=max(r.max_abs_err for r in results.values()),
        max_rel_err=max(r.max_rel_err for r in results.values()),
        samples=sum(r.samples for r in results.values()),
        dtype="float64",
        details={k: r.max_rel_err for k, r in results.items()},
    )


@claim(
    "normalization/instance-norm-normalizes-each-channel-separately",
    sources=["S003-02"],
    says="Instance normalization normalizes each sample over the channel dimension.",
    expected="qualified",
    correction="Each sample *and each channel* separately, over the spatial axes H and W; it does not "
    "average across channels (that would be a LayerNorm over C alone).",
)
def _instance() -> Evidence:
    v = jnp.asarray(np.random.default_rng(2).normal(2.0, 3.0, SHAPE))
    flax_in = nnx.InstanceNorm(SHAPE[-1], epsilon=EPS, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))(v)
    spatial = compare(lambda: flax_in, lambda: normalize(v, (1, 2), EPS), [])
    across_channels = compare(lambda: flax_in, lambda: normalize(v, (3,), EPS), [])
    ok = spatial.ok and not across_channels.ok
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"nnx.InstanceNorm on {SHAPE} equals normalization over (H, W) per sample and channel "
        f"({spatial.describe()}); normalization over the channel axis differs (max abs err "
        f"{across_channels.max_abs_err:.2f})",
        max_abs_err=spatial.max_abs_err,
        max_rel_err=spatial.max_rel_err,
        samples=spatial.samples,
        dtype="float64",
    )


@claim(
    "normalization/group-norm-spans-layer-norm-to-instance-norm",
    sources=["S001-16"],
    says="Group Normalization (a heading in the notes): GN with one group is LN, GN with one channel per group is IN.",
    expected="holds",
)
def _group() -> Evidence:
    v = jnp.asarray(np.random.default_rng(3).normal(-1.0, 2.0, SHAPE))
    c = SHAPE[-1]
    kw = {"param_dtype": jnp.float64, "rngs": nnx.Rngs(params=0)}
    one = compare(lambda: nnx.GroupNorm(c, num_groups=1, **kw)(v),
                  lambda: nnx.LayerNorm(c, reduction_axes=(1, 2, 3), **kw)(v), [])  # fmt: skip
    each = compare(lambda: nnx.GroupNorm(c, num_groups=c, **kw)(v), lambda: nnx.InstanceNorm(c, **kw)(v), [])
    middle = compare(lambda: nnx.GroupNorm(c, num_groups=2, **kw)(v), lambda: nnx.InstanceNorm(c, **kw)(v), [])
    ok = one.ok and each.ok and not middle.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"on NHWC {SHAPE}: GroupNorm(1) vs LayerNorm over (H, W, C): {one.describe()}; GroupNorm({c}) vs "
        f"InstanceNorm: {each.describe()}; GroupNorm(2) is neither (differs from IN by {middle.max_abs_err:.2f})",
        max_abs_err=max(one.max_abs_err, each.max_abs_err),
        max_rel_err=max(one.max_rel_err, each.max_rel_err),
        samples=one.samples + each.samples,
        dtype="float64",
    )


@claim(
    "normalization/layer-norm-does-not-depend-on-the-batch",
    sources=["S003-02"],
    says="Unlike BN, LayerNorm does not depend on mini-batch statistics, so it suits small batches and RNNs.",
    expected="holds",
)
def _ln_batch() -> Evidence:
    rng = np.random.default_rng(8)
    v = jnp.asarray(rng.normal(size=(8, 6)))
    other = v.at[1:].set(jnp.asarray(rng.normal(5.0, 2.0, (7, 6))))
    ln = nnx.LayerNorm(6, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    bn = flax_batchnorm(6)
    ln_change = float(jnp.max(jnp.abs(ln(v)[0] - ln(other)[0])))
    bn_change = float(jnp.max(jnp.abs(bn(v)[0] - bn(other)[0])))
    alone = float(jnp.max(jnp.abs(ln(v[:1])[0] - ln(v)[0])))
    ok = ln_change == 0.0 and alone == 0.0 and bn_change > 0.1
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"replacing the other 7 examples of a batch of 8 changes example 0's LayerNorm output by "
        f"{ln_change:g} (and a batch of 1 gives the same output: {alone:g}); its BatchNorm output changes by "
        f"{bn_change:.2f}",
        samples=8,
        dtype="float64",
    )


@claim(
    "normalization/batchnorm-degenerates-at-batch-sizes-one-and-two",
    sources=["S003-02"],
    says="LayerNorm suits small batches better than BN, because it does not depend on mini-batch statistics.",
    expected="holds",
)
def _small_batches() -> Evidence:
    rng = np.random.default_rng(23)
    c = 256  # each feature is its own batch of one (or two) values
    g, b = jnp.asarray(rng.normal(size=c) * 2), jnp.asarray(rng.normal(size=c))
    module = flax_batchnorm(c)
    module.scale[...], module.bias[...] = g, b
    beta_exactly = bool(jnp.array_equal(module(jnp.asarray(rng.normal(0.0, 5.0, (1, c))))[0], b))
    x_hat_two = to_jax(batchnorm_of_one_and_two()[1].rhs, (*sp.symbols("x1:3", real=True), eps))
    pair = jnp.asarray(rng.normal(0.0, 5.0, (2, c)))
    got = module(pair)
    formula = compare(lambda: got[0], lambda: g * x_hat_two(pair[0], pair[1], EPS) + b, [])
    # |x_hat| = 1/sqrt(1 + 4 epsilon/d^2) for d = x_1 - x_2: within 5e-4 of 1 once |d| >= 0.2.
    apart = jnp.abs(pair[0] - pair[1]) >= 0.2
    gap = float(jnp.max(jnp.where(apart, jnp.abs(jnp.abs((got[0] - b) / g) - 1.0), 0.0)))
    ok = beta_exactly and formula.ok and gap < 5e-4 and int(jnp.sum(apart)) > c // 2
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"nnx.BatchNorm in training mode, {c} features: on a batch of one the output is exactly beta "
        f"whatever the input ({beta_exactly}); on a batch of two it equals the derived gamma x_hat + beta "
        f"({formula.describe()}), so y = beta +/- gamma up to the factor 1/sqrt(1 + 4 epsilon/d^2): for the "
        f"{int(jnp.sum(apart))} features whose two values differ by d >= 0.2, |y - beta|/|gamma| is 1 to within "
        f"{gap:.1e}. All the output keeps of the input is which example is larger (a convolutional BN still "
        f"pools over H x W)",
        max_abs_err=formula.max_abs_err,
        max_rel_err=formula.max_rel_err,
        samples=formula.samples,
        dtype="float64",
        details={"largest_abs_x_hat_deviation_from_1": gap},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "normalization"]) or main(["check", "normalization"]))
