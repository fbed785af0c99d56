"""Claims found while annotating note 002 (pooling chapter): what downsampling does to the computation of the
layers after it, what a stride-2 convolution costs in place of pooling, and max pooling as a selection (a
non-linear map) where average pooling is linear."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from derivations.claims import Evidence, claim, compared, core, evidence, premise
from derivations.compare import compare
from derivations.conv_arithmetic import conv_macs
from derivations.harness import module_params, xla_flops
from models.conv import conv2d


def _random(shape, seed):
    # device_put, not jnp.asarray: the same float64 array without a staging program per shape.
    return jax.device_put(np.random.default_rng(seed).normal(size=shape))


def _shape(*shape: int) -> jax.ShapeDtypeStruct:
    """A float64 argument for ``xla_flops``: lowering needs the shape only."""
    return jax.ShapeDtypeStruct(shape, jnp.float64)


def next_conv_flops(size: int, channels: int) -> float:
    """XLA's flops of a 3x3 'same' convolution (channels -> channels) on a size x size map."""
    return xla_flops(lambda x, k: conv2d(x, k, padding=1), _shape(1, size, size, channels),
                     _shape(3, 3, channels, channels))


@claim(
    "pooling/downsampling-cuts-the-next-layers-computation",
    sources=["S002-10"],
    says="Downsampling has two uses; the first is to reduce the computation (下采样层有两个作用，一是减少计算量). "
    "Tested: a stride-2 downsampling divides the computation of the convolution after it.",
    expected="holds",
    scope={"sizes": [8, 16], "channels": [4], "stride": 2,
           "next_layer": "3x3 convolution, 'same' padding, channels -> channels"},
)
def _downsampling_cuts(scope) -> Evidence:
    s = scope["stride"]
    measured, formula = {}, {}
    for n in scope["sizes"]:
        for c in scope["channels"]:
            measured[f"{n}x{n}x{c}"] = next_conv_flops(n, c) / next_conv_flops(n // s, c)
            formula[f"{n}x{n}x{c}"] = conv_macs(3, 3, c, c, n, n) / conv_macs(3, 3, c, c, n // s, n // s)
    return evidence(
        "measurement",
        core(f"by the MAC formula the next convolution costs exactly stride^2 = {s * s} times less",
             all(v == s * s for v in formula.values())),
        core(f"by XLA's count (which skips the taps on zero padding) it costs at least {s * s} times less",
             all(v >= s * s for v in measured.values()), smallest_ratio=min(measured.values())),
        details={"xla_ratio": measured},
    )


@claim(
    "pooling/stride-2-conv-downsampling-costs-more-than-pooling",
    sources=["S002-10"],
    says="b. a conv layer with stride 2: ... replacing pooling with a learnable stride-2 convolution can give better "
    "results, but of course it also adds some computation (当然同时也增加了一定的计算量).",
    expected="holds",
    scope={"channels": [1, 8], "size": 8, "window": 2, "stride": 2},
)
def _conv_costs_more(scope) -> Evidence:
    n, k, s = scope["size"], scope["window"], scope["stride"]
    rows = {}
    for c in scope["channels"]:
        x = _shape(1, n, n, c)
        conv = xla_flops(lambda x, w: conv2d(x, w, stride=s), x, _shape(k, k, c, c))
        mx = xla_flops(lambda x: nnx.max_pool(x, (k, k), (s, s)), x)
        avg = xla_flops(lambda x: nnx.avg_pool(x, (k, k), (s, s)), x)
        params = module_params(lambda c=c: nnx.Conv(c, c, (k, k), strides=(s, s), rngs=nnx.Rngs(0)))
        rows[c] = {"conv": conv, "max": mx, "avg": avg, "params": params}
    return evidence(
        "measurement",
        premise("XLA counts the stride-2 convolution as 2 flops per multiply-accumulate of the MAC formula",
                all(r["conv"] == 2 * conv_macs(k, k, c, c, n // s, n // s) for c, r in rows.items())),
        core("the stride-2 convolution costs more flops than max or average pooling of the same window, at every "
             "channel count", all(r["conv"] > max(r["max"], r["avg"]) for r in rows.values()),
             smallest_ratio=min(r["conv"] / max(r["max"], r["avg"]) for r in rows.values())),
        core("and it has parameters (k^2 C^2 + C) where pooling has none", all(r["params"] > 0 for r in rows.values()),
             params=str({c: r["params"] for c, r in rows.items()})),
        details={"flops": {str(c): r for c, r in rows.items()}},
    )


@claim(
    "pooling/max-pooling-selects-and-is-non-linear",
    sources=["S002-36"],
    says="Although max pooling and average pooling both downsample, max pooling is more like feature selection, "
    "picking out the features that discriminate best, and it provides non-linearity (max-pooling感觉更像是做了特征选择"
    "，选出了分类辨识度更好的特征，提供了非线性). Tested: every max-pooling output is one of its window's inputs, and "
    "max pooling is not linear while average pooling is.",
    expected="holds",
    scope={"shape": [4, 8, 8, 3], "window": 2, "pairs": 8, "coefficients": [2.0, -0.5]},
)
def _max_selects(scope, rtol) -> Evidence:
    shape, k = tuple(scope["shape"]), scope["window"]
    x = _random(shape, 0)
    pooled = np.asarray(jax.jit(lambda v: nnx.max_pool(v, (k, k), (k, k)))(x))
    windows = np.asarray(x).reshape(shape[0], shape[1] // k, k, shape[2] // k, k, shape[3])
    selected = np.any(windows == pooled[:, :, None, :, None, :], axis=(2, 4)).all()
    a, b = scope["coefficients"]
    batch = (scope["pairs"] * shape[0], *shape[1:])  # the random pairs stacked along the batch
    u, v = _random(batch, 10), _random(batch, 11)
    both = jax.jit(lambda u, v: [(pool(a * u + b * v, (k, k), (k, k)),
                                  a * pool(u, (k, k), (k, k)) + b * pool(v, (k, k), (k, k)))
                                 for pool in (nnx.max_pool, nnx.avg_pool)])
    (lhs_max, rhs_max), (lhs_avg, rhs_avg) = [[np.asarray(t).ravel() for t in pair] for pair in both(u, v)]
    linear_max = compare(lambda: lhs_max, lambda: rhs_max, [], rtol=rtol)
    return evidence(
        "measurement",
        core("every max-pooling output equals one of the inputs of its window (a selection, not a mix)",
             bool(selected)),
        core("max pooling is not linear: pool(a u + b v) differs from a pool(u) + b pool(v) on random inputs",
             not linear_max.ok, max_abs_err_of_linearity=float(linear_max.max_abs_err)),
        compared("average pooling, the control, is linear: pool(a u + b v) = a pool(u) + b pool(v)",
                 compare(lambda: lhs_avg, lambda: rhs_avg, [], rtol=rtol),
                 role="premise"),
    )


@claim(
    "pooling/average-pooling-reduces-dimensions-more-than-max-pooling",
    sources=["S002-36"],
    says="Average pooling stresses downsampling the whole feature information, and contributes a little more to "
    "reducing the parameter dimension (average-pooling更强调对整体特征信息进行一层下采样，"
    "在减少参数维度的贡献上更大一点).",
    expected="refuted",
    correction="With the same window and stride, average and max pooling give outputs of exactly the same shape "
    "and neither has parameters, so neither reduces the dimension more. What differs is what each output "
    "depends on: the average on every input of its window, the maximum on one.",
    scope={"inputs": [[1, 8, 8, 3], [2, 9, 7, 4]], "windows": [[2, 2], [3, 2], [3, 3]]},
)
def _avg_reduces_more(scope) -> Evidence:
    shapes = []
    for shape in scope["inputs"]:
        x = jax.ShapeDtypeStruct(tuple(shape), jnp.float64)
        for k, s in scope["windows"]:
            avg = jax.eval_shape(lambda v, k=k, s=s: nnx.avg_pool(v, (k, k), (s, s)), x).shape
            mx = jax.eval_shape(lambda v, k=k, s=s: nnx.max_pool(v, (k, k), (s, s)), x).shape
            shapes.append((tuple(shape), k, s, avg, mx))
    smaller = [row for row in shapes if np.prod(row[3]) < np.prod(row[4])]
    return evidence(
        "measurement",
        premise("both poolings shrink the map (the comparison is between two reductions)",
                all(np.prod(a) < np.prod(x) and np.prod(m) < np.prod(x) for x, _, _, a, m in shapes)),
        core("average pooling leaves fewer values than max pooling for some input and window",
             bool(smaller), same_shape_everywhere=all(a == m for _, _, _, a, m in shapes)),
    )


@claim(
    "pooling/max-passes-a-sparse-feature-average-dilutes-it",
    sources=["S002-36"],
    says="Deep in the network the features are already sparse; picking the largest value of a region passes the "
    "sparse feature on better than the region's mean (在网络比较深的地方，特征已经稀疏了，"
    "从一块区域里选出最大的，比起这片区域的平均值来，更能把稀疏的特征传递下去). Tested: on non-negative "
    "(post-ReLU) maps with one active unit per window, max "
    "pooling passes the active value unchanged and average pooling divides it by the window's size; on dense maps "
    "the two are close.",
    expected="holds",
    scope={"windows": [2, 3, 4], "channels": 3, "windows_per_side": 4, "dense_windows_per_side": 32,
           "standard_errors": 4.5},
    tolerance="dense maps (Monte-Carlo): the pooled means within 4.5 standard errors of E[max] = 1 + m/(m + 1) and "
    "E[mean] = 3/2 for m = k^2 values uniform on [1, 2]",
)
def _sparse_max(scope, rtol) -> Evidence:
    rng = np.random.default_rng(4)
    kept_max, kept_avg, expected_avg, dense_gap, ratios = [], [], [], [], {}
    both = jax.jit(lambda x, k: (nnx.max_pool(x, (k, k), (k, k)), nnx.avg_pool(x, (k, k), (k, k))), static_argnums=1)
    for k in scope["windows"]:
        side, c = k * scope["windows_per_side"], scope["channels"]
        values = rng.uniform(1, 2, size=(1, side // k, side // k, c))
        sparse = np.zeros((1, side, side, c))
        rows = rng.integers(0, k, size=values.shape)
        cols = rng.integers(0, k, size=values.shape)
        i, j, ch = np.meshgrid(np.arange(side // k), np.arange(side // k), np.arange(c), indexing="ij")
        sparse[0, i * k + rows[0], j * k + cols[0], ch] = values[0]
        sparse_max, sparse_avg = (np.asarray(v) for v in both(sparse, k))
        kept_max.append(sparse_max.ravel() / values.ravel())
        kept_avg.append(sparse_avg.ravel() / values.ravel())
        expected_avg.append(np.full(values.size, 1.0 / (k * k)))
        dense = rng.uniform(1, 2, size=(1, k * scope["dense_windows_per_side"], k * scope["dense_windows_per_side"], c))
        dense_max, dense_avg = (np.asarray(v).ravel() for v in both(dense, k))
        m = k * k
        for pooled, expected in ((dense_max, 1 + m / (m + 1)), (dense_avg, 1.5)):
            dense_gap.append(abs(pooled.mean() - expected) / (pooled.std(ddof=1) / np.sqrt(pooled.size)))
        ratios[k] = float(dense_avg.mean() / dense_max.mean())
    ones = np.ones(sum(a.size for a in kept_max))
    return evidence(
        "measurement",
        compared("max pooling passes each window's single active value on unchanged",
                 compare(lambda: np.concatenate(kept_max), lambda: ones, [], rtol=rtol)),
        compared("average pooling passes only 1/k^2 of it",
                 compare(lambda: np.concatenate(kept_avg), lambda: np.concatenate(expected_avg), [], rtol=rtol)),
        core("on dense maps (values uniform on [1, 2]) max and average pooling give E[max] = 1 + m/(m + 1) and "
             "E[mean] = 3/2 of a window of m = k^2 values: the average keeps 3(m + 1)/(2(2m + 1)) > 3/4 of the max, "
             f"where on sparse maps it keeps 1/m (within {scope['standard_errors']} standard errors)",
             max(dense_gap) <= scope["standard_errors"], largest_z=max(dense_gap),
             **{f"mean_ratio_k{k}": round(v, 4) for k, v in ratios.items()}),
    )
