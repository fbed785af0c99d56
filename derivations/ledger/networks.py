"""The claims of the networks chapter: whole classic networks, summarised layer by layer from the Flax
modules, against nnx.state, XLA's cost analysis, autodiff and the published figures (torchvision's model
metadata, the MobileNet paper and TF-slim's table, the receptive-field library's table)."""

from __future__ import annotations

from derivations.claims import Evidence, claim, core, evidence, premise, scoped
from derivations.networks import (
    field_jump_and_centre,
    module_params,
    network_contraction_flops,
    published_findings,
    receptive_field_rows,
    summary,
)

# The published figures, looked up (never derived here), with their sources and the half unit of their last
# digit: a figure printed to 3 decimals of a billion agrees when |ours - published| <= 0.0005e9.
PUBLISHED = {
    # torchvision.models.<Name>_Weights.IMAGENET1K_V1.meta: "num_params" and "_ops" (the docs' "GFLOPS"; added
    # in pytorch/vision#6936). Which convention "_ops" counts, one or two per multiply-accumulate, is checked.
    "alexnet": {"params": 61100840, "macs": 0.714e9, "macs_half_unit": 0.0005e9, "source": "torchvision"},
    "vgg16": {"params": 138357544, "macs": 15.47e9, "macs_half_unit": 0.005e9, "source": "torchvision"},
    "resnet18": {"params": 11689512, "macs": 1.814e9, "macs_half_unit": 0.0005e9, "source": "torchvision"},
    "resnet50": {"params": 25557032, "macs": 4.089e9, "macs_half_unit": 0.0005e9, "source": "torchvision"},
    # Howard et al. 2017 (1.0 MobileNet-224: 4.2 million parameters, 569 million Mult-Adds); TF-slim's
    # mobilenet_v1.md: 569 million MACs (and 4.24 million parameters, see the page).
    "mobilenet_v1": {"params": 4.2e6, "params_half_unit": 0.05e6, "macs": 569e6, "macs_half_unit": 0.5e6,
                     "source": "MobileNet paper / TF-slim"},
}  # fmt: skip

# google-research/receptive_field, README table (TF-slim networks at their last feature map): receptive
# field, effective stride, effective padding. Effective padding is compared only where the padding
# convention is torchvision's (vgg_16); alexnet_v2 pads conv1 by 0 where torchvision pads 2, mobilenet_v1
# is TF "SAME" (one-sided at strides), and resnet_v1_50 puts the stride in the last block of each stage.
RF_TABLE = {
    "alexnet": {"field": 195, "jump": 32, "padding": None, "as": "alexnet_v2"},
    "vgg16": {"field": 212, "jump": 32, "padding": 90, "as": "vgg_16"},
    "mobilenet_v1": {"field": 315, "jump": 32, "padding": None, "as": "mobilenet_v1"},
}


@claim(
    "networks/classic-networks-have-their-published-sizes",
    sources=["S000-06", "S001-08", "S002-39"],
    says="The main feature-extraction and classification networks: AlexNet, VGG, GoogLeNet, ResNet, MobileNet "
    "(S000-06, S001-08; S002-39 asks how CNN classifiers evolved). The claim tests a gloss: built here from the "
    "workbook's blocks, each network has its published parameter count, and the per-layer summary read from "
    "the module adds up to it (the published MACs are the next claim's).",
    expected="holds",
    scope={"networks": list(PUBLISHED), "input": [1, 224, 224, 3], "published": PUBLISHED,
           "parameters": "nnx.Param leaves: kernels, biases, BatchNorm scale and shift (not its running statistics)"},
)
def _sizes(scope) -> Evidence:
    size = scope["input"][1]
    summaries = {name: summary(name, size) for name in scope["networks"]}
    params = {name: (s.totals()["params"], module_params(name)) for name, s in summaries.items()}
    return evidence(
        "measurement",
        core(f"the summary's parameter total (conv_arithmetic's kh kw Cin/G Cout + bias, 2 per BatchNorm channel) "
             f"= nnx.state of the module, in all {len(params)} networks", all(a == b for a, b in params.values()),
             networks=len(params)),
        *(f for f in published_findings(summaries, scope["published"]) if "parameters" in f.proposition),
        details={"totals": {name: s.totals() for name, s in summaries.items()},
                 "nnx_state_params": {name: b for name, (_, b) in params.items()}},
    )


