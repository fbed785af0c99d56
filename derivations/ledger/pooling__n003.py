"""Claims found while annotating note 003 (pooling chapter): max pooling keeps a sharp peak at full height while
average pooling dilutes it, keeps the background and smooths noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from derivations.claims import Evidence, claim, core, evidence, premise


def max_pool(x, k):
    return nnx.max_pool(x, (k, k), strides=(k, k))


def avg_pool(x, k):
    return nnx.avg_pool(x, (k, k), strides=(k, k))


def peak_findings(scope: dict, pools=(max_pool, avg_pool)) -> dict:
    mx, av = pools
    rng = np.random.default_rng(scope["seed"])
    out = {"kept": True, "diluted": True, "background_ignored": True, "background_kept": True}
    h, b = scope["peak"], scope["background"]
    # one program per window for both poolings of both maps (eager ops would compile one per operation)
    both = jax.jit(lambda x, x2, k: [out for v in (x, x2) for out in (mx(v, k)[0, 0, 0, 0], av(v, k)[0, 0, 0, 0])],
                   static_argnums=2)
    for k in scope["windows"]:
        bg = rng.uniform(-b, b, (1, k, k, 1))
        x = bg.copy()
        x[0, rng.integers(k), rng.integers(k), 0] = h
        x2 = np.where(x == h, h, rng.uniform(-b, b, x.shape))  # same peak, another background
        m1, a1, m2, a2 = (float(v) for v in both(x, x2, k))
        out["kept"] &= m1 == h
        out["diluted"] &= abs(a1 - h / k**2) <= b  # the peak enters the average with weight 1/k^2
        out["background_ignored"] &= m1 == m2
        out["background_kept"] &= a1 != a2
    noise = rng.normal(size=(1, scope["noise_map"], scope["noise_map"], 1))
    variances = jax.jit(lambda v: [(jnp.var(av(v, k)), jnp.var(mx(v, k))) for k in scope["windows"]])(noise)
    out["variances"] = {}
    for k, (var_avg, var_max) in zip(scope["windows"], variances, strict=True):
        va, vm = float(var_avg), float(var_max)
        n = (scope["noise_map"] // k) ** 2
        se = (1 / k**2) * np.sqrt(2 / (n - 1))  # standard error of a sample variance of n Gaussians
        out["variances"][k] = (va, vm, abs(va - 1 / k**2) / se, (vm - va) / se)
    return out


@claim(
    "pooling/max-keeps-a-sharp-peak-average-smooths-it",
    sources=["S003-04"],
    says="Max pooling brings out some features and suits capturing edges and sharp activations "
    "(能突出图像中的一些特征，适合捕捉边缘和尖锐的激活); average pooling keeps more of the image's background "
    "and smooths the feature values (会保留更多的图像背景特征，会平滑特征值).",
    expected="holds",
    scope={"windows": [2, 3, 4], "peak": 5.0, "background": 0.1, "noise_map": 96, "seed": 0, "z_max": 4.5,
           "noise": "i.i.d. N(0, 1); 'smooths' read as: divides the variance of white noise by k^2"},
    tolerance="Monte-Carlo: the sample variance of the average-pooled noise within z_max standard errors of 1/k^2",
)
def _peak(scope) -> Evidence:
    r = peak_findings(scope)
    z = scope["z_max"]
    v = r["variances"]
    return evidence(
        "measurement",
        core("a single sharp peak over a faint background comes out of max pooling at full height, every window",
             r["kept"]),
        core("average pooling dilutes it to about peak / k^2", r["diluted"]),
        core("max pooling ignores the background under the peak (another background: the same output)",
             r["background_ignored"]),
        core("average pooling keeps it (another background: another output)", r["background_kept"]),
        core("average pooling divides the variance of white noise by k^2 (within z_max standard errors)",
             all(t[2] <= z for t in v.values()), **{f"z_avg_k{k}": t[2] for k, t in v.items()}),
        premise("max pooling, the comparison, smooths less: its output variance is above the average's by more "
                "than z_max standard errors", all(t[3] > z for t in v.values()),
                **{f"var_max_k{k}": t[1] for k, t in v.items()}),
    )
