"""Negative controls for the claims found while annotating note 004: each harness rejects a wrong formula."""

import jax.numpy as jnp
import numpy as np

from derivations import optimizers as opt
from derivations.ledger import architectures__n004 as arch
from derivations.ledger import optimizers__n004 as optn
from derivations.ledger import regularization__n004 as reg
from derivations.ledger import statistics__n004 as stat
from derivations.statistics import polynomial_fit

CAP_SCOPE = {"max_degree": 9, "n_train": 15, "noise": 0.3, "sets": 60, "underfit_degree": 1, "factor": 2.0,
             "rounding": 1e-9}


def test_capacity_is_nested_and_a_non_nested_fitter_is_rejected():
    assert reg.capacity_findings(CAP_SCOPE)["nested"]
    reversed_degrees = lambda x, y, xt, d: polynomial_fit(x, y, xt, CAP_SCOPE["max_degree"] - d)  # noqa: E731
    assert not reg.capacity_findings(CAP_SCOPE, fitter=reversed_degrees)["nested"]


def test_added_terms_help_curved_data_and_not_straight_data():
    scope = {"n_train": 15, "noise": 0.3, "sets": 1000}
    curved, se_c = reg.added_terms_effect(reg.truth, scope, 0)
    straight, _ = reg.added_terms_effect(reg.linear_truth, scope, 1)
    assert curved < -4 * se_c and straight > 0


def test_hoerl_kennard_slope_and_a_wrong_one_is_rejected():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(12, 4)), rng.normal(size=4)
    slope = reg.complex_step_slope(lambda lam: reg.ridge_risk_matrix(x, w, 0.7, lam), 0.0)
    assert np.isclose(slope, reg.ridge_risk_slope_at_zero(x, 0.7), rtol=1e-10)
    d = np.linalg.eigvalsh(x.T @ x)
    assert not np.isclose(slope, float(-2 * 0.49 * np.sum(1 / d)), rtol=1e-3)  # 1/d instead of 1/d^2


def test_gd_step_count_and_a_wrong_rate_is_rejected():
    a, x0 = jnp.diag(jnp.asarray([1.0, 10.0])), jnp.ones(2)
    measured = opt.gd_steps_to_tolerance(a, jnp.zeros(2), x0, 0.01, 1e-6)
    assert measured == opt.predicted_gd_steps(np.array([1.0, 10.0]), np.ones(2), 0.01, 1e-6)
    assert measured != opt.predicted_gd_steps(np.array([1.0, 10.0]), np.ones(2), 0.02, 1e-6)


def test_random_search_wins_only_when_few_hyperparameters_matter():
    g, r, distinct = optn.search_best(2, 3, np.array([1.0, 1e-3]), 1000, 0)
    assert distinct == (3, 9) and optn._z(g, r) < -4
    g, r, _ = optn.search_best(2, 3, np.ones(2), 1000, 1)
    assert optn._z(g, r) > 4


def test_separability_lp_rejects_xor_and_accepts_its_lift():
    xor = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    labels = np.array([1.0, 1.0, -1.0, -1.0])
    assert not stat.separable(xor, labels)
    assert stat.separable(np.hstack([xor, xor[:, :1] * xor[:, 1:]]), labels)
    assert stat.separable(xor, np.array([1.0, -1.0, 1.0, -1.0]))  # x1 separates this labelling


def test_normalisation_is_scale_invariant_and_a_1x1_conv_is_not():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 3, 3, 4)))
    assert float(jnp.max(jnp.abs(arch.layer_norm_channels(5 * x) - arch.layer_norm_channels(x)))) < 1e-12
    w = jnp.asarray(np.random.default_rng(1).normal(size=(1, 1, 4, 2)))
    assert float(jnp.max(jnp.abs(arch.conv2d(5 * x, w) - arch.conv2d(x, w)))) > 1e-3


def test_pca_finds_the_redundant_directions_and_storage_has_a_threshold():
    data = stat.redundant_data(30, 3, 4, 0)
    _, variances, _ = stat.pca(data)
    assert int(np.sum(variances > 1e-10 * variances[0])) == 3
    _, variances, _ = stat.pca(np.random.default_rng(0).normal(size=(30, 7)))  # no redundancy: all 7 kept
    assert int(np.sum(variances > 1e-10 * variances[0])) == 7
    assert stat.storage(1000, 100, 10) == (100_000, 11_100)
    raw, reduced = stat.storage(5, 100, 10)
    assert reduced > raw
