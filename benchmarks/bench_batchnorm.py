"""The custom-VJP BatchNorm (closed-form backward) against nnx.BatchNorm under autodiff: one training
step's forward and backward (y, dx, dscale, dbias), jit-compiled, float32, NHWC; for each, the bytes of
the residuals that ``jax.vjp`` keeps from the forward pass for the backward pass; and both placed on the
roofline measured in the same run (``benchmarks/roofline.py``).

Least bytes of a forward + backward (8 x the size of x): the forward reads x for the statistics and again
for y, and writes y; the backward reads x and dy for the two sums (sum dy, sum dy x_hat), reads them again
for dx, and writes dx. The forward cannot be one pass (y needs the statistics of the whole batch), nor the
backward (dx needs both sums).

Where the two passes over x go (the optimised HLO of the closed form, ``jax.jit(step).lower(...).compile()
.as_text()``): four reductions (sum x, sum x^2; sum dy, sum dy x) and two elementwise loops (y; dx), each its own
fusion: XLA:CPU fuses no sibling reductions, so the statistics read x twice and the backward sums read dy twice,
ten arrays in all where eight are needed. Where x is larger than the last-level cache the statistics are taken in
one scan over cache-sized blocks (``models.normalization._blocked_sums``, nine arrays; the row
``batchnorm_statistics_two_passes_vs_blocked_*`` times it); the same scan over the two backward sums is no faster
than the two reductions, which run on both cores where the scan's small reductions run on one, and one variadic
``lax.reduce``, a complex sum or a concatenated operand is slower still (``batchnorm_backward_sums_*``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks.harness import side_by_side
from benchmarks.roofline import copies, place, rates
from models.normalization import (
    STATISTICS_BLOCK_BYTES,
    BatchNorm,
    _backward_from_stats,
    _batch_statistics,
    _blocked_sums,
    _dx_from_sums,
    _takes_blocks,
    last_level_cache_bytes,
    rows_per_block,
)

SIZES = ((64, 32, 32, 64), (128, 32, 32, 128))
LEAST_READS, LEAST_WRITES = 6, 2  # arrays of x's size, forward + backward (the module docstring's count)


def _apply(module: nnx.Module):
    graph, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(v, q):
        return nnx.merge(graph, q, rest, copy=True)(v)

    return apply, params


def forward_backward(module: nnx.Module):
    """A pure function (x, params, dy) -> (y, dx, dparams) for ``module`` in training mode."""
    apply, params = _apply(module)

    def step(x, p, dy):
        y, pullback = jax.vjp(apply, x, p)
        return (y, *pullback(dy))

    return step, params


def vjp_residuals(module: nnx.Module, x: jax.Array) -> list[jax.ShapeDtypeStruct]:
    """Shapes and dtypes of what ``jax.vjp`` of ``module`` (training mode) at ``x`` keeps for the backward pass:
    the array leaves of the VJP function it returns (abstractly evaluated, nothing is computed). In a network,
    these stay alive from the layer's forward pass until its backward pass; x itself counts when it is kept."""
    apply, params = _apply(module)
    return jax.eval_shape(lambda v, q: jax.tree.leaves(jax.vjp(apply, v, q)[1]), x, params)


def residual_bytes(module: nnx.Module, x: jax.Array) -> int:
    """The total size of ``vjp_residuals(module, x)`` in bytes."""
    return sum(r.size * r.dtype.itemsize for r in vjp_residuals(module, x))


