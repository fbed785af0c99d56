"""Architectures: closed-form parameter counts and MACs against Flax and XLA over drawn configurations,
receptive fields against gradient support, the derived gradients against autodiff, and negative controls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import architectures as arch
from derivations.compare import RTOL
from derivations.conv_arithmetic import taps_in_bounds
from derivations.harness import module_params
from models import blocks


def _rngs():
    return nnx.Rngs(params=0)


@given(ci=st.sampled_from([4, 8]), mid=st.sampled_from([4, 8]), co=st.sampled_from([8, 16]),
       groups=st.sampled_from([1, 2, 4]))  # fmt: skip
@settings(deadline=None, max_examples=10)
def test_bottleneck_params_match_nnx_state(ci, mid, co, groups):
    formula = int(arch.total(arch.bottleneck_layers(ci, mid, co, groups, ci != co), "params"))
    assert formula == module_params(lambda: blocks.Bottleneck(ci, mid, co, groups=groups, rngs=_rngs()))


@given(c0=st.sampled_from([2, 4]), growth=st.sampled_from([2, 4]), layers=st.sampled_from([1, 2, 4]))
@settings(deadline=None, max_examples=10)
def test_dense_block_closed_form_sum_matches_nnx_state(c0, growth, layers):
    closed = arch.dense_block_parameters().rhs.subs({arch.c0: c0, arch.growth: growth, arch.L: layers})
    assert closed == module_params(lambda: blocks.DenseBlock(c0, growth=growth, layers=layers, rngs=_rngs()))


@given(ci=st.sampled_from([4, 8]), co=st.sampled_from([8, 16]), kernel=st.sampled_from([3, 5]))
@settings(deadline=None, max_examples=6)
def test_separable_block_macs_match_xla(ci, co, kernel):
    cases = [("sep", lambda: blocks.DepthwiseSeparable(ci, co, kernel=kernel, fast=False, rngs=_rngs()),
              arch.separable_layers(ci, co, kernel), ci)]  # fmt: skip
    (row,) = arch.block_count_rows(cases, size=8)
    assert row["params_formula"] == row["params_flax"]
    assert row["xla_contraction_flops"] == 2 * row["macs_in_bounds"]
    assert row["im2col_flops"] == 2 * row["macs_every_tap"]


@given(groups=st.sampled_from([1, 2, 4]), kernel=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=8)
def test_im2col_conv_equals_the_grouped_lax_conv(groups, kernel, seed):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(2, 6, 5, 4)))
    kern = jnp.asarray(rng.normal(size=(kernel, kernel, 4 // groups, 8)))
    want = jax.lax.conv_general_dilated(x, kern, (1, 1), [(kernel // 2,) * 2] * 2,
                                        dimension_numbers=blocks.DIMENSIONS, feature_group_count=groups)
    np.testing.assert_allclose(arch.im2col_conv(x, kern, groups=groups), want, rtol=RTOL, atol=1e-12)


def test_im2col_harness_rejects_a_kernel_with_its_groups_swapped():
    """Negative control: the same weights read group-minor instead of group-major give another conv."""
    rng = np.random.default_rng(0)
    x, kern = jnp.asarray(rng.normal(size=(1, 4, 4, 4))), jnp.asarray(rng.normal(size=(3, 3, 2, 4)))
    want = jax.lax.conv_general_dilated(x, kern, (1, 1), [(1, 1)] * 2, dimension_numbers=blocks.DIMENSIONS,
                                        feature_group_count=2)
    swapped = kern.reshape(3, 3, 2, 2, 2).transpose(0, 1, 2, 4, 3).reshape(3, 3, 2, 4)
    assert not np.allclose(arch.im2col_conv(x, swapped, groups=2), want, rtol=1e-6)
    with pytest.raises(ValueError, match="groups"):
        arch.im2col_conv(x, kern, groups=3)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("n", [4, 8, 13])
def test_same_taps_formula_matches_conv_arithmetic(n, k):
    assert arch.same_taps(sp.Integer(n), sp.Integer(k)) == taps_in_bounds(n, k, 1, k // 2)


def test_mac_harness_rejects_a_block_table_missing_a_layer():
    """Negative control: drop the bottleneck's projection shortcut from the table; both Flax and XLA object."""
    factory = lambda: blocks.Bottleneck(4, 4, 8, rngs=_rngs())  # noqa: E731
    (row,) = arch.block_count_rows([("wrong", factory, arch.bottleneck_layers(4, 4, 8, 1, False), 4)])
    assert row["params_formula"] != row["params_flax"]
    assert row["xla_contraction_flops"] != 2 * row["macs_in_bounds"]


