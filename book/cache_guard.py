"""Clear the jupyter-cache when the code the pages import has changed.

jupyter-cache keys a page on its cells only, so an edit under derivations/ or models/ (or of the annotated
notes) would otherwise leave stale outputs. The hash is the report's source hash plus the annotations.
It also creates the cache's database, so that the parallel build's workers do not race to create it.
Run before `sphinx-build`: `python book/cache_guard.py`.
"""

import hashlib
import shutil
from pathlib import Path

from derivations.runner import source_hash

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "book" / "_build"
CACHE = BUILD / ".jupyter_cache"
# Sphinx re-reads only pages whose source changed, so a cleared cache alone would not re-execute anything:
# drop the pickled environment too (sphinx-build's default doctree folder for book/_build/html).
DOCTREES = BUILD / "html" / ".doctrees"
HASH_FILE = BUILD / ".source-hash"


def pages_hash() -> str:
    """The claims' source hash plus the annotated notes' data, which the notes pages read."""
    digest = hashlib.sha256(source_hash().encode())
    for path in sorted((ROOT / "derivations" / "annotations").glob("*")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def create_cache_database() -> None:
    """Create the jupyter-cache database now, before `sphinx -j auto` starts: its parallel workers would each
    find it missing and create its tables at the same time (sqlite3: "table settings already exists")."""
    from jupyter_cache import get_cache

    CACHE.mkdir(parents=True, exist_ok=True)
    get_cache(CACHE).db  # noqa: B018  (the property creates the database file and its tables)


def main() -> None:
    current = pages_hash()
    if HASH_FILE.is_file() and HASH_FILE.read_text().strip() == current:
        print("cache_guard: sources unchanged, notebook cache kept")
    else:
        for folder in (CACHE, DOCTREES):
            shutil.rmtree(folder, ignore_errors=True)
        BUILD.mkdir(parents=True, exist_ok=True)
        HASH_FILE.write_text(current + "\n")
        print("cache_guard: sources changed, notebook cache cleared")
    create_cache_database()


if __name__ == "__main__":
    main()
