"""Beyond CNNs: attention's closed-form backward and forward against float64 references, the query-key
variance, the GAN's optimal discriminator and JSD value, and the softmax variants' gradients, each harness
with a negative control."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.spatial.distance
import sympy as sp
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from derivations import beyond
from models.attention import SelfAttention, dot_product_attention, dot_product_attention_backward

RTOL = 1e-10
attention_shapes = st.sampled_from([(1, 4, 1, 8), (2, 5, 3, 4)])
_backward = jax.jit(dot_product_attention_backward)


@jax.jit
def _autodiff_backward(q, k, v, d_out):
    return jax.vjp(dot_product_attention, q, k, v)[1](d_out)


@given(shape=attention_shapes, seed=st.integers(0, 2**16))
def test_attention_backward_matches_autodiff(shape, seed):
    rng = np.random.default_rng(seed)
    q, k, v, d_out = (jnp.asarray(rng.normal(size=shape)) for _ in range(4))
    for got, want in zip(_backward(q, k, v, d_out), _autodiff_backward(q, k, v, d_out), strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-14)


def test_attention_backward_check_rejects_a_backward_without_the_softmax_correction():
    """Dropping the rowsum term (using dS = P * dP) gives a different dQ: the comparison objects."""
    rng = np.random.default_rng(0)
    q, k, v, d_out = (jnp.asarray(rng.normal(size=(1, 4, 1, 8))) for _ in range(4))
    p = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(8), axis=-1)
    dp = jnp.einsum("bqhd,bkhd->bhqk", d_out, v)
    wrong_dq = jnp.einsum("bhqk,bkhd->bqhd", p * dp, k) / np.sqrt(8)
    assert not np.allclose(wrong_dq, _autodiff_backward(q, k, v, d_out)[0], rtol=RTOL, atol=1e-14)


@given(shape=attention_shapes, seed=st.integers(0, 2**16))
def test_attention_forward_matches_a_numpy_float64_reference(shape, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (jnp.asarray(rng.normal(size=shape)) for _ in range(3))
    np.testing.assert_allclose(dot_product_attention(q, k, v), beyond._numpy_attention(q, k, v), rtol=1e-12, atol=1e-14)


def test_self_attention_module_equals_the_pure_function():
    module = SelfAttention(12, num_heads=3, rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 12)))
    q, k, v = jnp.split(module.qkv(x).reshape(2, 5, 9, 4), 3, axis=2)
    want = module.out(dot_product_attention(q, k, v).reshape(2, 5, 12))
    np.testing.assert_allclose(module(x), want, rtol=1e-14)
    with pytest.raises(ValueError, match="num_heads"):
        SelfAttention(10, num_heads=3, rngs=nnx.Rngs(params=0))


def test_query_key_variance_derivation_and_a_wrong_scale_is_rejected():
    steps = beyond.query_key_variance()
    e_q2, e_k2, e_q, e_k = beyond.MOMENTS
    assert steps[0].rhs == e_q2 * e_k2 - (e_q * e_k) ** 2 and steps[1].rhs == 1
    assert steps[2].rhs == beyond.d_model and steps[3].rhs == 1
    rng = np.random.default_rng(2)
    d = 128
    scores = np.einsum("nd,nd->n", rng.normal(size=(20000, d)), rng.normal(size=(20000, d)))
    se = np.std((scores - scores.mean()) ** 2) / np.sqrt(scores.size)
    assert abs(scores.var() - d) <= beyond.MC_Z * se
    assert abs(scores.var() - np.sqrt(d)) > 50 * se  # "variance sqrt(d)" is rejected


def test_unscaled_softmax_saturates():
    scaled, raw = (beyond.softmax_saturation(256, scaled=s) for s in (True, False))
    assert raw["entropy"] < 0.3 * scaled["entropy"]
    assert raw["max_weight"] > scaled["max_weight"]


def test_optimal_discriminator_maximises_the_value_and_a_wrong_one_does_not():
    d_star = beyond.optimal_discriminator()[0].rhs
    assert sp.simplify(sp.diff(beyond.gan_pointwise_value(), beyond.disc).subs(beyond.disc, d_star)) == 0
    wrong = beyond.p_gen / (beyond.p_data + beyond.p_gen)
    assert sp.simplify(sp.diff(beyond.gan_pointwise_value(), beyond.disc).subs(beyond.disc, wrong)) != 0


@given(seed=st.integers(0, 2**16))
def test_value_at_the_optimum_is_minus_log_4_plus_two_jsd(seed):
    data, generated = beyond._two_distributions(seed=seed)
    value = float(beyond.gan_value(jnp.asarray(data / (data + generated)), jnp.asarray(data), jnp.asarray(generated)))
    jsd = scipy.spatial.distance.jensenshannon(data, generated) ** 2
    np.testing.assert_allclose(value, -np.log(4) + 2 * jsd, rtol=RTOL)
    assert abs(value - (-np.log(4) + jsd)) > 1e-6  # one JSD instead of two is rejected


_zs, _ys = beyond.logits(), beyond.targets()


@pytest.mark.parametrize("t", [0.5, 3.0])
def test_temperature_gradient_matches_autodiff_and_forgetting_one_over_t_is_rejected(t):
    rows = jnp.concatenate([beyond._logit_rows(beyond.K, 1), beyond._one_hot_rows(2)], axis=1)
    right = beyond.temperature_gradient_claimed().subs(beyond.temperature, t)
    wrong = right * t

    def loss(row):
        return optax.softmax_cross_entropy(row[: beyond.K] / t, row[beyond.K :])

    assert beyond.gradient_formula_vs_autodiff(right, (*_zs, *_ys), loss, rows).ok
    assert not beyond.gradient_formula_vs_autodiff(wrong, (*_zs, *_ys), loss, rows).ok


@pytest.mark.parametrize("alpha", [0.1, 0.4])
def test_label_smoothing_gradient_matches_autodiff_and_the_hard_target_is_rejected(alpha):
    rows = jnp.concatenate([beyond._logit_rows(beyond.K, 3), beyond._one_hot_rows(4)], axis=1)
    right = beyond.label_smoothing_gradient_claimed().subs(beyond.smoothing, alpha)
    wrong = beyond.softmax(_zs) - sp.Matrix(_ys)

    def loss(row):
        return optax.softmax_cross_entropy(row[: beyond.K], optax.smooth_labels(row[beyond.K :], alpha))

    assert beyond.gradient_formula_vs_autodiff(right, (*_zs, *_ys), loss, rows).ok
    assert not beyond.gradient_formula_vs_autodiff(wrong, (*_zs, *_ys), loss, rows).ok


_am_grad = jax.jit(jax.grad(beyond.am_softmax_loss), static_argnames=("s", "m"))
_am_closed = jax.jit(beyond.am_softmax_input_gradient, static_argnames=("s", "m"))


@given(seed=st.integers(0, 2**16), margin=st.sampled_from([0.0, 0.35]))
def test_additive_margin_gradient_matches_autodiff(seed, margin):
    rng = np.random.default_rng(seed)
    x, w = jnp.asarray(rng.normal(size=6)), jnp.asarray(rng.normal(size=(4, 6)))
    label = jnp.asarray(rng.integers(0, 4))
    want = _am_grad(x, w, label, s=16.0, m=margin)
    np.testing.assert_allclose(_am_closed(x, w, label, s=16.0, m=margin), want, rtol=1e-9, atol=1e-13)


def test_additive_margin_check_rejects_the_unnormalised_gradient():
    rng = np.random.default_rng(5)
    x, w, label = jnp.asarray(rng.normal(size=6)), jnp.asarray(rng.normal(size=(4, 6))), jnp.asarray(1)
    want = _am_grad(x, w, label, s=16.0, m=0.35)
    p = jax.nn.softmax(
        16.0
        * (w / jnp.linalg.norm(w, axis=-1, keepdims=True) @ (x / jnp.linalg.norm(x)) - 0.35 * jax.nn.one_hot(label, 4))
    )
    wrong = (16.0 * (p - jax.nn.one_hot(label, 4))) @ (w / jnp.linalg.norm(w, axis=-1, keepdims=True))
    assert not np.allclose(wrong, want, rtol=1e-9)


def test_dirac_gan_eigenvalues_are_purely_imaginary():
    eigenvalues = list(beyond.dirac_gan_jacobian().rhs)
    assert all(sp.re(e) == 0 and sp.im(e) != 0 for e in eigenvalues)


def test_am_softmax_rejects_a_negative_margin():
    with pytest.raises(ValueError, match="m >= 0"):
        beyond.am_softmax_loss(jnp.ones(3), jnp.ones((2, 3)), jnp.asarray(0), s=1.0, m=-0.1)


@pytest.mark.parametrize("d", [4, 64])
def test_saturation_jacobian_norm_is_that_of_jax_jacobian_and_a_wrong_formula_is_rejected(d):
    """The closed-form Frobenius norm of diag(p) - p p^T equals jax.jacobian's; diag(p) alone does not."""
    out = beyond.softmax_saturation(d, scaled=False, keys=8, queries=16)
    rng = np.random.default_rng(0)  # softmax_saturation's draws: queries first, then keys
    q = jnp.asarray(rng.normal(size=(1, 16, 1, d)))
    k = jnp.asarray(rng.normal(size=(1, 8, 1, d)))
    logits = jnp.einsum("qd,kd->qk", q[0, :, 0], k[0, :, 0])
    jacobians = jax.vmap(jax.jacobian(jax.nn.softmax))(logits)
    # sum p^2 - 2 sum p^3 + (sum p^2)^2 cancels for peaked p: a relative 1e-8 covers the rounding.
    np.testing.assert_allclose(
        out["jacobian_norm"], float(jnp.mean(jnp.linalg.norm(jacobians, axis=(1, 2)))), rtol=1e-8
    )
    wrong = float(jnp.mean(jnp.linalg.norm(jax.vmap(jnp.diag)(jax.nn.softmax(logits)), axis=(1, 2))))
    assert abs(wrong - out["jacobian_norm"]) > 1e-3


