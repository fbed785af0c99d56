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
from derivations.compare import RTOL, compare
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


@functools.cache
def _concrete_batch(n: int) -> dict:
    """The forward pass for a symbolic batch of ``n`` (from ``batchnorm_forward``'s definitions), the
    loss L = sum dy_k y_k, its exact derivatives by ``sympy.diff``, and the closed forms at N = n."""
    xs = sp.symbols(f"x1:{n + 1}", real=True)
    dys = sp.symbols(f"dy1:{n + 1}", real=True)
    at_n = {x[k + 1]: xs[k] for k in range(n)} | {dy[k + 1]: dys[k] for k in range(n)}
    forward = {eq.lhs: eq.rhs for eq in batchnorm_forward()}
    mean = forward[mu].subs(N, n).doit().subs(at_n)
    var = forward[variance].subs(N, n).doit().subs(at_n).subs(mu, mean)
    std = forward[sigma].subs(variance, var)
    normalized = [forward[x_hat[i]].subs(i, k + 1).subs(at_n).subs({mu: mean, sigma: std}) for k in range(n)]
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


def expected_batch_variance(m: int) -> sp.Expr:
    """E[biased variance of m i.i.d. draws of variance s^2]: expand the quadratic form and replace each
    monomial by its moment (E[x_k^2] = s^2, E[x_k x_l] = 0; the variance is shift-invariant, so mean 0)."""
    s2 = sp.Symbol("s^2", positive=True)
    xs = sp.symbols(f"x1:{m + 1}", real=True)
    mean = sum(xs) / m
    poly = sp.Poly(sp.expand(sum((v - mean) ** 2 for v in xs) / m), *xs)
    return sum(c * s2 for powers, c in poly.terms() if sorted(powers)[-1] == 2 and sum(powers) == 2)


@derivation
def batch_variance_is_biased() -> list[sp.Eq]:
    """The batch variance (divide by m) underestimates the variance: E = (m - 1)/m s^2, for m = 2 ... 5."""
    s2 = sp.Symbol("s^2", positive=True)
    return [sp.Eq(sp.Symbol(rf"E[\sigma_{{B,{m}}}^2]"), sp.factor(expected_batch_variance(m) / s2) * s2,
                  evaluate=False) for m in (2, 3, 4, 5)]  # fmt: skip


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
        samples=symbolic.samples + 2 * len(DENSE_SHAPES + CONV_SHAPES),
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
        samples=6,
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
        samples=count,
        dtype=per_channel.dtype,
    )


# --- claims: gamma, beta, evaluation mode ------------------------------------------------------------


@claim(
    "normalization/gamma-sigma-beta-mu-restores-the-input",
    sources=["S000-19"],
    says="When normalization hurts, the scale and shift can undo it.",
    expected="holds",
)
def _restore() -> Evidence:
    proved = gamma_beta_restore_the_input().rhs == x[i]
    x_in, *_ = _random_case((32, 4), 5)
    mean, var = batch_statistics(x_in, (0,))
    module = flax_batchnorm(4)
    module.scale[...] = jnp.sqrt(var[0] + EPS)
    module.bias[...] = mean[0]
    restored = compare(lambda: module(x_in), lambda: x_in, [])
    ok = proved and restored.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"SymPy: gamma x_hat + beta with gamma = sqrt(sigma_B^2 + eps), beta = mu simplifies to x_i: "
        f"{proved}; nnx.BatchNorm with those parameters returns its (32, 4) input: {restored.describe()}",
        max_abs_err=restored.max_abs_err,
        max_rel_err=restored.max_rel_err,
        samples=int(x_in.size),
        dtype=restored.dtype,
    )