def run() -> list[dict]:
    results = []
    for shape in SIZES:
        c = shape[-1]
        kx, kd = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, shape, jnp.float32) * 2.0 + 1.0
        dy = jax.random.normal(kd, shape, jnp.float32)
        flax_bn, ours = nnx.BatchNorm(c, rngs=nnx.Rngs(params=0)), BatchNorm(c, rngs=nnx.Rngs(params=0))
        residuals = {
            "baseline_residual_bytes": residual_bytes(flax_bn, x),
            "candidate_residual_bytes": residual_bytes(ours, x),
            "x_bytes": x.size * x.dtype.itemsize,
        }
        autodiff, params = forward_backward(flax_bn)
        closed, _ = forward_backward(ours)
        row = side_by_side(
            f"batchnorm_forward_backward_{'x'.join(map(str, shape))}",
            ("nnx.BatchNorm + jax.vjp (autodiff)", autodiff),
            ("models.normalization.BatchNorm (custom_vjp closed form)", closed),
            (x, params, dy),
            unit_note="seconds per forward+backward (y, dx, dscale, dbias), float32 NHWC, median of 15 alternating "
            "runs",
            extra={"shape": list(shape), "dtype": "float32", **residuals}, companions=copies(x.nbytes),
        )  # fmt: skip
        measured = rates(row["extra"], x.nbytes)
        for side in ("baseline", "candidate"):
            row["extra"].update(place(row[f"{side}_s"], (LEAST_READS + LEAST_WRITES) * x.nbytes, measured,
                                      row["extra"][f"{side}_xla_flops"], None, prefix=f"{side}_"))  # fmt: skip
        row["extra"].update(measured)
        results.append(row)
        results.append(_statistics_in_one_pass(x))
        results.append(_where_the_time_goes(x, dy))
    results.append(_two_sums_in_one_pass(x, dy))
    return results


def _where_the_time_goes(x: jax.Array, dy: jax.Array) -> dict:
    """The closed form's passes, each compiled and timed on its own in the same rounds (companions): the
    forward's statistics (the kernel's own ``_batch_statistics``), y, the backward's two sums, dx; and the whole
    forward + backward. The row's two sides set the rates a pass can reach on this machine: a reduction that
    reads x once (``sum x`` over N, H, W, an XLA reduction) against the copy (x + 1 into a new array: one read,
    one write). ``extra``: each pass's median, the arrays of x's size it reads and writes, and its bytes moved per
    second; the sum of the passes' medians against the whole program's (above 1: XLA runs independent passes side
    by side). The counts are XLA:CPU's (its optimised HLO: every reduction its own pass over memory, so the
    statistics read x twice where x fits in the cache and the backward sums read dy twice); on another backend,
    which may fuse sibling reductions, they and the rates are None."""
    axes, c = (0, 1, 2), x.shape[-1]
    # gamma and beta are arguments, not constants XLA could fold into the loops.
    gamma, beta = jnp.full(c, 1.5, x.dtype), jnp.full(c, 0.25, x.dtype)
    mean, var = _batch_statistics(x, axes)
    inv_std = jax.lax.rsqrt(var + 1e-5)
    shape = (1, 1, 1, c)
    sums = [v.reshape(shape) for v in _backward_from_stats(x, mean, inv_std, gamma, dy, axes)[:0:-1]]  # dbeta, dgamma

    def compiled(f, *args):
        return jax.jit(f).lower(*args).compile(), args

    passes = {  # name: (compiled call, its arguments, arrays of x's size read, written); a reduction is a pass
        "statistics": (*compiled(lambda a: _batch_statistics(a, axes), x), 1 if _takes_blocks(x, axes) else 2, 0),
        "y": (*compiled(lambda a, m, s, g, b: (a - m) * (s * g.reshape(shape)) + b.reshape(shape), x, mean,
                        inv_std, gamma, beta), 1, 1),
        # Two reductions, each its own pass: dy, then dy and x.
        "backward_sums": (*compiled(lambda a, d: (jnp.sum(d, axes), jnp.sum(d * a, axes)), x, dy), 3, 0),
        "dx": (*compiled(lambda a, d, m, s, w, b, g: _dx_from_sums(a, d, m, s, w, b, g, axes), x, dy, mean, inv_std,
                         gamma, *sums), 2, 1),
    }
    closed, params = forward_backward(BatchNorm(c, rngs=nnx.Rngs(params=0)))
    whole = jax.jit(closed).lower(x, params, dy).compile()
    companions = {name: (lambda f=f, a=a: f(*a)) for name, (f, a, _, _) in passes.items()}
    companions["whole"] = lambda: whole(x, params, dy)
    row = side_by_side(
        f"batchnorm_where_the_time_goes_{'x'.join(map(str, x.shape))}",
        ("sum x over N, H, W (an XLA reduction: one read of x)", lambda a: jnp.sum(a, axes)),
        ("x + 1 into a new array (the copy: one read, one write)", lambda a: a + 1.0),
        (x,), runs=15, warmup=3, companions=companions,
        unit_note="seconds per call, float32 NHWC, median of 15 alternating runs; the closed form's passes "
        "(companions, extra) timed in the same rounds",
    )  # fmt: skip
    extra = row["extra"]
    extra["array_bytes"] = float(x.nbytes)
    extra["reduction_read_bytes_per_s"] = x.nbytes / row["baseline_s"]
    extra["copy_bytes_per_s"] = 2 * x.nbytes / row["candidate_s"]
    counted = jax.default_backend() == "cpu"
    for name, (_, _, reads, writes) in passes.items():
        extra[f"{name}_arrays_read_written"] = [reads, writes] if counted else None
        extra[f"{name}_bytes_per_s"] = (reads + writes) * x.nbytes / extra[f"{name}_s"] if counted else None
    extra["passes_sum_over_whole"] = sum(extra[f"{name}_s"] for name in passes) / extra["whole_s"]
    return row


