"""The DL Derivation Workbook: interview-note claims derived in SymPy and settled by execution.

Importing the package switches JAX to float64 (every comparison here is a float64 comparison) and turns
on JAX's persistent compilation cache, so a second run of the checks or the tests does not recompile.
Set ``WORKBOOK_JAX_CACHE=""`` to turn the cache off, or to a folder to move it.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

_cache_dir = os.environ.get(
    "WORKBOOK_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "dl-derivation-workbook", "jax")
)
if _cache_dir:
    jax.config.update("jax_compilation_cache_dir", _cache_dir)
    # The workbook's programs are small: most compile in well under JAX's default 1 s threshold.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
