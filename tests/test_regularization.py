"""Regularisation: the L1/L2 minimisers against brute force (with negative controls), the proximal and
subgradient runs, weight decay under SGD and Adam, and input validation."""

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derivations import regularization as reg
from derivations.bridge import to_jax

GRID = jnp.linspace(-6, 6, 120001)


@functools.cache
def _compiled(expr, symbols):
    return to_jax(expr, list(symbols))


def _brute_force_argmin(objective, a_value, lam_value):
    f = _compiled(objective, (reg.w, reg.a, reg.lam))
    return float(GRID[jnp.argmin(f(GRID, a_value, lam_value))])


@pytest.mark.parametrize("name", ["l1", "l2"])
@given(a_value=st.floats(-4, 4, allow_nan=False), lam_value=st.sampled_from([0.25, 1.0, 2.0]))
def test_closed_form_minimiser_matches_brute_force(name, a_value, lam_value):
    objective = reg.l1_objective() if name == "l1" else reg.l2_objective()
    minimiser = reg.l1_minimiser().rhs if name == "l1" else reg.l2_minimiser().rhs
    got = float(_compiled(minimiser, (reg.a, reg.lam))(a_value, lam_value))
    assert abs(got - _brute_force_argmin(objective, a_value, lam_value)) <= 1e-4  # the grid's spacing


def test_minimiser_harness_rejects_the_l2_form_for_the_l1_objective():
    a_value, lam_value = 0.5, 1.0
    wrong = float(_compiled(reg.l2_minimiser().rhs, (reg.a, reg.lam))(a_value, lam_value))
    assert abs(wrong - _brute_force_argmin(reg.l1_objective(), a_value, lam_value)) > 0.1


@given(a_value=st.floats(-3, 3, allow_nan=False), lam_value=st.sampled_from([0.5, 1.0]))
def test_soft_threshold_is_exactly_zero_iff_abs_a_at_most_lambda(a_value, lam_value):
    got = float(reg._soft_threshold_jax()(a_value, lam_value))
    assert (got == 0.0) == (abs(a_value) <= lam_value)


def test_soft_threshold_equals_the_piecewise_minimiser_symbolically_at_fixed_lambda():
    for v in (sp.Rational(1, 3), 2):
        diff = reg.l1_minimiser().rhs.subs(reg.lam, v) - reg.soft_threshold().rhs.subs(reg.lam, v)
        points = np.linspace(-4, 4, 81)
        assert max(abs(float(diff.subs(reg.a, p))) for p in points) == 0.0


def test_proximal_l1_gives_exact_zeros_and_subgradient_and_l2_do_not():
    zeros = {k: int(jnp.sum(reg.penalised_run(k) == 0.0)) for k in ("l1-proximal", "l1-subgradient", "l2")}
    assert zeros["l1-proximal"] >= 40 and zeros["l1-subgradient"] == 0 and zeros["l2"] == 0


def test_penalised_run_with_zero_strength_is_plain_least_squares():
    x, y, _ = reg.sparse_problem()
    got = reg.penalised_run("l1-proximal", 0.0, steps=3000)
    want = jnp.linalg.lstsq(x, y)[0]
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("kind", "strength", "match"), [("l3", 0.1, "kind must be"), ("l2", -1.0, "strength")])
def test_penalised_run_rejects_bad_arguments(kind, strength, match):
    with pytest.raises(ValueError, match=match):
        reg.penalised_run(kind, strength)


def test_sgd_weight_decay_derivation_is_a_decay_factor():
    step = reg.sgd_weight_decay().rhs
    assert sp.expand(step - ((1 - reg.eta * reg.lam) * reg.w - reg.eta * reg.g)) == 0


