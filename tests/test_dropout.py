"""Dropout: the gradient through nnx.Dropout is the forward mask scaled by 1/(1 - p), the expectations the
chapter derives, the ensemble average, and negative controls for the Monte-Carlo and ensemble harnesses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import dropout as drop
from derivations.compare import compare
from models.dropout import PlainDropout, inverted_dropout, keep_mask


@given(rate=st.sampled_from([0.1, 0.5, 0.8]), seed=st.integers(0, 2**16))
def test_gradient_through_dropout_is_the_forward_mask_scaled(rate, seed):
    rng = np.random.default_rng(seed)
    v, dy = jnp.asarray(rng.normal(size=64)), jnp.asarray(rng.normal(size=64))
    module = nnx.Dropout(rate)
    key = jax.random.key(seed)
    y, pullback = jax.vjp(lambda a: module(a, rngs=key), v)
    mask = y != 0
    np.testing.assert_allclose(pullback(dy)[0], jnp.where(mask, dy / (1 - rate), 0.0), rtol=1e-15, atol=0)
    np.testing.assert_allclose(inverted_dropout(v, mask, rate), y, rtol=1e-15, atol=0)


def test_symbolic_expectations_are_keep_probability_and_identity():
    plain, inverted = (eq.rhs for eq in drop.training_expectations())
    assert sp.simplify(plain - (1 - drop.p) * drop.x) == 0
    assert sp.simplify(inverted - drop.x) == 0


def test_mask_variance_peaks_at_one_half_and_inverted_variance_grows():
    steps = drop.mask_variances()
    assert steps[1].rhs == sp.Rational(1, 2)
    assert sp.simplify(steps[2].rhs - drop.p / (1 - drop.p)) == 0


def test_monte_carlo_harness_rejects_the_notes_factor():
    """Negative control: the z-score harness must object to a wrong eval factor (p instead of 1 - p)."""
    module = PlainDropout(0.2, rngs=nnx.Rngs(dropout=0))
    train = drop.training_draws(module, drop.VALUES, 5000)
    assert drop.z_scores(train, drop.VALUES * 0.8).max() <= drop.Z_MAX
    assert drop.z_scores(train, drop.VALUES * 0.2).min() > drop.Z_MAX
    assert drop.z_scores(train, drop.VALUES * 0.75).max() > drop.Z_MAX  # a 6 % error is also caught


def test_ensemble_average_of_a_linear_layer_is_the_eval_output():
    layer = nnx.Linear(6, 2, rngs=nnx.Rngs(params=1), param_dtype=jnp.float64)
    v = jnp.asarray(np.random.default_rng(2).normal(size=6))
    np.testing.assert_allclose(drop.ensemble_average(layer, v, 0.3), layer(v), rtol=1e-12)


def test_ensemble_harness_rejects_a_wrong_scaling():
    """Negative control: averaging plain (unscaled) dropout misses the eval output by the keep factor."""
    layer = nnx.Linear(6, 2, rngs=nnx.Rngs(params=1), param_dtype=jnp.float64, use_bias=False)
    v = jnp.asarray(np.random.default_rng(2).normal(size=6))
    average = drop.ensemble_average(lambda a: layer(a * (1 - 0.3)), v, 0.3)  # undo the 1/(1-p)
    assert not np.allclose(average, layer(v), rtol=1e-3)
    np.testing.assert_allclose(average, 0.7 * layer(v), rtol=1e-12)


def test_plain_dropout_eval_multiplies_by_the_keep_probability():
    module = PlainDropout(0.25, rngs=nnx.Rngs(dropout=0))
    v = jnp.asarray([1.0, -2.0, 4.0])
    module.eval()
    np.testing.assert_allclose(module(v), 0.75 * v, rtol=1e-15)
    module.train()
    out = module(jnp.ones(10_000))
    assert set(np.unique(np.asarray(out)).tolist()) <= {0.0, 1.0}


def test_keep_mask_keeps_the_right_fraction():
    mask = keep_mask(jax.random.key(0), (100_000,), 0.3)
    assert abs(float(jnp.mean(mask)) - 0.7) <= 4.5 * np.sqrt(0.21 / 100_000)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_invalid_rates_raise_value_error(rate):
    with pytest.raises(ValueError, match="rate"):
        PlainDropout(rate)
    with pytest.raises(ValueError, match="rate"):
        inverted_dropout(jnp.ones(3), jnp.ones(3, bool), rate)


@pytest.mark.parametrize("n", [1, 2])
def test_dropout_squared_error_is_plain_error_plus_weighted_l2(n):
    expected, penalty = drop.linear_regression_loss(n)
    assert sp.simplify(expected - penalty) == 0


def test_monte_carlo_harness_rejects_a_wrong_l2_weight():
    """Negative control: the z-score harness must object to the penalty weight p (instead of p/(1 - p)) and
    to no penalty at all, while accepting p/(1 - p)."""
    rate, w, v, y = 0.3, jnp.asarray([0.8, -1.5, 2.0]), jnp.asarray([1.2, 0.7, -0.4]), 0.5
    out = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=5))(jnp.broadcast_to(v, (100_000, 3)))
    squared_error = ((y - out @ w) ** 2)[:, None]
    plain, l2 = (y - v @ w) ** 2, jnp.sum(w**2 * v**2)
    assert drop.z_scores(squared_error, (plain + rate / (1 - rate) * l2)[None]).max() <= drop.Z_MAX
    assert drop.z_scores(squared_error, (plain + rate * l2)[None]).min() > drop.Z_MAX
    assert drop.z_scores(squared_error, plain[None]).min() > drop.Z_MAX


def test_ensemble_average_after_a_relu_differs_from_the_eval_output():
    rngs = nnx.Rngs(params=3)
    hidden = nnx.Linear(6, 5, rngs=rngs, param_dtype=jnp.float64)
    out = nnx.Linear(5, 1, rngs=rngs, param_dtype=jnp.float64)

    def network(a):
        return out(nnx.relu(hidden(a)))

    v = jnp.asarray(np.random.default_rng(4).normal(size=6))
    assert not compare(lambda: drop.ensemble_average(network, v, 0.5), lambda: network(v), []).ok


def test_test_factor_check_can_fail_where_p_equals_one_minus_p():
    """Negative control: restricted to p = 1/2, where p = 1 - p, the note's factor is right and the refutation
    fails (the engine computes 'holds', not the recorded 'refuted')."""
    import dataclasses

    from derivations.claims import claims_for

    (factor,) = claims_for(["dropout/test-time-weights-are-multiplied-by-p"])
    assert factor.run_check().verdict == "refuted"
    at_half = dataclasses.replace(factor, scope={**factor.scope, "rates": [0.5]})
    assert at_half.run_check().verdict == "holds"


@pytest.mark.parametrize("rate", [0.0, 0.99])
def test_gradient_and_expectation_at_the_edge_rates(rate):
    """p = 0 keeps everything (dx = dy, no spread: only float64 rounding is allowed); p = 0.99 scales by 100."""
    v, dy = jnp.linspace(-1.0, 1.0, 64), jnp.ones(64)
    module = nnx.Dropout(rate)
    y, pullback = jax.vjp(lambda a: module(a, rngs=jax.random.key(1)), v)
    mask = y != 0
    np.testing.assert_allclose(pullback(dy)[0], jnp.where(mask, dy / (1 - rate), 0.0), rtol=1e-15, atol=0)
    train = drop.training_draws(nnx.Dropout(rate, rngs=nnx.Rngs(dropout=0)), drop.VALUES, 20000)
    assert drop.z_scores(train, drop.VALUES).max() <= drop.Z_MAX
    if rate == 0.0:
        assert drop.z_scores(train, drop.VALUES * 1.001).min() > drop.Z_MAX  # no spread, wrong target
