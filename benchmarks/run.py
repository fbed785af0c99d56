"""Run every ``benchmarks/bench_*.py`` module (each has ``run() -> list[dict]``) and write the results file
``benchmarks/results/<backend>.json``. Usage: ``python -m benchmarks.run [NAME ...]`` (module names without
``bench_``; all by default)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from benchmarks import allocator
from benchmarks.harness import write_results

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    names = (argv if argv is not None else sys.argv[1:]) or available
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    allocator.reexec_with_kept_memory("benchmarks.run", names)
    print(f"allocator: {allocator.description()}")
    for name in names:  # each module's rows are written when it ends: a later failure keeps them
        results = importlib.import_module(f"benchmarks.bench_{name}").run()
        for r in results:
            extra = r["extra"]
            print(f"{r['name']}: {r['baseline_s'] * 1e3:.2f} ms / {r['candidate_s'] * 1e3:.2f} ms, "
                  f"ratio {r['ratio']:.2f}; temp bytes {extra.get('baseline_temp_bytes')} / "
                  f"{extra.get('candidate_temp_bytes')}")  # fmt: skip
        print(f"wrote {write_results(results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
