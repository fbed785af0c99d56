"""Claims found while annotating note 000 (and shared with note 004): why more data and noise augmentation
fight overfitting, for least squares, where both have exact expectations."""

from __future__ import annotations

import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence
from derivations.compare import compare
from derivations.statistics import MC_Z


def ols_expected_errors(x: np.ndarray, noise: float) -> tuple[float, float]:
    """Exact E[training MSE] and E[in-sample test MSE] (fresh labels at the same inputs) of least squares on
    the design ``x`` (n x p) with label noise of standard deviation ``noise``: sigma^2 tr(I - H) / n and
    sigma^2 (n + tr H) / n, H the hat matrix, computed from H itself."""
    n = x.shape[0]
    hat = x @ np.linalg.pinv(x)
    trace = float(np.trace(hat))
    return noise**2 * (n - trace) / n, noise**2 * (n + trace) / n


def gap_formula(n: int, p: int, noise: float) -> float:
    """The closed form of E[test MSE] - E[training MSE] for least squares with p free weights: 2 sigma^2 p / n."""
    return 2 * noise**2 * p / n


def monte_carlo_gap(x: np.ndarray, noise: float, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean and standard error of (test MSE - training MSE) over ``reps`` label draws (true weights 1)."""
    n, p = x.shape
    mean = x @ np.ones(p)
    y = mean + noise * rng.normal(size=(reps, n))
    y_new = mean + noise * rng.normal(size=(reps, n))
    fit = y @ np.linalg.pinv(x).T @ x.T
    gap = np.mean((y_new - fit) ** 2, 1) - np.mean((y - fit) ** 2, 1)
    return float(gap.mean()), float(gap.std(ddof=1) / np.sqrt(reps))


def fresh_input_gap(n: int, p: int, noise: float, reps: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean and standard error of (test MSE on new inputs - training MSE) over ``reps`` draws of the design
    x ~ N(0, I) and the labels (true weights 1). For a new input x' ~ N(0, I) the expected squared error of the
    fit is sigma^2 + ||w_hat - w||^2, so the test error needs no test sample."""
    x = rng.normal(size=(reps, n, p))
    y = x @ np.ones(p) + noise * rng.normal(size=(reps, n))
    w_hat = np.linalg.solve(np.swapaxes(x, 1, 2) @ x, (np.swapaxes(x, 1, 2) @ y[..., None]))[..., 0]
    train = np.mean((y - (x @ w_hat[..., None])[..., 0]) ** 2, 1)
    gap = noise**2 + np.sum((w_hat - 1) ** 2, 1) - train
    return float(gap.mean()), float(gap.std(ddof=1) / np.sqrt(reps))


def random_design_gap(n: int, p: int, noise: float) -> float:
    """E[test MSE on new inputs] - E[training MSE] for least squares with x ~ N(0, I):
    sigma^2 (1 + p / (n - p - 1)) - sigma^2 (n - p) / n (the inverse-Wishart mean of (X^T X)^-1)."""
    return noise**2 * (p / (n - p - 1) + p / n)


def _design(n: int, p: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, p))


