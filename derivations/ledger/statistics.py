"""The claims of the statistics chapter: the bias-variance decomposition tested where it is not an identity
(expected error over training sets and test noise, against bias and variance estimated on independent
training sets), what boosting and bagging do to bias and variance for several base learners, the variance
of an average of correlated models, precision/recall/F1 and ROC-AUC, distance contrast, and kernels."""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations.bridge import instantiate, prove_identity, to_jax, value
from derivations.claims import Evidence, claim, compared, core, evidence, proved, scoped
from derivations.compare import compare
from derivations.statistics import (
    MC_Z,
    average_variance,
    bagged,
    bias2_and_variance,
    bias_variance_decomposition,
    confusion_counts,
    correlated_average_variance,
    distance_contrast_by_dimension,
    f1_from_counts,
    fit_learner,
    l2_boost,
    metric_symbols,
    n_models,
    pairwise_auc,
    polynomial_feature_map,
    polynomial_kernel_feature_map,
    rbf_kernel_matrix,
    rho,
    roc_auc_trapezoid,
    sigma,
    training_sets,
    truth,
)

X_TEST = np.linspace(0.05, 0.95, 40)


def _symbol(expr: sp.Expr, name: str) -> sp.Symbol:
    return next(s for s in expr.free_symbols if s.name == name)


def decomposition_test(degree: int, noise: float, n_train: int, sets: int, seed: int) -> dict:
    """The expected squared error against fresh test labels, measured on one batch of training sets (B),
    against bias^2 + variance + sigma^2 from the displayed formula, with E[f_hat] and Var[f_hat] estimated on
    an independent batch (A). Each side is a mean over independent training sets, so the standard error of
    the difference is sqrt(s_A^2 / M + s_B^2 / M)."""
    rng = np.random.default_rng(seed)
    f = truth(X_TEST)
    fits_a = fit_learner(f"poly{degree}", *training_sets(rng, sets, n_train, noise), X_TEST)
    fits_b = fit_learner(f"poly{degree}", *training_sets(rng, sets, n_train, noise), X_TEST)
    labels = f + rng.normal(0, noise, fits_b.shape)  # a fresh label per fit and test point
    shown = bias_variance_decomposition()[0]
    names = ("f", "E[f_hat]", "sigma^2", "Var[f_hat]")
    formula = to_jax(shown, [_symbol(shown.rhs, n) for n in names])
    predicted = float(
        jnp.mean(formula(jnp.asarray(f), jnp.asarray(fits_a.mean(0)), noise**2, jnp.asarray(fits_a.var(0))))
    )
    per_set_a = np.mean((fits_a - f) ** 2, axis=1)  # its mean is bias^2 + variance (ddof 0), term by term
    per_set_b = np.mean((labels - fits_b) ** 2, axis=1)
    se = float(np.sqrt(per_set_a.var(ddof=1) / sets + per_set_b.var(ddof=1) / sets))
    measured = float(per_set_b.mean())
    return {"predicted": predicted, "measured": measured, "standard_error": se, "z": abs(measured - predicted) / se}


