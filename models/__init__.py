"""Flax NNX implementations of what the workbook's derivations talk about.

Plain Flax and JAX, usable without SymPy: ``models`` never imports ``derivations``.
"""

# ``compiler_options`` of ``jax.jit`` for the few programs that run for seconds (training loops, deep stacks over
# many draws): XLA's own optimisation settings. The workbook's derivations turn them down for every other program,
# which compiles 4x faster that way (derivations/__init__.py); these run about 2x faster with them (a 50-layer,
# 64-wide float64 ReLU stack over 32 draws: 0.68 s -> 0.30 s) and compile no slower. Where XLA's defaults are in
# force (benchmarks/, a plain import of models), they change nothing.
OPTIMISED = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}
