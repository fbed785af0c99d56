"""The chapters of the workbook, in reading order. A chapter is the module ``derivations.<name>``."""

import importlib

CHAPTERS: tuple[str, ...] = ("activations",)


def load(name: str) -> None:
    """Import one chapter module, which registers its claims and derivations."""
    if name not in CHAPTERS:
        raise ValueError(f"unknown chapter {name!r}; valid chapters: {', '.join(CHAPTERS)}")
    importlib.import_module(f"derivations.{name}")


def load_all() -> None:
    for name in CHAPTERS:
        load(name)