@claim(
    "statistics/expected-squared-error-is-bias-squared-plus-variance-plus-noise",
    sources=["S001-23", "S004-07"],
    says="S001-23 asks for 'the understanding of variance and bias, and how both relate to boosting and bagging' "
    "(方差和偏差的理解以及两者和boost以及bagging的联系; a heading only). This claim tests the usual answer, a gloss: "
    "the expected squared error is bias^2 + variance + noise; boosting lowers the bias, bagging the variance.",
    expected="qualified",
    correction="The decomposition holds (in expectation over training sets and test noise). Boosting lowers the "
    "bias of a weak learner whose sums are richer than it (stumps), not of a linear least-squares learner, "
    "whose boosted sums stay linear. Bagging lowers the variance of unstable learners such as stumps, but "
    "not of a stable linear fit, and it raises the variance of a degree-9 polynomial, whose fits on bootstrap "
    "resamples (about 63% distinct points) vary far more than the fit on the full set.",
    scope={
        "degrees": [1, 3, 9],
        "noise": [0.1, 0.3, 1.0],
        "n_train": [20, 50],
        "training_sets": 400,
        "z": MC_Z,
        "boost": {"core": ["stump"], "scope": ["linear"], "rounds": 100, "shrinkage": 0.1},
        "bag": {"core": ["stump"], "scope": ["linear", "poly9"], "replicates": 20},
        "ensemble_sets": 200,
    },
    tolerance=f"Monte-Carlo: the measured error within {MC_Z} standard errors of the difference of two "
    "independent means",
)
def _bias_variance(scope) -> Evidence:
    expectation, target = bias_variance_decomposition()[1].args
    proof = prove_identity(expectation, target, sorted(expectation.free_symbols, key=str))
    configs = list(itertools.product(scope["degrees"], scope["noise"], scope["n_train"]))
    rows = {
        f"degree={d}, sigma={s}, n={n}": decomposition_test(d, s, n, scope["training_sets"], seed=i)
        for i, (d, s, n) in enumerate(configs)
    }
    worst = max(v["z"] for v in rows.values())
    rng = np.random.default_rng(99)
    x, y = training_sets(rng, scope["ensemble_sets"], 50, 0.3)
    f = truth(X_TEST)
    learners = {}
    boost, bag = scope["boost"], scope["bag"]
    for name in sorted({*boost["core"], *boost["scope"], *bag["core"], *bag["scope"]}):
        single = bias2_and_variance(fit_learner(name, x, y, X_TEST), f)
        row = {"single": single}
        if name in boost["core"] + boost["scope"]:
            row["boosted"] = bias2_and_variance(
                l2_boost(name, x, y, X_TEST, rounds=boost["rounds"], shrinkage=boost["shrinkage"]), f
            )
        if name in bag["core"] + bag["scope"]:
            row["bagged"] = bias2_and_variance(bagged(name, x, y, X_TEST, replicates=bag["replicates"], rng=rng), f)
        learners[name] = row

    def lowers_bias(name):
        return learners[name]["boosted"][0] < learners[name]["single"][0]

    def lowers_variance(name):
        return learners[name]["bagged"][1] < learners[name]["single"][1]

    return evidence(
        "measurement",
        proved("SymPy: the moments of (f + eps - E[f_hat] - D)^2 add up to bias^2 + Var + sigma^2", proof),
        core(
            f"the error against fresh labels (training sets B) equals the displayed bias^2 + variance + sigma^2 "
            f"(bias and variance from independent training sets A) within {scope['z']} standard errors, for "
            f"degrees {scope['degrees']}, sigma {scope['noise']}, n {scope['n_train']}",
            worst <= scope["z"],
            worst_z=worst,
            samples=2 * scope["training_sets"] * len(rows),
            dtype="float64",
        ),
        *(
            core(
                f"L2 boosting ({boost['rounds']} rounds, shrinkage {boost['shrinkage']}) lowers the bias^2 of {n}s",
                lowers_bias(n),
                single=learners[n]["single"][0],
                boosted=learners[n]["boosted"][0],
            )
            for n in boost["core"]
        ),
        *(
            core(
                f"bagging ({bag['replicates']} bootstrap fits) lowers the variance of {n}s",
                lowers_variance(n),
                single=learners[n]["single"][1],
                bagged=learners[n]["bagged"][1],
            )
            for n in bag["core"]
        ),
        *(
            scoped(
                f"boosting lowers the bias^2 of a {n} least-squares learner",
                lowers_bias(n),
                single=learners[n]["single"][0],
                boosted=learners[n]["boosted"][0],
            )
            for n in boost["scope"]
        ),
        *(
            scoped(
                f"bagging lowers the variance of a {n} learner",
                lowers_variance(n),
                single=learners[n]["single"][1],
                bagged=learners[n]["bagged"][1],
            )
            for n in bag["scope"]
        ),
        details={"decomposition": rows, "ensembles (bias^2, variance)": learners},
    )