@given(grad=st.floats(-3, 3).filter(lambda v: abs(v) > 1e-3), weight=st.floats(-3, 3), lr=st.sampled_from([0.1, 0.01]))
def test_first_adam_and_adamw_steps_match_the_derived_forms(grad, weight, lr):
    decay = 0.5
    g_l2 = grad + decay * weight
    if abs(g_l2) < 1e-3:
        return
    w0 = jnp.asarray([weight])
    adam = optax.adam(lr, eps=0.0)
    update_adam = adam.update(jnp.asarray([g_l2]), adam.init(w0), w0)[0]
    adamw = optax.adamw(lr, eps=0.0, weight_decay=decay)
    update_adamw = adamw.update(jnp.asarray([grad]), adamw.init(w0), w0)[0]
    subs = {reg.eta: lr, reg.g: grad, reg.w: weight, reg.lam: decay}
    derived_adam, derived_adamw = (float(eq.rhs.subs(subs)) for eq in reg.adam_first_step())
    assert abs(float(update_adam[0]) - derived_adam) <= 1e-12 * abs(derived_adam)
    assert abs(float(update_adamw[0]) - derived_adamw) <= 1e-12 * abs(derived_adamw) + 1e-15


def test_norm_definitions_reject_the_notes_l2_without_root():
    v = jnp.asarray([3.0, 4.0])
    assert float(jnp.sum(v**2)) != float(jnp.linalg.norm(v)) and float(jnp.linalg.norm(v)) == 5.0


def test_early_stopping_minimum_is_interior_and_validation_rises_after_it():
    train, val = reg.early_stopping_curves()
    best = int(np.argmin(val))
    assert 0 < best < len(val) - 1 and val[-1] > val[best] and train[-1] < train[best]


def test_validation_minimum_is_near_best_on_held_out_data_and_training_to_the_end_is_not():
    _, val = reg.early_stopping_curves()
    test = reg.early_stopping_test_curve()
    best = int(np.argmin(val))
    assert test[best] <= 1.05 * float(np.min(test))
    # Negative control: the same criterion rejects stopping at the last step (or at the first).
    assert test[-1] > 1.05 * float(np.min(test)) and test[0] > 1.05 * float(np.min(test))


@pytest.mark.parametrize(("lr", "decay"), [(0.01, 0.1), (0.1, 1.0)])
def test_sgd_on_l2_penalty_is_exactly_decoupled_weight_decay(lr, decay):
    x, y, _ = reg.sparse_problem()
    v0 = jnp.asarray(np.random.default_rng(1).normal(size=x.shape[1]))
    coupled, decoupled = reg.sgd_trajectories(x, y, lr=lr, decay=decay, steps=50, v0=v0)
    np.testing.assert_allclose(decoupled, coupled, rtol=1e-10, atol=1e-14)


def test_decay_equivalence_rejects_a_half_strength_penalty():
    """Negative control: SGD on L + (lambda/4)||w||^2 is not decay by (1 - eta lambda)."""
    x, y, _ = reg.sparse_problem()
    v0 = jnp.asarray(np.random.default_rng(1).normal(size=x.shape[1]))
    coupled, _ = reg.sgd_trajectories(x, y, lr=0.01, decay=0.05, steps=50, v0=v0)
    _, decoupled = reg.sgd_trajectories(x, y, lr=0.01, decay=0.1, steps=50, v0=v0)
    assert float(jnp.max(jnp.abs(coupled - decoupled))) > 1e-3


def test_adam_l2_decays_weights_with_large_gradients_less_and_adamw_alike():
    effect = reg.adam_decay_per_weight(np.array([1e-2, 1.0, 1e2]), lr=1e-3, decay=0.1, steps=50)
    assert np.all(np.diff(effect["adam_l2"]) < 0) and effect["adam_l2"][0] > 100 * effect["adam_l2"][-1]
    assert np.ptp(effect["adamw"]) <= 0.1 * effect["adamw"].mean()


def test_patience_stop_finds_a_plain_minimum_and_stops_early_on_a_plateau():
    val = np.array([5.0, 4.0, 3.0, 3.0, 3.0, 1.0, 2.0])
    assert reg.patience_stop(val, 10) == 5
    assert reg.patience_stop(val, 2) == 2  # the plateau ends the run before the deeper minimum
    with pytest.raises(ValueError, match="patience"):
        reg.patience_stop(val, 0)
