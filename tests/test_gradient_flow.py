"""Gradient flow: the product-of-weights gradient, the sigmoid bound, the residual Jacobian (each with a
negative control), and the depth law of ReLU gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import gradient_flow as gf
from derivations.activations import sigmoid
from derivations.bridge import to_jax
from models.mlp_stacks import dense_stack, layer_profile, residual_block, stacked_kernels

RTOL = 1e-10
SYMBOLS = (gf.x, *gf.ws)


@functools.cache
def _jax_of(expr, symbols):
    return to_jax(expr, list(symbols))


@functools.cache
def _linear_grad():
    return jax.jit(jax.grad(_jax_of(gf.linear_chain(), SYMBOLS), argnums=1))


@given(values=st.lists(st.floats(-3, 3, allow_nan=False), min_size=5, max_size=5))
def test_linear_chain_gradient_is_the_product_of_the_other_weights(values):
    derived = float(_jax_of(gf.linear_chain_gradient().rhs, SYMBOLS)(*values))
    want = float(_linear_grad()(*values))
    assert abs(derived - want) <= RTOL * abs(want) + 1e-300


def test_linear_chain_harness_rejects_the_product_of_all_weights():
    values = [0.7, 1.3, -0.4, 2.0, 0.9]
    wrong = float(_jax_of(sp.Mul(*gf.ws) * gf.x, SYMBOLS)(*values))
    assert abs(wrong - float(_linear_grad()(*values))) > 1e-3


@functools.cache
def _sigmoid_grad():
    h, _ = gf.sigmoid_chain()
    return jax.jit(jax.grad(_jax_of(h, (gf.x, *gf.ws, *gf.bs))))


@given(seed=st.integers(0, 2**16))
def test_sigmoid_chain_gradient_is_the_product_of_w_sigma_prime(seed):
    # N(0, 1) keeps |z_l| moderate: sigma (1 - sigma) loses ~e^z ulps of relative precision as z grows.
    values = np.random.default_rng(seed).normal(0, 1, 1 + 2 * gf.DEPTH_SYMBOLIC)
    derived = float(_jax_of(gf.sigmoid_chain_gradient_in_inputs(), (gf.x, *gf.ws, *gf.bs))(*values))
    want = float(_sigmoid_grad()(*values))
    assert abs(derived - want) <= RTOL * abs(want) + 1e-300
    assert abs(want) <= np.prod(np.abs(values[1:1 + gf.DEPTH_SYMBOLIC])) / 4**gf.DEPTH_SYMBOLIC * (1 + 1e-12)


def test_sigmoid_chain_harness_rejects_a_missing_weight_factor():
    _, pre = gf.sigmoid_chain()
    wrong = sp.Mul(*[sigmoid(z) * (1 - sigmoid(z)) for z in pre])  # the w_l dropped
    values = [0.3, 2.0, -1.5, 3.0, 0.5, 0.1, -0.2, 0.3, 0.4]
    got = float(_jax_of(wrong, (gf.x, *gf.ws, *gf.bs))(*values))
    assert abs(got - float(_sigmoid_grad()(*values))) > 1e-3 * abs(got)


@given(n=st.sampled_from([2, 5]), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_residual_jacobian_is_identity_plus_branch_jacobian(n, seed):
    assert gf.jacobian_check(gf.residual_jacobian_closed_form, n=n, points=8, seed=seed).ok


def test_residual_jacobian_harness_rejects_the_branch_jacobian_alone():
    def without_identity(xv, w1, b1, w2):
        return gf.residual_jacobian_closed_form(xv, w1, b1, w2) - jnp.eye(xv.shape[0])

    assert not gf.jacobian_check(without_identity).ok


def test_residual_block_with_zero_branch_is_the_identity():
    xv = jnp.arange(4.0)
    assert bool(jnp.all(residual_block(xv, jnp.ones((4, 4)), jnp.ones(4), jnp.zeros((4, 4)), jnp.zeros(4)) == xv))


def test_relu_backward_factor_is_half_n_sigma_squared():
    assert gf.relu_backward_factor().rhs == gf.n_units * gf.sigma_weight**2 / 2


def test_relu_he_keeps_and_xavier_halves_the_squared_gradient_per_layer():
    profiles = gf.gradient_profiles()
    he = np.exp(np.mean(np.diff(np.log(profiles["ReLU, He"][::-1] ** 2))))
    xavier = np.exp(np.mean(np.diff(np.log(profiles["ReLU, Xavier"][::-1] ** 2))))
    assert abs(he - 1.0) < 0.05 and abs(xavier - 0.5) < 0.03


def test_skip_connections_keep_the_gradient_that_the_plain_sigmoid_stack_loses():
    profiles = gf.gradient_profiles()
    assert profiles["sigmoid, Xavier"][0] / profiles["sigmoid, Xavier"][-1] < 1e-20
    assert 0.1 < profiles["sigmoid + residual"][0] / profiles["sigmoid + residual"][-1] < 10


def test_layer_profile_gradient_matches_a_direct_gradient_at_the_first_layer():
    """The taps trick: dL/dh_1 from layer_profile equals jax.grad through layers 2..L applied to h_1."""
    depth, width = 4, 6
    x = jax.random.normal(jax.random.key(0), (5, width), jnp.float64)
    kernels = stacked_kernels(jax.nn.initializers.glorot_normal(), jax.random.key(1), depth, width, jnp.float64)
    readout = jnp.arange(width, dtype=jnp.float64)
    zeros = jnp.zeros((depth - 1, width))
    h1 = jnp.tanh(x @ kernels[0])

    def rest(h):
        from models.mlp_stacks import dense_stack
        return jnp.mean(dense_stack(h, kernels[1:], zeros, activation="tanh")[0] @ readout)

    want = float(jnp.linalg.norm(jax.grad(rest)(h1)))
    _, got = layer_profile(x, kernels, jnp.zeros((depth, width)), readout, activation="tanh")
    assert abs(float(got[0]) - want) <= RTOL * want


def test_zero_bias_output_is_the_weight_product_only_for_the_linear_stack():
    depth, width, c = 6, 8, 1.5
    xs = jax.random.normal(jax.random.key(4), (16, width), jnp.float64)
    kernels = stacked_kernels(jax.nn.initializers.glorot_normal(), jax.random.key(5), depth, width, jnp.float64)
    zeros = jnp.zeros((depth, width))
    product = xs @ functools.reduce(jnp.matmul, list(kernels))

    def out(k, activation):
        return dense_stack(xs, k, zeros, activation=activation)[0]

    np.testing.assert_allclose(out(kernels, "linear"), product, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out(c * kernels, "relu"), c**depth * out(kernels, "relu"), rtol=1e-10, atol=1e-300)
    # Negative controls: the product form fails with ReLU, and homogeneity fails with sigmoid.
    assert float(jnp.max(jnp.abs(out(kernels, "relu") - product))) > 1e-2
    assert float(jnp.max(jnp.abs(out(c * kernels, "sigmoid") - c**depth * out(kernels, "sigmoid")))) > 1e-2


def _displayed_jacobian(jac_eq, seed):
    """The displayed J_H = I + W_2 D W_1 instantiated at one random point, and jax.jacobian there."""
    from derivations.bridge import instantiate

    w1_, w2_, d_ = gf.RESIDUAL_PLACEHOLDERS
    xs, w1s, b1s, _ = gf.residual_symbols()
    xv, w1, b1, w2, b2 = (p[0] for p in gf.residual_points(gf.RESIDUAL_N, 1, seed))
    values = dict(zip(list(xs) + list(w1s) + list(b1s), [*xv, *w1.ravel(), *b1], strict=True))
    d = sp.ImmutableMatrix(instantiate(gf.residual_jacobian()[1], values)).evalf(30)
    got = instantiate(jac_eq, {w1_: sp.ImmutableMatrix(w1), w2_: sp.ImmutableMatrix(w2), d_: d})
    want = np.asarray(jax.jacobian(residual_block)(*map(jnp.asarray, (xv, w1, b1, w2, b2))))
    return np.array(sp.ImmutableMatrix(got.as_explicit()).tolist(), dtype=float), want


@given(seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_displayed_residual_jacobian_instantiated_equals_autodiff(seed):
    got, want = _displayed_jacobian(gf.residual_jacobian()[0], seed)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-15)


def test_displayed_residual_jacobian_with_a_minus_sign_is_rejected():
    """Negative control for the mutation that used to survive: I - W_2 D W_1."""
    w1_, w2_, d_ = gf.RESIDUAL_PLACEHOLDERS
    wrong = sp.Eq(gf.residual_jacobian()[0].lhs, sp.Identity(gf.RESIDUAL_N) - w2_ * d_ * w1_, evaluate=False)
    got, want = _displayed_jacobian(wrong, 3)
    assert np.max(np.abs(got - want)) > 1e-3


def test_each_configuration_draws_its_own_kernels():
    """He's kernels must not be sqrt(2) x Xavier's (one draw seen twice): the ReLU profiles differ in shape."""
    he, xavier = gf.profile("relu", "He", False, False, 10), gf.profile("relu", "Xavier", False, False, 10)
    ratio = he / xavier
    assert np.ptp(np.log(ratio) - np.log(2) / 2 * np.arange(10)[::-1]) > 1e-3


def test_residual_relu_stack_without_batchnorm_explodes_and_with_it_does_not():
    exploded = gf.first_over_last("relu", "He", True, False, 50)
    normalised = gf.first_over_last("relu", "He", True, True, 50)
    assert exploded > 1e3 and 0.1 < normalised < 100


def test_profile_rejects_an_unknown_initialiser():
    import pytest

    with pytest.raises(ValueError, match="init must be one of"):
        gf.profile("relu", "LeCun", False, False, 10)
