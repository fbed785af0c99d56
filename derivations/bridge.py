"""The bridge from SymPy to JAX: symbolic expressions become jit-compiled JAX functions, and identities
are proved by SymPy where it can decide them and evaluated at random points in every case.

The table ``_PINNED`` is checked when this module is imported (as sympy2jax checks its mapping), so a
SymPy or JAX upgrade that changes how a function is printed fails loudly here instead of producing a
wrong formula somewhere in a chapter. Two choices it pins on purpose:

* ``Heaviside(0)`` is ``1/2`` in SymPy and in the printed JAX code; ReLU's derivative at 0 is a choice
  (the subdifferential is [0, 1]) and each library makes its own.
* ``Max(x, 0)`` prints as ``reduce(maximum, ...)``; ``jax.grad`` of ``jnp.maximum`` splits the gradient
  evenly at a tie, so its derivative at 0 is ``1/2``, while ``jax.nn.relu`` returns 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import sympy as sp

import derivations  # float64 before any array is made

Sampler = Callable[[np.random.Generator, int], np.ndarray]


# SymPy's JAX printer leaves these to Python's ``math`` module, which fails on arrays; map them to JAX.
_EXTRA_FUNCTIONS = {"erf": jax.scipy.special.erf, "erfc": jax.scipy.special.erfc}


def _lambdify(symbols: Sequence[sp.Symbol], expr: sp.Expr) -> Callable[..., jax.Array]:
    # cse: long expressions (unrolled optimizer steps) print in a fraction of the time, and XLA sees each
    # repeated subexpression once.
    return sp.lambdify(list(symbols), expr, modules=[_EXTRA_FUNCTIONS, "jax"], cse=True)


# Every SymPy object that a check evaluates passes through this module (to_jax, prove_identity, value,
# instantiate), which keeps its fingerprint: the equations a page shows are verified against this set
# (derivations/displayed.py), so a displayed formula that no check evaluates cannot stay green.
_EVALUATED: set[str] = set()


def fingerprint(obj: Any) -> str:
    """A stable short hash of a SymPy object's structure (``srepr``); matrices count as immutable."""
    if isinstance(obj, sp.MatrixBase):
        obj = sp.ImmutableMatrix(obj)
    return hashlib.sha256(sp.srepr(obj).encode()).hexdigest()[:16]


_CAPTURES: list[set[str]] = []  # the fingerprints recorded inside each active ``cache``d call


def _record(*objects: Any) -> None:
    """Record objects as evaluated. An equation whose left-hand side is a formula, not a name, is recorded by
    its right-hand side alone: a check evaluates a formula, and a relation between two formulas (``d|c - y|/dc =
    sign(c - y)``) is verified as a relation by the page check (derivations/displayed.py), whichever points a
    check evaluated it at."""
    for obj in objects:
        if isinstance(obj, list | tuple):
            _record(*obj)
        elif isinstance(obj, sp.Equality) and _formula_lhs(obj):
            _record(obj.rhs)
        elif isinstance(obj, sp.Basic | sp.MatrixBase):
            _note(fingerprint(obj))


def _note(*prints: str) -> None:
    _EVALUATED.update(prints)
    for captured in _CAPTURES:
        captured.update(prints)


def cache(func: Callable) -> Callable:
    """``functools.cache`` for a function that evaluates SymPy objects (through ``to_jax``, ``value``...): a
    cached call records again what its first call recorded, so what a chapter's claims evaluated does not
    depend on what ran before them in the same process."""
    results: dict = {}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(sorted(kwargs.items())))
        if key in results:
            value, prints = results[key]
            _note(*prints)
            return value
        _CAPTURES.append(set())
        try:
            value = func(*args, **kwargs)
        finally:
            prints = _CAPTURES.pop()
        _note(*prints)
        results[key] = (value, frozenset(prints))
        return value

    wrapper.cache_clear = results.clear  # type: ignore[attr-defined]
    return wrapper


