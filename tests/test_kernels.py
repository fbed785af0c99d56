"""The memory-bound kernels against their references, correctness only (no test asserts a time):

* ``models.blocks.depthwise_conv2d`` against XLA's grouped convolution over shapes, strides 1-3, odd, even
  and non-square kernels, SAME / VALID / explicit padding, in float64 (values, both gradients, forward mode
  by ``jax.jvp`` and ``jax.jacfwd``), mixed dtypes (promoted by ``jnp.result_type``) and bfloat16 (an error
  bound measured against float64, no worse than the grouped conv's);
* ``models.normalization.BatchNorm`` against ``nnx.BatchNorm``: outputs in float32 and float64, gradients
  against autodiff in float64 to 1e-10 (also with a mean far from 0, where the backward's sums cancel),
  the statistics' own cotangents, and the residuals it keeps.
"""

import functools
import platform

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_batchnorm import residual_bytes
from derivations.compare import RTOL
from models.blocks import BLOCKED_FROM, _kernel_gradient, _shifted_sum, depthwise_conv2d, depthwise_conv2d_grouped
from models.normalization import BatchNorm, _batchnorm

SHAPES = [(1, 5, 7, 3), (2, 8, 8, 4), (1, 9, 4, 2), (2, 3, 6, 1)]
KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (3, 2)]
PADDINGS = ["SAME", "VALID", 1]
BF16_BOUND = 2.0**-8  # one bfloat16 rounding (half an ulp is 2^-9) of each output, normwise


def _fits(shape, kernel, stride, padding) -> bool:
    pad = {"SAME": None, "VALID": (0, 0), 1: (2, 2)}[padding]
    return pad is None or all(n + pad[0] >= k for n, k in zip(shape[1:3], kernel, strict=True))


@functools.cache
def _step(which: str, stride: int, padding):
    """jit of (x, kernel, dy, x_dot, kernel_dot) -> (y, dx, dkernel, y_dot) for one implementation."""
    f = {"fast": depthwise_conv2d, "grouped": depthwise_conv2d_grouped}[which]
    conv = functools.partial(f, stride=stride, padding=padding)

    def step(x, kernel, dy, x_dot, kernel_dot):
        y, pullback = jax.vjp(conv, x, kernel)
        return (y, *pullback(dy), jax.jvp(conv, (x, kernel), (x_dot, kernel_dot))[1])

    return jax.jit(step)


def _case(shape, kernel, stride, padding, seed, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=shape), dtype)
    kern = jnp.asarray(rng.normal(size=(*kernel, shape[-1])), dtype)
    y = jax.eval_shape(functools.partial(depthwise_conv2d_grouped, stride=stride, padding=padding), x, kern)
    dy = jnp.asarray(rng.normal(size=y.shape), dtype)
    return x, kern, dy, jnp.asarray(rng.normal(size=shape), dtype), jnp.asarray(rng.normal(size=kern.shape), dtype)


def _assert_equal_to_grouped(shape, kernel, stride, padding, seed):
    args = _case(shape, kernel, stride, padding, seed)
    names = ("y", "dx", "dkernel", "y_dot (jax.jvp)")
    for name, got, want in zip(names, _step("fast", stride, padding)(*args), _step("grouped", stride, padding)(*args),
                               strict=True):  # fmt: skip
        # atol: the K^2 terms are summed in another order than XLA's; where they cancel to ~0 only the
        # absolute error, a few ulps of the largest value, means anything.
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12 * float(jnp.max(jnp.abs(want))), err_msg=name)


@given(shape=st.sampled_from(SHAPES), kernel=st.sampled_from(KERNELS), stride=st.sampled_from([1, 2, 3]),
       padding=st.sampled_from(PADDINGS), seed=st.integers(0, 2**16))  # fmt: skip
