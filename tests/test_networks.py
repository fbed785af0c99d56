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
from jax import lax

from derivations import networks as N
from derivations.architectures import Layer
from derivations.cli import main
from derivations.conv_arithmetic import conv_macs_in_bounds
from derivations.ledger.networks import PUBLISHED
from models import blocks, networks

WIDTH = 1e-3  # one channel per layer: the spatial structure, and so every receptive field, is unchanged


@pytest.mark.parametrize("name", N.NETWORKS)
def test_summary_parameter_total_equals_nnx_state(name):
    assert N.summary(name).totals()["params"] == N.module_params(name)


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


def _reference_depthwise(x, kernel, stride):
    """A dense convolution with a block-diagonal kernel (no feature groups): an independent depthwise conv."""
    kh, kw, c = kernel.shape
    dense = jnp.zeros((kh, kw, c, c), kernel.dtype).at[:, :, jnp.arange(c), jnp.arange(c)].set(kernel)
    pads = [(kh // 2, kh // 2), (kw // 2, kw // 2)]
    return lax.conv_general_dilated(x, dense, (stride, stride), pads, dimension_numbers=blocks.DIMENSIONS)


def _value_and_pullback(f, x, k, dy):
    """f(x, k) and its vjp at dy, as one jitted program (eager, the fast kernel's K^2 taps are K^2 compiles)."""
    return jax.jit(lambda a, b, g: (f(a, b), jax.vjp(f, a, b)[1](g)))(x, k, dy)


@pytest.mark.parametrize(("size", "kernel", "stride"), [(7, 3, 2), (8, 5, 3)])
def test_strided_depthwise_matches_a_dense_block_diagonal_conv_forward_and_backward(size, kernel, stride):
    # both paths: the grouped convolution and the fast kernel kept at every stride-th output
    rng = np.random.default_rng(size * 10 + kernel)
    x = jnp.asarray(rng.normal(size=(2, size, size, 3)))
    k = jnp.asarray(rng.normal(size=(kernel, kernel, 3)))
    dy = jnp.asarray(rng.normal(size=(2, -(-size // stride), -(-size // stride), 3)))
    reference, ref_grads = _value_and_pullback(lambda a, b: _reference_depthwise(a, b, stride), x, k, dy)
    for fast in (False, True):
        ours, grads = _value_and_pullback(
            lambda a, b, f=fast: blocks.strided_depthwise_conv2d(a, b, stride=stride, fast=f), x, k, dy)
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
        for a, b in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


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
    assert all(f.held for f in N.published_findings(good, {"resnet50": PUBLISHED["resnet50"]}))
    bad = {"resnet50": _mutated(good["resnet50"], 0, params=good["resnet50"].rows[0].params + 1)}
    assert not all(f.held for f in N.published_findings(bad, {"resnet50": PUBLISHED["resnet50"]}))
    assert bad["resnet50"].totals()["params"] != N.module_params("resnet50")


def test_published_findings_reject_a_figure_that_counts_two_flops_per_mac():
    doubled = {**PUBLISHED["resnet18"], "macs": 2 * PUBLISHED["resnet18"]["macs"]}
    findings = N.published_findings({"resnet18": N.summary("resnet18")}, {"resnet18": doubled})
    assert not next(f for f in findings if "MACs" in f.proposition).held


def test_a_summary_that_counts_padding_taps_disagrees_with_xla():
    every_tap = N.summary("resnet18").totals()["macs"]
    assert N.network_contraction_flops("resnet18") != 2 * every_tap


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
                                               (["summary", "alexnet", "--input", "x"], "--input")])
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
    assert out["totals"]["params"] == sum(layer["params"] for layer in out["layers"]) == PUBLISHED["resnet18"]["params"]
    assert out["totals"]["xla_flops"] > 2 * out["totals"]["macs_in_bounds"]  # the elementwise work on top
    assert "features.2.conv1" in capsys.readouterr().out  # full layer names in the table


def test_strided_layer_macs_equal_the_summary_rows_of_strided_convolutions():
    # architectures.Layer at a stride (padding (k-1)/2 on each side, or none) against every strided
    # convolution of ResNet-18 and MobileNet v1 (depthwise ones included), both MAC conventions
    rows = [(name, r) for name in ("resnet18", "mobilenet_v1") for r in N.summary(name).rows
            if r.window is not None and r.window[1] > 1 and r.kind != "max pool"]
    assert len(rows) == 7 + 5  # ResNet-18: stem, 3 x (conv1, projection); MobileNet: stem, 4 depthwise
    for _, row in rows:
        k, s, p, g = row.window
        assert p in ((k - 1) // 2, 0)
        layer = Layer(k, k, row.c_in, row.shape[2], g, stride=s, valid=p == 0 and k > 1)
        side = row.shape[0] * s  # every strided layer here halves an even map
        assert sp.sympify(layer.macs(side, side)).doit() == row.macs
        assert sp.sympify(layer.macs(side, side, in_bounds=True)).doit() == row.macs_in_bounds