def _statistics_in_one_pass(x: jax.Array) -> dict:
    """The forward's statistics (sum x, sum x^2 over N, H, W) as two reductions, against one scan over blocks of
    ``STATISTICS_BLOCK_BYTES`` (``models.normalization._blocked_sums``), which reads x from memory once. ``used``
    (extra): whether the kernel takes the blocked path at this size on this machine (x larger than the last-level
    cache)."""
    axes, rows = (0, 1, 2), rows_per_block(x, 3, STATISTICS_BLOCK_BYTES)
    return side_by_side(
        f"batchnorm_statistics_two_passes_vs_blocked_{'x'.join(map(str, x.shape))}",
        ("sum x and sum x^2, two reductions", lambda a: (jnp.sum(a, axes), jnp.sum(a * a, axes))),
        (f"one scan over blocks of {rows} rows", lambda a: _blocked_sums(a, 3, rows)),
        (x,), runs=9, warmup=2,
        unit_note="seconds per call, float32 NHWC, median of 9 alternating runs",
        extra={"used": _takes_blocks(x, axes), "x_bytes": x.nbytes, "block_rows": rows,
               "last_level_cache_bytes": last_level_cache_bytes()},
    )  # fmt: skip


def _two_sums_in_one_pass(x: jax.Array, dy: jax.Array) -> dict:
    """The backward's two sums (sum dy, sum dy x over N, H, W) as two reductions, as the kernel computes them,
    against the ways of asking XLA for both in one pass: one variadic ``lax.reduce`` (the candidate), and, timed
    in the same rounds, the two packed into one complex sum and into one reduction of a concatenated operand."""
    axes, c = (0, 1, 2), x.shape[-1]
    zero = jnp.zeros((), x.dtype)

    def variadic(a, d):
        return jax.lax.reduce((d, d * a), (zero, zero), lambda p, q: (p[0] + q[0], p[1] + q[1]), axes)

    packed = jax.jit(lambda a, d: jnp.sum(jax.lax.complex(d, d * a), axes)).lower(x, dy).compile()
    stacked = jax.jit(lambda a, d: jnp.sum(jnp.concatenate([d.reshape(-1, c), (d * a).reshape(-1, c)], 1), 0))
    stacked = stacked.lower(x, dy).compile()
    return side_by_side(
        f"batchnorm_backward_sums_two_passes_vs_one_{'x'.join(map(str, x.shape))}",
        ("sum dy and sum dy x, two reductions", lambda a, d: (jnp.sum(d, axes), jnp.sum(d * a, axes))),
        ("one variadic lax.reduce of (dy, dy x)", variadic),
        (x, dy), runs=7, warmup=1,
        unit_note="seconds per call, float32 NHWC, median of 7 alternating runs; complex_sum_s and "
        "concatenated_sum_s (extra): the two other one-pass forms, timed in the same rounds",
        companions={"complex_sum": lambda: packed(x, dy), "concatenated_sum": lambda: stacked(x, dy)},
    )  # fmt: skip
