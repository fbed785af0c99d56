"""Claims found while annotating note 001 (pooling chapter): mean pooling as an estimate of a region's mean
from a window of limited size, whose variance falls as 1/k^2 with the k x k window."""

from __future__ import annotations

import jax
import numpy as np

from derivations.claims import Evidence, claim, core, evidence, premise, scoped
from models.pooling import avg_pool

NOISES = {
    "gaussian": lambda rng, shape: rng.normal(size=shape),
    "uniform": lambda rng, shape: rng.uniform(-np.sqrt(3), np.sqrt(3), size=shape),
    "laplace": lambda rng, shape: rng.laplace(scale=1 / np.sqrt(2), size=shape),
}  # all of mean 0 and variance 1


def pooled_variances(scope: dict, pool=avg_pool, seed: int = 0, smoothing: int = 0) -> dict:
    """For each noise and window k: the variance (over positions and draws) of mean-pooled unit-variance iid
    noise, with its standard error, against sigma^2 / k^2 (one pooled value averages k^2 samples). With
    ``smoothing`` = r > 0 the noise is first box-filtered (circular, radius r): neighbouring features correlated."""
    rng = np.random.default_rng(seed)
    rows = {}
    pool_all = jax.jit(lambda x: [pool(x, k, k) for k in scope["windows"]])  # one program for every noise
    for name in scope["noises"]:
        x = NOISES[name](rng, (scope["draws"], scope["size"], scope["size"], 1))
        if smoothing:
            x = sum(np.roll(x, (i, j), axis=(1, 2)) for i in range(-smoothing, smoothing + 1)
                    for j in range(-smoothing, smoothing + 1)) / (2 * smoothing + 1) ** 2  # fmt: skip
        raw = float(np.var(x))
        for k, out in zip(scope["windows"], pool_all(x), strict=True):
            v = np.asarray(out).ravel()
            sq = (v - v.mean()) ** 2
            rows[f"{name}, {k}x{k}"] = {"k": k, "variance": float(sq.mean()), "se": float(sq.std() / np.sqrt(sq.size)),
                                        "formula": raw / k**2, "raw": raw}
    return rows


@claim(
    "pooling/mean-pooling-variance-falls-as-one-over-the-window",
    sources=["S001-05"],
    says="Mean pooling averages the feature values in the neighbourhood, and suppresses the increase of the "
         "estimate's variance caused by the limited size of the neighbourhood (均值池化是通过对领域内特征数值求平均"
         "来实现，能够抑制由于领域大小受限造成估计值方差增大的现象). Tested: the noise variance of the pooled "
         "estimate is sigma^2 / k^2 for a k x k window of independent features, below one feature's sigma^2.",
    expected="qualified",
    correction="Averaging k^2 features divides the variance by k^2 only when they are independent. Neighbouring "
    "features of a real feature map are correlated (a convolution mixes neighbours), and then the pooled "
    "variance still falls as the window grows, but less: several times sigma^2 / k^2.",
    scope={"noises": ["gaussian", "uniform", "laplace"], "windows": [1, 2, 3, 4], "draws": 400, "size": 12,
           "z": 4.5, "correlated": {"noises": ["gaussian"], "box_filter_radius": 1}},
    # z: the Monte-Carlo variance must lie within z standard errors of sigma^2 / k^2 (MC_Z of the statistics chapter)
)
def _mean_pool_variance(scope, rtol) -> Evidence:
    rows = pooled_variances(scope)
    zs = {key: abs(r["variance"] - r["formula"]) / r["se"] for key, r in rows.items()}
    correlated = scope["correlated"]
    near = pooled_variances({**scope, "noises": correlated["noises"]}, seed=1,
                            smoothing=correlated["box_filter_radius"])
    near_z = {key: abs(r["variance"] - r["formula"]) / r["se"] for key, r in near.items() if r["k"] > 1}
    falling = all(rows[f"{n}, {a}x{a}"]["variance"] > rows[f"{n}, {b}x{b}"]["variance"]
                  for n in scope["noises"] for a, b in zip(scope["windows"], scope["windows"][1:], strict=False))
    return evidence(
        "measurement",
        premise("the 1x1 'pool' reproduces the input's variance exactly (the measurement is of the pooled values)",
                all(abs(rows[f"{n}, 1x1"]["variance"] - rows[f"{n}, 1x1"]["raw"]) <= rtol * rows[f"{n}, 1x1"]["raw"]
                    for n in scope["noises"])
                if 1 in scope["windows"] else True),
        core("the variance of a k x k mean-pooled value is sigma^2 / k^2 for every noise and window (within z "
             "standard errors)", max(zs.values()) <= scope["z"], largest_z=max(zs.values()), cases=len(zs)),
        core("it falls strictly as the window grows, below one feature's variance", falling),
        core("for correlated features (the noise box-filtered first) it falls strictly with the window too",
             all(near[f"gaussian, {a}x{a}"]["variance"] > near[f"gaussian, {b}x{b}"]["variance"]
                 for a, b in zip(scope["windows"], scope["windows"][1:], strict=False))),
        scoped("and it is sigma^2 / k^2 for correlated features too (within z standard errors)",
               max(near_z.values()) <= scope["z"],
               **{f"over_formula_{k}": round(v["variance"] / v["formula"], 2) for k, v in near.items() if v["k"] > 1}),
        details={"variances": rows, "correlated_variances": near},
    )
