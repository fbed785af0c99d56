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


def test_eight_devices_average_to_the_numpy_full_batch_gradient_and_max_does_not():
    from derivations import _sharded_gradient as child

    run = bat.sharded_run()
    full = bat.numpy_gradient(*child.problem())
    assert run["devices"] == bat.DEVICES
    np.testing.assert_allclose(run["pmean_of_mean_loss"], full, rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(run["sharded_jit"], full, rtol=RTOL, atol=1e-300)
    assert not np.allclose(run["pmax_of_mean_loss"], full, rtol=1e-3)
    np.testing.assert_allclose(run["psum_of_mean_loss"], bat.DEVICES * full, rtol=RTOL, atol=1e-300)


@given(batch=st.sampled_from([1, 5, 16]), seed=st.integers(0, 3))
def test_numpy_backprop_reference_matches_autodiff(batch, seed):
    params, x, y = bat.problem(batch, seed)
    np.testing.assert_allclose(
        bat.numpy_gradient(params, x, y), bat.flat(jax.grad(bat.mean_loss)(params, x, y)), rtol=RTOL, atol=1e-300
    )
    np.testing.assert_allclose(
        bat.numpy_gradient(params, x, y, reduction="sum"),
        batch * bat.numpy_gradient(params, x, y),
        rtol=RTOL,
        atol=1e-300,
    )


def test_a_biased_minibatch_sampler_is_caught():
    """Negative control for the unbiasedness check: always the first B examples is not the full gradient on average."""
    params, x, y = bat.problem(256)
    per_example = np.asarray(bat.per_example_gradients(params, x, y))
    full = bat.numpy_gradient(params, x, y)
    keys = jax.random.split(jax.random.key(0), 2000)
    fair = np.asarray(jax.vmap(lambda k: jax.random.permutation(k, 256)[:8])(keys))
    for chosen, should_pass in ((fair, True), (np.tile(np.arange(8), (2000, 1)) + np.arange(2000)[:, None] % 2, False)):
        estimates = per_example[chosen].mean(axis=1)
        spread = estimates.std(axis=0, ddof=1) / np.sqrt(len(chosen))
        z = np.abs(estimates.mean(axis=0) - full) / np.where(spread > 0, spread, 1e-300)
        assert bool(np.all(z <= 4.5)) is should_pass


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="examples must be >= 1"):
        bat.problem(0)
    with pytest.raises(ValueError, match="sizes must be at least two positive integers"):
        MLP((3,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="batch must be in"):
        bat.minibatch_variance(1.0, 12, 13)
    with pytest.raises(ValueError, match="reduction must be"):
        bat.numpy_gradient(*bat.problem(2), reduction="max")
