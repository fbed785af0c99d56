"""Normalization: the closed-form BatchNorm backward (and the custom-VJP module that runs it) against
jax.vjp of nnx.BatchNorm for dense and NHWC inputs, the drop-in behaviour, and the negative controls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import normalization as norm
from derivations.bridge import to_jax
from derivations.compare import compare
from models.normalization import BatchNorm, batch_statistics, batchnorm, batchnorm_backward, normalize

RTOL = 1e-10
ULPS = 8  # round-off units, times the one-pass variance's condition max x^2/(Var + eps) (norm.conditioned_rtol)
# Batches of 1 and 2 included: there the variance can be 0 or tiny and the comparison is ill-conditioned.
shapes = st.sampled_from([(1, 3), (2, 3), (16, 3), (1, 4, 4, 3), (2, 4, 4, 3)])


def _case(shape, seed):
    return norm._random_case(shape, seed)


def _assert_gradients_close(got, want, x, g, dy, axes):
    """Each of dx, dgamma, dbeta to rtol + ULPS ulps times the variance's condition, relative and, times the
    size of the terms that make it up (norm.gradient_magnitudes), absolute where it cancels to 0."""
    tol = norm.conditioned_rtol(RTOL, x, axes, norm.EPS, ULPS)
    sizes = norm.gradient_magnitudes(x, g, dy, norm.EPS, axes)
    for name, a, w, size in zip(("dx", "dgamma", "dbeta"), got, want, sizes, strict=True):
        np.testing.assert_allclose(a, w, rtol=tol, atol=(tol - RTOL) * size, err_msg=name)


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_bn_backward_matches_autodiff_for_dense_and_conv_inputs(shape, seed):
    x, g, b, dy = _case(shape, seed)
    axes = tuple(range(len(shape) - 1))
    want = norm.autodiff_reference(nnx.BatchNorm, x, g, b, dy)
    _assert_gradients_close(batchnorm_backward(x, g, dy, norm.EPS, axes), want, x, g, dy, axes)


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_custom_vjp_batchnorm_gradients_match_autodiff(shape, seed):
    x, g, b, dy = _case(shape, seed)
    axes = tuple(range(len(shape) - 1))
    want = norm.autodiff_reference(nnx.BatchNorm, x, g, b, dy)
    _assert_gradients_close(norm.autodiff_reference(BatchNorm, x, g, b, dy), want, x, g, dy, axes)


def test_batch_of_one_has_zero_dx_and_dgamma():
    x, g, _, dy = _case((1, 3), 0)
    dx, dgamma, dbeta = batchnorm_backward(x, g, dy, norm.EPS, 0)
    assert bool(jnp.all(dx == 0)) and bool(jnp.all(dgamma == 0))
    np.testing.assert_array_equal(dbeta, dy[0])


def test_custom_vjp_forward_equals_flax_forward():
    x, g, b, _ = _case((4, 5, 6, 3), 1)
    module = norm.flax_batchnorm(3)
    module.scale[...], module.bias[...] = g, b
    np.testing.assert_allclose(batchnorm(x, g, b, norm.EPS, (0, 1, 2)), module(x), rtol=RTOL, atol=1e-14)


def test_sympy_closed_form_agrees_with_the_numeric_backward():
    assert norm.closed_form_vs_models(n=3, points=16, ulps=ULPS).ok


def _without_mean_term(x, g, dy, eps, axes):
    mean, var = batch_statistics(x, axes)
    inv, n = jax.lax.rsqrt(var + eps), x.size // g.size
    x_hat = (x - mean) * inv
    dgamma = jnp.sum(dy * x_hat, axis=axes, keepdims=True)
    dx = g * inv / n * (n * dy - x_hat * dgamma)  # the -sum(dy) term is missing
    return dx, dgamma.reshape(g.shape), jnp.sum(dy, axis=axes)


def _without_x_hat_term(x, g, dy, eps, axes):
    mean, var = batch_statistics(x, axes)
    inv, n = jax.lax.rsqrt(var + eps), x.size // g.size
    x_hat = (x - mean) * inv
    dbeta = jnp.sum(dy, axis=axes, keepdims=True)
    dx = g * inv / n * (n * dy - dbeta)  # the -x_hat sum(dy x_hat) term is missing
    return dx, jnp.sum(dy * x_hat, axis=axes), dbeta.reshape(g.shape)


@pytest.mark.parametrize("wrong", [_without_mean_term, _without_x_hat_term], ids=["no-mean-term", "no-x-hat-term"])
def test_autodiff_harness_rejects_an_incomplete_dx(wrong):
    results = norm.backward_vs_autodiff(wrong, [(16, 3), (4, 5, 6, 3)], ulps=ULPS)
    for comparisons in results.values():
        dx, dgamma, dbeta = comparisons
        assert not dx.ok
        assert dgamma.ok and dbeta.ok  # only the broken term is caught, the rest still agrees


@pytest.mark.parametrize("drop", ["mean", "x_hat"])
def test_symbolic_harness_rejects_an_incomplete_dx(drop):
    batch = norm._concrete_batch(2)
    x1, x2 = batch["xs"]
    mean = (x1 + x2) / 2
    std = sp.sqrt(((x1 - mean) ** 2 + (x2 - mean) ** 2) / 2 + norm.eps)
    d1, d2 = batch["dys"]
    h1, h2 = (x1 - mean) / std, (x2 - mean) / std
    terms = {"mean": 2 * d1 - h1 * (d1 * h1 + d2 * h2), "x_hat": 2 * d1 - (d1 + d2)}
    wrong = norm.gamma / (2 * std) * terms[drop]
    assert sp.simplify(batch["exact"]["x1"] - wrong) != 0
    assert sp.simplify(batch["exact"]["x1"] - batch["closed"]["x1"]) == 0


def test_drop_in_keeps_the_same_running_averages_and_eval_outputs():
    rng = np.random.default_rng(0)
    ours = BatchNorm(3, momentum=0.9, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    theirs = norm.flax_batchnorm(3, momentum=0.9)
    assert sorted(nnx.state(ours).keys()) == sorted(nnx.state(theirs).keys())
    for _ in range(5):
        batch = jnp.asarray(rng.normal(2.0, 3.0, (8, 4, 4, 3)))
        np.testing.assert_allclose(ours(batch), theirs(batch), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.mean[...], theirs.mean[...], rtol=1e-12)
    np.testing.assert_allclose(ours.var[...], theirs.var[...], rtol=1e-12)
    ours.eval()
    theirs.eval()
    assert ours.use_running_average
    test = jnp.asarray(rng.normal(size=(2, 4, 4, 3)))
    np.testing.assert_allclose(ours(test), theirs(test), rtol=1e-12, atol=1e-12)
    view = nnx.view(ours, use_running_average=False)
    assert not view.use_running_average


def test_custom_vjp_batchnorm_trains_under_nnx_jit():
    model = BatchNorm(3, rngs=nnx.Rngs(params=0))
    x = jax.random.normal(jax.random.key(0), (8, 3))

    @nnx.jit
    def loss_grad(m):
        return nnx.grad(lambda m: jnp.sum(m(x) ** 3))(m)

    grads = loss_grad(model)
    assert bool(jnp.all(jnp.isfinite(grads.scale[...]))) and bool(jnp.any(grads.scale[...] != 0))


def test_constant_feature_gives_finite_outputs_and_gradients():
    x = jnp.ones((6, 2)).at[:, 0].set(jnp.arange(6.0))
    dx, dgamma, dbeta = batchnorm_backward(x, jnp.ones(2), jnp.ones((6, 2)), norm.EPS, 0)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in (dx, dgamma, dbeta))
    assert bool(jnp.all(jnp.isnan(normalize(x, 0, 0.0)[:, 1])))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: batchnorm_backward(jnp.ones((4, 3)), jnp.ones(2), jnp.ones((4, 3)), 1e-5, 0), "gamma has shape"),
        (lambda: batchnorm_backward(jnp.ones((4, 3)), jnp.ones(3), jnp.ones((4, 2)), 1e-5, 0), "dy has shape"),
        (lambda: batchnorm_backward(jnp.ones((4, 3)), jnp.ones(3), jnp.ones((4, 3)), -1.0, 0), "epsilon"),
        (lambda: batchnorm_backward(jnp.ones((4, 3)), jnp.ones(3), jnp.ones((4, 3)), 1e-5, 2), "axes"),
        (lambda: batchnorm_backward(jnp.ones((4, 3)), jnp.ones(()), jnp.ones((4, 3)), 1e-5, (0, 1)), "every axis"),
        (lambda: BatchNorm(3, momentum=1.5, rngs=nnx.Rngs(0)), "momentum"),
        (lambda: BatchNorm(3, rngs=nnx.Rngs(0))(jnp.ones((2, 4))), "features"),
        (lambda: norm.group_normalize(jnp.ones((1, 2, 2, 6)), 4, 1e-5), "groups must divide"),
    ],
)
def test_invalid_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_expected_batch_variance_is_m_minus_one_over_m():
    s2 = sp.Symbol("s^2", positive=True)
    for m in (2, 3, 7):
        assert sp.simplify(norm.expected_batch_variance(m) - sp.Rational(m - 1, m) * s2) == 0


# --- γ, β fitted to one batch; constant features; batches of one and two; scale invariance; residuals ---


def _fitted_module(fitted):
    mean, var = batch_statistics(fitted, (0,))
    module = norm.flax_batchnorm(fitted.shape[-1])
    module.scale[...], module.bias[...] = jnp.sqrt(var[0] + norm.EPS), mean[0]
    return module


@given(seed=st.integers(0, 2**16))
def test_gamma_beta_fitted_to_one_batch_leave_the_derived_residual_on_another(seed):
    rng = np.random.default_rng(seed)
    fitted, fresh = (jnp.asarray(rng.normal(1.5, 2.0, (32, 4))) for _ in range(2))
    module = _fitted_module(fitted)
    y = module(fresh)
    mean_2, var_2 = batch_statistics(fresh, (0,))
    residual = to_jax(norm.restore_on_another_batch()[1].rhs,
                           (norm.x_i, norm.sigma_1, norm.mu_1, norm.sigma_2, norm.mu_2))  # fmt: skip
    want = residual(fresh, module.scale[...], module.bias[...], jnp.sqrt(var_2 + norm.EPS), mean_2)
    # The residual is a difference of O(1) values: compared to 1e-12 absolute where it crosses 0.
    np.testing.assert_allclose(y - fresh, want, rtol=RTOL, atol=1e-12)


def test_restore_harness_rejects_the_notes_claim_on_a_fresh_batch():
    """Negative control: gamma, beta fitted to one batch do not restore another batch in training mode."""
    rng = np.random.default_rng(0)
    fitted, fresh = (jnp.asarray(rng.normal(1.5, 2.0, (32, 4))) for _ in range(2))
    module = _fitted_module(fitted)
    assert compare(lambda: module(fitted), lambda: fitted, []).ok
    assert not compare(lambda: module(fresh), lambda: fresh, []).ok


@given(n=st.sampled_from([2, 4, 16]), seed=st.integers(0, 2**16))
def test_constant_feature_gradient_is_dy_minus_its_mean_over_sqrt_epsilon(n, seed):
    rng = np.random.default_rng(seed)
    level = 3.0 * rng.normal()
    x = jnp.asarray(rng.normal(size=(n, 2))).at[:, 0].set(level)
    g, dy = jnp.asarray([1.7, 0.6]), jnp.asarray(rng.normal(size=(n, 2)))
    dx, _, _ = batchnorm_backward(x, g, dy, norm.EPS, 0)
    # Ill-conditioned: the one-pass variance of the constant is a few ulps of level^2, not 0, and moves dx by
    # that over 2 eps (rtol + ULPS ulps * level^2/eps, up to ~1e-9 here); dy - mean(dy) cancels, an absolute
    # round-off multiplied by gamma/sqrt(eps) ~ 316 gamma (atol). A fixed rtol 1e-10 failed at n=16, seed=3014.
    rtol, atol = norm.constant_feature_tolerance(level, 1.7, dy[:, 0], norm.EPS, RTOL, ULPS)
    np.testing.assert_allclose(dx[:, 0], norm.constant_feature_dx(n)(dy[:, 0], g[0], norm.EPS), rtol=rtol, atol=atol)
    bound = float(g[0] / np.sqrt(norm.EPS))
    assert float(jnp.linalg.norm(dx[:, 0])) <= bound * float(jnp.linalg.norm(dy[:, 0])) * (1 + rtol)


def test_constant_feature_tolerance_scales_with_the_conditioning():
    """The tolerance grows as level^2/eps and |gamma|/sqrt(eps), and is the standard one for a benign case."""
    dy = jnp.ones(4)
    tight, _ = norm.constant_feature_tolerance(0.0, 1.0, dy, 1e-5, RTOL, ULPS)
    loose, atol = norm.constant_feature_tolerance(10.0, 2.0, dy, 1e-5, RTOL, ULPS)
    assert tight == RTOL and loose > 100 * RTOL
    assert atol == pytest.approx(ULPS * np.finfo(np.float64).eps * 2.0 / np.sqrt(1e-5))


def test_constant_feature_harness_rejects_dy_without_its_mean():
    """Negative control: dropping the -mean(dy) term (dx = gamma dy/sqrt(eps)) must be rejected."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(16, 2))).at[:, 0].set(3.0)
    dy = jnp.asarray(rng.normal(size=(16, 2)))
    dx, _, _ = batchnorm_backward(x, jnp.ones(2), dy, norm.EPS, 0)
    assert compare(lambda: norm.constant_feature_dx(16)(dy[:, 0], 1.0, norm.EPS), lambda: dx[:, 0], []).ok
    assert not compare(lambda: dy[:, 0] / np.sqrt(norm.EPS), lambda: dx[:, 0], []).ok


