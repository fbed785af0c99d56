"""Data: feature standardisation and the least-squares Hessian, z-score and min-max, Mixup, class weighting
versus oversampling, derived in SymPy and settled by measurement.

Seeds: S002-01, S002-02, S002-42, S001-14, S002-33, S004-11, S004-05 (the affine pixel maps; the rest of
S004-05 is in the appendix). Run ``python -m derivations.data`` to print the derivations and check the
claims.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations import bridge
from derivations.claims import derivation

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
    x = jax.device_put(x) if isinstance(x, np.ndarray) else jnp.asarray(x)  # no staging program per shape
    if ddof not in (0, 1):
        raise ValueError(f"zscore: ddof must be 0 or 1, got {ddof}")
    if x.ndim == 0 or x.shape[axis] < 2:
        raise ValueError(f"zscore: need at least 2 values along axis {axis}, got shape {x.shape}")
    scaled, constant = _zscore(x, axis, ddof)
    if bool(constant):
        raise ValueError("zscore: a constant feature (std 0) has no z-score; drop it first")
    return scaled


@functools.partial(jax.jit, static_argnums=(1, 2))
def _zscore(x: jax.Array, axis: int, ddof: int) -> tuple[jax.Array, jax.Array]:
    """The z-score and whether some feature is constant, in one program (eager ops compile one each)."""
    std = jnp.std(x, axis=axis, ddof=ddof, keepdims=True)
    return (x - jnp.mean(x, axis=axis, keepdims=True)) / std, jnp.any(std == 0)


def min_max(x: jax.Array, *, axis: int = 0) -> jax.Array:
    """(x - min) / (max - min) along ``axis`` (S002-02): min goes to 0, max to 1, the rest in between."""
    x = jax.device_put(x) if isinstance(x, np.ndarray) else jnp.asarray(x)  # no staging program per shape
    if x.ndim == 0 or x.shape[axis] < 2:
        raise ValueError(f"min_max: need at least 2 values along axis {axis}, got shape {x.shape}")
    scaled, constant = _min_max(x, axis)
    if bool(constant):
        raise ValueError("min_max: a constant feature (max == min) cannot be rescaled")
    return scaled


@functools.partial(jax.jit, static_argnums=1)
def _min_max(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
    """The rescaled values and whether some feature is constant, in one program."""
    low, high = jnp.min(x, axis=axis, keepdims=True), jnp.max(x, axis=axis, keepdims=True)
    return (x - low) / (high - low), jnp.any(high == low)


def least_squares_loss(theta: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """(1 / 2n) ||[1, x] theta - y||^2: linear regression with an intercept (theta[0])."""
    return 0.5 * jnp.mean((theta[0] + x @ theta[1:] - y) ** 2)


numeric_hessian = jax.jit(jax.hessian(least_squares_loss))  # autodiff Hessian in theta, one compile per shape
_loss = jax.jit(least_squares_loss)


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
    hessian = numeric_hessian(theta0, x, y)
    optimum = _loss(_lstsq(x, y), x, y)
    rate = 1.0 / jnp.linalg.eigvalsh(hessian)[-1]
    target = tol * (_loss(theta0, x, y) - optimum)
    return int(_gd_loop(x, y, rate, optimum, target, max_steps))


@functools.partial(jax.jit, static_argnums=5)
def _gd_loop(x, y, rate, optimum, target, max_steps):
    """optax.sgd at ``rate`` from theta = 0 until the excess loss is at most ``target``: one compile per shape."""
    optimizer = optax.sgd(rate)
    theta0 = jnp.zeros(x.shape[1] + 1, dtype=x.dtype)
    grad = jax.grad(least_squares_loss)

    def not_done(state):
        theta, _, step = state
        return (least_squares_loss(theta, x, y) - optimum > target) & (step < max_steps)

    def step_once(state):
        theta, opt_state, step = state
        updates, opt_state = optimizer.update(grad(theta, x, y), opt_state)
        return optax.apply_updates(theta, updates), opt_state, step + 1

    return jax.lax.while_loop(not_done, step_once, (theta0, optimizer.init(theta0), 0))[2]


@jax.jit
def _lstsq(x: jax.Array, y: jax.Array) -> jax.Array:
    design = jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), x], axis=1)
    return jnp.linalg.lstsq(design, y)[0]


def _features(
    n: int = 2000, seed: int = 0, *, scales=(2.0, 0.1), means=(3.0, 0.5), correlation: float = 0.3,
    coefficients=(0.7, -4.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated features (``correlation``) with the given means and standard deviations, and a linear
    target 1 + x @ coefficients with noise (by default a mean of 3 and std 2; a mean of 0.5 and std 0.1)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    base[:, 1] = correlation * base[:, 0] + np.sqrt(1 - correlation**2) * base[:, 1]
    x = base * np.asarray(scales) + np.asarray(means)
    y = 1.0 + x @ np.asarray(coefficients, dtype=np.float64) + rng.normal(0.0, 0.5, n)
    return x, y


# Three zero-mean features whose z-scored least-squares Hessian is worse conditioned than the raw one (found by a
# search over random covariances): z-scoring is a diagonal (Jacobi) rescaling, near the best diagonal scaling but
# not always better than none (van der Sluis 1969).
JACOBI_COUNTEREXAMPLE = ((7.88, -2.61, -7.52), (-2.61, 1.33, 2.50), (-7.52, 2.50, 7.29))


def features_with_covariance(n: int, covariance, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` zero-mean features whose population covariance is exactly ``covariance`` (Gaussian draws whitened,
    then coloured by its Cholesky factor), and a linear target with noise."""
    covariance = np.asarray(covariance, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, covariance.shape[0]))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x.T, bias=True))).T @ np.linalg.cholesky(covariance).T
    y = 1.0 + x @ np.linspace(0.7, -4.0, covariance.shape[0]) + rng.normal(0.0, 0.5, n)
    return x, y


