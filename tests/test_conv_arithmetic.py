"""Convolution arithmetic: the public formulas against XLA's shapes, flops and autodiff-measured receptive
fields at hypothesis-drawn configurations, their input validation, and the harnesses' negative controls."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given
from hypothesis import strategies as st
from jax import lax

from derivations import conv_arithmetic as ca
from derivations.compare import compare
from models.conv import (
    DIMENSIONS,
    bilinear_upsample_2x,
    bilinear_upsample_kernel,
    circular_conv2d,
    conv2d,
    conv2d_transpose,
    conv2d_transpose_by_zero_insertion,
)

sizes = st.sampled_from([5, 6, 7, 9, 12, 16])
kernels = st.sampled_from([1, 2, 3, 5])
strides = st.sampled_from([1, 2, 3])
paddings = st.sampled_from([0, 1, 2])
dilations = st.sampled_from([1, 2])


@given(n=sizes, k=kernels, s=strides, p=paddings, d=dilations)
def test_output_size_formula_matches_xla_shape(n, k, s, p, d):
    assume(d * (k - 1) + 1 <= n + 2 * p)
    assert ca.conv_output_size(n, k, s, p, d) == ca.flax_output_size(n, k, s, p, d)


@given(n=sizes, k=kernels, s=strides, p=paddings, d=dilations)
def test_transpose_output_size_is_the_vjp_shape(n, k, s, p, d):
    assume(d * (k - 1) + 1 <= n + 2 * p)
    out = ca.conv_output_size(n, k, s, p, d)
    extra = (n + 2 * p - d * (k - 1) - 1) % s
    kern = jnp.ones((k, k, 1, 1))
    shape = jax.eval_shape(
        lambda v: jax.vjp(lambda u: conv2d(u, kern, stride=s, padding=p, dilation=d), v)[1](jnp.ones((1, out, out, 1)))[
            0
        ],
        jax.ShapeDtypeStruct((1, n, n, 1), jnp.float64),
    ).shape
    assert ca.conv_transpose_output_size(out, k, s, p, extra, max(d, 1)) == shape[1] == n


@functools.cache
def _conv_pair(n, k, s, p, d):
    conv = jax.jit(lambda x, w: conv2d(x, w, stride=s, padding=p, dilation=d))
    transpose = jax.jit(lambda y, w: conv2d_transpose(y, w, n, stride=s, padding=p, dilation=d))
    return conv, transpose


@given(case=st.sampled_from(ca.TRANSPOSE_CASES), seed=st.integers(0, 2**16))
def test_transposed_conv_is_the_adjoint_of_conv(case, seed):
    n, k, *_ = case
    conv, transpose = _conv_pair(*case)
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=(1, n, n, 3)), rng.normal(size=(k, k, 3, 2))
    y = rng.normal(size=conv(x, w).shape)
    lhs, rhs = float(jnp.vdot(conv(x, w), y)), float(jnp.vdot(x, transpose(y, w)))
    scale = float(jnp.vdot(jnp.abs(conv(jnp.abs(x), jnp.abs(w))), jnp.abs(y)))  # the sum of |terms|
    assert abs(lhs - rhs) <= 1e-13 * scale


def test_adjoint_check_rejects_a_transpose_without_the_kernel_flip():
    def unflipped(y, w, n, **kw):
        return conv2d_transpose(y, w[::-1, ::-1], n, **kw)

    lhs, rhs = ca.adjoint_gap(9, 3, 2, 1, 1, transpose=unflipped)
    assert abs(lhs - rhs) > 1e-3 * abs(lhs)


@pytest.mark.parametrize("case", ca.TRANSPOSE_CASES)
def test_zero_insertion_then_conv_equals_conv_transpose(case):
    n, k, s, p, d = case
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(k, k, 3, 2)))
    out = ca.conv_output_size(n, k, s, p, d)
    y = jnp.asarray(rng.normal(size=(1, out, out, 2)))
    got = conv2d_transpose_by_zero_insertion(y, w, n, stride=s, padding=p, dilation=d)
    want = conv2d_transpose(y, w, n, stride=s, padding=p, dilation=d)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_output_size_check_rejects_the_formula_without_the_floor():
    without_floor = lambda n, k, s, p, d: sp.Rational(n + 2 * p - d * (k - 1) - 1, s) + 1  # noqa: E731
    ok, wrong = ca.output_size_check(without_floor)
    assert not ok and wrong
    assert ca.output_size_check(lambda *c: ca.conv_output_size(*c))[0]


@given(
    k=st.sampled_from([1, 3, 5]),
    s=st.sampled_from([1, 2, 3]),
    p=paddings,
    d=dilations,
    c=st.sampled_from([(4, 8, 1), (8, 8, 4), (6, 3, 3)]),
)
def test_xla_flops_are_twice_the_in_bounds_macs(k, s, p, d, c):
    n = 12
    c_in, c_out, groups = c
    assume(d * (k - 1) + 1 <= n + 2 * p)
    x, w = jnp.zeros((1, n, n, c_in)), jnp.zeros((k, k, c_in // groups, c_out))
    flops = ca.xla_flops(functools.partial(conv2d, stride=s, padding=p, dilation=d, groups=groups), x, w)
    exact = ca.conv_macs_in_bounds(n, n, k, c_in, c_out, stride=s, padding=p, dilation=d, groups=groups)
    assert flops == 2 * exact


def test_flop_table_rejects_the_notes_count_as_flops():
    rows = ca.flop_table(ca.FLOP_CASES[:1])
    assert rows[0]["xla_flops"] != rows[0]["notes_macs"] and rows[0]["xla_flops"] != 2 * rows[0]["notes_macs"]
    assert rows[0]["xla_flops"] == 2 * rows[0]["exact_macs"]


def test_taps_in_bounds_for_same_3x3_is_3n_minus_2():
    for n in (3, 8, 64):
        assert ca.taps_in_bounds(n, 3, 1, 1, 1) == 3 * n - 2


@given(
    net=st.sampled_from(
        [
            [(3, 1, 1), (3, 2, 0)],
            [(5, 2, 2), (3, 2, 1), (3, 1, 1)],
            [(3, 1, 1, 2), (3, 2, 0, 1), (2, 2, 0)],
            [(7, 2, 3), (3, 2, 1), (3, 1, 2, 2)],
        ]
    )
)
def test_receptive_field_recursion_matches_gradient_support(net):
    assert ca.measured_receptive_field(net, 64) == ca.receptive_field(net)[-1][0]


def test_receptive_field_check_rejects_a_recursion_that_ignores_stride():
    def no_stride(layers):
        field, out = 1, []
        for layer in layers:
            kernel, dilation = layer[0], (layer[3] if len(layer) == 4 else 1)
            field += dilation * (kernel - 1)
            out.append(field)
        return out

    ok, rows = ca.receptive_field_check(no_stride)
    assert not ok
    assert no_stride(ca.NOTES_NET)[-1] == 21 and rows[len(ca.NOTES_NET) - 1][2] == 99


def test_receptive_field_of_the_notes_net_is_the_measured_support_and_jump_the_stride_product():
    ok, rows = ca.receptive_field_check(lambda layers: [r for r, _ in ca.receptive_field(layers)])
    assert ok, rows
    strides = [layer[1] for layer in ca.NOTES_NET]
    assert [j for _, j in ca.receptive_field(ca.NOTES_NET)] == np.cumprod(strides).tolist()


@given(
    k=st.sampled_from([1, 3, 7]),
    ci=st.sampled_from([4, 8]),
    co=st.sampled_from([8, 16]),
    groups=st.sampled_from([1, 2, 4]),
    bias=st.booleans(),
)
def test_conv_params_match_the_flax_module(k, ci, co, groups, bias):
    from flax import nnx

    measured = ca.module_params(
        lambda: nnx.Conv(ci, co, (k, k), feature_group_count=groups, use_bias=bias, rngs=nnx.Rngs(0))
    )
    assert ca.conv_params(k, k, ci, co, groups, bias) == measured


def test_public_functions_equal_their_sympy_expressions():
    n, k, s, p, d = 29, 3, 2, 1, 2
    subs = {ca.n: n, ca.k: k, ca.s: s, ca.p: p, ca.d: d}
    assert (
        ca.conv_output_size(n, k, s, p, d)
        == int(ca.output_size_expr().subs(subs))
        == (n + 2 * p - d * (k - 1) - 1) // s + 1
    )
    assert ca.conv_transpose_output_size(15, 3, 2, 1, 1, 1) == (15 - 1) * 2 - 2 + 2 + 1 + 1
    assert ca.conv_macs(3, 3, 16, 32, 8, 8, groups=4) == 3 * 3 * 4 * 32 * 64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ca.conv_output_size(8, 3, stride=0), "stride"),
        (lambda: ca.conv_output_size(8, 3, dilation=0), "dilation"),
        (lambda: ca.conv_output_size(8, 3, padding=-1), "padding"),
        (lambda: ca.conv_output_size(4, 3, dilation=2), "larger than the padded input"),
        (lambda: ca.conv_output_size(8.0, 3), "n must be an integer"),
        (lambda: ca.conv_transpose_output_size(4, 3, stride=2, output_padding=2), "output_padding"),
        (lambda: ca.conv_transpose_output_size(1, 1, padding=3), "no output"),
        (lambda: ca.receptive_field([(3, 0, 1)]), "stride"),
        (lambda: ca.receptive_field([(3, 1)]), "kernel, stride, padding"),
        (lambda: ca.conv_params(3, 3, 6, 8, groups=4), "groups=4 must divide"),
        (lambda: ca.conv_macs(3, 3, 4, 4, 0, 4), "h must be >= 1"),
    ],
)
def test_public_functions_reject_impossible_configurations(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_zero_padding_breaks_equivariance_only_next_to_the_border_and_circular_padding_not_at_all():
    rng = np.random.default_rng(0)
    x, w = jnp.asarray(rng.normal(size=(1, 16, 16, 3))), jnp.asarray(rng.normal(size=(3, 3, 3, 4)))
    zero_pad = ca.equivariance_error(lambda v: conv2d(v, w, padding=1), x, (1, 0))
    assert sorted(set(np.nonzero(zero_pad > 1e-12)[0].tolist())) == [0, 1, 15]
    assert ca.equivariance_error(lambda v: circular_conv2d(v, w), x, (1, 0)).max() <= 1e-13


def test_bilinear_check_rejects_zero_padding_instead_of_edge_replication():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 6, 7, 1)))

    def zero_padded(v):
        spread = lax.conv_transpose(
            jnp.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0))),
            bilinear_upsample_kernel(),
            (2, 2),
            "VALID",
            dimension_numbers=DIMENSIONS,
        )
        return spread[:, 3:-3, 3:-3, :]

    def resize(v):
        return jax.image.resize(v, (1, 12, 14, 1), "bilinear")

    assert compare(bilinear_upsample_2x, resize, [x]).ok
    assert not compare(zero_padded, resize, [x]).ok


@given(m=st.sampled_from([4, 9]), kk=st.sampled_from([3, 27]), co=st.sampled_from([2, 8]))
def test_xla_counts_a_gemm_at_two_flops_per_multiply_accumulate(m, kk, co):
    macs = m * kk * co
    flops = ca.xla_flops(jnp.matmul, jnp.zeros((1, m, kk)), jnp.zeros((kk, co)))
    assert flops == 2 * macs
    assert flops != macs  # the notes' product, read as FLOPs, is rejected
