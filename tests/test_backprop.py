"""Backprop: the notes' 2-2-1 network by hand vs autodiff, the delta-recursion for drawn depths and widths,
the convolution backward for drawn strides and paddings, stop_gradient, and negative controls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import backprop as bp
from models.backprop import MLP, TWO_TWO_ONE_PARAMS, TwoTwoOne

RTOL = 1e-10
seeds = st.integers(0, 2**16)


@given(seed=seeds, label=st.sampled_from([0.0, 1.0, 0.25]))
def test_two_two_one_hand_gradients_match_autodiff(seed, label):
    model = TwoTwoOne(rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(seed).normal(size=2))
    autodiff = nnx.grad(lambda m: (m(x) - label) ** 2)(model)
    hand = bp.hand_gradients(model.params(), x, label)
    for name in TWO_TWO_ONE_PARAMS:
        np.testing.assert_allclose(hand[name], autodiff[name][...], rtol=RTOL, atol=1e-300)


def test_shared_bias_through_one_path_is_rejected():
    """Negative control: b1's gradient through h1 alone (as for w1) disagrees with autodiff."""
    model, x, label = bp.two_two_one_case(2)
    one_path = bp.substituted(2 * (bp.y_hat - bp.y) * bp.y_hat * (1 - bp.y_hat) * bp.w5 * bp.h1 * (1 - bp.h1))
    f = bp.to_jax(bp.explicit(one_path), [bp.x1, bp.x2, bp.y, *bp.WEIGHTS])
    single = float(f(x[0], x[1], label, *(model.params()[str(w)] for w in bp.WEIGHTS)))
    autodiff = float(nnx.grad(lambda m: (m(x) - label) ** 2)(model).b1[...])
    assert abs(single - autodiff) > RTOL * abs(autodiff)


def test_sympy_rejects_a_chain_rule_with_a_missing_factor():
    wrong = 2 * (bp.y_hat - bp.y) * bp.w5 * bp.h1 * (1 - bp.h1) * bp.x1  # sigma'(output) dropped
    assert not bp.is_zero(sp.diff(bp.two_two_one_loss(), bp.w1) - bp.substituted(wrong))


@given(widths=st.sampled_from([(3, 1), (2, 4, 1), (4, 3, 3, 2), (1, 5, 2, 5, 3)]), seed=seeds,
       activation=st.sampled_from(["tanh", "sigmoid", "relu"]))
def test_delta_recursion_matches_autodiff_with_random_biases(widths, seed, activation):
    (kernels, biases), (ref_kernels, ref_biases), _ = bp.mlp_case(widths, 3, seed, activation)
    for got, want in zip(kernels + biases, ref_kernels + ref_biases, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-14)


def test_delta_recursion_that_drops_the_biases_is_rejected():
    """Negative control: with drawn biases, a forward pass without them gives wrong gradients."""
    _, (ref_kernels, _), (_, _, _, _, (no_bias_kernels, _)) = bp.mlp_case((3, 4, 4, 2), 5, 0, "tanh")
    assert not all(np.allclose(a, b, rtol=1e-6) for a, b in zip(no_bias_kernels, ref_kernels, strict=True))


def test_delta_recursion_without_the_activation_derivative_is_rejected():
    model = MLP((3, 4, 2), rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)))
    dy = jnp.ones((5, 2))
    k1, k2 = model.layers[0].kernel[...], model.layers[1].kernel[...]
    wrong_first = x.T @ (dy @ k2.T)  # the recursion with f'(z) dropped
    got = nnx.grad(lambda m: jnp.sum(dy * m(x)))(model).layers[0].kernel[...]
    assert not np.allclose(wrong_first, got, rtol=1e-3)
    assert k1.shape == got.shape


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])  # ReLU's Piecewise expands too slowly
def test_symbolic_delta_recursion_holds_for_a_three_layer_net(activation):
    assert bp.delta_recursion_is_the_chain_rule((1, 1, 1, 1), activation)


@given(case=st.sampled_from([*bp.CONV_CASES, (3, ((2, 0), (0, 2)))]), seed=st.integers(0, 3))
def test_conv_backward_matches_vjp_of_nnx_conv(case, seed):
    stride, padding = case
    dw, dw_ref, dx, dx_ref, _, _ = bp.conv_case(stride, padding, size=6, seed=seed)
    np.testing.assert_allclose(dw, dw_ref, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(dx, dx_ref, rtol=RTOL, atol=1e-13)


def test_conv_input_gradient_with_an_unflipped_kernel_is_rejected():
    stride, padding = 1, ((1, 1), (1, 1))
    _, _, _, dx_ref, dy, _ = bp.conv_case(stride, padding, size=6)
    conv = nnx.Conv(3, 4, (3, 3), strides=stride, padding=padding, rngs=nnx.Rngs(params=0), param_dtype=jnp.float64)
    unflipped = conv.kernel[...][::-1, ::-1]  # conv_input_grad flips it again: net effect, no flip
    wrong = bp.conv_input_grad(dy, unflipped, (2, 6, 6, 3), stride=stride, padding=padding)
    assert not np.allclose(wrong, dx_ref, rtol=1e-3)


def test_conv_backward_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride must be"):
        bp.conv_kernel_grad(jnp.ones((1, 4, 4, 1)), jnp.ones((1, 2, 2, 1)), (3, 3), stride=0, padding=((0, 0),) * 2)
    with pytest.raises(ValueError, match="padding must be"):
        bp.conv_input_grad(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1)), (1, 4, 4, 1), stride=1,
                           padding=((-1, 0), (0, 0)))
    with pytest.raises(ValueError, match="as many kernels"):
        bp.mlp_backward([jnp.ones((2, 2))], [], jnp.ones((1, 2)), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="two positive widths"):
        MLP((3,), rngs=nnx.Rngs(0))


_deep_tanh_grad = jax.jit(jax.grad(bp.deep_tanh), static_argnames="frozen")


@pytest.mark.parametrize("frozen", [1, 2, 3])
def test_stop_gradient_zeroes_exactly_the_layers_before_it(frozen):
    kernels, x = bp.deep_tanh_case(depth=4, width=8, batch=4)
    full = _deep_tanh_grad(kernels, x)
    cut = _deep_tanh_grad(kernels, x, frozen=frozen)
    for layer in range(4):
        if layer < frozen:
            assert bool(jnp.all(cut[layer] == 0)) and bool(jnp.any(full[layer] != 0))
        else:
            np.testing.assert_allclose(cut[layer], full[layer], rtol=RTOL, atol=0)


def test_recording_forward_keeps_the_activations_and_plain_forward_keeps_nothing():
    table = bp.no_grad_footprints()
    depth, width, batch = 6, 64, 32
    assert table["forward that records"]["residual_bytes"] >= depth * batch * width * 8
    assert table["forward only"]["residual_bytes"] == 0
    assert table["forward + backward"]["flops"] > 2 * table["forward only"]["flops"]


def test_residual_bytes_of_a_linear_function_are_zero():
    """Negative control for the measurement: x -> 2x keeps no activation (only the constant 2.0), unlike tanh."""
    x = jnp.ones((8, 8))
    assert bp.residual_bytes(lambda v: 2.0 * v, x) < x.nbytes <= bp.residual_bytes(jnp.tanh, x)
