"""Negative controls for the claims added while annotating note 001: each harness rejects a wrong formula."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations.activations import z
from derivations.conv_arithmetic import adjoint_gap
from derivations.ledger import activations__n001 as act
from derivations.ledger import conv_arithmetic__n001 as conv
from derivations.ledger import normalization__n001 as norm
from models.conv import conv2d

SCOPE = {"depths": [2, 3], "width": 6, "points": 8, "activations": ["relu", "tanh", "sigmoid"], "channels": [3, 4, 2]}


def test_linear_activations_are_caught_as_affine():
    identity = dict.fromkeys(act.ACTIVATIONS, act.ACTIVATIONS["identity"])
    r = act.nonlinearity_check(SCOPE, 1e-10, activations=identity)
    assert max(r["defects"].values()) < 1e-12  # an 'activation' that is linear leaves the stack affine
    assert min(act.nonlinearity_check(SCOPE, 1e-10)["defects"].values()) > 1e-8


def test_collapse_without_the_composed_bias_is_rejected():
    weights, biases = act._stack(3, 5, 0)
    x = np.random.default_rng(0).normal(size=(4, 5))
    w = weights[0] @ weights[1] @ weights[2]
    wrong = x @ w + biases[-1]  # forgets how the earlier biases pass through the later weights
    right = act.collapsed_affine(weights, biases)(x)
    assert np.allclose(act.dense_stack(weights, biases, act.ACTIVATIONS["identity"])(x), right, rtol=1e-10)
    assert not np.allclose(wrong, right, rtol=1e-3)


def test_relu_in_place_of_leaky_relu_is_zero_on_the_left():
    neg = np.array([-2.0, -1e-3])
    assert np.all(act.leaky_values(neg, [0.01]) != 0)
    assert np.all(act.leaky_values(neg, [0.01], expr=sp.Max(0, z)) == 0)


def test_a_wrong_transpose_fails_the_adjoint_identity():
    wrong = lambda y, kern, n, stride, padding, dilation: conv2d(  # noqa: E731  (the conv again, not its transpose)
        jnp.pad(y, ((0, 0), (0, n - y.shape[1]), (0, n - y.shape[2]), (0, 0))), jnp.swapaxes(kern, 2, 3),
        padding="SAME")
    lhs, rhs = adjoint_gap(7, 3, 1, 1, 1, transpose=wrong)
    assert abs(lhs - rhs) > 1e-3 * abs(lhs)
    lhs, rhs = adjoint_gap(7, 3, 1, 1, 1)
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def test_round_trip_detects_a_true_inverse():
    # A 1x1 stride-1 convolution with an orthogonal kernel: its transpose is its inverse, and the check sees it.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    kern = jnp.asarray(q)[None, None]
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 5, 5, 3)))
    from models.conv import conv2d_transpose
    back = conv2d_transpose(conv2d(x, kern), kern, 5)
    assert float(jnp.linalg.norm(back - x) / jnp.linalg.norm(x)) < 1e-12
    assert conv.round_trip_error(9, 3, 2, 1, 1) > 1e-2


def test_grouped_kernels_have_fewer_channels():
    assert conv.kernel_channels(16, 32, 3, 1) == (16, 32)
    assert conv.kernel_channels(16, 32, 3, 4) == (4, 32)  # the note's rule would say 16


def test_no_training_means_no_shift():
    scope = {"batch": 16, "inputs": 4, "hidden": 5, "steps": 3, "lr": 0.0, "epsilon": 1e-5}
    r = norm.statistics_under_training(scope)
    (m0, s0), (m1, s1) = r["raw"][0], r["raw"][-1]
    assert np.max(np.abs(m1 - m0)) == 0 and np.max(np.abs(s1 - s0)) == 0
    scope["lr"] = 0.5
    r = norm.statistics_under_training(scope)
    assert np.max(np.abs(r["raw"][-1][0] - r["raw"][0][0])) > 1e-3


def test_a_summing_pool_is_rejected_by_the_variance_harness():
    from derivations.ledger import pooling__n001 as pool
    scope = {"noises": ["gaussian"], "windows": [2, 3], "draws": 50, "size": 6}
    right = pool.pooled_variances(scope)
    wrong = pool.pooled_variances(scope, pool=lambda x, k, s: pool.avg_pool(x, k, s) * k * k)  # sums, not means
    for key in right:
        r, w = right[key], wrong[key]
        assert abs(r["variance"] - r["formula"]) <= 4.5 * r["se"]
        assert abs(w["variance"] - w["formula"]) > 4.5 * w["se"]


def test_lrn_harness_rejects_a_wrong_normalisation():
    a = np.abs(np.random.default_rng(3).normal(size=(4, 9))) * 30
    p = norm.ALEXNET_LRN
    assert np.allclose(norm.lrn(a, **p), norm.lrn_by_loop(a, **p), rtol=1e-10, atol=0)
    # Dividing each response by its own square only (no window) would make the contrast factor 1 everywhere
    # outside: the harness sees the difference.
    own_only = lambda v, k, n, alpha, beta: v / (k + alpha * v**2) ** beta  # noqa: E731
    rows = norm.lrn_contrasts(norm.LRN_SCOPE, norm=own_only)
    assert all(abs(r["far_over_near_division"] - 1) < 1e-12 for r in rows.values())
    rows = norm.lrn_contrasts(norm.LRN_SCOPE)
    assert all(r["far_over_near_division"] < 1 for r in rows.values())
    assert all(r["smallest_factor_outside"] < 1 for r in rows.values())


def test_a_plain_chain_has_no_direct_gradient_path():
    from derivations.ledger import architectures__n001 as arch
    scope = {"width": 4, "growth": 3, "weight_scale": 1.0}
    g, direct = arch.gradient_of_first_layer(3, scope, concat=True, zero_later=True)
    assert np.array_equal(g, direct) and np.any(direct != 0)
    g_plain, _ = arch.gradient_of_first_layer(3, scope, concat=False, zero_later=True)
    assert np.all(g_plain == 0)  # the harness would report no direct path for a chain
