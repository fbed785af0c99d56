"""The whole ledger (`workbook check`), wall clock: one worker against one worker per core with the
compilation cache filled, and a cold run (an empty `WORKBOOK_JAX_CACHE`) against a warm one, each a fresh
process as a user runs it. Issue 17's targets: <= 60 s cold and <= 20 s warm on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(jobs: int, cache: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WORKBOOK_JAX_CACHE": cache, "COLUMNS": "120"}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "derivations", "check", "--jobs", str(jobs), "--json",
                               str(Path(tmp) / "r.json")], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"workbook check failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def run() -> list[dict]:
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as cache:
        cold = _check(cores, cache)
        warm = _check(cores, cache)
        serial = _check(1, cache)
    rows = [
        {"name": "ledger: cold compilation cache vs filled", "baseline": "empty WORKBOOK_JAX_CACHE",
         "candidate": "the same cache, filled by the first run", "baseline_s": cold, "candidate_s": warm},
        {"name": f"ledger: 1 worker vs {cores} (filled cache)", "baseline": "--jobs 1",
         "candidate": f"--jobs {cores}", "baseline_s": serial, "candidate_s": warm},
    ]
    for row in rows:
        row.update(ratio=row["baseline_s"] / row["candidate_s"], unit_note="seconds of one `workbook check`, "
                   "process start to exit, one run each", extra={"cores": cores})
    return rows
