"""Statistics: the bias-variance and correlated-average identities, metrics and AUC against direct counts,
distance contrast, polynomial feature maps and kernel PSD-ness, each with a negative control."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from derivations import statistics as stats
from derivations.ledger.statistics import MC_Z, decomposition_test

RTOL = 1e-10


def test_bias_variance_identity_is_proved_and_dropping_the_noise_is_rejected():
    expectation, target = stats.expected_squared_error()
    assert sp.simplify(expectation - target) == 0
    noise = sp.Symbol("sigma^2", nonnegative=True)
    assert sp.simplify(expectation - (target - noise)) != 0


def test_decomposition_holds_on_independent_training_sets_and_dropping_the_noise_is_rejected():
    """On independent draws the measured error matches bias^2 + variance + sigma^2 within its standard error;
    negative control: the same comparison without sigma^2 fails by many standard errors."""
    for degree in (1, 5):
        row = decomposition_test(degree, 0.5, 50, 200, seed=degree)
        assert row["z"] <= MC_Z
        assert abs(row["measured"] - (row["predicted"] - 0.25)) > 10 * row["standard_error"]


@given(seed=st.integers(0, 2**16), n=st.sampled_from([5, 20]))
def test_stump_is_the_best_single_split(seed, n):
    """The vectorised stump equals a brute-force search over every split; a mid-range split is no better."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 1, n), rng.normal(size=n)
    order = np.argsort(x)
    ys = y[order]
    sse = [np.sum((ys[:k] - ys[:k].mean()) ** 2) + np.sum((ys[k:] - ys[k:].mean()) ** 2) for k in range(1, n)]
    fit = stats.stump_fit(x[None], y[None], x[None])[0]
    np.testing.assert_allclose(np.sum((y - fit) ** 2), min(sse), rtol=1e-12)


def test_boosting_a_linear_learner_stays_linear_and_boosting_stumps_lowers_their_bias():
    rng = np.random.default_rng(3)
    x_test = np.linspace(0.05, 0.95, 20)
    x, y = stats.training_sets(rng, 50, 40, 0.3)
    boosted = stats.l2_boost("linear", x, y, x_test, rounds=200, shrinkage=0.1)
    np.testing.assert_allclose(boosted, stats.polynomial_fit(x, y, x_test, 1), rtol=1e-6, atol=1e-8)
    f = stats.truth(x_test)
    single = stats.bias2_and_variance(stats.fit_learner("stump", x, y, x_test), f)[0]
    assert stats.bias2_and_variance(stats.l2_boost("stump", x, y, x_test, rounds=50, shrinkage=0.2), f)[0] < single
    # Negative control: one boosting round with full shrinkage is the stump itself, no lower bias.
    one = stats.l2_boost("stump", x, y, x_test, rounds=1, shrinkage=1.0)
    np.testing.assert_allclose(one, stats.fit_learner("stump", x, y, x_test), rtol=1e-12)


def test_bagging_averages_bootstrap_fits():
    rng = np.random.default_rng(4)
    x_test = np.linspace(0.05, 0.95, 20)
    x, y = stats.training_sets(rng, 30, 40, 0.3)
    f = stats.truth(x_test)
    single = stats.bias2_and_variance(stats.fit_learner("stump", x, y, x_test), f)[1]
    assert stats.bias2_and_variance(stats.bagged("stump", x, y, x_test, replicates=20, rng=rng), f)[1] < single
    with pytest.raises(ValueError, match="replicates"):
        stats.bagged("stump", x, y, x_test, replicates=0, rng=rng)


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_average_variance_equals_the_covariance_matrix_sum(n):
    sigma, rho = stats.sigma, stats.rho
    covariance = sigma**2 * ((1 - rho) * sp.eye(n) + rho * sp.ones(n, n))
    total = (sp.ones(1, n) * covariance * sp.ones(n, 1))[0] / n**2
    assert sp.simplify(total - stats.average_variance(n)) == 0
    assert sp.simplify(total - sigma**2 / n) != 0 or n == 1  # the independent-models formula is wrong for rho > 0