@given(seed=st.integers(0, 2**16))
def test_batch_of_one_outputs_beta_and_batch_of_two_outputs_the_derived_sign(seed):
    rng = np.random.default_rng(seed)
    g, b = jnp.asarray(rng.normal(size=8)), jnp.asarray(rng.normal(size=8))
    module = norm.flax_batchnorm(8)
    module.scale[...], module.bias[...] = g, b
    assert bool(jnp.array_equal(module(jnp.asarray(rng.normal(size=(1, 8))))[0], b))
    pair = jnp.asarray(rng.normal(0, 3, (2, 8)))
    two = to_jax(norm.batchnorm_of_one_and_two()[1].rhs, (*sp.symbols("x1:3", real=True), norm.eps))
    # Two nearly equal values make the one-pass variance ill-conditioned: the tolerance scales with
    # max x^2/(Var + eps); y = gamma x_hat + beta may cancel to 0, hence the absolute part (times |gamma|).
    tol = norm.conditioned_rtol(RTOL, pair, (0,), norm.EPS, ULPS)
    np.testing.assert_allclose(
        module(pair)[0],
        g * two(pair[0], pair[1], norm.EPS) + b,
        rtol=tol,
        atol=(tol - RTOL) * float(jnp.max(jnp.abs(g)) + jnp.max(jnp.abs(b))),
    )
    # Negative control: without epsilon the formula is the bare sign, off by O(eps/d^2) and rejected.
    sign = g * jnp.sign(pair[0] - pair[1]) + b
    assert not compare(lambda: module(pair)[0], lambda: sign, []).ok


