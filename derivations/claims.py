"""Claims, the findings their checks return, and the registry that holds every claim and derivation.

A claim is one statement from the interview notes (``says``), the **scope** in which the note means it
(data: which inputs, sizes, depths, learning rates, conventions), the verdict the workbook records for it
(``expected``) and a ``check`` that probes the scope and returns :class:`Evidence`: a list of
:class:`Finding`, each one tested proposition with its figures and its role. The engine computes the
verdict from the findings, never the check:

* every finding holds                                    -> ``holds``
* every ``core`` finding holds, some ``scope`` one fails -> ``qualified``
* a ``core`` finding fails                               -> ``refuted``
* a ``premise`` finding fails                            -> ``invalid`` (the claim fails, whatever is recorded)

A premise is what the check itself rests on (the measuring apparatus agrees with an independent count, a
reference implementation matches its library): when it fails, the other findings mean nothing, so a refuted
claim cannot stay green on a broken measurement.

A claim passes when the computed verdict equals the recorded one; a refuted note is a passing claim whose
check demonstrates the refutation. Chapter modules register with two decorators::

    @derivation
    def sigmoid_derivative() -> sympy.Eq: ...

    @claim("activations/sigmoid-derivative-is-s-times-one-minus-s", sources=["S001-11"],
           says="...", expected="holds", scope={"z": [-1000, 1000]})
    def _sigmoid_identity(scope, rtol) -> Evidence: ...

A check may take any of the keyword parameters ``scope``, ``rtol`` and ``atol``; the engine passes the
claim's own values, so the scope and the tolerance are written once, on the claim.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

Verdict = Literal["holds", "qualified", "refuted"]
Method = Literal["symbolic", "autodiff", "measurement"]
Role = Literal["core", "scope", "premise"]
VERDICTS: tuple[Verdict, ...] = ("holds", "qualified", "refuted")
METHODS: tuple[Method, ...] = ("symbolic", "autodiff", "measurement")
ROLES: tuple[Role, ...] = ("core", "scope", "premise")
INVALID = "invalid"  # the verdict of evidence whose premise failed: never a recorded verdict, so the claim fails
RTOL = 1e-10  # the workbook's standard for smooth symbolic-vs-autodiff comparisons (design.md)
CHECK_PARAMETERS = ("scope", "rtol", "atol")

_CLAIM_ID = re.compile(r"^[a-z][a-z0-9_]*/[a-z0-9][a-z0-9-]*$")
_SEED_ID = re.compile(r"^S00\d-\d\d$")
# Figures the engine aggregates over findings; every other figure is reported as the check wrote it.
_ERROR_FIGURES = ("max_abs_err", "max_rel_err")
_HIDDEN_FIGURES = frozenset({"worst", "dtype", "rtol", "atol"})


@dataclasses.dataclass(frozen=True)
class Finding:
    """One tested proposition: whether it held, the figures that decided it, and its role.

    ``role`` is ``core`` when the proposition is (part of) the note's statement itself, ``scope`` when it
    is one part of the scope the note asserts too (a range of inputs, a depth, a device, a convention),
    ``premise`` when it is what the check rests on (its measurement agrees with an independent one).
    ``figures`` are JSON-able numbers and short values; ``max_abs_err``, ``max_rel_err``, ``samples`` and
    ``dtype`` are the ones the engine aggregates into the claim's evidence.
    """

    proposition: str
    held: bool
    role: Role = "core"
    figures: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"finding role must be one of {ROLES}, got {self.role!r}")
        if not self.proposition.strip():
            raise ValueError("a finding needs a proposition")
        object.__setattr__(self, "held", bool(self.held))

    def describe(self) -> str:
        """``proposition: yes (figures)`` — one clause of the claim's summary."""
        shown = [f"{key.replace('_', ' ')} {_short(value)}" for key, value in self.figures.items()
                 if key not in _HIDDEN_FIGURES and _is_scalar(value)]
        return f"{self.proposition}: {'yes' if self.held else 'NO'}" + (f" ({', '.join(shown)})" if shown else "")


