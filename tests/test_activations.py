"""Activations: every derivative of the chapter, symbolic vs autodiff at hypothesis-drawn float64 points,
the extremes, the learnable and random activations, and the harness's negative controls."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import activations as act
from derivations.bridge import to_jax
from derivations.compare import elementwise_grad
from derivations.harness import EXTREME_ATOL
from models.activations import Maxout, PReLU, RReLU, maxout

z = act.z
RTOL = 1e-10

# (name, SymPy function of z, the JAX/Flax implementation): derivatives compared on the smooth domain.
FUNCTIONS = {
    "sigmoid": (act.sigmoid(), nnx.sigmoid),
    "tanh": (act.tanh_note(), nnx.tanh),
    "relu": (act.relu(), nnx.relu),
    "leaky_relu": (act.leaky_relu(z, sp.Rational(1, 100)), lambda v: nnx.leaky_relu(v, negative_slope=0.01)),
    "elu": (act.elu(z, sp.Rational(3, 2)), lambda v: nnx.elu(v, alpha=1.5)),
}
# The notes' own forms of the derivatives.
NOTE_FORMS = {
    "sigmoid": act.sigmoid() * (1 - act.sigmoid()),
    "tanh": 1 - act.tanh_note() ** 2,
    "elu": sp.Piecewise((1, z >= 0), (act.elu(z, sp.Rational(3, 2)) + sp.Rational(3, 2), True)),
}
_compiled = {}


@functools.cache
def _jax_of(expr, symbols):
    """Each SymPy expression compiled once, not once per hypothesis example."""
    return to_jax(expr, symbols)


def _derivative_pair(name):
    if name not in _compiled:
        function, reference = FUNCTIONS[name]
        _compiled[name] = (to_jax(sp.diff(function, z), [z]), jax.jit(jax.grad(reference)))
    return _compiled[name]


away_from_zero = st.floats(-4.0, 4.0, allow_nan=False).filter(lambda v: abs(v) > 1e-9)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(value=away_from_zero)
def test_symbolic_derivative_matches_autodiff(name, value):
    derived, autodiff = _derivative_pair(name)
    want = float(autodiff(value))
    assert abs(float(derived(value)) - want) <= RTOL * abs(want)


@pytest.mark.parametrize("name", sorted(NOTE_FORMS))
@given(value=away_from_zero)
def test_the_notes_form_of_the_derivative_matches_autodiff(name, value):
    note_form = _jax_of(NOTE_FORMS[name], (z,))
    want = float(_derivative_pair(name)[1](value))
    assert abs(float(note_form(value)) - want) <= RTOL * abs(want)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@given(value=st.floats(-1000.0, 1000.0, allow_nan=False, allow_subnormal=False))
def test_autodiff_is_finite_and_accurate_at_extreme_inputs(name, value):
    """|z| up to 1e3: no NaN or inf, and within EXTREME_ATOL (absolute; these derivatives are at most 1.5)
    of the exact derivative evaluated by SymPy at 30 digits. At the kink z = 0 it is undefined."""
    function, _ = FUNCTIONS[name]
    got = float(_derivative_pair(name)[1](value))
    assert np.isfinite(got)
    if value != 0.0:
        exact = float(sp.diff(function, z).subs(z, sp.Float(value, 30)).evalf(30))
        assert abs(got - exact) <= EXTREME_ATOL


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="pins XLA:CPU's handling of subnormals")
def test_xla_cpu_treats_subnormal_inputs_as_zero_at_a_kink():
    """Why the extreme-input property draws no subnormals: XLA:CPU flushes them to zero, so for
    z = 2.2e-313 > 0 the comparison z > 0 is False and ELU's gradient takes the negative branch."""
    tiny = 2.2250738585e-313
    assert tiny > 0 and not bool(jax.jit(lambda v: v > 0)(tiny))
    assert float(jax.grad(lambda v: nnx.elu(v, alpha=1.5))(tiny)) == 1.5


def test_forward_values_are_finite_at_extremes():
    extremes = jnp.asarray([-1e3, -745.0, -40.0, 40.0, 745.0, 1e3])
    for _, reference in FUNCTIONS.values():
        assert bool(jnp.all(jnp.isfinite(reference(extremes))))


@pytest.mark.parametrize(
    ("function", "wrong", "reference"),
    [
        (act.sigmoid(), act.sigmoid() * (1 + act.sigmoid()), nnx.sigmoid),
        (act.tanh_note(), 1 - act.tanh_note(), nnx.tanh),
        (act.tanh_note(), 1 + act.tanh_note() ** 2, nnx.tanh),
        (
            act.leaky_relu(z, sp.Rational(1, 100)),
            sp.Piecewise((1, z > 0), (sp.Rational(1, 10), True)),
            lambda v: nnx.leaky_relu(v, negative_slope=0.01),
        ),
        (
            act.elu(z, sp.Rational(3, 2)),
            sp.Piecewise((1, z >= 0), (act.elu(z, sp.Rational(3, 2)) + 1, True)),
            lambda v: nnx.elu(v, alpha=1.5),
        ),
    ],
    ids=[
        "sigmoid-times-one-plus",
        "tanh-one-minus-f",
        "tanh-one-plus-f-squared",
        "leaky-wrong-slope",
        "elu-missing-lambda",
    ],
)
def test_derivative_harness_rejects_a_wrong_derivative(function, wrong, reference):
    evidence = act.derivative_check(function, wrong, reference)
    assert evidence.verdict == "refuted"
    assert not evidence.findings[0].held  # SymPy's proof of the identity fails too