def evaluated() -> frozenset[str]:
    """Fingerprints of every SymPy object evaluated by a check in this process so far."""
    return frozenset(_EVALUATED)


def forget_evaluated() -> None:
    _EVALUATED.clear()


def mark_evaluated(objects: Iterable[Any]) -> None:
    """Record objects as evaluated (for code that evaluates SymPy objects by other means, e.g. ``.subs``
    followed by a comparison; prefer :func:`value` and :func:`instantiate`)."""
    _record(*list(objects))


def _definition(expr: Any) -> Any:
    """An ``Eq(name, formula)`` stands for its formula; the equation itself is recorded as evaluated (an
    ``Eq(formula, formula)``: its right-hand side, see :func:`_record`)."""
    if isinstance(expr, sp.Equality):
        _record(expr)
        return expr.rhs
    return expr


def to_jax(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> Callable[..., jax.Array]:
    """Compile a SymPy expression of ``symbols`` (or the right-hand side of an ``Eq``) into a jit-compiled,
    differentiable JAX function. Only the right-hand side is evaluated, so an ``Eq`` whose left-hand side is a
    formula (``d|c - y|/dc = sign(c - y)``), not a name, is not recorded as evaluated: the page check
    (derivations/displayed.py) verifies that relation itself."""
    expr = _definition(expr)
    _record(expr)
    key = (sp.ImmutableMatrix(expr) if isinstance(expr, sp.MatrixBase) else expr, tuple(symbols))
    try:
        return _COMPILED[key]
    except (KeyError, TypeError):  # TypeError: an unhashable expression (a list): compile it every time
        compiled = jax.jit(_lambdify(symbols, expr))
    with contextlib.suppress(TypeError):
        _COMPILED[key] = compiled
    return compiled


# One jitted function per (expression, symbols): a check that compiles the same formula in a loop, or two
# claims that evaluate the same derivation, print and trace it once.
_COMPILED: dict = {}


def is_name(expr: Any) -> bool:
    """A placeholder that names a quantity rather than computing it: ``y``, ``dy/dw``, ``W_1``, ``|dL/dx|``."""
    if isinstance(expr, sp.Symbol | sp.MatrixSymbol | sp.Indexed | sp.IndexedBase):
        return True
    if isinstance(expr, sp.Derivative):
        return is_name(expr.expr) or isinstance(expr.expr, sp.core.function.AppliedUndef)
    if isinstance(expr, sp.Abs | sp.Transpose):
        return is_name(expr.args[0])
    return isinstance(expr, sp.core.function.AppliedUndef)


def _named(name: Any) -> Any:
    """The quantity a name names: ``y`` of ``dy/dw`` and of ``|y|``; None for a function's name ``eta(t)``."""
    if isinstance(name, sp.Derivative | sp.Abs | sp.Transpose):
        return _named(name.args[0])
    return None if isinstance(name, sp.core.function.AppliedUndef) else name


def _formula_lhs(equation: sp.Equality) -> bool:
    """Whether an equation's left-hand side is a formula to evaluate, not a name (nor a matrix of names, nor a
    sum, product or limit of a name that shares no symbol with the right-hand side: ``sum_i dy/dx_i = 1``). A
    name that its right-hand side contains (``x_i = x_i``, ``d|x|/dx = sign(x)``) is a formula: that relation says
    something about the quantity, and is verified as a relation."""
    lhs, rhs = equation.lhs, sp.sympify(equation.rhs)
    if (isinstance(lhs, sp.Sum | sp.Product | sp.Limit) and is_name(lhs.args[0])
            and not lhs.free_symbols & rhs.free_symbols):
        return False
    names = list(lhs) if isinstance(lhs, sp.MatrixBase) else [lhs]
    if not all(is_name(e) for e in names):
        return True
    for name in names:
        named = _named(name)
        if (named is not None and rhs.has(named)) or (isinstance(name, sp.Derivative) and name.expr in name.variables):
            return True  # x_i = x_i, dx/dx = 2: the relation says something about the quantity
    return False


def _sides_agree(equation: Any, subs: dict, digits: int = 30) -> None:
    """An ``Eq`` whose left-hand side is itself a formula (``2 P R / (P + R) = F1``, a ``Sum``, a ratio), not a
    name: where a check evaluates its right-hand side, the left-hand side is evaluated too, at the same values,
    and a ValueError is raised when the two disagree (the relation itself is verified by the page check, see
    :func:`_record`). A side that does not reduce to a number there (a name ``E(...)``, a symbol the values
    leave free) is not compared."""
    if not isinstance(equation, sp.Equality) or not _formula_lhs(equation):
        return
    lhs, rhs = (sp.sympify(side).subs(subs).doit() for side in (equation.lhs, equation.rhs))
    matrices = isinstance(lhs, sp.MatrixBase) and isinstance(rhs, sp.MatrixBase) and lhs.shape == rhs.shape
    for left, right in zip(lhs, rhs, strict=True) if matrices else [(lhs, rhs)]:
        left, right = sp.N(left, digits), sp.N(right, digits)
        if not (isinstance(left, sp.Expr) and left.is_number and isinstance(right, sp.Expr) and right.is_number):
            continue
        if abs(left - right) > sp.Float(10) ** (10 - digits) * max(abs(right), 1):
            raise ValueError(f"the displayed equation {equation} does not hold at {subs}: left side {left}, "
                             f"right side {right}")


def value(expr: sp.Expr, subs: dict | None = None, *, digits: int = 30) -> float:
    """The float value of ``expr`` (or of an ``Eq``'s right-hand side) with ``subs`` substituted
    (adaptive-precision ``evalf``), recorded as evaluated. An ``Eq`` whose left-hand side is a formula must
    agree there too (:func:`_sides_agree`)."""
    _sides_agree(expr, dict(subs or {}), digits)
    expr = _definition(expr)
    _record(expr)
    number = sp.sympify(expr).evalf(digits, subs=dict(subs or {}))
    if not number.is_number:
        raise ValueError(f"{expr} does not evaluate to a number with {subs}: free {number.free_symbols}")
    return float(number) if number.is_real is not False else complex(number)


def instantiate(expr: Any, subs: dict | None = None) -> Any:
    """``expr`` with ``subs`` substituted and evaluated (``doit``), recorded as evaluated: for a displayed
    formula in placeholder symbols (``W_1``, ``D``) that a check evaluates on concrete matrices. An ``Eq``
    stands for its right-hand side, and a left-hand side that is a formula must agree with it there."""
    _sides_agree(expr, dict(subs or {}))
    expr = _definition(expr)
    _record(expr)
    out = expr.subs(dict(subs or {})) if subs else expr
    return out.doit() if hasattr(out, "doit") else out


@dataclasses.dataclass(frozen=True)
class IdentityProof:
    """How ``lhs == rhs`` was established.

    ``proved`` is True when SymPy reduced ``lhs - rhs`` to 0 (``how`` says after which rewrite);
    the identity is also evaluated at ``samples`` random points in float64 either way, and ``holds`` is
    ``proved`` when SymPy decided, else whether the numbers agree to ``rtol``.
    """

    proved: bool
    how: str
    holds: bool
    max_abs_err: float
    max_rel_err: float
    samples: int

    @property
    def method(self) -> str:
        return "symbolic" if self.proved else "numeric only"


# Tried in order until one reduces lhs - rhs to 0. ``together`` then ``expand`` (one fraction, numerator
# multiplied out) decides 42 of the 45 identities that ``simplify`` decides in the ledger, in a fifteenth of
# the time; ``simplify`` is the fallback.
_REWRITES: list[tuple[str, Callable[[sp.Expr], sp.Expr]]] = [
    ("together, then expand", lambda e: sp.expand(sp.together(e))),
    ("simplify", sp.simplify),
    ("rewrite(exp), then simplify", lambda e: sp.simplify(e.rewrite(sp.exp))),
    ("piecewise_fold, then simplify", lambda e: sp.simplify(sp.piecewise_fold(e))),
]


class _DecisionCache:
    """SymPy's decisions (which rewrite reduces an expression to 0; whether simplify does), kept on disk beside
    JAX's compilation cache (``WORKBOOK_JAX_CACHE``) and shared by the workers: a decision is a pure function of
    the expression (its ``srepr``, assumptions included), the rewrites tried, this module's code and SymPy's
    version, so a second run reads it instead of simplifying again (about 10 s of a run). ``folder`` None:
    nothing is kept."""

    def __init__(self, folder: str | None):
        self.folder = folder

    def decide(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The kept decision for ``key`` (a JSON value), else ``compute()``, kept for the next run."""
        if not self.folder:
            return compute()
        path = os.path.join(self.folder, hashlib.sha256(repr((sp.__version__, _SOURCE, key)).encode()).hexdigest())
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
        value = compute()
        try:
            os.makedirs(self.folder, exist_ok=True)
            temporary = f"{path}.{os.getpid()}"
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(value, f)
            os.replace(temporary, path)  # atomic: a worker reading it sees all of it or nothing
        except OSError:
            pass  # a read-only or full disk: the decision is simply not kept
        return value


# An edit of this module (a rewrite, the refutation) makes every kept decision stale: its text is in each key.
_SOURCE = hashlib.sha256(open(__file__, "rb").read()).hexdigest()  # noqa: SIM115
_decisions = _DecisionCache(os.path.join(derivations.CACHE_DIR, "sympy-decisions") if derivations.CACHE_DIR else None)


def kept_decision(key: tuple, compute: Callable[[], Any]) -> Any:
    """A decision kept with SymPy's (a JSON value): read when a run has made it, else ``compute()``. ``key``
    must hold everything the decision depends on beyond this module and SymPy's version (the expression's
    ``srepr`` and :func:`definitions`, the caller's own code)."""
    return _decisions.decide(key, compute)


def definitions(*exprs: Any) -> tuple[tuple[str, str], ...]:
    """(module, digest of its source) for each module outside SymPy that defines a function class in ``exprs``
    (a ``sp.Function`` subclass with its own ``fdiff`` or ``_eval_evalf``, an ``implemented_function``'s
    ``_imp_``): how SymPy differentiates and evaluates such a function is in that code, not in ``srepr``, so a
    kept decision about it is keyed on the code too."""
    modules = set()
    for expr in exprs:
        for applied in getattr(expr, "atoms", lambda *_: ())(sp.Function):
            for owner in (type(applied), getattr(type(applied), "_imp_", None)):
                module = getattr(owner, "__module__", None)
                if module and module.split(".")[0] not in ("sympy", "mpmath", "builtins"):
                    modules.add(module)
    return tuple((m, _module_digest(m)) for m in sorted(modules))


@functools.cache
def _module_digest(name: str) -> str:
    path = getattr(sys.modules.get(name), "__file__", None)
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, TypeError):  # no file (an interactive session): a key no other process makes, so never reused
        return f"unread:{os.getpid()}:{id(sys.modules.get(name))}"


def reduces_to_zero(difference: sp.Expr, *, quick_only: bool = False) -> str | None:
    """The name of the first rewrite that reduces ``difference`` to 0, or None. ``quick_only``: try only the
    first (together, then expand), for a difference already known to be nonzero somewhere."""
    rewrites = _REWRITES[:1] if quick_only else _REWRITES
    return _decisions.decide(("reduces_to_zero", [name for name, _ in rewrites], sp.srepr(difference),
                              definitions(difference)),
                             lambda: next((name for name, rewrite in rewrites if rewrite(difference) == 0), None))


# A sampled point where both sides are finite and differ by more than this (relative to max(|rhs|, 1)) is a
# counterexample no float64 round-off produces: SymPy's slower rewrites (which can run for minutes on a wrong
# formula) are not tried on that identity.
_COUNTEREXAMPLE = 1e-6


def refuted_at_a_point(expr: sp.Expr, points: int = 4) -> bool:
    """Whether ``expr`` (meant to be 0) is clearly not 0 at one of ``points`` random rational points of its
    symbols' domains, evaluated to 30 digits: more than 1e-6 of its largest term there. No rounding does that,
    so a false identity is refuted without asking SymPy to simplify it (which on a wrong formula can run for
    minutes). False whenever it cannot tell (symbols that are not plain Symbols, a pole at every point)."""
    expr = sp.sympify(expr)
    symbols = sorted(expr.free_symbols, key=str)
    if any(not isinstance(s, sp.Symbol) for s in symbols):
        return False
    terms = expr.args if isinstance(expr, sp.Add) else (expr,)
    try:
        return _refuted_compiled(expr, terms, symbols, points)
    # A function lambdify's mpmath printer lacks (NotImplementedError: Product, Subs, Derivative): subs and N.
    except (NameError, AttributeError, KeyError, SyntaxError, NotImplementedError):
        pass
    rng = random.Random(0)
    for _ in range(points):
        point = {s: _rational_draw(s, rng) for s in symbols}
        try:
            value = complex(sp.N(expr.subs(point), 30))
            scale = max(abs(complex(sp.N(t.subs(point), 30))) for t in terms)
        except (TypeError, ValueError, ZeroDivisionError):  # not a number there (a pole, a free function)
            continue
        if np.isfinite(value) and np.isfinite(scale) and abs(value) > 1e-6 * max(scale, 1.0):
            return True
    return False


def _refuted_compiled(expr: sp.Expr, terms: Sequence[sp.Expr], symbols: list[sp.Symbol], points: int) -> bool:
    """:func:`refuted_at_a_point` with ``expr`` and its terms compiled once for mpmath (``sp.lambdify``) and
    evaluated at the same rational points to 30 digits: a tenth of the time of ``subs`` and ``N`` per point."""
    rng = random.Random(0)
    evaluate = sp.lambdify(symbols, [expr, *terms], modules="mpmath")
    with mpmath.workdps(30):
        for _ in range(points):
            point = [_rational_draw(s, rng) for s in symbols]
            try:
                value, *parts = (complex(v) for v in evaluate(*(mpmath.mpf(int(q.p)) / int(q.q) for q in point)))
            except (TypeError, ValueError, ZeroDivisionError):  # not a number there (a pole)
                continue
            scale = max(abs(v) for v in parts)
            if np.isfinite(value) and np.isfinite(scale) and abs(value) > 1e-6 * max(scale, 1.0):
                return True
    return False


def _rational_draw(symbol: sp.Symbol, rng: random.Random) -> sp.Expr:
    """A point of the symbol's domain: integers in [1, 6] or [-4, 6]; positive reals in (0.05, 0.95); other
    reals in (-3, 3); as exact rationals."""
    positive = symbol.is_positive or symbol.is_nonnegative
    if symbol.is_integer:
        return sp.Integer(rng.randint(1 if positive else -4, 6))
    low, high = (0.05, 0.95) if positive else (-3.0, 3.0)
    return sp.Rational(round(rng.uniform(low, high), 6)).limit_denominator(10**6)


def vanishes(expr: sp.Expr) -> bool:
    """``sp.simplify(expr) == 0``, unless a random point refutes it first (:func:`refuted_at_a_point`)."""
    return _decisions.decide(("vanishes", sp.srepr(expr), definitions(expr)),
                             lambda: not refuted_at_a_point(expr) and bool(sp.simplify(expr) == 0))


def prove_identity(
    lhs: sp.Expr,
    rhs: sp.Expr,
    symbols: Sequence[sp.Symbol],
    *,
    sampler: Sampler | None = None,
    samples: int = 256,
    seed: int = 0,
    rtol: float = 1e-10,
) -> IdentityProof:
    """Prove ``lhs == rhs`` with SymPy where it can, and evaluate both sides at random points.

    ``sampler(rng, n)`` draws ``n`` values for each symbol (default: uniform on [-5, 5]).
    """
    _record(lhs, rhs)
    draw = sampler or (lambda rng, n: rng.uniform(-5.0, 5.0, n))
    rng = np.random.default_rng(seed)
    points = [jax.device_put(np.asarray(draw(rng, samples), dtype=np.float64)) for _ in symbols]
    # Both sides in JAX (the compiled formulas), the error arithmetic in NumPy: no program per shape for it.
    left = np.broadcast_to(np.asarray(to_jax(lhs, symbols)(*points)), (samples,))
    right = np.broadcast_to(np.asarray(to_jax(rhs, symbols)(*points)), (samples,))
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.abs(left - right)
        scale = np.maximum(np.abs(right), np.finfo(np.float64).tiny)
        max_abs, max_rel = float(np.max(abs_err)), float(np.max(abs_err / scale))
        numeric_ok = bool(np.all(np.isfinite(abs_err)) and np.all(abs_err <= rtol * np.abs(right)))
        refuted = bool(np.any(np.isfinite(left) & np.isfinite(right)
                              & (abs_err > _COUNTEREXAMPLE * np.maximum(np.abs(right), 1.0))))  # fmt: skip
    rewrite = reduces_to_zero(sp.sympify(lhs - rhs), quick_only=refuted)
    proved = rewrite is not None
    how = rewrite or ("not decided by SymPy: the sides differ at sampled points, the slower rewrites not tried"
                      if refuted else "not decided by SymPy (numeric evidence only)")  # fmt: skip
    return IdentityProof(proved, how, proved or numeric_ok, max_abs, max_rel, samples)


_x = sp.Symbol("x", real=True)
_PINNED: list[tuple[str, sp.Expr, Callable[[jax.Array], jax.Array]]] = [
    ("exp", sp.exp(_x), jnp.exp),
    ("tanh", sp.tanh(_x), jnp.tanh),
    ("Abs", sp.Abs(_x), jnp.abs),
    ("Max(x, 0)", sp.Max(_x, 0), lambda x: jnp.maximum(x, 0.0)),
    ("Min(x, 0)", sp.Min(_x, 0), lambda x: jnp.minimum(x, 0.0)),
    ("Heaviside (1/2 at 0)", sp.Heaviside(_x), lambda x: jnp.heaviside(x, 0.5)),
    ("Piecewise", sp.Piecewise((_x, _x > 0), (2 * _x, True)), lambda x: jnp.where(x > 0, x, 2 * x)),
    ("sigmoid", 1 / (1 + sp.exp(-_x)), jax.nn.sigmoid),
    ("erf", sp.erf(_x), jax.scipy.special.erf),
    ("erfc", sp.erfc(_x), jax.scipy.special.erfc),
]


def _check_pinned() -> None:
    # One jitted program for the whole table: every worker process runs this at import.
    points = jnp.asarray([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=jnp.float64)
    printed = [_lambdify([_x], expr) for _, expr, _ in _PINNED]
    got, want = jax.jit(lambda v: ([f(v) for f in printed], [ref(v) for _, _, ref in _PINNED]))(points)
    for (name, _, _), g, w in zip(_PINNED, got, want, strict=True):
        if not np.allclose(np.asarray(g), np.asarray(w), rtol=1e-15, atol=0.0):
            raise RuntimeError(f"sympy->jax bridge: {name} prints to a function that disagrees with JAX")


_check_pinned()