_SCALE_BN = nnx.split(norm.flax_batchnorm(2, epsilon=0.0), nnx.Param, ...)


@jax.jit
def _scale_bn_grad(weights, x, dy):
    """jax.grad in the weights of sum(dy * nnx.BatchNorm(x @ weights)), epsilon 0: one compile for every example."""
    graph, params, rest = _SCALE_BN
    return jax.grad(lambda v: jnp.sum(dy * nnx.merge(graph, params, rest, copy=True)(x @ v)))(weights)


@given(a=st.sampled_from([0.01, 0.5, 3.0, 100.0]), seed=st.integers(0, 2**16))
def test_batchnorm_output_is_scale_invariant_and_gradient_scales_by_one_over_a(a, seed):
    rng = np.random.default_rng(seed)
    x, w, dy = (jnp.asarray(rng.normal(size=s)) for s in ((16, 3), (3, 2), (16, 2)))

    def grad(weights):
        return _scale_bn_grad(weights, x, dy)

    tol = norm.conditioned_rtol(RTOL, x @ w, (0,), 0.0, ULPS)
    term = float(jnp.max(jnp.abs(dy)) * jnp.max(jnp.abs(x)) / (a * jnp.min(jnp.std(x @ w, axis=0))))
    np.testing.assert_allclose(grad(a * w), grad(w) / a, rtol=tol, atol=(tol - RTOL) * term)
    # Negative control: the gradient does change with a, so "the same gradient" is rejected.
    assert not compare(lambda: grad(a * w), lambda: grad(w), []).ok


