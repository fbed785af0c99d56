"""Measuring code that more than one chapter needs: a claimed derivative settled three ways, the gradient
support of an output (a receptive field measured by autodiff), XLA's count of an operation's cost, and a
module's parameter count. Each returns findings or figures; none names a verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
import sympy as sp
from flax import nnx

from derivations.bridge import prove_identity, to_jax
from derivations.claims import Evidence, compared, evidence, proved, scoped
from derivations.compare import RTOL, compare, elementwise_grad, sample_points

EXTREMES = (-1000.0, -709.0, -100.0, -40.0, -20.0, 20.0, 40.0, 100.0, 709.0, 1000.0)
# Scalar activations' and losses' derivatives are O(1); where they are tiny (|z| >> 1) only an absolute
# error is meaningful, and float64 autodiff of tanh near z = 19 is off by ~6 ulps of 1: 1e-14 is 45 ulps.
EXTREME_ATOL = 1e-14


def derivative_check(
    function: sp.Expr,
    claimed: sp.Expr,
    reference: Callable[[jax.Array], jax.Array],
    symbol: sp.Symbol,
    *,
    domain: tuple[float, float],
    extremes: Sequence[float] = EXTREMES,
    rtol: float = RTOL,
    atol: float = 0.0,
) -> Evidence:
    """Settle "d function / d symbol = claimed" for a scalar function by three findings:

    1. (core) SymPy proves ``diff(function) == claimed`` (or, where it cannot decide, the identity holds
       numerically at random points);
    2. (core) ``claimed``, evaluated, agrees with ``jax.grad`` of ``reference`` (the Flax/JAX
       implementation) at 512 seeded points of ``domain`` and at the domain's edges, to ``rtol``/``atol``;
    3. (scope: the whole float64 range) at the ``extremes`` autodiff is finite and within
       ``EXTREME_ATOL`` of the exact derivative (SymPy's adaptive-precision ``evalf``).
    """
    exact_derivative = sp.diff(function, symbol)
    proof = prove_identity(exact_derivative, claimed, [symbol])
    points = sample_points(512, *domain, seed=11, include=domain)
    autodiff = elementwise_grad(reference)  # one jitted program for both point sets
    smooth = compare(to_jax(claimed, [symbol]), autodiff, [points], rtol=rtol, atol=atol)
    # evalf with subs raises the working precision until 30 digits are right, whatever the cancellation.
    exact = np.array([float(exact_derivative.evalf(30, subs={symbol: sp.Rational(v)}, maxn=4000)) for v in extremes])
    at_extremes = np.asarray(autodiff(jax.device_put(np.asarray(extremes, dtype=np.float64))))
    extreme_err = np.where(np.isfinite(at_extremes), np.abs(at_extremes - exact), np.inf)
    worst = int(np.argmax(extreme_err))
    lo, hi = domain
    return evidence(
        "autodiff",
        proved(f"SymPy: d/d{symbol} of the function equals the claimed derivative", proof),
        compared(f"the claimed derivative, evaluated, equals jax.grad on [{lo:g}, {hi:g}]", smooth),
        scoped(
            f"jax.grad finite and within {EXTREME_ATOL:g} of the exact derivative at |{symbol}| up to "
            f"{max(map(abs, extremes)):g}",
            bool(np.all(extreme_err <= EXTREME_ATOL)),
            max_abs_err=float(extreme_err.max()), samples=len(extremes), at=float(extremes[worst]),
        ),
        # Relative error in the tails is reported, not tested: where the derivative is ~1e-17 an O(1)
        # relative error is an absolute error far below anything a gradient step can see.
        details={"extremes": {str(v): {"autodiff": float(g), "exact": float(e)}
                              for v, g, e in zip(extremes, at_extremes, exact, strict=True)}},
    )


def gradient_support(apply: Callable[[jax.Array], jax.Array], size: int, out_index: tuple[int, int]) -> np.ndarray:
    """|d out[out_index] / d x| for a one-channel ``size x size`` input of ones: where it is non-zero is the
    set of input pixels that the output pixel depends on (the measured receptive field)."""
    x = jax.device_put(np.ones((1, size, size, 1)))
    grad = jax.jit(jax.grad(lambda v: apply(v)[0, out_index[0], out_index[1], 0]))(x)  # one program, not one per op
    return np.abs(np.asarray(grad)[0, :, :, 0])


def support_extent(grad: np.ndarray) -> tuple[int, int]:
    """Height and width of the box that holds the non-zero gradient."""
    rows, cols = np.nonzero(grad)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def xla_cost(f: Callable[..., jax.Array], *args: jax.Array) -> dict[str, float]:
    """XLA's own count for ``jit(f)`` at ``args``: ``flops`` and ``transcendentals`` (exp, log, tanh, ...).
    XLA counts a multiply-add as 2 flops."""
    cost = jax.jit(f).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost.get("flops", 0.0)), "transcendentals": float(cost.get("transcendentals", 0.0))}


def xla_flops(f: Callable[..., jax.Array], *args: jax.Array) -> float:
    """XLA's ``cost_analysis()['flops']`` for ``jit(f)`` at ``args``."""
    return xla_cost(f, *args)["flops"]


def module_params(module_factory: Callable[[], nnx.Module]) -> int:
    """The parameter count of a Flax module, from ``nnx.state`` of an abstract instance (no weights made)."""
    abstract = nnx.eval_shape(module_factory)
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(abstract, nnx.Param))))
