"""Optimizers: trajectory() under each convention against optax itself (optax) and against the SymPy rule
written from the documentation (pytorch, keras), closed-form first steps, wrong conventions rejected, input
validation, the stability bound, Newton beyond quadratics and the hyper-gradient."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import optimizers as opt

RTOL = 1e-10


def _grads(seed, steps=6, d=4):
    rng = np.random.default_rng(seed)
    scale = np.logspace(-6, 2, d) * rng.choice([-1.0, 1.0], d)
    return scale * (1 + 0.5 * rng.uniform(-1, 1, (steps, d)))


def _kw(name):
    return {"momentum": 0.9} if name in ("momentum", "nesterov") else {}


@pytest.mark.parametrize("name", opt.NAMES)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), lr=st.sampled_from([1e-3, 0.1]))
def test_optax_convention_matches_optax_itself(name, seed, lr):
    grads = _grads(seed, steps=12)
    params0 = np.random.default_rng(seed + 1).normal(size=grads.shape[1])
    ours = opt.trajectory(name, grads, convention="optax", lr=lr, params0=params0, **_kw(name))
    theirs = opt.optax_iterates(opt.optax_optimizer(name, lr, **_kw(name)), jnp.asarray(grads), params0)
    assert ours.shape == (13, 4)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)


@pytest.mark.parametrize("convention", opt.CONVENTIONS)
@pytest.mark.parametrize("name", opt.NAMES)
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_trajectory_matches_the_documented_sympy_rule(name, convention, seed):
    grads = _grads(seed)
    params0 = np.random.default_rng(seed + 2).normal(size=grads.shape[1])
    kw = {**_kw(name), **({"weight_decay": 0.05} if "weight_decay" in opt.DEFAULTS[convention][name] else {})}
    ours = opt.trajectory(name, grads, convention=convention, lr=0.1, params0=params0, **kw)
    sym = opt.symbolic_iterates(name, grads, convention=convention, lr=0.1, params0=params0, **kw)
    np.testing.assert_allclose(ours, sym, rtol=RTOL, atol=0)


def test_known_first_steps():
    one = np.ones((1, 1))
    first = {c: -float(opt.trajectory("rmsprop", one, convention=c, lr=1.0)[1, 0]) for c in opt.CONVENTIONS}
    np.testing.assert_allclose(first["optax"], 1 / np.sqrt(0.1 + 1e-8), rtol=RTOL)
    np.testing.assert_allclose(first["pytorch"], 1 / (np.sqrt(0.01) + 1e-8), rtol=RTOL)
    np.testing.assert_allclose(first["keras"], 1 / np.sqrt(0.1 + 1e-7), rtol=RTOL)
    at_eps = -float(opt.trajectory("adam", np.full((1, 1), 1e-8), convention="optax", lr=1.0)[1, 0])
    np.testing.assert_allclose(at_eps, 0.5, rtol=RTOL)
    keras_half = 1e-7 / np.sqrt(1 - 0.999)
    np.testing.assert_allclose(
        -float(opt.trajectory("adam", np.full((1, 1), keras_half), convention="keras", lr=1.0)[1, 0]), 0.5, rtol=RTOL
    )
    adagrad = -float(opt.trajectory("adagrad", np.full((1, 1), 1e-3), convention="optax", lr=1.0)[1, 0])
    np.testing.assert_allclose(adagrad, 1e-3 / np.sqrt(0.1 + 1e-6 + 1e-7), rtol=RTOL)


def test_wrong_conventions_are_rejected():
    grads = _grads(0, steps=12)
    theirs = np.asarray(opt.optax_iterates(optax.rmsprop(0.1), jnp.asarray(grads), np.zeros(4)))
    wrong = np.asarray(opt.trajectory("rmsprop", grads, convention="pytorch", lr=0.1, decay=0.9))
    assert not np.allclose(wrong, theirs, rtol=1e-6, atol=0)  # eps outside the root: another optimizer
    adam = np.asarray(opt.optax_iterates(optax.adam(0.1), jnp.asarray(grads), np.zeros(4)))
    uncorrected = opt.symbolic_iterates(
        "adam", grads, convention="optax", lr=0.1, params0=np.zeros(4), bias_correction=False
    )
    assert not np.allclose(uncorrected, adam, rtol=1e-6, atol=0)
    nesterov = np.asarray(opt.optax_iterates(optax.sgd(0.1, 0.9, nesterov=True), jnp.asarray(grads), np.zeros(4)))
    assert not np.allclose(
        opt.trajectory("momentum", grads, convention="optax", lr=0.1, momentum=0.9), nesterov, rtol=1e-6, atol=0
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("lion", np.ones((2, 2))), {"convention": "optax", "lr": 0.1}, "valid optimizers"),
        (("sgd", np.ones((2, 2))), {"convention": "jax", "lr": 0.1}, "valid conventions"),
        (("sgd", np.ones(3)), {"convention": "optax", "lr": 0.1}, "shape"),
        (("sgd", np.ones((2, 2))), {"convention": "optax", "lr": 0.1, "params0": np.ones(3)}, "params0"),
        (("momentum", np.ones((2, 2))), {"convention": "pytorch", "lr": 0.1}, "needs momentum"),
        (("adam", np.ones((2, 2))), {"convention": "keras", "lr": 0.1, "rho": 0.9}, "valid:"),
        (("sgd", np.ones((2, 2))), {"convention": "optax", "lr": -1.0}, "lr"),
    ],
)
def test_bad_arguments_raise_naming_the_valid_values(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        opt.trajectory(*args, **kwargs)


def test_adaptivity_separates_the_conventions():
    scales = [1e-6, 1.0]
    assert opt.adaptivity("adagrad", "pytorch", scales, steps=6).min() > 0.9
    assert opt.adaptivity("adagrad", "optax", scales, steps=6)[0] < 0.01
    assert opt.adaptivity("rmsprop", "optax", scales, steps=6)[0] < 0.01


def test_stability_bound_is_two_over_curvature():
    assert opt.stable_learning_rates() == sp.Interval.open(0, 2 / opt.L)
    table = opt.stability_table()
    assert all((r["loss_ratio"] < 1) == r["bound_says_converges"] for r in table.values())
    wrong = opt.stability_table(bound=1 / opt.L)  # negative control: a bound of 1/L mispredicts 1.5/L
    assert any((r["loss_ratio"] < 1) != r["bound_says_converges"] for r in wrong.values())


def test_newton_diverges_on_sqrt_one_plus_x_squared():
    newton, _ = opt.newton_on_a_smooth_convex_function()
    assert sp.simplify(newton.rhs + opt.x**3) == 0
    x, path = 1.1, []
    for _ in range(4):
        x = -(x**3)
        path.append(x)
    assert abs(path[-1]) > 1e3


def test_hypergradient_closed_form_matches_autodiff_and_rejects_a_wrong_derivative():
    import jax

    data = opt.regression_problem()
    grad = float(jax.grad(opt.validation_loss_after_training)(jnp.asarray(0.1), data, opt.HYPER_STEPS))
    np.testing.assert_allclose(opt.hypergradient_closed_form(0.1, data), grad, rtol=RTOL)
    wrong = opt.hypergradient_closed_form(0.1, data, derivative=sp.diff(opt.unrolled_gd_iterate(), opt.eta) / 2)
    assert not np.isclose(wrong, grad, rtol=1e-6)
