"""Running claims and collecting the report whose JSON form is the workbook's contract (design.md)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from derivations.claims import VERDICTS, Claim, Evidence

REPORT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Result:
    """One claim after its check ran: the evidence, or the error text when the check raised."""

    claim: Claim
    evidence: Evidence | None
    seconds: float
    error: str | None = None

    @property
    def verdict(self) -> str | None:
        return self.evidence.verdict if self.evidence else None

    @property
    def ok(self) -> bool:
        return self.error is None and self.verdict == self.claim.expected

    def as_dict(self) -> dict[str, Any]:
        """One entry of the report's ``claims`` list."""
        ev = self.evidence
        return {
            "id": self.claim.id,
            "chapter": self.claim.chapter,
            "sources": list(self.claim.sources),
            "says": self.claim.says,
            "expected": self.claim.expected,
            "verdict": self.verdict,
            "ok": self.ok,
            "method": ev.method if ev else None,
            "max_abs_err": _number(ev.max_abs_err) if ev else None,
            "max_rel_err": _number(ev.max_rel_err) if ev else None,
            "samples": ev.samples if ev else None,
            "dtype": ev.dtype if ev else None,
            "seconds": round(self.seconds, 4),
            "summary": ev.summary if ev else None,
            "details": _jsonable(dict(ev.details)) if ev else {},
            "correction": self.claim.correction,
            "tolerance": self.claim.tolerance,
            "error": self.error,
        }


@dataclasses.dataclass(frozen=True)
class Report:
    results: list[Result]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def summary(self) -> dict[str, Any]:
        return summarize([r.as_dict() for r in self.results])

    def as_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "claims": [r.as_dict() for r in self.results],
            "summary": self.summary,
        }

    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's ``summary`` for a list of its ``claims`` entries."""
    return {
        "claims": len(entries),
        "ok": sum(e["ok"] for e in entries),
        "failed": sum(not e["ok"] for e in entries),
        **{v: sum(e["verdict"] == v for e in entries) for v in VERDICTS},
        "seconds": round(sum(e["seconds"] for e in entries), 4),
    }


def run_claim(claim: Claim) -> Result:
    """Run one check. A check that raises is a failed claim carrying its error text, not a crash."""
    start = time.perf_counter()
    try:
        evidence = claim.check()
        if not isinstance(evidence, Evidence):
            raise TypeError(f"check returned {type(evidence).__name__}, not Evidence")
    except Exception as exc:
        return Result(claim, None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    return Result(claim, evidence, time.perf_counter() - start)


def run_claims(claims: Iterable[Claim], on_result: Callable[[Result], None] | None = None) -> Report:
    """Run every claim in order; ``on_result`` sees each result as it arrives (for progress bars)."""
    results = []
    for c in claims:
        result = run_claim(c)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return Report(results)


def _number(x: float | None) -> float | None:
    """A float for JSON: non-finite values become None (strict JSON has no inf or NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic) or hasattr(value, "__array__"):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    return str(value)
