"""Statistics: the bias-variance decomposition, the variance of an average of correlated models (bagging),
precision/recall/F1 and ROC-AUC, distance contrast in high dimension, polynomial and RBF kernels.

Seeds: S001-21, S001-22, S001-23, S004-07, S004-08, S004-15, S004-17 (narrative: S004-09, S004-13, in the
appendix). Run ``python -m derivations.statistics`` to print the derivations and check the claims.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations import bridge
from derivations.claims import derivation

sigma, rho = sp.symbols("sigma rho", positive=True)
n_models = sp.Symbol("n", positive=True, integer=True)
MC_Z = 4.5  # Monte-Carlo estimates must lie within this many standard errors of the exact value


# --- public helpers ---------------------------------------------------------------------------------


def confusion_counts(labels: jax.Array, predictions: jax.Array) -> dict[str, int]:
    """TP, FP, FN, TN of binary ``labels`` and ``predictions`` (both 0/1 arrays of one shape)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"confusion_counts: shapes differ, labels {labels.shape} vs predictions {predictions.shape}")
    for name, a in (("labels", labels), ("predictions", predictions)):
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"confusion_counts: {name} must be 0 or 1, got values {np.unique(a)[:5].tolist()}")
    return {
        "TP": int(np.sum((labels == 1) & (predictions == 1))),
        "FP": int(np.sum((labels == 0) & (predictions == 1))),
        "FN": int(np.sum((labels == 1) & (predictions == 0))),
        "TN": int(np.sum((labels == 0) & (predictions == 0))),
    }


def roc_auc_trapezoid(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoid rule over every distinct threshold (S001-21). A tie between
    a positive and a negative score moves the curve diagonally, which the trapezoid counts as 1/2."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(
            f"roc_auc_trapezoid: need 1-D labels and scores of one length, got {labels.shape} and {scores.shape}"
        )
    positives, negatives = int(np.sum(labels == 1)), int(np.sum(labels == 0))
    if positives == 0 or negatives == 0 or positives + negatives != labels.size:
        raise ValueError("roc_auc_trapezoid: labels must be 0/1 with at least one of each")
    thresholds = np.unique(scores)[::-1]
    tpr = np.concatenate([[0.0], [np.sum((scores >= t) & (labels == 1)) / positives for t in thresholds]])
    fpr = np.concatenate([[0.0], [np.sum((scores >= t) & (labels == 0)) / negatives for t in thresholds]])
    return float(np.trapezoid(tpr, fpr))


