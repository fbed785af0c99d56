"""The claims of the networks chapter: whole classic networks, summarised layer by layer from the Flax
modules, against nnx.state, XLA's cost analysis, autodiff and the published figures (torchvision's model
metadata, the MobileNet paper and TF-slim's table, the receptive-field library's table)."""

from __future__ import annotations

from derivations.claims import Evidence, claim, core, evidence, premise, scoped
from derivations.networks import (
    field_jump_and_centre,
    library_table_agrees,
    library_table_rows,
    module_params,
    published_mac_findings,
    published_param_findings,
    receptive_field_rows,
    summary,
    xla_contraction_rows,
    xla_premise,
)

# torchvision stores each model's "_ops" as round(GFLOPs, 3) (pytorch/vision test/common_extended_utils.py,
# get_ops, PR #6996), so "15.47" is 15.470 and every torchvision figure agrees at half a unit of 0.001e9.
TORCHVISION_OPS_HALF_UNIT = 0.0005e9

# The published figures, looked up (never derived here), with their sources and the half unit of their last
# digit: a figure rounded to 3 decimals of a billion agrees when |ours - published| <= 0.0005e9.
PUBLISHED = {
    # torchvision.models.<Name>_Weights.IMAGENET1K_V1.meta: "num_params" (exact) and "_ops" (the docs'
    # "GFLOPS"; added in pytorch/vision#6936). Which convention "_ops" counts, one or two per
    # multiply-accumulate, is checked.
    **{name: {"params": params, "params_half_unit": 0, "params_source": "torchvision", "macs": macs,
              "macs_half_unit": TORCHVISION_OPS_HALF_UNIT, "macs_source": "torchvision"}
       for name, params, macs in [("alexnet", 61100840, 0.714e9), ("vgg16", 138357544, 15.470e9),
                                  ("resnet18", 11689512, 1.814e9), ("resnet50", 25557032, 4.089e9)]},
    # Howard et al. 2017, Table 8 (1.0 MobileNet-224: 4.2 million parameters, printed to 0.1 million; 569
    # million Mult-Adds), the MACs also in TF-slim's mobilenet_v1.md. TF-slim's 4.24 million parameters are not
    # this count (see the page), so the parameters cite the paper only.
    "mobilenet_v1": {"params": 4.2e6, "params_half_unit": 0.05e6, "params_source": "MobileNet paper",
                     "macs": 569e6, "macs_half_unit": 0.5e6, "macs_source": "MobileNet paper, TF-slim"},
}  # fmt: skip

# google-research/receptive_field, receptive_field/RECEPTIVE_FIELD_TABLE.md: every end point of the TF-slim
# networks whose kernels and strides are the ones built here, as (end point, our layer, receptive field,
# effective stride, effective padding). The effective padding is compared where the two networks pad alike up
# to a known offset: alexnet_v2's conv1 is VALID where torchvision pads 2 (so ours is the library's + 2 at
# every later end point); vgg_16 pads as torchvision does; mobilenet_v1's column at resolution 321 (odd maps,
# where TF's SAME pads both sides alike) is torchvision's padding. resnet_v1_50 puts each stage's stride in
# its last block, a different network; it is not compared.
RF_TABLE = {
    "alexnet": {"as": "alexnet_v2", "padding_offset": 2, "end_points": [
        ("conv1", "features.0", 11, 4, 0), ("pool1", "features.2", 19, 8, 0), ("conv2", "features.3", 51, 8, 16),
        ("conv3", "features.6", 99, 16, 32), ("conv4", "features.8", 131, 16, 48),
        ("conv5", "features.10", 163, 16, 64), ("pool5", "features.12", 195, 32, 64)]},
    "vgg16": {"as": "vgg_16", "padding_offset": 0, "end_points": [
        ("conv1/conv1_1", "features.0.convs.0", 3, 1, 1), ("pool1", "features.0.pool", 6, 2, 2),
        ("conv2/conv2_1", "features.1.convs.0", 10, 2, 4), ("pool2", "features.1.pool", 16, 4, 6),
        ("conv3/conv3_1", "features.2.convs.0", 24, 4, 10), ("conv3/conv3_2", "features.2.convs.1", 32, 4, 14),
        ("pool3", "features.2.pool", 44, 8, 18), ("conv4/conv4_1", "features.3.convs.0", 60, 8, 26),
        ("conv4/conv4_2", "features.3.convs.1", 76, 8, 34), ("pool4", "features.3.pool", 100, 16, 42),
        ("conv5/conv5_1", "features.4.convs.0", 132, 16, 58), ("conv5/conv5_2", "features.4.convs.1", 164, 16, 74),
        ("pool5", "features.4.pool", 212, 32, 90)]},
    "mobilenet_v1": {"as": "mobilenet_v1 (resolution 321)", "padding_offset": 0, "end_points": [
        ("Conv2d_0", "features.0.conv", 3, 2, 1),
        *[(f"Conv2d_{i}_pointwise", f"features.{i}.pointwise", field, jump, padding) for i, (field, jump, padding)
          in enumerate([(7, 2, 3), (11, 4, 5), (19, 4, 9), (27, 8, 13), (43, 8, 21), (59, 16, 29), (91, 16, 45),
                        (123, 16, 61), (155, 16, 77), (187, 16, 93), (219, 16, 109), (251, 32, 125),
                        (315, 32, 157)], start=1)]]},
}  # fmt: skip