@settings(deadline=None, max_examples=25)
def test_depthwise_values_gradients_and_forward_mode_equal_the_grouped_conv(shape, kernel, stride, padding, seed):
    if _fits(shape, kernel, stride, padding):
        _assert_equal_to_grouped(shape, kernel, stride, padding, seed)


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding"),
    [((2, 12, 11, 96), (3, 3), 1, "SAME"), ((2, 22, 21, 128), (4, 4), 2, "SAME"),
     ((1, 14, 13, 96), (3, 2), 1, ((2, 0), (1, 1))), ((1, 41, 40, 128), (3, 3), 3, "VALID")],
)  # fmt: skip
def test_depthwise_blocked_forms_equal_the_grouped_conv(shape, kernel, stride, padding):
    """Outputs past BLOCKED_FROM: the interior/border split loop, the transposed adjoint and the dkernel scan."""
    x, kern = jax.ShapeDtypeStruct(shape, jnp.float64), jax.ShapeDtypeStruct((*kernel, shape[-1]), jnp.float64)
    y = jax.eval_shape(functools.partial(depthwise_conv2d_grouped, stride=stride, padding=padding), x, kern)
    assert y.size >= BLOCKED_FROM
    _assert_equal_to_grouped(shape, kernel, stride, padding, 1)


@pytest.mark.parametrize(("stride", "padding", "kernel"), [(1, "SAME", (3, 3)), (2, "SAME", (4, 4)), (2, 1, (3, 2))])
def test_depthwise_jacfwd_equals_the_grouped_convs_jacrev(stride, padding, kernel):
    x, kern, *_ = _case((1, 5, 4, 2), kernel, stride, padding, 3)
    conv = functools.partial(depthwise_conv2d, stride=stride, padding=padding)
    reference = functools.partial(depthwise_conv2d_grouped, stride=stride, padding=padding)
    for got, want in zip(jax.jacfwd(conv, (0, 1))(x, kern), jax.jacrev(reference, (0, 1))(x, kern), strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-13)
    # and second order: the Hessian of a cubic in the kernel, forward over reverse
    hessian = jax.hessian(lambda k: jnp.sum(conv(x, k) ** 3))(kern)
    np.testing.assert_allclose(hessian, jax.hessian(lambda k: jnp.sum(reference(x, k) ** 3))(kern), rtol=1e-9,
                               atol=1e-11)  # fmt: skip


@pytest.mark.parametrize(("x_dtype", "k_dtype"), [(jnp.float32, jnp.float64), (jnp.bfloat16, jnp.float32),
                                                  (jnp.float64, jnp.bfloat16), (jnp.float16, jnp.float32)])
def test_depthwise_promotes_mixed_dtypes_as_jax_does(x_dtype, k_dtype):
    x, kern, dy, *_ = _case((2, 6, 5, 3), (3, 3), 1, "SAME", 5)
    x, kern = x.astype(x_dtype), kern.astype(k_dtype)
    want_dtype = jnp.result_type(x, kern)
    y = depthwise_conv2d(x, kern)
    assert y.dtype == want_dtype == depthwise_conv2d_grouped(x, kern).dtype
    dx, dk = jax.vjp(depthwise_conv2d, x, kern)[1](dy.astype(want_dtype))
    assert (dx.dtype, dk.dtype) == (x.dtype, kern.dtype)  # cotangents in each input's own dtype
    exact = [a.astype(jnp.float64) for a in (x, kern)]
    np.testing.assert_allclose(y.astype(jnp.float64), depthwise_conv2d_grouped(*exact),
                               rtol=float(jnp.finfo(want_dtype).eps) * 8, atol=float(jnp.finfo(want_dtype).eps) * 8)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_bfloat16_error_is_one_rounding_and_no_worse_than_the_grouped_conv(stride):
    args = _case((2, 16, 16, 32), (3, 3), stride, "SAME", 7)
    bf16 = [a.astype(jnp.bfloat16) for a in args]
    exact = _step("grouped", stride, "SAME")(*[a.astype(jnp.float64) for a in bf16])
    errors = {}
    for which in ("fast", "grouped"):
        got = _step(which, stride, "SAME")(*bf16)
        errors[which] = [float(jnp.linalg.norm(g.astype(jnp.float64) - e) / jnp.linalg.norm(e))
                         for g, e in zip(got, exact, strict=True)]  # fmt: skip
    assert max(errors["fast"]) <= BF16_BOUND
    # no worse than the grouped conv, output by output, up to 1% (the roundings of two summation orders)
    assert all(f <= 1.01 * g for f, g in zip(errors["fast"], errors["grouped"], strict=True)), errors


