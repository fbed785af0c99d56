"""Performance: the fast depthwise convolution equals XLA's grouped convolution in value and gradient, the
note's arithmetic, and negative controls. No test asserts a time."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from derivations import performance as perf
from derivations.compare import RTOL
from models.blocks import DepthwiseSeparable, depthwise_conv2d, depthwise_conv2d_grouped


@functools.cache
def _steps():
    return jax.jit(perf.forward_backward(depthwise_conv2d)), jax.jit(perf.forward_backward(depthwise_conv2d_grouped))


@given(shape=st.sampled_from([(1, 5, 7, 3), (2, 8, 8, 4), (1, 9, 4, 2)]), kernel=st.sampled_from([1, 3, 5]),
       seed=st.integers(0, 2**16))  # fmt: skip
@settings(deadline=None)
def test_shifted_depthwise_value_and_gradients_equal_the_grouped_conv(shape, kernel, seed):
    rng = np.random.default_rng(seed)
    x, dy = jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=shape))
    kern = jnp.asarray(rng.normal(size=(kernel, kernel, shape[-1])))
    fast, ref = _steps()
    for got, want in zip(fast(x, kern, dy), ref(x, kern, dy), strict=True):
        # atol: terms summed in another order cancel to ~1e-16 of the scale where the result is near 0.
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12 * float(jnp.max(jnp.abs(want))))


def test_fast_depthwise_harness_rejects_an_unflipped_backward():
    """Negative control: the adjoint needs the kernel flipped; an asymmetric kernel shows the difference."""
    rng = np.random.default_rng(0)
    x, dy = jnp.asarray(rng.normal(size=(1, 6, 6, 2))), jnp.asarray(rng.normal(size=(1, 6, 6, 2)))
    kern = jnp.asarray(rng.normal(size=(3, 3, 2)))
    want = jax.vjp(depthwise_conv2d_grouped, x, kern)[1](dy)[0]
    from models.blocks import _shifted_sum

    assert not np.allclose(_shifted_sum(dy, kern), want, rtol=1e-6)
    np.testing.assert_allclose(_shifted_sum(dy, kern[::-1, ::-1]), want, rtol=RTOL, atol=1e-13)


def test_mobilenet_block_is_the_same_with_either_depthwise_kernel():
    fast = DepthwiseSeparable(4, 8, rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    slow = DepthwiseSeparable(4, 8, fast=False, rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, 6, 4)))
    np.testing.assert_allclose(fast(x), slow(x), rtol=RTOL, atol=1e-13)
    g_fast = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(fast).depthwise[...]
    g_slow = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(slow).depthwise[...]
    np.testing.assert_allclose(g_fast, g_slow, rtol=1e-9, atol=1e-12)


def test_note_arithmetic_reproduces_the_figures_and_a_wrong_count_does_not():
    table = perf.note_arithmetic()
    assert [int(v) for v in table[0, :]] == [3 * 3 * 256 * 256, 64 * 64 * 256 * 9 * 256, 2 * 64 * 64 * 256 + 589824]
    wrong = perf.dense_counts()["macs"].subs({perf.C: 256}) / perf.K  # a kernel side missing
    assert wrong.subs({perf.H: 64, perf.W: 64, perf.K: 3}) != table[0, 1]


def test_memory_passes_counts_what_xla_stores_and_rejects_an_unfused_program():
    """The HLO pass counter: x + 1 is one read and one write; two results that XLA cannot fuse into one loop
    (x + 1 and its reversal, a different access order) are two writes; a reduction is a read and no write."""
    x = jnp.ones((4, 8, 8, 16))
    assert perf.memory_passes(lambda v: v + 1.0, x) == {"reads": 1, "writes": 1}
    assert perf.memory_passes(lambda v: jnp.sum(v, axis=(0, 1, 2)), x) == {"reads": 1, "writes": 0}
    assert perf.memory_passes(lambda v: (v + 1.0, v[::-1] * 2.0), x)["writes"] == 2


def test_depthwise_intensity_is_bounded_by_k_squared_over_two():
    limit = perf.arithmetic_intensity()[2].rhs
    assert sp.simplify(limit - perf.K**2 / 2) == 0


def test_removable_fraction_sees_dead_channels_and_not_scattered_zeros():
    kern = np.random.default_rng(0).normal(size=(3, 3, 8, 8))
    assert perf.removable_fraction(kern) == 0.0
    dead = kern.copy()
    dead[..., :2] = 0.0  # two whole output channels: a quarter of the MACs can go
    assert perf.removable_fraction(dead) == 0.25
    # Negative control: 90% of the weights zeroed one by one leaves every channel alive.
    assert perf.removable_fraction(perf.magnitude_prune(kern, 0.9)) == 0.0
    assert np.mean(perf.magnitude_prune(kern, 0.9) == 0) == pytest.approx(0.9, abs=0.01)


def test_structured_pruning_keeps_the_largest_channels_and_their_outputs():
    kern = np.random.default_rng(1).normal(size=(3, 3, 4, 6))
    kern[..., 2] *= 10.0
    small, kept = perf.prune_output_channels(kern, 2)
    assert small.shape == (3, 3, 4, 2) and 2 in kept and list(kept) == sorted(kept)
    with pytest.raises(ValueError, match="keep"):
        perf.prune_output_channels(kern, 0)
    with pytest.raises(ValueError, match="sparsity"):
        perf.magnitude_prune(kern, 1.0)


def test_committed_benchmark_results_have_every_figure_a_claim_reads():
    backend, results = perf.benchmark_results("cpu")
    assert backend.startswith("cpu")
    for name in ("depthwise3x3_forward_backward_8x64x64x256",
                 "depthwise3x3_autodiff_vs_custom_jvp_forward_backward_8x64x64x256",
                 "depthwise3x3_stride2_forward_backward_8x64x64x256", "depthwise3x3_forward_mode_jvp_8x64x64x256",
                 "dense_vs_fast_depthwise3x3_forward_8x64x64x256", "fast_depthwise3x3_vs_small_dense_forward_8x64x64",
                 "dense_vs_depthwise3x3_forward_8x64x64x256", "dense_vs_fast_depthwise3x3_forward_1x64x64x256"):
        assert results[name]["ratio"] > 0
    assert perf.benchmark_results("no-such-backend")[0].startswith("cpu")  # falls back to the CPU figures


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "match"),
    [((4, 4, 3), (3, 3, 3), "NHWC"), ((1, 4, 4, 3), (3, 3, 2), "kernel"), ((1, 2, 2, 3), (3, 3, 3), "no output")],
)
def test_depthwise_rejects_bad_shapes(x_shape, k_shape, match):
    with pytest.raises(ValueError, match=match):
        depthwise_conv2d(jnp.ones(x_shape), jnp.ones(k_shape), padding="VALID")
