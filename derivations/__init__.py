"""The DL Derivation Workbook: interview-note claims derived in SymPy and settled by execution.

Importing the package switches JAX to float64 (every comparison here is a float64 comparison) and turns
on JAX's persistent compilation cache, so a second run of the checks or the tests does not recompile.
SymPy's decisions (``derivations.bridge``: which rewrite proves an identity) are kept beside it, in
``sympy-decisions/``. Set ``WORKBOOK_JAX_CACHE=""`` to turn both off, or to a folder to move them.

It also asks XLA for quick compiles: the claims run thousands of small programs once each, so on a CPU
compiling them costs far more than running them. ``--xla_backend_optimization_level=0`` (no LLVM
optimisation passes) and ``--xla_cpu_use_fusion_emitters=false`` cut a small program's compile about 4x
on the 2-core reference machine and the ledger's cold run about 1.5x. The few programs that run for seconds
(training loops, deep stacks over many draws) run about 2x slower so, and ask for XLA's optimisations back
(``models.OPTIMISED``). Results agree with XLA's defaults to rounding, not bit for bit: the two settings'
code differs in its last bits (the skip-connection grid's first-over-last ratios at depth 50, up to 7e-14
relative). Set ``WORKBOOK_FAST_COMPILE=0`` for XLA's defaults. ``benchmarks/``,
which measures speed, does not import this package and compiles with XLA's defaults.
"""

import os

# Read by XLA when JAX first starts a backend, so it must be set before any array exists.
QUICK_COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
if os.environ.get("WORKBOOK_FAST_COMPILE", "1") != "0":
    _flags = os.environ.get("XLA_FLAGS", "").split()
    _named = {flag.split("=")[0] for flag in _flags}
    os.environ["XLA_FLAGS"] = " ".join(_flags + [f for f in QUICK_COMPILE_FLAGS if f.split("=")[0] not in _named])

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

_cache_dir = os.environ.get(
    "WORKBOOK_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "dl-derivation-workbook", "jax")
)
CACHE_DIR = _cache_dir  # JAX's compiled programs, and SymPy's decisions under sympy-decisions/ (derivations.bridge)
if _cache_dir:
    jax.config.update("jax_compilation_cache_dir", _cache_dir)
    # The workbook's programs are small: most compile in well under JAX's default 1 s threshold.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
