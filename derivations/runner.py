"""Running claims and collecting the report whose JSON form is the workbook's contract (design.md).

One report per source state: :func:`current_report` returns the report of every claim for the sources as
they are now (a hash of ``derivations/``, ``models/`` and ``pyproject.toml``), reading the stored report
when it was made from the same sources and running the claims (in parallel worker processes) only when
there is none. ``workbook check``, the book's pages and the test that every claim passes all go through
it, so one ``make run`` or ``make test`` runs every claim once.

A chapter's claims run in one worker, in definition order, followed by the verification of the equations
its derivations display (:mod:`derivations.displayed`) against the SymPy objects those claims evaluated.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import gc
import hashlib
import json
import math
import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from derivations.claims import VERDICTS, Claim, Evidence

REPORT_VERSION = 3
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPORT = ROOT / "book" / "_build" / "claims.json"


@dataclasses.dataclass(frozen=True)
class Result:
    """One claim after its check ran: the evidence, or the error text when the check raised."""

    claim: Claim
    evidence: Evidence | None
    seconds: float
    backend: str
    error: str | None = None

    @property
    def verdict(self) -> str | None:
        return self.evidence.verdict if self.evidence else None

    @property
    def expected(self) -> str | None:
        return self.claim.expected_on(self.backend)

    @property
    def ok(self) -> bool:
        return self.error is None and self.verdict == self.expected

    def as_dict(self) -> dict[str, Any]:
        """One entry of the report's ``claims`` list."""
        ev = self.evidence
        return {
            "id": self.claim.id,
            "chapter": self.claim.chapter,
            "sources": list(self.claim.sources),
            "says": self.claim.says,
            "expected": self.expected,
            "expected_by_backend": None if isinstance(self.claim.expected, str) else dict(self.claim.expected),
            "backend": self.backend,
            "verdict": self.verdict,
            "ok": self.ok,
            "method": ev.method if ev else None,
            "max_abs_err": _number(ev.max_abs_err) if ev else None,
            "max_rel_err": _number(ev.max_rel_err) if ev else None,
            "samples": ev.samples if ev else None,
            "dtype": ev.dtype if ev else None,
            "seconds": round(self.seconds, 4),
            "summary": ev.summary if ev else None,
            "findings": [
                {"proposition": f.proposition, "role": f.role, "held": f.held, "figures": _jsonable(dict(f.figures))}
                for f in ev.findings
            ] if ev else [],
            "details": _jsonable(dict(ev.details)) if ev else {},
            "scope": _jsonable(dict(self.claim.scope)),
            "correction": self.claim.correction,
            "tolerance": self.claim.tolerance.as_dict(),
            "error": self.error,
        }


def run_claim(claim: Claim) -> Result:
    """Run one check. A check that raises is a failed claim carrying its error text, not a crash."""
    import jax

    backend = jax.default_backend()
    start = time.perf_counter()
    try:
        evidence = claim.run_check()
        if not isinstance(evidence, Evidence):
            raise TypeError(f"check returned {type(evidence).__name__}, not Evidence")
    except Exception as exc:
        return Result(claim, None, time.perf_counter() - start, backend, f"{type(exc).__name__}: {exc}")
    return Result(claim, evidence, time.perf_counter() - start, backend)


