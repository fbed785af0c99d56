"""Every equation a page shows is checked: each object a ``@derivation`` returns is either an object that a
claim of its chapter evaluated (its fingerprint was recorded by :mod:`derivations.bridge`) or an identity
verified here, when the claims run.

An item of a derivation (a list or tuple is taken item by item) is verified when

* it is itself an object a claim evaluated; or
* it is a relation (``Eq``, ``Le``, ...) that holds after ``doit()``: SymPy reduces ``lhs - rhs`` to 0, or
  both sides, evaluated at random points of the symbols' domains (30 digits), satisfy it; or
* it is a relation one side of which is a name (a symbol, ``Derivative(y, w)``, a matrix symbol, or its
  absolute value) and the other side, not a bare number, is an object a claim evaluated: the display of
  a definition. (A claim that passes the equation itself to ``bridge.value``/``to_jax``/``instantiate``
  records the equation, which covers ``Eq(name, number)`` too; ``value`` and ``instantiate`` then evaluate a
  left-hand side that is a formula rather than a name at the same values, and fail when it disagrees.
  ``to_jax`` evaluates the right-hand side only, so it records such an equation's right-hand side alone, and
  the relation is verified here like any other.)

Anything else is reported as unchecked, and an unchecked item fails the run like a failing claim.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Iterable
from typing import Any

import sympy as sp
from sympy.core.relational import Relational

from derivations.bridge import _rational_draw as _draw
from derivations.bridge import definitions, fingerprint, is_name, kept_decision, reduces_to_zero, vanishes
from derivations.claims import derivations_for

POINTS = 8
DIGITS = 30
_ZERO = sp.Float(10) ** -20  # relative size of lhs - rhs counted as 0 at 30 digits
_SOURCE = hashlib.sha256(open(__file__, "rb").read()).hexdigest()  # noqa: SIM115  (in the kept decisions' keys)


@dataclasses.dataclass(frozen=True)
class DisplayCheck:
    """One displayed item of a derivation and how it was verified (``how`` is None when it was not)."""

    chapter: str
    derivation: str
    index: int
    text: str
    how: str | None
    latex: str = ""  # what the page typesets: the book shows the verified item from the report, not a re-derivation

    @property
    def ok(self) -> bool:
        return self.how is not None

    def as_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "derivation": self.derivation, "index": self.index, "item": self.text,
                "latex": self.latex, "verified_by": self.how, "ok": self.ok}


def items(value: Any) -> list[Any]:
    """The displayed items of a derivation's return value, in order."""
    if isinstance(value, list | tuple):
        return [item for v in value for item in items(v)]
    return [value]


def verify_chapter(chapter: str, evaluated: Iterable[str]) -> list[DisplayCheck]:
    """Verify every displayed item of a chapter's derivations against the fingerprints its claims recorded."""
    seen = frozenset(evaluated)
    out = []
    for step in derivations_for(chapter):
        for index, item in enumerate(items(step.func())):
            out.append(DisplayCheck(chapter, step.name, index, _text(item), how_verified(item, seen), sp.latex(item)))
    return out


def how_verified(item: Any, evaluated: frozenset[str]) -> str | None:
    """How a displayed item is verified, or None when it is not (see the module docstring)."""
    if not isinstance(item, sp.Basic | sp.MatrixBase):
        return None
    if isinstance(item, Relational):
        # A matrix named with another shape than its value's: the name's shape is not typeset, so no page shows
        # it, and a claim that evaluated the equation through its value would not notice it either.
        shapes = [side.shape if isinstance(side, sp.MatrixBase | sp.MatrixExpr) else None
                  for side in (item.lhs, item.rhs)]
        if None not in shapes and shapes[0] != shapes[1]:
            return None
    if fingerprint(item) in evaluated:
        return "evaluated by a claim"
    if not isinstance(item, Relational):
        return None
    sides = [side for side in (item.lhs, item.rhs) if not is_name(side)]
    # A definition (an equation one side of which names a quantity: y, eta(t), dL/dw) is verified by the claim
    # that evaluated its other side; SymPy cannot prove it (the name is not defined to it), so it is not asked
    # to. An inequality with a name on one side is still checked by _holds first. A bare number
    # (0, 36928) matches any 0 a claim evaluated: such a definition counts only when the equation itself was
    # evaluated (bridge.value(eq) records it).
    definition = len(sides) == 1 and not getattr(sides[0], "is_number", False) and fingerprint(sides[0]) in evaluated
    if definition and isinstance(item, sp.Equality):
        return "a definition whose right-hand side a claim evaluated"
    try:
        proof = _holds(item)
    except (TypeError, ValueError, AttributeError, NotImplementedError):  # lhs - rhs undefined (a set, a shape)
        proof = None
    return proof or ("a definition whose right-hand side a claim evaluated" if definition else None)