def test_scale_invariance_is_only_approximate_with_epsilon():
    """Negative control for the epsilon = 0 statement: with epsilon > 0 the comparison must object."""
    rng = np.random.default_rng(3)
    x, w = jnp.asarray(rng.normal(size=(16, 3))), jnp.asarray(rng.normal(size=(3, 2)))
    module = norm.flax_batchnorm(2)
    assert not compare(lambda: module(x @ (0.01 * w)), lambda: module(x @ w), []).ok


def test_running_variance_harness_rejects_an_unbiased_ema():
    """Negative control: an EMA of the unbiased (ddof=1) batch variances is not what Flax keeps."""
    rng = np.random.default_rng(4)
    module = norm.flax_batchnorm(2, momentum=0.9)
    biased, unbiased = np.ones(2), np.ones(2)
    for _ in range(10):
        batch = rng.normal(0, 2, (8, 2))
        module(jnp.asarray(batch))
        biased = 0.9 * biased + 0.1 * batch.var(axis=0)
        unbiased = 0.9 * unbiased + 0.1 * batch.var(axis=0, ddof=1)
    assert compare(lambda: module.var[...], lambda: biased, []).ok
    assert not compare(lambda: module.var[...], lambda: unbiased, []).ok


def test_an_outlier_stays_saturated_and_squeezes_the_batch_after_bn():
    rng = np.random.default_rng(5)
    clean = jnp.asarray(rng.normal(size=(64, 1)))
    y = norm.flax_batchnorm(1)(clean.at[0, 0].set(25.0))[:, 0]
    assert float(jax.grad(jax.nn.sigmoid)(y[0])) < 0.01
    assert float(jnp.std(y[1:])) < 0.5 < float(jnp.std(norm.flax_batchnorm(1)(clean)[1:, 0]))


