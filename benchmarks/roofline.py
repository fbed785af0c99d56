"""The roofline of the machine a benchmark runs on, measured in the same run, and where a kernel sits on it.

Two memory figures, both on an array of the size the kernel moves, under the benchmarks' allocator
(``benchmarks/allocator.py``: freed memory is kept, so a new array is not page-faulted in again):

* the **copy bandwidth**: ``x + 1`` into a *new* array, one read and one write per element. This is the roof
  of a kernel whose outputs are new arrays, as every output of a jitted function is: a write into memory that is
  not in the cache first reads the line (write-allocate), for the copy and the kernel alike. A kernel's
  fraction of it is ``least bytes / time / copy bandwidth``, the figure the kernels' targets are set in.
* the **in-place bandwidth**: ``x + 1`` into its own (donated) buffer, pages mapped and lines read anyway: no
  write-allocate read, the roof of a kernel that updated its operands in place.

With write-allocate the copy moves three arrays' worth for the two it is counted as, so a kernel that reads R
arrays and writes W can reach up to 1.5 (R + W) / (R + 2W) of the copy bandwidth (1.5 when it only reads).

Both copies are timed in the same alternating rounds as the kernels they are compared with (the
``companions`` of ``harness.side_by_side``), so that a roof sees the same load as the kernel on a shared
machine. A kernel's **least bytes** are what it must read and write at the least (the bench module says how it
counts them). For compute-bound kernels, the **peak FLOP/s** is that of a large float32 matmul measured in the
same run.
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
    """Copy and in-place bandwidth from the companion times in ``extra`` (see :func:`copies`)."""
    in_place_s, fresh_s = extra[f"{prefix}streaming_copy_s"], extra[f"{prefix}fresh_copy_s"]
    return {
        "array_bytes": float(nbytes),
        "copy_bandwidth_bytes_per_s": 2 * nbytes / fresh_s,
        "in_place_bandwidth_bytes_per_s": 2 * nbytes / in_place_s,
    }


def memory_rates(nbytes: int, runs: int = RUNS) -> dict[str, float]:
    """Copy and in-place bandwidth on their own, the two copies timed alternately."""
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


def place(seconds: float, least_bytes: float, rates: dict[str, float], flops: float | None = None,
          peak: float | None = None, prefix: str = "") -> dict[str, float | None]:  # fmt: skip
    """A kernel's figures on the roofline: its least bytes, its fraction of the copy bandwidth and of the
    in-place bandwidth, and (given ``flops`` and ``peak``) of the compute roof."""
    return {
        f"{prefix}least_bytes": float(least_bytes),
        f"{prefix}bandwidth_fraction": least_bytes / seconds / rates["copy_bandwidth_bytes_per_s"],
        f"{prefix}in_place_fraction": least_bytes / seconds / rates["in_place_bandwidth_bytes_per_s"],
        f"{prefix}compute_fraction": (flops / seconds / peak) if flops and peak else None,
    }