def _holds(relation: Relational) -> str | None:
    try:
        lhs, rhs = relation.lhs.doit(), relation.rhs.doit()
    except Exception:  # a display SymPy cannot evaluate is not verified this way
        return None
    if isinstance(relation, sp.Equality) and _small(lhs) and _small(rhs):
        difference = lhs - rhs
        if isinstance(difference, sp.MatrixBase):
            if difference.is_zero_matrix:
                return "identity proved by SymPy after doit()"
        # The claims' own decisions (bridge): together-then-expand first; simplify only where no sampled point
        # refutes the equation (on a wrong formula it can run for minutes). Both are kept on disk, so a second
        # run reads them.
        elif reduces_to_zero(difference, quick_only=True) or vanishes(difference):
            return "identity proved by SymPy after doit()"
    # Keyed on both sides after doit() (what is evaluated) and on the code of any function class in them.
    key = ("displayed, numerically", _SOURCE, POINTS, DIGITS, type(relation).__name__, sp.srepr(lhs), sp.srepr(rhs),
           definitions(lhs, rhs))
    return kept_decision(key, lambda: _numerically(relation, lhs, rhs))


def _points(lhs: Any, rhs: Any) -> list[dict] | None:
    """``POINTS`` random points of the two sides' symbols (the same points on every call), or None when a
    free symbol is not a plain Symbol (an indexed name, a matrix symbol)."""
    symbols = sorted(_free(lhs) | _free(rhs), key=str)
    if any(not isinstance(s, sp.Symbol) for s in symbols):
        return None
    rng = random.Random(0)
    return [{s: _draw(s, rng) for s in symbols} for _ in range(POINTS)]


def _small(expr: Any) -> bool:
    return sp.count_ops(expr) <= 400 if isinstance(expr, sp.Basic) else True


def _numerically(relation: Relational, lhs: Any, rhs: Any) -> str | None:
    """Both sides at ``POINTS`` random points of the symbols' domains, to ``DIGITS`` digits."""
    points = _points(lhs, rhs)
    if points is None:
        return None
    for point in points:
        if isinstance(relation, sp.Equality):
            gap, scale = _magnitude(lhs - rhs, point), _magnitude(rhs, point)
            if gap is None or scale is None or gap > _ZERO * max(scale, sp.Float(1)):
                return None
        else:
            left, right = _magnitude(lhs, point, signed=True), _magnitude(rhs, point, signed=True)
            if left is None or right is None or not bool(relation.func(left, right)):
                return None
    return f"holds at {POINTS} random points ({DIGITS} digits)" if points[0] else "holds (evaluated exactly)"


def _free(expr: Any) -> set:
    return set(expr.free_symbols) if hasattr(expr, "free_symbols") else set()


def _magnitude(expr: Any, point: dict, *, signed: bool = False) -> Any:
    """|expr| at ``point`` (a matrix's Frobenius norm), or its real value when ``signed``; None when it is
    not a finite real number there (a pole, a log of a negative number, an unevaluated placeholder)."""
    try:
        if isinstance(expr, sp.MatrixBase):
            if signed:
                return None
            values = [sp.N(e.subs(point), DIGITS) for e in expr]
            if not all(v.is_number and v.is_real and not v.has(sp.zoo, sp.nan, sp.oo, -sp.oo) for v in values):
                return None
            return sp.sqrt(sum(v**2 for v in values))
        number = sp.N(sp.sympify(expr).subs(point), DIGITS)
    except Exception:  # SymPy cannot evaluate it there: not decided here
        return None
    if not number.is_number or number.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or not number.is_real:
        return None
    return number if signed else abs(number)


def _text(item: Any) -> str:
    text = str(item)
    return text if len(text) <= 160 else text[:157] + "..."