def test_derivative_harness_rejects_a_wrong_implementation():
    """The right formula against a wrong implementation (softplus is not the sigmoid) also fails."""
    evidence = act.derivative_check(act.sigmoid(), act.sigmoid() * (1 - act.sigmoid()), jax.nn.softplus)
    assert evidence.verdict == "refuted"


@given(
    shape=st.sampled_from([(8, 3), (4, 2, 2, 3)]),
    alphas=st.lists(st.floats(0.0, 2.0), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_prelu_gradients_match_the_derived_formulas(shape, alphas, seed):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(0.0, 2.0, shape))
    dy = jnp.asarray(rng.normal(size=shape))
    module = PReLU(3, dtype=jnp.float64)
    module.alpha[...] = jnp.asarray(alphas)
    d_alpha = _jax_of(sp.diff(act.leaky_relu(), act.alpha), (z, act.alpha))
    d_input = _jax_of(sp.diff(act.leaky_relu(), z), (z, act.alpha))
    got_alpha = nnx.grad(lambda m: jnp.sum(dy * m(x)))(module).alpha[...]
    got_x = jax.grad(lambda v: jnp.sum(dy * module(v)))(x)
    want_alpha = jnp.sum(dy * d_alpha(x, module.alpha[...]), axis=tuple(range(len(shape) - 1)))
    want_x = dy * d_input(x, module.alpha[...])
    np.testing.assert_allclose(got_alpha, want_alpha, rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(got_x, want_x, rtol=RTOL, atol=0)


@functools.cache
def _softmax_jacobian_closed_form(k: int):
    """diag(s) - s s^T for k logits, derived and lambdified once per k."""
    zs = act.logits(k)
    s = act.softmax(zs)
    return _jax_of(sp.ImmutableMatrix(sp.diag(*s) - s * s.T), zs)


_softmax_jacobian = jax.jit(jax.jacobian(nnx.softmax))  # one compile per k


@given(k=st.sampled_from([2, 3, 5]), seed=st.integers(0, 2**16))
def test_softmax_jacobian_matches_autodiff(k, seed):
    logits = np.random.default_rng(seed).normal(size=k)
    np.testing.assert_allclose(
        _softmax_jacobian_closed_form(k)(*logits), _softmax_jacobian(jnp.asarray(logits)), rtol=RTOL, atol=1e-300
    )


def test_softmax_jacobian_harness_rejects_the_diagonal_only_jacobian():
    zs = act.logits(3)
    s = act.softmax(zs)
    wrong = to_jax(sp.diag(*s), zs)
    logits = jnp.asarray([0.1, -0.4, 0.7])
    assert not np.allclose(wrong(*logits), jax.jacobian(nnx.softmax)(logits), rtol=RTOL)


@given(pieces=st.sampled_from([2, 3]), seed=st.integers(0, 2**16))
def test_maxout_gradient_reaches_only_the_winning_piece(pieces, seed):
    module = Maxout(4, 2, pieces, rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(1, 4)))
    grads = nnx.grad(lambda m: jnp.sum(m(x)))(module).linear.bias[...].reshape(2, pieces)
    winners = jnp.argmax(module.linear(x).reshape(2, pieces), axis=-1)
    np.testing.assert_array_equal(grads, jax.nn.one_hot(winners, pieces))


def test_maxout_rejects_features_that_do_not_split():
    with pytest.raises(ValueError, match="do not split"):
        maxout(jnp.ones((2, 5)), 2)


def test_rrelu_training_slopes_lie_in_the_interval_and_evaluation_is_deterministic():
    module = RReLU(0.1, 0.3, rngs=nnx.Rngs(dropout=0))
    x = -jnp.ones(1000)
    slopes = -module(x)
    assert float(slopes.min()) >= 0.1 and float(slopes.max()) <= 0.3 and float(jnp.std(slopes)) > 0.05
    module.eval()
    np.testing.assert_array_equal(module(x), module(x))
    np.testing.assert_allclose(module(x), -0.2 * jnp.ones(1000), rtol=1e-7)
    np.testing.assert_array_equal(module(jnp.asarray([0.0, 2.0])), jnp.asarray([0.0, 2.0]))


def test_rrelu_rejects_an_empty_interval():
    with pytest.raises(ValueError, match="lower <= upper"):
        RReLU(0.5, 0.1)


def test_relu_derivative_at_zero_is_what_the_chapter_says():
    assert float(jax.grad(nnx.relu)(0.0)) == 0.0
    assert float(elementwise_grad(nnx.relu)(jnp.asarray([0.0]))[0]) == 0.0


def test_rrelu_mean_slope_of_a_divisor_is_not_one_over_the_mean():
    """E[1/a] for a ~ U(l, u), as derived, against quadrature; and 1/E[a] (Xu et al.'s test slope) is below it."""
    mean_a, mean_inverse = act.rrelu_expected_slope()
    subs = {act.lower: 3, act.upper: 8}
    derived = float(mean_inverse.rhs.subs(subs))
    grid = np.linspace(3.0, 8.0, 200_001)
    assert abs(derived - np.trapezoid(1 / grid, grid) / 5.0) <= 1e-10 * derived
    assert 1 / float(mean_a.rhs.subs(subs)) < 0.95 * derived
    assert float(mean_a.rhs.subs({act.lower: 0.125, act.upper: 1 / 3})) == pytest.approx(11 / 48, rel=1e-15)


def test_derivative_limits_name_relu_left_saturating_and_leaky_relu_not():
    table = act.derivative_limits()
    rows = {str(table[i, 0]): (table[i, 1], table[i, 2]) for i in range(table.rows)}
    assert rows["ReLU"] == (0, 1) and rows["sigmoid"] == (0, 0) and rows["tanh"] == (0, 0)
    assert rows["LeakyReLU"] == (act.alpha, 1)