def test_generator_gradient_vanishes_only_when_the_distributions_do_not_overlap():
    from derivations.ledger.beyond import _generator_gradient

    grid = np.linspace(-1.0, 3.0, 801)
    near, far = (abs(_generator_gradient(s * 0.05, 0.05, grid)) for s in (1.0, 40.0))
    assert near > 1.0 and far < 1e-20
    assert _generator_gradient(0.0, 0.05, grid) == pytest.approx(0.0, abs=1e-9)  # at p_g = p_data, the optimum


def test_hard_attention_processes_only_the_selected_inputs():
    """The cost claim's hard attention runs the processor on k rows: fewer XLA FLOPs than on all n, and
    processing every row (k = n, the negative control) is no cheaper."""
    from derivations.harness import xla_cost
    from derivations.ledger.beyond import _processor

    rng = np.random.default_rng(0)
    w1, w2, query = jnp.asarray(rng.normal(size=(8, 32))), jnp.asarray(rng.normal(size=(32, 8))), jnp.ones(8)
    x = jnp.asarray(rng.normal(size=(64, 8)))
    full = xla_cost(lambda t: _processor(t, w1, w2), x)["flops"]
    for k, cheaper in ((8, True), (64, False)):
        cost = xla_cost(lambda t, k=k: _processor(t[jax.lax.top_k(t @ query, k)[1]], w1, w2), x)["flops"]
        assert (cost < full) == cheaper