def test_custom_vjp_keeps_one_input_sized_residual_and_autodiff_keeps_more():
    from benchmarks.bench_batchnorm import residual_bytes, vjp_residuals

    x = jnp.ones((8, 4, 4, 16), jnp.float32)
    ours = vjp_residuals(BatchNorm(16, rngs=nnx.Rngs(params=0)), x)
    assert [r.shape for r in ours if r.size == x.size] == [x.shape]
    assert sum(r.size for r in ours if r.size != x.size) <= 4 * 16  # per-channel vectors only
    assert residual_bytes(nnx.BatchNorm(16, rngs=nnx.Rngs(params=0)), x) > residual_bytes(
        BatchNorm(16, rngs=nnx.Rngs(params=0)), x
    )


# --- the one-pass statistics of large inputs (models.normalization._blocked_sums) -------------------------------


@pytest.mark.parametrize(("shape", "rows"), [((6, 5, 4, 3), 7), ((6, 5, 4, 3), 1), ((6, 5, 4, 3), 120), ((9, 2), 4)])
def test_blocked_sums_equal_the_two_plain_sums(shape, rows):
    """Whole blocks and a tail (120 = 6 * 5 * 4 rows: 7 leaves a tail of 1, 4 of 9 rows a tail of 1)."""
    from models.normalization import _blocked_sums

    x = jax.random.normal(jax.random.key(3), shape, jnp.float64) * 3 + 2
    leading = len(shape) - 1
    total, squares = _blocked_sums(x, leading, rows)
    axes = tuple(range(leading))
    np.testing.assert_allclose(total, jnp.sum(x, axes, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(squares, jnp.sum(x * x, axes, keepdims=True), rtol=1e-13)


def test_blocked_sums_of_bfloat16_are_the_float32_sums():
    """A bfloat16 x is summed in float32 block by block: the same sums as of x converted whole."""
    from models.normalization import _blocked_sums

    x = (jax.random.normal(jax.random.key(6), (6, 5, 4, 3), jnp.float32) * 3 + 2).astype(jnp.bfloat16)
    got = _blocked_sums(x, 3, 7, jnp.float32)
    want = _blocked_sums(x.astype(jnp.float32), 3, 7)
    assert all(g.dtype == jnp.float32 for g in got)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_blocks_only_for_leading_axes_larger_than_the_cache(monkeypatch):
    from models import normalization as mn

    x = jnp.zeros((64, 8, 8, 16), jnp.float32)  # 256 KiB
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    monkeypatch.setattr(mn, "last_level_cache_bytes", lambda: 1 << 20)
    assert not mn._takes_blocks(x, (0, 1, 2))  # fits the cache
    monkeypatch.setattr(mn, "last_level_cache_bytes", lambda: 1 << 16)
    assert mn._takes_blocks(x, (0, 1, 2))
    assert not mn._takes_blocks(x, (1, 2))  # not the leading axes (instance norm)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not mn._takes_blocks(x, (0, 1, 2))
    assert mn.rows_per_block(x, 3, 1 << 12) == 64  # 4 KiB blocks of 64-byte rows
    assert mn.rows_per_block(x, 3, 1) == 1
    assert mn.rows_per_block(x, 3, 1 << 30) == 4096


def test_batchnorm_on_the_blocked_path_matches_autodiff(blocked, monkeypatch):
    """The module's statistics taken in blocks (cache and block sizes shrunk so that a small input takes the
    path of a large one) give nnx.BatchNorm's gradients to the precision of the tests above."""
    monkeypatch.setattr(blocked, "STATISTICS_BLOCK_BYTES", 5 * 3 * 8)  # 5 rows a block, 168 rows: a tail of 3
    x, g, b, dy = _case((7, 4, 6, 3), 5)
    assert blocked._takes_blocks(x, (0, 1, 2)) and blocked.rows_per_block(x, 3, blocked.STATISTICS_BLOCK_BYTES) == 5
    want = norm.autodiff_reference(nnx.BatchNorm, x, g, b, dy)
    _assert_gradients_close(norm.autodiff_reference(BatchNorm, x, g, b, dy), want, x, g, dy, (0, 1, 2))
    mean, var = batch_statistics(x, (0, 1, 2))
    np.testing.assert_allclose(mean, jnp.mean(x, (0, 1, 2), keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(var, jnp.var(x, (0, 1, 2), keepdims=True), rtol=1e-10)


def test_autodiff_through_the_blocked_statistics(blocked, monkeypatch):
    """jax.grad through the scan (normalize, which has no custom rule) equals it through two reductions."""
    monkeypatch.setattr(blocked, "STATISTICS_BLOCK_BYTES", 5 * 3 * 8)
    x, _, _, dy = _case((7, 4, 6, 3), 6)

    def loss(v):
        return jnp.sum(normalize(v, (0, 1, 2), norm.EPS) * dy)

    got = jax.grad(loss)(x)
    monkeypatch.setattr(blocked, "last_level_cache_bytes", lambda: 1 << 40)
    blocked.clear_statistics_caches()
    assert not blocked._takes_blocks(x, (0, 1, 2))
    np.testing.assert_allclose(got, jax.grad(loss)(x), rtol=1e-10, atol=1e-12)


def test_last_level_cache_is_read_from_sysfs(tmp_path):
    from models.normalization import last_level_cache_bytes

    for name, level, size in (("index0", "1", "32K"), ("index2", "2", "512K"), ("index3", "3", "16384K")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "level").write_text(level + "\n")
        (tmp_path / name / "size").write_text(size + "\n")
    assert last_level_cache_bytes(str(tmp_path)) == 16 << 20
    (tmp_path / "index4").mkdir()
    (tmp_path / "index4" / "level").write_text("4\n")
    (tmp_path / "index4" / "size").write_text("96M\n")
    assert last_level_cache_bytes(str(tmp_path)) == 16 << 20  # cached per path
    last_level_cache_bytes.cache_clear()
    assert last_level_cache_bytes(str(tmp_path)) == 96 << 20
    assert last_level_cache_bytes(str(tmp_path / "missing")) == 32 << 20  # the fallback
