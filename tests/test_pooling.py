"""Pooling: the derived backward rules against jax.vjp of Flax's pooling at hypothesis-drawn inputs, the
gradient-sum rule, unpooling, SPP and the harness's negative controls."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import pooling as pl
from derivations.compare import RTOL, compare
from derivations.harness import xla_flops
from models.conv import conv2d
from models.pooling import (
    SpatialPyramidPooling,
    avg_pool,
    avg_pool_as_conv,
    avg_pool_backward,
    max_pool,
    max_pool_backward,
    max_unpool,
    spatial_pyramid_pool,
)

cases = st.sampled_from(pl.BACKWARD_CASES)


def _draw(shape, seed, ties):
    x = np.random.default_rng(seed).normal(size=shape)
    return jnp.asarray(np.round(x) if ties else x)


@functools.cache
def _poolings(win: int, stride: int) -> tuple:
    """Max and average pooling at one window and stride, the same function objects for every example (so each is
    compiled once per shape)."""
    return functools.partial(max_pool, window=win, stride=stride), functools.partial(avg_pool, window=win,
                                                                                      stride=stride)


@given(case=cases, seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool_backward_matches_vjp(case, seed, ties):
    size, win, stride = case
    x = _draw((2, size, size, 3), seed, ties)
    dy = _draw(jax.eval_shape(_poolings(win, stride)[0], x).shape, seed + 1, False)
    # Both in one compiled program per case (eagerly, every primitive of every example dispatches on its own).
    derived, by_vjp = pl._derived_and_vjp(max_pool_backward, max_pool, x, dy, win, stride)
    np.testing.assert_array_equal(derived, by_vjp)


@given(case=cases, seed=st.integers(0, 2**16))
def test_avg_pool_backward_matches_vjp(case, seed):
    size, win, stride = case
    x = _draw((2, size, size, 3), seed, False)
    dy = _draw(jax.eval_shape(_poolings(win, stride)[1], x).shape, seed + 1, False)
    derived, by_vjp = pl._derived_and_vjp(avg_pool_backward, avg_pool, x, dy, win, stride)
    np.testing.assert_allclose(derived, by_vjp, rtol=RTOL, atol=1e-15)


def test_backward_harness_rejects_routing_to_the_argmin():
    def to_argmin(x, dy, win, stride):
        return max_pool_backward(-x, dy, win, stride)

    assert not all(c.ok for c in pl.backward_check(to_argmin, max_pool))


def test_backward_harness_rejects_an_average_without_the_division():
    def undivided(x, dy, win, stride):
        return avg_pool_backward(x, dy * win**2, win, stride)

    assert not any(c.ok for c in pl.backward_check(undivided, avg_pool))


@given(case=cases, seed=st.integers(0, 2**16), ties=st.booleans())
def test_gradient_sum_is_preserved_by_valid_pooling(case, seed, ties):
    size, win, stride = case
    x = _draw((1, size, size, 2), seed, ties)
    for pool in _poolings(win, stride):
        dy = _draw(jax.eval_shape(pool, x).shape, seed + 1, False)
        total_dy, total_dx = pl.gradient_sums(pool, x, dy)
        assert abs(total_dx - total_dy) <= 1e-12 * np.abs(np.asarray(dy)).sum()


def test_gradient_sum_is_not_preserved_when_padding_counts_in_the_average():
    x = jnp.ones((1, 5, 5, 1))
    dy = jnp.ones((1, 5, 5, 1))
    total_dy, total_dx = pl.gradient_sums(lambda v: nnx.avg_pool(v, (3, 3), (1, 1), "SAME"), x, dy)
    assert total_dx < total_dy - 1.0


@given(seed=st.integers(0, 2**16))
def test_max_unpooling_puts_each_value_at_its_argmax(seed):
    x = _draw((1, 6, 6, 2), seed, False)
    values = _draw((1, 3, 3, 2), seed + 1, False)
    out = np.asarray(max_unpool(values, x, 2, 2))
    xs = np.asarray(x)
    for i in range(3):
        for j in range(3):
            for c in range(2):
                window = xs[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                placed = np.zeros((2, 2))
                placed[np.unravel_index(window.argmax(), (2, 2))] = values[0, i, j, c]
                np.testing.assert_array_equal(out[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c], placed)


@given(
    h=st.sampled_from([4, 5, 9, 16]), w=st.sampled_from([4, 7, 12]), levels=st.sampled_from([(1,), (1, 2), (1, 2, 4)])
)
def test_spp_output_length_depends_only_on_levels_and_channels(h, w, levels):
    shape = jax.eval_shape(
        lambda v: spatial_pyramid_pool(v, levels), jax.ShapeDtypeStruct((2, h, w, 3), jnp.float64)
    ).shape
    assert shape == (2, 3 * sum(n * n for n in levels))


def test_spp_bins_cover_the_whole_input():
    """Each input pixel lies in a bin of every level: a spike anywhere appears once per level."""
    for i, j in [(0, 0), (4, 6), (6, 2)]:
        x = jnp.zeros((1, 7, 7, 1)).at[0, i, j, 0].set(1.0)
        assert float(spatial_pyramid_pool(x, (1, 2, 4)).sum()) >= 3


def test_spp_rejects_an_input_smaller_than_its_finest_level():
    with pytest.raises(ValueError, match="smaller than the finest level"):
        spatial_pyramid_pool(jnp.zeros((1, 3, 3, 1)), (1, 2, 4))
    with pytest.raises(ValueError, match="levels must be positive"):
        SpatialPyramidPooling(levels=(0, 2))


@given(win=st.sampled_from([2, 3, 4]), seed=st.integers(0, 2**16))
def test_average_pooling_equals_a_fixed_kernel_strided_conv(win, seed):
    x = _draw((2, 12, 12, 3), seed, False)
    np.testing.assert_allclose(avg_pool_as_conv(x, win), avg_pool(x, win, win), rtol=RTOL, atol=1e-15)


def test_max_pooling_is_not_a_fixed_kernel_conv():
    x = _draw((1, 8, 8, 1), 0, False)
    assert not np.allclose(avg_pool_as_conv(x, 2), max_pool(x, 2, 2))


def test_a_shift_within_the_window_leaves_max_pooling_unchanged_and_across_it_does_not():
    spot = jnp.zeros((1, 8, 8, 1)).at[0, 2, 2, 0].set(1.0)
    assert pl.shift_damping(spot, (0, 1), 2)[1] == 0.0
    assert pl.shift_damping(spot, (0, 2), 2)[1] > 0.0


def test_correlation_is_one_for_an_affine_copy_and_near_zero_for_independent_noise():
    x, y = _draw((4, 16, 16, 2), 1, False), _draw((4, 16, 16, 2), 2, False)
    assert abs(pl.correlation(x, 3 * x + 1) - 1) <= 1e-12
    assert abs(pl.correlation(x, y)) < 0.1


def test_relative_l2_change_of_pooled_maps_is_small_even_for_unrelated_inputs():
    # Why the chapter grades invariance by correlation: maxima share a large mean, so the relative L2 change
    # between the pooled maps of two independent inputs is far below the inputs' own (about 1.41).
    x, y = _draw((4, 16, 16, 2), 1, False), _draw((4, 16, 16, 2), 2, False)
    assert pl.relative_change(max_pool(x, 2, 2), max_pool(y, 2, 2)) < 0.9 < 1.3 < pl.relative_change(x, y)
    assert abs(pl.correlation(max_pool(x, 2, 2), max_pool(y, 2, 2))) < 0.15


@given(seed=st.integers(0, 2**16), win=st.sampled_from([2, 4]))
def test_max_pooling_raises_the_correlation_of_a_one_pixel_shift(seed, win):
    x = _draw((2, 16, 16, 2), seed, False)
    moved = jnp.roll(x, (0, 1), axis=(1, 2))
    assert pl.correlation(max_pool(x, win, win), max_pool(moved, win, win)) > pl.correlation(x, moved)


def test_additivity_check_accepts_average_pooling_and_rejects_max_pooling():
    u, v = _draw((2, 8, 8, 3), 10, False), _draw((2, 8, 8, 3), 11, False)
    for pool, linear in ((avg_pool, True), (max_pool, False)):
        additivity = compare(
            lambda q, pool=pool: pool(q + v, 2, 2), lambda q, pool=pool: pool(q, 2, 2) + pool(v, 2, 2), [u]
        )
        assert additivity.ok is linear


def test_max_pooling_undoes_a_2x_nearest_zoom_exactly():
    x = _draw((1, 6, 6, 2), 3, False)
    zoomed = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(max_pool(zoomed, 2, 2), x)
    assert max_pool(zoomed, 2, 2).shape != max_pool(x, 2, 2).shape


def test_pooling_divides_the_next_convs_flops_at_least_k_squared_and_no_pooling_does_not():
    kernel = jnp.zeros((3, 3, 4, 4))

    def flops(side):
        return xla_flops(functools.partial(conv2d, padding=1), jnp.zeros((1, side, side, 4)), kernel)

    assert flops(8) * 2**2 <= flops(16)
    assert not flops(16) * 2**2 <= flops(16)


@given(seed=st.integers(0, 2**16))
def test_displayed_max_gradient_sum_is_one_and_matches_autodiff_at_random_windows(seed):
    _, max_eq = pl.gradient_sum()
    point = np.random.default_rng(seed).normal(size=4)
    displayed = pl.evaluate_at(max_eq, dict(zip(pl.window, point, strict=True)))
    assert displayed == float(jnp.sum(jax.grad(jnp.max)(jnp.asarray(point)))) == 1.0


def test_displayed_max_gradient_sum_rejects_a_wrong_formula_and_shows_sympys_tie_convention():
    import sympy as sp

    top = sp.Max(*pl.window)
    wrong = 4 * sp.diff(top, pl.window[0])  # every term taken with respect to x1
    point = dict(zip(pl.window, (0.3, 1.2, -0.5, 0.1), strict=True))
    assert pl.evaluate_at(wrong, point) != 1.0
    # At an exact 4-way tie SymPy's Heaviside(0) = 1/2 gives each entry 1/2: the displayed sum is 2, not 1.
    _, max_eq = pl.gradient_sum()
    assert pl.evaluate_at(max_eq, dict.fromkeys(pl.window, 1.0)) == 2.0