@claim(
    "statistics/bias-is-the-gap-between-prediction-and-label",
    sources=["S004-07"],
    says="Bias: how far the predicted values deviate from the labels; variance: the effect of fluctuations of "
    "the data on the error (偏差：预测值偏离标签程度; 方差：数据波动对误差的影响).",
    expected="qualified",
    correction="Bias is the gap between the average prediction (over training sets) and the true function "
    "E[y|x]. The gap between a prediction and its label is the total error, which adds the variance and "
    "the label noise to bias^2: it measures the bias only for a rigid model whose bias dominates both the "
    "variance and the label noise; a flexible model can have almost no bias and still miss its labels badly, and "
    "with noisy labels even the rigid fit's gap is mostly noise.",
    scope={"degrees": [1, 3, 9], "noise": [0.1, 0.3, 1.0], "n_train": 50, "training_sets": 400,
           "dominates_by": 2.0},
    aliases=["statistics/bias-is-not-the-gap-between-prediction-and-label"],
)
def _bias_definition(scope) -> Evidence:
    rng = np.random.default_rng(5)
    f = truth(X_TEST)
    rows = {}
    for noise in scope["noise"]:
        for degree in scope["degrees"]:
            x, y = training_sets(rng, scope["training_sets"], scope["n_train"], noise)
            fits = fit_learner(f"poly{degree}", x, y, X_TEST)
            labels = f + rng.normal(0, noise, fits.shape)
            bias2, variance = bias2_and_variance(fits, f)
            rows[noise, degree] = {"bias2": bias2, "variance": variance,
                                   "gap_to_labels": float(np.mean((labels - fits) ** 2))}  # fmt: skip

    def finding(kind, noise, degree):
        v = rows[noise, degree]
        return kind(f"label noise sd {noise}, degree {degree}: the prediction-label gap is within "
                    f"{scope['dominates_by']}x of bias^2", v["gap_to_labels"] <= scope["dominates_by"] * v["bias2"],
                    ratio=v["gap_to_labels"] / v["bias2"])  # fmt: skip

    rigid, quiet = scope["degrees"][0], scope["noise"][0]
    return evidence(
        "measurement",
        finding(core, quiet, rigid),
        *(finding(scoped, noise, degree) for noise in scope["noise"] for degree in scope["degrees"]
          if (noise, degree) != (quiet, rigid)),
        details={f"noise {n}, degree {d}": v for (n, d), v in rows.items()},
    )


@claim(
    "statistics/variance-of-an-average-of-correlated-models",
    sources=["S001-22", "S004-17"],
    says="Bagging samples the training set with replacement, trains a base learner on each sample and combines "
    "them, by voting for classification and by averaging for regression (S004-17). This claim tests a gloss, "
    "why averaging helps: n models of variance sigma^2 and pairwise correlation rho average to variance "
    "rho sigma^2 + (1 - rho) sigma^2 / n, never below rho sigma^2.",
    expected="holds",
    scope={
        "rho": [0.0, 0.3, 0.7, 1.0],
        "n": [1, 2, 5, 20, 50],
        "sigma": 2.0,
        "draws": 20_000,
        "z": MC_Z,
        "covariance_sizes": [2, 3, 5],
    },
    tolerance=f"Monte-Carlo: each sample variance within {MC_Z} standard errors (sigma^2 sqrt(2/(M-1)) for "
    "normal draws) of the formula",
)
def _correlated_average(scope) -> Evidence:
    shown = correlated_average_variance()
    proofs = [
        prove_identity(
            (sp.ones(1, n) * (sigma**2 * ((1 - rho) * sp.eye(n) + rho * sp.ones(n, n))) * sp.ones(n, 1))[0] / n**2,
            average_variance(n),
            [rho, sigma],
            sampler=lambda r, m: r.uniform(0.05, 2.0, m),
        )
        for n in scope["covariance_sizes"]
    ]
    draws, scale = scope["draws"], scope["sigma"]
    rng = np.random.default_rng(10)
    rows, worst, floor_ok = {}, 0.0, True
    for r in scope["rho"]:
        floor = value(shown[2], {rho: r, sigma: scale})
        for n in scope["n"]:
            shared, own = rng.normal(size=(draws, 1)), rng.normal(size=(draws, n))
            models = scale * (np.sqrt(r) * shared + np.sqrt(1 - r) * own)  # corr(i, j) = r
            measured = float(np.var(models.mean(axis=1), ddof=1))
            exact = value(shown[0], {rho: r, sigma: scale, n_models: n})
            se = exact * np.sqrt(2 / (draws - 1))
            worst = max(worst, abs(measured - exact) / se)
            floor_ok &= exact >= floor and measured >= floor - scope["z"] * se
            rows[f"rho={r}, n={n}"] = {"measured": measured, "formula": exact, "standard_error": se, "floor": floor}
    return evidence(
        "measurement",
        *(
            proved(f"SymPy: the sum of the {n} x {n} equicorrelated covariance matrix over n^2 equals the formula", p)
            for n, p in zip(scope["covariance_sizes"], proofs, strict=True)
        ),
        core(
            f"every sample variance of the mean of n correlated normal models is within {scope['z']} standard "
            f"errors of the displayed formula, rho in {scope['rho']}, n in {scope['n']}",
            worst <= scope["z"],
            worst_z=worst,
            samples=draws * len(rows),
            dtype="float64",
        ),
        core("no average goes below the displayed limit rho sigma^2", floor_ok),
        details=rows,
    )


