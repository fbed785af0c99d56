"""Sphinx configuration for the DL Derivation Workbook (myst-nb pages executed at build time)."""

import os
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path.insert(0, str(BOOK / "_ext"))

# Notebook kernels inherit this environment: JAX on CPU in float64 without XLA log noise, and
# `import derivations` works from a plain checkout.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONPATH", str(ROOT))
# All pages of a build read one report of the claims (derivations.runner.current_report), made for the
# same sources by `make report` / `workbook check` before the build.

project = "DL Derivation Workbook"
author = "DL Derivation Workbook authors"

extensions = [
    "myst_nb",
    # sphinx-mathjax-offline (its module has a hyphenated name) copies MathJax 3 into _static/mathjax and
    # points mathjax_path there, so no page loads math from a CDN; _ext/mathjax_offline.py declares it
    # safe for a parallel build.
    "mathjax_offline",
    # Papers' and libraries' statements that a verdict rests on are cited on the page: {cite}`key`.
    "sphinxcontrib.bibtex",
    # Plumbing cells (calls of derivations.pages) shown without their source; long code folded.
    "workbook_cells",
]
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"
mathjax_path = "mathjax/tex-chtml.js"
# Without noundefined an unknown macro is a TeX error (mjx-merror) that check_browser.py reports,
# instead of red text that looks typeset.
mathjax3_config = {"tex": {"packages": {"[-]": ["noundefined"]}}}

exclude_patterns = ["_build", "README.md", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]

nb_execution_mode = "cache"
nb_execution_cache_path = str(BOOK / "_build" / ".jupyter_cache")
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True
# Cells emit sympy.latex inside Markdown; the default "commonmark" leaves $...$ untouched (and the page
# body is marked mathjax_ignore), so parse outputs as MyST to get dollarmath.
nb_render_markdown_format = "myst"

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["workbook.css"]
html_js_files = ["ledger.js", "quiz.js"]
html_title = project
# pydata-sphinx-theme seeds the mode with "" on a first visit and then logs a console error about it;
# an explicit default keeps the console clean.
html_context = {"default_mode": "auto"}
html_theme_options = {
    "use_download_button": False,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
}