def pairwise_auc(labels: np.ndarray, scores: np.ndarray, *, tie: float = 0.5) -> float:
    """P(score of a random positive > score of a random negative) + ``tie`` P(equal), counted over all pairs."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if not 0.0 <= tie <= 1.0:
        raise ValueError(f"pairwise_auc: tie must be in [0, 1], got {tie}")
    pos, neg = scores[labels == 1][:, None], scores[labels == 0][None, :]
    if pos.size == 0 or neg.size == 0:
        raise ValueError("pairwise_auc: need at least one positive and one negative")
    return float(np.mean((pos > neg) + tie * (pos == neg)))


def relative_distance_contrast(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(max - min) / min of the Euclidean distances from each query (rows of ``queries``) to ``points``
    (S004-08)."""
    points, queries = np.asarray(points, dtype=np.float64), np.asarray(queries, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2 or queries.ndim != 2 or queries.shape[1] != points.shape[1]:
        raise ValueError(
            f"relative_distance_contrast: need (n >= 2, d) points and (q, d) queries, got "
            f"{points.shape} and {queries.shape}"
        )
    # |a - b| by differences, not |a|^2 + |b|^2 - 2 a.b, which cancels catastrophically for close points.
    distances = np.linalg.norm(points[None, :, :] - queries[:, None, :], axis=-1)
    nearest = distances.min(axis=1)
    if np.any(nearest == 0.0):
        raise ValueError("relative_distance_contrast: a query coincides with a point (min distance 0)")
    return (distances.max(axis=1) - nearest) / nearest


def polynomial_feature_map(x: list[sp.Expr], degree: int, c: sp.Expr) -> sp.Matrix:
    """The explicit features of (x^T y + c)^degree: one per exponent tuple (k_0, ..., k_n) summing to the
    degree, sqrt(multinomial * c^k_0) * prod x_i^k_i, so that phi(x)^T phi(y) is the multinomial
    expansion (S004-15). There are C(n + degree, degree) of them."""
    if degree < 1:
        raise ValueError(f"polynomial_feature_map: degree must be >= 1, got {degree}")
    if not x:
        raise ValueError("polynomial_feature_map: need at least one input variable")
    features = []
    for powers in itertools.product(range(degree + 1), repeat=len(x) + 1):
        if sum(powers) != degree:
            continue
        coefficient = math.factorial(degree) / sp.Mul(*[math.factorial(k) for k in powers])
        monomial = sp.Mul(*[v**k for v, k in zip(x, powers[1:], strict=True)])
        features.append(sp.sqrt(coefficient * c ** powers[0]) * monomial)
    return sp.Matrix(features)


def rbf_kernel_matrix(x: jax.Array, *, gamma: float) -> jax.Array:
    """K_ij = exp(-gamma ||x_i - x_j||^2)."""
    if gamma <= 0:
        raise ValueError(f"rbf_kernel_matrix: gamma must be > 0, got {gamma}")
    squared = jnp.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    return jnp.exp(-gamma * squared)


# --- derivations -------------------------------------------------------------------------------------


def expected_squared_error() -> tuple[sp.Expr, sp.Expr]:
    """E[(y - f_hat)^2] with y = f + eps, expanded in eps and D = f_hat - E[f_hat], then each monomial
    replaced by its moment: E[eps] = E[D] = 0, E[eps D] = 0 (the noise of a test label is independent
    of the training set), E[eps^2] = sigma^2, E[D^2] = Var[f_hat]. Returns (the expectation, bias^2 +
    variance + noise)."""
    f, mean_fit, eps, dev = sp.symbols("f E[f_hat] epsilon D", real=True)
    noise, variance = sp.symbols("sigma^2 Var[f_hat]", nonnegative=True)
    moments = {(0, 0): 1, (1, 0): 0, (0, 1): 0, (1, 1): 0, (2, 0): noise, (0, 2): variance}
    expanded = sp.Poly(sp.expand((f + eps - (mean_fit + dev)) ** 2), eps, dev)
    expectation = sum(coeff * moments[powers] for powers, coeff in expanded.terms())
    return sp.factor_terms(expectation), (f - mean_fit) ** 2 + variance + noise


@derivation
@bridge.cache
def bias_variance_decomposition() -> list[sp.Eq]:
    """The expected squared error at x splits into bias^2 + variance + noise (S001-23, S004-07); bias is
    f(x) - E[f_hat(x)] over training sets, not the gap between a prediction and its label."""
    expectation, target = expected_squared_error()
    return [
        sp.Eq(sp.Symbol("E[(y - f_hat)^2]"), expectation, evaluate=False),
        sp.Eq(expectation, target, evaluate=False),
    ]


def average_variance(n: int | sp.Expr = n_models) -> sp.Expr:
    """Var of the mean of n models, each of variance sigma^2, pairwise correlation rho: (1/n^2) * (n sigma^2
    + n (n - 1) rho sigma^2), the sum of the covariance matrix's entries."""
    return sp.simplify((n * sigma**2 + n * (n - 1) * rho * sigma**2) / n**2)


@derivation
@bridge.cache
def correlated_average_variance() -> list[sp.Eq]:
    """The variance of an average of n equally correlated models (S001-22, S004-17), and its limit as
    n -> oo: averaging removes only the uncorrelated part."""
    target = rho * sigma**2 + (1 - rho) * sigma**2 / n_models
    return [
        sp.Eq(sp.Symbol("Var[mean]"), average_variance(), evaluate=False),
        sp.Eq(average_variance(), sp.expand(target), evaluate=False),
        sp.Eq(
            sp.Limit(sp.Symbol("Var[mean]"), n_models, sp.oo),
            sp.limit(average_variance(), n_models, sp.oo),
            evaluate=False,
        ),
    ]


def metric_symbols():
    return sp.symbols("TP FP FN", positive=True)


@derivation
@bridge.cache
def f1_from_counts() -> list[sp.Eq]:
    """Precision TP/(TP+FP), recall TP/(TP+FN) and F1, their harmonic mean, in counts (S001-21)."""
    tp, fp, fn = metric_symbols()
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    p, r = sp.symbols("P R", positive=True)
    f1 = sp.Symbol("F_1")
    return [
        sp.Eq(p, precision, evaluate=False),
        sp.Eq(r, recall, evaluate=False),
        sp.Eq(f1, 2 * p * r / (p + r), evaluate=False),
        sp.Eq(f1, sp.simplify(2 * precision * recall / (precision + recall)), evaluate=False),
    ]


@derivation
@bridge.cache
def polynomial_kernel_feature_map() -> sp.Eq:
    """The feature map of the degree-2 polynomial kernel in 2 dimensions (S004-15):
    (x^T y + c)^2 = phi(x)^T phi(y), with C(4, 2) = 6 features."""
    x = sp.symbols("x1 x2", real=True)
    return sp.Eq(
        sp.Symbol("phi(x)"), polynomial_feature_map(list(x), 2, sp.Symbol("c", positive=True)).T, evaluate=False
    )


# --- measuring helpers ------------------------------------------------------------------------------------------


def truth(x: np.ndarray) -> np.ndarray:
    """The regression function of the bias-variance experiments, f(x) = sin(2 pi x) on [0, 1]."""
    return np.sin(2 * np.pi * x)


def training_sets(rng: np.random.Generator, sets: int, n_train: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``sets`` independent training sets of ``n_train`` points x ~ U(0, 1), y = f(x) + N(0, noise^2)."""
    if sets < 2 or n_train < 2 or noise < 0:
        raise ValueError(f"training_sets: need sets >= 2, n_train >= 2, noise >= 0; got {sets}, {n_train}, {noise}")
    x = rng.uniform(0, 1, (sets, n_train))
    return x, truth(x) + rng.normal(0, noise, x.shape)


def polynomial_fit(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares polynomials of ``degree`` fitted to each row of (x, y) (leading axes are sets), evaluated
    at ``x_test``. Legendre columns on [-1, 1] keep high degrees well conditioned."""
    if degree < 0:
        raise ValueError(f"polynomial_fit: degree must be >= 0, got {degree}")
    design = np.polynomial.legendre.legvander(2 * x - 1, degree)
    coefficients = np.linalg.pinv(design) @ y[..., None]
    return (np.polynomial.legendre.legvander(2 * x_test - 1, degree) @ coefficients)[..., 0]


def stump_fit(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """A regression stump (one split, two constants, least squares) fitted to each row of (x, y), evaluated at
    ``x_test``; vectorised over the leading axes."""
    order = np.argsort(x, axis=-1)
    xs, ys = np.take_along_axis(x, order, -1), np.take_along_axis(y, order, -1)
    n = x.shape[-1]
    left = np.cumsum(ys, -1)[..., :-1]
    count = np.arange(1, n)
    right = ys.sum(-1, keepdims=True) - left
    # SSE = sum y^2 - left^2 / n_l - right^2 / n_r: maximise the explained part over the n - 1 splits.
    gain = left**2 / count + right**2 / (n - count)
    best = np.argmax(gain, -1)[..., None]
    threshold = 0.5 * (np.take_along_axis(xs, best, -1) + np.take_along_axis(xs, best + 1, -1))
    low = np.take_along_axis(left, best, -1) / (best + 1)
    high = np.take_along_axis(right, best, -1) / (n - best - 1)
    return np.where(x_test < threshold, low, high)


def fit_learner(name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``stump``, ``linear`` (degree-1 least squares) or ``poly<k>`` fitted row by row, evaluated at x_test."""
    if name == "stump":
        return stump_fit(x, y, x_test)
    if name == "linear":
        return polynomial_fit(x, y, x_test, 1)
    if name.startswith("poly"):
        return polynomial_fit(x, y, x_test, int(name[4:]))
    raise ValueError(f"fit_learner: unknown learner {name!r}")


def l2_boost(
    name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, rounds: int, shrinkage: float
) -> np.ndarray:
    """L2 boosting (gradient boosting on the squared error): each round fits the learner to the residuals and
    adds ``shrinkage`` times it. Returns the boosted fit at x_test."""
    if rounds < 1 or not 0 < shrinkage <= 1:
        raise ValueError(f"l2_boost: need rounds >= 1 and shrinkage in (0, 1]; got {rounds}, {shrinkage}")
    both = np.concatenate([x, np.broadcast_to(x_test, x.shape[:-1] + x_test.shape[-1:])], -1)
    fit = np.zeros(both.shape)
    for _ in range(rounds):
        fit = fit + shrinkage * fit_learner(name, x, y - fit[..., : x.shape[-1]], both)
    return fit[..., x.shape[-1] :]


def bagged(
    name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, *, replicates: int, rng: np.random.Generator
) -> np.ndarray:
    """Bagging: the learner fitted to ``replicates`` bootstrap resamples of each training set, averaged."""
    if replicates < 1:
        raise ValueError(f"bagged: replicates must be >= 1, got {replicates}")
    picks = rng.integers(0, x.shape[-1], (*x.shape[:-1], replicates, x.shape[-1]))
    xb = np.take_along_axis(x[..., None, :], picks, -1)
    yb = np.take_along_axis(y[..., None, :], picks, -1)
    return fit_learner(name, xb, yb, x_test).mean(-2)


def bias2_and_variance(fits: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean over test points of (E[f_hat] - f)^2 and of Var[f_hat] (ddof 0), over training sets (axis 0)."""
    return float(np.mean((fits.mean(0) - target) ** 2)), float(np.mean(fits.var(0)))


def distance_contrast_by_dimension(dimensions=(2, 10, 100, 1000), points=2000, queries=10, intrinsic=None, seed=0):
    """Mean relative contrast over ``queries`` query points, for uniform data in [0, 1]^d; with
    ``intrinsic`` = k the data are uniform in [0, 1]^k mapped into R^d by a random isometry."""
    out = {}
    rng = np.random.default_rng(seed)
    for d in dimensions:
        width = intrinsic or d
        cloud = rng.uniform(size=(points + queries, width))
        if intrinsic:
            basis, _ = np.linalg.qr(rng.normal(size=(d, width)))  # orthonormal columns
            cloud = cloud @ basis.T
        out[d] = float(np.mean(relative_distance_contrast(cloud[:points], cloud[points:])))
    return out


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "statistics"]) or main(["check", "statistics"]))