@claim(
    "normalization/gamma-and-beta-are-learned-parameters",
    sources=["S000-19"],
    says="BN has two important hyperparameters, the scale and the shift; a switch turns their learning on, and "
    "then backpropagation updates them.",
    expected="qualified",
    correction="gamma and beta are parameters, not hyperparameters: they get gradients (dgamma = sum dy x_hat, "
    "dbeta = sum dy) and the optimizer updates them like weights. The hyperparameters of BN are epsilon and "
    "the momentum of the running averages.",
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
    ok = sorted(params.keys()) == ["bias", "scale"] and bool(jnp.all(dscale != 0)) and bool(jnp.all(dbias != 0))
    ok = ok and all(v > 0 for v in moved.values())
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary=f"nnx.state(BatchNorm, nnx.Param) holds {sorted(params.keys())}; their gradients are non-zero "
        f"(|dgamma| >= {float(jnp.min(jnp.abs(dscale))):.2f}, |dbeta| >= {float(jnp.min(jnp.abs(dbias))):.2f}); "
        f"one optax.sgd(0.1) step moves scale by up to {moved['scale']:.3f} and bias by {moved['bias']:.3f}",
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
    correction="Flax (like PyTorch and Keras) uses exponential moving averages, stat <- m stat + (1 - m) "
    "batch_stat (m = 0.99 in nnx.BatchNorm), of the batch mean and the biased batch variance. The expectation "
    "of the biased batch variance is (m-1)/m of the variance for batches of m; the BN paper corrects it by "
    "m/(m-1) at inference, Flax does not.",
    tolerance="Monte-Carlo: the mean batch variance must lie within 4.5 standard errors of (m-1)/m s^2",
)
def _running_averages() -> Evidence:
    m, steps, momentum, s = 8, 4000, 0.9, 2.0
    rng = np.random.default_rng(12)
    batches = rng.normal(3.0, s, (steps, m, 2))
    flax_module, ours = flax_batchnorm(2, momentum=momentum), BatchNorm(
        2, momentum=momentum, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    for batch in batches[:50]:
        flax_module(jnp.asarray(batch))
        ours(jnp.asarray(batch))
    ema = np.ones(2)
    for batch in batches[:50]:
        ema = momentum * ema + (1 - momentum) * batch.var(axis=0)  # numpy's var divides by m (ddof=0)
    recurrence = compare(lambda: flax_module.var[...], lambda: ema, [])
    drop_in = compare(lambda: ours.var[...], lambda: flax_module.var[...], [])
    batch_vars = batches[..., 0].var(axis=1)
    mean_var, stderr = float(batch_vars.mean()), float(batch_vars.std(ddof=1) / np.sqrt(steps))
    biased = float(expected_batch_variance(m).subs(sp.Symbol("s^2", positive=True), s**2))
    ok = (recurrence.ok and drop_in.ok and abs(mean_var - biased) <= 4.5 * stderr
          and abs(mean_var - s**2) > 4.5 * stderr)  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"nnx.BatchNorm's running variance after 50 batches equals the EMA (momentum {momentum}) of the "
        f"biased batch variances ({recurrence.describe()}), and the custom-VJP BatchNorm's equals Flax's "
        f"(max rel err {drop_in.max_rel_err:.1e}); over {steps} batches of {m} from N(3, {s:g}^2) the mean batch "
        f"variance is {mean_var:.3f} +/- {stderr:.3f}: (m-1)/m s^2 = {biased:.3f} (SymPy), not s^2 = {s**2:g}",
        max_abs_err=recurrence.max_abs_err,
        max_rel_err=recurrence.max_rel_err,
        samples=steps,
        dtype=recurrence.dtype,
        details={"mean_batch_variance": mean_var, "standard_error": stderr, "expected_biased": biased},
    )