@claim(
    "networks/notes-flops-formula-is-published-gflops-not-xla-flops",
    sources=["S001-38"],
    says="No. of FLOPS: input depth x output depth x output feature map width x output feature map height x "
    "kernel width x kernel height.",
    expected="qualified",
    scope={"networks_published": list(PUBLISHED), "networks_xla": ["resnet18", "mobilenet_v1"],
           "input": [1, 224, 224, 3], "published": PUBLISHED,
           "conventions": {"the note / torchvision 'GFLOPS' / the papers' Mult-Adds": "one per multiply-accumulate, "
                           "every tap, padding included",
                           "XLA cost_analysis": "2 flops per multiply-accumulate, taps on padding skipped"}},
    correction="The product counts multiply-accumulates (MACs), every kernel tap including the taps on padding. "
    "Summed over a network it is exactly what torchvision's documentation calls GFLOPS and the MobileNet paper "
    "Mult-Adds. Floating-point operations as XLA counts them are 2 per MAC, and XLA leaves out the taps on padding: "
    "a network's convolutions and dense layers cost 2 x (MACs in bounds) flops, about twice the note's figure.",
)
def _flops(scope) -> Evidence:
    size = scope["input"][1]
    summaries = {name: summary(name, size) for name in scope["networks_published"]}
    published = [f for f in published_findings(summaries, scope["published"]) if "MACs" in f.proposition]
    xla = {}
    for name in scope["networks_xla"]:
        totals = summaries[name].totals() if name in summaries else summary(name, size).totals()
        xla[name] = {"xla_contraction_flops": network_contraction_flops(name, size), **totals}
    exact = all(row["xla_contraction_flops"] == 2 * row["macs_in_bounds"] for row in xla.values())
    ratios = {name: row["xla_contraction_flops"] / row["macs"] for name, row in xla.items()}
    return evidence(
        "measurement",
        *published,
        premise(f"XLA's cost analysis of every convolution and matrix product of the forward pass = 2 x the "
                f"summary's MACs in bounds, exactly ({', '.join(xla)})", exact),
        scoped("the note's product is the network's FLOP count as XLA reports it (XLA's flops = the product)",
               all(row["xla_contraction_flops"] == row["macs"] for row in xla.values()),
               **{f"ratio_{name}": v for name, v in ratios.items()}),
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
    scope={"networks_autodiff": ["alexnet", "resnet18"], "width": 1e-3, "margin_pixels": 32,
           "measured": "support of d(sum over channels of the centre unit of the last spatial map)/d(input), "
                       "kernels of ones, two ramp inputs, the network built one channel wide (width 1e-3: the "
                       "spatial structure, and so the field, is unchanged)",
           "elementwise_in_these_networks": "ReLU, BatchNorm (evaluation), residual adds; dropout is not in the "
                                            "modules (the identity at evaluation; conv_arithmetic tests it)",
           "table": RF_TABLE},
)
def _fields(scope) -> Evidence:
    rows = receptive_field_rows(scope["networks_autodiff"], width=scope["width"], margin=scope["margin_pixels"])
    displayed = field_jump_and_centre()  # the recursion the summary ran (evaluated there through conv_arithmetic)
    table = {}
    for name, ref in scope["table"].items():
        f = summary(name).field
        padding = (f.size - 1) / 2 - f.centre  # the library's effective padding: output 0's field starts at -P
        table[name] = {"field": f.size, "jump": f.jump, "padding": padding, "library": ref}
    agrees = all(t["field"] == t["library"]["field"] and t["jump"] == t["library"]["jump"]
                 and (t["library"]["padding"] is None or t["padding"] == t["library"]["padding"])
                 for t in table.values())  # fmt: skip
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
        premise("the summary agrees with the receptive-field library's table (field, effective stride; effective "
                f"padding where the padding convention is the same) for {', '.join(table)}", agrees),
        details={"networks": rows, "table": table, "recursion": [str(eq) for eq in displayed]},
    )