def test_depthwise_bfloat16_harness_rejects_a_bfloat16_accumulation():
    """Negative control: the centre tap's kernel gradient as a running bfloat16 total over the positions (what
    a bfloat16 scan carry does) breaks the bound that the kernel meets."""
    x, kern, dy, *_ = _case((2, 16, 16, 32), (3, 3), 1, "SAME", 7)
    x16, dy16 = x.astype(jnp.bfloat16), dy.astype(jnp.bfloat16)
    exact = _kernel_gradient(x16.astype(jnp.float64), dy16.astype(jnp.float64), kern.shape)[1, 1]
    products = (x16 * dy16).reshape(-1, 32)
    running, _ = jax.lax.scan(lambda total, p: ((total + p).astype(jnp.bfloat16), None), products[0], products[1:])
    ours = _kernel_gradient(x16, dy16, kern.shape)[1, 1]

    def err(a):
        return float(jnp.linalg.norm(a.astype(jnp.float64) - exact) / jnp.linalg.norm(exact))

    assert err(ours) <= BF16_BOUND < err(running)


def test_depthwise_without_rules_is_the_same_function():
    """The shifted sum that the kernel's forward runs, differentiated by plain autodiff, gives the same result."""
    x, kern, dy, *_ = _case((2, 6, 7, 3), (3, 3), 1, "SAME", 11)
    plain = jax.vjp(_shifted_sum, x, kern)[1](dy)
    ruled = jax.vjp(depthwise_conv2d, x, kern)[1](dy)
    for a, b in zip(plain, ruled, strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-13)


def test_depthwise_harness_rejects_an_unflipped_adjoint():
    """Negative control: dx is the correlation with the kernel flipped; an unflipped one is caught."""
    x, kern, dy, *_ = _case((1, 6, 6, 2), (3, 3), 1, "SAME", 0)
    want = jax.vjp(depthwise_conv2d_grouped, x, kern)[1](dy)[0]
    assert not np.allclose(_shifted_sum(dy, kern), want, rtol=1e-6)
    np.testing.assert_allclose(_shifted_sum(dy, kern[::-1, ::-1]), want, rtol=RTOL, atol=1e-13)


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "options", "match"),
    [((4, 4, 3), (3, 3, 3), {}, "NHWC"), ((1, 4, 4, 3), (3, 3, 2), {}, "kernel"),
     ((1, 4, 4, 3), (3, 3, 3), {"stride": 0}, "stride"), ((1, 4, 4, 3), (3, 3, 3), {"padding": "FULL"}, "padding"),
     ((1, 2, 4, 3), (3, 3, 3), {"padding": "VALID"}, "no output")],
)  # fmt: skip
def test_depthwise_rejects_bad_arguments(x_shape, k_shape, options, match):
    with pytest.raises(ValueError, match=match):
        depthwise_conv2d(jnp.ones(x_shape), jnp.ones(k_shape), **options)
    with pytest.raises(ValueError, match="floating"):
        depthwise_conv2d(jnp.ones((1, 4, 4, 3), jnp.int32), jnp.ones((3, 3, 3), jnp.int32))


# --- BatchNorm -----------------------------------------------------------------------------------------------


def _modules(c: int, dtype):
    flax_bn = nnx.BatchNorm(c, param_dtype=dtype, rngs=nnx.Rngs(params=0))
    flax_bn.mean = nnx.BatchStat(jnp.zeros(c, jnp.promote_types(dtype, jnp.float32)))
    flax_bn.var = nnx.BatchStat(jnp.ones(c, jnp.promote_types(dtype, jnp.float32)))
    return flax_bn, BatchNorm(c, param_dtype=dtype, rngs=nnx.Rngs(params=0))


def _vjp(module, x, dy):
    graph, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(v, p):
        return nnx.merge(graph, p, rest, copy=True)(v)

    y, pullback = jax.vjp(apply, x, params)
    dx, dp = pullback(dy)
    return y, dx, dp["scale"][...], dp["bias"][...]


