"""Pooling: the backward rules written out, max unpooling, spatial pyramid pooling, global pooling.

Max and average pooling themselves are Flax's (``nnx.max_pool``, ``nnx.avg_pool``, NHWC, VALID windows
here). The backward rules below are the derived ones, written next to nothing but indexing, so a chapter
can compare them with ``jax.vjp`` of Flax's pooling.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


def _window_indices(size: int, window: int, stride: int) -> jax.Array:
    """Input index of every (output position, window offset) pair along one axis, VALID windows."""
    out = (size - window) // stride + 1
    return jnp.arange(out)[:, None] * stride + jnp.arange(window)[None, :]


def _windows(x: jax.Array, window: int, stride: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``x``'s pooling windows as ``(N, OH, OW, window*window, C)`` and the row/column index of each entry."""
    rows = _window_indices(x.shape[1], window, stride)  # (OH, k)
    cols = _window_indices(x.shape[2], window, stride)  # (OW, k)
    r = jnp.broadcast_to(rows[:, None, :, None], (rows.shape[0], cols.shape[0], window, window))
    c = jnp.broadcast_to(cols[None, :, None, :], (rows.shape[0], cols.shape[0], window, window))
    r, c = r.reshape(*r.shape[:2], -1), c.reshape(*c.shape[:2], -1)
    return x[:, r, c, :], r, c


def max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max pooling with square VALID windows (Flax's ``nnx.max_pool``)."""
    return nnx.max_pool(x, (window, window), (stride, stride))


def max_pool_backward(x: jax.Array, dy: jax.Array, window: int, stride: int) -> jax.Array:
    """dL/dx of max pooling: each window sends its whole ``dy`` to its argmax, the others get 0; where
    windows overlap the contributions add. At a tie the first maximum in row-major order wins (the
    choice XLA's select-and-scatter makes; any convex combination of the tied entries is a subgradient)."""
    patches, r, c = _windows(x, window, stride)
    winner = jnp.argmax(patches, axis=3)[:, :, :, None]  # (N, OH, OW, 1, C), first maximum on ties

    def at_winner(index: jax.Array) -> jax.Array:
        return jnp.take_along_axis(jnp.broadcast_to(index[None, ..., None], patches.shape), winner, 3)[:, :, :, 0]

    rows, cols = at_winner(r), at_winner(c)
    batch = jnp.arange(x.shape[0])[:, None, None, None]
    channel = jnp.arange(x.shape[3])[None, None, None, :]
    return jnp.zeros_like(x).at[batch, rows, cols, channel].add(dy)


def avg_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Average pooling with square VALID windows (Flax's ``nnx.avg_pool``)."""
    return nnx.avg_pool(x, (window, window), (stride, stride))


def avg_pool_backward(x: jax.Array, dy: jax.Array, window: int, stride: int) -> jax.Array:
    """dL/dx of average pooling: each window spreads ``dy / window**2`` over all of its entries."""
    _, r, c = _windows(x, window, stride)
    share = jnp.broadcast_to((dy / window**2)[:, :, :, None, :], (*dy.shape[:3], window * window, dy.shape[3]))
    return jnp.zeros_like(x).at[:, r, c, :].add(share)


def max_unpool(values: jax.Array, x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max unpooling (SegNet's decoder): place ``values`` at the positions where max pooling of ``x`` found
    its maxima, zeros elsewhere. It *is* the VJP of max pooling at ``x``, applied to ``values``."""
    _, pullback = jax.vjp(lambda v: max_pool(v, window, stride), x)
    return pullback(values)[0]


def avg_pool_as_conv(x: jax.Array, window: int) -> jax.Array:
    """Average pooling with stride = window as a depthwise stride-``window`` convolution whose fixed kernel
    is ``1 / window**2`` everywhere (``feature_group_count`` = channels, so channels do not mix)."""
    channels = x.shape[3]
    kernel = jnp.full((window, window, 1, channels), 1.0 / window**2, x.dtype)
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (window, window),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
    )


def spatial_pyramid_pool(x: jax.Array, levels: tuple[int, ...] = (1, 2, 4)) -> jax.Array:
    """Spatial pyramid pooling (He et al., 2014): for each level n, max over an n-by-n grid of bins; the
    results flattened and concatenated, so the output has ``C * sum(n**2)`` features whatever H and W are
    (each needs H, W >= max(levels)). The bins are adaptive pooling's, bin i spanning rows floor(i H / n) to
    ceil((i + 1) H / n) - 1, which cover every pixel; the paper's window ceil(H/n), stride floor(H/n) is a
    different choice."""
    n_, h, w, _ = x.shape
    if min(h, w) < max(levels):
        raise ValueError(f"spatial_pyramid_pool: input {h}x{w} is smaller than the finest level {max(levels)}")
    features = []
    for n in levels:
        for i in range(n):
            for j in range(n):
                bin_ = x[:, (i * h) // n : math.ceil((i + 1) * h / n), (j * w) // n : math.ceil((j + 1) * w / n), :]
                features.append(jnp.max(bin_, axis=(1, 2)))
    return jnp.concatenate(features, axis=-1).reshape(n_, -1)


class SpatialPyramidPooling(nnx.Module):
    """SPP as a layer: no parameters, output length ``C * sum(n**2 for n in levels)`` for any input size."""

    def __init__(self, *, levels: tuple[int, ...] = (1, 2, 4)):
        if not levels or min(levels) < 1:
            raise ValueError(f"SpatialPyramidPooling: levels must be positive integers, got {levels}")
        self.levels = tuple(levels)

    def __call__(self, x: jax.Array) -> jax.Array:
        return spatial_pyramid_pool(x, self.levels)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Global average pooling: the mean of each channel over H and W, (N, H, W, C) -> (N, C)."""
    return jnp.mean(x, axis=(1, 2))


def global_max_pool(x: jax.Array) -> jax.Array:
    """Global max pooling: the max of each channel over H and W, (N, H, W, C) -> (N, C)."""
    return jnp.max(x, axis=(1, 2))
