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
    np.testing.assert_allclose(drop._ensemble_average(layer, v, 0.3), layer(v), rtol=1e-12)


def test_ensemble_harness_rejects_a_wrong_scaling():
    """Negative control: averaging plain (unscaled) dropout misses the eval output by the keep factor."""
    layer = nnx.Linear(6, 2, rngs=nnx.Rngs(params=1), param_dtype=jnp.float64, use_bias=False)
    v = jnp.asarray(np.random.default_rng(2).normal(size=6))
    average = drop._ensemble_average(lambda a: layer(a * (1 - 0.3)), v, 0.3)  # undo the 1/(1-p)
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
