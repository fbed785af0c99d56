"""The comparison harness: it accepts what agrees, and objects to what does not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from derivations.compare import compare, elementwise_grad, sample_points

points = sample_points(256, -4.0, 4.0, seed=1)


def test_sigmoid_derivative_agrees_with_autodiff():
    s = jax.nn.sigmoid
    result = compare(lambda v: s(v) * (1 - s(v)), elementwise_grad(s), [points])
    assert result.ok and result.max_rel_err <= 1e-10 and result.samples == 256 and result.dtype == "float64"


def test_wrong_sigmoid_derivative_is_rejected():
    s = jax.nn.sigmoid
    result = compare(lambda v: s(v) * (1 + s(v)), elementwise_grad(s), [points])
    assert not result.ok and result.max_rel_err > 0.1


def test_an_error_just_above_the_tolerance_is_rejected():
    result = compare(lambda v: jnp.exp(v) * (1 + 1e-9), jnp.exp, [points])
    assert not result.ok and 5e-10 < result.max_rel_err < 2e-9


def test_nan_in_the_candidate_is_a_failure():
    result = compare(lambda v: jnp.where(v > 3.9, jnp.nan, v), lambda v: v, [points])
    assert not result.ok and result.max_abs_err == np.inf


def test_matching_infinities_agree():
    inputs = jnp.asarray([1.0, jnp.inf])
    assert compare(lambda v: v * 2, lambda v: v + v, [inputs]).ok


def test_exact_zero_reference_needs_an_exact_match_or_atol():
    zero = jnp.zeros(4)
    assert not compare(lambda v: v + 1e-300, lambda v: v, [zero]).ok
    assert compare(lambda v: v + 1e-300, lambda v: v, [zero], atol=1e-299).ok


def test_shape_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match="shape mismatch"):
        compare(lambda v: v, lambda v: v[:-1], [points])