@claim(
    "networks/classic-networks-have-their-published-sizes",
    sources=["S000-06", "S001-08", "S002-39"],
    says="The main feature-extraction and classification networks: AlexNet, VGG, GoogLeNet, ResNet, MobileNet "
    "(S000-06, S001-08; S002-39 asks how CNN classifiers evolved). The claim tests a gloss: built here from the "
    "workbook's blocks, each network has its published parameter count, and the per-layer summary read from "
    "the module adds up to it (the published MACs are the next claim's).",
    expected="holds",
    scope={"networks": list(PUBLISHED), "input": [1, 224, 224, 3], "published": PUBLISHED,
           "parameters": "nnx.Param leaves: kernels, biases, BatchNorm scale and shift (not its running statistics)",
           "resolution": "torchvision's counts are exact; the MobileNet paper's 4.2 million (+-0.05 million) cannot "
                         "tell biases on the pointwise convolutions (+10,944) or a missing BatchNorm (-21,888), "
                         "and its 569 million MACs (the next claim) cannot either, as neither changes a MAC: those "
                         "two details of MobileNet's layout are not settled by a published figure"},
)
def _sizes(scope) -> Evidence:
    size = scope["input"][1]
    summaries = {name: summary(name, size) for name in scope["networks"]}
    params = {name: (s.totals()["params"], module_params(name)) for name, s in summaries.items()}
    return evidence(
        "measurement",
        premise(f"the summary's parameter total (conv_arithmetic's kh kw Cin/G Cout + bias, 2 per BatchNorm "
                f"channel) = nnx.state of the module, in all {len(params)} networks",
                all(a == b for a, b in params.values()), networks=len(params)),
        *published_param_findings(summaries, scope["published"]),
        details={"totals": {name: s.totals() for name, s in summaries.items()},
                 "nnx_state_params": {name: b for name, (_, b) in params.items()}},
    )


@claim(
    "networks/notes-flops-formula-is-published-gflops-not-xla-flops",
    sources=["S001-38"],
    says="No. of FLOPS: input depth x output depth x output feature map width x output feature map height x "
    "kernel width x kernel height.",
    expected="qualified",
    scope={"networks_published": list(PUBLISHED), "input": [1, 224, 224, 3], "published": PUBLISHED,
           "xla_cases": [["alexnet", 224], ["vgg16", 224], ["resnet18", 224], ["mobilenet_v1", 224],
                         ["alexnet", 227]],  # 227: odd, the side AlexNet was trained at
           "conventions": {"the note / torchvision 'GFLOPS' / the papers' Mult-Adds": "one per multiply-accumulate, "
                           "every tap, padding included",
                           "XLA cost_analysis": "2 flops per multiply-accumulate, taps on padding skipped"}},
    correction="The product counts multiply-accumulates (MACs), every kernel tap including the taps on padding. "
    "Summed over a network it is exactly what torchvision's documentation calls GFLOPS and the MobileNet paper "
    "Mult-Adds, once 'input depth' is read as the kernel's depth: the input channels per group. Read as the input "
    "map's channels it overcounts every grouped or depthwise layer by its number of groups (MobileNet v1 by 8.5x). "
    "Both conventions are in use: torchvision and fvcore call a MAC a 'FLOP', while counting every "
    "multiplication and every addition, as XLA's cost model does, gives 2 per MAC; XLA also leaves out the taps on "
    "padding: a network's convolutions and dense layers cost 2 x (MACs in bounds) flops, about twice the note's "
    "figure. A published 'FLOPs' figure has to say which it counts.",
)
def _flops(scope) -> Evidence:
    size = scope["input"][1]
    summaries = {name: summary(name, size) for name in scope["networks_published"]}
    xla = xla_contraction_rows([tuple(case) for case in scope["xla_cases"]])
    ratios = {case: row["xla_contraction_flops"] / row["macs"] for case, row in xla.items()}
    # "input depth" read as the input map's channels: a grouped layer's MACs times its groups (window[3]).
    literal = {name: sum(r.macs * (r.window[3] if r.window else 1) for r in summ.rows) / sum(r.macs for r in summ.rows)
               for name, summ in summaries.items()}  # fmt: skip
    return evidence(
        "measurement",
        *published_mac_findings(summaries, scope["published"]),
        xla_premise(xla),
        scoped("read literally, 'input depth' the input map's channels, the product is the published count on every "
               "network (literal over per-group product)", all(v == 1.0 for v in literal.values()),
               **{f"literal_over_counted_{k}": round(v, 3) for k, v in literal.items()}),
        scoped("the note's product is the network's FLOP count as XLA reports it (XLA's flops = the product)",
               all(row["xla_contraction_flops"] == row["macs"] for row in xla.values()),
               **{f"ratio_{case}": v for case, v in ratios.items()}),
        details={"xla": xla},
    )


