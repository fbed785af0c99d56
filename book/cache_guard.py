"""Clear the jupyter-cache when the code the pages import has changed.

jupyter-cache keys a page on its cells only, so an edit under derivations/ or models/ would otherwise
leave stale outputs. The hash is the one the pages key their shared claim results on.
Run before `sphinx-build`: `python book/cache_guard.py`.
"""

import shutil
from pathlib import Path

from derivations.pages import source_hash

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "book" / "_build"
CACHE = BUILD / ".jupyter_cache"
# Sphinx re-reads only pages whose source changed, so a cleared cache alone would not re-execute anything:
# drop the pickled environment too (sphinx-build's default doctree folder for book/_build/html).
DOCTREES = BUILD / "html" / ".doctrees"
HASH_FILE = BUILD / ".source-hash"


def main() -> None:
    current = source_hash()
    if HASH_FILE.is_file() and HASH_FILE.read_text().strip() == current:
        print("cache_guard: sources unchanged, notebook cache kept")
        return
    for folder in (CACHE, DOCTREES):
        shutil.rmtree(folder, ignore_errors=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    HASH_FILE.write_text(current + "\n")
    print("cache_guard: sources changed, notebook cache cleared")


if __name__ == "__main__":
    main()
