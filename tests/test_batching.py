"""Batching: per-example gradients vs the gradient of the mean for hypothesis-drawn batches, the minibatch
variance formula against enumeration (and the with-replacement formula rejected), the 8-device run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import batching as bat
from models.mlp import MLP

RTOL = 1e-10


@given(batch=st.sampled_from([1, 4, 16]), seed=st.integers(0, 2**16))
def test_mean_of_per_example_gradients_is_the_gradient_of_the_mean(batch, seed):
    params, x, y = bat.problem(batch, seed % 4)
    x = x + jnp.asarray(np.random.default_rng(seed).normal(size=x.shape))
    per_example = bat.per_example_gradients(params, x, y)
    want = bat.flat(jax.grad(bat.mean_loss)(params, x, y))
    np.testing.assert_allclose(per_example.mean(axis=0), want, rtol=RTOL, atol=1e-300)


def test_the_sum_of_per_example_gradients_is_not_the_gradient_of_the_mean():
    params, x, y = bat.problem(8)
    want = bat.flat(jax.grad(bat.mean_loss)(params, x, y))
    assert not np.allclose(bat.per_example_gradients(params, x, y).sum(axis=0), want, rtol=RTOL)


def test_minibatch_variance_formula_matches_enumeration_and_with_replacement_does_not():
    stats = bat.enumerated_minibatch_statistics()
    sigma2, n = stats["population_variance"], bat.ENUMERATED
    for b in (2, 5, 11):
        measured = stats["by_batch"][b]["variance"]
        assert abs(bat.minibatch_variance(sigma2, n, b) - measured) <= RTOL * measured
        assert abs(sigma2 / b - measured) > 0.05 * measured  # sigma^2/B, sampling with replacement


def test_derived_variance_reduces_to_sigma2_at_b1_and_zero_at_b_n():
    expr = bat.minibatch_gradient_variance().rhs
    assert sp.simplify(expr.subs(bat.B, 1) - bat.sigma2) == 0
    assert sp.simplify(expr.subs(bat.B, bat.N)) == 0


def test_eight_devices_average_to_the_full_batch_gradient_and_max_does_not():
    run = bat.sharded_run()
    full = np.asarray(run["full_batch_mean"])
    assert run["devices"] == bat.DEVICES
    np.testing.assert_allclose(run["pmean_of_mean_loss"], full, rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(run["sharded_jit"], full, rtol=RTOL, atol=1e-300)
    assert not np.allclose(run["pmax_of_mean_loss"], full, rtol=1e-3)
    np.testing.assert_allclose(run["psum_of_mean_loss"], bat.DEVICES * full, rtol=RTOL, atol=1e-300)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="examples must be >= 1"):
        bat.problem(0)
    with pytest.raises(ValueError, match="sizes must be at least two positive integers"):
        MLP((3,), rngs=nnx.Rngs(0))
