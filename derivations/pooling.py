"""Pooling: no parameters, the backward rules of max and average pooling, unpooling, spatial pyramid and
global pooling, and how invariant max pooling really is.

Seeds: S000-07, S000-22, S001-05, S002-09, S002-10, S002-35, S003-04, S003-10, S004-18, S004-20
(narrative: S001-30, S002-36). Run ``python -m derivations.pooling`` to print the derivations and check
the claims.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations.bridge import mark_evaluated
from derivations.claims import derivation
from derivations.compare import RTOL, compare
from models.pooling import (
    max_pool,
)

window = sp.symbols("x1:5", real=True)  # one 2x2 window, row-major
levels = sp.symbols("n1:4", integer=True, positive=True)
C = sp.Symbol("C", integer=True, positive=True)


def _random(shape, seed):
    # device_put, not jnp.asarray: the same float64 array without a staging program per shape.
    return jax.device_put(np.random.default_rng(seed).normal(size=shape))


# --- derivations ---------------------------------------------------------------------------------------


@derivation
def average_pool_gradient() -> sp.Eq:
    """Average pooling of a 2x2 window: every input gets 1/4 of the window's gradient."""
    mean = sum(window) / 4
    return sp.Eq(
        sp.Matrix([sp.Derivative(sp.Symbol("y"), v) for v in window]).T,
        sp.Matrix([[sp.diff(mean, v) for v in window]]),
        evaluate=False,
    )


@derivation
def max_pool_gradient() -> sp.Eq:
    """Max pooling of a 2x2 window: dy/dx1 is 1 where x1 is the maximum and 0 elsewhere (SymPy's Heaviside,
    1/2 at a tie; Flax's backward gives a tie to the first maximum)."""
    return sp.Eq(sp.Derivative(sp.Symbol("y"), window[0]), sp.diff(sp.Max(*window), window[0]), evaluate=False)


@derivation
def gradient_sum() -> list[sp.Eq]:
    """Summed over a window, the gradient is 1 for both poolings: each window passes on exactly its dy. The
    max-pooling sum is shown as SymPy's derivative of Max, a sum of Heaviside steps, which is 1 wherever the
    maximum is unique (at a tie SymPy's Heaviside(0) = 1/2 makes it m/2 for m tied entries; Flax gives the
    whole dy to the first maximum, so its sum is 1 there too)."""
    mean, top = sum(window) / 4, sp.Max(*window)
    i = sp.Symbol("i")
    return [
        sp.Eq(
            sp.Sum(sp.Symbol(r"\partial y_{avg}/\partial x_i"), (i, 1, 4)),
            sum(sp.diff(mean, v) for v in window),
            evaluate=False,
        ),
        sp.Eq(
            sp.Sum(sp.Symbol(r"\partial y_{max}/\partial x_i"), (i, 1, 4)),
            sum(sp.diff(top, v) for v in window),
            evaluate=False,
        ),
    ]


@derivation
def spp_output_length() -> sp.Eq:
    """Spatial pyramid pooling with levels n1, n2, n3 over C channels: C (n1^2 + n2^2 + n3^2) features, no H or W."""
    return sp.Eq(sp.Symbol("L"), C * sum(v**2 for v in levels), evaluate=False)


# --- measuring helpers --------------------------------------------------------------------------------------------

BACKWARD_CASES = [(8, 2, 2), (9, 3, 2), (7, 3, 1), (8, 4, 4)]  # (size, window, stride): non-overlapping and overlapping


def backward_check(derived, reference_pool, *, ties: bool = False, cases=BACKWARD_CASES, rtol: float = RTOL) -> list:
    """``derived(x, dy, window, stride)`` vs ``jax.vjp`` of ``reference_pool`` on ``cases`` (size, window, stride):
    one comparison per case."""
    out = []
    for i, (size, win, stride) in enumerate(cases):
        x = _random((2, size, size, 3), i)
        x = jax.device_put(np.round(np.asarray(x))) if ties else x
        y = jax.eval_shape(lambda v, win=win, stride=stride: reference_pool(v, win, stride), x)
        dy = _random(y.shape, 100 + i)
        got, want = (np.asarray(v) for v in _derived_and_vjp(derived, reference_pool, x, dy, win, stride))
        out.append(compare(lambda v, got=got: got, lambda v, want=want: want, [x], rtol=rtol))
    return out


