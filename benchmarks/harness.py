"""A small timing harness: a baseline and a candidate, compiled by XLA, timed alternately in one process
after warm-up (median of several runs), with XLA's own temporary-memory figure for each; and the writer
of ``benchmarks/results/<backend>.json`` in design.md's contract.

Times are wall-clock seconds of one call of the compiled function including ``block_until_ready``.
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from benchmarks import allocator

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def compiled(f: Callable, *args: Any) -> jax.stages.Compiled:
    """``jit(f)`` lowered and compiled for ``args`` (compile time is never timed)."""
    return jax.jit(f).lower(*args).compile()


def cost(executable: jax.stages.Compiled) -> dict[str, float | None]:
    """XLA's cost model of a compiled program: ``flops`` and ``bytes accessed`` (None where unreported)."""
    analysis = executable.cost_analysis()
    analysis = (analysis[0] if isinstance(analysis, list) else analysis) or {}
    return {"flops": analysis.get("flops"), "bytes": analysis.get("bytes accessed")}


def temp_bytes(executable: jax.stages.Compiled) -> int | None:
    """XLA's temporary (scratch) allocation of a compiled program, in bytes; None where unreported."""
    analysis = executable.memory_analysis()
    return None if analysis is None else int(analysis.temp_size_in_bytes)


def _time_once(executable: jax.stages.Compiled, args: Sequence[Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(executable(*args))
    return time.perf_counter() - start


def side_by_side(
    name: str,
    baseline: tuple[str, Callable],
    candidate: tuple[str, Callable],
    args: Sequence[Any],
    *,
    runs: int = 15,
    warmup: int = 3,
    unit_note: str = "seconds per call, median",
    extra: dict | None = None,
    companions: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, Any]:
    """Time ``baseline`` and ``candidate`` on the same ``args``: both compiled, ``warmup`` calls each, then
    ``runs`` rounds in which each is called once, alternating which goes first. ``ratio`` is
    baseline_s / candidate_s (above 1: the candidate is faster). ``companions`` (name -> a call with no
    arguments, e.g. the copies of ``benchmarks/roofline.py``) are timed in the same rounds, so that a roof
    measured with them sees the same load as the two sides; their medians go in ``extra`` as ``<name>_s``."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    (base_name, base_f), (cand_name, cand_f) = baseline, candidate
    base_exe, cand_exe = compiled(base_f, *args), compiled(cand_f, *args)
    companions = companions or {}
    for _ in range(warmup):
        _time_once(base_exe, args)
        _time_once(cand_exe, args)
    for call in companions.values():
        jax.block_until_ready(call())
    base_times, cand_times = [], []
    companion_times = {name: [] for name in companions}
    for k in range(runs):
        order = [(base_exe, base_times), (cand_exe, cand_times)]
        for exe, times in order if k % 2 == 0 else order[::-1]:
            times.append(_time_once(exe, args))
        for companion, call in companions.items():
            start = time.perf_counter()
            jax.block_until_ready(call())
            companion_times[companion].append(time.perf_counter() - start)
    base_s, cand_s = statistics.median(base_times), statistics.median(cand_times)
    base_temp, cand_temp = temp_bytes(base_exe), temp_bytes(cand_exe)
    base_cost, cand_cost = cost(base_exe), cost(cand_exe)
    return {
        "name": name,
        "baseline": base_name,
        "candidate": cand_name,
        "baseline_s": base_s,
        "candidate_s": cand_s,
        "ratio": base_s / cand_s,
        "unit_note": unit_note,
        "extra": {
            "runs": runs,
            "warmup": warmup,
            "baseline_temp_bytes": base_temp,
            "candidate_temp_bytes": cand_temp,
            "temp_ratio": (cand_temp / base_temp) if base_temp and cand_temp is not None else None,
            "baseline_xla_flops": base_cost["flops"],
            "candidate_xla_flops": cand_cost["flops"],
            "baseline_xla_bytes": base_cost["bytes"],
            "candidate_xla_bytes": cand_cost["bytes"],
            **{f"{companion}_s": statistics.median(times) for companion, times in companion_times.items()},
            **(extra or {}),
        },
    }


def backend() -> str:
    """``cpu``, ``gpu`` or ``tpu``: the name of the results file."""
    return jax.default_backend()


def write_results(results: Sequence[dict[str, Any]], directory: Path = RESULTS_DIR) -> Path:
    """Merge ``results`` by ``name`` into ``directory/<backend>.json`` (entries of other names are kept)."""
    path = Path(directory) / f"{backend()}.json"
    old = json.loads(path.read_text(encoding="utf-8"))["results"] if path.is_file() else []
    merged = {r["name"]: r for r in old}
    merged.update({r["name"]: {**r, "allocator": allocator.description()} for r in results})
    document = {
        "backend": backend(),
        "device": jax.devices()[0].device_kind,
        "jax_version": jax.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "results": sorted(merged.values(), key=lambda r: r["name"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path
