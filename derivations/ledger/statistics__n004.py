"""Claims found while annotating note 004: bagging against underfitting (it leaves a weak learner's bias),
and linear separability as the dimension grows (and what fitting it costs)."""

from __future__ import annotations

import itertools

import numpy as np
import scipy.optimize

from derivations.claims import Evidence, claim, core, evidence, scoped
from derivations.statistics import bagged, bias2_and_variance, fit_learner, l2_boost, training_sets, truth

X_TEST = np.linspace(0.05, 0.95, 40)


@claim(
    "statistics/bagging-weak-learners-fixes-underfitting",
    sources=["S004-04"],
    says="Against underfitting: a low-capacity model may hardly fit the training set; use ensemble methods such "
    "as bagging, bagging several weak learners (使用集成学习方法，如Bagging ,将多个弱学习器Bagging).",
    expected="refuted",
    correction="Bagging averages learners fitted to bootstrap resamples: it lowers the variance, not the bias, so "
    "an underfitting (high-bias) learner stays underfitted. Bagged regression stumps keep nearly all of a single "
    "stump's bias^2 on sin(2 pi x); boosting, the ensemble that fits each learner to the previous residuals, is "
    "the one that lowers it.",
    scope={"sets": 200, "n_train": 50, "noise": 0.3, "replicates": 20, "rounds": 100, "shrinkage": 0.1,
           "learner": "regression stump", "lower_by_at_least": 0.5},
    aliases=["statistics/bagging-does-not-fix-an-underfitting-learner"],
)
def _bagging_bias(scope) -> Evidence:
    rng = np.random.default_rng(11)
    x, y = training_sets(rng, scope["sets"], scope["n_train"], scope["noise"])
    f = truth(X_TEST)
    single = bias2_and_variance(fit_learner("stump", x, y, X_TEST), f)
    bag = bias2_and_variance(bagged("stump", x, y, X_TEST, replicates=scope["replicates"], rng=rng), f)
    boost = bias2_and_variance(l2_boost("stump", x, y, X_TEST, rounds=scope["rounds"],
                                        shrinkage=scope["shrinkage"]), f)
    cut = scope["lower_by_at_least"]
    return evidence(
        "measurement",
        core("the single stump underfits: its bias^2 exceeds its variance", single[0] > single[1],
             bias2=single[0], variance=single[1]),
        core(f"bagging {scope['replicates']} stumps fixes the underfitting: it cuts the bias^2 by at least "
             f"{cut:.0%}", bag[0] <= (1 - cut) * single[0], bagged_bias2=bag[0], single_bias2=single[0]),
        core(f"boosting stumps ({scope['rounds']} rounds) does cut the bias^2 by at least {cut:.0%}",
             boost[0] <= (1 - cut) * single[0], boosted_bias2=boost[0]),
        core("bagging lowers the stump's variance (what it is for)", bag[1] < single[1], bagged_variance=bag[1]),
    )


def separable(points: np.ndarray, labels: np.ndarray) -> bool:
    """Whether some (w, b) has labels * (points w + b) >= 1 for every point (an LP feasibility problem)."""
    n, d = points.shape
    a_ub = -labels[:, None] * np.hstack([points, np.ones((n, 1))])
    result = scipy.optimize.linprog(np.zeros(d + 1), A_ub=a_ub, b_ub=-np.ones(n), bounds=[(None, None)] * (d + 1),
                                    method="highs")
    return result.status == 0


