"""The classic CNN blocks as Flax NNX modules (NHWC), and the fast depthwise convolution.

Pure numeric cores (``depthwise_conv2d``, ``depthwise_conv2d_grouped``, ``local_response_norm``,
``se_gate``, ``dense_kernel_as_conv``) under thin modules with keyword-only configuration. Blocks that
normalise use ``models.normalization.BatchNorm`` (the closed-form-backward drop-in for ``nnx.BatchNorm``);
a convolution followed by BatchNorm has no bias (BatchNorm's shift replaces it), as in ResNet.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from models.normalization import BatchNorm

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


# --- the fast depthwise convolution ----------------------------------------------------------------------


def _check_depthwise(x: jax.Array, kernel: jax.Array) -> None:
    if x.ndim != 4:
        raise ValueError(f"depthwise_conv2d: x must be NHWC (4 axes), got shape {x.shape}")
    if kernel.ndim != 3 or kernel.shape[2] != x.shape[3]:
        raise ValueError(f"depthwise_conv2d: kernel must be (kh, kw, C={x.shape[3]}), got shape {kernel.shape}")
    if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"depthwise_conv2d: kernel sides must be odd (centred 'same' padding), got {kernel.shape[:2]}")


def _shifted_sum(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """sum over taps (a, b) of x shifted by (a - kh//2, b - kw//2) times kernel[a, b, :], zero padded: K^2
    elementwise multiply-adds that XLA fuses into one memory-bound loop over x."""
    kh, kw, _ = kernel.shape
    h, w = x.shape[1], x.shape[2]
    padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = jnp.zeros_like(x)
    for a in range(kh):
        for b in range(kw):
            out = out + padded[:, a : a + h, b : b + w, :] * kernel[a, b]
    return out


def _row_chunk(h: int) -> int:
    return max(c for c in (8, 4, 2, 1) if h % c == 0)


def _kernel_gradient(x: jax.Array, dy: jax.Array, kh: int, kw: int) -> jax.Array:
    """dkernel[a, b, c] = sum_{n,i,j} x_pad[n, i + a, j + b, c] dy[n, i, j, c].

    The K^2 reductions are done per slab of a few rows of one image (a ``lax.scan``), so each slab is read
    from cache K^2 times instead of the whole of x and dy being streamed from memory K^2 times."""
    n, h, w, c = x.shape
    rows = _row_chunk(h)
    padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))

    def slab(total, index):
        image, row = index // (h // rows), (index % (h // rows)) * rows
        xs = lax.dynamic_slice(padded, (image, row, 0, 0), (1, rows + kh - 1, w + kw - 1, c))[0]
        ds = lax.dynamic_slice(dy, (image, row, 0, 0), (1, rows, w, c))[0]
        taps = [jnp.sum(xs[a : a + rows, b : b + w] * ds, axis=(0, 1)) for a in range(kh) for b in range(kw)]
        return total + jnp.stack(taps), None

    total, _ = lax.scan(slab, jnp.zeros((kh * kw, c), x.dtype), jnp.arange(n * (h // rows)))
    return total.reshape(kh, kw, c)


@jax.custom_vjp
def _depthwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _shifted_sum(x, kernel)


def _depthwise_fwd(x, kernel):
    return _shifted_sum(x, kernel), (x, kernel)


def _depthwise_bwd(residuals, dy):
    x, kernel = residuals
    # The adjoint of a 'same' correlation is the correlation with the kernel flipped in space.
    dx = _shifted_sum(dy, kernel[::-1, ::-1])
    return dx, _kernel_gradient(x, dy, kernel.shape[0], kernel.shape[1])


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def depthwise_conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depthwise convolution, stride 1, 'same' zero padding: ``y[n,i,j,c] = sum_{a,b} x[n, i+a-kh//2,
    j+b-kw//2, c] kernel[a,b,c]`` (S000-17, S002-54), written as K^2 shifted multiply-adds with a
    hand-written backward (dx: the same sum with the flipped kernel; dkernel: a cache-blocked reduction).
    Equal to :func:`depthwise_conv2d_grouped`; on CPU it is much faster (see the performance chapter)."""
    _check_depthwise(x, kernel)
    return _depthwise(x, kernel)


def depthwise_conv2d_grouped(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same depthwise convolution as XLA's grouped convolution (``feature_group_count = C``)."""
    _check_depthwise(x, kernel)
    kh, kw, c = kernel.shape
    pads = [(kh // 2, kh // 2), (kw // 2, kw // 2)]
    return lax.conv_general_dilated(
        x, kernel.reshape(kh, kw, 1, c), (1, 1), pads, dimension_numbers=DIMENSIONS, feature_group_count=c
    )


# --- other pure cores -------------------------------------------------------------------------------------


def local_response_norm(
    x: jax.Array, *, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75
) -> jax.Array:
    """AlexNet's LRN across channels: ``x_c / (k + alpha * sum_{|c'-c| <= size//2} x_{c'}^2) ** beta``
    (Krizhevsky et al. 2012; alpha multiplies the plain sum, not the mean, as in the paper)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"local_response_norm: size must be a positive odd integer, got {size}")
    half = size // 2
    squares = jnp.pad(x * x, ((0, 0), (0, 0), (0, 0), (half, half)))
    window = sum(squares[..., i : i + x.shape[-1]] for i in range(size))
    return x / (k + alpha * window) ** beta


def se_gate(x: jax.Array, w1: jax.Array, b1: jax.Array, w2: jax.Array, b2: jax.Array) -> jax.Array:
    """Squeeze-and-excitation: ``s = sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)``, output ``x * s`` per channel."""
    squeezed = jnp.mean(x, axis=(1, 2))
    gate = jax.nn.sigmoid(jax.nn.relu(squeezed @ w1 + b1) @ w2 + b2)
    return x * gate[:, None, None, :]


def dense_kernel_as_conv(kernel: jax.Array, height: int, width: int, channels: int) -> jax.Array:
    """A dense layer's (H*W*C, K) kernel on a row-major flattened HxWxC input, as an HxW conv kernel
    (H, W, C, K): the same weights, so a VALID conv on an HxWxC input is the dense layer (S001-36)."""
    if kernel.ndim != 2 or kernel.shape[0] != height * width * channels:
        raise ValueError(
            f"dense_kernel_as_conv: kernel must be ({height}*{width}*{channels}, K), got shape {kernel.shape}"
        )
    return kernel.reshape(height, width, channels, kernel.shape[1])


# --- the blocks ---------------------------------------------------------------------------------------------


def _conv(c_in, c_out, size, *, rngs, dtype, stride=1, groups=1, bias=False, padding="SAME"):
    return nnx.Conv(
        c_in, c_out, size, strides=stride, padding=padding, feature_group_count=groups, use_bias=bias,
        rngs=rngs, param_dtype=dtype,
    )  # fmt: skip


def _bn(c, *, rngs, dtype):
    return BatchNorm(c, rngs=rngs, param_dtype=dtype)


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class VGGStack(nnx.Module):
    """``convs`` 3x3 'same' convolutions with bias and ReLU, then (``pool=True``) a 2x2/2 max pool."""

    def __init__(self, c_in: int, c_out: int, *, convs: int = 2, pool: bool = True, rngs: nnx.Rngs,
                 dtype=jnp.float32):  # fmt: skip
        _positive("convs", convs)
        self.convs = nnx.List(
            [_conv(c_in if i == 0 else c_out, c_out, (3, 3), bias=True, rngs=rngs, dtype=dtype) for i in range(convs)]
        )
        self.pool = pool

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = nnx.relu(conv(x))
        return nnx.max_pool(x, (2, 2), strides=(2, 2)) if self.pool else x


class AlexNetStem(nnx.Module):
    """AlexNet's first stage: 11x11/4 VALID conv with bias, ReLU, LRN, overlapping 3x3/2 max pool."""

    def __init__(self, c_in: int = 3, c_out: int = 96, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.conv = _conv(c_in, c_out, (11, 11), stride=4, bias=True, padding="VALID", rngs=rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = local_response_norm(nnx.relu(self.conv(x)))
        return nnx.max_pool(x, (3, 3), strides=(2, 2))


class InceptionModule(nnx.Module):
    """GoogLeNet's module: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3/1 max pool -> 1x1, concatenated on channels.
    Every conv has bias and ReLU, as in GoogLeNet."""

    def __init__(self, c_in: int, *, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int,
                 rngs: nnx.Rngs, dtype=jnp.float32):  # fmt: skip
        conv = functools.partial(_conv, bias=True, rngs=rngs, dtype=dtype)
        self.b1 = conv(c_in, c1, (1, 1))
        self.b3 = nnx.List([conv(c_in, c3_reduce, (1, 1)), conv(c3_reduce, c3, (3, 3))])
        self.b5 = nnx.List([conv(c_in, c5_reduce, (1, 1)), conv(c5_reduce, c5, (5, 5))])
        self.pool_proj = conv(c_in, pool_proj, (1, 1))

    def __call__(self, x: jax.Array) -> jax.Array:
        branch3 = nnx.relu(self.b3[1](nnx.relu(self.b3[0](x))))
        branch5 = nnx.relu(self.b5[1](nnx.relu(self.b5[0](x))))
        pooled = nnx.max_pool(x, (3, 3), strides=(1, 1), padding="SAME")
        return jnp.concatenate(
            [nnx.relu(self.b1(x)), branch3, branch5, nnx.relu(self.pool_proj(pooled))], axis=-1
        )


class _Residual(nnx.Module):
    """A residual block: ``relu(F(x) + shortcut(x))``; the shortcut is a 1x1/stride conv + BN (projection)
    when the stride or the channel count changes, else the identity."""

    def _make_shortcut(self, c_in, c_out, stride, rngs, dtype):
        if stride != 1 or c_in != c_out:
            self.project = _conv(c_in, c_out, (1, 1), stride=stride, padding="VALID", rngs=rngs, dtype=dtype)
            self.project_bn = _bn(c_out, rngs=rngs, dtype=dtype)
        else:
            self.project = self.project_bn = nnx.data(None)

    def shortcut(self, x: jax.Array) -> jax.Array:
        return x if self.project is None else self.project_bn(self.project(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.residual(x) + self.shortcut(x))


class BasicBlock(_Residual):
    """ResNet's basic block: 3x3 (stride) -> BN -> ReLU -> 3x3 -> BN, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, rngs: nnx.Rngs, dtype=jnp.float32):
        self.conv1 = _conv(c_in, c_out, (3, 3), stride=stride, rngs=rngs, dtype=dtype)
        self.bn1 = _bn(c_out, rngs=rngs, dtype=dtype)
        self.conv2 = _conv(c_out, c_out, (3, 3), rngs=rngs, dtype=dtype)
        self.bn2 = _bn(c_out, rngs=rngs, dtype=dtype)
        self._make_shortcut(c_in, c_out, stride, rngs, dtype)

    def residual(self, x: jax.Array) -> jax.Array:
        return self.bn2(self.conv2(nnx.relu(self.bn1(self.conv1(x)))))


class Bottleneck(_Residual):
    """ResNet's bottleneck: 1x1 reduce -> 3x3 (stride, ``groups``) -> 1x1 expand, each with BN, ReLU between.
    ``groups > 1`` makes it ResNeXt's block (the 3x3 is a grouped convolution of cardinality ``groups``)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, *, stride: int = 1, groups: int = 1, rngs: nnx.Rngs,
                 dtype=jnp.float32):  # fmt: skip
        if c_mid % groups:
            raise ValueError(f"groups={groups} must divide c_mid={c_mid}")
        self.reduce = _conv(c_in, c_mid, (1, 1), rngs=rngs, dtype=dtype)
        self.bn1 = _bn(c_mid, rngs=rngs, dtype=dtype)
        self.conv = _conv(c_mid, c_mid, (3, 3), stride=stride, groups=groups, rngs=rngs, dtype=dtype)
        self.bn2 = _bn(c_mid, rngs=rngs, dtype=dtype)
        self.expand = _conv(c_mid, c_out, (1, 1), rngs=rngs, dtype=dtype)
        self.bn3 = _bn(c_out, rngs=rngs, dtype=dtype)
        self._make_shortcut(c_in, c_out, stride, rngs, dtype)

    def residual(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn1(self.reduce(x)))
        x = nnx.relu(self.bn2(self.conv(x)))
        return self.bn3(self.expand(x))


class SEBlock(nnx.Module):
    """Squeeze-and-excitation (Hu et al.): global average pool, C -> C/r -> C with ReLU and sigmoid, rescale."""

    def __init__(self, channels: int, *, reduction: int = 16, rngs: nnx.Rngs, dtype=jnp.float32):
        if channels % reduction:
            raise ValueError(f"reduction={reduction} must divide channels={channels}")
        self.squeeze = nnx.Linear(channels, channels // reduction, rngs=rngs, param_dtype=dtype)
        self.excite = nnx.Linear(channels // reduction, channels, rngs=rngs, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        s, e = self.squeeze, self.excite
        return se_gate(x, s.kernel[...], s.bias[...], e.kernel[...], e.bias[...])


class DenseBlock(nnx.Module):
    """DenseNet's block: ``layers`` times BN -> ReLU -> 3x3 conv (``growth`` channels), each output
    concatenated to everything before it; the output has ``c_in + layers * growth`` channels."""

    def __init__(self, c_in: int, *, growth: int, layers: int, rngs: nnx.Rngs, dtype=jnp.float32):
        _positive("layers", layers)
        _positive("growth", growth)
        self.bns = nnx.List([_bn(c_in + i * growth, rngs=rngs, dtype=dtype) for i in range(layers)])
        self.convs = nnx.List(
            [_conv(c_in + i * growth, growth, (3, 3), rngs=rngs, dtype=dtype) for i in range(layers)]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for bn, conv in zip(self.bns, self.convs, strict=True):
            x = jnp.concatenate([x, conv(nnx.relu(bn(x)))], axis=-1)
        return x


class DepthwiseSeparable(nnx.Module):
    """MobileNet's block: depthwise KxK -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU. ``fast=True`` runs the
    depthwise step as :func:`depthwise_conv2d` (K^2 shifted multiply-adds), ``fast=False`` as XLA's grouped
    convolution; the parameters and the result are the same."""

    def __init__(self, c_in: int, c_out: int, *, kernel: int = 3, fast: bool = True, rngs: nnx.Rngs,
                 dtype=jnp.float32):  # fmt: skip
        init = jax.nn.initializers.lecun_normal(in_axis=(0, 1), out_axis=2)
        self.depthwise = nnx.Param(init(rngs.params(), (kernel, kernel, c_in), dtype))
        self.bn1 = _bn(c_in, rngs=rngs, dtype=dtype)
        self.pointwise = _conv(c_in, c_out, (1, 1), rngs=rngs, dtype=dtype)
        self.bn2 = _bn(c_out, rngs=rngs, dtype=dtype)
        self.fast = fast

    def __call__(self, x: jax.Array) -> jax.Array:
        depthwise = depthwise_conv2d if self.fast else depthwise_conv2d_grouped
        x = nnx.relu(self.bn1(depthwise(x, self.depthwise[...])))
        return nnx.relu(self.bn2(self.pointwise(x)))


class GlobalAvgPoolHead(nnx.Module):
    """Global average pooling over H and W, then a dense classifier (GoogLeNet's replacement of the FC stack)."""

    def __init__(self, channels: int, classes: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.classifier = nnx.Linear(channels, classes, rngs=rngs, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.classifier(jnp.mean(x, axis=(1, 2)))


class FCAsConv(nnx.Module):
    """A dense layer on a flattened HxWxC map, run as an HxW VALID convolution: on an HxW input it is the
    dense layer; on a larger one it slides, giving one score vector per HxW window (S001-36)."""

    def __init__(self, height: int, width: int, channels: int, classes: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.dense = nnx.Linear(height * width * channels, classes, rngs=rngs, param_dtype=dtype)
        self.window = (height, width, channels)

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = dense_kernel_as_conv(self.dense.kernel[...], *self.window)
        dtype = jnp.result_type(x, kernel)
        y = lax.conv_general_dilated(
            x.astype(dtype), kernel.astype(dtype), (1, 1), "VALID", dimension_numbers=DIMENSIONS
        )
        return y + self.dense.bias[...]
