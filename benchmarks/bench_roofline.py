"""The machine's memory roofline on the arrays the kernels move (32 and 64 MiB), and its compute roof: ``x + 1``
into a new array against ``x + 1`` into its own buffer (the ratio is what first-touch page faults cost a kernel
that returns a new array), and the FLOP/s of a float32 matmul (``benchmarks/roofline.py``)."""

from __future__ import annotations

from benchmarks.roofline import memory_rates, peak_flops

SIZES = {"16MiB": 1 << 24, "32MiB": 1 << 25, "64MiB": 1 << 26}


def run() -> list[dict]:
    peak = peak_flops()
    rows = []
    for label, nbytes in SIZES.items():
        rates = memory_rates(nbytes)
        fresh_s = 2 * nbytes / rates["fresh_copy_bandwidth_bytes_per_s"]
        streaming_s = 2 * nbytes / rates["streaming_bandwidth_bytes_per_s"]
        rows.append({
            "name": f"roofline_copy_{label}", "baseline": "x + 1 into a new array",
            "candidate": "x + 1 into its own (donated) buffer", "baseline_s": fresh_s, "candidate_s": streaming_s,
            "ratio": fresh_s / streaming_s,
            "unit_note": "seconds per copy (one read, one write per element), float32, median of 9 alternating runs",
            "extra": {**rates, "peak_flops_per_s": peak, "matmul": "2048 x 2048 float32"},
        })  # fmt: skip
    return rows