@claim(
    "statistics/precision-recall-and-f1-from-the-confusion-matrix",
    sources=["S001-21"],
    says="'Evaluation metrics' (评价指标 相关: S001-21 is a heading only). This claim tests a gloss: precision "
    "TP/(TP+FP), recall TP/(TP+FN) and F1, their harmonic mean, from the confusion matrix.",
    expected="holds",
    scope={"sizes": [7, 200, 5000], "accuracies": [0.55, 0.8, 0.99], "positive_rates": [0.1, 0.5]},
)
def _precision_recall_f1(scope, rtol) -> Evidence:
    import scipy.stats  # here: a top-level import costs every process that loads the chapter ~1 s
    tp_, fp_, fn_ = metric_symbols()
    shown_p, shown_r, f1_of_p_and_r, shown_f1 = f1_from_counts()
    precision_of, recall_of, f1 = (to_jax(eq, [tp_, fp_, fn_]) for eq in (shown_p, shown_r, shown_f1))
    rng = np.random.default_rng(7)
    from_counts, direct = [], []
    for size, accuracy, rate in itertools.product(scope["sizes"], scope["accuracies"], scope["positive_rates"]):
        while True:
            labels = (rng.uniform(size=size) < rate).astype(int)
            predictions = np.where(rng.uniform(size=size) < accuracy, labels, 1 - labels)
            if labels.sum() and predictions.sum() and (labels & predictions).sum():
                break
        c = confusion_counts(labels, predictions)
        counts = [jnp.float64(c[k]) for k in ("TP", "FP", "FN")]
        from_counts += [float(precision_of(*counts)), float(recall_of(*counts)), float(f1(*counts))]
        # Independently, by their definitions: P(y = 1 | predicted 1), P(predicted 1 | y = 1), harmonic mean.
        precision, recall = labels[predictions == 1].mean(), predictions[labels == 1].mean()
        direct += [precision, recall, scipy.stats.hmean([precision, recall])]
        # The displayed F1 = 2PR/(P+R) too: at the measured P and R it is the harmonic mean.
        from_counts.append(value(f1_of_p_and_r, {shown_p.lhs: precision, shown_r.lhs: recall}))
        direct.append(scipy.stats.hmean([precision, recall]))
    cmp = compare(lambda: jnp.asarray(from_counts), lambda: jnp.asarray(direct), [], rtol=rtol)
    return evidence(
        "measurement",
        compared(
            f"the displayed precision, recall and F1 = 2TP/(2TP+FP+FN) from the counts equal the conditional "
            f"frequencies and scipy's harmonic mean, and so does the displayed 2PR/(P+R) at the measured P and R, "
            f"for {len(from_counts) // 4} label sets (sizes {scope['sizes']}, accuracies {scope['accuracies']}, "
            f"positive rates {scope['positive_rates']})",
            cmp,
        ),
    )


