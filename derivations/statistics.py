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

from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict

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


# --- claims ------------------------------------------------------------------------------------------


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


@claim(
    "statistics/expected-squared-error-is-bias-squared-plus-variance-plus-noise",
    sources=["S001-23", "S004-07"],
    says="The error of a model splits into bias and variance; boosting lowers the bias, bagging the variance.",
    expected="holds",
    tolerance=f"Monte-Carlo: the measured error against fresh labels within {MC_Z} standard errors of "
    "bias^2 + variance + sigma^2",
)
def _bias_variance() -> Evidence:
    expectation, target = expected_squared_error()
    proved = sp.simplify(expectation - target) == 0
    fits = _polynomial_fits()
    z = {d: abs(v["mse"] - (v["bias2"] + v["variance"] + v["noise"])) / v["mse_standard_error"]
         for d, v in fits.items()}
    variances = [fits[d]["variance"] for d in (3, 5, 7, 9)]
    trade_off = fits[1]["bias2"] > 10 * fits[9]["bias2"] and all(a < b for a, b in itertools.pairwise(variances))
    ok = proved and all(v <= MC_Z for v in z.values()) and trade_off
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"SymPy: E[(y - f_hat)^2] = bias^2 + Var + sigma^2: {proved}; 400 training sets of 50 noisy "
        "samples of sin(2 pi x), sigma = 0.3; degree: bias^2 / variance / measured error (decomposition): "
        + "; ".join(f"{d}: {v['bias2']:.4f} / {v['variance']:.4f} / {v['mse']:.4f} "
                    f"({v['bias2'] + v['variance'] + v['noise']:.4f}, {z[d]:.1f} s.e.)" for d, v in fits.items()),
        max_abs_err=max(abs(v["mse"] - (v["bias2"] + v["variance"] + v["noise"])) for v in fits.values()),
        samples=400,
        dtype="float64",
        details={str(d): v for d, v in fits.items()},
    )


@claim(
    "statistics/bias-is-not-the-gap-between-prediction-and-label",
    sources=["S004-07"],
    says="Bias is how far the predictions deviate from the labels; variance is how much fluctuations of the "
    "data affect the error.",
    expected="qualified",
    correction="Bias is the gap between the average prediction (over training sets) and the true function "
    "E[y|x]. The gap between a prediction and its label is the total error, which adds the variance and "
    "the label noise to bias^2: a flexible model can have almost no bias and still miss its labels badly.",
)
def _bias_definition() -> Evidence:
    fits = _polynomial_fits()
    flexible = fits[9]
    ratio = flexible["mse"] / flexible["bias2"]
    ok = ratio > 10 and flexible["variance"] + flexible["noise"] > 0.9 * flexible["mse"]
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"degree-9 fit: bias^2 = {flexible['bias2']:.1e}, but the mean squared gap to the labels is "
        f"{flexible['mse']:.4f} ({ratio:.0f} times larger): variance {flexible['variance']:.4f} + noise "
        f"{flexible['noise']:.4f} make up the rest",
        samples=400,
        dtype="float64",
        details=flexible,
    )


@claim(
    "statistics/variance-of-an-average-of-correlated-models",
    sources=["S001-22", "S004-17"],
    says="Bagging trains base learners on bootstrap samples and averages them (votes for classification).",
    expected="holds",
    tolerance=f"Monte-Carlo: each sample variance within {MC_Z} standard errors (sigma^2 sqrt(2/(M-1)) "
    "for normal draws) of the formula",
)
def _correlated_average() -> Evidence:
    proved = all(
        sp.simplify(
            (sp.ones(1, n) * (sigma**2 * ((1 - rho) * sp.eye(n) + rho * sp.ones(n, n))) * sp.ones(n, 1))[0] / n**2
            - (rho * sigma**2 + (1 - rho) * sigma**2 / n)
        ) == 0
        for n in (2, 3, 5)
    ) and sp.simplify(average_variance() - (rho * sigma**2 + (1 - rho) * sigma**2 / n_models)) == 0
    formula = sp.lambdify([rho, sigma, n_models], average_variance(), "numpy")
    draws, scale = 20_000, 2.0
    rng = np.random.default_rng(10)
    rows, worst = {}, 0.0
    for r in (0.0, 0.3, 0.7):
        for n in (1, 2, 5, 20, 50):
            shared, own = rng.normal(size=(draws, 1)), rng.normal(size=(draws, n))
            models = scale * (np.sqrt(r) * shared + np.sqrt(1 - r) * own)  # corr(i, j) = r
            measured = float(np.var(models.mean(axis=1), ddof=1))
            exact = float(formula(r, scale, n))
            se = exact * np.sqrt(2 / (draws - 1))
            worst = max(worst, abs(measured - exact) / se)
            rows[f"rho={r}, n={n}"] = {"measured": measured, "formula": exact, "standard_error": se}
    ok = proved and worst <= MC_Z
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"SymPy: Var(mean) = rho sigma^2 + (1 - rho) sigma^2 / n (proved for general n and from the "
        f"covariance matrix for n = 2, 3, 5): {proved}; {draws} draws for rho in (0, 0.3, 0.7), n in (1, 2, 5, 20, "
        f"50), sigma = {scale}: every sample variance within {worst:.2f} standard errors; at rho = 0.7, n = 50 "
        f"it is {rows['rho=0.7, n=50']['measured']:.3f} (floor rho sigma^2 = {0.7 * scale**2:.1f})",
        max_rel_err=max(abs(v["measured"] - v["formula"]) / v["formula"] for v in rows.values()),
        samples=draws,
        dtype="float64",
        details=rows,
    )


