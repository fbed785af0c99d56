"""Dropout: which factor makes the training expectation equal the evaluation output, what eval mode does,
the gradient through the mask, why p = 0.5, dropout as an L2 penalty, and the ensemble view.

Seeds: S001-10, S000-21, S004-06, S002-29 (S002-29 and S004-06 are otherwise narrative; see the appendix).
This module is the chapter's library; its claims are in ``derivations/ledger/dropout.py``.

Convention: p is the *drop* probability (the rate of ``nnx.Dropout(rate=p)``), the keep probability is 1 - p.
The note S001-10 also uses p for the keep probability, as Srivastava et al. (2014) do; the claims say where.
Run ``python -m derivations.dropout`` to print the derivations and check the claims.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
import sympy.stats as stats
from flax import nnx

from derivations.claims import derivation
from models.dropout import inverted_dropout

p = sp.Symbol("p", positive=True)  # the drop probability, as in nnx.Dropout(rate=p)
x = sp.Symbol("x", real=True)
Z_MAX = 4.5  # Monte-Carlo agreement: within 4.5 standard errors


def keep() -> sp.Expr:
    """The keep indicator m ~ Bernoulli(1 - p)."""
    return stats.Bernoulli("m", 1 - p)


# --- derivations -------------------------------------------------------------------------------------


@derivation
def training_expectations() -> list[sp.Eq]:
    """Training-time expectation of a unit x: plain dropout keeps (1 - p) x, inverted dropout keeps x."""
    m = keep()
    return [
        sp.Eq(sp.Symbol(r"E[m x]"), sp.simplify(stats.E(m * x)), evaluate=False),
        sp.Eq(sp.Symbol(r"E\left[\frac{m x}{1 - p}\right]"), sp.simplify(stats.E(m * x / (1 - p))), evaluate=False),
    ]


@derivation
def mask_variances() -> list[sp.Eq]:
    """The mask's variance p(1 - p) peaks at p = 1/2; the inverted mask's variance p/(1 - p) only grows."""
    m = keep()
    plain, inverted = sp.factor(stats.variance(m)), sp.simplify(stats.variance(m / (1 - p)))
    return [
        sp.Eq(sp.Symbol(r"\operatorname{Var}[m]"), plain, evaluate=False),
        sp.Eq(sp.Symbol(r"\arg\max_p \operatorname{Var}[m]"), sp.solve(sp.diff(plain, p), p)[0], evaluate=False),
        sp.Eq(sp.Symbol(r"\operatorname{Var}\left[\frac{m}{1-p}\right]"), inverted, evaluate=False),
        sp.Eq(
            sp.Derivative(sp.Symbol(r"\operatorname{Var}\left[\frac{m}{1-p}\right]"), p),
            sp.factor(sp.diff(inverted, p)),
            evaluate=False,
        ),
    ]


def linear_regression_loss(n: int = 3) -> tuple[sp.Expr, sp.Expr]:
    """E over n independent keep masks of (y - sum_j w_j m_j x_j/(1 - p))^2 by sympy.stats, and the
    ridge-like form (y - w.x)^2 + p/(1 - p) sum_j w_j^2 x_j^2 it reduces to."""
    ws, xs = sp.symbols(f"w1:{n + 1}", real=True), sp.symbols(f"x1:{n + 1}", real=True)
    y = sp.Symbol("y", real=True)
    masks = [stats.Bernoulli(f"m{j + 1}", 1 - p) for j in range(n)]
    dropped = sum(w * m * v / (1 - p) for w, m, v in zip(ws, masks, xs, strict=True))
    expected = stats.E(sp.expand((y - dropped) ** 2))
    penalty = (y - sum(w * v for w, v in zip(ws, xs, strict=True))) ** 2 + p / (1 - p) * sum(
        w**2 * v**2 for w, v in zip(ws, xs, strict=True)
    )
    return expected, penalty


@derivation
def dropout_is_an_l2_penalty() -> sp.Eq:
    """Linear regression with inverted dropout on its n inputs (here n = 3), prediction y_hat = sum_j w_j m_j
    x_j/(1 - p): the expected squared error is the plain squared error plus an L2 penalty on w whose weight on
    w_j is p/(1 - p) x_j^2."""
    _, penalty = linear_regression_loss()
    return sp.Eq(sp.Symbol(r"E\left[(y - \hat{y})^2\right]"), penalty, evaluate=False)


# --- Monte-Carlo helpers -----------------------------------------------------------------------------


def training_draws(module: nnx.Module, values: jax.Array, draws: int) -> jax.Array:
    """``draws`` independent training-mode outputs of ``module`` (one fresh mask per row)."""
    return module(jnp.broadcast_to(values, (draws, values.size)))


ROUNDING_ULPS = 8  # float64 round-off of a mean or a closed form, in ulps of the target


def standard_error(stderr, target, ulps: float = ROUNDING_ULPS):
    """A Monte-Carlo standard error with the float64 rounding of the target added in quadrature: at rate 0
    every draw is the same and the sampling error is 0, but the mean and the closed form still round."""
    rounding = ulps * np.finfo(np.float64).eps * np.abs(np.asarray(target, dtype=np.float64))
    return np.sqrt(np.square(stderr) + np.square(rounding))


def z_scores(samples: jax.Array, target: jax.Array) -> np.ndarray:
    """|mean - target| in standard errors of the mean (``standard_error``), per column. A column without
    spread and a target of 0 has no standard error: its z is 0 when the mean is exactly the target, else inf."""
    mean = np.asarray(jnp.mean(samples, axis=0))
    stderr = standard_error(np.asarray(jnp.std(samples, axis=0, ddof=1)) / np.sqrt(samples.shape[0]), target)
    gap = np.abs(mean - np.asarray(target))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(stderr > 0, gap / np.where(stderr > 0, stderr, 1.0), np.where(gap == 0, 0.0, np.inf))


VALUES = jnp.asarray([1.0, -2.0, 0.5, 3.0, -0.25, 1.5])


# --- the exact ensemble -------------------------------------------------------------------------------


def ensemble_average(f, v: jax.Array, rate: float) -> jax.Array:
    """The exact average of ``f`` over all 2^n dropout masks of ``v``, each weighted by its probability."""
    n = v.shape[-1]
    masks = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=n)))
    weights = jnp.prod(jnp.where(masks == 1.0, 1 - rate, rate), axis=1)
    outputs = jax.vmap(lambda m: f(inverted_dropout(v, m == 1.0, rate)))(masks)
    return jnp.tensordot(weights, outputs, axes=1)


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "dropout"]) or main(["check", "dropout"]))
