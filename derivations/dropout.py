"""Dropout: which factor makes the training expectation equal the evaluation output, what eval mode does,
the gradient through the mask, why p = 0.5, and the ensemble view.

Seeds: S001-10, S000-21, S004-06, S002-29 (S002-29 and S004-06 are otherwise narrative; see the appendix).
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

from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict
from models.dropout import PlainDropout, inverted_dropout

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
        sp.Eq(sp.Derivative(sp.Symbol(r"\operatorname{Var}\left[\frac{m}{1-p}\right]"), p),
              sp.factor(sp.diff(inverted, p)), evaluate=False),
    ]


# --- Monte-Carlo helpers -----------------------------------------------------------------------------


def training_draws(module: nnx.Module, values: jax.Array, draws: int) -> jax.Array:
    """``draws`` independent training-mode outputs of ``module`` (one fresh mask per row)."""
    return module(jnp.broadcast_to(values, (draws, values.size)))


def z_scores(samples: jax.Array, target: jax.Array) -> np.ndarray:
    """|mean - target| in standard errors of the mean, per column."""
    mean = np.asarray(jnp.mean(samples, axis=0))
    stderr = np.asarray(jnp.std(samples, axis=0, ddof=1)) / np.sqrt(samples.shape[0])
    return np.abs(mean - np.asarray(target)) / stderr


VALUES = jnp.asarray([1.0, -2.0, 0.5, 3.0, -0.25, 1.5])


# --- claims ------------------------------------------------------------------------------------------


@claim(
    "dropout/test-time-factor-is-the-keep-probability",
    sources=["S001-10"],
    says="In training each neuron is dropped with probability p; at test time each neuron's weights are "
    "multiplied by p, since in training it took part only with probability p.",
    expected="refuted",
    correction="With drop probability p a unit takes part with probability 1 - p, so test-time weights are "
    "multiplied by the keep probability 1 - p (the two agree only at p = 1/2). Frameworks instead use "
    "inverted dropout: scale by 1/(1 - p) in training and leave evaluation alone.",
    tolerance="Monte-Carlo: within 4.5 standard errors of the mean",
)
def _test_factor() -> Evidence:
    rate, draws = 0.2, 20000
    expectation = training_expectations()[0].rhs
    module = PlainDropout(rate, rngs=nnx.Rngs(dropout=0))
    train = training_draws(module, VALUES, draws)
    keep_factor = z_scores(train, VALUES * (1 - rate))
    note_factor = z_scores(train, VALUES * rate)
    symbolic_ok = sp.simplify(expectation - (1 - p) * x) == 0
    ok = symbolic_ok and keep_factor.max() <= Z_MAX and note_factor.min() > 100
    return Evidence(
        verdict=verdict(ok, "refuted", "holds"),
        method="measurement",
        summary=f"E[m x] = {expectation} (sympy.stats, m ~ Bernoulli(1 - p)); {draws} training draws of "
        f"dropout without rescaling at p = {rate}: the mean is within {keep_factor.max():.2f} standard errors of "
        f"(1 - p) x, and at least {note_factor.min():.0f} standard errors from the note's p x",
        samples=draws,
        dtype=str(train.dtype),
        details={"z_keep_factor": keep_factor.tolist(), "z_note_factor": note_factor.tolist()},
    )


@claim(
    "dropout/training-expectation-equals-the-eval-output",
    sources=["S001-10", "S000-21"],
    says="Dropout is random in training and deterministic at test time, and the two agree on average.",
    expected="holds",
    tolerance="Monte-Carlo: within 4.5 standard errors of the mean",
)
def _expectation() -> Evidence:
    rate, draws = 0.3, 20000
    symbolic = training_expectations()[1].rhs == x
    inverted = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=1))
    plain = PlainDropout(rate, rngs=nnx.Rngs(dropout=2))
    z_inverted = z_scores(training_draws(inverted, VALUES, draws), inverted(VALUES, deterministic=True))
    z_plain = z_scores(training_draws(plain, VALUES, draws), plain(VALUES, deterministic=True))
    ok = symbolic and z_inverted.max() <= Z_MAX and z_plain.max() <= Z_MAX
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"E[m x/(1 - p)] = x (sympy.stats); {draws} training draws at p = {rate}: nnx.Dropout (inverted) "
        f"mean within {z_inverted.max():.2f} standard errors of its eval output x; plain dropout's mean within "
        f"{z_plain.max():.2f} of its eval output (1 - p) x",
        samples=2 * draws,
        dtype="float64",
        details={"z_inverted": z_inverted.tolist(), "z_plain": z_plain.tolist()},
    )


@claim(
    "dropout/eval-mode-uses-every-neuron",
    sources=["S000-21"],
    says="model.eval() turns dropout off: every neuron is used, none is dropped at random.",
    expected="holds",
    tolerance="the training-mode dropped fraction: within 4.5 binomial standard errors of the rate",
)
def _eval_mode() -> Evidence:
    rate, n = 0.4, 100_000
    module = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=3))
    v = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, n))
    dropped = float(jnp.mean(module(v) == 0))
    stderr = float(np.sqrt(rate * (1 - rate) / n))
    module.eval()
    first, second = module(v), module(v)
    ok = (bool(jnp.array_equal(first, v)) and bool(jnp.array_equal(second, v))
          and abs(dropped - rate) <= Z_MAX * stderr)  # fmt: skip
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"nnx.Dropout({rate}) on {n} units: training mode zeroes {dropped:.4f} +/- {stderr:.4f} of them; "
        f"after .eval() it returns its input unchanged, bit for bit, on every call",
        max_abs_err=float(jnp.max(jnp.abs(first - v))),
        samples=n,
        dtype=str(first.dtype),
    )


@claim(
    "dropout/gradient-flows-through-the-same-mask",
    sources=["S004-06"],
    says="A dropped neuron takes no part in the forward pass nor in the backward pass.",
    expected="holds",
)
def _gradient() -> Evidence:
    rate, n = 0.5, 4096
    rng = np.random.default_rng(5)
    v, upstream = jnp.asarray(rng.normal(size=n)), jnp.asarray(rng.normal(size=n))
    module = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=4))
    key = jax.random.key(7)
    y, pullback = jax.vjp(lambda a: module(a, rngs=key), v)
    (dx,) = pullback(upstream)
    mask = y != 0  # inputs are continuous, so a kept unit is non-zero with probability 1
    derived = compare(lambda: jnp.where(mask, upstream / (1 - rate), 0.0), lambda: dx, [])
    same_mask = compare(lambda: inverted_dropout(v, mask, rate), lambda: y, [])
    ok = derived.ok and same_mask.ok and bool(jnp.all(dx[~mask] == 0))
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"jax.vjp of nnx.Dropout({rate}) with a fixed key on {n} units: dx = dy * mask / (1 - p) with the "
        f"forward pass's mask ({derived.describe()}); the {int(jnp.sum(~mask))} dropped units get exactly 0",
        max_abs_err=derived.max_abs_err,
        max_rel_err=derived.max_rel_err,
        samples=n,
        dtype=derived.dtype,
    )


@claim(
    "dropout/rate-one-half-maximises-mask-variance",
    sources=["S001-10"],
    says="Cross-validation shows a dropout rate of 0.5 works best for hidden units (the usual reason: the most "
    "randomness, p(1 - p) is largest at 0.5).",
    expected="qualified",
    correction="The unscaled mask's variance p(1 - p) does peak at p = 1/2, but the noise a unit actually sees "
    "under inverted dropout has variance p/(1 - p) x^2, which grows without bound as p -> 1; 'best' is an "
    "empirical finding for particular networks, not a property of the mask.",
    tolerance="Monte-Carlo: the sample variance within 4.5 of its standard errors (Bernoulli fourth moment)",
)
def _rate_half() -> Evidence:
    steps = mask_variances()
    argmax, inverted = steps[1].rhs, steps[2].rhs
    monotone = sp.ask(sp.Q.positive(steps[3].rhs), sp.Q.positive(p) & sp.Q.positive(1 - p))
    draws, measured = 200_000, {}
    for k, rate in enumerate((0.3, 0.5, 0.7)):
        out = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=10 + k))(jnp.ones(draws))
        var = float(jnp.var(out, ddof=1))
        want = float(inverted.subs(p, sp.Rational(str(rate))))
        # Var of the sample variance ~ (mu4 - sigma^4)/n for the two-point distribution of the scaled mask.
        mu4 = float(jnp.mean((out - jnp.mean(out)) ** 4))
        stderr = float(np.sqrt(max(mu4 - var**2, 0.0) / draws))
        measured[rate] = {"variance": var, "p/(1-p)": want, "z": abs(var - want) / stderr}
    ok = argmax == sp.Rational(1, 2) and bool(monotone) and all(m["z"] <= Z_MAX for m in measured.values())
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"argmax_p p(1 - p) = {argmax} (SymPy); Var[m/(1 - p)] = {inverted}, increasing in p; nnx.Dropout "
        "output variance for x = 1: " + ", ".join(f"p = {r}: {m['variance']:.4f} (p/(1-p) = {m['p/(1-p)']:.4f})"
                                                  for r, m in measured.items()),
        samples=3 * draws,
        dtype="float64",
        details=measured,
    )


def _ensemble_average(f, v: jax.Array, rate: float) -> jax.Array:
    """The exact average of ``f`` over all 2^n dropout masks of ``v``, each weighted by its probability."""
    n = v.shape[-1]
    masks = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=n)))
    weights = jnp.prod(jnp.where(masks == 1.0, 1 - rate, rate), axis=1)
    outputs = jax.vmap(lambda m: f(inverted_dropout(v, m == 1.0, rate)))(masks)
    return jnp.tensordot(weights, outputs, axes=1)


@claim(
    "dropout/eval-output-is-the-average-of-the-subnetworks",
    sources=["S002-29", "S004-06", "S001-10"],
    says="Training with dropout trains exponentially many sub-networks that share weights; the test-time network "
    "(no dropout) is their ensemble average, like bagging.",
    expected="qualified",
    correction="Exactly so for a layer that is linear in the dropped units (the average over all 2^n masks "
    "equals the eval output); after a nonlinearity the eval output is only an approximation of the ensemble "
    "average (the 'weight scaling inference rule').",
)
def _ensemble() -> Evidence:
    n, rate = 10, 0.5
    rngs = nnx.Rngs(params=0)
    linear = nnx.Linear(n, 3, rngs=rngs, param_dtype=jnp.float64)
    hidden, out = nnx.Linear(n, 8, rngs=rngs, param_dtype=jnp.float64), nnx.Linear(8, 1, rngs=rngs,
                                                                                  param_dtype=jnp.float64)
    v = jnp.asarray(np.random.default_rng(6).normal(size=n))

    def network(a):
        return out(nnx.relu(hidden(a)))

    exact_linear = compare(lambda: _ensemble_average(linear, v, rate), lambda: linear(v), [])
    nonlinear = compare(lambda: _ensemble_average(network, v, rate), lambda: network(v), [])
    ok = exact_linear.ok and nonlinear.max_rel_err > 1e-3
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"average over all {2**n} dropout masks (p = {rate}) of {n} inputs, each weighted by its "
        f"probability, vs the eval output: nnx.Linear({n}, 3): {exact_linear.describe()}; Linear-ReLU-Linear: "
        f"differs by {nonlinear.max_rel_err:.1%} (ensemble {float(nonlinear.worst['candidate']):.4f} vs eval "
        f"{float(nonlinear.worst['reference']):.4f})",
        max_abs_err=exact_linear.max_abs_err,
        max_rel_err=exact_linear.max_rel_err,
        samples=2**n,
        dtype=exact_linear.dtype,
        details={"nonlinear_rel_gap": nonlinear.max_rel_err},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "dropout"]) or main(["check", "dropout"]))