def core(proposition: str, held: bool, **figures: Any) -> Finding:
    """A finding about the note's statement itself."""
    return Finding(proposition, held, "core", figures)


def scoped(proposition: str, held: bool, **figures: Any) -> Finding:
    """A finding about one part of the statement's scope (an input range, a depth, a convention...)."""
    return Finding(proposition, held, "scope", figures)


def premise(proposition: str, held: bool, **figures: Any) -> Finding:
    """A finding the check rests on; when it fails the claim fails, whatever its recorded verdict."""
    return Finding(proposition, held, "premise", figures)


def compared(proposition: str, comparison: Any, *, role: Role = "core", **figures: Any) -> Finding:
    """A finding decided by a :class:`derivations.compare.Comparison` (its ``ok``), carrying its errors."""
    numbers = {
        "max_abs_err": comparison.max_abs_err, "max_rel_err": comparison.max_rel_err,
        "samples": comparison.samples, "dtype": comparison.dtype, "rtol": comparison.rtol,
        "atol": comparison.atol, "worst": comparison.worst,
    }
    return Finding(proposition, comparison.ok, role, {**numbers, **figures})


def proved(proposition: str, proof: Any, *, role: Role = "core", **figures: Any) -> Finding:
    """A finding decided by a :class:`derivations.bridge.IdentityProof` (its ``holds``)."""
    numbers = {
        "how": proof.how if proof.proved else "numeric only", "max_abs_err": proof.max_abs_err,
        "max_rel_err": proof.max_rel_err, "samples": proof.samples, "dtype": "float64",
    }
    return Finding(proposition, proof.holds, role, {**numbers, **figures})