def run_chapter(chapter: str, ids: Sequence[str] | None = None,
                on_claim: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run a chapter's claims (all, or the ``ids`` given) in order; after a full chapter, verify the
    equations its derivations display. Returns ``{"claims": [entries], "derivations": [checks]}``."""
    from derivations import bridge, displayed
    from derivations.claims import claims_for

    bridge.forget_evaluated()
    chosen = claims_for([chapter]) if ids is None else claims_for(list(ids))
    entries = []
    for claim in chosen:
        entry = run_claim(claim).as_dict()
        entries.append(entry)
        if on_claim is not None:
            on_claim(entry)
    checks = [] if ids is not None else [d.as_dict() for d in displayed.verify_chapter(chapter, bridge.evaluated())]
    return {"claims": entries, "derivations": checks}


_PROGRESS: Any = None  # in a worker process: the queue that carries (claim id, ok) to the parent as claims end


def _start_worker(progress: Any) -> None:
    global _PROGRESS
    _PROGRESS = progress
    # A worker ends holding SymPy's caches and JAX's programs: millions of objects that the interpreter's last
    # garbage collection would walk one by one (1-4 s per worker, measured). The objects die with the process
    # anyway; freezing them first leaves that collection almost nothing to walk.
    atexit.register(gc.freeze)


def _worker(chapter: str, ids: list[str] | None) -> dict[str, Any]:
    return run_chapter(chapter, ids, on_claim=lambda e: _PROGRESS.put((e["id"], e["ok"])))


def run(names: Sequence[str] = (), *, jobs: int | None = None,
        on_claim: Callable[[str, bool], None] | None = None) -> dict[str, Any]:
    """The report of the claims named by chapter names and/or claim ids (all when ``names`` is empty).

    With ``jobs`` > 1 the chapters run in that many worker processes, the slowest first; the report lists
    them in reading order whatever the finishing order. ``on_claim(id, ok)`` sees each claim as it ends.
    """
    from derivations.chapters import CHAPTERS
    from derivations.claims import claims_for

    plan = _plan(claims_for(list(names)), names)
    jobs = max(1, min(jobs or default_jobs(), len(plan)))
    results: dict[str, dict[str, Any]] = {}
    if jobs == 1:
        for chapter, ids in plan.items():
            results[chapter] = run_chapter(chapter, ids, on_claim=lambda e: on_claim and on_claim(e["id"], e["ok"]))
    else:
        context = multiprocessing.get_context("spawn")  # JAX is not fork-safe once it has started threads
        progress = context.Queue()
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_start_worker, initargs=(progress,)
        ) as pool:
            order = sorted(plan, key=lambda ch: -_cost(ch))
            futures = {pool.submit(_worker, ch, plan[ch]): ch for ch in order}
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(pending, timeout=0.2)
                _drain(progress, on_claim)
                for future in done:
                    results[futures[future]] = future.result()
        _drain(progress, on_claim)  # the workers have exited, so what they put on the queue has arrived
        progress.close()
    chapters = [ch for ch in CHAPTERS if ch in results]
    entries = [e for ch in chapters for e in results[ch]["claims"]]
    checks = [d for ch in chapters for d in results[ch]["derivations"]]
    import jax

    return {
        "version": REPORT_VERSION,
        "sources": source_hash(),
        "backend": jax.default_backend(),
        "complete": not names,
        "claims": entries,
        "derivations": checks,
        "summary": summarize(entries, checks),
    }


def _drain(progress: Any, on_claim: Callable[[str, bool], None] | None) -> None:
    while True:
        try:
            claim_id, ok = progress.get_nowait()
        except queue.Empty:
            return
        if on_claim is not None:
            on_claim(claim_id, ok)


def _plan(claims: list[Claim], names: Sequence[str]) -> dict[str, list[str] | None]:
    """Chapter -> the claim ids to run there (None: the whole chapter, derivations verified too)."""
    whole = {n for n in names if "/" not in n} if names else {c.chapter for c in claims}
    plan: dict[str, list[str] | None] = {}
    for c in claims:
        if c.chapter in whole:
            plan[c.chapter] = None
        else:
            plan.setdefault(c.chapter, []).append(c.id)  # type: ignore[union-attr]
    return plan


def _cost(chapter: str) -> float:
    """A chapter's expected run time: its seconds in the stored report, else its source size."""
    try:
        stored = json.loads(DEFAULT_REPORT.read_text(encoding="utf-8"))
        return sum(e["seconds"] for e in stored["claims"] if e["chapter"] == chapter)
    except (OSError, ValueError, KeyError):
        path = ROOT / "derivations" / "ledger" / f"{chapter}.py"
        return float(path.stat().st_size) / 1e4 if path.is_file() else 0.0


def default_jobs() -> int:
    """One worker per core available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def summarize(entries: list[dict[str, Any]], checks: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """The report's ``summary`` for its ``claims`` entries and displayed-equation checks."""
    return {
        "claims": len(entries),
        "ok": sum(e["ok"] for e in entries),
        "failed": sum(not e["ok"] for e in entries),
        **{v: sum(e["verdict"] == v for e in entries) for v in VERDICTS},
        "equations": len(checks),
        "equations_unchecked": sum(not d["ok"] for d in checks),
        "seconds": round(sum(e["seconds"] for e in entries), 4),
    }


def report_ok(report: dict[str, Any]) -> bool:
    s = report["summary"]
    return s["failed"] == 0 and s["equations_unchecked"] == 0


def source_hash() -> str:
    """SHA-256 over the path and bytes of every ``*.py`` in ``derivations/`` and ``models/``, of
    ``pyproject.toml`` (a dependency change can change results too) and of the committed benchmark results
    that claims read (``benchmarks/results/*.json``)."""
    digest = hashlib.sha256()
    files = sorted(p for package in ("derivations", "models") for p in (ROOT / package).rglob("*.py"))
    files += sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    for path in [*files, ROOT / "pyproject.toml"]:
        if path.is_file():
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stored_report(path: Path = DEFAULT_REPORT) -> dict[str, Any] | None:
    """The stored full report when it was made from the current sources on this backend, else None."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    import jax

    fresh = (report.get("version") == REPORT_VERSION and report.get("complete")
             and report.get("sources") == source_hash() and report.get("backend") == jax.default_backend())
    return report if fresh else None


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two processes may write the same report
    tmp.write_text(dumps(report), encoding="utf-8")
    tmp.replace(path)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def current_report(*, jobs: int | None = None, path: Path = DEFAULT_REPORT) -> dict[str, Any]:
    """The full report for the current sources: stored, or run now (and stored) when there is none."""
    report = stored_report(path)
    if report is None:
        report = run(jobs=jobs)
        write_report(report, path)
    return report


def _number(x: float | None) -> float | None:
    """A float for JSON: non-finite values become None (strict JSON has no inf or NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic) or hasattr(value, "__array__"):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    return str(value)


if __name__ == "__main__":
    current = current_report()
    print(f"report {DEFAULT_REPORT}: {current['summary']['claims']} claims, {current['summary']['failed']} failed")
    raise SystemExit(0 if report_ok(current) else 1)
