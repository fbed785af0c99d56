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
import scipy.stats
import sympy as sp

from derivations.claims import derivation
from derivations.compare import compare

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
        raise ValueError(f"roc_auc_trapezoid: need 1-D labels and scores of one length, got {labels.shape} "
                         f"and {scores.shape}")
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
        raise ValueError(f"relative_distance_contrast: need (n >= 2, d) points and (q, d) queries, got "
                         f"{points.shape} and {queries.shape}")
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
def bias_variance_decomposition() -> list[sp.Eq]:
    """The expected squared error at x splits into bias^2 + variance + noise (S001-23, S004-07); bias is
    f(x) - E[f_hat(x)] over training sets, not the gap between a prediction and its label."""
    expectation, target = expected_squared_error()
    return [sp.Eq(sp.Symbol("E[(y - f_hat)^2]"), expectation, evaluate=False),
            sp.Eq(expectation, target, evaluate=False)]


def average_variance(n: int | sp.Expr = n_models) -> sp.Expr:
    """Var of the mean of n models, each of variance sigma^2, pairwise correlation rho: (1/n^2) * (n sigma^2
    + n (n - 1) rho sigma^2), the sum of the covariance matrix's entries."""
    return sp.simplify((n * sigma**2 + n * (n - 1) * rho * sigma**2) / n**2)


@derivation
def correlated_average_variance() -> list[sp.Eq]:
    """The variance of an average of n equally correlated models (S001-22, S004-17), and its limit as
    n -> oo: averaging removes only the uncorrelated part."""
    target = rho * sigma**2 + (1 - rho) * sigma**2 / n_models
    return [sp.Eq(sp.Symbol("Var[mean]"), average_variance(), evaluate=False),
            sp.Eq(average_variance(), sp.expand(target), evaluate=False),
            sp.Eq(sp.Limit(sp.Symbol("Var[mean]"), n_models, sp.oo), sp.limit(average_variance(), n_models, sp.oo),
                  evaluate=False)]


def metric_symbols():
    return sp.symbols("TP FP FN", positive=True)


@derivation
def f1_from_counts() -> sp.Eq:
    """F1, the harmonic mean of precision TP/(TP+FP) and recall TP/(TP+FN), in counts (S001-21)."""
    tp, fp, fn = metric_symbols()
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return sp.Eq(2 * sp.Symbol("P") * sp.Symbol("R") / (sp.Symbol("P") + sp.Symbol("R")),
                 sp.simplify(2 * precision * recall / (precision + recall)), evaluate=False)


@derivation
def polynomial_kernel_feature_map() -> sp.Eq:
    """The feature map of the degree-2 polynomial kernel in 2 dimensions (S004-15):
    (x^T y + c)^2 = phi(x)^T phi(y), with C(4, 2) = 6 features."""
    x = sp.symbols("x1 x2", real=True)
    return sp.Eq(sp.Symbol("phi(x)"), polynomial_feature_map(list(x), 2, sp.Symbol("c", positive=True)).T,
                 evaluate=False)


# --- measuring helpers ------------------------------------------------------------------------------------------


def _polynomial_fits(degrees=(1, 3, 5, 7, 9), training_sets=400, n_train=50, noise=0.3, seed=0) -> dict:
    """Fit polynomials of each degree by least squares to ``training_sets`` noisy samples of sin(2 pi x) and
    measure, on a grid of test points, bias^2, variance and the error against fresh noisy labels."""
    rng = np.random.default_rng(seed)
    x_test = np.linspace(0.05, 0.95, 40)
    truth = np.sin(2 * np.pi * x_test)
    x_train = rng.uniform(0, 1, (training_sets, n_train))
    y_train = np.sin(2 * np.pi * x_train) + rng.normal(0, noise, x_train.shape)
    y_test = truth + rng.normal(0, noise, (training_sets, x_test.size))  # a fresh label per fit and point
    out = {}
    for degree in degrees:
        # Legendre columns on [-1, 1] keep the degree-9 least-squares problem well conditioned.
        design = np.polynomial.legendre.legvander(2 * x_train - 1, degree)
        coefficients = np.linalg.pinv(design) @ y_train[..., None]
        fits = (np.polynomial.legendre.legvander(2 * x_test - 1, degree) @ coefficients)[..., 0]
        mean_fit = fits.mean(axis=0)
        bias2 = float(np.mean((mean_fit - truth) ** 2))
        variance = float(np.mean(fits.var(axis=0)))  # over training sets, ddof 0 as in the decomposition
        per_set = np.mean((y_test - fits) ** 2, axis=1)  # independent across training sets
        out[degree] = {"bias2": bias2, "variance": variance, "noise": noise**2, "mse": float(per_set.mean()),
                       "mse_standard_error": float(per_set.std(ddof=1) / np.sqrt(training_sets))}
    return out


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