def gap_check(scope: dict, rtol: float, formula=gap_formula) -> dict:
    """Exact expected gaps (from the hat matrix) against ``formula`` over the grid, and the trends."""
    exact, closed, rows = [], [], {}
    for n in scope["n"]:
        for p in scope["p"]:
            for s in scope["noise"]:
                train, test = ols_expected_errors(_design(n, p, n * 100 + p), s)
                exact.append(test - train)
                closed.append(formula(n, p, s))
                rows[f"n={n}, p={p}, sigma={s}"] = test - train
    comparison = compare(lambda: np.array(exact), lambda: np.array(closed), [], rtol=rtol,
                         atol=0.0)
    rng = np.random.default_rng(0)
    zs = []
    for n, p in scope["monte_carlo"]:
        mean, se = monte_carlo_gap(_design(n, p, n * 100 + p), 1.0, scope["reps"], rng)
        zs.append(abs(mean - formula(n, p, 1.0)) / se)
    p_mid, s_mid = scope["p"][len(scope["p"]) // 2], scope["noise"][-1]
    by_n = [rows[f"n={n}, p={p_mid}, sigma={s_mid}"] for n in scope["n"]]
    n_mid = scope["n"][len(scope["n"]) // 2]
    by_p = [rows[f"n={n_mid}, p={p}, sigma={s_mid}"] for p in scope["p"]]
    noiseless = [rows[k] for k in rows if k.endswith("sigma=0.0")]
    return {"comparison": comparison, "worst_z": max(zs), "falls_with_n": bool(np.all(np.diff(by_n) < 0)),
            "grows_with_p": bool(np.all(np.diff(by_p) > 0)),
            "zero_without_noise": bool(noiseless) and max(abs(v) for v in noiseless) <= 1e-12, "rows": rows}


@claim(
    "regularization/overfitting-gap-is-two-sigma-squared-p-over-n",
    sources=["S000-01", "S004-03", "S004-08"],
    says="Against overfitting, from the data side: increase the amount of data (增大数据量, S000-01; 增加数据规模, "
    "S004-03; 增加训练数据 against the curse of dimensionality, S004-08). Causes of overfitting: the training set "
    "is small for the model's complexity (训练集的数量级要小于模型的复杂度), and the noise is so large that the model "
    "memorises it (样本里的噪音数据干扰过大，大到模型过分记住了噪音特征) (S004-03). This claim tests a gloss for least "
    "squares: the expected gap between the error on fresh labels at the training inputs (in sample) and the "
    "training error is 2 sigma^2 p / n; on new inputs x ~ N(0, I) it is sigma^2 (p / (n - p - 1) + p / n), larger, "
    "and without bound as p approaches n. Both shrink with more data, grow with more weights and vanish without "
    "label noise.",
    expected="holds",
    scope={"n": [20, 40, 80, 160], "p": [2, 5, 10, 19], "noise": [0.0, 0.5, 2.0],
           "monte_carlo": [[20, 5], [40, 19]], "reps": 4000, "z": MC_Z,
           "model": "least squares with p weights, n inputs x ~ N(0, I), fresh labels at the same inputs",
           "fresh_inputs_reps": 20000},
    tolerance=f"Monte-Carlo: the measured mean gap within {MC_Z} standard errors of the formula",
)
def _overfitting_gap(scope, rtol) -> Evidence:
    out = gap_check(scope, rtol)
    rng = np.random.default_rng(2)
    fresh = {(n, p): fresh_input_gap(n, p, 1.0, scope["fresh_inputs_reps"], rng) for n, p in scope["monte_carlo"]}
    z_random = max(abs(m - random_design_gap(n, p, 1.0)) / se for (n, p), (m, se) in fresh.items())
    z_fixed = min(abs(m - gap_formula(n, p, 1.0)) / se for (n, p), (m, se) in fresh.items())
    return evidence(
        "measurement",
        compared("the exact expected in-sample gap E[test MSE] - E[training MSE] (fresh labels at the training "
                 "inputs), computed from the hat matrix of each design, equals 2 sigma^2 p / n at every (n, p, sigma) "
                 "of the grid", out["comparison"]),
        core(f"the measured mean gap over {scope['reps']} label draws is within {scope['z']} standard errors of "
             "2 sigma^2 p / n", out["worst_z"] <= scope["z"], worst_z=out["worst_z"]),
        core("more data shrinks the gap (it falls strictly as n grows at fixed p)", out["falls_with_n"]),
        core("more weights for the same data widen it (it grows strictly with p at fixed n)", out["grows_with_p"]),
        core("without label noise there is nothing to memorise: the gap is 0 at sigma = 0", out["zero_without_noise"]),
        core(f"on new inputs x ~ N(0, I) ({scope['fresh_inputs_reps']} draws of design and labels at each (n, p) of "
             f"{scope['monte_carlo']}) the measured gap is within {scope['z']} standard errors of "
             "sigma^2 (p / (n - p - 1) + p / n)", z_random <= scope["z"], worst_z=z_random),
        core(f"and the two gaps differ: 2 sigma^2 p / n is not the gap on new inputs (the nearest (n, p) is "
             f"{z_fixed:.0f} standard errors away)", z_fixed > scope["z"], least_z=z_fixed),
        details={"gaps": out["rows"], "fresh_input_gaps": {f"n={n}, p={p}": {"measured": m, "standard_error": se,
                                                                               "random_design": random_design_gap(
                                                                                   n, p, 1.0),
                                                                               "in_sample": gap_formula(n, p, 1.0)}
                                                           for (n, p), (m, se) in fresh.items()}},
    )


def augmented_loss(w: np.ndarray, x: np.ndarray, y: np.ndarray, s: float) -> float:
    """Mean squared error of the linear model w over the augmented set: each input x_i replaced by its 2d
    copies x_i +- s sqrt(d) e_j (noise of mean 0 and covariance s^2 I, exactly)."""
    d = x.shape[1]
    shifts = s * np.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)])
    augmented = (x[:, None, :] + shifts[None]).reshape(-1, d)
    return float(np.mean((np.repeat(y, 2 * d) - augmented @ w) ** 2))


