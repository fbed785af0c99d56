"""Initialisation: the derived variances against jax.nn.initializers (with a negative control), the
depth law, zero initialisation, and input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import init
from models.mlp_stacks import DeepMLP, TwoLayerMLP, dense_stack, stacked_kernels

GLOROT_NORMAL, HE_UNIFORM = jax.nn.initializers.glorot_normal(), jax.nn.initializers.he_uniform()
XAVIER = init._as_function(init.xavier_variance()[2].rhs)
KAIMING = init._as_function(init.kaiming_variance().rhs)
SHAPES = [(32, 96), (96, 32), (3, 3, 8, 24), (1, 5, 12, 4)]


@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
@settings(max_examples=20)
def test_glorot_normal_variance_matches_the_derived_two_over_fan_sum(shape, seed):
    ok, rows = init.initializer_variance_check(GLOROT_NORMAL, XAVIER, [shape],
                                               min_draws=50_000, seed=seed)
    assert ok, rows


@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
@settings(max_examples=20)
def test_he_uniform_variance_matches_the_derived_two_over_fan_in(shape, seed):
    ok, rows = init.initializer_variance_check(HE_UNIFORM, KAIMING, [shape],
                                               min_draws=50_000, seed=seed)
    assert ok, rows


@pytest.mark.parametrize("shape", [(32, 96), (96, 32), (3, 3, 8, 24)])
def test_variance_harness_rejects_xavier_with_fan_in_alone(shape):
    """Negative control: 1/fan_in is Xavier's forward-only condition; at fan_in != fan_out it is wrong."""
    ok, rows = init.initializer_variance_check(jax.nn.initializers.glorot_normal(), lambda n_in, _: 1 / n_in, [shape])
    assert not ok and next(iter(rows.values()))["z"] > 20


def test_variance_harness_rejects_kaiming_for_glorot():
    ok, _ = init.initializer_variance_check(jax.nn.initializers.glorot_normal(), KAIMING, [(64, 64)])
    assert not ok


def test_derived_formulas_are_the_textbook_ones():
    n_in, n_out = init.fan_in, init.fan_out
    assert sp.simplify(init.xavier_variance()[2].rhs - 2 / (n_in + n_out)) == 0
    assert sp.simplify(init.kaiming_variance().rhs - 2 / n_in) == 0
    assert sp.simplify(init.xavier_uniform_limit().rhs - sp.sqrt(6 / (n_in + n_out))) == 0


@pytest.mark.parametrize(("shape", "expected"), [((7, 9), (7, 9)), ((3, 3, 4, 5), (36, 45)), ((2, 1, 1, 6), (2, 12))])
def test_fans_follow_the_hwio_convention(shape, expected):
    assert init.fans(shape) == expected


@pytest.mark.parametrize("shape", [(5,), (0, 3), (3, -1)])
def test_fans_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape must have"):
        init.fans(shape)


def test_relu_variance_factor_per_layer_is_what_is_derived():
    """One wide ReLU layer: the variance ratio is n sigma^2 / 2 to Monte-Carlo precision (8 sigma)."""
    width, var_w = 512, 3.0 / 512
    x = jax.random.normal(jax.random.key(0), (2048, width), jnp.float64)
    kernels = stacked_kernels(jax.nn.initializers.normal(np.sqrt(var_w)), jax.random.key(1), 2, width, jnp.float64)
    hidden = dense_stack(x, kernels, jnp.zeros((2, width)), activation="relu")[1]
    ratio = float(jnp.mean(hidden[1] ** 2) / jnp.mean(hidden[0] ** 2))
    derived = float(init.relu_layer_factor().rhs.subs({init.sigma_w: sp.sqrt(var_w), init.fan_in: width}))
    assert abs(ratio - derived) < 0.08 * derived
    assert abs(ratio - 2 * derived) > 0.5 * derived  # a factor without ReLU's 1/2 would be rejected


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_zero_init_freezes_everything_but_the_output_bias(activation):
    model, losses, _ = init.zero_init_run(activation, steps=5)
    for p in (model.hidden.kernel, model.hidden.bias, model.out.kernel):
        assert bool(jnp.all(p[...] == 0.0))
    assert float(model.out.bias[...][0]) != 0.0 and losses[-1] < losses[0]