@functools.partial(jax.jit, static_argnums=(0, 1, 4, 5))
def _derived_and_vjp(derived, reference_pool, x, dy, win: int, stride: int):
    """``derived(x, dy, win, stride)`` and ``jax.vjp`` of ``reference_pool`` at ``x`` applied to ``dy``: one program
    per case (and the tied inputs of a case reuse it)."""
    _, pullback = jax.vjp(lambda v: reference_pool(v, win, stride), x)
    return derived(x, dy, win, stride), pullback(dy)[0]


def evaluate_at(expr: sp.Expr | sp.Eq, values: dict[sp.Symbol, float]) -> float:
    """``expr`` (an ``Eq``: its right side) at float ``values``, recorded as evaluated (``bridge.mark_evaluated``).

    xreplace puts the numbers in and Max/Heaviside of numbers evaluate at once; ``bridge.value``'s ``subs``
    first tries to simplify Max of partly substituted symbols, ~100x slower for the max-pooling formulas."""
    mark_evaluated([expr])
    rhs = expr.rhs if isinstance(expr, sp.Eq) else expr
    return float(rhs.xreplace({sym: sp.Float(float(v), 30) for sym, v in values.items()}))


def gradient_sums(pool, x: jax.Array, dy: jax.Array) -> tuple[float, float]:
    """(sum of dy, sum of dL/dx) through ``pool``."""
    total_dy, total_dx = _gradient_sums(pool, x, dy)  # compiled once per pooling function and shape
    return float(total_dy), float(total_dx)


def gradient_sums_traced(pool, x: jax.Array, dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`gradient_sums` as traceable arrays, for a check that puts several poolings in one program."""
    _, pullback = jax.vjp(pool, x)
    return jnp.sum(dy), jnp.sum(pullback(dy)[0])


_gradient_sums = jax.jit(gradient_sums_traced, static_argnums=0)


def relative_change(before: jax.Array, after: jax.Array) -> float:
    """||after - before|| / ||before|| (L2 over the whole array): how much a map changed, graded."""
    before, after = np.asarray(before), np.asarray(after)  # in NumPy: no program per shape
    return float(np.linalg.norm(after - before) / np.linalg.norm(before))


def correlation(a: jax.Array, b: jax.Array) -> float:
    """Pearson correlation of two maps (means removed): 1 = the same up to scale and offset, 0 = unrelated.

    The graded measure of invariance in this chapter. A relative L2 change ||P(Tx) - P(x)|| / ||P(x)|| is not:
    max-pooled maps have a large mean (the expected maximum), which shrinks that ratio for any change at all,
    a 90-degree rotation of white noise included."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def shift_damping(x: jax.Array, shift: tuple[int, int], win: int) -> tuple[float, float]:
    """Relative L2 change of ``x`` and of its ``win x win``/``win`` max pooling under a circular shift by
    ``shift`` (rows, cols): pooling damps the shift where the second is the smaller."""
    moved = np.roll(np.asarray(x), shift, axis=(1, 2))
    pooled, pooled_moved = _pooled_pair(x, moved, win)
    return relative_change(x, moved), relative_change(pooled, pooled_moved)


@functools.partial(jax.jit, static_argnums=2)
def _pooled_pair(x: jax.Array, moved: jax.Array, win: int) -> tuple[jax.Array, jax.Array]:
    """``win x win``/``win`` max pooling of two maps of one shape, in one program."""
    return max_pool(x, win, win), max_pool(moved, win, win)


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "pooling"]) or main(["check", "pooling"]))
