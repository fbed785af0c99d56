"""The roofline of the machine a benchmark runs on, measured in the same run, and where a kernel sits on it.

Two memory figures, both on an array of the size the kernel moves:

* the **streaming bandwidth**: ``x + 1`` written into its own (donated) buffer, one read and one write per
  element, pages already mapped. No kernel moves its bytes faster; the roofline's slanted line.
* the **first-touch cost**: ``x + 1`` into a *new* array, minus the streaming time, per byte written. A
  kernel that returns a new array pays it on every call where the allocator hands back memory the operating
  system must map and zero again (on Linux/glibc: any buffer past the mmap threshold, 32 MiB at most, is
  returned to the system when freed and faulted in again, one 4 KiB page at a time, when next written).

Both copies are timed in the same alternating rounds as the kernels they are compared with (the
``companions`` of ``harness.side_by_side``), so that a roof sees the same load as the kernel on a shared
machine. A kernel's **least bytes** are what it must read and write at the least (the bench module says how it counts
them); its fraction of the roofline is ``least bytes / time / streaming bandwidth``, and its fraction of the
*allocation-aware* roof is ``(least bytes / streaming bandwidth + fresh output bytes x first-touch cost) / time``.
For compute-bound kernels, the **peak FLOP/s** is that of a large float32 matmul measured in the same run.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp

RUNS = 9


def _median_time(f, args, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@functools.cache
def copies(nbytes: int, prefix: str = "") -> dict[str, object]:
    """Two calls with no arguments on a float32 array of ``nbytes``, for ``side_by_side(companions=...)``:
    ``fresh_copy`` (x + 1 into a new array) and ``streaming_copy`` (x + 1 into its own, donated buffer),
    their names after ``prefix``."""
    x = jnp.arange(nbytes // 4, dtype=jnp.float32)
    fresh = jax.jit(lambda v: v + 1.0).lower(x).compile()
    in_place = jax.jit(lambda v: v + 1.0, donate_argnums=0).lower(x).compile()
    state = {"buffer": x + 0.0}

    def streaming():
        state["buffer"] = in_place(state["buffer"])
        return state["buffer"]

    return {f"{prefix}fresh_copy": lambda: fresh(x), f"{prefix}streaming_copy": streaming}


def rates(extra: dict, nbytes: int, prefix: str = "") -> dict[str, float]:
    """Streaming bandwidth and first-touch cost from the companion times in ``extra`` (see :func:`copies`)."""
    streaming_s, fresh_s = extra[f"{prefix}streaming_copy_s"], extra[f"{prefix}fresh_copy_s"]
    return {
        "array_bytes": float(nbytes),
        "streaming_bandwidth_bytes_per_s": 2 * nbytes / streaming_s,
        "fresh_copy_bandwidth_bytes_per_s": 2 * nbytes / fresh_s,
        "first_touch_s_per_byte": max(fresh_s - streaming_s, 0.0) / nbytes,
    }


def memory_rates(nbytes: int, runs: int = RUNS) -> dict[str, float]:
    """Streaming bandwidth and first-touch cost on their own, the two copies timed alternately."""
    calls = copies(nbytes)
    for call in calls.values():
        jax.block_until_ready(call())
    times = {name: [] for name in calls}
    for k in range(runs):
        for name in list(calls) if k % 2 == 0 else list(calls)[::-1]:
            start = time.perf_counter()
            jax.block_until_ready(calls[name]())
            times[name].append(time.perf_counter() - start)
    return rates({f"{name}_s": statistics.median(t) for name, t in times.items()}, nbytes)


def peak_flops(n: int = 2048, runs: int = 5) -> float:
    """FLOP/s of an n x n float32 matmul (2 n^3 flops): the compute roof of this run."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda p, q: p @ q).lower(a, a).compile()
    jax.block_until_ready(matmul(a, a))
    return 2 * n**3 / _median_time(matmul, (a, a), runs)


def place(seconds: float, least_bytes: float, fresh_output_bytes: float, rates: dict[str, float],
          flops: float | None = None, peak: float | None = None, prefix: str = "") -> dict[str, float | None]:
    """A kernel's figures on the roofline: its least bytes, its fraction of the streaming bandwidth, of the
    allocation-aware roof, and (given ``flops`` and ``peak``) of the compute roof."""  # fmt: skip
    beta = rates["streaming_bandwidth_bytes_per_s"]
    roof_s = least_bytes / beta + fresh_output_bytes * rates["first_touch_s_per_byte"]
    return {
        f"{prefix}least_bytes": float(least_bytes),
        f"{prefix}fresh_output_bytes": float(fresh_output_bytes),
        f"{prefix}bandwidth_fraction": least_bytes / seconds / beta,
        f"{prefix}allocation_aware_fraction": roof_s / seconds,
        f"{prefix}compute_fraction": (flops / seconds / peak) if flops and peak else None,
    }