def test_receptive_field_harness_sees_the_5x5_branch_and_rejects_a_wrong_prediction():
    factory = lambda: blocks.InceptionModule(2, c1=1, c3_reduce=1, c3=1, c5_reduce=1, c5=1, pool_proj=1,  # noqa: E731
                                             rngs=_rngs())  # fmt: skip
    assert arch.block_receptive_field(factory, 2) == 5
    assert arch.block_receptive_field(lambda: blocks.Bottleneck(2, 2, 4, rngs=_rngs()), 2) != 5


@given(seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=10)
def test_se_input_gradient_matches_autodiff(seed):
    rng = np.random.default_rng(seed)
    x, dy = (jnp.asarray(rng.normal(size=(2, 3, 3, 4))) for _ in range(2))
    params = [jnp.asarray(rng.normal(size=s)) for s in ((4, 2), (2,), (2, 4), (4,))]
    want = jax.vjp(lambda v: blocks.se_gate(v, *params), x)[1](dy)[0]
    np.testing.assert_allclose(arch.se_input_gradient(x, *params, dy), want, rtol=RTOL, atol=1e-13)


def test_se_gradient_harness_rejects_the_gradient_without_the_gate_term():
    rng = np.random.default_rng(0)
    x, dy = (jnp.asarray(rng.normal(size=(2, 3, 3, 4))) for _ in range(2))
    params = [jnp.asarray(rng.normal(size=s)) for s in ((4, 2), (2,), (2, 4), (4,))]
    want = jax.vjp(lambda v: blocks.se_gate(v, *params), x)[1](dy)[0]
    gate = jax.nn.sigmoid(jax.nn.relu(jnp.mean(x, axis=(1, 2)) @ params[0] + params[1]) @ params[2] + params[3])
    assert not np.allclose(dy * gate[:, None, None, :], want, rtol=1e-6)


def test_identity_fit_drives_the_residual_branch_to_zero_and_a_zero_step_does_not():
    factory = lambda rngs: blocks.BasicBlock(2, 2, rngs=rngs, dtype=jnp.float64)  # noqa: E731
    x = jnp.asarray(np.maximum(np.random.default_rng(1).normal(size=(1, 4, 4, 2)), 0.0))  # after a ReLU
    ((start, end),) = arch.fit_identity(factory, [0], x, steps=40, lr=0.5)
    assert end < 0.05 * start
    ((start, end),) = arch.fit_identity(factory, [0], x, steps=40, lr=0.0)  # negative control: nothing learned
    assert end == pytest.approx(start, rel=1e-12)


def test_the_block_ends_in_a_relu_so_negative_inputs_keep_a_floor():
    factory = lambda rngs: blocks.BasicBlock(2, 2, rngs=rngs, dtype=jnp.float64)  # noqa: E731
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 4, 4, 2)))
    ((_, end),) = arch.fit_identity(factory, [0], x, steps=40, lr=0.5)
    assert end >= float(jnp.mean(jnp.minimum(x, 0.0) ** 2)) * (1 - 1e-12)


