"""Losses: each derived gradient vs autodiff of optax / the Flax head at hypothesis-drawn float64 points,
the regression argmins, the sliced head, and negative controls that a wrong gradient is rejected."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import harness
from derivations import losses as lo
from derivations.bridge import to_jax
from derivations.compare import compare
from models.losses import (
    ClassifierHead,
    LogisticRegression,
    accuracy_curves,
    fit_logistic,
    weighted_softmax_cross_entropy,
)

z, y = lo.z, lo.y
RTOL = 1e-10
seeds = st.integers(0, 2**16)
# Autodiff references, compiled once (not once per hypothesis example).
_focal_grad = jax.jit(jax.grad(lambda v, label, gamma: optax.sigmoid_focal_loss(v, label, gamma=gamma)))
_bce_grad = jax.jit(jax.grad(optax.sigmoid_binary_cross_entropy))
_mse_grad = jax.jit(jax.grad(lambda v, label: (jax.nn.sigmoid(v) - label) ** 2))
_hinge_grad = jax.jit(jax.grad(optax.hinge_loss))


@functools.cache
def _jax_of(expr, symbols):
    return to_jax(expr, symbols)


@functools.cache
def _softmax_ce_grad():
    return jax.jit(jax.vmap(jax.grad(optax.softmax_cross_entropy)))


@given(k=st.sampled_from([2, 5, 50]), seed=seeds)
def test_softmax_ce_gradient_is_softmax_minus_label(k, seed):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(0.0, 3.0, (4, k)))
    labels = jnp.asarray(rng.dirichlet(np.ones(k), 4))
    np.testing.assert_allclose(jax.nn.softmax(logits) - labels, _softmax_ce_grad()(logits, labels), rtol=RTOL,
                               atol=1e-15)


@pytest.mark.parametrize("k", [2, 3])
def test_sympy_proves_softmax_ce_gradient(k):
    assert lo.softmax_ce_gradient_is_s_minus_y(k)


def test_softmax_ce_harness_rejects_softmax_without_the_label():
    logits = jnp.asarray([[0.3, -1.0, 2.0]])
    labels = jnp.asarray([[0.0, 1.0, 0.0]])
    assert not compare(lambda a, b: jax.nn.softmax(a), _softmax_ce_grad(), [logits, labels]).ok


@given(scale=st.sampled_from([1e2, 1e3, 1e4]), seed=seeds)
def test_head_loss_and_gradient_are_finite_for_huge_logits(scale, seed):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.uniform(-scale, scale, (4, 6)))
    labels = jax.nn.one_hot(rng.integers(0, 6, 4), 6, dtype=jnp.float64)
    loss = jax.vmap(lambda a, b: -jnp.sum(b * jax.nn.log_softmax(a)))(logits, labels)
    np.testing.assert_allclose(loss, optax.softmax_cross_entropy(logits, labels), rtol=1e-12)
    grads = _softmax_ce_grad()(logits, labels)
    assert bool(jnp.all(jnp.isfinite(grads)))
    np.testing.assert_allclose(grads, jax.nn.softmax(logits) - labels, atol=1e-15)


def test_head_kernel_gradient_is_x_transpose_times_s_minus_y():
    derived, got, _ = lo.head_ce_gradient(4, 8, 3)
    np.testing.assert_allclose(derived, got, rtol=RTOL, atol=1e-300)


@pytest.mark.parametrize("label", [0.0, 1.0, 0.3])
@given(value=st.floats(-30.0, 30.0, allow_nan=False))
def test_bce_logit_gradient_is_sigma_minus_y(label, value):
    derived = _jax_of(lo.sigmoid() - y, (z, y))
    want = float(_bce_grad(value, label))
    assert abs(float(derived(value, label)) - want) <= 1e-15 + RTOL * abs(want)


@given(value=st.floats(-4.0, 4.0, allow_nan=False), label=st.sampled_from([0.0, 1.0]))
def test_sigmoid_mse_gradient_matches_autodiff(value, label):
    derived = _jax_of(lo.mse_logit_gradient(), (z, y))
    want = float(_mse_grad(value, label))
    assert abs(float(derived(value, label)) - want) <= 1e-300 + RTOL * abs(want)


@pytest.mark.parametrize(
    ("wrong", "label"),
    [(lo.sigmoid() * (1 - lo.sigmoid()) * (lo.sigmoid() - 1), 1),  # MSE's form (without the 2) passed off as BCE's
     (lo.sigmoid() + 1, 1),  # sign error
     (lo.sigmoid(), 1)],  # the label dropped
    ids=["bce-with-sigma-prime", "sign-error", "label-dropped"],
)
def test_derivative_harness_rejects_a_wrong_bce_gradient(wrong, label):
    function = sp.simplify(lo.binary_cross_entropy(lo.sigmoid()).subs(y, label))
    evidence = harness.derivative_check(function, wrong,
                                        lambda v: optax.sigmoid_binary_cross_entropy(v, float(label)), z,
                                        domain=lo.SMOOTH_DOMAIN)
    assert evidence.verdict == "refuted"


@given(gamma=st.sampled_from([0.0, 0.5, 2.0, 3.0]), value=st.floats(-6.0, 6.0, allow_nan=False),
       label=st.sampled_from([0.0, 1.0]))
def test_focal_loss_derivative_matches_optax(gamma, value, label):
    sign = 1.0 if label else -1.0
    derived = _jax_of(lo.focal_loss_claimed(), (z, lo.gamma))
    got = sign * float(derived(sign * value, gamma))
    want = float(_focal_grad(value, label, gamma))
    assert abs(got - want) <= 1e-300 + RTOL * abs(want)


def test_focal_harness_rejects_the_derivative_without_the_gamma_term():
    wrong = (1 - lo.sigmoid()) ** 2 * (-(1 - lo.sigmoid()))  # drops gamma p log p
    evidence = harness.derivative_check(lo.focal_loss(z, 2), wrong,
                                        lambda v: optax.sigmoid_focal_loss(v, 1.0, gamma=2.0),
                                        z, domain=lo.SMOOTH_DOMAIN, extremes=(-20.0, 20.0))
    assert evidence.verdict == "refuted"


_weighted_grad = jax.jit(jax.grad(weighted_softmax_cross_entropy))


@given(seed=seeds)
def test_weighted_ce_gradient_is_class_weight_times_s_minus_y(seed):
    rng = np.random.default_rng(seed)
    weights = jnp.asarray(rng.uniform(0.1, 10.0, 4))
    logits = jnp.asarray(rng.normal(size=4))
    label = jax.nn.one_hot(int(rng.integers(0, 4)), 4, dtype=jnp.float64)
    got = _weighted_grad(logits, label, weights)
    np.testing.assert_allclose(got, (label @ weights) * (jax.nn.softmax(logits) - label), rtol=RTOL, atol=1e-15)


@given(margin=st.floats(-4.0, 4.0).filter(lambda v: abs(v - 1.0) > 1e-9), target=st.sampled_from([-1.0, 1.0]))
def test_hinge_gradient_is_minus_y_inside_the_margin(margin, target):
    score = margin * target  # y f = margin
    want = -target if margin < 1 else 0.0
    assert float(_hinge_grad(score, target)) == want


def test_hinge_harness_rejects_the_gradient_without_the_indicator():
    formula = _jax_of(-y + 0 * lo.f, (lo.f, y))
    scores, targets = jnp.asarray([3.0, -0.5]), jnp.asarray([1.0, 1.0])
    assert not compare(formula, jax.vmap(jax.grad(optax.hinge_loss)), [scores, targets]).ok


@given(n=st.integers(2, 9), seed=seeds)
def test_l1_argmin_is_the_median_and_l2_argmin_the_mean(n, seed):
    data = sorted(int(v) for v in np.random.default_rng(seed).choice(1000, n, replace=False))
    values = [sp.Integer(v) for v in data]
    assert lo.squared_error_argmin(values) == sp.FiniteSet(sp.Rational(sum(data), n))
    l1 = lo.absolute_error_argmin(values)
    assert l1 == (sp.FiniteSet(data[n // 2]) if n % 2 else sp.Interval(data[n // 2 - 1], data[n // 2]))
    objective = lambda v: sum(abs(d - v) for d in data)  # noqa: E731
    inside = float(l1.inf + l1.sup) / 2
    assert objective(inside) == objective(float(l1.inf)) < objective(float(l1.inf) - 0.5)


def test_extra_output_gets_zero_gradient_but_changes_the_softmax():
    head, x, targets = lo.eight_output_head(1)
    grads = nnx.grad(lambda m: m.loss(x, targets))(head).linear
    assert bool(jnp.all(grads.kernel[...][:, 7] == 0)) and float(grads.bias[...][7]) == 0.0
    assert bool(jnp.all(grads.kernel[...][:, :7] != 0))
    all_logits = head.all_logits(x)
    np.testing.assert_allclose(jax.nn.softmax(all_logits)[:, :7],
                               jax.nn.softmax(all_logits[:, :7]) * (1 - jax.nn.softmax(all_logits)[:, 7:]), rtol=1e-12)


def test_bce_beats_mse_from_a_confidently_wrong_start_even_with_mse_rate_quadrupled():
    race = lo.logistic_race(lo.WRONG_START, (1.0, 4.0))
    bce, mse_x4 = lo.steps_to_accuracy(race["bce"][0]), lo.steps_to_accuracy(race["sigmoid_mse"][1])
    assert bce is not None and (mse_x4 is None or mse_x4 > 2 * bce)


def test_mse_with_a_matched_rate_is_not_slower_from_zero_weights():
    """From z = 0, MSE's gradient is 2 sigma'(0) = 1/2 of BCE's: doubling its rate removes BCE's lead."""
    race = lo.logistic_race(lo.ZERO_START, (1.0, 2.0))
    bce, mse_equal, mse_x2 = (lo.steps_to_accuracy(race["bce"][0]), lo.steps_to_accuracy(race["sigmoid_mse"][0]),
                              lo.steps_to_accuracy(race["sigmoid_mse"][1]))
    assert bce < mse_equal and mse_x2 <= bce


def test_accuracy_curves_match_fit_logistic():
    x, targets, direction = lo._race_data()
    model = LogisticRegression(2, rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    model.linear.kernel[...] = -1.0 * direction[:, None]
    model.linear.bias[...] = jnp.zeros(1)
    fitted = fit_logistic(model, x, targets, loss="sigmoid_mse", learning_rate=0.5, steps=30)
    curves = accuracy_curves(-1.0 * direction, jnp.zeros(()), x, targets, loss="sigmoid_mse",
                             learning_rates=jnp.asarray([0.5]), steps=30)
    np.testing.assert_array_equal(np.asarray(fitted), np.asarray(curves[0]))


@functools.cache
def _focal_ratio_expr():
    return lo.focal_gradient_ratio()[0].rhs


@given(gamma=st.sampled_from([0.5, 2.0, 5.0]), prob=st.floats(0.02, 0.98))
def test_focal_gradient_ratio_is_r_not_one_minus_p_to_gamma(gamma, prob):
    ratio = _jax_of(_focal_ratio_expr(), (lo.p, lo.gamma))
    logit = float(np.log(prob / (1 - prob)))
    want = float(_focal_grad(logit, 1.0, gamma)) / float(_bce_grad(logit, 1.0))
    assert abs(float(ratio(prob, gamma)) - want) <= RTOL * abs(want)
    assert float(ratio(prob, gamma)) > (1 - prob) ** gamma  # the loss's factor understates the gradient's


def test_weighted_ce_minimiser_is_a_stationary_point_of_the_weighted_loss():
    rng = np.random.default_rng(0)
    posterior, weights = rng.dirichlet(np.ones(3)), np.asarray([1.0, 5.0, 20.0])
    ps, ws = lo.class_posteriors(3), lo.class_weights(3)
    subs = {**dict(zip(ps, posterior, strict=True)), **dict(zip(ws, weights, strict=True))}
    q = jnp.asarray([float(eq.rhs.subs(subs)) for eq in lo.weighted_ce_minimiser()])
    loss = lambda v, w: -jnp.sum(w * jnp.asarray(posterior) * jax.nn.log_softmax(v))  # noqa: E731
    np.testing.assert_allclose(jax.grad(loss)(jnp.log(q), jnp.asarray(weights)), 0.0, atol=1e-15)
    # Negative control: the unweighted posterior is not the weighted loss's minimiser.
    assert np.abs(np.asarray(jax.grad(loss)(jnp.log(jnp.asarray(posterior)), jnp.asarray(weights)))).max() > 1e-3


def test_sympy_decision_rejects_a_softmax_ce_gradient_without_the_label(monkeypatch):
    monkeypatch.setattr(lo, "cross_entropy", lambda zs, ys, ws=None: -sum(sp.log(sk) for sk in lo.softmax(zs)))
    assert not lo.softmax_ce_gradient_is_s_minus_y(3)


def test_steps_to_accuracy_is_none_when_the_target_is_never_reached():
    """Negative control for the race: a run that stays below the target does not count as reaching it."""
    assert lo.steps_to_accuracy(np.asarray([0.5, 0.9, 0.98]), 0.99) is None
    assert lo.steps_to_accuracy(np.asarray([0.5, 0.99, 0.98]), 0.99) == 2


def test_log_loss_is_bce_and_a_wrong_log_loss_is_not():
    assert lo.is_binary_cross_entropy(lo.bernoulli_log_loss())
    assert not lo.is_binary_cross_entropy(lo.bernoulli_log_loss(label=1 - lo.y))  # the labels swapped
    assert not lo.is_binary_cross_entropy(-sp.log(lo.p**lo.y))  # the negative class dropped


def test_public_functions_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        ClassifierHead(4, 8, num_outputs=7, rngs=nnx.Rngs(0))
    model = LogisticRegression(2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_logistic(model, jnp.ones((2, 2)), jnp.ones(2), loss="hinge", learning_rate=0.1, steps=1)
    with pytest.raises(ValueError, match="steps must be"):
        fit_logistic(model, jnp.ones((2, 2)), jnp.ones(2), loss="bce", learning_rate=0.1, steps=0)
