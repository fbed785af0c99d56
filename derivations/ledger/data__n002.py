"""Claims found while annotating note 002 (data chapter): the example of a non-linear normalisation,
y = 1 - e^(-x), and where it changes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations import bridge
from derivations.claims import Evidence, claim, compared, core, evidence, premise
from derivations.compare import compare

_x, _b = sp.symbols("x b", nonnegative=True)


def one_minus_exp() -> sp.Expr:
    """The note's example of a non-linear normalisation, y = 1 - e^(-x)."""
    return 1 - sp.exp(-_x)


def share_of_range(f: sp.Expr, upper: float) -> float:
    """(f(upper) - f(0)) / (lim f(x), x -> oo  -  f(0)): the share of f's whole rise on [0, oo) made on [0, upper]."""
    return float((f.subs(_x, upper) - f.subs(_x, 0)) / _total_rise(f))


@bridge.cache
def _total_rise(f: sp.Expr) -> sp.Expr:
    return sp.limit(f, _x, sp.oo) - f.subs(_x, 0)


def rise_by_quadrature(upper: float, nodes: int) -> float:
    """The rise of 1 - e^(-x) on [0, upper] as the integral of its jax.grad derivative (Gauss-Legendre)."""
    t, wts = np.polynomial.legendre.leggauss(nodes)
    xs = jnp.asarray(0.5 * upper * (t + 1))
    slopes = jax.vmap(jax.grad(lambda v: 1 - jnp.exp(-v)))(xs)
    return float(0.5 * upper * jnp.sum(jnp.asarray(wts) * slopes))


@claim(
    "data/one-minus-exp-changes-markedly-only-on-zero-to-six",
    sources=["S002-02"],
    says="Non-linear normalisation uses non-linear functions such as log, exponentials or tangents, e.g. "
    "y = 1 - e^(-x), which changes noticeably for x in [0, 6] (如y = 1-e^(-x)，在x∈[0, 6]变化较明显). Tested: the "
    "share of the function's whole rise (from 0 to its limit 1) made on [0, 6], and what is left beyond 6; "
    "'noticeably' is read as 'all but a share' of the rise, the share a scope datum.",
    expected="holds",
    scope={"interval": [0.0, 6.0], "share": 0.99, "shorter_intervals": [1.0, 2.0, 3.0, 4.0, 5.0], "nodes": 40},
)
def _one_minus_exp(scope, rtol) -> Evidence:
    upper = scope["interval"][1]
    share = share_of_range(one_minus_exp(), upper)
    shorter = {f"[0, {u:g}]": share_of_range(one_minus_exp(), u) for u in scope["shorter_intervals"]}
    by_autodiff = rise_by_quadrature(upper, scope["nodes"])
    closed = float(one_minus_exp().subs(_x, upper) - one_minus_exp().subs(_x, 0))
    return evidence(
        "symbolic",
        premise("the rise on [0, 6] from SymPy's closed form equals the integral of jax.grad of the function",
                compare(lambda: np.array([by_autodiff]), lambda: np.array([closed]), [], rtol=rtol).ok,
                autodiff=by_autodiff),
        core(f"on [0, {upper:g}] the function makes at least {scope['share']:.0%} of its whole rise",
             share >= scope["share"], share=share),
        core(f"beyond x = {upper:g} it changes by at most {1 - scope['share']:.0%} of its range (it hardly changes)",
             1 - share <= 1 - scope["share"], left=1 - share),
        # The note does not say 6 is the smallest such bound: [0, 5] already makes 99.3% (shown, not tested).
        details={"share_of_the_rise_on": {k: round(v, 4) for k, v in shorter.items()}},
    )


@claim(
    "data/min-max-suits-concentrated-values",
    sources=["S002-02"],
    says="Min-max normalisation x' = (x - min(x)) / (max(x) - min(x)) suits data whose values are fairly "
    "concentrated (适用于数值比较集中的情况). Tested (a gloss of why): one extreme value sets max(x), so with it the "
    "rest of the data are squeezed into a part of [0, 1] that shrinks as the outlier moves out.",
    expected="holds",
    scope={"n": 200, "outlier_sigmas": [3.0, 10.0, 100.0, 1000.0]},
)
def _min_max_concentrated(scope, rtol) -> Evidence:
    from derivations.data import min_max

    rng = np.random.default_rng(7)
    bulk = rng.normal(size=scope["n"])
    distances = [0.0, *scope["outlier_sigmas"]]  # distance 0: no outlier (a copy of the largest value)
    data = np.stack([np.append(bulk, bulk.max() + k) for k in distances], axis=1)
    scaled = np.asarray(min_max(jnp.asarray(data), axis=0))  # one call, every case a column
    clean_span, spans = float(np.ptp(scaled[:, 0])), np.ptp(scaled[:-1, 1:], axis=0)
    predicted = np.ptp(bulk) / (np.ptp(bulk) + np.asarray(scope["outlier_sigmas"]))
    return evidence(
        "measurement",
        premise("without an outlier the data fill [0, 1] (min goes to 0, max to 1)",
                compare(lambda: np.array([clean_span]), lambda: np.array([1.0]), [], rtol=rtol).ok),
        compared("with one outlier at distance k beyond the others, they keep only range / (range + k) of [0, 1]",
                 compare(lambda: spans, lambda: predicted, [], rtol=rtol)),
        core("so the others are squeezed (they keep less than all of [0, 1]) and the squeeze worsens as the outlier "
             "moves out", bool(np.all(spans < 1) and np.all(np.diff(spans) < 0)),
             **{f"kept_at_{k:g}_sd": round(float(v), 4) for k, v in zip(scope["outlier_sigmas"], spans, strict=True)}),
    )
