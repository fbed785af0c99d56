"""Convolutions as pure JAX functions (NHWC inputs, HWIO kernels) and the pieces the conv chapter measures.

Flax's ``nnx.Conv`` / ``nnx.ConvTranspose`` are the modules; these functions are the numeric cores a
chapter differentiates and compares: a 2-D convolution with integer padding, its transpose written as
XLA's ``conv_transpose``, the same transpose written by hand as zero insertion followed by an ordinary
convolution, circular padding, and the fixed kernel of bilinear upsampling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    *,
    stride: int = 1,
    padding: int | str = 0,
    dilation: int = 1,
    groups: int = 1,
) -> jax.Array:
    """Cross-correlation ``y[i] = sum_a x[i*stride + a*dilation - padding] kernel[a]`` (what every deep
    learning library calls convolution), with ``padding`` zeros on each side or XLA's ``"SAME"``/``"VALID"``."""
    pads = padding if isinstance(padding, str) else [(padding, padding)] * 2
    return lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        pads,
        rhs_dilation=(dilation, dilation),
        dimension_numbers=DIMENSIONS,
        feature_group_count=groups,
    )


def transpose_padding(n: int, kernel: int, stride: int, padding: int, dilation: int) -> tuple[int, int]:
    """The padding of the transposed convolution that maps a conv's output back onto its ``n`` inputs:
    ``d(k-1) - p`` before, and after it the same plus the rows the conv's floor dropped."""
    effective = dilation * (kernel - 1)
    dropped = (n + 2 * padding - effective - 1) % stride
    return effective - padding, effective - padding + dropped


def conv2d_transpose(
    y: jax.Array, kernel: jax.Array, n: int, *, stride: int = 1, padding: int = 0, dilation: int = 1
) -> jax.Array:
    """The transpose (adjoint) of :func:`conv2d` for an ``n``-by-``n`` input, as ``lax.conv_transpose``:
    ``transpose_kernel=True`` flips the kernel spatially and swaps its in/out channels."""
    pads = [transpose_padding(n, kernel.shape[0], stride, padding, dilation)] * 2
    return lax.conv_transpose(
        y,
        kernel,
        (stride, stride),
        pads,
        rhs_dilation=(dilation, dilation),
        dimension_numbers=DIMENSIONS,
        transpose_kernel=True,
    )


def zero_insert(x: jax.Array, stride: int) -> jax.Array:
    """Put ``stride - 1`` zeros between neighbouring pixels of ``x`` (NHWC), as the notes describe."""
    n, h, w, c = x.shape
    out = jnp.zeros((n, (h - 1) * stride + 1, (w - 1) * stride + 1, c), x.dtype)
    return out.at[:, ::stride, ::stride, :].set(x)


def conv2d_transpose_by_zero_insertion(
    y: jax.Array, kernel: jax.Array, n: int, *, stride: int = 1, padding: int = 0, dilation: int = 1
) -> jax.Array:
    """The transposed convolution written out: insert zeros, pad, then an ordinary stride-1 convolution
    with the kernel flipped in space and its channel axes swapped."""
    before, after = transpose_padding(n, kernel.shape[0], stride, padding, dilation)
    spread = jnp.pad(zero_insert(y, stride), ((0, 0), (before, after), (before, after), (0, 0)))
    flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
    return conv2d(spread, flipped, dilation=dilation)


def circular_conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Stride-1 convolution of an odd kernel with circular ("wrap") padding: the output has the input's
    size and the image is treated as a torus, so no pixel is near a border."""
    half = kernel.shape[0] // 2
    return conv2d(jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)), mode="wrap"), kernel)


def bilinear_upsample_kernel(dtype=jnp.float64) -> jax.Array:
    """The 4x4 kernel (HWIO, one channel) of bilinear 2x upsampling: outer((1, 3, 3, 1) / 4)."""
    taps = jnp.asarray([0.25, 0.75, 0.75, 0.25], dtype)
    return jnp.outer(taps, taps)[:, :, None, None]


def bilinear_upsample_2x(x: jax.Array) -> jax.Array:
    """Bilinear 2x upsampling (half-pixel centres, edges clamped) as a stride-2 transposed convolution:
    replicate the border once, apply the fixed kernel, crop three pixels from each side. One channel."""
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    up = lax.conv_transpose(padded, bilinear_upsample_kernel(x.dtype), (2, 2), "VALID", dimension_numbers=DIMENSIONS)
    return up[:, 3:-3, 3:-3, :]