def test_zero_init_sigmoid_keeps_hidden_units_identical_but_moves():
    model, _, _ = init.zero_init_run("sigmoid", steps=5)
    kernel = np.asarray(model.hidden.kernel[...])
    assert np.all(kernel == kernel[:, :1]) and np.max(np.abs(kernel)) > 0


def test_random_init_breaks_the_symmetry_that_zero_init_keeps():
    """Control for the symmetry test: from a random start the hidden columns differ."""
    from flax import nnx
    model = TwoLayerMLP(4, 8, 1, activation="sigmoid", rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    kernel = np.asarray(model.hidden.kernel[...])
    assert not np.all(kernel == kernel[:, :1])


def test_deep_mlp_module_matches_the_pure_stack():
    from flax import nnx
    model = DeepMLP(8, 5, activation="tanh", rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    x = jnp.ones((3, 8))
    np.testing.assert_array_equal(model(x), dense_stack(x, model.kernels[...], model.biases[...], activation="tanh")[0])
    assert model.hidden(x).shape == (5, 3, 8)


def test_stack_rejects_unknown_activation_and_bad_shapes():
    with pytest.raises(ValueError, match="activation must be one of"):
        dense_stack(jnp.ones((2, 3)), jnp.ones((1, 3, 3)), jnp.ones((1, 3)), activation="swish")
    with pytest.raises(ValueError, match="kernels must be"):
        dense_stack(jnp.ones((2, 3)), jnp.ones((1, 3, 4)), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="depth and width"):
        stacked_kernels(jax.nn.initializers.he_normal(), jax.random.key(0), 0, 3)


@pytest.mark.parametrize("shape", [(64, 256), (256, 64)])
def test_xavier_variance_averages_the_forward_and_backward_gains_on_non_square_layers(shape):
    var = float(init.xavier_variance()[2].rhs.subs({init.fan_in: shape[0], init.fan_out: shape[1]}))
    g = init.layer_gains(shape, var, draws=16, batch=64, seed=1)
    n_in, n_out = shape
    assert abs(g["forward"] - 2 * n_in / (n_in + n_out)) <= 5 * g["forward_se"]
    assert abs(g["backward"] - 2 * n_out / (n_in + n_out)) <= 5 * g["backward_se"]
    assert abs((g["forward"] + g["backward"]) / 2 - 1) <= 5 * np.hypot(g["forward_se"], g["backward_se"])


def test_layer_gains_reject_the_forward_condition_for_the_backward_pass():
    """Negative control: 1/n_in keeps the forward pass only; on a 64 x 256 layer backward the gain is 4."""
    g = init.layer_gains((64, 256), 1 / 64, draws=16, batch=64, seed=2)
    assert abs(g["backward"] - 1) > 50 * g["backward_se"]


def test_he_keeps_the_relu_forward_second_moment():
    g = init.layer_gains((256, 64), 2 / 256, activation="relu", draws=16, batch=64, seed=3)
    assert abs(g["forward"] - 1) <= 5 * g["forward_se"]


@pytest.mark.parametrize(("shape", "variance"), [((3, 3, 4), 0.1), ((4, 0), 0.1), ((4, 4), 0.0)])
def test_layer_gains_reject_bad_arguments(shape, variance):
    with pytest.raises(ValueError, match="shape must be"):
        init.layer_gains(shape, variance)


def test_depth_profiles_draw_each_configuration_on_its_own_key():
    profiles = init.variance_profiles(0)
    he, xavier = profiles["ReLU, He (2/n)"]["variance"], profiles["ReLU, Xavier (1/n)"]["variance"]
    # One shared key would make He's kernels sqrt(2) x Xavier's, and the variance ratio exactly 2^l.
    assert np.ptp(np.log(he / xavier) - np.log(2) * np.arange(1, len(he) + 1)) > 1e-3
    assert init.variance_profiles(1)["ReLU, He (2/n)"]["variance"][-1] != he[-1]


def test_zero_weights_with_random_hidden_biases_do_learn():
    model, _, _ = init.zero_init_run("relu", steps=5, lr=0.5, hidden_bias_sd=0.5)
    assert float(jnp.max(jnp.abs(model.hidden.kernel[...]))) > 0


def test_zero_init_run_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps >= 1"):
        init.zero_init_run("relu", steps=0)