@claim(
    "statistics/roc-auc-is-the-probability-a-positive-outscores-a-negative",
    sources=["S001-21"],
    says="'Evaluation metrics' (评价指标 相关: S001-21 is a heading only). This claim tests a gloss: the area "
    "under the ROC curve is the probability that a random positive outscores a random negative (ties count 1/2).",
    expected="holds",
    scope={"roundings": [None, 1, 0], "sizes": [(1, 1), (30, 50), (300, 500)], "separation": 1.2},
    rtol=1e-12,
    tolerance="three exact counts of the same rational number, compared to relative 1e-12",
)
def _auc(scope, rtol) -> Evidence:
    import scipy.stats  # here: a top-level import costs every process that loads the chapter ~1 s
    rng = np.random.default_rng(8)
    trapezoid, pairs, u, no_ties = [], [], [], []
    for digits, (pos, neg) in itertools.product(scope["roundings"], scope["sizes"]):
        labels = np.concatenate([np.ones(pos, int), np.zeros(neg, int)])
        scores = rng.normal(labels * scope["separation"], 1.0)
        scores = scores if digits is None else np.round(scores, digits)  # rounded: many scores tie
        trapezoid.append(roc_auc_trapezoid(labels, scores))
        pairs.append(pairwise_auc(labels, scores))
        u.append(scipy.stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic / (pos * neg))
        no_ties.append(pairwise_auc(labels, scores, tie=0.0))
    cmp = compare(lambda: jnp.asarray(trapezoid + u), lambda: jnp.asarray(pairs + pairs), [], rtol=rtol)
    ties_matter = max(abs(a - b) for a, b in zip(no_ties, trapezoid, strict=True))
    return evidence(
        "measurement",
        compared(
            f"the trapezoid ROC-AUC and Mann-Whitney U / (n+ n-) equal P(s+ > s-) + P(s+ = s-)/2 over all "
            f"pairs, for {len(pairs)} score sets (rounded to {scope['roundings']} digits; sizes "
            f"{scope['sizes']})",
            cmp,
        ),
        core(
            "with ties, counting them as 1/2 is what the trapezoid does (counting them 0 gives another number)",
            ties_matter > 0,
            largest_tie_effect=ties_matter,
        ),
        details={"trapezoid": trapezoid, "pairs": pairs, "ties_as_zero": no_ties},
    )


@claim(
    "statistics/distance-contrast-shrinks-as-the-dimension-grows",
    sources=["S004-08"],
    says="In high-dimensional space distances gradually lose their meaning (the largest and smallest Euclidean "
    "distance become nearly the same) (高维空间中距离逐渐失效（欧式距离最大值和最小值趋近相同）).",
    expected="qualified",
    correction="For data with independent coordinates, yes: (max - min)/min of the distances to a query falls, "
    "fast at small d and for large d as 1/sqrt(d) (Beyer et al. 1999). What matters is the data's intrinsic "
    "dimension, not the number of features: data "
    "on a 2-dimensional subspace of R^1000 keep the contrast they have in the plane.",
    scope={
        "dimensions": [2, 10, 100, 300, 1000],
        "points": 2000,
        "queries": 10,
        "intrinsic": [2],
        "shrink_factor": 0.05,
        "kept_within": 3.0,
        "large_d_slope": {"from": 100, "expected": -0.5, "within": 0.1},
    },
)
def _curse_of_dimensionality(scope) -> Evidence:
    iid = distance_contrast_by_dimension(tuple(scope["dimensions"]), scope["points"], scope["queries"])
    values = list(iid.values())
    shrinks = all(a > b for a, b in itertools.pairwise(values)) and values[-1] < scope["shrink_factor"] * values[0]
    law = scope["large_d_slope"]
    large = [d for d in scope["dimensions"] if d >= law["from"]]
    slope = float(np.polyfit(np.log(large), np.log([iid[d] for d in large]), 1)[0])
    small = [d for d in scope["dimensions"] if d <= law["from"]]
    small_slope = float(np.polyfit(np.log(small), np.log([iid[d] for d in small]), 1)[0])
    flats = {
        k: distance_contrast_by_dimension(tuple(scope["dimensions"]), scope["points"], scope["queries"], intrinsic=k)
        for k in scope["intrinsic"]
    }
    return evidence(
        "measurement",
        core(
            f"for uniform data in [0,1]^d the mean (max - min)/min falls monotonically, by more than "
            f"1/{scope['shrink_factor']:g} from d = {scope['dimensions'][0]} to {scope['dimensions'][-1]}",
            shrinks,
            first=values[0],
            last=values[-1],
            samples=scope["points"],
        ),
        core(
            f"for d >= {law['from']} it falls about as d^{law['expected']} (the log-log slope within "
            f"{law['within']}), and faster below (a steeper slope from d = {small[0]} to {law['from']})",
            abs(slope - law["expected"]) <= law["within"] and small_slope < slope,
            slope=slope,
            slope_below=small_slope,
        ),
        *(
            scoped(
                f"for data of intrinsic dimension {k} in R^d it falls too (by more than {scope['kept_within']}x)",
                max(flat.values()) / min(flat.values()) >= scope["kept_within"],
                largest_over_smallest=max(flat.values()) / min(flat.values()),
            )
            for k, flat in flats.items()
        ),
        details={"independent_coordinates": iid, **{f"intrinsic_dimension_{k}": v for k, v in flats.items()}},
    )


