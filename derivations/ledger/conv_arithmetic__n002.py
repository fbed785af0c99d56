"""Claims found while annotating note 002 (conv arithmetic chapter): ordinary convolution as the rate-1 case
of dilated convolution, and why a CNN's feature maps come out smaller than its input."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence, premise, scoped
from derivations.compare import compare
from derivations.conv_arithmetic import NOTES_NET, conv_output_size, flax_output_size
from derivations.harness import xla_flops
from models.conv import bilinear_upsample_2x, conv2d


def correlate_by_hand(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """The ordinary convolution of deep learning written out (no dilation anywhere):
    y[i, j] = sum_{a, b} x_padded[i s + a, j s + b] kernel[a, b], one channel in and out."""
    xp = np.pad(x, padding)
    k = kernel.shape[0]
    out = (xp.shape[0] - k) // stride + 1
    return np.array([[np.sum(xp[i * stride:i * stride + k, j * stride:j * stride + k] * kernel)
                      for j in range(out)] for i in range(out)])


def dilate_kernel(kernel: np.ndarray, rate: int) -> np.ndarray:
    """The kernel with rate - 1 zeros inserted between neighbouring taps (size rate (k - 1) + 1)."""
    k = kernel.shape[0]
    out = np.zeros((rate * (k - 1) + 1,) * 2)
    out[::rate, ::rate] = kernel
    return out


def _lax(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int, rate: int) -> np.ndarray:
    return np.asarray(_lax_conv(x, kernel, stride, padding, rate))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _lax_conv(x, kernel, stride: int, padding: int, rate: int) -> jax.Array:
    y = conv2d(x[None, :, :, None], kernel[:, :, None, None], stride=stride, padding=padding, dilation=rate)
    return y[0, :, :, 0]


@claim(
    "conv_arithmetic/ordinary-conv-is-dilated-conv-with-rate-one",
    sources=["S002-03"],
    says="One can say that ordinary convolution is a special case of dilated convolution (可以这么说,普通卷积是空洞卷积"
    "的一种特殊情况): the dilation rate = 1 case.",
    expected="holds",
    scope={"layers": [[1, 1, 0], [3, 1, 1], [3, 2, 0], [5, 2, 1]], "rates": [2, 3],
           "dilated_layer": [3, 1, 1], "size": 13},
)
def _ordinary_is_rate_one(scope, rtol) -> Evidence:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(scope["size"],) * 2)
    ours, hand, dilated, by_kernel = [], [], [], []
    for k, s, p in scope["layers"]:
        kernel = rng.normal(size=(k, k))
        ours.append(_lax(x, kernel, s, p, 1).ravel())
        hand.append(correlate_by_hand(x, kernel, s, p).ravel())
    k, s, p = scope["dilated_layer"]
    kernel = rng.normal(size=(k, k))
    for r in scope["rates"]:
        dilated.append(_lax(x, kernel, s, p, r).ravel())
        by_kernel.append(correlate_by_hand(x, dilate_kernel(kernel, r), s, p).ravel())
    samples = [rng.normal(size=(k, k)) for k, _, _ in scope["layers"]]
    same_kernel = all(np.array_equal(dilate_kernel(kk, 1), kk) for kk in samples)
    return evidence(
        "measurement",
        compared("XLA's dilated convolution at rate 1 equals the ordinary convolution written out by hand, at every "
                 "kernel size, stride and padding", compare(lambda: np.concatenate(ours), lambda: np.concatenate(hand),
                                                           [], rtol=rtol)),
        compared("at every rate, the dilated convolution is the ordinary one with the kernel spread out by rate - 1 "
                 "zeros between taps", compare(lambda: np.concatenate(dilated), lambda: np.concatenate(by_kernel), [],
                                               rtol=rtol)),
        core("spreading a kernel out at rate 1 leaves it unchanged (so rate 1 is the ordinary kernel)", same_kernel),
    )


def _cnn_grid(scope: dict) -> list[tuple[int, int, int, int]]:
    """(n, kernel, stride, padding) with the padding CNNs use: at most (kernel - 1) / 2 ('valid' to 'same')."""
    return [(n, k, s, p) for n, k, s, p in itertools.product(scope["sizes"], scope["kernels"], scope["strides"],
                                                           range(max(scope["kernels"])))
            if 2 * p <= k - 1 and k <= n + 2 * p]


@claim(
    "conv_arithmetic/cnn-feature-maps-come-out-smaller-than-the-input",
    sources=["S002-09"],
    says="In a CNN, after the input image goes through the network to extract features, the output size often "
    "becomes smaller (输入图像通过卷积神经网络(CNN)提取特征后，输出的尺寸往往会变小).",
    expected="holds",
    scope={"sizes": [7, 32], "kernels": [1, 2, 3, 5, 7], "strides": [1, 2, 3], "network": "S001-06's "
           "AlexNet-like stack (conv_arithmetic.NOTES_NET) on a 227 input"},
)
def _smaller_outputs(scope) -> Evidence:
    rows = [(cfg, flax_output_size(*cfg, 1)) for cfg in _cnn_grid(scope)]
    never_larger = all(out <= n for (n, _, _, _), out in rows)
    strictly = all(out < n for (n, k, s, p), out in rows if s >= 2 or 2 * p < k - 1)
    kept = all(out == n for (n, k, s, p), out in rows if s == 1 and 2 * p == k - 1)
    size, sizes = 227, []
    for k, s, p in NOTES_NET:
        size = flax_output_size(size, k, s, p, 1)
        sizes.append(size)
    return evidence(
        "measurement",
        premise("the output-size formula predicts XLA's shapes on the grid",
                all(conv_output_size(n, k, s, p) == out for (n, k, s, p), out in rows), configurations=len(rows)),
        core("with the padding CNNs use (at most (k - 1)/2 a side), a conv or pooling layer never enlarges the map",
             never_larger),
        core("it shrinks it whenever the stride is 2 or more or the padding is below 'same'", strictly),
        core("only a stride-1 'same' layer keeps the size", kept),
        core("so a CNN's stack ends smaller than its input: S001-06's AlexNet-like stack takes 227 to "
             f"{sizes[-1]}", sizes[-1] < 227, sizes=str(sizes)),
    )


@claim(
    "conv_arithmetic/bilinear-upsampling-costs-little-next-to-a-convolution",
    sources=["S002-09"],
    says="Interpolation, usually bilinear: although its computation is more complex than the other interpolations, "
    "next to the convolutions it is hardly worth mentioning (虽然计算上比其他插值方式复杂，"
    "但是相对于卷积计算可以说不值一提). "
    "Tested by XLA's flop count: bilinear vs nearest 2x upsampling, and bilinear vs the 3x3 convolution "
    "(C -> C, 'same') that follows on the upsampled map.",
    expected="qualified",
    correction="Bilinear interpolation itself costs more than nearest-neighbour (which is pure indexing) and, as the "
    "fixed 4x4 stride-2 kernel it is (2 taps per axis), a few per cent of the following 3x3 convolution or less at "
    "16 channels and more: negligible, as the note says. But jax.image.resize computes it as a dense (2n x n) "
    "interpolation matrix applied along each axis, so its cost per output grows with the image side n: on a 64x64 "
    "map it is no longer negligible next to the convolution, even at 64 channels.",
    scope={"sizes": [16, 64], "channels": [16, 64], "negligible_share": 0.05,
           "bilinear_as": ["models.conv.bilinear_upsample_2x (the fixed transposed conv, per channel)",
                           "jax.image.resize(method='bilinear')"]},
)
def _bilinear_cost(scope) -> Evidence:
    rows = {}
    for n in scope["sizes"]:
        # The fixed kernel acts on each channel alike: its count for one channel, times C.
        one_channel = xla_flops(bilinear_upsample_2x, jax.ShapeDtypeStruct((1, n, n, 1), jnp.float64))
        for c in scope["channels"]:
            x = jax.ShapeDtypeStruct((1, n, n, c), jnp.float64)  # lowering needs shapes only
            target = (1, 2 * n, 2 * n, c)
            resize = xla_flops(lambda v, t=target: jax.image.resize(v, t, "bilinear"), x)
            nearest = xla_flops(lambda v, t=target: jax.image.resize(v, t, "nearest"), x)
            conv = xla_flops(lambda y, k: conv2d(y, k, padding=1), jax.ShapeDtypeStruct(target, jnp.float64),
                             jax.ShapeDtypeStruct((3, 3, c, c), jnp.float64))  # fmt: skip
            rows[f"n={n}, C={c}"] = {"fixed_kernel": one_channel * c, "resize": resize, "nearest": nearest,
                                     "conv": conv, "fixed_kernel_share": one_channel * c / conv,
                                     "resize_share": resize / conv}  # fmt: skip
    share = scope["negligible_share"]
    return evidence(
        "measurement",
        core("bilinear interpolation costs more flops than nearest-neighbour at every width and size (both as "
             "jax.image.resize computes them)", all(r["resize"] > r["nearest"] for r in rows.values())),
        core(f"bilinear as its fixed 4x4 stride-2 kernel is under {share:.0%} of the 3x3 convolution after it, at "
             "every width and size",
             all(r["fixed_kernel_share"] < share for r in rows.values()),
             largest_share=max(r["fixed_kernel_share"] for r in rows.values())),
        scoped(f"jax.image.resize's bilinear is under {share:.0%} of the convolution too, at every width and size",
               all(r["resize_share"] < share for r in rows.values()),
               **{f"share_{k}": round(r["resize_share"], 4) for k, r in rows.items()}),
        details={"flops": rows},
    )