def decide(findings: list[Finding] | tuple[Finding, ...]) -> str:
    """The verdict of a list of findings (the engine's rule; see the module docstring)."""
    if any(not f.held and f.role == "premise" for f in findings):
        return INVALID
    if not any(f.held is False and f.role == "core" for f in findings):
        return "holds" if all(f.held for f in findings) else "qualified"
    return "refuted"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a check found: its findings, its method, and any extra figures (``details``) for the page.

    The verdict, the aggregate errors, the sample count, the dtype and the one-line summary are derived
    from the findings, so each number is written once.
    """

    method: Method
    findings: tuple[Finding, ...]
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        findings = tuple(self.findings)
        if not findings or not all(isinstance(f, Finding) for f in findings):
            raise ValueError("evidence needs at least one Finding")
        if not any(f.role == "core" for f in findings):
            raise ValueError("evidence needs at least one core finding (the note's statement itself)")
        object.__setattr__(self, "findings", findings)

    @property
    def verdict(self) -> str:
        return decide(self.findings)

    @property
    def summary(self) -> str:
        return "; ".join(f.describe() for f in self.findings)

    def _errors(self, key: str) -> float | None:
        values = [float(f.figures[key]) for f in self.findings if f.figures.get(key) is not None]
        return max(values) if values else None

    @property
    def max_abs_err(self) -> float | None:
        return self._errors("max_abs_err")

    @property
    def max_rel_err(self) -> float | None:
        return self._errors("max_rel_err")

    @property
    def samples(self) -> int | None:
        counts = [int(f.figures["samples"]) for f in self.findings if f.figures.get("samples") is not None]
        return sum(counts) if counts else None

    @property
    def dtype(self) -> str | None:
        dtypes = sorted({str(f.figures["dtype"]) for f in self.findings if f.figures.get("dtype")})
        return "/".join(dtypes) or None


def evidence(method: Method, *findings: Finding, details: Mapping[str, Any] | None = None) -> Evidence:
    """``Evidence(method, findings, details)``, with the findings as positional arguments."""
    return Evidence(method, tuple(findings), dict(details or {}))


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How close two numbers must be: ``|a - b| <= atol + rtol |b|``; ``reason`` when looser than 1e-10."""

    rtol: float = RTOL
    atol: float = 0.0
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rtol": self.rtol, "atol": self.atol, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Claim:
    """One statement of the notes, where it is meant to hold, the verdict recorded for it, and its check.

    ``expected`` is a verdict, or a mapping from JAX backend (``cpu``, ``gpu``, ``tpu``) to a verdict for a
    claim whose verdict depends on the device (``default`` covers the backends not named).
    """

    id: str
    sources: tuple[str, ...]
    says: str
    expected: Verdict | Mapping[str, Verdict]
    check: Callable[..., Evidence]
    scope: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    correction: str | None = None
    tolerance: Tolerance = dataclasses.field(default_factory=Tolerance)

    @property
    def chapter(self) -> str:
        return self.id.split("/", 1)[0]

    def expected_on(self, backend: str) -> Verdict | None:
        """The recorded verdict on a JAX backend (None when a per-backend claim names neither it nor default)."""
        if isinstance(self.expected, str):
            return self.expected
        return self.expected.get(backend, self.expected.get("default"))

    def run_check(self) -> Evidence:
        """Call the check with the parameters it asks for (``scope``, ``rtol``, ``atol``)."""
        wanted = inspect.signature(self.check).parameters
        values = {"scope": self.scope, "rtol": self.tolerance.rtol, "atol": self.tolerance.atol}
        return self.check(**{name: values[name] for name in wanted})


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
    expected = [new.expected] if isinstance(new.expected, str) else list(new.expected.values())
    if not expected or any(v not in VERDICTS for v in expected):
        raise ValueError(f"claim {new.id!r}: expected must be one of {VERDICTS}, got {new.expected!r}")
    if any(v != "holds" for v in expected) != bool(new.correction):
        raise ValueError(f"claim {new.id!r}: a correction is required exactly when expected is not 'holds'")
    if not new.scope:
        raise ValueError(f"claim {new.id!r}: declare the scope in which the note's statement is meant (scope=...)")
    tol = new.tolerance
    if not (math.isfinite(tol.rtol) and tol.rtol >= 0 and math.isfinite(tol.atol) and tol.atol >= 0):
        raise ValueError(f"claim {new.id!r}: rtol and atol must be finite and >= 0, got {tol.rtol}, {tol.atol}")
    if (tol.rtol > RTOL or tol.atol > 0) and not tol.reason:
        raise ValueError(f"claim {new.id!r}: a tolerance looser than rtol {RTOL:g}, atol 0 needs its reason")
    unknown = set(inspect.signature(new.check).parameters) - set(CHECK_PARAMETERS)
    if unknown:
        raise ValueError(f"claim {new.id!r}: a check may take only {CHECK_PARAMETERS}, not {sorted(unknown)}")
    _CLAIMS[new.id] = new
    return new


def claim(
    id: str,
    *,
    sources: list[str] | tuple[str, ...],
    says: str,
    expected: Verdict | Mapping[str, Verdict],
    scope: Mapping[str, Any],
    correction: str | None = None,
    rtol: float = RTOL,
    atol: float = 0.0,
    tolerance: str | None = None,
    aliases: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[..., Evidence]], Callable[..., Evidence]]:
    """Decorator: register the decorated function as the check of a claim.

    ``tolerance`` is the reason for an ``rtol`` above 1e-10 or a non-zero ``atol`` (or for any other
    margin the check applies, such as a number of standard errors). ``aliases`` are the claim's old ids,
    still accepted wherever a claim is named.
    """

    def decorate(check: Callable[..., Evidence]) -> Callable[..., Evidence]:
        # `python -m derivations.<chapter>` runs a second copy of the module as __main__; the copy
        # imported under its real name is the one that registers.
        if check.__module__ != "__main__":
            register(Claim(id, tuple(sources), says, expected, check, dict(scope), correction,
                           Tolerance(rtol, atol, tolerance)))
            ALIASES.update({old: id for old in aliases})
        return check

    return decorate