def test_fc_as_conv_equals_the_dense_layer_and_rejects_a_transposed_kernel():
    head = blocks.FCAsConv(3, 3, 4, 5, rngs=_rngs(), dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 3, 4)))
    np.testing.assert_allclose(head(x)[:, 0, 0], head.dense(x.reshape(2, -1)), rtol=RTOL)
    wrong = head.dense.kernel[...].reshape(4, 3, 3, 5).transpose(1, 2, 0, 3)  # channel-major flattening
    got = jax.lax.conv_general_dilated(x, wrong, (1, 1), "VALID", dimension_numbers=blocks.DIMENSIONS)
    assert not np.allclose(got[:, 0, 0] + head.dense.bias[...], head.dense(x.reshape(2, -1)), rtol=1e-6)


def test_converted_net_saves_flops_only_in_the_shared_layers_below_the_head():
    head = blocks.FCAsConv(3, 3, 4, 5, rngs=_rngs(), dtype=jnp.float64)
    once, per_window = arch.score_map_flops(head, None, c_lower=2)
    assert once == per_window  # negative control: the head alone does the same products either way
    once, per_window = arch.score_map_flops(head, 3, c_lower=2)
    # The 3x3 conv 2 -> 4 below: 5x5 outputs once on the 7x7 image, 3x3 outputs on each of the 9 5x5 windows.
    assert per_window - once == 2 * (9 * 3 * 3 - 5 * 5) * (3 * 3 * 2 * 4)


def test_separable_ratio_is_proved_and_a_wrong_ratio_is_not():
    ratio = arch.separable_ratio().rhs
    assert sp.simplify(ratio - (1 / arch.C_out + 1 / arch.K**2)) == 0
    assert sp.simplify(ratio - (1 / arch.C_out + 1 / arch.K)) != 0


def test_alexnet_crop_count_is_2178_and_a_tiny_case_counts_by_hand():
    assert arch.distinct_crops(256, 224) == (33, 2178)
    assert arch.distinct_crops(4, 2) == (3, 18)  # 9 windows of a random image, and their 9 mirror images
    assert arch.distinct_crops(4, 2, flips=False) == (3, 9)
    with pytest.raises(ValueError, match="crop"):
        arch.distinct_crops(4, 5)


def test_lrn_matches_its_formula_at_a_channel():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 2, 2, 7)))
    got = blocks.local_response_norm(x, size=5, k=2.0, alpha=1e-2, beta=0.75)
    c = 3
    want = x[..., c] / (2.0 + 1e-2 * jnp.sum(x[..., c - 2 : c + 3] ** 2, axis=-1)) ** 0.75
    np.testing.assert_allclose(got[..., c], want, rtol=RTOL)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: blocks.local_response_norm(jnp.ones((1, 2, 2, 3)), size=4), "odd"),
        (lambda: blocks.SEBlock(6, reduction=4, rngs=_rngs()), "divide"),
        (lambda: blocks.Bottleneck(4, 6, 8, groups=4, rngs=_rngs()), "divide"),
        (lambda: blocks.DenseBlock(4, growth=2, layers=0, rngs=_rngs()), "layers"),
        (lambda: blocks.dense_kernel_as_conv(jnp.ones((10, 3)), 2, 2, 2), "kernel"),
    ],
)
def test_invalid_configurations_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lowered_cost_of_one_contraction_equals_the_compiled_one():
    """contraction_flops costs each conv or dot from its lowered program: the compiled count is the same."""
    from derivations.harness import xla_flops
    from models.conv import conv2d

    x = jax.ShapeDtypeStruct((1, 8, 8, 4), jnp.float32)
    kern = jax.ShapeDtypeStruct((3, 3, 4, 6), jnp.float32)
    assert arch.contraction_flops(lambda a, k: conv2d(a, k, padding=1), x, kern) == xla_flops(
        lambda a, k: conv2d(a, k, padding=1), x, kern)
    a, b = jax.ShapeDtypeStruct((5, 7), jnp.float32), jax.ShapeDtypeStruct((7, 3), jnp.float32)
    assert arch.contraction_flops(jnp.matmul, a, b) == xla_flops(jnp.matmul, a, b) == 2 * 5 * 7 * 3
