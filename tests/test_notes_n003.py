"""Negative controls for the claims added while annotating note 003: each check rejects a wrong formula."""

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations.claims import all_claims
from derivations.ledger import activations__n003 as act
from derivations.ledger import losses__n003 as los
from derivations.ledger import normalization__n003 as nrm
from derivations.ledger import pooling__n003 as pol
from derivations.ledger import regularization__n003 as reg


def _scope(claim_id):
    return next(c for c in all_claims() if c.id == claim_id).scope


def test_a_wrong_sigmoid_formula_is_rejected():
    wrong = {"sigmoid": (lambda x: 1 / (1 + sp.exp(x)), jax.nn.sigmoid)}
    findings = act.formula_findings({"grid": [-5.0, 5.0, 21]}, 1e-10, forms=wrong)
    assert not findings[0].held


def test_an_unbounded_squash_fails_the_range_check():
    r = act.range_findings(_scope("activations/sigmoid-is-between-zero-and-one-relu-zero-to-infinity"),
                           squash=lambda x: sp.exp(x))
    assert not r["sigmoid_open"]


def test_softplus_gradient_is_not_one_on_the_positive_axis():
    r = act.positive_axis_findings(_scope("activations/relu-gradient-does-not-vanish-on-the-positive-axis"),
                                   act=jax.nn.softplus)
    assert not r["relu_one"]


def test_a_symmetric_distance_in_place_of_cross_entropy_shows_no_asymmetry():
    scope = _scope("losses/cross-entropy-is-a-distance-between-distributions")
    r = los.ce_findings(scope, ce=lambda p, q: np.sum((p - q) ** 2, 1))
    assert np.all(r["at_p"] == 0) and np.all(r["asym"] < 1e-12)  # the scoped findings would hold: they discriminate
    right = los.ce_findings(scope)
    assert right["at_p"].min() > 0 and right["asym"].max() > 1e-3


def test_average_in_place_of_max_does_not_keep_the_peak():
    r = pol.peak_findings(_scope("pooling/max-keeps-a-sharp-peak-average-smooths-it"),
                          pools=(pol.avg_pool, pol.avg_pool))
    assert not r["kept"]


def test_centring_without_scaling_is_not_layer_norm():
    scope = _scope("normalization/layer-norm-undoes-the-scale-of-its-input")
    r = nrm.ln_findings(scope, norm=lambda h: h - jnp.mean(h, -1, keepdims=True))
    mine, flax = r["matches_flax"]
    assert not np.allclose(mine, flax, rtol=1e-10, atol=0)


def test_a_bias_that_scales_the_input_changes_the_shape():
    r = reg.bias_findings(_scope("regularization/bias-only-translates-the-curve"), line=lambda t, w, b: w * b * t + b)
    assert r["slope_kept"] > 0.1


def test_full_rank_designs_have_one_minimiser():
    scope = dict(_scope("regularization/minimal-loss-parameters-can-differ-widely"))
    scope["designs"] = {"over-parameterised": [40, 5], "full column rank": [40, 5]}
    r = reg.minimiser_findings(scope)
    assert r["over-parameterised"]["null"] == 0
    assert r["over-parameterised"]["loss1"] > 2 * r["over-parameterised"]["loss0"]


def test_a_shrunk_lasso_is_not_the_constrained_solution():
    scope = dict(_scope("regularization/penalty-form-has-the-solution-of-the-constraint-form"), problems=2)
    r = reg.lagrange_findings(scope, solvers=(lambda x, y, lam: 0.8 * reg.lasso(x, y, lam), reg.ridge))
    assert r["l1"] < -1e-6


def test_ridge_in_place_of_lasso_never_lands_on_a_vertex():
    scope = dict(_scope("regularization/l1-solutions-often-land-on-a-vertex"), problems=20)
    r = reg.ball_findings(scope, solve=reg.ridge)
    assert r["vertex_share"] == 0


def test_the_exact_lasso_matches_soft_thresholding_on_an_orthonormal_design():
    x = np.eye(3)
    y = np.array([2.0, -0.3, 0.8])
    lam = 1.0
    expected = np.sign(y) * np.maximum(np.abs(y) - lam / 2, 0)
    assert np.allclose(reg.lasso(x, y, lam), expected, rtol=1e-12, atol=0)