def penalised_loss(w: np.ndarray, x: np.ndarray, y: np.ndarray, s: float) -> float:
    """The mean squared error plus the L2 penalty s^2 ||w||^2."""
    return float(np.mean((y - x @ w) ** 2) + s**2 * w @ w)


def augmented_minimiser(x: np.ndarray, y: np.ndarray, s: float) -> np.ndarray:
    d = x.shape[1]
    shifts = s * np.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)])
    augmented = (x[:, None, :] + shifts[None]).reshape(-1, d)
    return np.linalg.lstsq(augmented, np.repeat(y, 2 * d), rcond=None)[0]


def ridge_minimiser(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """argmin (1/n) ||y - X w||^2 + lam ||w||^2 = (X^T X + n lam I)^-1 X^T y."""
    n, d = x.shape
    return np.linalg.solve(x.T @ x + n * lam * np.eye(d), x.T @ y)


def augmentation_check(scope: dict, rtol: float, penalty=penalised_loss, ridge=ridge_minimiser) -> dict:
    rng = np.random.default_rng(1)
    losses_a, losses_p, mins_a, mins_r = [], [], [], []
    for n, d in scope["shapes"]:
        x, y = rng.normal(size=(n, d)), rng.normal(size=n)
        for s in scope["noise_scale"]:
            for _ in range(scope["weights"]):
                w = rng.normal(size=d)
                losses_a.append(augmented_loss(w, x, y, s))
                losses_p.append(penalty(w, x, y, s))
            mins_a.append(augmented_minimiser(x, y, s))
            mins_r.append(ridge(x, y, s**2))
    same_loss = compare(lambda: np.array(losses_a), lambda: np.array(losses_p), [], rtol=rtol)
    same_min = compare(lambda: np.concatenate(mins_a), lambda: np.concatenate(mins_r), [],
                       rtol=scope["solve_rtol"])
    return {"loss": same_loss, "minimiser": same_min}


@claim(
    "regularization/noise-augmentation-is-an-l2-penalty",
    sources=["S000-01", "S004-03"],
    says="Against overfitting: use data augmentation (使用数据增强技术, S000-01); augment the data, e.g. rotate, "
    "scale, crop the images, add noise (对数据进行增强，如对图像旋转，缩放，剪切，添加噪声等, S004-03). This claim "
    "tests a gloss for the one augmentation with an exact answer, additive input noise on a linear model: training on "
    "inputs with noise of covariance s^2 I is least squares plus the L2 penalty s^2 ||w||^2 (Bishop, 1995).",
    expected="holds",
    scope={"shapes": [[12, 3], [30, 8]], "noise_scale": [0.1, 0.5, 2.0], "weights": 5,
           "model": "linear least squares; noise of mean 0 and covariance s^2 I", "solve_rtol": 1e-8},
    tolerance="the two minimisers come from two different linear solves (an augmented lstsq and a ridge solve); "
    "their agreement is bounded by the condition number of the systems, about 1e2 here, times float64 rounding",
    rtol=1e-10,
)
def _noise_augmentation(scope, rtol) -> Evidence:
    out = augmentation_check(scope, rtol)
    return evidence(
        "measurement",
        compared("the mean squared error over the noise-augmented set equals the clean mean squared error plus "
                 "s^2 ||w||^2, for random weights, at every shape and noise scale", out["loss"]),
        compared("the least-squares fit to the augmented set is the ridge solution (X^T X + n s^2 I)^-1 X^T y",
                 out["minimiser"]),
    )
