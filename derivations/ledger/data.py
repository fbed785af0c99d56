"""The claims of the data chapter: standardisation and the least-squares Hessian (condition number, GD
steps), whether scaling changes a fit, z-score and min-max, Mixup's loss, class weighting vs oversampling,
each over a grid of feature scales, correlations, distributions and sizes."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp
from flax import nnx

from derivations.bridge import instantiate, prove_identity, to_jax, value
from derivations.claims import Evidence, claim, compared, core, evidence, proved, scoped
from derivations.compare import compare
from derivations.data import (
    JACOBI_COUNTEREXAMPLE,
    MC_Z,
    _features,
    _lstsq,
    class_weighting_equals_oversampling,
    features_with_covariance,
    gd_steps_to_accuracy,
    gradient_descent_step_bound,
    lam,
    least_squares_hessian,
    min_max,
    mixup_loss_is_linear_in_the_target,
    mixup_symbols,
    mu1,
    mu2,
    numeric_hessian,
    oversampling_expected_gradient,
    r,
    s1,
    s2,
    skewness_is_affine_invariant,
    standardised_hessian_condition_number,
    zscore,
    zscore_moments,
)

FEATURE_GRID = {"scales": [(2.0, 0.1), (1.0, 1.0)], "means": [(3.0, 0.5), (0.0, 0.0)], "correlation": [0.3, 0.9]}


@claim(
    "data/standardising-features-shrinks-the-hessian-condition-number",
    sources=["S002-01"],
    says="Normalising/standardising features speeds up the convergence of the learning algorithm "
    "(加快学习算法的收敛速度).",
    expected="qualified",
    correction="Usually, not always. Where features differ in scale or mean, z-scoring shrinks the Hessian's "
    "condition number and GD needs far fewer steps. But it is a diagonal (Jacobi) rescaling of the Hessian, close "
    "to the best diagonal scaling and not always better than none (van der Sluis 1969): for three correlated "
    "zero-mean features (the scope's covariance) it raises the condition number and GD needs more steps.",
    scope={**FEATURE_GRID, "n": 500, "tol": 1e-6, "model": "linear least squares, GD with lr 1/L",
           "three_features_covariance": [list(row) for row in JACOBI_COUNTEREXAMPLE]},
    atol=1e-12,
    tolerance="Hessian entries that are exactly 0 in theory (the z-scored features' means) are compared to an "
    "absolute 1e-12; the rest to the standard relative 1e-10",
)
def _standardising_speeds_up(scope, rtol, atol) -> Evidence:
    shown_h = least_squares_hessian()
    h_z, eigen_z, kappa_z = standardised_hessian_condition_number()
    bound = gradient_descent_step_bound()
    eps, kappa = sorted(bound.rhs.free_symbols, key=str)  # epsilon, kappa
    hessians, formulas, eigen_got, eigen_want, kappas, rows = [], [], [], [], [], {}
    for scales, means, rho in itertools.product(scope["scales"], scope["means"], scope["correlation"]):
        x, y = _features(scope["n"], scales=scales, means=means, correlation=rho)
        row = {}
        for name, data in (("raw", jax.device_put(x)), ("z-scored", zscore(jax.device_put(x)))):
            hessian = numeric_hessian(np.zeros(3), data, jax.device_put(y))
            m, d = np.mean(np.asarray(data), axis=0), np.std(np.asarray(data), axis=0)
            sample_r = float(np.corrcoef(np.asarray(data).T)[0, 1])
            hessians.append(np.ravel(hessian))
            formulas.append(
                np.ravel(
                    np.asarray(
                        instantiate(shown_h, {mu1: m[0], mu2: m[1], s1: d[0], s2: d[1], r: sample_r}), dtype=np.float64
                    )
                )
            )
            condition = float(np.linalg.cond(np.asarray(hessian)))
            steps = gd_steps_to_accuracy(data, jax.device_put(y), tol=scope["tol"])
            row[name] = {
                "condition_number": condition,
                "gd_steps": steps,
                "step_bound": value(bound, {kappa: sp.Float(condition), eps: sp.Float(scope["tol"])}),
            }
            if name == "z-scored":
                formulas.append(np.ravel(np.asarray(instantiate(h_z, {r: sample_r}), dtype=np.float64)))
                hessians.append(np.ravel(hessian))
                eigen_got.append(np.sort(np.linalg.eigvalsh(np.asarray(hessian))))
                eigen_want.append(np.sort(np.asarray(instantiate(eigen_z, {r: sample_r}), dtype=np.float64).ravel()))
                kappas.append((condition, value(kappa_z, {r: sample_r})))
        rows[f"scales={scales}, means={means}, r={rho}"] = row
    moment = compare(
        lambda: np.asarray(np.concatenate(formulas)),
        lambda: np.asarray(np.concatenate(hessians)),
        [],
        rtol=rtol,
        atol=atol,
    )
    spectrum = compare(
        lambda: np.asarray(np.concatenate(eigen_want)),
        lambda: np.asarray(np.concatenate(eigen_got)),
        [],
        rtol=rtol,
        atol=atol,
    )
    kappa_cmp = compare(
        lambda: np.asarray([k[1] for k in kappas]), lambda: np.asarray([k[0] for k in kappas]), [], rtol=rtol
    )
    within = all(v[n]["gd_steps"] <= v[n]["step_bound"] for v in rows.values() for n in v)
    never_slower = all(v["z-scored"]["gd_steps"] <= v["raw"]["gd_steps"] for v in rows.values())
    unequal = [v for k, v in rows.items() if "scales=(1.0, 1.0), means=(0.0, 0.0)" not in k]
    speedup = min(v["raw"]["gd_steps"] / v["z-scored"]["gd_steps"] for v in unequal)
    x3, y3 = features_with_covariance(scope["n"], scope["three_features_covariance"])
    three = {}
    for name, data in (("raw", jax.device_put(x3)), ("z-scored", zscore(jax.device_put(x3)))):
        hessian = numeric_hessian(np.zeros(4), data, jax.device_put(y3))
        three[name] = {"condition_number": float(np.linalg.cond(np.asarray(hessian))),
                       "gd_steps": gd_steps_to_accuracy(data, jax.device_put(y3), tol=scope["tol"])}  # fmt: skip
    rows["three correlated zero-mean features"] = three
    return evidence(
        "measurement",
        compared(
            "jax.hessian of the least-squares loss equals the displayed moment matrix (and, z-scored, the "
            f"displayed H_z) in {len(rows)} feature configurations",
            moment,
        ),
        compared("the z-scored Hessian's eigenvalues are the displayed 1, 1 - |r|, 1 + |r|", spectrum),
        compared("its condition number is the displayed (1 + |r|)/(1 - |r|)", kappa_cmp),
        core("GD (lr 1/L) reaches the tolerance within the displayed step bound, raw and z-scored", within),
        core(
            "over the two-feature grid, z-scoring never makes GD slower, and speeds it up wherever the features' "
            "scales or means differ from 0 and 1",
            never_slower and speedup > 1,
            smallest_speedup=speedup,
        ),
        scoped(
            "z-scoring does not make GD slower for three correlated zero-mean features (the scope's covariance)",
            three["z-scored"]["gd_steps"] <= three["raw"]["gd_steps"],
            condition_raw=three["raw"]["condition_number"], condition_z_scored=three["z-scored"]["condition_number"],
            steps_raw=three["raw"]["gd_steps"], steps_z_scored=three["z-scored"]["gd_steps"],
        ),
        details=rows,
    )


@claim(
    "data/standardising-makes-the-model-more-accurate",
    sources=["S002-01"],
    says="It puts features of different units on the same numerical scale, reduces the influence of "
    "high-variance features and makes the model more accurate (使不同量纲的特征处于同一数值量级，减少方差大的特征的"
    "影响，使模型更准确).",
    expected="qualified",
    correction="Not for a model with a free affine first layer trained to its optimum: least squares on raw "
    "or z-scored features makes the same predictions (z-scoring is an invertible affine map the weights "
    "absorb). Scaling changes the result only when something else depends on the scale: a penalty such "
    "as ridge's ||w||^2, a distance (k-NN, RBF kernels), or a training run stopped early. Even then it can help or "
    "hurt: it changes what the penalty shrinks. With the signal in the low-variance feature z-scored ridge is more "
    "accurate; with the signal in the high-variance feature only, raw ridge is.",
    scope={"penalties": [5.0, 50.0], "n_train": 200, "n_test": 2000, "models": ["ridge (penalised)", "least squares"],
           "targets": {"signal in both features": [0.7, -4.0], "signal in the high-variance feature": [0.7, 0.0]}},
    aliases=["data/standardising-does-not-change-the-least-squares-fit"],
)
def _standardising_same_fit(scope, rtol) -> Evidence:
    errors = {name: _ridge_errors(scope, coefficients) for name, coefficients in scope["targets"].items()}
    both, high = errors["signal in both features"], errors["signal in the high-variance feature"]
    changed = min(abs(v["z-scored"] / v["raw"] - 1) for e in errors.values() for v in e.values())
    designs, y_tr, _ = _train_test_designs(scope)
    (raw_tr, raw_te), (z_tr, z_te) = designs["raw"], designs["z-scored"]
    same = compare(
        lambda: raw_te @ _lstsq(raw_tr[:, 1:], y_tr), lambda: z_te @ _lstsq(z_tr[:, 1:], y_tr), [], rtol=rtol
    )
    return evidence(
        "measurement",
        core(
            f"with a penalty (ridge, {scope['penalties']}) standardising changes the held-out error, for both "
            "targets of the scope (by at least 0.1% of it, where round-off moves it by about 1e-12)",
            changed > 1e-3,
            smallest_relative_change=changed,
        ),
        scoped(
            "with the penalty the z-scored model has the lower held-out error, signal in both features",
            all(v["z-scored"] < v["raw"] for v in both.values()),
            largest_ratio=max(v["z-scored"] / v["raw"] for v in both.values()),
        ),
        scoped(
            "with the penalty the z-scored model has the lower held-out error, signal in the high-variance feature "
            "only (raw, the penalty shrinks its large-scale weight little)",
            all(v["z-scored"] < v["raw"] for v in high.values()),
            largest_ratio=max(v["z-scored"] / v["raw"] for v in high.values()),
        ),
        compared(
            "unpenalised least squares: held-out predictions on raw and z-scored features are the same (no "
            "more accurate)",
            same,
            role="scope",
        ),
        scoped("so unpenalised least squares is made more accurate", not same.ok),
        details={"ridge_held_out_mse": {t: {str(p): v for p, v in e.items()} for t, e in errors.items()}},
    )


def _train_test_designs(scope, coefficients=(0.7, -4.0)) -> tuple[dict, jax.Array, jax.Array]:
    """The design matrices [1, x] of the training and the held-out points, raw and z-scored with the training
    statistics, and the targets 1 + x @ coefficients (+ noise) of both."""
    x_all, y_all = _features(scope["n_train"] + scope["n_test"], seed=3, coefficients=coefficients)
    train, test = slice(0, scope["n_train"]), slice(scope["n_train"], None)
    mean, std = x_all[train].mean(0), x_all[train].std(0)

    def design(x):
        return jnp.concatenate([jnp.ones((x.shape[0], 1)), jnp.asarray(x)], axis=1)

    designs = {"raw": (design(x_all[train]), design(x_all[test])),
               "z-scored": (design((x_all[train] - mean) / std), design((x_all[test] - mean) / std))}  # fmt: skip
    return designs, jnp.asarray(y_all[train]), jnp.asarray(y_all[test])


def _ridge_errors(scope, coefficients) -> dict[float, dict[str, float]]:
    """Held-out MSE of ridge (intercept not penalised) on raw and on z-scored features (training statistics), per
    penalty, for the target 1 + x @ coefficients."""
    designs, y_tr, y_te = _train_test_designs(scope, coefficients)

    def error(d_tr, d_te, penalty):
        gram = d_tr.T @ d_tr + penalty * jnp.diag(jnp.asarray([0.0, 1.0, 1.0]))
        return float(jnp.mean((d_te @ jnp.linalg.solve(gram, d_tr.T @ y_tr) - y_te) ** 2))

    return {p: {name: error(*pair, p) for name, pair in designs.items()} for p in scope["penalties"]}


ZSCORE_SCOPE = {
    "distributions": ["exponential", "uniform", "normal", "lognormal"],
    "n": [2, 5, 10_000],
    "ddof": [0, 1],
    "offset": 100.0,
}


def _draws(rng, kind: str, n: int) -> np.ndarray:
    return {
        "exponential": lambda: rng.exponential(3.0, n),
        "uniform": lambda: rng.uniform(-1, 5, n),
        "normal": lambda: rng.normal(2.0, 3.0, n),
        "lognormal": lambda: rng.lognormal(0.0, 1.0, n),
    }[kind]()


@claim(
    "data/z-score-gives-mean-zero-and-standard-deviation-one",
    sources=["S002-02"],
    says="z-score standardisation x' = (x - mu) / sigma, mu the mean and sigma the standard deviation of all "
    "samples, gives data with mean 0 and standard deviation 1 (均值为0，标准差为1).",
    expected="holds",
    scope=ZSCORE_SCOPE,
    atol=1e-12,
    rtol=1e-9,
    tolerance="float64 rounding of the mean and std of up to 10^4 values offset by 100: well below 1e-12; the "
    "skewness of 1000 values offset by 100 loses digits to the offset (relative 1e-9)",
)
def _zscore_moments(scope, rtol, atol) -> Evidence:
    import scipy.stats  # here: a top-level import costs every process that loads the chapter ~1 s
    steps = zscore_moments()
    mean_target, square_target = value(steps[0]), value(steps[1])
    rng = np.random.default_rng(1)
    mean_err, std_err = 0.0, 0.0
    for kind, n, ddof in itertools.product(scope["distributions"], scope["n"], scope["ddof"]):
        z = np.asarray(zscore(np.asarray(_draws(rng, kind, n) + scope["offset"]), ddof=ddof))
        mean_err = max(mean_err, abs(float(z.mean()) - mean_target))
        # Measured with the convention it was made with (ddof), the standard deviation is 1.
        std_err = max(std_err, abs(float(z.std(ddof=ddof)) - np.sqrt(square_target)))
    configurations = len(scope["distributions"]) * len(scope["n"]) * len(scope["ddof"])
    # ... and nothing else: the displayed invariant m3/m2^(3/2), at a = 1/sigma, predicts the z-scores' skewness,
    # and at a = 3 that of 3 x - 2 (at a = 1/sigma alone a^2 m2 = 1, where any power of it would pass).
    invariant = skewness_is_affine_invariant()
    a, m2, m3 = sorted(invariant.rhs.free_symbols | {sp.Symbol("a", positive=True)}, key=str)
    predicted, measured = [], []
    for kind in scope["distributions"]:
        x = _draws(rng, kind, 1000) + scope["offset"]
        c = x - x.mean()
        sign = np.sign(np.mean(c**3))
        for scale, transformed in ((1 / x.std(), np.asarray(zscore(np.asarray(x)))), (3.0, 3.0 * x - 2.0)):
            predicted.append(value(invariant, {a: scale, m2: np.mean(c**2), m3: abs(np.mean(c**3))}) * sign)
            measured.append(float(scipy.stats.skew(transformed)))
    shape = compare(lambda: np.asarray(predicted), lambda: np.asarray(measured), [], rtol=rtol)
    return evidence(
        "measurement",
        compared(
            "the rest of the shape is kept: the displayed skew(a x + b) = m3/m2^(3/2) predicts the skewness of "
            "the z-scores and of 3 x - 2 (scipy.stats.skew)",
            shape,
        ),
        core(
            "SymPy: for any 4 values the z-scores have mean 0 and mean square 1",
            mean_target == 0 and square_target == 1,
        ),
        core(
            f"numerically, in {configurations} configurations (distributions {scope['distributions']}, n in "
            f"{scope['n']}, ddof {scope['ddof']} measured in its own convention), |mean| and |std - 1| <= atol",
            max(mean_err, std_err) <= atol,
            max_abs_err=max(mean_err, std_err),
            dtype="float64",
        ),
    )


@claim(
    "data/z-score-makes-data-standard-normal",
    sources=["S002-02"],
    says="After z-score processing the data follow the standard normal distribution, i.e. mean 0 and standard "
    "deviation 1 (经过处理后符合标准正态分布，即均值为0，标准差为1).",
    expected="refuted",
    correction="z-scoring is an affine map: it fixes the mean and the standard deviation but keeps the shape. "
    "Skewness and kurtosis are unchanged, so exponential data stay exponential; only data that were normal "
    "come out standard normal.",
    scope={"distributions": ["exponential", "uniform", "lognormal", "normal"], "n": 100_000, "p_value": 1e-3},
    aliases=["data/z-score-does-not-make-data-normal"],
)
def _zscore_not_normal(scope, rtol) -> Evidence:
    import scipy.stats  # here: a top-level import costs every process that loads the chapter ~1 s
    invariant = skewness_is_affine_invariant()
    a, m2, m3 = sorted(invariant.rhs.free_symbols | {sp.Symbol("a", positive=True)}, key=str)
    rng = np.random.default_rng(2)
    predicted, measured, tests = [], [], {}
    for kind in scope["distributions"]:
        x = _draws(rng, kind, scope["n"])
        z = np.asarray(zscore(np.asarray(x)))
        c = x - x.mean()
        predicted.append(
            value(invariant, {a: 1 / x.std(), m2: np.mean(c**2), m3: abs(np.mean(c**3))}) * np.sign(np.mean(c**3))
        )
        measured.append(float(scipy.stats.skew(z)))
        tests[kind] = {
            "skew_before": float(scipy.stats.skew(x)),
            "skew_after": measured[-1],
            "kurtosis_before": float(scipy.stats.kurtosis(x)),
            "kurtosis_after": float(scipy.stats.kurtosis(z)),
            "normaltest_p": float(scipy.stats.normaltest(z).pvalue),
        }
    kept = compare(lambda: np.asarray(predicted), lambda: np.asarray(measured), [], rtol=rtol)
    non_normal = [k for k in scope["distributions"] if k != "normal"]
    return evidence(
        "measurement",
        compared(
            "the z-scored skewness is the displayed m3/m2^(3/2) of the raw data (scipy.stats.skew): the shape is kept",
            kept,
            role="scope",
        ),
        core(
            f"z-scored {'/'.join(non_normal)} data pass D'Agostino's normality test (p > {scope['p_value']})",
            all(tests[k]["normaltest_p"] > scope["p_value"] for k in non_normal),
            largest_p=max(tests[k]["normaltest_p"] for k in non_normal),
            samples=scope["n"] * len(tests),
        ),
        scoped(
            f"z-scored normal data pass it (p > {scope['p_value']})",
            tests["normal"]["normaltest_p"] > scope["p_value"],
            p=tests["normal"]["normaltest_p"],
        ),
        details=tests,
    )


@claim(
    "data/min-max-and-pixel-scaling-map-onto-their-ranges",
    sources=["S002-02", "S004-05"],
    says="Min-max normalisation x' = (x - min(x)) / (max(x) - min(x)) (S002-02); VGG and ResNet subtract the "
    "training-set mean, Xception and InceptionV3 scale linearly to [-1, 1] (S004-05: VGG和ResNet是减去训练集均值，"
    "Xception和InceptionV3是线性缩放到[-1,1]).",
    expected="holds",
    scope={
        "shapes": [(2, 1), (1000, 4)],
        "distributions": ["normal", "exponential", "one outlier"],
        "pixels": "uint8 0..255",
        "images": (16, 8, 8, 3),
    },
    atol=1e-12,
    tolerance="the maximum maps to 1 within one float64 ulp (XLA divides by multiplying with the reciprocal); "
    "the centred images' mean is 0 to 1e-12 (rounding of sums of 1024 values below 256)",
)
def _min_max(scope, atol) -> Evidence:
    rng = np.random.default_rng(3)
    ulp = float(np.finfo(np.float64).eps)
    ends, inside, order = True, True, True
    for shape, kind in itertools.product(scope["shapes"], scope["distributions"]):
        x = rng.normal(5.0, 3.0, shape) if kind == "normal" else rng.exponential(2.0, shape)
        if kind == "one outlier":
            x[0] = 1e6
        u = np.asarray(min_max(x))
        ends &= bool(np.all(u.min(0) == 0.0) and np.all(np.abs(u.max(0) - 1.0) <= ulp))
        inside &= bool(np.all((u >= 0) & (u <= 1)))
        order &= bool(np.all(np.argsort(u, 0, kind="stable") == np.argsort(x, 0, kind="stable")))
    pixels = np.arange(256, dtype=np.float64)
    inception = pixels / 127.5 - 1.0  # Keras' inception_v3.preprocess_input ("tf" mode); IEEE ops, as in jnp
    inception_ok = (
        float(inception[0]) == -1.0 and float(inception[-1]) == 1.0 and bool(np.all(np.diff(inception) > 0))
    )
    images = rng.integers(0, 256, scope["images"]).astype(np.float64)  # NHWC

    @jax.jit
    def centred_mean_of(images):
        centred = images - jnp.mean(images, axis=(0, 1, 2))
        return jnp.max(jnp.abs(jnp.mean(centred, axis=(0, 1, 2))))

    centred_mean = float(centred_mean_of(images))
    return evidence(
        "measurement",
        core(
            f"min-max maps min to 0 exactly and max to 1 within one ulp, shapes {scope['shapes']}, "
            f"{'/'.join(scope['distributions'])} data",
            ends,
        ),
        core("every value lands in [0, 1] and the order is kept", inside and order),
        core("x / 127.5 - 1 maps pixel 0 to -1 and 255 to 1, increasing", inception_ok),
        core(
            "per-channel mean subtraction leaves mean 0 (to atol)",
            centred_mean <= atol,
            max_abs_err=centred_mean,
            dtype="float64",
        ),
    )


@claim(
    "data/mixup-loss-is-the-mix-of-the-two-losses",
    sources=["S002-42"],
    says="Multi-sample interpolation, Mixup: both the images and the labels are interpolated linearly "
    "(多样本插值 Mixup：图像和标签都进行线性插值). This claim tests a gloss: with the label mixed, the "
    "cross-entropy is the same mix of the two losses (and so is its gradient).",
    expected="holds",
    scope={"classes": [2, 5], "lambda": "Beta(0.4, 0.4) draws and the edges 0 and 1", "batch": 64},
)
def _mixup(scope, rtol) -> Evidence:
    identity = mixup_loss_is_linear_in_the_target()
    probs, first, second = mixup_symbols()
    proof = prove_identity(
        identity.lhs, identity.rhs, [*probs, *first, *second, lam], sampler=lambda rng, n: rng.uniform(0.05, 1.0, n)
    )
    rng = np.random.default_rng(4)
    values_got, values_want, grads_got, grads_want = [], [], [], []
    for k in scope["classes"]:
        batch = scope["batch"]
        logits = rng.normal(0.0, 2.0, (batch, k))
        first_labels, second_labels = rng.integers(0, k, batch), rng.integers(0, k, batch)
        share = rng.beta(0.4, 0.4, batch)
        share[:2] = (0.0, 1.0)

        @jax.jit
        def both_sides(logits, first_labels, second_labels, share, k=k):
            """Both losses and their gradients in the logits, in one program."""
            y1 = jax.nn.one_hot(first_labels, k, dtype=jnp.float64)
            y2 = jax.nn.one_hot(second_labels, k, dtype=jnp.float64)
            weight = share[:, None]

            def mixed_label_loss(z):
                return optax.softmax_cross_entropy(z, weight * y1 + (1 - weight) * y2)

            def mixed_losses(z):
                w = weight[:, 0]
                return w * optax.softmax_cross_entropy(z, y1) + (1 - w) * optax.softmax_cross_entropy(z, y2)

            return (mixed_label_loss(logits), mixed_losses(logits),
                    jnp.ravel(jax.grad(lambda z: jnp.sum(mixed_label_loss(z)))(logits)),
                    jnp.ravel(jax.grad(lambda z: jnp.sum(mixed_losses(z)))(logits)))

        got, want, grad_got, grad_want = (np.asarray(v) for v in both_sides(logits, first_labels, second_labels, share))
        values_got.append(got)
        values_want.append(want)
        grads_got.append(grad_got)
        grads_want.append(grad_want)
    values = compare(lambda: np.concatenate(values_got), lambda: np.concatenate(values_want), [], rtol=rtol)
    grads = compare(lambda: np.concatenate(grads_got), lambda: np.concatenate(grads_want), [], rtol=rtol)
    return evidence(
        "autodiff",
        proved("SymPy: CE(p, lambda a + (1 - lambda) b) = lambda CE(p, a) + (1 - lambda) CE(p, b)", proof),
        compared(f"optax: the loss on the mixed label equals the mix of the losses, K in {scope['classes']}", values),
        compared("and so do their gradients with respect to the logits (jax.grad)", grads),
    )


@claim(
    "data/class-weighting-matches-oversampling-in-expectation",
    sources=["S001-14", "S002-33", "S004-11"],
    says="Imbalanced data: give the under-represented class a higher weight in the loss; or oversample it, "
    "sampling its examples repeatedly (S004-11: 给数据不足的类别在损失函数中赋予更高的权重; 过采样，对数据不足的类进行"
    "重复采样). This claim tests a gloss: the two agree in expectation.",
    expected="holds",
    scope={
        "configurations": [
            {"counts": (150, 40, 10), "weights": (1, 4, 15)},
            {"counts": (100, 100, 2), "weights": (1, 1, 50)},
        ],
        "features": 4,
        "draws": 100_000,
        "z": MC_Z,
    },
    tolerance=f"Monte-Carlo: each component of the mean oversampled gradient within {MC_Z} standard errors of "
    "the weighted-loss gradient",
)
def _weighting_vs_oversampling(scope, rtol) -> Evidence:
    weighted, expected = oversampling_expected_gradient()
    symbolic = prove_identity(
        weighted, expected, sorted(weighted.free_symbols, key=str), sampler=lambda r, n: r.uniform(0.5, 3.0, n)
    )
    shown = class_weighting_equals_oversampling()
    symbols = sorted(shown.rhs.free_symbols, key=str)  # g1..g3, n1..n3, w1..w3
    formula = to_jax(shown, symbols)
    rng = np.random.default_rng(5)
    worst, unweighted_far, by_formula = 0.0, True, []
    for config in scope["configurations"]:
        counts, weights, k = config["counts"], config["weights"], len(config["counts"])
        labels = np.repeat(np.arange(k), counts)
        x = jnp.asarray(rng.normal(size=(labels.size, scope["features"])) + labels[:, None] * 0.5)
        model = nnx.Linear(scope["features"], k, rngs=nnx.Rngs(params=0), param_dtype=jnp.float64)
        graphdef, params = nnx.split(model)

        def example_loss(p, xi, yi, graphdef=graphdef):
            return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(xi), yi)

        def flat_grad(xi, yi, params=params, example_loss=example_loss):
            return jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(jax.grad(example_loss)(params, xi, yi))])

        per_example = np.asarray(jax.jit(jax.vmap(flat_grad))(x, jnp.asarray(labels)))
        w = jnp.asarray(np.asarray(weights, dtype=np.float64)[labels])
        weighted_loss_grad = np.asarray(
            jnp.concatenate(
                [
                    leaf.ravel()
                    for leaf in jax.tree.leaves(
                        jax.jit(
                            jax.grad(
                                lambda p, w=w, x=x, labels=labels, example_loss=example_loss: (
                                    jnp.sum(w * jax.vmap(example_loss, (None, 0, 0))(p, x, jnp.asarray(labels)))
                                    / jnp.sum(w)
                                )
                            )
                        )(params)
                    )
                ]
            )
        )
        class_means = [per_example[labels == c].mean(0) for c in range(k)]
        subs = {
            **{f"g{c + 1}": jnp.asarray(class_means[c]) for c in range(k)},
            **{f"n{c + 1}": float(counts[c]) for c in range(k)},
            **{f"w{c + 1}": float(weights[c]) for c in range(k)},
        }
        by_formula.append((np.asarray(formula(*(subs[s.name] for s in symbols))), weighted_loss_grad))
        copies = np.repeat(np.arange(labels.size), np.asarray(weights)[labels])  # class c copied w_c times
        sampled = per_example[rng.choice(copies, scope["draws"])]
        mc_mean, mc_se = sampled.mean(axis=0), sampled.std(axis=0, ddof=1) / np.sqrt(scope["draws"])
        worst = max(worst, float(np.max(np.abs(mc_mean - weighted_loss_grad) / mc_se)))
        unweighted_far &= float(np.max(np.abs(mc_mean - per_example.mean(axis=0)) / mc_se)) > 10 * scope["z"]
    exact = compare(
        lambda: np.concatenate([np.asarray(a) for a, _ in by_formula]),
        lambda: np.concatenate([np.asarray(b) for _, b in by_formula]),
        [],
        rtol=rtol,
    )
    return evidence(
        "measurement",
        proved("SymPy: the weighted-loss gradient equals the expected gradient of one oversampled example", symbolic),
        compared(
            "the displayed E_oversample[g], from the per-class mean gradients, equals jax.grad of the weighted "
            "loss of an nnx.Linear softmax classifier",
            exact,
        ),
        core(
            f"{scope['draws']} oversampled draws: every gradient component within {scope['z']} standard errors of "
            f"it, in {len(scope['configurations'])} class configurations",
            worst <= scope["z"],
            worst_z=worst,
            samples=scope["draws"] * len(scope["configurations"]),
        ),
        core(
            f"the unweighted gradient is more than {10 * scope['z']:g} standard errors away (the check can tell)",
            unweighted_far,
        ),
    )