# --- derivations -------------------------------------------------------------------------------------


@derivation
@bridge.cache
def least_squares_hessian() -> sp.Eq:
    """The least-squares Hessian with an intercept is the second-moment matrix of [1, x1, x2] (S002-01):
    means mu, standard deviations sigma and correlation r of the two features (population moments)."""
    return sp.Eq(sp.MatrixSymbol("H", 3, 3), hessian_of_moments(), evaluate=False)


def hessian_of_moments(
    m1: sp.Expr = mu1, m2: sp.Expr = mu2, d1: sp.Expr = s1, d2: sp.Expr = s2, rho: sp.Expr = r
) -> sp.Matrix:
    mean = sp.Matrix([1, m1, m2])
    covariance = sp.Matrix([[0, 0, 0], [0, d1**2, rho * d1 * d2], [0, rho * d1 * d2, d2**2]])
    return sp.ImmutableMatrix(covariance + mean * mean.T)


@derivation
@bridge.cache
def standardised_hessian_condition_number() -> list[sp.Eq]:
    """After z-scoring (mu = 0, sigma = 1) the Hessian is diag(1, [[1, r], [r, 1]]): eigenvalues 1 and
    1 +- r, so its condition number depends only on the correlation r (S002-01)."""
    h = hessian_of_moments(0, 0, 1, 1)
    eigenvalues = sorted(h.eigenvals(), key=sp.default_sort_key)
    kappa = standardised_condition_number()
    return [
        sp.Eq(sp.Symbol("H_z"), h, evaluate=False),
        sp.Eq(sp.Symbol("eigenvalues"), sp.Matrix([eigenvalues]), evaluate=False),
        sp.Eq(sp.Symbol("kappa_z"), kappa, evaluate=False),
    ]


def standardised_condition_number() -> sp.Expr:
    """(1 + |r|) / (1 - |r|): the condition number of the standardised least-squares Hessian."""
    return (1 + sp.Abs(r)) / (1 - sp.Abs(r))


@derivation
@bridge.cache
def gradient_descent_step_bound() -> sp.Eq:
    """Gradient descent with step 1/L on a quadratic shrinks the excess loss along the slowest eigenvector
    by (1 - 1/kappa)^2 per step, so reaching a fraction epsilon of the start takes at most this many steps."""
    kappa, eps = sp.symbols("kappa epsilon", positive=True)
    return sp.Eq(sp.Symbol("T"), sp.ceiling(sp.log(eps) / (2 * sp.log(1 - 1 / kappa))), evaluate=False)


def gd_step_bound(kappa: float, tol: float) -> int:
    return int(np.ceil(np.log(tol) / (2 * np.log1p(-1.0 / kappa))))


@derivation
@bridge.cache
def zscore_moments() -> list[sp.Eq]:
    """z-scored data has mean 0 and (population) variance 1, exactly, for any n values (here n = 4)."""
    xs = sp.symbols("x1:5", real=True)
    mean, std = _mean(xs), sp.sqrt(_mean([(v - _mean(xs)) ** 2 for v in xs]))
    z = [(v - mean) / std for v in xs]
    return [
        sp.Eq(sp.Symbol("mean(z)"), sp.simplify(_mean(z)), evaluate=False),
        sp.Eq(sp.Symbol("mean(z^2)"), sp.simplify(_mean([v**2 for v in z])), evaluate=False),
    ]


def _mean(values) -> sp.Expr:
    return sp.Add(*values) / len(values)


@derivation
@bridge.cache
def skewness_is_affine_invariant() -> sp.Eq:
    """Skewness m3 / m2^(3/2) is unchanged by x -> a x + b with a > 0 (central moments scale as a^k), so
    z-scoring cannot make skewed data symmetric, let alone normal (S002-02)."""
    a, m2, m3 = sp.symbols("a m_2 m_3", positive=True)
    return sp.Eq(sp.Symbol("skew(a x + b)"), sp.simplify(a**3 * m3 / (a**2 * m2) ** sp.Rational(3, 2)), evaluate=False)


def cross_entropy(probabilities, target) -> sp.Expr:
    return -sum(t * sp.log(q) for t, q in zip(target, probabilities, strict=True))


def mixup_symbols(k: int = 3):
    probs = sp.symbols(f"p1:{k + 1}", positive=True)
    first = sp.symbols(f"a1:{k + 1}", real=True)
    second = sp.symbols(f"b1:{k + 1}", real=True)
    return probs, first, second


@derivation
@bridge.cache
def mixup_loss_is_linear_in_the_target() -> sp.Eq:
    """Cross-entropy is linear in the target, so the loss on a Mixup label is the mix of the two losses
    (S002-42), for any predicted probabilities p and targets a, b (K = 3)."""
    probs, first, second = mixup_symbols()
    mixed = [lam * u + (1 - lam) * v for u, v in zip(first, second, strict=True)]
    return sp.Eq(
        cross_entropy(probs, mixed),
        lam * cross_entropy(probs, first) + (1 - lam) * cross_entropy(probs, second),
        evaluate=False,
    )


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
@bridge.cache
def class_weighting_equals_oversampling() -> sp.Eq:
    """The class-weighted loss sum_i w_{y_i} l_i / sum_i w_{y_i} has the gradient that one example drawn
    from the data with class c copied w_c times has in expectation (S001-14, S002-33, S004-11)."""
    _, expected = oversampling_expected_gradient()
    return sp.Eq(sp.Symbol("E_oversample[g]"), sp.factor(expected), evaluate=False)


# --- measuring helpers ------------------------------------------------------------------------------------------


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "data"]) or main(["check", "data"]))
