"""Data: z-score and min-max properties, the least-squares Hessian against its SymPy moment matrix, Mixup's
linearity, and class weighting vs oversampling, each with a negative control."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derivations import data
from derivations.bridge import prove_identity
from derivations.claims import claims_for
from derivations.compare import compare

RTOL = 1e-10
_HESSIAN = jax.jit(jax.hessian(data.least_squares_loss))
shapes = st.sampled_from([(16, 2), (64, 3)])


@functools.cache
def _hessian_formula():
    return sp.lambdify([data.mu1, data.mu2, data.s1, data.s2, data.r], data.hessian_of_moments(), "numpy")


@given(seed=st.integers(0, 2**16), scales=st.sampled_from([(1.0, 1.0), (10.0, 0.1), (3.0, 50.0)]))
def test_least_squares_hessian_is_the_moment_matrix(seed, scales):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 2)) * np.asarray(scales) + rng.normal(size=2) * 5
    hessian = _HESSIAN(jnp.zeros(3), jnp.asarray(x), jnp.zeros(64))
    m, d, r = x.mean(axis=0), x.std(axis=0), np.corrcoef(x.T)[0, 1]
    np.testing.assert_allclose(_hessian_formula()(*m, *d, r), hessian, rtol=RTOL, atol=1e-12)


def test_hessian_check_rejects_the_covariance_without_the_mean_term():
    """A wrong formula (the covariance alone, forgetting mu mu^T) is rejected for uncentred data."""
    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 2))
    hessian = _HESSIAN(jnp.zeros(3), jnp.asarray(x), jnp.zeros(64))
    wrong = data.hessian_of_moments(0, 0, *x.std(axis=0), np.corrcoef(x.T)[0, 1])
    assert not compare(lambda: jnp.asarray(np.asarray(wrong, dtype=float)), lambda: hessian, [], atol=1e-12).ok


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_zscore_has_mean_zero_and_std_one(shape, seed):
    x = jnp.asarray(np.random.default_rng(seed).lognormal(1.0, 1.0, shape))
    z = data.zscore(x)
    assert float(jnp.max(jnp.abs(jnp.mean(z, axis=0)))) <= 1e-12
    assert float(jnp.max(jnp.abs(jnp.std(z, axis=0) - 1))) <= 1e-12


def test_zscore_with_the_unbiased_std_is_not_one():
    x = jnp.arange(8.0)
    np.testing.assert_allclose(jnp.std(data.zscore(x, ddof=1)), np.sqrt(7 / 8), rtol=1e-14)


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_zscore_keeps_skewness(shape, seed):
    x = np.random.default_rng(seed).exponential(1.0, shape)
    np.testing.assert_allclose(
        scipy.stats.skew(np.asarray(data.zscore(jnp.asarray(x)))), scipy.stats.skew(x), rtol=1e-9, atol=1e-12
    )


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_min_max_maps_onto_zero_one(shape, seed):
    u = data.min_max(jnp.asarray(np.random.default_rng(seed).normal(0, 10, shape)))
    assert bool(jnp.all(jnp.min(u, axis=0) == 0))
    assert float(jnp.max(jnp.abs(jnp.max(u, axis=0) - 1))) <= jnp.finfo(jnp.float64).eps


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: data.zscore(jnp.ones((4, 2))), "constant feature"),
        (lambda: data.zscore(jnp.ones(1)), "at least 2"),
        (lambda: data.zscore(jnp.arange(4.0), ddof=2), "ddof"),
        (lambda: data.min_max(jnp.ones((3, 1))), "max == min"),
        (lambda: data.gd_steps_to_accuracy(jnp.ones((4, 1)), jnp.ones(4), tol=2.0), "tol"),
    ],
)
def test_helpers_reject_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_standardising_cuts_gradient_descent_steps():
    x, y = data._features(n=500)
    raw = data.gd_steps_to_accuracy(jnp.asarray(x), jnp.asarray(y), tol=1e-6)
    std = data.gd_steps_to_accuracy(data.zscore(jnp.asarray(x)), jnp.asarray(y), tol=1e-6)
    assert std * 100 < raw


def test_mixup_identity_is_proved_and_a_wrong_mix_is_rejected():
    identity = data.mixup_loss_is_linear_in_the_target()
    probs, first, second = data.mixup_symbols()
    symbols = [*probs, *first, *second, data.lam]
    positive = lambda rng, n: rng.uniform(0.05, 1.0, n)  # noqa: E731
    assert prove_identity(identity.lhs, identity.rhs, symbols, sampler=positive).holds
    wrong = data.lam * data.cross_entropy(probs, first) + data.lam * data.cross_entropy(probs, second)
    assert not prove_identity(identity.lhs, wrong, symbols, sampler=positive).holds


@given(seed=st.integers(0, 2**16), k=st.sampled_from([3, 5]))
def test_mixup_label_loss_equals_mixed_losses_in_optax(seed, k):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(8, k)))
    y1, y2 = (jax.nn.one_hot(rng.integers(0, k, 8), k, dtype=jnp.float64) for _ in range(2))
    share = float(rng.uniform())
    mixed = optax.softmax_cross_entropy(z, share * y1 + (1 - share) * y2)
    losses = share * optax.softmax_cross_entropy(z, y1) + (1 - share) * optax.softmax_cross_entropy(z, y2)
    np.testing.assert_allclose(mixed, losses, rtol=RTOL)


def test_oversampling_expectation_is_the_weighted_gradient_and_not_the_plain_mean():
    weighted, expected = data.oversampling_expected_gradient()
    assert sp.simplify(weighted - expected) == 0
    n = sp.symbols("n1:4", positive=True)
    g = sp.symbols("g1:4", real=True)
    plain = sum(nc * gc for nc, gc in zip(n, g, strict=True)) / sum(n)
    assert sp.simplify(expected - plain) != 0


def test_the_chapter_checks_reach_their_recorded_verdicts():
    for claim in claims_for(
        [
            "data/class-weighting-matches-oversampling-in-expectation",
            "data/z-score-makes-data-standard-normal",
            "data/standardising-makes-the-model-more-accurate",
        ]
    ):
        assert claim.run_check().verdict == claim.expected


def test_standardised_condition_number_formula_and_a_wrong_one():
    """(1 + |r|)/(1 - |r|) is the z-scored Hessian's condition number; 1/(1 - r^2) (a plausible slip) is not."""
    x, y = data._features(n=500, correlation=0.8)
    z = data.zscore(jnp.asarray(x))
    kappa = float(np.linalg.cond(np.asarray(data.numeric_hessian(jnp.zeros(3), z, jnp.asarray(y)))))
    rho = float(np.corrcoef(np.asarray(z).T)[0, 1])
    assert abs(float(data.standardised_condition_number().subs(data.r, rho)) - kappa) <= 1e-10 * kappa
    assert abs(1 / (1 - rho**2) - kappa) > 0.1