@claim(
    "networks/receptive-field-follows-the-widest-branch",
    sources=["S001-06", "S001-38"],
    says="Through a multi-branch path, the receptive field is computed along the branch with the largest field; "
    "a 1x1 stride-1 convolution, ReLU, BN, dropout, a shortcut and other elementwise operations do not change "
    "it (S001-06). The claim tests the rule on whole networks: the recursion r <- r + (k - 1) j, j <- j s run "
    "layer by layer, branches merged by their largest field, gives the field of a unit of the last feature map.",
    expected="holds",
    scope={"networks_autodiff": ["alexnet"],
           # cut after their first feature layers: ResNet-18 through stage 2 (residual adds, a strided projection
           # shortcut), GoogLeNet through Inception 3b (two modules of four concatenated branches whose fields
           # differ: 1x1 | 1x1-3x3 | 1x1-5x5 | 3x3 pool-1x1); the whole networks are measured in the tests
           "prefixes_autodiff": {"resnet18": 6, "googlenet": 10},
           "width": 1e-3, "margin_pixels": 32,
           "measured": "support of d(sum over channels of the centre unit of the last spatial map)/d(input), "
                       "kernels of ones, two ramp inputs, the network built one channel wide (width 1e-3: the "
                       "spatial structure, and so the field, is unchanged); the walk runs on the same module",
           "elementwise_in_these_networks": "ReLU, BatchNorm (evaluation), residual adds; dropout is not in the "
                                            "modules (the identity at evaluation; conv_arithmetic tests it)",
           "table": RF_TABLE},
)
def _fields(scope) -> Evidence:
    rows = receptive_field_rows(scope["networks_autodiff"], width=scope["width"], margin=scope["margin_pixels"],
                                prefixes=scope["prefixes_autodiff"])  # fmt: skip
    displayed = field_jump_and_centre()  # the recursion the summary ran (evaluated there through conv_arithmetic)
    table = library_table_rows(scope["table"])
    end_points = sum(len(t) for t in table.values())
    return evidence(
        "autodiff",
        *(core(f"{name}: the recursion's field of the centre unit = the gradient support's extent, rows and columns",
               r["measured"]["rows"] == r["predicted"]["field"] == r["measured"]["cols"],
               predicted=r["predicted"]["field"], measured_rows=r["measured"]["rows"],
               measured_cols=r["measured"]["cols"]) for name, r in rows.items()),
        core("the centre offset recursion c <- c + (d(k-1)/2 - p) j places the field where the gradient support is, "
             f"in {len(rows)} networks", all(r["predicted"]["centre"] == r["measured"]["centre"][0]
                                             == r["measured"]["centre"][1] for r in rows.values())),
        premise("the measured support does not touch the border (nothing clipped) and every gradient is finite",
                all(not r["measured"]["clipped"] and r["measured"]["finite"] for r in rows.values())),
        core(f"the recursion agrees with the receptive-field library's table at all {end_points} end points of "
             f"{', '.join(table)} (field, effective stride, effective padding)", library_table_agrees(table),
             end_points=end_points),
        details={"networks": rows, "table": table, "recursion": [str(eq) for eq in displayed]},
    )