def interpolating_classifier(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The minimum-norm (w, b) with points w + b = labels exactly (exists when n <= d + 1, general position)."""
    return np.linalg.pinv(np.hstack([points, np.ones((len(points), 1))])) @ labels


@claim(
    "statistics/points-become-linearly-separable-as-the-dimension-grows",
    sources=["S004-08", "S004-15", "S004-16"],
    says="Curse of dimensionality: as the dimension grows the samples become sparse and a separating hyperplane is "
    "easy to find, but mapped back to the original space it easily overfits (S004-08); data not linearly "
    "separable in a low-dimensional space have a separating hyperplane in a high-dimensional one (S004-15, and "
    "S004-16: 到高维空间中线性可分的几率会高一些).",
    expected="holds",
    scope={"points": 5, "low_dimension": 2, "high_dimension": 4, "xor_lift": "phi(x) = (x1, x2, x1 x2)",
           "signal_label_test": {"n": 40, "dimensions": [2, 60], "flipped": 0.15, "test": 2000, "draws": 20,
                                 "labels": "sign(x1), a share flipped in training; clean on the test points"},
           "least_accuracy_drop": 0.2},
)
def _separability(scope) -> Evidence:
    rng = np.random.default_rng(8)
    n = scope["points"]
    labelings = [np.array(s, float) for s in itertools.product([-1, 1], repeat=n)]
    low = rng.normal(size=(n, scope["low_dimension"]))
    high = rng.normal(size=(n, scope["high_dimension"]))
    low_share = np.mean([separable(low, y) for y in labelings])
    high_share = np.mean([separable(high, y) for y in labelings])
    xor = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    xor_labels = np.array([1.0, 1.0, -1.0, -1.0])
    lifted = np.hstack([xor, xor[:, :1] * xor[:, 1:]])
    t = scope["signal_label_test"]
    accuracy = {}
    for d in t["dimensions"]:
        runs = []
        for _ in range(t["draws"]):
            x, x_new = rng.normal(size=(t["n"], d)), rng.normal(size=(t["test"], d))
            y = np.sign(x[:, 0]) * np.where(rng.uniform(size=t["n"]) < t["flipped"], -1.0, 1.0)
            w = interpolating_classifier(x, y)
            runs.append([np.mean(np.sign(np.hstack([v, np.ones((len(v), 1))]) @ w) == labels)
                         for v, labels in ((x, y), (x_new, np.sign(x_new[:, 0])))])  # fmt: skip
        accuracy[d] = np.mean(runs, axis=0)
    (low_d, high_d), drop = t["dimensions"], scope["least_accuracy_drop"]
    return evidence(
        "measurement",
        core(f"{n} points in general position: in {scope['high_dimension']} dimensions every one of the {2**n} "
             f"labellings is linearly separable, in {scope['low_dimension']} dimensions only some are",
             high_share == 1.0 and low_share < 1.0, share_low=float(low_share), share_high=float(high_share)),
        core("XOR is not linearly separable in the plane, and is after the lift to (x1, x2, x1 x2)",
             not separable(xor, xor_labels) and separable(lifted, xor_labels)),
        core(f"labels y = sign(x1) with {t['flipped']:.0%} flipped, n = {t['n']}: at d = {high_d} > n the "
             f"least-squares hyperplane fits every training label (the flipped ones too) and predicts clean labels at "
             f"least {drop} worse than at d = {low_d}, where it cannot fit them all: it has fitted the noise",
             bool(accuracy[high_d][0] == 1.0 and accuracy[low_d][0] < 1.0
                  and accuracy[low_d][1] - accuracy[high_d][1] >= drop),
             **{f"{kind}_accuracy_d{d}": float(accuracy[d][i]) for d in t["dimensions"]
                for i, kind in enumerate(("train", "test"))}),
    )


def pca(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, component variances (descending) and components (rows) of the data."""
    mean = points.mean(0)
    _, s, vt = np.linalg.svd(points - mean, full_matrices=False)
    return mean, s**2 / len(points), vt


def redundant_data(n: int, independent: int, redundant: int, seed: int) -> np.ndarray:
    """n samples of ``independent`` random features plus ``redundant`` features that are fixed linear
    combinations of them."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, independent))
    return np.hstack([base, base @ rng.normal(size=(independent, redundant))])


@claim(
    "statistics/pca-removes-redundant-features-without-loss",
    sources=["S004-09"],
    says="Benefits of dimensionality reduction: ... remove redundant features (去除冗余特征).",
    expected="holds",
    scope={"n": 50, "independent": [2, 5], "redundant": [3, 10], "rank_relative": 1e-10},
)
def _pca_redundant(scope, rtol) -> Evidence:
    kept, exact = [], []
    for i, (r, extra) in enumerate(itertools.product(scope["independent"], scope["redundant"])):
        data = redundant_data(scope["n"], r, extra, seed=i)
        mean, variances, components = pca(data)
        kept.append(int(np.sum(variances > scope["rank_relative"] * variances[0])) == r)
        basis = components[:r]
        rebuilt = mean + (data - mean) @ basis.T @ basis
        scale = float(np.abs(data).max())
        exact.append(float(np.abs(rebuilt - data).max()) <= rtol * scale * data.shape[1])
    return evidence(
        "measurement",
        core("with r independent features and the rest linear combinations of them, PCA finds exactly r "
             "components of non-zero variance (the redundant directions have none)", all(kept)),
        core("projecting onto those r components and back rebuilds every feature to rounding: the redundant "
             "features are dropped without losing anything", all(exact)),
    )


def storage(n: int, d: int, k: int) -> tuple[int, int]:
    """Numbers stored for n samples of d features, raw (n d) and as k PCA scores plus the basis and mean
    (n k + k d + d)."""
    return n * d, n * k + k * d + d


@claim(
    "statistics/dimension-reduction-saves-storage-only-with-enough-samples",
    sources=["S004-09"],
    says="Benefits of dimensionality reduction: (1) it reduces the storage space (减少存储空间).",
    expected="qualified",
    correction="Storing k PCA scores per sample plus the k x d basis and the mean costs n k + k d + d numbers "
    "against n d raw: a saving only when n > d (k + 1) / (d - k), i.e. with enough samples (for k << d, "
    "roughly n > k). With few samples the basis costs more than it saves.",
    scope={"configurations": [[1000, 100, 10], [10000, 784, 50], [5, 100, 10], [20, 1000, 50]], "large_n": 1000},
)
def _storage(scope) -> Evidence:
    rows = {f"n={n}, d={d}, k={k}": storage(n, d, k) for n, d, k in scope["configurations"]}
    many = {key: v for (n, _, _), (key, v) in zip(scope["configurations"], rows.items(), strict=True)
            if n >= scope["large_n"]}
    few = {key: v for (n, _, _), (key, v) in zip(scope["configurations"], rows.items(), strict=True)
           if n < scope["large_n"]}
    threshold = all((compressed < raw) == (n * (d - k) > d * (k + 1))
                    for (n, d, k), (raw, compressed) in zip(scope["configurations"], rows.values(), strict=True))
    return evidence(
        "measurement",
        core(f"with many samples (n >= {scope['large_n']}) k scores per sample take less space than d features",
             all(c < r for r, c in many.values())),
        core("the saving happens exactly when n (d - k) > d (k + 1)", threshold),
        scoped("with few samples it saves space too", all(c < r for r, c in few.values())),
        details={"raw, reduced": rows},
    )