@claim(
    "statistics/precision-recall-and-f1-from-the-confusion-matrix",
    sources=["S001-21"],
    says="Evaluation metrics: precision, recall and F1 from the confusion matrix.",
    expected="holds",
)
def _precision_recall_f1() -> Evidence:
    tp_, fp_, fn_ = metric_symbols()
    f1 = f1_from_counts()
    proved = sp.simplify(f1.rhs - 2 * tp_ / (2 * tp_ + fp_ + fn_)) == 0
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 5000)
    predictions = np.where(rng.uniform(size=5000) < 0.8, labels, 1 - labels) * (rng.uniform(size=5000) < 0.9)
    counts = confusion_counts(labels, predictions)
    from_counts = sp.lambdify([tp_, fp_, fn_], [tp_ / (tp_ + fp_), tp_ / (tp_ + fn_), f1.rhs])(
        counts["TP"], counts["FP"], counts["FN"])
    # Independently, by their definitions: P(y = 1 | predicted 1), P(predicted 1 | y = 1), and the
    # harmonic mean of the two.
    precision = labels[predictions == 1].mean()
    recall = predictions[labels == 1].mean()
    direct = [precision, recall, scipy.stats.hmean([precision, recall])]
    cmp = compare(lambda: jnp.asarray(from_counts, dtype=jnp.float64), lambda: jnp.asarray(direct), [])
    ok = proved and cmp.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"SymPy: 2PR/(P+R) = 2TP/(2TP+FP+FN): {proved}; on 5000 labels, {counts}: precision "
        f"{from_counts[0]:.4f}, recall {from_counts[1]:.4f}, F1 {from_counts[2]:.4f} from the counts vs by "
        f"definition (scipy hmean): {cmp.describe()}",
        max_abs_err=cmp.max_abs_err,
        max_rel_err=cmp.max_rel_err,
        samples=5000,
        dtype="float64",
        details=counts,
    )


@claim(
    "statistics/roc-auc-is-the-probability-a-positive-outscores-a-negative",
    sources=["S001-21"],
    says="Evaluation metrics: ROC curve and AUC.",
    expected="holds",
    tolerance="three exact counts of the same rational number, compared to relative 1e-12",
)
def _auc() -> Evidence:
    rng = np.random.default_rng(8)
    labels = np.concatenate([np.ones(300, int), np.zeros(500, int)])
    scores = np.round(rng.normal(labels * 1.2, 1.0), 1)  # rounded, so many scores tie
    trapezoid = roc_auc_trapezoid(labels, scores)
    pairs = pairwise_auc(labels, scores)
    u = scipy.stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic / (300 * 500)
    no_ties = pairwise_auc(labels, scores, tie=0.0)
    cmp = compare(lambda: jnp.asarray([trapezoid, float(u)]), lambda: jnp.asarray([pairs, pairs]), [], rtol=1e-12)
    ok = cmp.ok and abs(no_ties - trapezoid) > 1e-3
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"300 positives, 500 negatives, scores rounded to 0.1 (ties): trapezoid ROC-AUC {trapezoid:.6f}, "
        f"P(s+ > s-) + P(s+ = s-)/2 over all 150000 pairs {pairs:.6f}, Mann-Whitney U / (n+ n-) {float(u):.6f}; "
        f"counting ties as 0 gives {no_ties:.6f}",
        max_abs_err=cmp.max_abs_err,
        max_rel_err=cmp.max_rel_err,
        samples=300 * 500,
        dtype="float64",
        details={"trapezoid": trapezoid, "pairs": pairs, "mann_whitney": float(u), "ties_as_zero": no_ties},
    )


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


