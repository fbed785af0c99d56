"""Depthwise 3x3 convolution at S002-54's sizes (64x64, C = 256), float32, NHWC:

* forward + backward (batch 8), XLA's grouped conv (``feature_group_count = C``) vs the K^2 shifted
  multiply-adds of ``models.blocks.depthwise_conv2d``; ``extra`` has the copy bandwidth measured in the same
  run and the fraction of it each side reaches on the necessary traffic (read x, write y; read x, dy, write dx);
* forward + backward (batch 8), plain autodiff of the same shifted sum vs its custom VJP (what the
  hand-written backward adds);
* forward, the dense 3x3 conv C -> C (256x the flops) vs each depthwise implementation, batch 8 and 1;
* forward, each depthwise implementation vs the small dense conv C = 16 (the same flops), batch 8 and 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from benchmarks.harness import side_by_side
from models.blocks import _shifted_sum, depthwise_conv2d, depthwise_conv2d_grouped
from models.conv import conv2d

SHAPE = (8, 64, 64, 256)
BATCHES = (8, 1)
IMPLEMENTATIONS = {
    "grouped": ("depthwise 3x3 (lax grouped conv), C=256", depthwise_conv2d_grouped),
    "fast": ("depthwise 3x3 (models.blocks.depthwise_conv2d, shifted multiply-adds), C=256", depthwise_conv2d),
}


def forward_backward(f):
    def step(x, kernel, dy):
        y, pullback = jax.vjp(f, x, kernel)
        return (y, *pullback(dy))

    return step


def copy_bandwidth(x: jax.Array, runs: int = 9) -> float:
    """Bytes/s of ``x + 1`` (one read and one write per element): the machine's streaming rate."""
    result = side_by_side("copy", ("x + 1", lambda v: v + 1.0), ("x + 1", lambda v: v + 1.0), (x,), runs=runs)
    return 2 * x.nbytes / result["baseline_s"]


def _forward_comparisons(batch: int) -> list[dict]:
    keys = jax.random.split(jax.random.key(batch), 5)
    shape = (batch, *SHAPE[1:])
    x = jax.random.normal(keys[0], shape, jnp.float32)
    k_dw = jax.random.normal(keys[1], (3, 3, shape[-1]), jnp.float32)
    k_dense = jax.random.normal(keys[2], (3, 3, shape[-1], shape[-1]), jnp.float32)
    x_small = jax.random.normal(keys[3], (*shape[:3], 16), jnp.float32)
    k_small = jax.random.normal(keys[4], (3, 3, 16, 16), jnp.float32)
    dense = functools.partial(conv2d, padding=1)
    size = "x".join(map(str, shape))
    out = []
    for key, (label, depthwise) in IMPLEMENTATIONS.items():
        prefix = "" if key == "grouped" else "fast_"
        out.append(side_by_side(
            f"dense_vs_{prefix}depthwise3x3_forward_{size}",
            ("dense 3x3 conv, C=256 -> 256", lambda a, kd, kf: dense(a, kf)),
            (label, lambda a, kd, kf, f=depthwise: f(a, kd)),
            (x, k_dw, k_dense), runs=5, warmup=1,
            unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; theory (flops): 256",
            extra={"batch": batch, "implementation": key},
        ))  # fmt: skip
        out.append(side_by_side(
            f"{prefix}depthwise3x3_vs_small_dense_forward_{'x'.join(map(str, shape[:3]))}",
            (label, lambda a, b, kd, ks, f=depthwise: f(a, kd)),
            ("dense 3x3 conv, C=16 -> 16 (same flops)", lambda a, b, kd, ks: dense(b, ks)),
            (x, x_small, k_dw, k_small), runs=5, warmup=1,
            unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; theory (flops): 1",
            extra={"batch": batch, "implementation": key},
        ))  # fmt: skip
    return out


def run() -> list[dict]:
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], SHAPE, jnp.float32)
    dy = jax.random.normal(keys[1], SHAPE, jnp.float32)
    k_dw = jax.random.normal(keys[2], (3, 3, SHAPE[-1]), jnp.float32)
    bandwidth = copy_bandwidth(x)
    minimum_bytes = 5 * x.nbytes
    size = "x".join(map(str, SHAPE))
    fb = side_by_side(
        f"depthwise3x3_forward_backward_{size}",
        ("lax grouped conv (feature_group_count=C)", forward_backward(depthwise_conv2d_grouped)),
        ("models.blocks.depthwise_conv2d (K^2 shifted multiply-adds)", forward_backward(depthwise_conv2d)),
        (x, k_dw, dy), runs=5, warmup=1,
        unit_note="seconds per forward+backward (y, dx, dkernel), float32 NHWC, median of 5 alternating runs",
    )  # fmt: skip
    fb["extra"].update({
        "copy_bandwidth_bytes_per_s": bandwidth,
        "minimum_bytes": minimum_bytes,
        "candidate_bandwidth_fraction": minimum_bytes / fb["candidate_s"] / bandwidth,
        "baseline_bandwidth_fraction": minimum_bytes / fb["baseline_s"] / bandwidth,
    })  # fmt: skip
    vjp = side_by_side(
        f"depthwise3x3_autodiff_vs_custom_vjp_forward_backward_{size}",
        ("jax.vjp of the shifted sum (plain autodiff)", forward_backward(_shifted_sum)),
        ("models.blocks.depthwise_conv2d (custom VJP)", forward_backward(depthwise_conv2d)),
        (x, k_dw, dy), runs=7, warmup=2,
        unit_note="seconds per forward+backward (y, dx, dkernel), float32 NHWC, median of 7 alternating runs",
    )  # fmt: skip
    vjp["extra"].update({
        "copy_bandwidth_bytes_per_s": bandwidth,
        "minimum_bytes": minimum_bytes,
        "candidate_bandwidth_fraction": minimum_bytes / vjp["candidate_s"] / bandwidth,
        "baseline_bandwidth_fraction": minimum_bytes / vjp["baseline_s"] / bandwidth,
    })  # fmt: skip
    return [fb, vjp, *(r for batch in BATCHES for r in _forward_comparisons(batch))]