@pytest.mark.parametrize(("dtype", "rtol", "atol"), [(jnp.float64, 1e-12, 1e-12), (jnp.float32, 2e-5, 2e-5)])
@pytest.mark.parametrize("shape", [(16, 3), (4, 5, 6, 3), (2, 3, 3, 8)])
def test_batchnorm_outputs_equal_nnx_batchnorm(shape, dtype, rtol, atol):
    # float32: the statistics round in another order than nnx.BatchNorm's (a few ulps of x, times 1/sigma)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(1.0, 2.0, shape), dtype)
    theirs, ours = _modules(shape[-1], dtype)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.mean[...], theirs.mean[...], rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.var[...], theirs.var[...], rtol=rtol, atol=atol)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(x), theirs(x), rtol=rtol, atol=atol)


@pytest.mark.parametrize(("dtype", "rtol", "atol"), [(jnp.float64, 1e-12, 1e-12), (jnp.float32, 2e-5, 2e-5)])
def test_batchnorm_outputs_equal_nnx_batchnorm_with_blocked_statistics(blocked, monkeypatch, dtype, rtol, atol):
    """The same, on the path of an input larger than the last-level cache (the statistics summed in one scan
    over blocks): cache and block shrunk so that 120 rows of 3 features take it, in blocks of 7 and a tail of 1."""
    monkeypatch.setattr(blocked, "STATISTICS_BLOCK_BYTES", 7 * 3 * jnp.dtype(dtype).itemsize)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(1.0, 2.0, (4, 5, 6, 3)), dtype)
    assert blocked._takes_blocks(x, (0, 1, 2)) and blocked.rows_per_block(x, 3, blocked.STATISTICS_BLOCK_BYTES) == 7
    theirs, ours = _modules(3, dtype)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.mean[...], theirs.mean[...], rtol=rtol, atol=atol)
    np.testing.assert_allclose(ours.var[...], theirs.var[...], rtol=rtol, atol=atol)


@given(shape=st.sampled_from([(16, 3), (4, 5, 6, 3), (2, 3, 3, 8), (1, 4, 4, 2)]),
       mean=st.sampled_from([0.0, 1.0, 30.0]), seed=st.integers(0, 2**16))  # fmt: skip
@settings(deadline=None, max_examples=20)
def test_batchnorm_gradients_equal_autodiff_in_float64(shape, mean, seed):
    """To 1e-10 relative, with an absolute floor of 1e-10 x the largest term that makes up each gradient
    (a batch of one has dx = 0 exactly, computed as a difference of terms of size gamma dy / sqrt(eps)); the
    mean of 30 sigma makes the backward's sum dy x - mean sum dy cancel 30-fold, still well inside."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(mean, 1.0, shape))
    dy = jnp.asarray(rng.normal(size=shape))
    theirs, ours = _modules(shape[-1], jnp.float64)
    g = jnp.asarray(rng.normal(size=shape[-1]))
    theirs.scale[...], ours.scale[...] = g, g
    want, got = _vjp(theirs, x, dy), _vjp(ours, x, dy)
    axes = tuple(range(len(shape) - 1))
    scale = [jnp.max(jnp.abs(want[0])), jnp.max(jnp.abs(g)) * jnp.max(jnp.abs(dy)) / np.sqrt(1e-5),
             jnp.max(jnp.sum(jnp.abs(dy), axes)) * 10 + mean, jnp.max(jnp.sum(jnp.abs(dy), axes))]  # fmt: skip
    for name, a, b, s in zip(("y", "dx", "dscale", "dbias"), got, want, scale, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * float(s), err_msg=name)


def test_batchnorm_statistics_cotangents_are_added_exactly():
    """The custom VJP's outputs include the batch mean and variance; differentiating through them (not what
    the module does: it stops their gradient) gives autodiff's answer, and the zero cotangent path agrees."""
    rng = np.random.default_rng(4)
    x, g, b = (jnp.asarray(rng.normal(size=s)) for s in ((6, 2, 2, 3), (3,), (3,)))
    axes = (0, 1, 2)

    def reference(v, gg, bb):
        mean = jnp.mean(v, axes, keepdims=True)
        var = jnp.maximum(0.0, jnp.mean(v * v, axes, keepdims=True) - mean**2)
        return (v - mean) * jax.lax.rsqrt(var + 1e-5) * gg + bb, mean, var

    def loss(f, v, gg, bb):
        y, mean, var = f(v, gg, bb)
        return jnp.sum(jnp.sin(y)) + jnp.sum(mean**3) + jnp.sum(jnp.cos(var))

    ours = jax.grad(lambda *a: loss(lambda v, gg, bb: _batchnorm(v, gg, bb, 1e-5, axes), *a), (0, 1, 2))(x, g, b)
    want = jax.grad(lambda *a: loss(reference, *a), (0, 1, 2))(x, g, b)
    for a, w in zip(ours, want, strict=True):
        np.testing.assert_allclose(a, w, rtol=1e-10, atol=1e-12)