@given(seed=st.integers(0, 2**16), size=st.sampled_from([20, 200]))
def test_f1_from_counts_equals_the_harmonic_mean_of_precision_and_recall(seed, size):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[0, 1], rng.integers(0, 2, size)])
    predictions = np.concatenate([[1, 1], rng.integers(0, 2, size)])
    c = stats.confusion_counts(labels, predictions)
    precision, recall = c["TP"] / (c["TP"] + c["FP"]), c["TP"] / (c["TP"] + c["FN"])
    f1 = 2 * c["TP"] / (2 * c["TP"] + c["FP"] + c["FN"])
    np.testing.assert_allclose(f1, scipy.stats.hmean([precision, recall]), rtol=RTOL)
    assert c["TP"] + c["FP"] + c["FN"] + c["TN"] == labels.size


@given(seed=st.integers(0, 2**16), rounding=st.sampled_from([0, 1, 3]))
def test_trapezoid_auc_equals_the_pairwise_probability(seed, rounding):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[0, 1], rng.integers(0, 2, 60)])
    scores = np.round(rng.normal(labels * 0.8, 1.0), rounding)
    assert abs(stats.roc_auc_trapezoid(labels, scores) - stats.pairwise_auc(labels, scores)) <= 1e-12


def test_auc_check_rejects_ties_counted_as_losses():
    labels = np.asarray([1, 1, 0, 0])
    scores = np.asarray([0.5, 0.9, 0.5, 0.1])
    assert stats.roc_auc_trapezoid(labels, scores) == pytest.approx(0.875, abs=1e-15)
    assert stats.pairwise_auc(labels, scores, tie=0.0) != pytest.approx(stats.roc_auc_trapezoid(labels, scores))


def test_distance_contrast_shrinks_for_independent_coordinates_only():
    iid = stats.distance_contrast_by_dimension(dimensions=(2, 50, 500), points=500)
    flat = stats.distance_contrast_by_dimension(dimensions=(2, 50, 500), points=500, intrinsic=2)
    assert all(a > b for a, b in itertools.pairwise(iid.values()))
    assert flat[500] > 10 * iid[500]


@pytest.mark.parametrize(("dim", "degree"), [(2, 2), (2, 3), (3, 2)])
def test_polynomial_feature_map_reproduces_the_kernel(dim, degree):
    c = sp.Symbol("c", positive=True)
    x, y = list(sp.symbols(f"x1:{dim + 1}")), list(sp.symbols(f"y1:{dim + 1}"))
    phi_x, phi_y = stats.polynomial_feature_map(x, degree, c), stats.polynomial_feature_map(y, degree, c)
    kernel = (sum(a * b for a, b in zip(x, y, strict=True)) + c) ** degree
    assert sp.expand(kernel - (phi_x.T * phi_y)[0]) == 0
    # Negative control: dropping the multinomial coefficients (plain monomials) does not reproduce it.
    plain_x = phi_x.applyfunc(lambda e: sp.Mul(*[f for f in sp.Mul.make_args(e) if not f.is_number]))
    plain_y = phi_y.applyfunc(lambda e: sp.Mul(*[f for f in sp.Mul.make_args(e) if not f.is_number]))
    assert sp.expand(kernel - (plain_x.T * plain_y)[0]) != 0


@given(seed=st.integers(0, 2**16), gamma=st.sampled_from([0.1, 1.0, 10.0]))
def test_rbf_gram_matrix_has_no_negative_eigenvalues(seed, gamma):
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(40, 3)))
    eigenvalues = np.linalg.eigvalsh(np.asarray(stats.rbf_kernel_matrix(x, gamma=gamma)))
    assert eigenvalues[0] >= -40 * np.finfo(np.float64).eps * eigenvalues[-1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stats.confusion_counts(np.asarray([0, 2]), np.asarray([0, 1])), "0 or 1"),
        (lambda: stats.confusion_counts(np.asarray([0, 1]), np.asarray([0])), "shapes differ"),
        (lambda: stats.roc_auc_trapezoid(np.asarray([1, 1]), np.asarray([0.1, 0.2])), "at least one of each"),
        (lambda: stats.pairwise_auc(np.asarray([1, 0]), np.asarray([0.1, 0.2]), tie=2.0), "tie"),
        (lambda: stats.rbf_kernel_matrix(jnp.ones((2, 2)), gamma=0.0), "gamma"),
        (lambda: stats.polynomial_feature_map([sp.Symbol("x")], 0, 1), "degree"),
        (lambda: stats.relative_distance_contrast(np.zeros((3, 2)), np.zeros((1, 2))), "coincides"),
    ],
)
def test_helpers_reject_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
