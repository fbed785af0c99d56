"""Claims found while annotating note 004: model capacity against underfitting and overfitting (polynomial
least squares on the statistics chapter's sin(2 pi x) data), polynomial terms on curved and straight data,
and the ridge penalty's two sides (training error up, expected error down for a small penalty)."""

from __future__ import annotations

import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.statistics import MC_Z, polynomial_fit, truth


def capacity_curves(degrees, sets: int, n_train: int, noise: float, seed: int, target=truth, fitter=polynomial_fit):
    """Per training set, the training MSE and the test MSE (against fresh labels on a fine grid) of
    least-squares polynomials of each degree, for y = target(x) + N(0, noise^2), x ~ U(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (sets, n_train))
    y = target(x) + rng.normal(0, noise, x.shape)
    x_test = np.linspace(0, 1, 200)
    train, test = [], []
    for d in degrees:
        both = fitter(x, y, np.concatenate([np.broadcast_to(x_test, (sets, 200)), x], 1), d)
        fit_test, fit_train = both[:, :200], both[:, 200:]
        train.append(np.mean((y - fit_train) ** 2, 1))
        test.append(np.mean((target(x_test) - fit_test) ** 2, 1) + noise**2)
    return np.array(train), np.array(test)  # (degrees, sets)


def capacity_findings(scope: dict, fitter=polynomial_fit) -> dict:
    degrees = list(range(scope["max_degree"] + 1))
    train, test = capacity_curves(degrees, scope["sets"], scope["n_train"], scope["noise"], 3, fitter=fitter)
    steps = np.diff(train, axis=0)
    scale = train.max()
    mean_train, mean_test = train.mean(1), np.median(test, 1)
    best = int(np.argmin(mean_test))
    low = scope["underfit_degree"]
    return {
        "nested": bool(np.all(steps <= scope["rounding"] * scale)),
        "best": best, "mean_train": mean_train, "median_test": mean_test,
        "underfit": bool(mean_train[low] > scope["factor"] * mean_train[best]
                         and mean_test[low] > scope["factor"] * mean_test[best]),
        "overfit": bool(mean_test[-1] > scope["factor"] * mean_test[best] and mean_train[-1] < mean_train[best]),
        "interior": 0 < best < degrees[-1],
    }


CAPACITY_SCOPE = {"max_degree": 13, "n_train": 15, "noise": 0.3, "sets": 400, "underfit_degree": 1, "factor": 2.0,
                  "rounding": 1e-9,
                  "target": "sin(2 pi x) on [0, 1]; Legendre least squares; test MSE against fresh labels"}


@claim(
    "regularization/capacity-lowers-training-error-and-eventually-overfits",
    sources=["S004-02", "S004-04", "S000-01"],
    says="Training and validation loss both large: underfitting, add layers (S004-02); causes of underfitting: too "
    "low a complexity, too few features; remedies: more complexity, higher-order features, a larger capacity; a "
    "low-capacity model may hardly fit the training set (S004-04); a simple model may underfit (S000-01). This "
    "claim tests these with polynomial degree as the capacity, from degree 0 up to 13, below the interpolation "
    "threshold (15 training points); what more capacity does beyond, and the note's 'more units, more "
    "overfitting', is regularization/more-capacity-overfits-only-up-to-the-interpolation-threshold.",
    expected="holds",
    scope=CAPACITY_SCOPE,
    tolerance="the training MSE is non-increasing in the degree up to 1e-9 of its scale (pinv rounding)",
)
def _capacity(scope) -> Evidence:
    out = capacity_findings(scope)
    return evidence(
        "measurement",
        core("more capacity never fits the training set worse: in every training set the training MSE is "
             f"non-increasing in the degree 0 ... {scope['max_degree']}", out["nested"], sets=scope["sets"]),
        core(f"a low-capacity model underfits: at degree {scope['underfit_degree']} both the training and the "
             f"test error exceed {scope['factor']}x those at the best degree", out["underfit"],
             train=float(out["mean_train"][scope["underfit_degree"]]),
             test=float(out["median_test"][scope["underfit_degree"]]), best_degree=out["best"]),
        core(f"below the interpolation threshold a high-capacity model overfits: at degree {scope['max_degree']} the "
             f"training error is below the best degree's while the test error exceeds {scope['factor']}x the best",
             out["overfit"], train=float(out["mean_train"][-1]), test=float(out["median_test"][-1])),
        core("the test error is lowest at an intermediate capacity", out["interior"], best_degree=out["best"]),
        details={"mean training MSE by degree": out["mean_train"].tolist(),
                 "median test MSE by degree": out["median_test"].tolist()},
    )


@claim(
    "regularization/more-capacity-overfits-only-up-to-the-interpolation-threshold",
    sources=["S004-01", "S004-03"],
    says="The more hidden units and layers, the stronger the learning ability, but also the easier to overfit "
    "(模型隐藏单元越多，层数越多学习能力越强，不过也容易导致过拟合, S004-01); against overfitting, lower the model's "
    "complexity (S004-03). [Tested with polynomial degree as the capacity, up to 20 times the number of training "
    "points.]",
    expected="qualified",
    correction="Up to the interpolation threshold (degree n - 1 = 14 for 15 training points) the classic U holds: "
    "low capacity underfits, the test error is lowest in between and grows towards the threshold, where lowering "
    "the capacity helps. Past it, more capacity helps again: among the many polynomials that fit the training set "
    "exactly, least squares (the pseudo-inverse, also what gradient descent from zero converges to) returns the "
    "one of least coefficient norm, and the test error falls as the degree grows: 'double descent' (Belkin et "
    "al., 2019). How far it falls depends on the basis whose norm is minimised: with the Legendre polynomials "
    "here (whose coefficient norm penalises degree k about 2k + 1 times more than an orthonormal basis would) "
    "to 1.5 x the best degree's at degree 300; in the orthonormal basis to about 4.5 x. There, lowering the "
    "capacity to the threshold is the worst choice. 'More capacity, more overfitting' describes the classical "
    "regime only; the same curve is seen in wide networks.",
    scope={**CAPACITY_SCOPE, "degrees": [3, 14, 30, 120, 300]},
    tolerance="'fitted exactly': training MSE below 1e-5 of the largest (pinv's cutoff on the square, ill-conditioned "
    "system at the threshold leaves ~1e-6)",
)
def _double_descent(scope) -> Evidence:
    degrees, factor = scope["degrees"], scope["factor"]
    train, test = capacity_curves(degrees, scope["sets"], scope["n_train"], scope["noise"], 3)
    median = dict(zip(degrees, np.median(test, 1), strict=True))
    _, test_on = capacity_curves(degrees, scope["sets"], scope["n_train"], scope["noise"], 3,
                                 fitter=orthonormal_polynomial_fit)
    median_on = dict(zip(degrees, np.median(test_on, 1), strict=True))
    threshold = scope["n_train"] - 1
    best, past = min(median.values()), [d for d in degrees if d > threshold]
    # At the threshold the Legendre system is square and ill-conditioned, and pinv's cutoff leaves ~1e-6 of the
    # training error's scale; past it the fit is exact to ~1e-19.
    interpolates = bool(np.all(train[degrees.index(threshold):] <= 1e-5 * float(train.max())))
    return evidence(
        "measurement",
        core(f"from degree {threshold} on, every training set is fitted exactly (training MSE below 1e-5 of degree "
             f"{degrees[0]}'s)", interpolates, largest=float(train[degrees.index(threshold):].max())),
        core(f"approaching the threshold more capacity overfits: the median test error at degree {threshold} is above "
             f"{factor}x that of degree {degrees[0]}", median[threshold] > factor * median[degrees[0]],
             test_at_threshold=float(median[threshold])),
        core(f"the test error peaks at the threshold: its median is above {factor}x that of every larger degree of "
             f"{past}", all(median[threshold] > factor * median[d] for d in past)),
        scoped(f"past the threshold more capacity keeps overfitting more: the median test error does not fall from "
               f"degree {past[0]} to {past[1:]}", all(median[d] >= median[past[0]] for d in past[1:]),
               **{f"test_degree_{d}": float(m) for d, m in median.items()}, best=best),
        core(f"the fall past the threshold is not an artefact of the basis: with orthonormal Legendre columns too the "
             f"median test error falls from degree {past[0]} to {past[1]}", median_on[past[1]] < median_on[past[0]],
             **{f"orthonormal_test_degree_{d}": float(m) for d, m in median_on.items()}),
        details={"median test MSE by degree": {str(d): float(m) for d, m in median.items()},
                 "orthonormal basis": {str(d): float(m) for d, m in median_on.items()},
                 "last_over_best": {"legendre": float(median[degrees[-1]] / best),
                                    "orthonormal": float(median_on[degrees[-1]] / min(median_on.values()))}},
    )


def orthonormal_polynomial_fit(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, degree: int) -> np.ndarray:
    """:func:`polynomial_fit` with Legendre columns scaled by sqrt(2k + 1) (orthonormal on [-1, 1]), so that the
    least-norm fit past the interpolation threshold weighs every degree alike."""
    scale = np.sqrt(2 * np.arange(degree + 1) + 1)
    design = np.polynomial.legendre.legvander(2 * x - 1, degree) * scale
    coefficients = np.linalg.pinv(design) @ y[..., None]
    return ((np.polynomial.legendre.legvander(2 * x_test - 1, degree) * scale) @ coefficients)[..., 0]


def linear_truth(x: np.ndarray) -> np.ndarray:
    return 2 * x - 1


def added_terms_effect(target, scope: dict, seed: int) -> tuple[float, float]:
    """Mean and standard error of test MSE(degree 3) - test MSE(degree 1) over training sets (paired)."""
    _, test = capacity_curves([1, 3], scope["sets"], scope["n_train"], scope["noise"], seed, target)
    diff = test[1] - test[0]
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))


@claim(
    "regularization/polynomial-terms-help-only-a-model-that-underfits",
    sources=["S004-04"],
    says="Add polynomial features: e.g. adding quadratic or cubic terms to a linear model makes its "
    "generalisation stronger (例如将线性模型通过添加二次项或者三次项使模型泛化能力更强).",
    expected="qualified",
    correction="Only for a linear model that underfits: on curved data (sin(2 pi x)) adding x^2 and x^3 lowers the "
    "test error. On data that are linear the added terms only add variance (for least squares the expected "
    "excess error grows like sigma^2 p / n): the test error rises. Polynomial terms raise the capacity, which "
    "helps generalisation only while the bias dominates.",
    scope={"n_train": 15, "noise": 0.3, "sets": 4000, "z": MC_Z, "curved": "sin(2 pi x)", "straight": "2x - 1"},
    tolerance=f"Monte-Carlo: an effect counts when it exceeds {MC_Z} standard errors of the paired difference",
)
def _polynomial_terms(scope) -> Evidence:
    curved, se_c = added_terms_effect(truth, scope, 4)
    straight, se_s = added_terms_effect(linear_truth, scope, 5)
    return evidence(
        "measurement",
        core("on curved data (sin(2 pi x)) adding x^2 and x^3 to the linear model lowers the expected test error",
             curved < -scope["z"] * se_c, change=curved, standard_error=se_c),
        scoped("on data that are linear adding x^2 and x^3 also lowers it (it raises it instead when the change "
               "is positive)", straight < -scope["z"] * se_s, change=straight, standard_error=se_s),
    )


def ridge_risk_matrix(x: np.ndarray, w: np.ndarray, noise: float, lam):
    """Exact E||w_hat(lam) - w||^2 of ridge (X^T X + lam I)^-1 X^T y, y = X w + N(0, noise^2 I), from matrices
    (analytic in lam: no conjugation, so a complex lam gives its complex-step derivative)."""
    g = x.T @ x
    a = np.linalg.inv(g + lam * np.eye(g.shape[0]))
    bias = (a @ g - np.eye(g.shape[0])) @ w
    return bias @ bias + noise**2 * np.trace(a @ g @ a)


def complex_step_slope(f, at: float, h: float = 1e-30) -> float:
    """f'(at) as Im f(at + i h) / h: no subtraction, so exact to rounding for an analytic f."""
    return float(np.imag(f(at + 1j * h)) / h)