def test_batchnorm_keeps_at_most_half_the_residuals_of_autodiff():
    x = jnp.ones((8, 4, 4, 16), jnp.float32)
    ours = residual_bytes(BatchNorm(16, rngs=nnx.Rngs(params=0)), x)
    theirs = residual_bytes(nnx.BatchNorm(16, rngs=nnx.Rngs(params=0)), x)
    assert ours <= theirs / 2


# --- the roofline harness ----------------------------------------------------------------------------------


def test_roofline_places_a_kernel_at_the_roof_and_below_it():
    from benchmarks.roofline import place, rates

    # 1e8 bytes copied (read + write) in 1e-2 s into a new array, in 5e-3 s in place
    measured = rates({"fresh_copy_s": 1e-2, "streaming_copy_s": 5e-3}, 5e7)
    assert measured["copy_bandwidth_bytes_per_s"] == pytest.approx(1e10)
    assert measured["in_place_bandwidth_bytes_per_s"] == pytest.approx(2e10)
    at_roof = place(1e-2, 1e8, measured, flops=2e8, peak=1e11)
    assert at_roof["bandwidth_fraction"] == pytest.approx(1.0)
    assert at_roof["in_place_fraction"] == pytest.approx(0.5)
    assert at_roof["compute_fraction"] == pytest.approx(2e8 / 1e-2 / 1e11)
    # negative control: twice the time is half the fraction, and no flops means no compute fraction
    slow = place(2e-2, 1e8, measured)
    assert slow["bandwidth_fraction"] == pytest.approx(0.5) and slow["compute_fraction"] is None


def test_side_by_side_keeps_its_name_with_companions():
    from benchmarks.harness import side_by_side

    x = jnp.ones(8)
    row = side_by_side("row", ("a", lambda v: v + 1), ("b", lambda v: v * 2), (x,), runs=1, warmup=0,
                       companions={"other": lambda: x + 3})  # fmt: skip
    assert row["name"] == "row" and row["extra"]["other_s"] > 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_benchmarks_allocator_settings_keep_a_large_buffer_off_mmap():
    import subprocess
    import sys

    from benchmarks import allocator

    probe = ("from benchmarks import allocator as a; print(a.mmapped_large_buffer(), a.in_force(), "
             "repr(a.description()))")  # fmt: skip
    kept = {**allocator.default_environment(), **allocator.KEEP_FREED_MEMORY}
    out = subprocess.run([sys.executable, "-c", probe], env=kept, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("False True") and "is not mmapped" in out.stdout
    # negative control: under the defaults glibc maps a 64 MiB buffer, and no row claims the settings
    out = subprocess.run([sys.executable, "-c", probe], env=allocator.default_environment(), capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.startswith("True False") and "the C library's defaults" in out.stdout
    assert not set(allocator.KEEP_FREED_MEMORY) & set(allocator.default_environment())


def test_bench_refuses_an_unknown_benchmark_before_restarting_itself(monkeypatch, capsys):
    import types

    from benchmarks import allocator, run

    restarted = []
    monkeypatch.setattr(allocator, "reexec_with_kept_memory", lambda *a: restarted.append(a))
    assert run.main(["no_such_bench"]) == 2
    assert "unknown benchmark(s) no_such_bench" in capsys.readouterr().err and not restarted
    # positive control: a known name restarts (here: records the restart) and then runs that module only
    ran = []
    fake = types.SimpleNamespace(run=lambda: ran.append("roofline") or [])
    monkeypatch.setattr(run.importlib, "import_module", lambda name: fake)
    monkeypatch.setattr(run, "write_results", lambda results: "results.json")
    assert run.main(["roofline"]) == 0
    assert restarted == [("benchmarks.run", ["roofline"])] and ran == ["roofline"]
