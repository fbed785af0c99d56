"""The claims added while annotating note 002: each check passes with its recorded verdict, and each has a
negative control (a wrong formula or a wrong measurement that the check's own pieces reject)."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derivations.claims import claims_for
from derivations.conv_arithmetic import conv_macs, conv_output_size, flax_output_size
from derivations.ledger import architectures__n002, data__n002, pooling__n002, regularization__n002
from derivations.ledger import conv_arithmetic__n002 as conv_n002
from derivations.regularization import penalised_run
from derivations.runner import run_claim

NEW = [
    "data/one-minus-exp-changes-markedly-only-on-zero-to-six",
    "regularization/l1-and-l2-both-make-the-network-sparser",
    "conv_arithmetic/ordinary-conv-is-dilated-conv-with-rate-one",
    "conv_arithmetic/cnn-feature-maps-come-out-smaller-than-the-input",
    "pooling/downsampling-cuts-the-next-layers-computation",
    "pooling/stride-2-conv-downsampling-costs-more-than-pooling",
    "pooling/max-pooling-selects-and-is-non-linear",
    "pooling/average-pooling-reduces-dimensions-more-than-max-pooling",
    "data/min-max-suits-concentrated-values",
    "architectures/dense-network-ignores-the-pixel-arrangement",
    "architectures/concat-needs-equal-hw-add-needs-equal-shapes",
    "conv_arithmetic/bilinear-upsampling-costs-little-next-to-a-convolution",
    "pooling/max-passes-a-sparse-feature-average-dilutes-it",
    "init/vanishing-or-exploding-activations-stop-training",
]


@pytest.mark.parametrize("claim_id", NEW)
def test_each_new_claim_passes_with_its_recorded_verdict(claim_id):
    (claim,) = claims_for([claim_id])
    result = run_claim(claim)
    assert result.error is None, result.error
    assert result.ok, (result.verdict, result.expected)


def test_a_slower_exponential_is_rejected_by_the_share_of_its_rise():
    x = sp.Symbol("x", nonnegative=True)
    assert data__n002.share_of_range(data__n002.one_minus_exp(), 6.0) >= 0.99
    # wrong function: 1 - e^(-x/3) makes only 1 - e^-2 of its rise on [0, 6]
    assert data__n002.share_of_range(1 - sp.exp(-data__n002._x / 3), 6.0) < 0.99
    assert x.is_nonnegative


def test_the_quadrature_premise_rejects_a_wrong_closed_form():
    rise = data__n002.rise_by_quadrature(6.0, 40)
    assert abs(rise - (1 - np.exp(-6.0))) <= 1e-10 * rise
    assert abs(rise - (1 - np.exp(-3.0))) > 1e-3  # the rise of [0, 3], a wrong closed form


def test_l2_shows_no_exact_zeros_and_a_thresholding_count_would_be_wrong():
    table = regularization__n002.sparsity_table([0.3], 500)
    assert table["l1-proximal"][1] > 0 and table["l2"][1] == 0
    # wrong measurement: counting |w| < 0.5 as zero would credit L2 with sparsity it does not have
    loose = regularization__n002.sparsity_table([1.0], 500, count=lambda w: int(np.sum(np.abs(np.asarray(w)) < 0.5)))
    assert loose["l2"][1] > loose["l2"][0]
    assert np.all(np.asarray(penalised_run("l2", 1.0)) != 0)


def test_the_hand_correlation_matches_xla_and_a_flipped_kernel_does_not():
    rng = np.random.default_rng(0)
    x, kernel = rng.normal(size=(9, 9)), rng.normal(size=(3, 3))
    ours = conv_n002._lax(x, kernel, 1, 1, 1)
    assert np.allclose(ours, conv_n002.correlate_by_hand(x, kernel, 1, 1), rtol=1e-12, atol=0)
    # wrong formula: the mathematical convolution (flipped kernel) is not what XLA computes
    assert not np.allclose(ours, conv_n002.correlate_by_hand(x, kernel[::-1, ::-1], 1, 1), rtol=1e-6)


def test_a_wrong_kernel_spreading_is_rejected():
    rng = np.random.default_rng(1)
    x, kernel = rng.normal(size=(13, 13)), rng.normal(size=(3, 3))
    dilated = conv_n002._lax(x, kernel, 1, 1, 2)
    assert np.allclose(dilated, conv_n002.correlate_by_hand(x, conv_n002.dilate_kernel(kernel, 2), 1, 1), rtol=1e-12)

    def wrong_spread(k, rate):  # rate zeros between taps instead of rate - 1
        out = np.zeros((k.shape[0] + rate * (k.shape[0] - 1),) * 2)
        out[:: rate + 1, :: rate + 1] = k
        return out

    wrong = conv_n002.correlate_by_hand(x, wrong_spread(kernel, 2), 1, 1)
    assert wrong.shape != dilated.shape or not np.allclose(wrong, dilated, rtol=1e-6)


def test_oversized_padding_enlarges_the_map_and_a_no_floor_formula_is_rejected():
    # the claim's grid stops at 'same' padding; beyond it the map grows, so the restriction matters
    assert flax_output_size(7, 3, 1, 2, 1) > 7
    grid = conv_n002._cnn_grid({"sizes": [7, 32], "kernels": [1, 2, 3, 5, 7], "strides": [1, 2, 3]})
    assert all(conv_output_size(n, k, s, p) == flax_output_size(n, k, s, p, 1) for n, k, s, p in grid)
    # wrong formula: (n + 2p - k) / s + 1 without the floor is not an integer, or is wrong, somewhere
    assert any((n + 2 * p - k) / s + 1 != flax_output_size(n, k, s, p, 1) for n, k, s, p in grid)


def test_the_downsampled_next_conv_is_cheaper_and_a_one_axis_formula_is_rejected():
    ratio = pooling__n002.next_conv_flops(16, 4) / pooling__n002.next_conv_flops(8, 4)
    assert ratio >= 4
    # wrong formula: halving only one axis would give 2, which XLA's count contradicts
    assert conv_macs(3, 3, 4, 4, 16, 16) / conv_macs(3, 3, 4, 4, 8, 16) == 2 < ratio


def test_the_stride_2_conv_premise_rejects_a_full_resolution_mac_count():
    from derivations.harness import xla_flops
    from models.conv import conv2d

    flops = xla_flops(lambda x, w: conv2d(x, w, stride=2), jnp.zeros((1, 8, 8, 8)), jnp.zeros((2, 2, 8, 8)))
    assert flops == 2 * conv_macs(2, 2, 8, 8, 4, 4)
    assert flops != 2 * conv_macs(2, 2, 8, 8, 8, 8)  # wrong: the MACs at the input's resolution


def test_average_pooling_is_not_a_selection():
    from flax import nnx

    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 4, 4, 1)))
    avg = np.asarray(nnx.avg_pool(x, (2, 2), (2, 2)))
    windows = np.asarray(x).reshape(1, 2, 2, 2, 2, 1)
    # the control of the selection finding: a mean of distinct random values is none of them
    assert not np.any(windows == avg[:, :, None, :, None, :], axis=(2, 4)).all()


def test_the_dense_network_is_blind_only_from_the_permuted_initialisation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 16)), rng.normal(size=(8, 1))
    w1, w2 = rng.normal(size=(16, 4)) / 4, rng.normal(size=(4, 1)) / 2
    perm = rng.permutation(16)
    plain = np.asarray(architectures__n002._mlp_losses(x, y, w1, w2, lr=0.1, steps=10))
    same = np.asarray(architectures__n002._mlp_losses(x[:, perm], y, w1[perm], w2, lr=0.1, steps=10))
    assert np.allclose(same, plain, rtol=1e-12, atol=0)
    # wrong: the scrambled images from the unpermuted initialisation are a different run
    other = np.asarray(architectures__n002._mlp_losses(x[:, perm], y, w1, w2, lr=0.1, steps=10))
    assert not np.allclose(other, plain, rtol=1e-6)


def test_adding_maps_of_different_channel_counts_is_refused():
    with pytest.raises((TypeError, ValueError)):
        _ = jnp.ones((1, 5, 5, 3)) + jnp.ones((1, 5, 5, 8))
    assert jnp.concatenate([jnp.ones((1, 5, 5, 3)), jnp.ones((1, 5, 5, 8))], axis=-1).shape == (1, 5, 5, 11)


def test_a_larger_window_would_reduce_more_so_the_refutation_can_fail():
    from flax import nnx

    x = jnp.ones((1, 8, 8, 3))
    assert nnx.avg_pool(x, (2, 2), (2, 2)).shape == nnx.max_pool(x, (2, 2), (2, 2)).shape
    # a wrong average pooling (window and stride 4) would leave fewer values, and the core would hold
    assert np.prod(nnx.avg_pool(x, (4, 4), (4, 4)).shape) < np.prod(nnx.max_pool(x, (2, 2), (2, 2)).shape)


def test_min_max_squeeze_follows_range_over_range_plus_k_and_not_a_wrong_formula():
    from derivations.data import min_max

    bulk = np.random.default_rng(7).normal(size=50)
    k = 10.0
    kept = float(np.ptp(np.asarray(min_max(jnp.asarray(np.append(bulk, bulk.max() + k))))[:-1]))
    assert abs(kept - np.ptp(bulk) / (np.ptp(bulk) + k)) <= 1e-12
    assert abs(kept - np.ptp(bulk) / k) > 1e-2  # wrong formula: range / k


def test_bilinear_cost_share_falls_with_width_and_a_free_bilinear_is_rejected():
    import jax

    from derivations.harness import xla_flops
    from models.conv import conv2d

    def share(c):
        x = jnp.zeros((1, 8, 8, c))
        bil = xla_flops(lambda v: jax.image.resize(v, (1, 16, 16, c), "bilinear"), x)
        conv = xla_flops(lambda y, k: conv2d(y, k, padding=1), jnp.zeros((1, 16, 16, c)), jnp.zeros((3, 3, c, c)))
        return bil, conv

    (b4, c4), (b32, c32) = share(4), share(32)
    assert b32 / c32 < b4 / c4
    # wrong measurement: if bilinear were counted as free (like nearest's indexing), "more complex" would fail
    assert b4 > 0 and xla_flops(lambda v: jax.image.resize(v, (1, 16, 16, 4), "nearest"), jnp.zeros((1, 8, 8, 4))) < b4


def test_average_pooling_of_a_one_hot_window_is_diluted_and_a_wrong_divisor_is_rejected():
    from flax import nnx

    x = jnp.zeros((1, 3, 3, 1)).at[0, 1, 2, 0].set(1.5)
    assert float(nnx.max_pool(x, (3, 3), (3, 3))[0, 0, 0, 0]) == 1.5
    avg = float(nnx.avg_pool(x, (3, 3), (3, 3))[0, 0, 0, 0])
    assert abs(avg - 1.5 / 9) <= 1e-15
    assert abs(avg - 1.5 / 3) > 1e-3  # wrong: dividing by the window's side instead of its size


def test_a_matched_initialisation_trains_so_the_non_convergence_is_the_scales():
    from derivations.ledger import init__n002

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8))
    y = np.sin(x @ rng.normal(size=(8, 1)) / np.sqrt(8))
    matched, _ = init__n002.train_losses(init__n002._weights(rng, 8, 4, np.sqrt(2)), x, y, 0.05, activation="relu",
                                         steps=150)
    tiny, spread = init__n002.train_losses(init__n002._weights(rng, 8, 4, 0.1), x, y, 0.05, activation="relu",
                                           steps=150)
    # the control: from He's scale the loss falls; from a vanishing scale it does not move
    assert matched[-1] < 0.5 * matched[0]
    assert tiny[-1] > 0.9 * tiny[0] and spread < 1e-2
