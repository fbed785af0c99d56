"""Negative controls for the claims found while annotating note 000: each harness rejects a wrong formula."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from derivations.ledger import architectures__n000 as arch
from derivations.ledger import conv_arithmetic__n000 as conv
from derivations.ledger import normalization__n000 as norm
from derivations.ledger import regularization__n000 as reg

GAP_SCOPE = {"n": [20, 40], "p": [2, 5, 10], "noise": [0.0, 1.0], "monte_carlo": [[20, 5]], "reps": 500}


def test_the_gap_formula_matches_and_a_wrong_one_is_rejected():
    assert reg.gap_check(GAP_SCOPE, 1e-10)["comparison"].ok
    wrong = reg.gap_check(GAP_SCOPE, 1e-10, formula=lambda n, p, s: s**2 * p / n)  # misses the factor 2
    assert not wrong["comparison"].ok


AUG_SCOPE = {"shapes": [[12, 3]], "noise_scale": [0.5, 2.0], "weights": 3, "solve_rtol": 1e-8}


def test_noise_augmentation_is_the_l2_penalty_not_an_unsquared_one():
    out = reg.augmentation_check(AUG_SCOPE, 1e-10)
    assert out["loss"].ok and out["minimiser"].ok
    wrong = reg.augmentation_check(AUG_SCOPE, 1e-10,
                                   penalty=lambda w, x, y, s: float(np.mean((y - x @ w) ** 2) + s * w @ w),
                                   ridge=lambda x, y, lam: reg.ridge_minimiser(x, y, np.sqrt(lam)))
    assert not wrong["loss"].ok and not wrong["minimiser"].ok


def test_module_without_parameters_is_detected():
    rngs = nnx.Rngs(0)
    assert norm.trainable_leaves(norm.batchnorm64(3, rngs)) == 2
    assert norm.trainable_leaves(nnx.Dropout(0.5, rngs=rngs)) == 0
    # counting every variable (the wrong filter) would call dropout's RNG state a parameter
    assert len(jax.tree_util.tree_leaves(nnx.state(nnx.Dropout(0.5, rngs=rngs), nnx.Variable))) > 0


def test_train_mode_is_not_batch_independent_and_eval_mode_is():
    out = norm.eval_switch_findings({"features": 3, "rate": 0.5, "batch": 8})
    assert out["eval_keeps_stats"] and out["batch_independent"] and out["train_moves_stats"]
    net = norm._Net(3, 0.0, nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (8, 3), jnp.float64)
    net.train()
    assert not np.array_equal(np.asarray(net(x))[:1], np.asarray(net(x[:1])))  # the control: train mode fails


def test_composite_kernel_and_a_transposed_one_is_rejected():
    rng = np.random.default_rng(0)
    row, column = rng.normal(size=(1, 3, 2, 2)), rng.normal(size=(3, 1, 2, 2))
    x = jnp.asarray(rng.normal(size=(1, 7, 7, 2)))
    pair = np.asarray(arch.conv2d(arch.conv2d(x, jnp.asarray(row)), jnp.asarray(column)))
    right = np.asarray(arch.conv2d(x, jnp.asarray(arch.composite_kernel(row, column))))
    wrong = np.asarray(arch.conv2d(x, jnp.asarray(arch.composite_kernel(row, column).transpose(1, 0, 2, 3))))
    assert np.allclose(pair, right, rtol=1e-12, atol=1e-12) and not np.allclose(pair, wrong, rtol=1e-3)
    assert arch.best_factored_residual(arch.composite_kernel(row, column), 2) < 1e-10
    assert arch.best_factored_residual(rng.normal(size=(3, 3, 2, 2)), 2) > 0.1


def test_weight_sharing_tells_conv_from_locally_connected():
    x = jnp.arange(8.0)
    j_conv = np.asarray(jax.jacfwd(lambda v: conv.conv1d_valid(v, jnp.array([1.0, 2.0, 3.0])))(x))
    j_local = np.asarray(jax.jacfwd(lambda v: conv.locally_connected_valid(v, jnp.arange(18.0).reshape(6, 3) + 1))(x))
    assert conv.shares_weights(j_conv, 3) and not conv.shares_weights(j_local, 3)
    assert conv.window_property(j_conv, 3) and conv.window_property(j_local, 3)
    assert not conv.window_property(j_conv, 2)


def test_dilated_field_is_rate_times_k_minus_one_plus_one():
    field, weights, dense = conv.dilated_field_and_weights(2, 15)
    assert field == (5, 5) and weights == 9 and dense == 25
    assert field != (2 * 3 + 1,) * 2  # the wrong span d k + 1 is rejected
