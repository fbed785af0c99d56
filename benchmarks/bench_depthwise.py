"""Depthwise 3x3 convolution on (8, 64, 64, 256), float32 (S002-54's sizes with a batch of 8):

* forward + backward, XLA's grouped conv (``feature_group_count = C``) vs the K^2 shifted multiply-adds of
  ``models.blocks.depthwise_conv2d``; ``extra`` has the copy bandwidth measured in the same run and the
  fraction of it the fast kernel reaches on its necessary traffic (read x, write y; read x, dy, write dx);
* forward, the dense 3x3 conv C -> C (256x the flops) vs the grouped depthwise conv: theory says 256x;
* forward, the grouped depthwise conv vs the small dense conv C = 16 (the same flops).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from benchmarks.harness import compiled, side_by_side
from models.blocks import depthwise_conv2d, depthwise_conv2d_grouped
from models.conv import conv2d

SHAPE = (8, 64, 64, 256)


def forward_backward(f):
    def step(x, kernel, dy):
        y, pullback = jax.vjp(f, x, kernel)
        return (y, *pullback(dy))

    return step


def copy_bandwidth(x: jax.Array, runs: int = 9) -> float:
    """Bytes/s of ``x + 1`` (one read and one write per element): the machine's streaming rate."""
    result = side_by_side("copy", ("x + 1", lambda v: v + 1.0), ("x + 1", lambda v: v + 1.0), (x,), runs=runs)
    return 2 * x.nbytes / result["baseline_s"]


def _flops(f, *args) -> float:
    cost = compiled(f, *args).cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def run() -> list[dict]:
    keys = jax.random.split(jax.random.key(0), 5)
    x = jax.random.normal(keys[0], SHAPE, jnp.float32)
    dy = jax.random.normal(keys[1], SHAPE, jnp.float32)
    k_dw = jax.random.normal(keys[2], (3, 3, SHAPE[-1]), jnp.float32)
    k_dense = jax.random.normal(keys[3], (3, 3, SHAPE[-1], SHAPE[-1]), jnp.float32)
    x_small = jax.random.normal(keys[4], (*SHAPE[:3], 16), jnp.float32)
    k_small = jax.random.normal(keys[4], (3, 3, 16, 16), jnp.float32)
    dense = functools.partial(conv2d, padding=1)
    bandwidth = copy_bandwidth(x)
    minimum_bytes = 5 * x.nbytes
    fb = side_by_side(
        "depthwise3x3_forward_backward_8x64x64x256",
        ("lax grouped conv (feature_group_count=C)", forward_backward(depthwise_conv2d_grouped)),
        ("models.blocks.depthwise_conv2d (K^2 shifted multiply-adds)", forward_backward(depthwise_conv2d)),
        (x, k_dw, dy),
        runs=5,
        warmup=1,
        unit_note="seconds per forward+backward (y, dx, dkernel), float32 NHWC, median of 5 alternating runs",
    )
    fb["extra"].update({
        "copy_bandwidth_bytes_per_s": bandwidth,
        "minimum_bytes": minimum_bytes,
        "candidate_bandwidth_fraction": minimum_bytes / fb["candidate_s"] / bandwidth,
        "baseline_bandwidth_fraction": minimum_bytes / fb["baseline_s"] / bandwidth,
    })  # fmt: skip
    theory = side_by_side(
        "dense_vs_depthwise3x3_forward_8x64x64x256",
        ("dense 3x3 conv, C=256 -> 256", lambda a, kd, kf: dense(a, kf)),
        ("depthwise 3x3 (grouped conv), C=256", lambda a, kd, kf: depthwise_conv2d_grouped(a, kd)),
        (x, k_dw, k_dense),
        runs=5,
        warmup=1,
        unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; theory (flops): 256",
        extra={"flop_ratio": _flops(dense, x, k_dense) / _flops(depthwise_conv2d_grouped, x, k_dw)},
    )
    same_flops = side_by_side(
        "depthwise3x3_vs_small_dense_forward_8x64x64",
        ("depthwise 3x3 (grouped conv), C=256", lambda a, b, kd, ks: depthwise_conv2d_grouped(a, kd)),
        ("dense 3x3 conv, C=16 -> 16 (same flops)", lambda a, b, kd, ks: dense(b, ks)),
        (x, x_small, k_dw, k_small),
        runs=5,
        warmup=1,
        unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; theory (flops): 1",
    )
    return [fb, theory, same_flops]