@claim(
    "statistics/distance-contrast-shrinks-as-the-dimension-grows",
    sources=["S004-08"],
    says="In high dimension distances lose their meaning: the largest and smallest Euclidean distance "
    "become nearly the same.",
    expected="qualified",
    correction="For data with independent coordinates, yes: (max - min)/min of the distances to a query falls "
    "roughly as 1/sqrt(d). What matters is the data's intrinsic dimension, not the number of features: data "
    "on a 2-dimensional subspace of R^1000 keep the contrast they have in the plane.",
)
def _curse_of_dimensionality() -> Evidence:
    iid = distance_contrast_by_dimension()
    flat = distance_contrast_by_dimension(intrinsic=2)
    values = list(iid.values())
    shrinks = all(a > b for a, b in itertools.pairwise(values)) and values[-1] < 0.05 * values[0]
    kept = max(flat.values()) / min(flat.values()) < 3 and flat[1000] > 10 * iid[1000]
    return Evidence(
        verdict=verdict(shrinks and kept, "qualified"),
        method="measurement",
        summary="mean (max - min)/min of the distances from 10 queries to 2000 points, uniform in [0,1]^d: "
        + ", ".join(f"d={d}: {v:.3f}" for d, v in iid.items())
        + "; the same for points on a random 2-D plane in R^d: "
        + ", ".join(f"d={d}: {v:.1f}" for d, v in flat.items()),
        samples=2000,
        dtype="float64",
        details={"independent_coordinates": iid, "intrinsic_dimension_2": flat},
    )


@claim(
    "statistics/polynomial-kernel-is-an-inner-product-of-explicit-features",
    sources=["S004-15"],
    says="A kernel computes the inner product of the mapped data without the map: K(x1, x2) = phi(x1)^T phi(x2).",
    expected="holds",
)
def _polynomial_kernel() -> Evidence:
    c = sp.Symbol("c", positive=True)
    results = {}
    for dim, degree in itertools.product((2, 3), (2, 3)):
        x = list(sp.symbols(f"x1:{dim + 1}", real=True))
        y = list(sp.symbols(f"y1:{dim + 1}", real=True))
        phi_x, phi_y = polynomial_feature_map(x, degree, c), polynomial_feature_map(y, degree, c)
        kernel = (sum(a * b for a, b in zip(x, y, strict=True)) + c) ** degree
        proved = sp.expand(kernel - (phi_x.T * phi_y)[0]) == 0
        results[f"n={dim}, d={degree}"] = {"proved": proved, "features": phi_x.rows,
                                          "expected_features": math.comb(dim + degree, degree)}
    ok = all(v["proved"] and v["features"] == v["expected_features"] for v in results.values())
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="symbolic",
        summary="SymPy expands (x^T y + c)^d - phi(x)^T phi(y) to 0 for "
        + ", ".join(f"{k} ({v['features']} features)" for k, v in results.items()),
        samples=len(results),
        details=results,
    )


@claim(
    "statistics/rbf-kernel-matrix-is-positive-semidefinite",
    sources=["S004-15"],
    says="A kernel function must satisfy certain conditions to be an inner product of a feature map.",
    expected="holds",
    tolerance="eigenvalues >= -n eps lambda_max (round-off of a symmetric eigensolver)",
)
def _rbf_psd() -> Evidence:
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(200, 3)))
    gram = rbf_kernel_matrix(x, gamma=0.5)
    eigenvalues = np.linalg.eigvalsh(np.asarray(gram))
    floor = -x.shape[0] * np.finfo(np.float64).eps * eigenvalues[-1]
    sigmoid_gram = np.tanh(np.asarray(x @ x.T) - 1.0)  # the "sigmoid kernel" tanh(x^T y - 1)
    sigmoid_min = float(np.linalg.eigvalsh(sigmoid_gram)[0])
    ok = bool(eigenvalues[0] >= floor) and sigmoid_min < -1.0
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"RBF (gamma 0.5) Gram matrix of 200 points in R^3: eigenvalues in [{eigenvalues[0]:.1e}, "
        f"{eigenvalues[-1]:.1f}] (floor {floor:.1e}); the sigmoid 'kernel' tanh(x^T y - 1) on the same points "
        f"has eigenvalue {sigmoid_min:.1f}, so it is no inner product (Mercer's condition fails)",
        samples=200,
        dtype="float64",
        details={"rbf_min_eigenvalue": float(eigenvalues[0]), "rbf_max_eigenvalue": float(eigenvalues[-1]),
                 "sigmoid_min_eigenvalue": sigmoid_min},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "statistics"]) or main(["check", "statistics"]))
