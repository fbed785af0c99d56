"""Checks that more than one chapter needs: a claimed derivative settled three ways, XLA's count of an
operation's cost, and a module's parameter count."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations.bridge import prove_identity, to_jax
from derivations.claims import Evidence, Verdict
from derivations.compare import RTOL, compare, elementwise_grad, sample_points

EXTREMES = (-1000.0, -709.0, -100.0, -40.0, -20.0, 20.0, 40.0, 100.0, 709.0, 1000.0)
# Scalar activations' and losses' derivatives are O(1); where they are tiny (|z| >> 1) only an absolute
# error is meaningful, and float64 autodiff of tanh near z = 19 is off by ~6 ulps of 1: 1e-14 is 45 ulps.
EXTREME_ATOL = 1e-14


def verdict(ok: bool, when_ok: Verdict, otherwise: Verdict = "refuted") -> Verdict:
    """The observed verdict: ``when_ok`` when the check's conditions all held, else ``otherwise``."""
    return when_ok if ok else otherwise


def derivative_check(
    function: sp.Expr,
    claimed: sp.Expr,
    reference: Callable[[jax.Array], jax.Array],
    symbol: sp.Symbol,
    *,
    domain: tuple[float, float],
    extremes: Sequence[float] = EXTREMES,
    rtol: float = RTOL,
) -> Evidence:
    """Settle "d function / d symbol = claimed" for a scalar function three ways:

    1. SymPy proves ``diff(function) == claimed`` (or says it could not, and the numbers decide);
    2. ``claimed``, evaluated, is compared with ``jax.grad`` of ``reference`` (the Flax/JAX
       implementation) at 512 seeded points of ``domain``, to ``rtol``;
    3. at the ``extremes`` autodiff must be finite and within ``EXTREME_ATOL`` of the exact derivative
       (SymPy at 30 digits).

    The verdict is ``holds`` when all three pass, ``refuted`` otherwise.
    """
    exact_derivative = sp.diff(function, symbol)
    proof = prove_identity(exact_derivative, claimed, [symbol])
    points = sample_points(512, *domain, seed=11)
    smooth = compare(to_jax(claimed, [symbol]), elementwise_grad(reference), [points], rtol=rtol)
    # evalf with subs raises the working precision until 30 digits are right, whatever the cancellation.
    exact = np.array([float(exact_derivative.evalf(30, subs={symbol: sp.Rational(v)}, maxn=4000)) for v in extremes])
    at_extremes = np.asarray(elementwise_grad(reference)(jnp.asarray(extremes)))
    extremes_ok = bool(np.all(np.isfinite(at_extremes)) and np.all(np.abs(at_extremes - exact) <= EXTREME_ATOL))
    with np.errstate(divide="ignore", invalid="ignore"):
        tail_rel_err = np.where(exact != 0, np.abs(at_extremes - exact) / np.abs(exact), np.abs(at_extremes))
    identity = f"proved by SymPy ({proof.how})" if proof.proved else "not proved by SymPy"
    return Evidence(
        verdict=verdict(proof.holds and smooth.ok and extremes_ok, "holds"),
        method="autodiff",
        summary=(
            f"identity {identity}; vs jax.grad: {smooth.describe()}; extremes |z| <= {max(map(abs, extremes)):g} "
            + ("finite and within 1e-14 of exact" if extremes_ok else "WRONG or non-finite")
        ),
        max_abs_err=smooth.max_abs_err,
        max_rel_err=smooth.max_rel_err,
        samples=smooth.samples + len(extremes),
        dtype=smooth.dtype,
        details={
            "identity_proved": proof.proved,
            "identity_how": proof.how,
            "identity_numeric_max_rel_err": proof.max_rel_err,
            "domain": list(domain),
            "worst_point": smooth.worst,
            # Relative error in the tails is reported, not tested: where the derivative is ~1e-17 an O(1)
            # relative error is an absolute error far below anything a gradient step can see.
            "extremes": {
                str(v): {"autodiff": float(g), "exact": float(e), "relative_error": float(r)}
                for v, g, e, r in zip(extremes, at_extremes, exact, tail_rel_err, strict=True)
            },
        },
    )


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