def ridge_risk_slope_at_zero(x: np.ndarray, noise: float) -> float:
    """Hoerl and Kennard: d/d lam E||w_hat - w||^2 at lam = 0 is -2 sigma^2 sum_i 1/d_i^2, d_i the eigenvalues
    of X^T X (whatever w)."""
    d = np.linalg.eigvalsh(x.T @ x)
    return float(-2 * noise**2 * np.sum(1 / d**2))


def ridge_training_mse(x: np.ndarray, y: np.ndarray, lam: float) -> float:
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)
    return float(np.mean((y - x @ w) ** 2))


@claim(
    "regularization/a-small-ridge-penalty-lowers-the-expected-error",
    sources=["S004-03", "S004-04"],
    says="Against overfitting add a regularisation term (添加正则化项, S004-03); against underfitting lower the "
    "regularisation parameter: regularisation is meant to prevent overfitting, so when the model underfits it "
    "must be reduced (减少正则化参数, S004-04). This claim tests both for ridge regression.",
    expected="holds",
    scope={"shapes": [[12, 5], [30, 20], [50, 10]], "noise": [0.5, 2.0], "lambdas": [0.0, 0.1, 1.0, 10.0, 100.0, 1e4],
           "small_lambdas": [1e-4, 1e-3, 1e-2, 0.1, 1.0],
           "rounding": 1e-12, "model": "ridge on a fixed Gaussian design, true w ~ N(0, I)"},
    tolerance="non-decrease of the training MSE in lambda is tested up to 1e-12 of its scale (solve rounding)",
)
def _ridge(scope, rtol) -> Evidence:
    rng = np.random.default_rng(7)
    slopes_ad, slopes_cf, better, monotone, drained = [], [], [], [], []
    for n, p in scope["shapes"]:
        x = rng.normal(size=(n, p))
        w = rng.normal(size=p)
        for s in scope["noise"]:
            risk = lambda lam, x=x, w=w, s=s: ridge_risk_matrix(x, w, s, lam)  # noqa: E731
            slopes_ad.append(complex_step_slope(risk, 0.0))
            slopes_cf.append(ridge_risk_slope_at_zero(x, s))
            lowest = min(float(np.real(risk(lam))) for lam in scope["small_lambdas"])
            better.append(lowest < float(np.real(risk(0.0))))
            y = x @ w + s * rng.normal(size=n)
            mses = [ridge_training_mse(x, y, lam) for lam in scope["lambdas"]]
            monotone.append(bool(np.all(np.diff(mses) >= -scope["rounding"] * max(mses))))
            drained.append(mses[-1] > 0.9 * float(np.mean(y**2)))
    slope = compare(lambda: np.array(slopes_ad), lambda: np.array(slopes_cf), [], rtol=rtol)
    return evidence(
        "measurement",
        compared("the slope of the exact expected error E||w_hat - w||^2 at lambda = 0 (complex-step derivative of "
                 "the matrix formula) is Hoerl and Kennard's -2 sigma^2 sum 1/d_i^2", slope),
        core(f"that slope is negative in every configuration: some lambda > 0 (of {scope['small_lambdas']}) has a "
             "lower expected error than no penalty (a small penalty helps)",
             all(v < 0 for v in slopes_cf) and all(better)),
        core(f"the training MSE never falls as lambda grows over {scope['lambdas']}: a larger penalty fits the "
             "training set worse (reducing it is the remedy for underfitting)", all(monotone)),
        core("at the largest lambda the training MSE is above 90% of mean(y^2): the model barely fits",
             all(drained)),
    )