def derivation(func: Callable[[], Any]) -> Callable[[], Any]:
    """Decorator: list a chapter function that returns SymPy objects among the chapter's derivations.

    A derivation takes no arguments and is derived once per process (``bridge.cache``, which records again
    whatever the first call evaluated): the claim that checks it and the verification of what its page displays
    (``derivations.displayed``) see the same objects, and SymPy does not derive them twice. Each call gets its
    own lists, dicts and mutable matrices."""
    from derivations.bridge import cache

    derived = cache(func)

    @functools.wraps(func)
    def derive() -> Any:
        return _fresh(derived())

    if func.__module__ != "__main__":
        title = (func.__doc__ or func.__name__).strip().splitlines()[0]
        chapter = _chapter_of(func.__module__)
        _DERIVATIONS.setdefault(chapter, []).append(Derivation(chapter, func.__name__, title, derive))
    return derive


def _fresh(value: Any) -> Any:
    """``value`` with its containers (list, tuple, dict, mutable SymPy matrix) copied; SymPy's immutable objects
    shared."""
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, tuple):
        items = [_fresh(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if getattr(value, "is_Matrix", False):
        import sympy as sp

        return value if isinstance(value, sp.ImmutableDenseMatrix | sp.MatrixExpr) else value.copy()
    return value


def all_claims() -> list[Claim]:
    """Every registered claim, chapters in reading order, claims in definition order."""
    from derivations.chapters import load_all

    load_all()
    return _ordered(_CLAIMS.values())


def claims_for(names: list[str] | tuple[str, ...] = ()) -> list[Claim]:
    """The claims named by chapter names, claim ids (or their old ids, see ``aliases``) and question ids
    (``S002-41``: every claim that cites it); all claims when ``names`` is empty.

    Only the chapters named are imported, so one chapter can be checked while another is broken; a question
    id imports every chapter. An unknown name is a ValueError with the nearest valid names.
    """
    from derivations.chapters import CHAPTERS, load, load_all

    if not names:
        return all_claims()
    chosen: list[Claim] = []
    for name in names:
        if _SEED_ID.match(name):
            load_all()
            picked = [c for c in _ordered(_CLAIMS.values()) if name in c.sources]
            if not picked:
                raise ValueError(f"no claim cites question {name!r}{_suggest(name, _seed_ids())}")
            chosen.extend(c for c in picked if c not in chosen)
            continue
        chapter = name.split("/", 1)[0]
        if chapter not in CHAPTERS:
            what = f"claim id {name!r}" if "/" in name else f"chapter {name!r}"
            raise ValueError(f"unknown {what}; {_valid_names()}{_suggest(name, list(CHAPTERS))}")
        load(chapter)
        if "/" in name:
            real = ALIASES.get(name, name)
            if real not in _CLAIMS:
                mine = [c.id for c in _CLAIMS.values() if c.chapter == chapter] + [a for a in ALIASES if
                                                                                    a.startswith(chapter + "/")]
                raise ValueError(f"unknown claim id {name!r}{_suggest(name, mine)}; see `workbook list --chapter "
                                 f"{chapter}` for its claims")
            picked = [_CLAIMS[real]]
        else:
            picked = [c for c in _ordered(_CLAIMS.values()) if c.chapter == name]
        chosen.extend(c for c in picked if c not in chosen)
    return chosen


# Old claim ids that now read differently (renamed so that the id names what the note says): old -> new.
ALIASES: dict[str, str] = {}


def _seed_ids() -> list[str]:
    return sorted({s for c in _CLAIMS.values() for s in c.sources})


def _suggest(name: str, candidates: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else ""


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

    return ("valid chapters: " + ", ".join(CHAPTERS)
            + " (or a claim id 'chapter/slug', or a question id like 'S002-41'; see `workbook list`)")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str) or getattr(value, "shape", None) == ()


def _short(value: Any) -> str:
    if isinstance(value, bool) or (not isinstance(value, int | float) and not hasattr(value, "dtype")):
        return str(value)
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.3g}"