@claim(
    "normalization/the-notes-formula-needs-epsilon",
    sources=["S001-09"],
    says="x_hat = (x - E[x]) / sqrt(Var[x]), where Var[x] is the batch's standard deviation.",
    expected="qualified",
    correction="Var[x] is the (biased) batch variance, its square root the standard deviation; and the formula "
    "needs epsilon under the root: for a constant feature (variance 0) the note's formula gives 0/0 = NaN, "
    "while with epsilon the output is beta and the gradient is finite, its gain bounded by gamma/sqrt(epsilon).",
)
def _epsilon() -> Evidence:
    rng = np.random.default_rng(9)
    x_in = jnp.asarray(rng.normal(size=(16, 3))).at[:, 1].set(2.5)  # feature 1 is constant
    upstream = jnp.asarray(rng.normal(size=(16, 3)))
    without = normalize(x_in, (0,), 0.0)
    module = flax_batchnorm(3)
    y = module(x_in)
    dx, dscale, dbias = module_vjp(flax_batchnorm(3), x_in, upstream)
    ours = _custom_vjp_backward(x_in, jnp.ones(3), upstream, EPS, (0,))
    finite = all(bool(jnp.all(jnp.isfinite(v))) for v in (y, dx, dscale, dbias, *ours))
    gain = float(jnp.max(jnp.abs(dx[:, 1])) / jnp.max(jnp.abs(upstream[:, 1])))
    same = compare(lambda: ours[0], lambda: dx, [], rtol=RTOL)
    ok = (bool(jnp.all(jnp.isnan(without[:, 1]))) and bool(jnp.all(jnp.isfinite(without[:, [0, 2]]))) and finite
          and bool(jnp.all(y[:, 1] == 0.0)) and gain <= 2 / np.sqrt(EPS) and same.ok)  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"a (16, 3) batch whose feature 1 is constant: without epsilon that feature normalizes to "
        f"{float(without[0, 1])}; nnx.BatchNorm (epsilon = {EPS:g}) outputs exactly beta = 0 there, and its "
        f"gradients (and the custom-VJP's, {same.describe()}) are finite; |dx|/|dy| on that feature "
        f"is {gain:.1f} <= 2/sqrt(epsilon) = {2 / np.sqrt(EPS):.0f}",
        max_abs_err=same.max_abs_err,
        max_rel_err=same.max_rel_err,
        samples=16,
        dtype="float64",
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
    "and can move them out again). It does not remove outliers: BN is an affine map per feature, so an outlier "
    "keeps its standardized distance from the rest of the batch.",
)
def _saturation() -> Evidence:
    rng = np.random.default_rng(21)
    shifts = (0.0, 4.0, 8.0)
    before, after = {}, {}
    module = flax_batchnorm(1)
    for shift in shifts:
        z = jnp.asarray(rng.normal(shift, 3.0, (4096, 1)))
        before[shift] = float(jnp.mean(jax.vmap(jax.grad(jax.nn.sigmoid))(z[:, 0])))
        after[shift] = float(jnp.mean(jax.vmap(jax.grad(jax.nn.sigmoid))(module(z)[:, 0])))
    batch = jnp.asarray(rng.normal(0, 1, (64, 1))).at[0, 0].set(25.0)

    def standardized(v):
        return float((v[0, 0] - jnp.mean(v[1:])) / jnp.std(v[1:]))

    outlier_before, outlier_after = standardized(batch), standardized(module(batch))
    ok = (all(after[s] > 0.18 for s in shifts) and before[8.0] < 0.05 and before[8.0] < after[8.0] / 4
          and abs(outlier_before - outlier_after) <= 1e-9 * abs(outlier_before))  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary="mean sigmoid'(z) over 4096 pre-activations z ~ N(shift, 3^2), before / after nnx.BatchNorm: "
        + ", ".join(f"shift {s:g}: {before[s]:.3f} / {after[s]:.3f}" for s in shifts)
        + f"; an outlier sits {outlier_before:.2f} standard deviations from the rest of its batch before BN and "
        f"{outlier_after:.2f} after",
        samples=4096 * len(shifts),
        dtype="float64",
        details={"before": before, "after": after, "outlier_z": [outlier_before, outlier_after]},
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
        samples=len(results),
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
        samples=SHAPE[0] * SHAPE[-1],
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
        samples=2,
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


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "normalization"]) or main(["check", "normalization"]))
