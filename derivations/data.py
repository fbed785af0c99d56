"""Data: feature standardisation and the least-squares Hessian, z-score and min-max, Mixup, class weighting
versus oversampling, derived in SymPy and settled by measurement.

Seeds: S002-01, S002-02, S002-42, S001-14, S002-33, S004-11, S004-05 (the affine pixel maps; the rest of
S004-05 is in the appendix). Run ``python -m derivations.data`` to print the derivations and check the
claims.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats
import sympy as sp
from flax import nnx

from derivations.bridge import prove_identity
from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict

mu1, mu2 = sp.symbols("mu_1 mu_2", real=True)
s1, s2 = sp.symbols("sigma_1 sigma_2", positive=True)
r = sp.Symbol("r", real=True)  # the correlation of the two features
lam = sp.Symbol("lambda", nonnegative=True)

# Monte-Carlo means must lie within this many standard errors of the exact value (two-sided p ~ 7e-6
# per component, so a correct check fails about once in 10^5 runs; the seeds are fixed anyway).
MC_Z = 4.5


# --- public helpers ---------------------------------------------------------------------------------


def zscore(x: jax.Array, *, axis: int = 0, ddof: int = 0) -> jax.Array:
    """(x - mean) / std along ``axis`` (S002-02). With ``ddof=0`` (the population std, the choice made
    here and by ``jnp.std``) the result has standard deviation exactly 1; with ``ddof=1`` it is
    sqrt((n - 1) / n)."""
    x = jnp.asarray(x)
    if ddof not in (0, 1):
        raise ValueError(f"zscore: ddof must be 0 or 1, got {ddof}")
    if x.ndim == 0 or x.shape[axis] < 2:
        raise ValueError(f"zscore: need at least 2 values along axis {axis}, got shape {x.shape}")
    std = jnp.std(x, axis=axis, ddof=ddof, keepdims=True)
    if bool(jnp.any(std == 0)):
        raise ValueError("zscore: a constant feature (std 0) has no z-score; drop it first")
    return (x - jnp.mean(x, axis=axis, keepdims=True)) / std


def min_max(x: jax.Array, *, axis: int = 0) -> jax.Array:
    """(x - min) / (max - min) along ``axis`` (S002-02): min goes to 0, max to 1, the rest in between."""
    x = jnp.asarray(x)
    if x.ndim == 0 or x.shape[axis] < 2:
        raise ValueError(f"min_max: need at least 2 values along axis {axis}, got shape {x.shape}")
    low, high = jnp.min(x, axis=axis, keepdims=True), jnp.max(x, axis=axis, keepdims=True)
    if bool(jnp.any(high == low)):
        raise ValueError("min_max: a constant feature (max == min) cannot be rescaled")
    return (x - low) / (high - low)


def least_squares_loss(theta: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """(1 / 2n) ||[1, x] theta - y||^2: linear regression with an intercept (theta[0])."""
    return 0.5 * jnp.mean((theta[0] + x @ theta[1:] - y) ** 2)


def gd_steps_to_accuracy(x: jax.Array, y: jax.Array, *, tol: float = 1e-8, max_steps: int = 200_000) -> int:
    """Steps of gradient descent (optax.sgd, learning rate 1/L with L the Hessian's largest eigenvalue)
    from theta = 0 until the excess loss is below ``tol`` times its initial value (S002-01).
    Returns ``max_steps`` if it has not got there by then."""
    if not 0 < tol < 1:
        raise ValueError(f"gd_steps_to_accuracy: tol must be in (0, 1), got {tol}")
    if max_steps < 1:
        raise ValueError(f"gd_steps_to_accuracy: max_steps must be >= 1, got {max_steps}")
    x, y = jnp.asarray(x), jnp.asarray(y)
    theta0 = jnp.zeros(x.shape[1] + 1, dtype=x.dtype)
    hessian = jax.hessian(least_squares_loss)(theta0, x, y)
    optimum = least_squares_loss(_lstsq(x, y), x, y)
    optimizer = optax.sgd(1.0 / float(jnp.linalg.eigvalsh(hessian)[-1]))
    target = tol * (least_squares_loss(theta0, x, y) - optimum)
    grad = jax.grad(least_squares_loss)

    def not_done(state):
        theta, _, step = state
        return (least_squares_loss(theta, x, y) - optimum > target) & (step < max_steps)

    def step_once(state):
        theta, opt_state, step = state
        updates, opt_state = optimizer.update(grad(theta, x, y), opt_state)
        return optax.apply_updates(theta, updates), opt_state, step + 1

    _, _, steps = jax.jit(lambda: jax.lax.while_loop(not_done, step_once, (theta0, optimizer.init(theta0), 0)))()
    return int(steps)


def _lstsq(x: jax.Array, y: jax.Array) -> jax.Array:
    design = jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x], axis=1)
    return jnp.linalg.lstsq(design, y)[0]


def _features(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated features on different scales (a mean of 3 and std 2; a mean of 0.5 and std 0.1),
    and a linear target with noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    base[:, 1] = 0.3 * base[:, 0] + np.sqrt(1 - 0.3**2) * base[:, 1]
    x = base * np.array([2.0, 0.1]) + np.array([3.0, 0.5])
    y = 1.0 + x @ np.array([0.7, -4.0]) + rng.normal(0.0, 0.5, n)
    return x, y


# --- derivations -------------------------------------------------------------------------------------


@derivation
def least_squares_hessian() -> sp.Eq:
    """The least-squares Hessian with an intercept is the second-moment matrix of [1, x1, x2] (S002-01):
    means mu, standard deviations sigma and correlation r of the two features (population moments)."""
    return sp.Eq(sp.MatrixSymbol("H", 3, 3), hessian_of_moments(), evaluate=False)


def hessian_of_moments(m1: sp.Expr = mu1, m2: sp.Expr = mu2, d1: sp.Expr = s1, d2: sp.Expr = s2,
                       rho: sp.Expr = r) -> sp.Matrix:
    mean = sp.Matrix([1, m1, m2])
    covariance = sp.Matrix([[0, 0, 0], [0, d1**2, rho * d1 * d2], [0, rho * d1 * d2, d2**2]])
    return sp.ImmutableMatrix(covariance + mean * mean.T)


@derivation
def standardised_hessian_condition_number() -> list[sp.Eq]:
    """After z-scoring (mu = 0, sigma = 1) the Hessian is diag(1, [[1, r], [r, 1]]): eigenvalues 1 and
    1 +- r, so its condition number depends only on the correlation r (S002-01)."""
    h = hessian_of_moments(0, 0, 1, 1)
    eigenvalues = sorted(h.eigenvals(), key=sp.default_sort_key)
    kappa = standardised_condition_number()
    return [sp.Eq(sp.Symbol("H_z"), h, evaluate=False),
            sp.Eq(sp.Symbol("eigenvalues"), sp.Matrix([eigenvalues]), evaluate=False),
            sp.Eq(sp.Symbol("kappa_z"), kappa, evaluate=False)]


def standardised_condition_number() -> sp.Expr:
    """(1 + |r|) / (1 - |r|): the condition number of the standardised least-squares Hessian."""
    return (1 + sp.Abs(r)) / (1 - sp.Abs(r))


@derivation
def gradient_descent_step_bound() -> sp.Eq:
    """Gradient descent with step 1/L on a quadratic shrinks the excess loss along the slowest eigenvector
    by (1 - 1/kappa)^2 per step, so reaching a fraction epsilon of the start takes at most this many steps."""
    kappa, eps = sp.symbols("kappa epsilon", positive=True)
    return sp.Eq(sp.Symbol("T"), sp.ceiling(sp.log(eps) / (2 * sp.log(1 - 1 / kappa))), evaluate=False)


def gd_step_bound(kappa: float, tol: float) -> int:
    return int(np.ceil(np.log(tol) / (2 * np.log1p(-1.0 / kappa))))


@derivation
def zscore_moments() -> list[sp.Eq]:
    """z-scored data has mean 0 and (population) variance 1, exactly, for any n values (here n = 4)."""
    xs = sp.symbols("x1:5", real=True)
    mean, std = _mean(xs), sp.sqrt(_mean([(v - _mean(xs)) ** 2 for v in xs]))
    z = [(v - mean) / std for v in xs]
    return [sp.Eq(sp.Symbol("mean(z)"), sp.simplify(_mean(z)), evaluate=False),
            sp.Eq(sp.Symbol("mean(z^2)"), sp.simplify(_mean([v**2 for v in z])), evaluate=False)]


def _mean(values) -> sp.Expr:
    return sp.Add(*values) / len(values)


@derivation
def skewness_is_affine_invariant() -> sp.Eq:
    """Skewness m3 / m2^(3/2) is unchanged by x -> a x + b with a > 0 (central moments scale as a^k), so
    z-scoring cannot make skewed data symmetric, let alone normal (S002-02)."""
    a, m2, m3 = sp.symbols("a m_2 m_3", positive=True)
    return sp.Eq(sp.Symbol("skew(a x + b)"), sp.simplify(a**3 * m3 / (a**2 * m2) ** sp.Rational(3, 2)),
                 evaluate=False)


def cross_entropy(probabilities, target) -> sp.Expr:
    return -sum(t * sp.log(q) for t, q in zip(target, probabilities, strict=True))


def mixup_symbols(k: int = 3):
    probs = sp.symbols(f"p1:{k + 1}", positive=True)
    first = sp.symbols(f"a1:{k + 1}", real=True)
    second = sp.symbols(f"b1:{k + 1}", real=True)
    return probs, first, second


@derivation
def mixup_loss_is_linear_in_the_target() -> sp.Eq:
    """Cross-entropy is linear in the target, so the loss on a Mixup label is the mix of the two losses
    (S002-42), for any predicted probabilities p and targets a, b (K = 3)."""
    probs, first, second = mixup_symbols()
    mixed = [lam * u + (1 - lam) * v for u, v in zip(first, second, strict=True)]
    return sp.Eq(cross_entropy(probs, mixed),
                 lam * cross_entropy(probs, first) + (1 - lam) * cross_entropy(probs, second), evaluate=False)


def oversampling_expected_gradient(k: int = 3) -> tuple[sp.Expr, sp.Expr]:
    """(gradient of the class-weighted loss, expected gradient of one oversampled example) for k classes
    with n_c examples, weight w_c and mean per-example gradient g_c."""
    n = sp.symbols(f"n1:{k + 1}", positive=True)
    w = sp.symbols(f"w1:{k + 1}", positive=True)
    g = sp.symbols(f"g1:{k + 1}", real=True)
    total = sum(nc * wc for nc, wc in zip(n, w, strict=True))
    weighted = sum(wc * nc * gc for nc, wc, gc in zip(n, w, g, strict=True)) / total
    # Copying each example of class c w_c times and drawing a copy uniformly picks class c with
    # probability n_c w_c / sum_k n_k w_k, and within it each example equally often.
    expected = sum((nc * wc / total) * gc for nc, wc, gc in zip(n, w, g, strict=True))
    return weighted, expected


@derivation
def class_weighting_equals_oversampling() -> sp.Eq:
    """The class-weighted loss sum_i w_{y_i} l_i / sum_i w_{y_i} has the gradient that one example drawn
    from the data with class c copied w_c times has in expectation (S001-14, S002-33, S004-11)."""
    _, expected = oversampling_expected_gradient()
    return sp.Eq(sp.Symbol("E_oversample[g]"), sp.factor(expected), evaluate=False)


# --- claims ------------------------------------------------------------------------------------------


@claim(
    "data/standardising-features-shrinks-the-hessian-condition-number",
    sources=["S002-01"],
    says="Normalising/standardising features speeds up the convergence of the learning algorithm.",
    expected="holds",
    tolerance="Hessian entries that are exactly 0 in theory (the z-scored features' means) are compared to an "
    "absolute 1e-12; the rest to the standard relative 1e-10",
)
def _standardising_speeds_up() -> Evidence:
    x, y = _features()
    raw, std = jnp.asarray(x), zscore(jnp.asarray(x))
    theta0 = jnp.zeros(3)
    numbers, errors = {}, []
    for name, data in (("raw", raw), ("z-scored", std)):
        hessian = jax.hessian(least_squares_loss)(theta0, data, jnp.asarray(y))
        m, d = np.mean(np.asarray(data), axis=0), np.std(np.asarray(data), axis=0)
        rho = np.corrcoef(np.asarray(data).T)[0, 1]
        formula = sp.lambdify([mu1, mu2, s1, s2, r], hessian_of_moments(), "numpy")(*m, *d, rho)
        # Entries that are 0 in exact arithmetic (the z-scored means) come out ~1e-17: compared absolutely.
        cmp = compare(lambda f=formula: jnp.asarray(f, dtype=jnp.float64), lambda h=hessian: h, [], atol=1e-12)
        errors.append(cmp)
        kappa = float(np.linalg.cond(np.asarray(hessian)))
        steps = gd_steps_to_accuracy(data, jnp.asarray(y), tol=1e-8)
        numbers[name] = {"condition_number": kappa, "gd_steps": steps, "step_bound": gd_step_bound(kappa, 1e-8)}
    rho = float(np.corrcoef(x.T)[0, 1])
    kappa_z = float(standardised_condition_number().subs(r, rho))
    kappa_z_ok = abs(kappa_z - numbers["z-scored"]["condition_number"]) <= 1e-10 * kappa_z
    within_bound = all(v["gd_steps"] <= v["step_bound"] for v in numbers.values())
    faster = numbers["raw"]["gd_steps"] >= 100 * numbers["z-scored"]["gd_steps"]
    ok = all(c.ok for c in errors) and kappa_z_ok and within_bound and faster
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"jax.hessian of the least-squares loss equals the SymPy moment matrix (raw: max rel err "
        f"{errors[0].max_rel_err:.1e}; z-scored: max abs err {errors[1].max_abs_err:.1e}); condition number raw "
        f"{numbers['raw']['condition_number']:.0f}, "
        f"z-scored {numbers['z-scored']['condition_number']:.3f} = (1+|r|)/(1-|r|) at r = {rho:.3f}; GD (lr 1/L) "
        f"to 1e-8 of the initial excess loss: {numbers['raw']['gd_steps']} steps raw vs "
        f"{numbers['z-scored']['gd_steps']} z-scored (bounds {numbers['raw']['step_bound']}, "
        f"{numbers['z-scored']['step_bound']})",
        max_abs_err=max(c.max_abs_err for c in errors),
        max_rel_err=errors[0].max_rel_err,  # the z-scored matrix has zeros, where only the absolute error counts
        samples=int(x.shape[0]),
        dtype="float64",
        details={"correlation": rho, "kappa_z_formula": kappa_z, **numbers},
    )


@claim(
    "data/standardising-does-not-change-the-least-squares-fit",
    sources=["S002-01"],
    says="Putting features on the same scale reduces the influence of high-variance features and makes the "
    "model more accurate.",
    expected="qualified",
    correction="Not for a model with a free affine first layer trained to its optimum: least squares on raw "
    "or z-scored features makes the same predictions (z-scoring is an invertible affine map the weights "
    "absorb). Scaling changes the result only when something else depends on the scale: a penalty such "
    "as ridge's ||w||^2, a distance (k-NN, RBF kernels), or a training run stopped early.",
)
def _standardising_same_fit() -> Evidence:
    x, y = _features()
    raw, std = jnp.asarray(x), zscore(jnp.asarray(x))
    design = [jnp.concatenate([jnp.ones((x.shape[0], 1)), data], axis=1) for data in (raw, std)]
    fits = [d @ _lstsq(data, jnp.asarray(y)) for d, data in zip(design, (raw, std), strict=True)]
    same = compare(lambda: fits[1], lambda: fits[0], [])

    def ridge(d: jax.Array, penalty: float = 50.0) -> jax.Array:
        gram = d.T @ d + penalty * jnp.diag(jnp.asarray([0.0, 1.0, 1.0]))  # the intercept is not penalised
        return d @ jnp.linalg.solve(gram, d.T @ jnp.asarray(y))

    ridge_raw, ridge_std = ridge(design[0]), ridge(design[1])
    ridge_gap = float(jnp.max(jnp.abs(ridge_raw - ridge_std)) / jnp.std(jnp.asarray(y)))
    ok = same.ok and ridge_gap > 1e-2
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"least-squares predictions on raw vs z-scored features: {same.describe()}; ridge "
        f"(penalty 50) predictions differ by up to {ridge_gap:.2f} target standard deviations",
        max_abs_err=same.max_abs_err,
        max_rel_err=same.max_rel_err,
        samples=same.samples,
        dtype=same.dtype,
        details={"ridge_max_gap_in_target_std": ridge_gap},
    )


@claim(
    "data/z-score-gives-mean-zero-and-standard-deviation-one",
    sources=["S002-02"],
    says="z-score standardisation x' = (x - mu) / sigma gives data with mean 0 and standard deviation 1.",
    expected="holds",
)
def _zscore_moments() -> Evidence:
    steps = zscore_moments()
    proved = steps[0].rhs == 0 and steps[1].rhs == 1
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.exponential(3.0, (10_000, 3)) + 100.0)
    z = zscore(x)
    mean_err = float(jnp.max(jnp.abs(jnp.mean(z, axis=0))))
    std_err = float(jnp.max(jnp.abs(jnp.std(z, axis=0) - 1)))
    sample_std = float(jnp.std(zscore(x, ddof=1), axis=0)[0])
    ok = proved and mean_err <= 1e-12 and std_err <= 1e-12
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="symbolic",
        summary=f"SymPy: mean(z) = {steps[0].rhs}, mean(z^2) = {steps[1].rhs} for any 4 values; 10000 x 3 "
        f"float64 values: |mean| <= {mean_err:.1e}, |std - 1| <= {std_err:.1e}. With the unbiased sigma "
        f"(ddof 1) the population std is {sample_std:.6f}, not 1",
        max_abs_err=max(mean_err, std_err),
        samples=int(x.size),
        dtype=str(z.dtype),
        details={"std_with_ddof_1": sample_std},
    )


@claim(
    "data/z-score-does-not-make-data-normal",
    sources=["S002-02"],
    says="After z-score standardisation the data follow the standard normal distribution (mean 0, std 1).",
    expected="refuted",
    correction="z-scoring is an affine map: it fixes the mean and the standard deviation but keeps the shape. "
    "Skewness and kurtosis are unchanged, so exponential data stay exponential (skewness 2, excess "
    "kurtosis 6); only normal data come out standard normal.",
)
def _zscore_not_normal() -> Evidence:
    invariant = skewness_is_affine_invariant()
    m2, m3 = sp.symbols("m_2 m_3", positive=True)
    proved = sp.simplify(invariant.rhs - m3 / m2 ** sp.Rational(3, 2)) == 0
    n = 100_000
    x = np.random.default_rng(2).exponential(1.0, n)
    z = np.asarray(zscore(jnp.asarray(x)))
    before = (float(scipy.stats.skew(x)), float(scipy.stats.kurtosis(x)))
    after = (float(scipy.stats.skew(z)), float(scipy.stats.kurtosis(z)))
    skew_se = float(np.sqrt(6.0 / n))
    unchanged = all(abs(a - b) <= 1e-10 * abs(b) for a, b in zip(after, before, strict=True))
    test = scipy.stats.normaltest(z)
    # The note is refuted if the z-scored data are measurably non-normal: skewness far from 0.
    normal = abs(after[0]) <= MC_Z * skew_se and test.pvalue > 1e-3
    # Refuted when the shape is provably kept and the z-scored data are measurably not normal; "holds"
    # (a failing claim) if either part of the check breaks.
    return Evidence(
        verdict=verdict(proved and unchanged and not normal, "refuted", "holds"),
        method="measurement",
        summary=f"SymPy: skew(a x + b) = m3/m2^(3/2) for a > 0; {n} exponential draws: skewness {before[0]:.3f} "
        f"-> {after[0]:.3f}, excess kurtosis {before[1]:.3f} -> {after[1]:.3f} after z-scoring (normal: 0 and 0; "
        f"standard error of the skewness {skew_se:.4f}); D'Agostino normality test p = {test.pvalue:.1e}",
        max_abs_err=max(abs(a - b) for a, b in zip(after, before, strict=True)),
        samples=n,
        dtype="float64",
        details={"skew_before": before[0], "skew_after": after[0], "kurtosis_before": before[1],
                 "kurtosis_after": after[1], "skew_standard_error": skew_se, "normaltest_p": float(test.pvalue)},
    )


@claim(
    "data/min-max-and-pixel-scaling-map-onto-their-ranges",
    sources=["S002-02", "S004-05"],
    says="Min-max normalisation (x - min) / (max - min) maps the data onto [0, 1]; Inception-style "
    "preprocessing scales pixels linearly to [-1, 1]; VGG/ResNet-style subtracts the training mean.",
    expected="holds",
    tolerance="the maximum maps to 1 within one float64 ulp (XLA divides by multiplying with the reciprocal)",
)
def _min_max() -> Evidence:
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(5.0, 3.0, (1000, 4)))
    u = min_max(x)
    # XLA divides by multiplying with the reciprocal, so max lands on 1 to within one ulp, not exactly.
    ulp = float(jnp.finfo(u.dtype).eps)
    ends_exact = bool(jnp.all(jnp.min(u, axis=0) == 0.0) and jnp.all(jnp.abs(jnp.max(u, axis=0) - 1.0) <= ulp))
    inside = bool(jnp.all((u >= 0) & (u <= 1)))
    pixels = jnp.arange(256, dtype=jnp.float64)
    inception = pixels / 127.5 - 1.0  # Keras' inception_v3.preprocess_input ("tf" mode)
    increasing = bool(jnp.all(jnp.diff(inception) > 0))
    inception_ok = float(inception[0]) == -1.0 and float(inception[-1]) == 1.0 and increasing
    images = jnp.asarray(rng.integers(0, 256, (16, 8, 8, 3)), dtype=jnp.float64)  # NHWC
    centred = images - jnp.mean(images, axis=(0, 1, 2))
    centred_mean = float(jnp.max(jnp.abs(jnp.mean(centred, axis=(0, 1, 2)))))
    ok = ends_exact and inside and inception_ok and centred_mean <= 1e-12
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"min-max on 1000 x 4 values: min -> 0 exactly and max -> 1 within one ulp: {ends_exact}, "
        f"all in [0, 1]: {inside}; "
        f"x / 127.5 - 1 maps pixel 0 -> {float(inception[0])}, 255 -> {float(inception[-1])}, increasing; "
        f"per-channel mean subtraction leaves |mean| <= {centred_mean:.1e}",
        max_abs_err=centred_mean,
        samples=int(x.size),
        dtype="float64",
    )


@claim(
    "data/mixup-loss-is-the-mix-of-the-two-losses",
    sources=["S002-42"],
    says="Mixup interpolates both the images and the labels linearly.",
    expected="holds",
)
def _mixup() -> Evidence:
    identity = mixup_loss_is_linear_in_the_target()
    probs, first, second = mixup_symbols()
    proof = prove_identity(identity.lhs, identity.rhs, [*probs, *first, *second, lam],
                           sampler=lambda rng, n: rng.uniform(0.05, 1.0, n))
    k, batch = 5, 64
    rng = np.random.default_rng(4)
    logits = jnp.asarray(rng.normal(0.0, 2.0, (batch, k)))
    y1 = jax.nn.one_hot(rng.integers(0, k, batch), k, dtype=jnp.float64)
    y2 = jax.nn.one_hot(rng.integers(0, k, batch), k, dtype=jnp.float64)
    weight = jnp.asarray(rng.beta(0.4, 0.4, (batch, 1)))  # Mixup's lambda ~ Beta(alpha, alpha)

    def mixed_label_loss(z):
        return optax.softmax_cross_entropy(z, weight * y1 + (1 - weight) * y2)

    def mixed_losses(z):
        share = weight[:, 0]
        return share * optax.softmax_cross_entropy(z, y1) + (1 - share) * optax.softmax_cross_entropy(z, y2)

    values = compare(mixed_label_loss, mixed_losses, [logits])
    grads = compare(jax.grad(lambda z: jnp.sum(mixed_label_loss(z))), jax.grad(lambda z: jnp.sum(mixed_losses(z))),
                    [logits])
    ok = proof.holds and values.ok and grads.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"SymPy: CE(p, lambda a + (1-lambda) b) = lambda CE(p, a) + (1-lambda) CE(p, b) "
        f"({'proved, ' + proof.how if proof.proved else 'numeric only'}); optax on {batch} mixed pairs: loss "
        f"{values.describe()}; gradient w.r.t. logits max rel err {grads.max_rel_err:.1e}",
        max_abs_err=max(values.max_abs_err, grads.max_abs_err),
        max_rel_err=max(values.max_rel_err, grads.max_rel_err),
        samples=batch,
        dtype=values.dtype,
    )


@claim(
    "data/class-weighting-matches-oversampling-in-expectation",
    sources=["S001-14", "S002-33", "S004-11"],
    says="Class imbalance is handled by giving the rare class a larger weight in the loss, or by oversampling "
    "it (repeating its examples).",
    expected="holds",
    tolerance=f"Monte-Carlo: each component of the mean oversampled gradient within {MC_Z} standard errors of "
    "the weighted-loss gradient",
)
def _weighting_vs_oversampling() -> Evidence:
    weighted, expected = oversampling_expected_gradient()
    proved = sp.simplify(weighted - expected) == 0
    counts, weights, features, k = (150, 40, 10), (1, 4, 15), 4, 3
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(k), counts)
    x = jnp.asarray(rng.normal(size=(labels.size, features)) + labels[:, None] * 0.5)
    model = nnx.Linear(features, k, rngs=nnx.Rngs(params=0), param_dtype=jnp.float64)
    graphdef, params = nnx.split(model)

    def example_loss(p, xi, yi):
        return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(xi), yi)

    def flat_grad(xi, yi):
        g = jax.grad(example_loss)(params, xi, yi)
        return jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(g)])

    per_example = jax.jit(jax.vmap(flat_grad))(x, jnp.asarray(labels))
    w = jnp.asarray(np.asarray(weights, dtype=np.float64)[labels])
    weighted_loss_grad = jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(jax.grad(
        lambda p: jnp.sum(w * jax.vmap(example_loss, (None, 0, 0))(p, x, jnp.asarray(labels))) / jnp.sum(w))(params))])
    copies = np.repeat(np.arange(labels.size), np.asarray(weights)[labels])  # class c copied w_c times
    draws = 200_000
    picks = rng.choice(copies, draws)
    sampled = np.asarray(per_example)[picks]
    mc_mean, mc_se = sampled.mean(axis=0), sampled.std(axis=0, ddof=1) / np.sqrt(draws)
    z_scores = np.abs(mc_mean - np.asarray(weighted_loss_grad)) / mc_se
    unweighted = np.asarray(per_example).mean(axis=0)
    z_unweighted = float(np.max(np.abs(mc_mean - unweighted) / mc_se))
    ok = proved and bool(np.all(z_scores <= MC_Z)) and z_unweighted > 10 * MC_Z
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"SymPy: E[gradient of one oversampled example] = weighted-loss gradient: {proved}; classes "
        f"{counts} with weights {weights}, nnx.Linear softmax classifier, {draws} oversampled draws: all "
        f"{z_scores.size} gradient components within {float(z_scores.max()):.2f} standard errors of "
        f"jax.grad of the weighted loss; the unweighted gradient is {z_unweighted:.0f} standard errors away",
        max_abs_err=float(np.max(np.abs(mc_mean - np.asarray(weighted_loss_grad)))),
        samples=draws,
        dtype="float64",
        details={"max_z": float(z_scores.max()), "unweighted_max_z": z_unweighted,
                 "max_standard_error": float(mc_se.max())},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "data"]) or main(["check", "data"]))
