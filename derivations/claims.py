"""Claims, their evidence, and the registry that holds every claim and derivation of every chapter.

A claim is one statement from the interview notes (``says``), the verdict the workbook records for it
(``expected``: ``holds``, ``qualified`` or ``refuted``) and a ``check`` that computes :class:`Evidence`,
whose ``verdict`` is what the check observed. A claim passes when the observed verdict equals the
expected one; a refuted note is a passing claim whose check demonstrates the refutation.

Chapter modules register with two decorators::

    @derivation
    def sigmoid_derivative() -> sympy.Expr: ...

    @claim("activations/sigmoid-derivative-is-s-times-one-minus-s", sources=["S001-11"],
           says="sigmoid'(z) = sigmoid(z)(1 - sigmoid(z))", expected="holds")
    def _sigmoid_identity() -> Evidence: ...
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

Verdict = Literal["holds", "qualified", "refuted"]
Method = Literal["symbolic", "autodiff", "measurement"]
VERDICTS: tuple[Verdict, ...] = ("holds", "qualified", "refuted")
METHODS: tuple[Method, ...] = ("symbolic", "autodiff", "measurement")

_CLAIM_ID = re.compile(r"^[a-z][a-z0-9_]*/[a-z0-9][a-z0-9-]*$")
_SEED_ID = re.compile(r"^S00\d-\d\d$")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a check computed.

    ``max_abs_err``/``max_rel_err`` are ``None`` where nothing numeric was compared; ``samples`` counts
    the points (or Monte-Carlo draws, or configurations) behind the numbers; ``details`` holds the
    check's own figures (JSON-serialisable); ``summary`` is one sentence for tables.
    """

    verdict: Verdict
    method: Method
    summary: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    samples: int | None = None
    dtype: str | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One statement of the notes, the verdict recorded for it, and the check that settles it."""

    id: str
    sources: tuple[str, ...]
    says: str
    expected: Verdict
    check: Callable[[], Evidence]
    correction: str | None = None
    tolerance: str | None = None

    @property
    def chapter(self) -> str:
        return self.id.split("/", 1)[0]


@dataclasses.dataclass(frozen=True)
class Derivation:
    """A function of a chapter that returns SymPy objects: a step of the chapter's derivations."""

    chapter: str
    name: str
    title: str
    func: Callable[[], Any]


_CLAIMS: dict[str, Claim] = {}
_DERIVATIONS: dict[str, list[Derivation]] = {}


def _chapter_of(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def register(new: Claim) -> Claim:
    """Validate a claim and add it to the registry (ids are unique and read as ``chapter/slug``)."""
    if not _CLAIM_ID.match(new.id):
        raise ValueError(f"claim id {new.id!r} must read 'chapter/slug' (lowercase, digits, hyphens)")
    if new.id in _CLAIMS:
        raise ValueError(f"claim id {new.id!r} is registered twice")
    if not new.sources or not all(_SEED_ID.match(s) for s in new.sources):
        raise ValueError(f"claim {new.id!r}: sources must be seed ids like 'S001-06', got {new.sources!r}")
    if new.expected not in VERDICTS:
        raise ValueError(f"claim {new.id!r}: expected must be one of {VERDICTS}, got {new.expected!r}")
    if (new.expected != "holds") != bool(new.correction):
        raise ValueError(f"claim {new.id!r}: a correction is required exactly when expected is not 'holds'")
    _CLAIMS[new.id] = new
    return new


def claim(
    id: str,
    *,
    sources: list[str] | tuple[str, ...],
    says: str,
    expected: Verdict,
    correction: str | None = None,
    tolerance: str | None = None,
) -> Callable[[Callable[[], Evidence]], Callable[[], Evidence]]:
    """Decorator: register the decorated function as the check of a claim."""

    def decorate(check: Callable[[], Evidence]) -> Callable[[], Evidence]:
        # `python -m derivations.<chapter>` runs a second copy of the module as __main__; the copy
        # imported under its real name is the one that registers.
        if check.__module__ != "__main__":
            register(Claim(id, tuple(sources), says, expected, check, correction, tolerance))
        return check

    return decorate


def derivation(func: Callable[[], Any]) -> Callable[[], Any]:
    """Decorator: list a chapter function that returns SymPy objects among the chapter's derivations."""
    if func.__module__ != "__main__":
        title = (func.__doc__ or func.__name__).strip().splitlines()[0]
        chapter = _chapter_of(func.__module__)
        _DERIVATIONS.setdefault(chapter, []).append(Derivation(chapter, func.__name__, title, func))
    return func


def all_claims() -> list[Claim]:
    """Every registered claim, chapters in reading order, claims in definition order."""
    from derivations.chapters import load_all

    load_all()
    return _ordered(_CLAIMS.values())


def claims_for(names: list[str] | tuple[str, ...] = ()) -> list[Claim]:
    """The claims named by chapter names and/or claim ids (all claims when ``names`` is empty).

    Only the chapters named are imported, so one chapter can be checked while another is broken.
    """
    from derivations.chapters import CHAPTERS, load

    if not names:
        return all_claims()
    chosen: list[Claim] = []
    for name in names:
        chapter = name.split("/", 1)[0]
        if chapter not in CHAPTERS:
            what = f"claim id {name!r}" if "/" in name else f"chapter {name!r}"
            raise ValueError(f"unknown {what}; {_valid_names()}")
        load(chapter)
        if "/" in name:
            if name not in _CLAIMS:
                raise ValueError(f"unknown claim id {name!r}; see `workbook show {chapter}` for its claims")
            picked = [_CLAIMS[name]]
        else:
            picked = [c for c in _ordered(_CLAIMS.values()) if c.chapter == name]
        chosen.extend(c for c in picked if c not in chosen)
    return chosen


def _ordered(claims) -> list[Claim]:
    from derivations.chapters import CHAPTERS

    order = {name: i for i, name in enumerate(CHAPTERS)}
    return sorted(claims, key=lambda c: order.get(c.chapter, len(order)))


def derivations_for(chapter: str) -> list[Derivation]:
    """The derivations of one chapter, in definition order."""
    from derivations.chapters import CHAPTERS, load

    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; {_valid_names()}")
    load(chapter)
    return list(_DERIVATIONS.get(chapter, []))


def _valid_names() -> str:
    from derivations.chapters import CHAPTERS

    return "valid chapters: " + ", ".join(CHAPTERS) + " (or a claim id 'chapter/slug', see `list`)"
