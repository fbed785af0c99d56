"""Whole networks: the summary against nnx.state, XLA and autodiff for the networks the claims leave out,
strided depthwise convolution against an independent reference, the command line, and negative controls
(a mutated summary, a one-sided padding, a broken pooling layer) that the checks must reject."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from derivations import networks as N
from derivations.architectures import Layer
from derivations.cli import main
from derivations.conv_arithmetic import conv_macs_in_bounds
from derivations.ledger.networks import PUBLISHED, RF_TABLE
from models import blocks, networks

WIDTH = 1e-3  # one channel per layer: the spatial structure, and so every receptive field, is unchanged


@pytest.mark.parametrize("name", N.NETWORKS)
def test_summary_parameter_total_equals_nnx_state(name):
    assert N.summary(name).totals()["params"] == N.module_params(name)


@pytest.mark.parametrize(("name", "size"), [("googlenet", 256), ("resnet18", 97), ("mobilenet_v1", 193)])
def test_summary_parameter_total_equals_nnx_state_at_other_input_sizes(name, size):
    # the dense layers are counted from the module (in_features), so the total does not move with the input
    assert N.summary(name, size).totals()["params"] == N.module_params(name)


def test_an_input_whose_last_map_a_dense_layer_cannot_take_is_refused_naming_the_layer():
    # AlexNet's 6x6 adaptive pool only takes map sides that are multiples of 6 (7 at 256)
    with pytest.raises(ValueError, match=r"alexnet cannot take a 256x256 input: head\.0"):
        N.summary("alexnet", 256)
    # a dense layer whose in_features the map does not have: refused, never counted from the map
    module = nnx.eval_shape(lambda: _DenseAfterPool(4, 5))
    with pytest.raises(ValueError, match=r"head\.1: 4 features \(4\) reach a dense layer that takes 5"):
        N.summarize_module(module, 32)


class _DenseAfterPool(networks.Network):
    def __init__(self, channels, in_features):
        self.features = nnx.List([nnx.Conv(3, channels, (3, 3), padding=1, rngs=nnx.Rngs(params=0))])
        self.head = nnx.List([networks.GlobalAvgPool(), nnx.Linear(in_features, 2, rngs=nnx.Rngs(params=0))])


@pytest.mark.parametrize("name", ["resnet50", "googlenet"])
def test_xla_counts_twice_the_in_bounds_macs_of_the_whole_network(name):
    # the claim checks resnet18 and mobilenet_v1; these two are the branching networks at full width
    assert N.network_contraction_flops(name) == 2 * N.summary(name).totals()["macs_in_bounds"]


@pytest.mark.parametrize("name", ["resnet50", "googlenet"])
def test_receptive_field_matches_gradient_support(name):
    # the claim measures alexnet and resnet18 (and compares vgg16 and mobilenet_v1 with the library's table);
    # these are the two with the most branches: a residual add per block, a four-way concat per module
    row = N.receptive_field_rows([name], width=WIDTH, margin=32)[name]
    measured, predicted = row["measured"], row["predicted"]
    assert not measured["clipped"] and measured["finite"]
    assert measured["rows"] == measured["cols"] == predicted["field"]
    assert measured["centre"] == (predicted["centre"], predicted["centre"])


def test_googlenet_field_is_set_by_its_5x5_branches():
    # every Inception module's widest branch is the 1x1 -> 5x5: dropping the 5x5 from the union shrinks it
    out = N.summary("googlenet")
    concat = [r for r in out.rows if r.kind == "concat"]
    assert concat and all(r.field.size > 0 for r in concat)
    first = concat[0]
    b5 = next(r for r in out.rows if r.name == first.name + ".b5.1")
    assert first.field == b5.field


def test_in_bounds_macs_of_one_channel_pair_scale_to_conv_macs_in_bounds():
    # the summary multiplies conv_macs_in_bounds of one channel pair by (c_in/G) c_out
    for h, k, s, p, ci, co, g in [(56, 3, 2, 1, 64, 64, 1), (112, 3, 2, 1, 32, 32, 32), (224, 7, 2, 3, 3, 64, 1)]:
        one = conv_macs_in_bounds(h, h, k, 1, 1, stride=s, padding=p)
        assert one * (ci // g) * co == conv_macs_in_bounds(h, h, k, ci, co, stride=s, padding=p, groups=g)


def test_field_union_of_off_centre_branches_is_their_bounding_box():
    union = N.Field.union([N.Field(3, 2, 0.0), N.Field(5, 2, 2.0)])
    assert union == N.Field(6, 2, 1.5)  # pixels [-1, 1] and [0, 4]: the box [-1, 4]
    with pytest.raises(ValueError, match="different jumps"):
        N.Field.union([N.Field(3, 2, 0.0), N.Field(3, 4, 0.0)])


@given(fields=st.lists(st.tuples(st.integers(1, 9), st.integers(-6, 6)), min_size=1, max_size=4))
@settings(deadline=None, max_examples=60)
def test_field_union_is_the_smallest_interval_holding_every_branch_s_pixels(fields):
    # brute force on integer pixels: branch i covers [low_i, low_i + size_i - 1]; the union's box is the
    # smallest interval holding all of them
    pixels = set()
    branches = []
    for size, low in fields:
        pixels |= set(range(low, low + size))
        branches.append(N.Field(size, 1, low + (size - 1) / 2))
    union = N.Field.union(branches)
    assert union.size == max(pixels) - min(pixels) + 1
    assert union.centre == (min(pixels) + max(pixels)) / 2


def test_the_library_table_comparison_rejects_one_end_point_off():
    good = N.library_table_rows(RF_TABLE)
    assert N.library_table_agrees(good)
    vgg = RF_TABLE["vgg16"]
    wrong = {"vgg16": {**vgg, "end_points": [(*vgg["end_points"][3][:2], 17, 4, 6)]}}  # pool2 is 16, not 17
    assert not N.library_table_agrees(N.library_table_rows(wrong))
    wrong_padding = {"vgg16": {**vgg, "padding_offset": 1}}
    assert not N.library_table_agrees(N.library_table_rows(wrong_padding))


def _reference_depthwise(x, kernel, stride):
    """A dense convolution with a block-diagonal kernel (no feature groups): an independent depthwise conv,
    padded as torchvision pads, (k - 1) // 2 on each side."""
    kh, kw, c = kernel.shape
    dense = jnp.zeros((kh, kw, c, c), kernel.dtype).at[:, :, jnp.arange(c), jnp.arange(c)].set(kernel)
    pads = [((kh - 1) // 2, (kh - 1) // 2), ((kw - 1) // 2, (kw - 1) // 2)]
    return lax.conv_general_dilated(x, dense, (stride, stride), pads, dimension_numbers=blocks.DIMENSIONS)


def _value_and_pullback(f, x, k, dy):
    """f(x, k) and its vjp at dy, as one jitted program (eager, the fast kernel's K^2 taps are K^2 compiles)."""
    return jax.jit(lambda a, b, g: (f(a, b), jax.vjp(f, a, b)[1](g)))(x, k, dy)


@pytest.mark.parametrize(("size", "kernel", "stride"), [(7, 3, 2), (8, 5, 3), (8, 4, 2), (7, 2, 1)])
def test_strided_depthwise_matches_a_dense_block_diagonal_conv_forward_and_backward(size, kernel, stride):
    # both paths (the grouped convolution and the fast kernel), odd and even kernels
    rng = np.random.default_rng(size * 10 + kernel)
    x = jnp.asarray(rng.normal(size=(2, size, size, 3)))
    k = jnp.asarray(rng.normal(size=(kernel, kernel, 3)))
    side = (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1
    dy = jnp.asarray(rng.normal(size=(2, side, side, 3)))
    reference, ref_grads = _value_and_pullback(lambda a, b: _reference_depthwise(a, b, stride), x, k, dy)
    for fast in (False, True):
        ours, grads = _value_and_pullback(
            lambda a, b, f=fast: blocks.strided_depthwise_conv2d(a, b, stride=stride, fast=f), x, k, dy)
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
        for a, b in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_summary_reads_an_even_depthwise_kernel_s_padding_from_the_block():
    # a 4x4 depthwise at stride 1 pads (1, 1), torchvision's (k - 1) // 2: 15 outputs from 16, as the module gives
    module = blocks.DepthwiseSeparable(2, 3, kernel=4, rngs=nnx.Rngs(params=0))
    rows = list(N._walk("block", module, N._State((16, 16, 2), N.Field(1, 1, 0.0))))
    produced = module(jnp.zeros((1, 16, 16, 2))).shape
    assert rows[0].window == (4, 1, 1, 2) and rows[-1].shape == produced[1:] == (15, 15, 3)


def test_strided_separable_block_fast_and_grouped_agree():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 9, 9, 4)))
    fast = blocks.DepthwiseSeparable(4, 6, stride=2, rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    slow = blocks.DepthwiseSeparable(4, 6, stride=2, fast=False, rngs=nnx.Rngs(params=0), dtype=jnp.float64)
    np.testing.assert_allclose(fast(x), slow(x), rtol=1e-12)
    assert fast(x).shape == (1, 5, 5, 6)


# --- negative controls: the checks reject a wrong summary or a broken block ---------------------------------


def _mutated(summary, index, **changes):
    rows = list(summary.rows)
    rows[index] = dataclasses.replace(rows[index], **changes)
    return dataclasses.replace(summary, rows=tuple(rows))


def test_published_findings_reject_a_summary_one_parameter_off():
    good = {"resnet50": N.summary("resnet50")}
    ref = {"resnet50": PUBLISHED["resnet50"]}
    assert all(f.held for f in N.published_param_findings(good, ref) + N.published_mac_findings(good, ref))
    bad = {"resnet50": _mutated(good["resnet50"], 0, params=good["resnet50"].rows[0].params + 1)}
    assert not any(f.held for f in N.published_param_findings(bad, ref))
    assert bad["resnet50"].totals()["params"] != N.module_params("resnet50")


def test_published_findings_reject_a_figure_that_counts_two_flops_per_mac():
    doubled = {**PUBLISHED["resnet18"], "macs": 2 * PUBLISHED["resnet18"]["macs"]}
    (finding,) = N.published_mac_findings({"resnet18": N.summary("resnet18")}, {"resnet18": doubled})
    assert not finding.held


def test_vgg16_macs_are_checked_at_torchvision_s_three_decimals():
    # torchvision stores round(GFLOPs, 3): 15.470, half a unit 0.0005e9; ours is 15.470264e9
    assert PUBLISHED["vgg16"]["macs_half_unit"] == 0.0005e9
    off = {"vgg16": {**PUBLISHED["vgg16"], "macs": 15.4715e9}}  # within the 0.005e9 a 2-decimal reading allows
    assert not N.published_mac_findings({"vgg16": N.summary("vgg16")}, off)[0].held


def test_the_xla_premise_rejects_a_summary_that_counts_padding_taps_in_bounds():
    rows = N.xla_contraction_rows([("resnet18", 224)])
    assert N.xla_premise(rows).held
    every_tap = {case: {**row, "macs_in_bounds": row["macs"]} for case, row in rows.items()}
    assert not N.xla_premise(every_tap).held


def test_one_sided_padding_is_refused_not_miscounted():
    # blocks' default "SAME" at stride 2 on an even map pads one row after and none before
    module = nnx.eval_shape(lambda: blocks.BasicBlock(4, 8, stride=2, rngs=nnx.Rngs(params=0)))
    state = N._State((56, 56, 4), N.Field(1, 1, 0.0))
    with pytest.raises(ValueError, match="not the same on every side"):
        list(N._walk("block", module, state))


def test_a_broken_pooling_layer_is_caught_by_the_gradient_support():
    # AlexNet's pool1 made 5x5 in the module while the summary reads the layout it was built with
    summary = N.summarize_module(N.abstract_network("alexnet"), 288, head=False)
    module = nnx.eval_shape(lambda: networks.build("alexnet", width=WIDTH))
    module.eval()
    pool = module.features[2]
    assert isinstance(pool, networks.MaxPool)
    pool.window = 5
    measured = N.measured_field_of(module, 288)
    assert measured["rows"] != summary.field.size


# --- the command line ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [(["summary", "resnet51"], "valid networks: alexnet"),
                                               (["summary", "resnet18", "--input", "8"], "input size"),
                                               (["summary", "alexnet", "--input", "x"], "--input"),
                                               (["summary", "alexnet", "--input", "256"], "alexnet cannot take"),
                                               (["summary", "alexnet", "--input", "32"], "features.12")])
