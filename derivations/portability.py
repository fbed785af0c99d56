"""Do the verdicts depend on the CPU? ``python -m derivations.portability`` (``make portability``).

Floating-point results move in their last bits from one CPU to another: XLA:CPU picks its vector
instructions for the machine it runs on (AVX-512 here, AVX2 or SSE there), and with them the order of a
sum's additions. A finding that compares two computations bit for bit, or a threshold that a value meets by
an ulp, can hold on the machine that wrote it and fail on the one that runs CI. This runs every claim once per
configuration below (``workbook check --json``, in a child process each) and compares, claim by claim, the
verdict, whether it passed, its error and whether each finding held. Figures (errors, sums) may differ in
their last bits and are only counted.

The configurations are XLA's instruction-set ceilings (``--xla_cpu_max_isa``) with the workbook's quick
compile and with XLA's defaults (``WORKBOOK_FAST_COMPILE=0``), which fuse and vectorise differently. A ceiling
above the machine's own instruction set is the machine's own: on an AVX2 machine ``native`` and ``avx2`` are one.

Exit code 0: every configuration gives the same verdicts and findings as the first and every claim passes;
1: an outcome differs (each difference printed), a claim fails or a run did not finish; 2: a usage error.
It is not part of ``make test`` (five runs of the ledger, about 7 minutes on 2 cores); run it before a change
to a check lands. On an AVX-512 machine XLA prefers 256-bit vectors, so ``avx2`` is close to ``native``, yet not
the same: 17 claims' figures differ between the two here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import derivations

ROOT = Path(__file__).resolve().parent.parent

# name -> environment added to the child's
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "native": {"WORKBOOK_FAST_COMPILE": "1"},
    "native-xla-defaults": {"WORKBOOK_FAST_COMPILE": "0"},
    "avx2": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "WORKBOOK_FAST_COMPILE": "1"},
    "avx": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX", "WORKBOOK_FAST_COMPILE": "1"},
    "sse4.2-xla-defaults": {"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2", "WORKBOOK_FAST_COMPILE": "0"},
}


def environment(configuration: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``base`` (this process's), with the configuration's variables, and XLA_FLAGS
    without the quick-compile flags (importing ``derivations`` adds them to a process's XLA_FLAGS, and a child
    would inherit them; the child adds them itself unless ``WORKBOOK_FAST_COMPILE=0``) followed by the
    configuration's flags."""
    base = dict(os.environ if base is None else base)
    quick = {flag.split("=")[0] for flag in derivations.QUICK_COMPILE_FLAGS}
    kept = [f for f in base.get("XLA_FLAGS", "").split() if f.split("=")[0] not in quick]
    env = {**base, **configuration}
    flags = " ".join(kept + configuration.get("XLA_FLAGS", "").split())
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    return env


