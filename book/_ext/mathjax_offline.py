"""``sphinx-mathjax-offline`` (MathJax 3 copied into the site, so no page loads math from a CDN), declared safe
for a parallel build (``sphinx -j``): all it does is set ``mathjax_path`` and copy MathJax's files into the
output once the build has finished. The package itself declares nothing, and Sphinx then refuses ``-j``."""

import importlib
from typing import Any


def setup(app: Any) -> dict[str, bool]:
    importlib.import_module("sphinx-mathjax-offline").setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
