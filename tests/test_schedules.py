"""Schedules: the closed forms against optax at every step for hypothesis-drawn configurations, and wrong
closed forms rejected."""

import numpy as np
import optax
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import schedules as sch

RTOL = 1e-10


def _close(expr, config, schedule):
    closed = sch.closed_form_values(expr, sch._substitutions(config), steps=400)
    return np.allclose(closed, sch.optax_values(schedule, steps=400), rtol=RTOL, atol=0)


@settings(max_examples=20)
@given(warmup=st.sampled_from([10, 50]), total=st.sampled_from([200, 300]), peak=st.sampled_from([0.1, 3.0]))
def test_warmup_cosine_closed_form_matches_optax(warmup, total, peak):
    config = {"init_value": 1e-4, "peak_value": peak, "warmup_steps": warmup, "decay_steps": total, "end_value": 1e-3}
    assert _close(sch.warmup_cosine().rhs, config, optax.warmup_cosine_decay_schedule(**config))


def test_warmup_cosine_check_rejects_a_cosine_over_the_whole_horizon():
    """optax counts the warm-up inside decay_steps; a cosine spanning T instead of T - W is rejected."""
    config = {"init_value": 1e-4, "peak_value": 0.1, "warmup_steps": 50, "decay_steps": 300, "end_value": 1e-3}
    wrong = sch.warmup_cosine().rhs.subs(sch.total - sch.warmup, sch.total)
    assert not _close(wrong, config, optax.warmup_cosine_decay_schedule(**config))


@settings(max_examples=20)
@given(first=st.sampled_from([20, 100]), scale=st.sampled_from([0.1, 0.5]))
def test_step_decay_closed_form_matches_optax(first, scale):
    config = {"init_value": 0.1, "boundaries_and_scales": {first: scale, 250: 0.1}}
    assert _close(sch.step_decay(config["boundaries_and_scales"]), config, optax.piecewise_constant_schedule(**config))


def test_step_decay_check_rejects_a_boundary_that_applies_one_step_late():
    config = {"init_value": 0.1, "boundaries_and_scales": {100: 0.1}}
    late = sch.init * sp.Piecewise((0.1, sch.step > 100), (1, True))
    assert not _close(late, config, optax.piecewise_constant_schedule(**config))


@pytest.mark.parametrize("staircase", [False, True])
@settings(max_examples=10)
@given(period=st.sampled_from([10, 37]), rate=st.sampled_from([0.5, 0.96]))
def test_exponential_decay_closed_form_matches_optax(staircase, period, rate):
    config = {"init_value": 0.1, "transition_steps": period, "decay_rate": rate}
    expr = sch.exponential_decay()[1 if staircase else 0].rhs
    assert _close(expr, config, optax.exponential_decay(**config, staircase=staircase))


def test_exponential_check_rejects_the_continuous_form_against_the_staircase():
    config = {"init_value": 0.1, "transition_steps": 10, "decay_rate": 0.5}
    assert not _close(sch.exponential_decay()[0].rhs, config, optax.exponential_decay(**config, staircase=True))


def test_optax_int32_counter_gives_float32_schedules():
    """Why the checks feed int64 counts: optax's own int32 counter makes linear warm-up float32."""
    import jax.numpy as jnp

    values = optax.linear_schedule(1e-4, 0.1, 100)(jnp.arange(5, dtype=jnp.int32))
    assert values.dtype == jnp.float32


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="boundary must be a positive integer"):
        sch.step_decay({0.5: 0.1})
    with pytest.raises(ValueError, match="scales must be >= 0"):
        sch.step_decay({10: -0.1})
    with pytest.raises(ValueError, match="decay_steps must exceed"):
        sch.optax_warmup_plateau_cosine(1e-4, 0.1, 100, 200, 250, 1e-3)
