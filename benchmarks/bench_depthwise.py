"""Depthwise 3x3 convolution at S002-54's sizes (64x64, C = 256), float32, NHWC, every figure placed on the
roofline measured in the same run (``benchmarks/roofline.py``):

* forward + backward (batch 8), XLA's grouped conv (``feature_group_count = C``) vs the K^2 shifted
  multiply-adds of ``models.blocks.depthwise_conv2d``, at stride 1 and stride 2. Least bytes: read x and
  write y (forward); read x and dy, write dx (backward); the kernel read and its gradient written;
* forward + backward, plain autodiff of the same shifted sum vs the kernel's custom JVP (what the rules add);
* the two halves of the fast kernel's backward on their own: dkernel (least bytes: read x and dy) vs dx
  (read dy, write dx);
* forward mode (``jax.jvp``: y and y_dot), grouped vs fast. Least bytes: read x and x_dot, write y and y_dot;
* forward, the dense 3x3 conv C -> C (256x the flops) vs each depthwise implementation, batch 8 and 1, and
  each depthwise implementation vs the small dense conv C = 16 (the same flops);
* forward, the dense 3x3 conv at C = 63 vs C = 64 (S002-08's multiples of 8, on this backend).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from benchmarks.harness import side_by_side
from benchmarks.roofline import copies, peak_flops, place, rates
from models.blocks import _shifted_sum, depthwise_conv2d, depthwise_conv2d_grouped
from models.conv import conv2d

SHAPE = (8, 64, 64, 256)
BATCHES = (8, 1)
IMPLEMENTATIONS = {
    "grouped": ("depthwise 3x3 (lax grouped conv), C=256", depthwise_conv2d_grouped),
    "fast": ("depthwise 3x3 (models.blocks.depthwise_conv2d, shifted multiply-adds), C=256", depthwise_conv2d),
}


def forward_backward(f, **options):
    def step(x, kernel, dy):
        y, pullback = jax.vjp(lambda a, b: f(a, b, **options), x, kernel)
        return (y, *pullback(dy))

    return step


def forward_mode(f):
    def step(x, kernel, x_dot, kernel_dot):
        return jax.jvp(f, (x, kernel), (x_dot, kernel_dot))

    return step


def _placed(result: dict, least: float, nbytes: int, peak: float) -> dict:
    """``result`` with both sides placed on the roofline measured in its rounds (copies of ``nbytes``)."""
    extra = result["extra"]
    measured = rates(extra, nbytes)
    for side in ("baseline", "candidate"):
        extra.update(place(result[f"{side}_s"], least, measured, extra[f"{side}_xla_flops"], peak,
                           prefix=f"{side}_"))  # fmt: skip
    extra.update({**measured, "peak_flops_per_s": peak, "minimum_bytes": least})
    return result


def _forward_comparisons(batch: int, peak: float) -> list[dict]:
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
        row = side_by_side(
            f"dense_vs_{prefix}depthwise3x3_forward_{size}",
            ("dense 3x3 conv, C=256 -> 256", lambda a, kd, kf: dense(a, kf)),
            (label, lambda a, kd, kf, f=depthwise: f(a, kd)),
            (x, k_dw, k_dense), runs=5, warmup=1,
            unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; theory (flops): 256",
            extra={"batch": batch, "implementation": key}, companions=copies(x.nbytes),
        )  # fmt: skip
        # Least bytes: x read, y written, the kernel read (the dense one is 256x the depthwise one).
        measured = rates(row["extra"], x.nbytes)
        for side, kernel in (("baseline", k_dense), ("candidate", k_dw)):
            row["extra"].update(place(row[f"{side}_s"], 2 * x.nbytes + kernel.nbytes, measured,
                                      row["extra"][f"{side}_xla_flops"], peak, prefix=f"{side}_"))  # fmt: skip
        row["extra"].update({**measured, "peak_flops_per_s": peak})
        out.append(row)
        row = side_by_side(
            f"{prefix}depthwise3x3_vs_small_dense_forward_{'x'.join(map(str, shape[:3]))}",
            (label, lambda a, b, kd, ks, f=depthwise: f(a, kd)),
            ("dense 3x3 conv, C=16 -> 16 (same flops)", lambda a, b, kd, ks: dense(b, ks)),
            (x, x_small, k_dw, k_small), runs=5, warmup=1,
            unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; theory (flops): 1",
            extra={"batch": batch, "implementation": key},
            companions={**copies(x.nbytes), **copies(x_small.nbytes, "small_")},
        )  # fmt: skip
        measured, small = rates(row["extra"], x.nbytes), rates(row["extra"], x_small.nbytes, "small_")
        row["extra"].update(place(row["baseline_s"], 2 * x.nbytes + k_dw.nbytes, measured,
                                  row["extra"]["baseline_xla_flops"], peak, prefix="baseline_"))  # fmt: skip
        row["extra"].update(place(row["candidate_s"], 2 * x_small.nbytes + k_small.nbytes, small,
                                  row["extra"]["candidate_xla_flops"], peak, prefix="candidate_"))  # fmt: skip
        row["extra"].update({**measured, "peak_flops_per_s": peak})
        out.append(row)
    return out


def _gradient_parts(x, kernel, dy, peak: float) -> dict:
    """Where the fast kernel's backward goes: dkernel alone (the scan over x and dy; least bytes: x and dy
    read) against dx alone (the flipped kernel's correlation of dy; least bytes: dy read, dx written)."""
    dkernel = lambda a, k, d: jax.vjp(lambda b: depthwise_conv2d(a, b), k)[1](d)  # noqa: E731
    dx = lambda a, k, d: jax.vjp(lambda v: depthwise_conv2d(v, k), a)[1](d)  # noqa: E731
    row = side_by_side(
        f"depthwise3x3_kernel_gradient_vs_input_gradient_{'x'.join(map(str, x.shape))}",
        ("dkernel of models.blocks.depthwise_conv2d (jax.vjp in the kernel)", dkernel),
        ("dx of models.blocks.depthwise_conv2d (jax.vjp in x)", dx),
        (x, kernel, dy), runs=7, warmup=2, companions=copies(x.nbytes),
        unit_note="seconds per pullback, float32 NHWC, median of 7 alternating runs",
    )  # fmt: skip
    measured = rates(row["extra"], x.nbytes)
    row["extra"].update(place(row["baseline_s"], 2 * x.nbytes, measured, row["extra"]["baseline_xla_flops"], peak,
                              prefix="baseline_"))  # fmt: skip
    row["extra"].update(place(row["candidate_s"], 2 * x.nbytes + kernel.nbytes, measured,
                              row["extra"]["candidate_xla_flops"], peak, prefix="candidate_"))  # fmt: skip
    row["extra"].update({**measured, "peak_flops_per_s": peak})
    return row


def _channels_of_eight(peak: float) -> dict:
    """S002-08 on this backend: the dense 3x3 conv at C = 63 against C = 64, compared per flop."""
    keys = jax.random.split(jax.random.key(8), 4)
    dense = functools.partial(conv2d, padding=1)
    args = []
    for c, (kx, kk) in ((63, keys[:2]), (64, keys[2:])):
        args += [jax.random.normal(kx, (8, 64, 64, c), jnp.float32), jax.random.normal(kk, (3, 3, c, c), jnp.float32)]
    row = side_by_side(
        "dense3x3_channels_63_vs_64_forward_8x64x64",
        ("dense 3x3 conv, C=63 -> 63", lambda a, ka, b, kb: dense(a, ka)),
        ("dense 3x3 conv, C=64 -> 64", lambda a, ka, b, kb: dense(b, kb)),
        args, runs=5, warmup=1,
        unit_note="seconds per forward, float32 NHWC, median of 5 alternating runs; compare per flop (extra)",
    )  # fmt: skip
    extra = row["extra"]
    per_flop = [row[f"{s}_s"] / extra[f"{s}_xla_flops"] for s in ("baseline", "candidate")]
    extra.update({"per_flop_ratio": per_flop[0] / per_flop[1], "peak_flops_per_s": peak,
                  "baseline_compute_fraction": extra["baseline_xla_flops"] / row["baseline_s"] / peak,
                  "candidate_compute_fraction": extra["candidate_xla_flops"] / row["candidate_s"] / peak})  # fmt: skip
    return row


def run() -> list[dict]:
    keys = jax.random.split(jax.random.key(0), 5)
    x = jax.random.normal(keys[0], SHAPE, jnp.float32)
    dy = jax.random.normal(keys[1], SHAPE, jnp.float32)
    k_dw = jax.random.normal(keys[2], (3, 3, SHAPE[-1]), jnp.float32)
    x_dot = jax.random.normal(keys[3], SHAPE, jnp.float32)
    k_dot = jax.random.normal(keys[4], (3, 3, SHAPE[-1]), jnp.float32)
    peak = peak_flops()
    both = copies(x.nbytes)
    size = "x".join(map(str, SHAPE))
    # Least bytes, forward + backward: x read, y written; x and dy read, dx written; kernel read, dkernel written.
    least = 5 * x.nbytes + 2 * k_dw.nbytes
    fb = side_by_side(
        f"depthwise3x3_forward_backward_{size}",
        ("lax grouped conv (feature_group_count=C)", forward_backward(depthwise_conv2d_grouped)),
        ("models.blocks.depthwise_conv2d (K^2 shifted multiply-adds)", forward_backward(depthwise_conv2d)),
        (x, k_dw, dy), runs=5, warmup=1, companions=both,
        unit_note="seconds per forward+backward (y, dx, dkernel), float32 NHWC, median of 5 alternating runs",
    )  # fmt: skip
    rows = [_placed(fb, least, x.nbytes, peak)]
    vjp = side_by_side(
        f"depthwise3x3_autodiff_vs_custom_jvp_forward_backward_{size}",
        ("jax.vjp of the shifted sum (plain autodiff)", forward_backward(_shifted_sum)),
        ("models.blocks.depthwise_conv2d (custom JVP)", forward_backward(depthwise_conv2d)),
        (x, k_dw, dy), runs=7, warmup=2, companions=both,
        unit_note="seconds per forward+backward (y, dx, dkernel), float32 NHWC, median of 7 alternating runs",
    )  # fmt: skip
    rows.append(_placed(vjp, least, x.nbytes, peak))
    dy2 = dy[:, ::2, ::2]
    strided = side_by_side(
        f"depthwise3x3_stride2_forward_backward_{size}",
        ("lax grouped conv, stride 2", forward_backward(depthwise_conv2d_grouped, stride=2)),
        ("models.blocks.depthwise_conv2d, stride 2", forward_backward(depthwise_conv2d, stride=2)),
        (x, k_dw, dy2), runs=5, warmup=1, companions=both,
        unit_note="seconds per forward+backward (y, dx, dkernel), stride 2 'SAME', float32 NHWC, median of 5",
    )  # fmt: skip
    rows.append(_gradient_parts(x, k_dw, dy, peak))
    rows.append(_placed(strided, 2 * x.nbytes + 3 * dy2.nbytes + 2 * k_dw.nbytes, x.nbytes, peak))
    jvp = side_by_side(
        f"depthwise3x3_forward_mode_jvp_{size}",
        ("jax.jvp of the lax grouped conv", forward_mode(depthwise_conv2d_grouped)),
        ("jax.jvp of models.blocks.depthwise_conv2d", forward_mode(depthwise_conv2d)),
        (x, k_dw, x_dot, k_dot), runs=5, warmup=1, companions=both,
        unit_note="seconds per jax.jvp (y, y_dot), float32 NHWC, median of 5 alternating runs",
    )  # fmt: skip
    rows.append(_placed(jvp, 4 * x.nbytes + 2 * k_dw.nbytes, x.nbytes, peak))
    rows += [r for batch in BATCHES for r in _forward_comparisons(batch, peak)]
    rows.append(_channels_of_eight(peak))
    return rows
