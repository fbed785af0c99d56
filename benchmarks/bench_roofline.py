"""The machine's memory roofline on the arrays the kernels move (16 to 64 MiB), and its compute roof: ``x + 1``
into a new array (the copy bandwidth) against ``x + 1`` into its own buffer (the in-place bandwidth), and the
FLOP/s of a float32 matmul (``benchmarks/roofline.py``). The copy into a new 64 MiB array is also timed in a child
process under the C library's default allocator: what ``benchmarks/allocator.py`` takes out of every figure."""

from __future__ import annotations

import json
import subprocess
import sys

import jax

from benchmarks import allocator
from benchmarks.roofline import memory_rates, peak_flops

SIZES = {"16MiB": 1 << 24, "32MiB": 1 << 25, "64MiB": 1 << 26}


def run() -> list[dict]:
    peak = peak_flops()
    rows = []
    for label, nbytes in SIZES.items():
        rates = memory_rates(nbytes)
        fresh_s = 2 * nbytes / rates["copy_bandwidth_bytes_per_s"]
        streaming_s = 2 * nbytes / rates["in_place_bandwidth_bytes_per_s"]
        rows.append({
            "name": f"roofline_copy_{label}", "baseline": "x + 1 into a new array",
            "candidate": "x + 1 into its own (donated) buffer", "baseline_s": fresh_s, "candidate_s": streaming_s,
            "ratio": fresh_s / streaming_s,
            "unit_note": "seconds per copy (one read, one write per element), float32, median of 9 alternating runs",
            "extra": {**rates, "peak_flops_per_s": peak, "matmul": "2048 x 2048 float32"},
        })  # fmt: skip
    if jax.default_backend() == "cpu" and allocator.in_force():  # what the settings change: host memory, glibc
        rows.append(_default_allocator(SIZES["64MiB"], rows[-1]["extra"]))
    return rows


def _default_allocator(nbytes: int, kept: dict) -> dict:
    """A new 64 MiB array under the default allocator (a child process) against one under the kept-memory
    settings (this process): what first touch costs when the memory goes back to the system."""
    code = f"import json; from benchmarks.roofline import memory_rates; print(json.dumps(memory_rates({nbytes})))"
    env = {**allocator.default_environment(), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the default-allocator copy failed:\n{done.stderr[-2000:]}")
    default = json.loads(done.stdout.strip().splitlines()[-1])
    fresh_default = 2 * nbytes / default["copy_bandwidth_bytes_per_s"]
    fresh_kept = 2 * nbytes / kept["copy_bandwidth_bytes_per_s"]
    return {
        "name": "roofline_default_allocator_first_touch_64MiB",
        "baseline": "x + 1 into a new array, the C library's default allocator (child process)",
        "candidate": f"x + 1 into a new array, {allocator.description()}",
        "baseline_s": fresh_default, "candidate_s": fresh_kept, "ratio": fresh_default / fresh_kept,
        "unit_note": "seconds per copy (one read, one write per element), float32, median of 9 alternating runs",
        "extra": {"default": default, "kept_memory": kept},
    }  # fmt: skip