def test_summary_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_summary_writes_the_documented_json(tmp_path, capsys):
    path = tmp_path / "resnet18.json"
    assert main(["summary", "resnet18", "--json", str(path)]) == 0
    out = json.loads(path.read_text())
    assert out["version"] == 1 and out["network"] == "resnet18" and out["input"] == [1, 224, 224, 3]
    assert set(out["totals"]) >= {"params", "macs", "macs_in_bounds", "xla_flops", "receptive_field"}
    assert isinstance(out["totals"]["xla_flops"], int)
    layer_keys = {"name", "type", "output", "params", "macs", "macs_in_bounds", "geometry", "receptive_field",
                  "jump", "centre"}
    assert all(set(layer) == layer_keys for layer in out["layers"])
    assert out["layers"][0]["output"] == [1, 112, 112, 64]  # N H W C, as "input"
    assert out["totals"]["params"] == sum(layer["params"] for layer in out["layers"]) == PUBLISHED["resnet18"]["params"]
    assert out["totals"]["xla_flops"] > 2 * out["totals"]["macs_in_bounds"]  # the elementwise work on top
    assert "features.2.conv1" in capsys.readouterr().out  # full layer names in the table


def _taps_on_the_image(n, k, s, p):
    """Brute force along one axis: the (output, tap) pairs whose input index lies on the image."""
    outputs = (n + 2 * p - k) // s + 1
    return sum(0 <= o * s + t - p < n for o in range(outputs) for t in range(k))


def test_strided_layer_macs_count_the_taps_that_land_on_the_image():
    # architectures.Layer at a stride (padding (k-1)/2 on each side, or none) against a brute-force count of
    # the taps on the image, at the strided convolutions of ResNet-18 and MobileNet v1 (depthwise included)
    rows = [r for name in ("resnet18", "mobilenet_v1") for r in N.summary(name).rows
            if r.window is not None and r.window[1] > 1 and r.kind != "max pool"]
    assert len(rows) == 7 + 5  # ResNet-18: stem, 3 x (conv1, projection); MobileNet: stem, 4 depthwise
    for row in rows:
        k, s, p, g = row.window
        side = row.shape[0] * s  # every strided layer here halves an even map
        layer = Layer(k, k, row.c_in, row.shape[2], g, stride=s, valid=p == 0 and k > 1)
        pairs = (row.c_in // g) * row.shape[2]
        on_image = _taps_on_the_image(side, k, s, p) ** 2 * pairs
        assert sp.sympify(layer.macs(side, side, in_bounds=True)).doit() == on_image
        assert sp.sympify(layer.macs(side, side)).doit() == (row.shape[0] * k) ** 2 * pairs