@claim(
    "statistics/polynomial-kernel-is-an-inner-product-of-explicit-features",
    sources=["S004-15"],
    says="A kernel is not a mapping, only a way to compute the inner product of the data after mapping them to "
    "a high-dimensional space, without knowing phi: K(x1, x2) = phi(x1)' phi(x2) (核函数并不是一种映射，它只是用来"
    "计算映射到高维空间后数据内积的一种方法).",
    expected="holds",
    scope={"dims": [1, 2, 3], "degrees": [1, 2, 3], "c": "positive symbol"},
)
def _polynomial_kernel(scope) -> Evidence:
    c = sp.Symbol("c", positive=True)
    results = {}
    for dim, degree in itertools.product(scope["dims"], scope["degrees"]):
        x = list(sp.symbols(f"x1:{dim + 1}", real=True))
        y = list(sp.symbols(f"y1:{dim + 1}", real=True))
        phi_x, phi_y = polynomial_feature_map(x, degree, c), polynomial_feature_map(y, degree, c)
        kernel = (sum(a * b for a, b in zip(x, y, strict=True)) + c) ** degree
        results[f"n={dim}, d={degree}"] = {
            "proved": sp.expand(kernel - (phi_x.T * phi_y)[0]) == 0,
            "features": phi_x.rows,
            "expected_features": math.comb(dim + degree, degree),
        }
    shown = instantiate(polynomial_kernel_feature_map())
    x = sp.symbols("x1 x2", real=True)
    y = sp.symbols("y1 y2", real=True)
    inner = (shown * shown.subs(dict(zip(x, y, strict=True))).T)[0]
    displayed = prove_identity(
        inner, (x[0] * y[0] + x[1] * y[1] + c) ** 2, [*x, *y, c], sampler=lambda r, n: r.uniform(0.1, 2, n)
    )
    return evidence(
        "symbolic",
        core(
            f"SymPy expands (x^T y + c)^d - phi(x)^T phi(y) to 0 for n in {scope['dims']}, d in {scope['degrees']}",
            all(v["proved"] for v in results.values()),
            samples=len(results),
        ),
        core(
            "each map has C(n + d, d) features", all(v["features"] == v["expected_features"] for v in results.values())
        ),
        proved("the displayed 6-feature map of the degree-2 kernel in 2-D reproduces (x^T y + c)^2", displayed),
        details=results,
    )


@claim(
    "statistics/rbf-kernel-matrix-is-positive-semidefinite",
    sources=["S004-15"],
    says="The kernel function is defined as (satisfying certain conditions) K(x1, x2) = phi(x1)' phi(x2) "
    "(核函数定义为（满足一定条件）). This claim tests a gloss: the condition is Mercer's (every Gram matrix is "
    "positive semidefinite); the RBF kernel meets it, the 'sigmoid kernel' does not.",
    expected="holds",
    scope={"gamma": [0.01, 0.5, 10.0], "points": [2, 200], "dims": [3], "sigmoid": "tanh(x^T y - 1)"},
    tolerance="eigenvalues >= -n eps lambda_max (round-off of a symmetric eigensolver)",
)
def _rbf_psd(scope) -> Evidence:
    rng = np.random.default_rng(9)
    worst, sigmoid_min = np.inf, np.inf
    for gamma, n, dim in itertools.product(scope["gamma"], scope["points"], scope["dims"]):
        x = jnp.asarray(rng.normal(size=(n, dim)))
        eigenvalues = np.linalg.eigvalsh(np.asarray(rbf_kernel_matrix(x, gamma=gamma)))
        worst = min(worst, eigenvalues[0] / (n * np.finfo(np.float64).eps * eigenvalues[-1]))
        sigmoid_min = min(sigmoid_min, float(np.linalg.eigvalsh(np.tanh(np.asarray(x @ x.T) - 1.0))[0]))
    return evidence(
        "measurement",
        core(
            f"every RBF Gram matrix (gamma {scope['gamma']}, {scope['points']} points in {scope['dims']}-D) has "
            "eigenvalues >= -n eps lambda_max",
            worst >= -1.0,
            smallest_in_units_of_the_floor=worst,
            dtype="float64",
        ),
        core(
            "the sigmoid 'kernel' tanh(x^T y - 1) has a Gram matrix with a negative eigenvalue (no inner product)",
            sigmoid_min < 0,
            sigmoid_min_eigenvalue=sigmoid_min,
        ),
    )