def outcome(entry: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the CPU: a claim's verdict, pass, error, and each finding's role and result."""
    return {
        "verdict": entry["verdict"],
        "ok": entry["ok"],
        "error": entry.get("error"),
        "findings": [(f["proposition"], f["role"], f["held"]) for f in entry.get("findings") or []],
    }


def differences(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """One line per claim (or displayed equation) whose outcome in ``other`` is not its outcome in ``reference``."""
    def verified(report: dict[str, Any]) -> dict[tuple, bool]:
        return {(d["chapter"], d["derivation"], d["index"]): d["ok"] for d in report["derivations"]}

    claims = [{e["id"]: outcome(e) for e in report["claims"]} for report in (reference, other)]
    return (_keyed_differences(*claims, str, _outcome_change)
            + _keyed_differences(verified(reference), verified(other), lambda key: f"displayed {key}",
                                 lambda a, b: f"verified {a} -> {b}"))


def _keyed_differences(mine: dict, theirs: dict, name: Any, change: Any) -> list[str]:
    """A line for each key on one side only, and ``change(a, b)`` for each key whose values differ."""
    lines = []
    for key in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None:
            lines.append(f"{name(key)}: {'missing' if b is None else 'only here'}")
        elif a != b:
            lines.append(f"{name(key)}: {change(a, b)}")
    return lines


def _outcome_change(a: dict[str, Any], b: dict[str, Any]) -> str:
    parts = [f"{k} {a[k]!r} -> {b[k]!r}" for k in ("verdict", "ok", "error") if a[k] != b[k]]
    for (prop, role, held), (_, _, now) in zip(a["findings"], b["findings"], strict=False):
        if held != now:
            parts.append(f"{role} finding '{prop}' {held} -> {now}")
    if len(a["findings"]) != len(b["findings"]) or (not parts and a["findings"] != b["findings"]):
        parts.append(f"findings {a['findings']} -> {b['findings']}")
    return "; ".join(parts)


def figures_moved(reference: dict[str, Any], other: dict[str, Any]) -> int:
    """Claims whose figures (not their outcome) differ: last-bit changes, expected across CPUs. Everything in the
    entry but its time counts (the findings' figures, the aggregated errors, the details)."""
    def figures(entry: dict[str, Any]) -> Any:
        return {k: v for k, v in entry.items() if k != "seconds"}
    theirs = {e["id"]: e for e in other["claims"]}
    return sum(e["id"] in theirs and figures(e) != figures(theirs[e["id"]]) for e in reference["claims"])


def run(names: list[str], configurations: list[str], jobs: int | None) -> int:
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in configurations:
            path = Path(folder) / f"{len(reports)}.json"
            env = environment(CONFIGURATIONS[name])
            # The chapters named, never none: a run of the whole ledger replaces the stored report that the book
            # and the tests read (book/_build/claims.json), and this one is made under another configuration.
            command = [sys.executable, "-m", "derivations", "check", *names, "--json", str(path)]
            if jobs is not None:
                command += ["--jobs", str(jobs)]
            print(f"{name}: {' '.join(f'{k}={v}' for k, v in CONFIGURATIONS[name].items()) or 'as is'}", flush=True)
            subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
            try:
                reports[name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                print(f"  no report: `workbook check` did not finish under {name}", file=sys.stderr)
                return 1
    first, *others = configurations
    reference = reports[first]
    failed = False
    for name in others:
        lines = differences(reference, reports[name])
        moved = figures_moved(reference, reports[name])
        print(f"{name} against {first}: {len(reference['claims'])} claims, {len(lines)} outcome(s) differ; "
              f"{moved} claim(s) with figures that differ (last bits)")
        for line in lines:
            print(f"  {line}")
        failed |= bool(lines)
    not_passing = [n for n, r in reports.items() if r["summary"]["failed"] or r["summary"]["equations_unchecked"]]
    for name in not_passing:
        s = reports[name]["summary"]
        print(f"{name}: {s['failed']} claim(s) failed, {s['equations_unchecked']} displayed equation(s) unchecked")
    return 1 if failed or not_passing else 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, not argparse's usage block
        raise ValueError(message)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m derivations.portability", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="CHAPTER|CLAIM-ID", help="what to run (default: every claim)")
    parser.add_argument("--only", action="append", choices=list(CONFIGURATIONS), metavar="CONFIGURATION",
                        help="run this configuration (repeatable; the first is the reference); default: all: "
                             + ", ".join(CONFIGURATIONS))  # fmt: skip
    parser.add_argument("--jobs", type=int, metavar="N", help="worker processes per run (default: one per core)")
    try:
        args = parser.parse_args(argv)
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        configurations = list(dict.fromkeys(args.only or CONFIGURATIONS))
        if len(configurations) < 2:
            raise ValueError("--only needs two configurations or more: the first is compared with the others")
        from derivations.chapters import CHAPTERS
        from derivations.claims import claims_for

        claims_for(args.names)  # raises ValueError on an unknown name, before any run
    except ValueError as exc:
        print(f"portability: error: {exc}", file=sys.stderr)
        return 2
    return run(args.names or list(CHAPTERS), configurations, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
