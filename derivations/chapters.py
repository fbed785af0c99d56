"""The chapters of the workbook. A chapter is a library module ``derivations/<name>.py`` (its formulas,
derivations, validated public functions and measuring helpers; importing it registers no claim) and its
claims in ``derivations/ledger/<name>.py`` (and ``ledger/<name>__n<note>.py``, claims found while annotating
a note). Adding the library module adds the chapter, placed by
``READING_ORDER``."""

import importlib
from pathlib import Path

READING_ORDER: tuple[str, ...] = (
    "activations", "losses", "backprop", "normalization", "dropout", "pooling", "conv_arithmetic",
    "architectures", "networks", "init", "gradient_flow", "regularization", "optimizers", "schedules", "batching",
    "data", "statistics", "beyond", "performance",
)  # fmt: skip
_HERE = Path(__file__).resolve().parent
CHAPTERS: tuple[str, ...] = tuple(name for name in READING_ORDER if (_HERE / f"{name}.py").is_file())


def load(name: str) -> None:
    """Import one chapter: its library, and its claims, which register themselves."""
    if name not in CHAPTERS:
        raise ValueError(f"unknown chapter {name!r}; valid chapters: {', '.join(CHAPTERS)}")
    importlib.import_module(f"derivations.{name}")
    if (_HERE / "ledger" / f"{name}.py").is_file():
        importlib.import_module(f"derivations.ledger.{name}")
    # Claims found while annotating a note live beside the chapter's own: ledger/<chapter>__n<note>.py.
    for extra in sorted((_HERE / "ledger").glob(f"{name}__*.py")):
        importlib.import_module(f"derivations.ledger.{extra.stem}")


def load_all() -> None:
    for name in CHAPTERS:
        load(name)
