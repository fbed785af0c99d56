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
from jax.custom_derivatives import SymbolicZero

from models.normalization import BatchNorm

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


# --- the fast depthwise convolution ----------------------------------------------------------------------

Padding = str | int | tuple[tuple[int, int], tuple[int, int]]
# Outputs (N Ho Wo C) from which the memory-saving forms pay for their compile time (a split loop, a scan):
# below, the plain K^2 padded taps and K^2 reductions, which XLA compiles in a fraction of the time.
BLOCKED_FROM = 1 << 14


def _check_depthwise(
    x: jax.Array, kernel: jax.Array, stride: int = 1, padding: Padding = "SAME"
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Validate a depthwise convolution's arguments; returns the (low, high) zero padding of H and of W."""
    if x.ndim != 4:
        raise ValueError(f"depthwise_conv2d: x must be NHWC (4 axes), got shape {x.shape}")
    if kernel.ndim != 3 or kernel.shape[2] != x.shape[3]:
        raise ValueError(f"depthwise_conv2d: kernel must be (kh, kw, C={x.shape[3]}), got shape {kernel.shape}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"depthwise_conv2d: stride must be an integer >= 1, got {stride!r}")
    if not jnp.issubdtype(jnp.result_type(x, kernel), jnp.inexact):
        raise ValueError(f"depthwise_conv2d: x and kernel must be floating, got {x.dtype} and {kernel.dtype}")
    sizes = (x.shape[1], x.shape[2])
    if padding == "SAME":
        # XLA's (and TensorFlow's) SAME: ceil(n / stride) outputs, the odd pad row/column after the input.
        pads = []
        for n, k in zip(sizes, kernel.shape[:2], strict=True):
            total = max((-(-n // stride) - 1) * stride + k - n, 0)
            pads.append((total // 2, total - total // 2))
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    elif isinstance(padding, int) and not isinstance(padding, bool):
        pads = [(padding, padding)] * 2
    else:
        pads = [tuple(p) for p in padding] if isinstance(padding, tuple | list) else []
        if len(pads) != 2 or any(len(p) != 2 for p in pads):
            raise ValueError(f"depthwise_conv2d: padding must be 'SAME', 'VALID', an int or ((lo, hi), (lo, hi)), "
                             f"got {padding!r}")  # fmt: skip
    for n, k, (lo, hi) in zip(sizes, kernel.shape[:2], pads, strict=True):
        if lo < 0 or hi < 0 or n + lo + hi < k:
            raise ValueError(f"depthwise_conv2d: padding {(lo, hi)} of a side of {n} leaves no output for a "
                             f"kernel side of {k}")  # fmt: skip
    return tuple(pads)


def _geometry(n: int, k: int, stride: int, pad: tuple[int, int]) -> tuple[int, int]:
    """(outputs, offset) along one axis: output i reads inputs stride * i + a - offset for taps a < k."""
    return (n + pad[0] + pad[1] - k) // stride + 1, pad[0]


def _window(x, offsets, sizes, stride, axes=(1, 2)):
    """Along each of ``axes``: v[i] = x[stride i + offset] for i < size, zero outside x. One pad (negative
    where it crops) and one strided slice, which XLA fuses into the loop that reads them: no padded copy
    of x is stored."""
    cfg = [(0, 0, 0)] * x.ndim
    for axis, offset, size in zip(axes, offsets, sizes, strict=True):
        cfg[axis] = (-offset, stride * (size - 1) + 1 - x.shape[axis] + offset, 0)
    window = lax.pad(x, jnp.zeros((), x.dtype), cfg)
    if stride == 1:
        return window
    return lax.slice(window, (0,) * x.ndim, window.shape, tuple(stride if a in axes else 1 for a in range(x.ndim)))


def _taps(x, kernel, stride, offsets, sizes):
    """sum over taps (a, b) of _window(x, offsets + (a, b)) * kernel[a, b]."""
    out = None
    for a in range(kernel.shape[0]):
        for b in range(kernel.shape[1]):
            term = _window(x, (offsets[0] + a, offsets[1] + b), sizes, stride) * kernel[a, b]
            out = term if out is None else out + term
    return out


def _interior(n: int, k: int, stride: int, offset: int, outputs: int) -> tuple[int, int]:
    """The outputs [first, last) whose k taps all fall inside the n inputs."""
    first = min(-(-offset // stride), outputs)
    return first, max(first, min(outputs, (n - k + offset) // stride + 1))


def _correlate(x, kernel, stride, geometry):
    """The K^2 shifted multiply-adds, split into the interior, where every tap is a plain slice of x, and the
    border strips, where taps reach the zero padding: one loop (a concatenation XLA fuses), with bounds
    checks only on the strips. Each strip reads its own slice of x, so no two share a padded operand."""
    kh, kw, _ = kernel.shape
    (ho, lo_h), (wo, lo_w) = geometry
    i0, i1 = _interior(x.shape[1], kh, stride, lo_h, ho)
    j0, j1 = _interior(x.shape[2], kw, stride, lo_w, wo)

    def region(r0, r1, c0, c1):
        top, left = stride * r0 - lo_h, stride * c0 - lo_w
        h0, h1 = max(0, top), min(x.shape[1], top + stride * (r1 - r0 - 1) + kh)
        w0, w1 = max(0, left), min(x.shape[2], left + stride * (c1 - c0 - 1) + kw)
        return _taps(x[:, h0:h1, w0:w1], kernel, stride, (top - h0, left - w0), (r1 - r0, c1 - c0))

    if i0 == i1 or j0 == j1 or x.shape[0] * ho * wo * x.shape[3] < BLOCKED_FROM:
        return region(0, ho, 0, wo)
    middle = [region(i0, i1, c0, c1) for c0, c1 in ((0, j0), (j0, j1), (j1, wo)) if c1 > c0]
    bands = [region(0, i0, 0, wo)] if i0 else []
    bands.append(jnp.concatenate(middle, axis=2) if len(middle) > 1 else middle[0])
    if i1 < ho:
        bands.append(region(i1, ho, 0, wo))
    return jnp.concatenate(bands, axis=1) if len(bands) > 1 else bands[0]


def _depthwise_geometry(x, kernel, stride, pads):
    return tuple(_geometry(n, k, stride, p) for n, k, p in zip(x.shape[1:3], kernel.shape[:2], pads, strict=True))


def _compute_dtype(x, kernel):
    """(result, compute): jnp.result_type of the two (lax.conv itself refuses mixed dtypes), and at least
    float32 for the multiply-adds, so a bfloat16 convolution is rounded once, at the end."""
    dtype = jnp.result_type(x, kernel)
    return dtype, jnp.promote_types(dtype, jnp.float32)


def _shifted_sum(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: Padding = "SAME") -> jax.Array:
    """The depthwise convolution as K^2 shifted multiply-adds (plain JAX: what the fast kernel's forward runs,
    and what autodiff differentiates when no rule is given)."""
    pads = _check_depthwise(x, kernel, stride, padding)
    dtype, compute = _compute_dtype(x, kernel)
    geometry = _depthwise_geometry(x, kernel, stride, pads)
    return _correlate(x.astype(compute), kernel.astype(compute), stride, geometry).astype(dtype)


def _row_chunk(outputs: int, row_bytes: int) -> int:
    """Output rows per step of the kernel-gradient scan: about 64 KiB of output, a divisor of the rows."""
    rows = max(1, min(outputs, (1 << 16) // max(row_bytes, 1)))
    while outputs % rows:
        rows -= 1
    return rows


def _depthwise_rows(x, image, start, count, stride):
    """x[image, start + stride r] for r < count, zero outside the image: shape (count, W, C)."""
    h = x.shape[1]
    take = min(stride * (count - 1) + 1, h)
    first = jnp.clip(start, 0, h - take)
    block = lax.dynamic_slice(x, (image, first, 0, 0), (1, take, x.shape[2], x.shape[3]))[0]
    if count == 1:
        return jnp.where((start >= 0) & (start < h), block, 0)
    source = start + stride * jnp.arange(count)
    inside = (source >= 0) & (source < h)
    return jnp.where(inside[:, None, None], jnp.take(block, jnp.clip(source - first, 0, take - 1), axis=0), 0)


def _depthwise_kernel_tangent(x, kernel_dot, stride, geometry):
    """y_dot = sum_t tap_t(x) kernel_dot[t] (the convolution's part that is linear in the kernel), computed in a
    scan over blocks of output rows of one image. Reverse mode transposes this map, and the transpose of the
    scan is a scan that accumulates all K^2 products for a block in the carry: dkernel in one pass over x
    and dy, where K^2 separate reductions would read them K^2 times."""
    n, _, _, c = x.shape
    kh, kw, _ = kernel_dot.shape
    (ho, lo_h), (wo, lo_w) = geometry
    if n * ho * wo * c < BLOCKED_FROM:
        return _taps(x, kernel_dot, stride, (-lo_h, -lo_w), (ho, wo))
    rows = _row_chunk(ho, wo * c * x.dtype.itemsize)
    blocks = ho // rows
    taps = [jnp.broadcast_to(kernel_dot[a, b], (rows, wo, c)) for a in range(kh) for b in range(kw)]

    # Recomputed in the transposed scan: otherwise the shifted rows would be saved for it, K^2 times x.
    @functools.partial(jax.checkpoint, prevent_cse=False)
    def block(taps, index):
        image, first = index // blocks, (index % blocks) * rows
        out = None
        for a in range(kh):
            source = _depthwise_rows(x, image, stride * first + a - lo_h, rows, stride)
            for b in range(kw):
                term = _window(source, (b - lo_w,), (wo,), stride, axes=(1,)) * taps[a * kw + b]
                out = term if out is None else out + term
        return out.reshape(-1)  # flat: a unit axis would give the stacked output a layout of its own (a copy)

    _, ys = lax.scan(lambda carry, index: (carry, block(taps, index)), None, jnp.arange(n * blocks))
    return ys.reshape(n, ho, wo, c)


def _depthwise_input_tangent(x_dot, kernel, stride, geometry):
    """y_dot = the convolution of x_dot (the part linear in x). At stride 1 it is written as the transpose of
    its adjoint, the correlation of dy with the flipped kernel, so that reverse mode, which transposes this
    map, runs that correlation as written (interior without bounds checks) instead of K^2 padded copies
    summed. At stride > 1 the adjoint is fractionally strided and JAX's transpose is one fused loop."""
    kh, kw, _ = kernel.shape
    (ho, lo_h), (wo, lo_w) = geometry
    if stride > 1 or x_dot.shape[0] * ho * wo * x_dot.shape[3] < BLOCKED_FROM:
        return _taps(x_dot, kernel, stride, (-lo_h, -lo_w), (ho, wo))
    h, w = x_dot.shape[1], x_dot.shape[2]
    adjoint_geometry = ((h, kh - 1 - lo_h), (w, kw - 1 - lo_w))
    flipped = kernel[::-1, ::-1]
    y = jax.ShapeDtypeStruct((x_dot.shape[0], ho, wo, x_dot.shape[3]), x_dot.dtype)
    return jax.linear_transpose(lambda dy: _correlate(dy, flipped, 1, adjoint_geometry), y)(x_dot)[0]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _depthwise(x, kernel, stride, pads):
    dtype, compute = _compute_dtype(x, kernel)
    geometry = _depthwise_geometry(x, kernel, stride, pads)
    return _correlate(x.astype(compute), kernel.astype(compute), stride, geometry).astype(dtype)


def _depthwise_jvp(stride, pads, primals, tangents):
    # The convolution is bilinear: y_dot = conv(x_dot, kernel) + conv(x, kernel_dot), each written so that
    # its transpose (reverse mode) is a single pass over memory. symbolic_zeros: a tangent that is zero
    # (the kernel's, when only x is differentiated) costs nothing.
    x, kernel = primals
    x_dot, kernel_dot = tangents
    dtype, compute = _compute_dtype(x, kernel)
    geometry = _depthwise_geometry(x, kernel, stride, pads)
    y = _depthwise(x, kernel, stride, pads)
    terms = []
    if not isinstance(x_dot, SymbolicZero):
        terms.append(_depthwise_input_tangent(x_dot.astype(compute), kernel.astype(compute), stride, geometry))
    if not isinstance(kernel_dot, SymbolicZero):
        terms.append(_depthwise_kernel_tangent(x.astype(compute), kernel_dot.astype(compute), stride, geometry))
    y_dot = sum(terms[1:], terms[0]) if terms else jnp.zeros(y.shape, compute)
    return y, y_dot.astype(dtype)


_depthwise.defjvp(_depthwise_jvp, symbolic_zeros=True)


def _kernel_gradient(x: jax.Array, dy: jax.Array, kernel_shape, stride: int = 1, padding: Padding = "SAME"):
    """dkernel[a, b, c] = sum_{n,i,j} x[n, stride i + a - lo_h, stride j + b - lo_w, c] dy[n, i, j, c]: the
    transpose of :func:`_depthwise_kernel_tangent`, what reverse mode runs (one scan over x and dy)."""
    dtype, compute = _compute_dtype(x, dy)
    kernel = jax.ShapeDtypeStruct(tuple(kernel_shape), compute)
    pads = _check_depthwise(x, kernel, stride, padding)
    geometry = _depthwise_geometry(x, kernel, stride, pads)
    x, dy = x.astype(compute), dy.astype(compute)
    transpose = jax.linear_transpose(lambda k: _depthwise_kernel_tangent(x, k, stride, geometry), kernel)
    return transpose(dy)[0].astype(dtype)


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: Padding = "SAME") -> jax.Array:
    """Depthwise convolution ``y[n,i,j,c] = sum_{a,b} x[n, s i + a - p_h, s j + b - p_w, c] kernel[a,b,c]``
    (S000-17, S002-54), zero outside x; ``padding`` is ``"SAME"`` (XLA's), ``"VALID"``, an int (each side) or
    ``((lo, hi), (lo, hi))``, any kernel size, any ``stride``. Mixed dtypes are promoted by ``jnp.result_type``
    and multiplied and added in at least float32 (one rounding per output in bfloat16).

    Written as K^2 shifted multiply-adds that XLA fuses into one loop over memory, with a ``jax.custom_jvp``
    whose tangent maps transpose into single passes: reverse mode gets dx as the flipped kernel's correlation
    and dkernel as one cache-blocked scan, forward mode (``jax.jvp``, ``jacfwd``) works too. Equal to
    :func:`depthwise_conv2d_grouped`; on CPU much faster (see the performance chapter)."""
    pads = _check_depthwise(x, kernel, stride, padding)
    return _depthwise(x, kernel, stride, pads)


def depthwise_conv2d_grouped(
    x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: Padding = "SAME"
) -> jax.Array:
    """The same depthwise convolution as XLA's grouped convolution (``feature_group_count = C``), after the same
    dtype promotion (``lax.conv_general_dilated`` refuses mixed dtypes)."""
    pads = _check_depthwise(x, kernel, stride, padding)
    kh, kw, c = kernel.shape
    dtype = jnp.result_type(x, kernel)
    return lax.conv_general_dilated(
        x.astype(dtype), kernel.astype(dtype).reshape(kh, kw, 1, c), (stride, stride), list(pads),
        dimension_numbers=DIMENSIONS, feature_group_count=c,
    )  # fmt: skip


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

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1, padding: str | int = "SAME", rngs: nnx.Rngs,
                 dtype=jnp.float32):  # fmt: skip
        # padding of the 3x3s: "SAME" is XLA's (at stride 2 on an even map, one row after and none before);
        # padding=1 is torchvision's (one on each side), which the whole networks use.
        self.conv1 = _conv(c_in, c_out, (3, 3), stride=stride, padding=padding, rngs=rngs, dtype=dtype)
        self.bn1 = _bn(c_out, rngs=rngs, dtype=dtype)
        self.conv2 = _conv(c_out, c_out, (3, 3), padding=padding, rngs=rngs, dtype=dtype)
        self.bn2 = _bn(c_out, rngs=rngs, dtype=dtype)
        self._make_shortcut(c_in, c_out, stride, rngs, dtype)

    def residual(self, x: jax.Array) -> jax.Array:
        return self.bn2(self.conv2(nnx.relu(self.bn1(self.conv1(x)))))


class Bottleneck(_Residual):
    """ResNet's bottleneck: 1x1 reduce -> 3x3 (stride, ``groups``) -> 1x1 expand, each with BN, ReLU between.
    ``groups > 1`` makes it ResNeXt's block (the 3x3 is a grouped convolution of cardinality ``groups``)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, *, stride: int = 1, groups: int = 1,
                 padding: str | int = "SAME", rngs: nnx.Rngs, dtype=jnp.float32):  # fmt: skip
        if c_mid % groups:
            raise ValueError(f"groups={groups} must divide c_mid={c_mid}")
        self.reduce = _conv(c_in, c_mid, (1, 1), rngs=rngs, dtype=dtype)
        self.bn1 = _bn(c_mid, rngs=rngs, dtype=dtype)
        # The stride sits in the 3x3 (torchvision's ResNet v1.5); padding as in BasicBlock.
        self.conv = _conv(c_mid, c_mid, (3, 3), stride=stride, groups=groups, padding=padding, rngs=rngs,
                          dtype=dtype)  # fmt: skip
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


def depthwise_padding(kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """torchvision's padding of a depthwise (or any) KxK convolution, ``(k - 1) // 2`` on each side (its
    ``Conv2dNormActivation``): for an odd kernel "same" at stride 1 and ``ceil(n / stride)`` outputs at a
    stride; for an even kernel one output fewer than "same", never XLA's one-sided pad."""
    return tuple(((k - 1) // 2, (k - 1) // 2) for k in kernel)


def strided_depthwise_conv2d(x: jax.Array, kernel: jax.Array, *, stride: int, fast: bool = False,
                             padding: Padding | None = None) -> jax.Array:  # fmt: skip
    """Depthwise convolution at ``stride``, padded ``padding`` (default :func:`depthwise_padding`, torchvision's
    ``(k - 1) // 2`` on each side): XLA's grouped convolution (``fast=False``, :func:`depthwise_conv2d_grouped`)
    or the K^2 shifted multiply-adds (``fast=True``, :func:`depthwise_conv2d`), both given the same stride and
    the same explicit padding, so the two are equal, forward and backward, for any kernel size."""
    _positive("stride", stride)
    pads = depthwise_padding(kernel.shape[:2]) if padding is None else padding
    depthwise = depthwise_conv2d if fast else depthwise_conv2d_grouped
    return depthwise(x, kernel, stride=stride, padding=pads)


class DepthwiseSeparable(nnx.Module):
    """MobileNet's block: depthwise KxK (``stride``) -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU. ``fast=True``
    runs the depthwise step as :func:`depthwise_conv2d` (K^2 shifted multiply-adds), ``fast=False`` as XLA's
    grouped convolution; the parameters and the result are the same. Both go through
    :func:`strided_depthwise_conv2d` with ``padding`` (torchvision's ``(k - 1) // 2`` on each side, stored on the
    module so that a summary reads it rather than assuming it)."""

    def __init__(self, c_in: int, c_out: int, *, kernel: int = 3, stride: int = 1, fast: bool = True,
                 rngs: nnx.Rngs, dtype=jnp.float32):  # fmt: skip
        _positive("stride", stride)
        _positive("kernel", kernel)
        init = jax.nn.initializers.lecun_normal(in_axis=(0, 1), out_axis=2)
        self.depthwise = nnx.Param(init(rngs.params(), (kernel, kernel, c_in), dtype))
        self.bn1 = _bn(c_in, rngs=rngs, dtype=dtype)
        self.pointwise = _conv(c_in, c_out, (1, 1), rngs=rngs, dtype=dtype)
        self.bn2 = _bn(c_out, rngs=rngs, dtype=dtype)
        self.fast = fast
        self.stride = stride
        self.padding = depthwise_padding((kernel, kernel))

    def depthwise_step(self, x: jax.Array) -> jax.Array:
        return strided_depthwise_conv2d(x, self.depthwise[...], stride=self.stride, fast=self.fast,
                                        padding=self.padding)  # fmt: skip

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn1(self.depthwise_step(x)))
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
