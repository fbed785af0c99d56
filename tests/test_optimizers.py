"""Optimizers: every SymPy update rule against optax at every step for hypothesis-drawn gradient sequences,
the wrong conventions each rejected, the stability bound, Newton vs GD and the hyper-gradient."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import optimizers as opt

RTOL = 1e-10


@functools.cache
def _optax_run(name):
    return jax.jit(lambda grads: opt.optax_updates(opt.RULES[name][4](), grads))


def _symbolic(name, rule, grads):
    _, initial, hyper, values, _ = opt.RULES[name]
    return opt.symbolic_updates(rule, initial, hyper, values, grads)


@pytest.mark.parametrize("name", sorted(opt.RULES))
@settings(max_examples=8)
@given(seed=st.integers(0, 2**16))
def test_symbolic_rule_matches_optax_at_every_step(name, seed):
    grads = opt.test_gradients(seed=seed)
    np.testing.assert_allclose(_symbolic(name, opt.RULES[name][0], grads), _optax_run(name)(grads), rtol=RTOL, atol=0)


def _damped_momentum(grad, state, step):
    (v,) = state
    v = opt.mu * v + (1 - opt.mu) * grad
    return -opt.eta * v, (v,)


def _adam_eps_inside(grad, state, step):
    m, v = state
    m = opt.beta1 * m + (1 - opt.beta1) * grad
    v = opt.beta2 * v + (1 - opt.beta2) * grad**2
    return -opt.eta * m / (1 - opt.beta1**step) / sp.sqrt(v / (1 - opt.beta2**step) + opt.eps), (m, v)


@pytest.mark.parametrize(
    ("name", "wrong", "initial"),
    [
        ("adam", opt.adam_without_bias_correction_step, None),
        ("adam", _adam_eps_inside, None),
        ("momentum", _damped_momentum, None),
        ("nesterov", opt.momentum_step, None),
        ("adagrad", opt.adagrad_step, (0,)),
        ("rmsprop", opt.adagrad_step, (0,)),
    ],
    ids=["adam-no-bias-correction", "adam-eps-inside-root", "momentum-damped", "nesterov-as-plain-momentum",
         "adagrad-zero-initial-accumulator", "rmsprop-as-adagrad"],
)
def test_rule_harness_rejects_a_wrong_convention(name, wrong, initial):
    _, default_initial, hyper, values, _ = opt.RULES[name]
    grads = opt.test_gradients()
    if name == "rmsprop":  # AdaGrad's symbols in place of RMSProp's: rho's value becomes s_0's slot
        hyper, values = (opt.eta, opt.s0, opt.eps), values
    got = opt.symbolic_updates(wrong, initial or default_initial, hyper, values, grads)
    assert not np.allclose(got, _optax_run(name)(grads), rtol=RTOL, atol=0)


def test_rule_vs_optax_reports_the_rejection_of_uncorrected_adam():
    result = opt.rule_vs_optax("adam", opt.adam_without_bias_correction_step)
    assert not result.ok and result.max_rel_err > 1.0


def test_adam_first_step_is_lr_for_every_gradient_scale():
    for scale in (1e-5, 1.0, 1e5):
        g = jnp.asarray([scale, -scale])
        update = optax.adam(1e-3).update(g, optax.adam(1e-3).init(g))[0]
        np.testing.assert_allclose(jnp.abs(update), 1e-3 * scale / (scale + 1e-8), rtol=RTOL)


def test_stability_bound_is_zero_to_two_over_l():
    assert opt.stable_learning_rates() == sp.Interval.open(0, 2 / opt.L)


def test_stability_check_rejects_the_bound_one_over_l():
    table = opt.stability_table(bound=1 / opt.L)
    disagreements = [k for k, row in table.items() if (row["loss_ratio"] < 1) != row["bound_says_converges"]]
    assert disagreements == ["1/L", "1.5/L", "1.9/L"]  # the open interval (0, 1/L) excludes 1/L itself


@given(kappa=st.sampled_from([2.0, 30.0]), seed=st.integers(0, 100))
@settings(max_examples=8)
def test_gd_step_count_is_the_derived_one_and_newton_needs_one(kappa, seed):
    eigenvalues = np.asarray([1.0, kappa])
    a, x_star, x0 = opt.quadratic(eigenvalues, seed)
    evals, q = np.linalg.eigh(np.asarray(a))
    predicted = opt.predicted_gd_steps(evals, q.T @ np.asarray(x0 - x_star), 1 / kappa, 1e-6)
    assert opt.gd_steps_to_tolerance(a, x_star, x0, 1 / kappa, 1e-6) == predicted
    f = opt.quadratic_loss(a, x_star)
    x1 = x0 - jnp.linalg.solve(jax.hessian(f)(x0), jax.grad(f)(x0))
    np.testing.assert_allclose(x1, x_star, rtol=1e-12, atol=1e-14)


def test_hypergradient_closed_form_matches_autodiff_and_a_wrong_one_does_not():
    data = opt.regression_problem()
    autodiff = float(jax.grad(opt.validation_loss_after_training)(jnp.asarray(0.1), data))
    assert abs(opt.hypergradient_closed_form(0.1, data) - autodiff) <= RTOL * abs(autodiff)
    wrong = sp.diff(opt.unrolled_gd_iterate(), opt.eta) / opt.K  # the factor K dropped
    assert abs(opt.hypergradient_closed_form(0.1, data, derivative=wrong) - autodiff) > 1e-3 * abs(autodiff)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        opt.unrolled_updates(opt.sgd_step, (), 0)
    with pytest.raises(ValueError, match="eigenvalues must be positive"):
        opt.quadratic(np.asarray([1.0, -1.0]))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        opt.validation_loss_after_training(0.1, opt.regression_problem(), steps=0)
