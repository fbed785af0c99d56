"""Performance figures, measured side by side in one process: ``python -m benchmarks.run`` runs every
``bench_*.py`` module here and writes ``benchmarks/results/<backend>.json`` (the contract is in design.md)."""
