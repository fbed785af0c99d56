"""The comparison harness: a derived formula, evaluated, against autodiff (or any independent reference).

Errors are measured elementwise in float64. The relative error of an element is
``|candidate - reference| / |reference|`` over the elements whose reference is non-zero; an element whose
reference is exactly 0 must match to ``atol``. A non-finite value on either side where the other is
finite (or NaN anywhere) is a failure, never silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

import derivations  # noqa: F401  (float64 before any array is made)

RTOL = 1e-10  # the workbook's standard for smooth symbolic-vs-autodiff comparisons (design.md)


@dataclasses.dataclass(frozen=True)
class Comparison:
    max_abs_err: float
    max_rel_err: float
    samples: int
    dtype: str
    ok: bool
    rtol: float
    atol: float
    worst: dict  # the input and both values where the relative (else absolute) error is largest

    def describe(self) -> str:
        return (
            f"{self.samples} points, {self.dtype}: max abs err {self.max_abs_err:.2e}, "
            f"max rel err {self.max_rel_err:.2e} (rtol {self.rtol:g}"
            + (f", atol {self.atol:g}" if self.atol else "")
            + ")"
        )


def compare(
    candidate: Callable[..., jax.Array],
    reference: Callable[..., jax.Array],
    inputs: Sequence[jax.Array | np.ndarray],
    *,
    rtol: float = RTOL,
    atol: float = 0.0,
) -> Comparison:
    """Evaluate ``candidate(*inputs)`` and ``reference(*inputs)`` and measure how far apart they are.

    ``inputs`` are arrays whose leading axis runs over the sample points (``samples`` counts them; with
    no inputs it counts the compared elements); both callables must return arrays of the same, non-empty
    shape. ``ok`` is ``|c - r| <= atol + rtol * |r|`` everywhere, both finite.
    """
    # device_put, not jnp.asarray: the same array without a staging program compiled for each new shape.
    args = [a if isinstance(a, jax.Array) else jax.device_put(np.asarray(a)) for a in inputs]
    raw = np.asarray(candidate(*args))
    got = raw.astype(np.float64)
    want = np.asarray(reference(*args), dtype=np.float64)
    if got.shape != want.shape:
        raise ValueError(f"shape mismatch: candidate gives {got.shape}, reference gives {want.shape}")
    if got.size == 0:
        raise ValueError("nothing to compare: both sides are empty")
    same_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
    with np.errstate(invalid="ignore"):
        abs_err = np.where(same_inf, 0.0, np.abs(got - want))
    abs_err = np.where(np.isnan(abs_err), np.inf, abs_err)
    rel_err = np.zeros_like(abs_err)
    np.divide(abs_err, np.abs(want), out=rel_err, where=(want != 0) & np.isfinite(want))
    rel_err = np.where(np.isinf(abs_err), np.inf, rel_err)
    bound = atol + rtol * np.where(np.isfinite(want), np.abs(want), 0.0)
    index = np.unravel_index(int(np.argmax(rel_err if rel_err.max() > 0 else abs_err)), got.shape)
    point = index[0] if index and args and np.ndim(args[0]) else None
    worst = {
        "input": None if point is None else [np.asarray(a)[point].tolist() for a in args],
        "candidate": float(got[index]),
        "reference": float(want[index]),
    }
    return Comparison(
        max_abs_err=float(abs_err.max()),
        max_rel_err=float(rel_err.max()),
        samples=int(args[0].shape[0]) if args and np.ndim(args[0]) else got.size,
        dtype=str(raw.dtype),
        ok=bool(np.all(abs_err <= bound)),
        rtol=rtol,
        atol=atol,
        worst=worst,
    )


def elementwise_grad(f: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """The derivative of a scalar function, applied to every element (``vmap`` of ``grad``)."""
    return jax.jit(jax.vmap(jax.grad(f)))


def sample_points(n: int, low: float, high: float, *, seed: int = 0, include: Sequence[float] = ()) -> np.ndarray:
    """``n`` float64 points uniform on [low, high] from a fixed seed, followed by the ``include`` points."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(low, high, n), np.asarray(include, dtype=np.float64)])
