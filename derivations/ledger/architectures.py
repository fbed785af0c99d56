"""The claims of the architectures chapter: the blocks' closed-form counts against Flax and XLA over drawn
configurations, receptive fields against gradient support, the notes' design ratios over channel widths and
with and without biases, and what a residual block and an SE gate do, measured."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations.architectures import (
    S004_21,
    C,
    C_in,
    C_mid,
    C_out,
    G,
    H,
    K,
    L,
    Layer,
    W,
    _rngs,
    abstract_module,
    add_is_concat_with_shared_kernel,
    basic_layers,
    block_cases,
    block_count_rows,
    block_macs,
    block_parameters,
    block_params,
    block_receptive_fields,
    bottleneck_layers,
    built,
    c0,
    contraction_flops,
    dense_block_parameters,
    distinct_crops,
    drawn_state,
    fit_identity,
    growth,
    im2col_conv,
    im2col_flops,
    r,
    run_once,
    score_map_flops,
    se_input_gradient,
    separable_layers,
    separable_ratio,
    stack_macs_and_xla,
    stack_vs_big,
    stacked_small_kernels,
    total,
    vgg_layers,
)
from derivations.bridge import instantiate, prove_identity, value
from derivations.claims import Evidence, claim, compared, core, evidence, proved, scoped
from derivations.compare import compare
from derivations.conv_arithmetic import conv_macs, conv_params, receptive_field, taps_in_bounds
from derivations.harness import gradient_support, module_params, support_extent
from models import blocks
from models.conv import conv2d

# --- the blocks ---------------------------------------------------------------------------------------------------

BLOCKS = ["VGG stack", "Inception", "ResNet basic", "ResNet bottleneck", "ResNeXt", "SE", "DenseNet",
          "depthwise separable", "GAP head"]  # fmt: skip


def _displayed_parameter_counts(scope) -> list[tuple[str, int, int]]:
    """The displayed closed forms (block_parameters) at the scope's widths against nnx.state (C_in != C_out:
    the displayed basic and bottleneck forms have the projection shortcut)."""
    p_vgg, p_basic, p_bottle, p_se, p_sep = block_parameters()
    rows = []
    for ci, co, mid, groups in itertools.product(scope["c_in"], scope["c_out"], scope["c_mid"], scope["groups"]):
        cases = [
            (p_vgg, {C_in: ci, C_out: co}, built(blocks.VGGStack, ci, co, convs=2, pool=False)),
            (p_basic, {C_in: ci, C_out: co}, built(blocks.BasicBlock, ci, co)),
            (p_bottle, {C_in: ci, C_mid: mid, C_out: co, G: groups},
             built(blocks.Bottleneck, ci, mid, co, groups=groups)),
            (p_se, {C: co, r: groups}, built(blocks.SEBlock, co, reduction=groups)),
            (p_sep, {C_in: ci, C_out: co, K: 3}, built(blocks.DepthwiseSeparable, ci, co, kernel=3)),
        ]
        for eq, subs, make in cases:
            rows.append((str(eq.lhs), round(value(eq, subs)), block_params(make)))
    return rows


@claim(
    "architectures/block-parameter-counts-match-flax",
    sources=["S000-06", "S001-08"],
    says="The common classification networks and their key points: AlexNet, VGG (stacked 3x3 convolutions), "
    "GoogLeNet's Inception module, ResNet, SENet, DenseNet (S001-08; S000-06 asks to introduce the main "
    "feature-extraction networks). The claim tests a gloss: the blocks, as built here, have the parameter "
    "counts of their closed forms.",
    expected="holds",
    scope={"blocks": BLOCKS, "draws": 2, "seed": 0, "c_in": [4, 8, 16], "c_out": [8, 16, 32], "c_mid": [4, 8],
           "groups": [2, 4], "displayed_widths": {"c_in": [4], "c_out": [8, 24], "c_mid": [4], "groups": [2, 4]},
           "dense_sum": [(2, 4, 1), (3, 2, 4), (8, 8, 3)]},
)
def _block_params(scope) -> Evidence:
    rows = block_count_rows(block_cases(seed=scope["seed"], draws=scope["draws"]), xla=False)
    displayed = _displayed_parameter_counts(scope["displayed_widths"])
    wrong = [r_ for r_ in rows if r_["params_formula"] != r_["params_flax"]]
    dense_sum = dense_block_parameters()
    dense = [(round(value(dense_sum, {c0: c_, growth: g_, L: n_})),
              block_params(built(blocks.DenseBlock, c_, growth=g_, layers=n_)))
             for c_, g_, n_ in scope["dense_sum"]]
    return evidence(
        "measurement",
        core(f"the closed-form count (a sum over the block's table) = nnx.state size in all {len(rows)} drawn "
             f"configurations of {len({r_['block'] for r_ in rows})} blocks", not wrong,
             wrong=len(wrong), samples=len(rows)),
        core(f"the displayed formulas (VGG stack, basic, bottleneck/ResNeXt, SE, separable), evaluated at "
             f"{len(displayed)} widths, = nnx.state", all(a == b for _, a, b in displayed), samples=len(displayed)),
        core("DenseNet's closed-form sum over layers, evaluated, = nnx.state of DenseBlock (c_0, g, L)",
             all(a == b for a, b in dense), configurations=len(dense)),
        details={"rows": rows, "displayed": displayed, "dense_sum": dense},
    )


@claim(
    "architectures/block-macs-match-xla",
    sources=["S000-06", "S002-14"],
    says="The computation of a convolution is Kh x Kw x Cin x Cout x H x W (S002-14); a block's is the sum over "
    "its convolutions.",
    expected="holds",
    scope={"blocks": BLOCKS, "draws": 1, "seed": 1, "size": 8,
           "conventions": {"every tap (the notes, the papers, torchvision/fvcore, im2col + GEMM)":
                           "kh kw Cin/G Cout H W",
                           "in-bounds taps (XLA's cost analysis of its convolution)": "padding taps skipped"}},
)
def _block_macs(scope) -> Evidence:
    size = scope["size"]
    rows = block_count_rows(block_cases(seed=scope["seed"], draws=scope["draws"]), size)
    every = [r_ for r_ in rows if r_["im2col_flops"] != 2 * r_["macs_every_tap"]]
    bounded = [r_ for r_ in rows if r_["xla_contraction_flops"] != 2 * r_["macs_in_bounds"]]
    # The displayed MAC formulas, evaluated, against the programs that execute them.
    m_vgg, m_bottle, m_sep, m_bottle_xla = block_macs()
    ci, mid, co, groups = 8, 4, 16, 2
    subs = {C_in: ci, C_mid: mid, C_out: co, G: groups, K: 3, H: size, W: size}
    x = jax.ShapeDtypeStruct((1, size, size, ci), jnp.float32)
    bottleneck = abstract_module(built(blocks.Bottleneck, ci, mid, co, groups=groups))
    bottleneck.eval()  # its residual branch: the displayed form has no projection
    graph, state = nnx.split(bottleneck)
    displayed = [
        (value(m_vgg, subs), im2col_flops(vgg_layers(ci, co, 2), size) / 2),
        (value(m_bottle, subs), im2col_flops(bottleneck_layers(ci, mid, co, groups, False), size) / 2),
        (value(m_sep, subs), im2col_flops(separable_layers(ci, co, 3), size) / 2),
        (value(m_bottle_xla, subs), (contraction_flops(lambda s, v: nnx.merge(graph, s).residual(v), state, x)) / 2),
    ]
    ratio = max(r_["macs_every_tap"] / r_["macs_in_bounds"] for r_ in rows)
    # No block above has a VALID layer; these two exercise the table's VALID count, k (n - k + 1) per axis.
    valid_layers = [Layer(3, 3, 4, 8, valid=True), Layer(size, size, 4, 10, bias=True, valid=True)]
    valid = [(int(la.macs(size, size)), im2col_flops([la], size) / 2) for la in valid_layers]
    strided = _strided_counts(STRIDED_CASES)
    return evidence(
        "measurement",
        core(f"every tap counted: the block tables' kh kw (Cin/G) Cout H W = half XLA's flops of the same "
             f"convolutions run as im2col + GEMM, in all {len(rows)} blocks", not every, wrong=len(every)),
        core(f"in-bounds taps: XLA's cost analysis of the blocks' own convolutions = 2 x the closed form that "
             f"skips padding taps (3H - 2 per axis for a 3x3), in all {len(rows)} blocks", not bounded,
             wrong=len(bounded)),
        core("the displayed formulas (VGG stack, bottleneck, separable: every tap; bottleneck: in bounds), "
             "evaluated, equal the programs' MACs", all(a == b for a, b in displayed)),
        core(f"VALID layers (a 3x3, and an {size}x{size} conv on the {size}x{size} map: a dense layer): the table's "
             "k (n - k + 1) taps per axis = half XLA's im2col + GEMM flops", all(a == b for a, b in valid)),
        core("stride-2 layers (3x3 on 8x8 and 9x9 maps, 7x7 on 9x9, padded (k-1)/2 each side; a 3x3 VALID on 9x9): "
             "the table's in-bounds taps, summed, = XLA's cost analysis of the strided convs (one program), and each "
             "every-tap count = k^2 x its output positions (jax.eval_shape) x Cin Cout",
             strided["in_bounds"] == strided["xla_in_bounds"]
             and all(c["every_tap"] == c["k2_outputs"] for c in strided["cases"]), samples=len(strided["cases"])),
        details={"rows": rows, "displayed": displayed, "valid": valid, "strided": strided,
                 "every_tap_over_in_bounds_max": ratio, "size": size},
    )


# No block of the table is strided: these exercise its stride branch (conv_arithmetic's counts per axis).
STRIDED_CASES = ((Layer(3, 3, 4, 8, stride=2), 8), (Layer(3, 3, 4, 8, stride=2), 9), (Layer(7, 7, 3, 8, stride=2), 9),
                 (Layer(3, 3, 4, 8, stride=2, valid=True), 9))


def _strided_counts(cases) -> dict:
    """The table's counts of strided layers against XLA's: the in-bounds taps summed over the cases (XLA's cost
    analysis of one program running every case's conv, so one lowering), every-tap counts case by case."""
    pads = [0 if layer.valid else (layer.kh - 1) // 2 for layer, _ in cases]
    shapes = [s for layer, n in cases for s in (jax.ShapeDtypeStruct((1, n, n, layer.c_in), jnp.float32),
                                                 jax.ShapeDtypeStruct((layer.kh, layer.kw, layer.c_in, layer.c_out),
                                                                      jnp.float32))]  # fmt: skip

    def convs(*arrays):
        return [jax.lax.conv_general_dilated(x, k, (layer.stride,) * 2, ((p, p), (p, p)),
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
                for (layer, _), p, x, k in zip(cases, pads, arrays[::2], arrays[1::2], strict=True)]  # fmt: skip

    outputs = jax.eval_shape(convs, *shapes)
    rows = [{"layer": f"{layer.kh}x{layer.kw}/2{' VALID' if layer.valid else ''}", "size": n,
             "every_tap": int(layer.macs(n, n)),
             "k2_outputs": layer.kh * layer.kw * out.shape[1] * out.shape[2] * layer.c_in * layer.c_out}
            for (layer, n), out in zip(cases, outputs, strict=True)]  # fmt: skip
    return {"cases": rows, "in_bounds": sum(int(layer.macs(n, n, in_bounds=True)) for layer, n in cases),
            "xla_in_bounds": contraction_flops(convs, *shapes) / 2}


RF_CASES = {
    "VGG stack, 3 convs": (built(blocks.VGGStack, 1, 2, convs=3, pool=False), 1, [(3, 1, 1)] * 3),
    "ResNet basic": (built(blocks.BasicBlock, 2, 2), 2, [(3, 1, 1)] * 2),
    "ResNet bottleneck": (built(blocks.Bottleneck, 2, 2, 4), 2, [(1, 1, 0), (3, 1, 1), (1, 1, 0)]),
    "Inception (5x5 branch widest)": (built(blocks.InceptionModule, 2, c1=1, c3_reduce=1, c3=1, c5_reduce=1, c5=1,
                                            pool_proj=1), 2,
                                      {"branches": [[(1, 1, 0)], [(1, 1, 0), (3, 1, 1)], [(1, 1, 0), (5, 1, 2)],
                                                    [(3, 1, 1), (1, 1, 0)]]}),
    "DenseNet, 3 layers": (built(blocks.DenseBlock, 2, growth=2, layers=3), 2, [(3, 1, 1)] * 3),
    "depthwise separable 5x5": (built(blocks.DepthwiseSeparable, 2, 2, kernel=5), 2, [(5, 1, 2), (1, 1, 0)]),
    "SE (global pool)": (built(blocks.SEBlock, 4, reduction=2), 4, None),  # the whole input
}  # fmt: skip


@claim(
    "architectures/block-receptive-fields-match-gradient-support",
    sources=["S000-06", "S002-44"],
    says="Two 3x3 convolution kernels in series have the same receptive field as one 5x5 (S002-44); stacking "
    "small kernels grows the receptive field layer by layer (the claim tests the recursion on every block).",
    expected="holds",
    scope={"blocks": list(RF_CASES), "input": 16, "output_pixel": "centre", "kernels": "all ones"},
)
def _block_rf(scope) -> Evidence:
    size = scope["input"]
    measured = block_receptive_fields([(factory, c_in) for factory, c_in, _ in RF_CASES.values()], size)
    rows = {name: (field, _predicted_field(path, size))
            for (name, (_, _, path)), field in zip(RF_CASES.items(), measured, strict=True)}
    return evidence(
        "autodiff",
        *(core(f"{name}: the support of d(centre output)/d(input) = the recursion over its longest path (for "
               "parallel branches: the largest of the branches' recursions)",
               measured == predicted, measured=measured, predicted=predicted)
          for name, (measured, predicted) in rows.items()),
    )


def _predicted_field(path, size: int) -> int:
    """The recursion's receptive field of a layer path; of parallel branches ({"branches": [...]}), the largest
    one's (computed, not assumed); the whole input for a block that pools globally (None)."""
    if path is None:
        return size
    if isinstance(path, dict):
        return max(receptive_field(branch)[-1][0] for branch in path["branches"])
    return receptive_field(path)[-1][0]


@claim(
    "architectures/residual-block-can-learn-the-identity",
    sources=["S001-08"],
    says="ResNet: x goes through two layers to give F(x) and is also short-cut two layers ahead, so the block "
    "outputs H(x) = F(x) + x. If a layer's output already fits the desired result well, adding more layers "
    "does not make the model worse: the output is short-cut past the two layers, which amounts to learning an "
    "identity mapping directly.",
    expected="holds",
    scope={"block": "BasicBlock(3 -> 3), relu(F(x) + x), BatchNorm in evaluation mode",
           "input": "relu of N(0, 1), shape (2, 6, 6, 3): what a block sees after an earlier ReLU", "seeds": [0, 1, 2],
           "steps": 60, "lr": 0.5, "plain_lrs": [0.05, 0.2, 1.0, 2.0], "reach": 0.01,
           "compared_with": "the same layers and initialisation without the shortcut (H = F)"},
    aliases=["architectures/residual-jacobian-is-identity-plus-branch"],
)
def _residual_identity(scope) -> Evidence:
    x = np.maximum(np.random.default_rng(3).normal(size=(2, 6, 6, 3)), 0.0)
    factory = lambda rngs: blocks.BasicBlock(3, 3, rngs=rngs, dtype=jnp.float64)  # noqa: E731
    rates = scope["plain_lrs"]
    fits = {"residual": fit_identity(factory, scope["seeds"], x, steps=scope["steps"], lr=[scope["lr"]]),
            "plain": fit_identity(factory, scope["seeds"], x, steps=scope["steps"], lr=[scope["lr"], *rates],
                                  shortcut=False)}
    rows = [{"seed": seed, "residual": res, "plain": plain}
            for seed, res, plain in zip(scope["seeds"], fits["residual"][0], fits["plain"][0], strict=True)]
    reach = scope["reach"]
    res_worst = max(r_["residual"][1] / r_["residual"][0] for r_ in rows)
    # The plain stack at every learning rate of the grid (a diverged run, nan or inf, has not reached it).
    plain_fractions = {f"{rate:g}": [final / first for first, final in runs]
                       for rate, runs in zip([scope["lr"], *rates], fits["plain"], strict=True)}
    finite = [f for fs in plain_fractions.values() for f in fs if np.isfinite(f)]
    plain_best = min(finite) if finite else float("inf")
    x_power = float(np.mean(x**2))
    return evidence(
        "autodiff",
        core(f"with the shortcut, {scope['steps']} steps of gradient descent (lr {scope['lr']:g}) from the "
             f"initialisation bring mean (H(x) - x)^2 below {reach:g} of where it started (F is driven to 0), "
             "for every seed", res_worst < reach, worst_fraction=res_worst),
        core(f"the same layers without the shortcut do not reach that in the same steps at any learning rate "
             f"{[scope['lr'], *rates]} (they must build the identity through ReLU), for any seed",
             plain_best >= reach, best_fraction=plain_best),
        details={"rows": rows, "x_power": x_power, "plain_fraction_by_lr": plain_fractions},
    )


@claim(
    "architectures/se-gate-gradient-matches-autodiff",
    sources=["S001-08"],
    says="SENet uses a 'feature recalibration' strategy: it learns the importance of each feature channel "
    "automatically, then uses it to boost the useful features and suppress those of little use for the task. "
    "The claim tests a gloss: the gate is one factor in (0, 1) per channel and example, and its hand-derived "
    "input gradient is what autodiff computes.",
    expected="holds",
    scope={"cases": [((3, 4, 4, 8), 0.1), ((1, 1, 1, 8), -0.5)], "reduction": 2, "dtype": "float64",
           "cases_are": "(input shape, shift of the squeeze bias: gates mostly open, mostly closed)"},
)
def _se_gradient(scope, rtol) -> Evidence:
    rng = np.random.default_rng(5)
    channels, hidden = 8, 8 // scope["reduction"]
    # Weights drawn here (any weights will do for an identity; no module initialisation to compile).
    w1, w2 = rng.normal(size=(channels, hidden)) / np.sqrt(channels), rng.normal(size=(hidden, channels))
    b1, b2 = 0.1 * rng.normal(size=hidden), 0.1 * rng.normal(size=channels)

    def both(v, p, d):  # the hand-derived gradient, autodiff's, and the SE output, in one program
        return se_input_gradient(v, *p, d), jax.vjp(lambda z: blocks.se_gate(z, *p), v)[1](d)[0], blocks.se_gate(v, *p)

    comparisons, gates, per_channel = [], [], True
    inputs = []
    for shape, shift in scope["cases"]:
        x, dy = (rng.normal(size=shape) for _ in range(2))
        inputs.append((x, (w1, b1 + shift, w2, b2), dy))
    for (x, _, _), (derived, autodiff, out) in zip(
            inputs, run_once(lambda cases: [both(*case) for case in cases], inputs), strict=True):  # one program
        derived, autodiff, out = np.asarray(derived), np.asarray(autodiff), np.asarray(out)
        comparisons.append(compare(lambda d_=derived: d_, lambda a_=autodiff: a_, [], rtol=rtol))
        ratio = out / np.where(x == 0, 1.0, x)  # per pixel: its channel's gate
        per_channel &= bool(np.all(np.abs(ratio - ratio[:, :1, :1, :]) <= rtol * np.abs(ratio[:, :1, :1, :])))
        gates.append(ratio[:, 0, 0, :])
    gates = np.concatenate(gates)
    worst = max(comparisons, key=lambda c: c.max_rel_err)
    return evidence(
        "autodiff",
        compared(f"hand-derived SE input gradient = jax.vjp over {len(comparisons)} shapes and gate biases",
                 worst),
        core("every comparison agrees", all(c.ok for c in comparisons)),
        core("the output is the input times one gate in (0, 1) per channel and example (the same at every pixel)",
             per_channel and bool(np.all((gates > 0) & (gates < 1))),
             gate_min=float(gates.min()), gate_max=float(gates.max())),
    )


# --- small kernels ---------------------------------------------------------------------------------------------------


def _stack_rows(scope) -> dict[int, dict]:
    """The displayed table (stacked_small_kernels) at C = the scope's width, beside the measurements."""
    table = instantiate(stacked_small_kernels(), {C: scope["C"]})
    out = {}
    for depth, row in zip((2, 3, 5), table.tolist(), strict=True):
        measured = stack_vs_big(depth, 2 * depth + 1, scope["C"])
        out[depth] = {"table": [float(v) for v in row], **measured}
    return out


def _relu_count(factory, c_in: int) -> int:
    """How many ReLUs (``max`` with 0) the block's traced program applies to an 8x8 input."""
    graph, state = nnx.split(abstract_module(factory))
    jaxpr = jax.make_jaxpr(lambda s, v: nnx.merge(graph, s)(v))(state, jax.ShapeDtypeStruct((1, 8, 8, c_in),
                                                                                             jnp.float32))

    def count(jx):
        n = 0
        for eqn in jx.eqns:
            n += eqn.primitive.name == "max"
            for p in eqn.params.values():
                for item in p if isinstance(p, list | tuple) else [p]:
                    inner = getattr(item, "jaxpr", item)
                    if hasattr(inner, "eqns"):
                        n += count(inner)
        return n

    return count(jaxpr.jaxpr)


def _bias_ratio(depth: int, kernel: int, c: int) -> float:
    return (depth * conv_params(3, 3, c, c)) / conv_params(kernel, kernel, c, c)


@claim(
    "architectures/three-3x3-have-the-field-of-a-7x7-with-half-the-parameters",
    sources=["S000-02", "S004-12"],
    says="How to choose the kernel: three 3*3 kernels are equivalent to one 7*7, with half the parameters.",
    expected="qualified",
    correction="Same receptive field (7), but 27C^2 vs 49C^2 weights: 55% of the 7x7's, 45% fewer, not half.",
    scope={"C": 8, "widths": [1, 8, 256], "bias": [False, True], "half_within": 0.02},
)
def _three_vs_seven(scope) -> Evidence:
    row = _stack_rows(scope)[3]
    ratios = [row["ratio"]] + [_bias_ratio(3, 7, c) for c in scope["widths"]]
    table_ok = row["table"] == [row["stack_rf"], row["stack_params"], row["big_params"], row["ratio"]]
    return evidence(
        "measurement",
        core("three stacked 3x3 see what one 7x7 sees (gradient support)", row["stack_rf"] == row["big_rf"] == 7,
             stack=row["stack_rf"], big=row["big_rf"]),
        core("the displayed table's row (field, weights of the stack, of the 7x7, ratio) = nnx.state and the "
             "measured field", table_ok, ratio=row["ratio"]),
        core("fewer parameters, with or without biases, at every width", max(ratios) < 1),
        scoped(f"half the parameters (within {scope['half_within']:g}), with or without biases, at every width",
               all(abs(q - 0.5) <= scope["half_within"] for q in ratios), worst=max(ratios)),
    )


@claim(
    "architectures/two-3x3-have-the-field-of-a-5x5-with-fewer-parameters",
    sources=["S002-44", "S004-12"],
    says="Two 3*3 kernels in series have the same receptive field as one 5*5, with fewer parameters; several "
    "3*3 kernels have more layers of non-linearity than one larger kernel.",
    expected="holds",
    scope={"C": 8, "widths": [1, 8, 256], "bias": [False, True]},
)
def _two_vs_five(scope) -> Evidence:
    row = _stack_rows(scope)[2]
    ratios = [row["ratio"]] + [_bias_ratio(2, 5, c) for c in scope["widths"]]
    # Non-linear stages between input and output: the ReLUs (max with 0) in each program's jaxpr.
    stack_relus = _relu_count(built(blocks.VGGStack, scope["C"], scope["C"], convs=2, pool=False), scope["C"])
    big_relus = _relu_count(built(blocks.VGGStack, scope["C"], scope["C"], convs=1, pool=False), scope["C"])
    return evidence(
        "measurement",
        core("two stacked 3x3 see what one 5x5 sees", row["stack_rf"] == row["big_rf"] == 5),
        core("two 3x3 conv + ReLU layers apply more non-linearities than one conv + ReLU layer (ReLUs counted "
             "in their jaxprs)", stack_relus > big_relus, stack=stack_relus, one_layer=big_relus),
        core("the displayed row = nnx.state", row["table"] == [5, row["stack_params"], row["big_params"], row["ratio"]],
             ratio=row["ratio"]),
        core("fewer parameters, with or without biases, at every width", max(ratios) < 1, worst=max(ratios)),
    )


@claim(
    "architectures/three-3x3-replace-an-11x11",
    sources=["S001-42"],
    says="Multiple small filters are better than 1 big filter. For e.g. three 3x3 filters instead of single "
    "11x11 filter.",
    expected="qualified",
    correction="Three 3x3 see 7x7, not 11x11: matching an 11x11 takes five 3x3 (45C^2 weights vs 121C^2, 37%).",
    scope={"C": 8, "depths": [3, 5], "big": 11},
)
def _three_vs_eleven(scope) -> Evidence:
    rows = _stack_rows(scope)
    big = stack_vs_big(scope["depths"][0], scope["big"], scope["C"])
    five = rows[5]
    return evidence(
        "measurement",
        core("small filters stacked to the 11x11's field (five 3x3) have fewer parameters",
             five["stack_rf"] == big["big_rf"] == 11 and five["stack_params"] < big["big_params"],
             ratio=five["stack_params"] / big["big_params"]),
        core("the displayed row for five 3x3 = nnx.state",
             five["table"] == [11, five["stack_params"], five["big_params"], five["ratio"]]),
        scoped("three 3x3 stand in for one 11x11 (the same receptive field)", rows[3]["stack_rf"] == big["big_rf"],
               three=rows[3]["stack_rf"], eleven=big["big_rf"]),
    )


@claim(
    "architectures/1x3-then-3x1-replace-a-3x3-with-half-the-parameters",
    sources=["S000-25"],
    says="Google's 1*3 and 3*1 in place of 3*3: the two have the same receptive field, so the features "
    "extracted are not affected; the same receptive field, and the weights are reduced by half.",
    expected="qualified",
    correction="Same 3x3 receptive field, but 6C^2 vs 9C^2 weights: a third fewer, not half. (It is also a "
    "rank-1-per-channel-pair restriction, not an equivalent layer.)",
    scope={"widths": [1, 8, 64], "half_within": 0.02, "input": 15},
)
def _asymmetric(scope) -> Evidence:
    apply = lambda v: conv2d(conv2d(v, jnp.ones((1, 3, 1, 1)), padding=0), jnp.ones((3, 1, 1, 1)), padding=0)  # noqa: E731
    size = scope["input"]
    field = support_extent(gradient_support(lambda v: jnp.pad(apply(v), ((0, 0), (1, 1), (1, 1), (0, 0))), size,
                                            (size // 2, size // 2)))  # fmt: skip
    ratios = []
    for c in scope["widths"]:
        pair = module_params(lambda c=c: nnx.Conv(c, c, (1, 3), use_bias=False, rngs=_rngs())) + module_params(
            lambda c=c: nnx.Conv(c, c, (3, 1), use_bias=False, rngs=_rngs()))
        ratios.append(pair / module_params(lambda c=c: nnx.Conv(c, c, (3, 3), use_bias=False, rngs=_rngs())))
    return evidence(
        "measurement",
        core("1x3 then 3x1 sees a 3x3 field (gradient support)", field == (3, 3), field=f"{field[0]}x{field[1]}"),
        core("fewer weights at every width", max(ratios) < 1, ratio=max(ratios)),
        scoped(f"half the weights (within {scope['half_within']:g})",
               all(abs(q - 0.5) <= scope["half_within"] for q in ratios), ratio=max(ratios)),
    )


@claim(
    "architectures/bottleneck-has-17x-fewer-parameters-than-two-3x3",
    sources=["S000-27", "S002-17"],
    says="The 1*1 + 3*3 + 1*1 block: the first 1*1 reduces the channels, the 3*3 then computes less, the last "
    "1*1 restores the channels; compared with 2 3*3 convolutions the parameters are nearly 17 times fewer.",
    expected="holds",
    scope={"widths": [64, 256, 1024, 2048], "reduction": 4, "nearly": [16, 18], "batchnorm": [False, True]},
)
def _bottleneck_params(scope) -> Evidence:
    c = sp.Symbol("C", positive=True, integer=True)
    weights = lambda layers: sum(la.params() - 2 * la.bn for la in layers)  # noqa: E731  (conv weights only)
    two = weights(basic_layers(c, c, False))
    bottle = weights(bottleneck_layers(c, c / scope["reduction"], c, 1, False))
    proof = prove_identity(two / bottle, sp.Rational(18 * 16, 17), [c], sampler=lambda rng, n: rng.uniform(1, 4096, n))
    rows = []
    for width in scope["widths"]:
        mid = width // scope["reduction"]
        basic = block_params(built(blocks.BasicBlock, width, width))
        bott = block_params(built(blocks.Bottleneck, width, mid, width))
        formula = (int(total(basic_layers(width, width, False), "params")),
                   int(total(bottleneck_layers(width, mid, width, 1, False), "params")))
        rows.append({"width": width, "basic": basic, "bottleneck": bott, "ratio": basic / bott,
                     "formula_ok": (basic, bott) == formula})
    low, high = scope["nearly"]
    # He et al. pair the 256-d bottleneck with a 64-d basic block of similar cost, not with a 256-d one.
    paper = block_params(built(blocks.BasicBlock, 64, 64)) / rows[1]["bottleneck"]
    return evidence(
        "measurement",
        proved("conv weights: two 3x3 C -> C over 1x1 C -> C/4, 3x3, 1x1 C/4 -> C = 18C^2 / (17C^2/16) = 288/17 "
               "for every C", proof),
        core(f"with BatchNorm's parameters too (nnx.state = the closed forms), the ratio lies in [{low}, {high}] "
             "at every width", all(r_["formula_ok"] and low <= r_["ratio"] <= high for r_ in rows),
             ratio_at_256=rows[1]["ratio"]),
        details={"rows": rows, "basic64_over_bottleneck256": paper},
    )


@claim(
    "architectures/bottleneck-has-the-receptive-field-of-two-3x3",
    sources=["S000-27"],
    says="The receptive field of this 1*1 + 3*3 + 1*1 combination is equivalent to that of 2 3*3 convolutions.",
    expected="refuted",
    correction="A 1x1 conv does not grow the receptive field: the bottleneck sees 3x3, two 3x3 convs see 5x5.",
    scope={"blocks": ["Bottleneck(2, 2, 4)", "BasicBlock(2, 2)"], "input": 16},
)
def _bottleneck_rf(scope) -> Evidence:
    bottle, basic = block_receptive_fields(
        [(built(blocks.Bottleneck, 2, 2, 4), 2), (built(blocks.BasicBlock, 2, 2), 2)], scope["input"])
    predicted = (receptive_field([(1, 1, 0), (3, 1, 1), (1, 1, 0)])[-1][0], receptive_field([(3, 1, 1)] * 2)[-1][0])
    return evidence(
        "autodiff",
        core("the bottleneck's receptive field (gradient support) equals two 3x3's", bottle == basic,
             bottleneck=bottle, two_3x3=basic),
        core("both measurements equal the receptive-field recursion", (bottle, basic) == predicted,
             predicted=str(predicted)),
    )


# --- 1x1, add/concat, FC as conv, separable ---------------------------------------------------------------------------


@claim(
    "architectures/1x1-conv-is-a-dense-layer-at-every-pixel",
    sources=["S001-02", "S002-17", "S000-03"],
    says="1x1 convolution can organise information across channels, improving the network's expressiveness, and "
    "can raise or lower the number of output channels.",
    expected="holds",
    scope={"c_in": 16, "c_out": [6, 40], "input": (2, 5, 7, 16), "dtype": "float64"},
)
def _one_by_one(scope, rtol) -> Evidence:
    x = np.random.default_rng(2).normal(size=scope["input"])
    comparisons, mixes = [], True
    c_in = scope["c_in"]
    basis = np.eye(c_in).reshape(c_in, 1, 1, c_in)
    pairs = []
    for seed, co in enumerate(scope["c_out"]):
        graph, state = drawn_state(abstract_module(built(nnx.Conv, c_in, co, (1, 1), param_dtype=jnp.float64)), seed)
        dense = abstract_module(built(nnx.Linear, c_in, co, param_dtype=jnp.float64))
        pairs.append(((graph, nnx.split(dense)[0]), state))

    def both(states, v, b):  # every width in one program
        out = []
        for (graph, dense_graph), s in zip((p for p, _ in pairs), states, strict=True):
            conv = nnx.merge(graph, s)
            # the Linear layer given the conv's weights, applied to every pixel
            linear = nnx.merge(dense_graph, nnx.State({"kernel": nnx.Param(s["kernel"][...][0, 0]),
                                                      "bias": nnx.Param(s["bias"][...])}))
            out.append((conv(v), linear(v.reshape(-1, v.shape[-1])).reshape(*v.shape[:3], -1), conv(b) - conv(0 * b)))
        return out

    for conv_out, dense_out, jacobian in run_once(both, [state for _, state in pairs], x, basis):
        conv_out, dense_out, jacobian = np.asarray(conv_out), np.asarray(dense_out), np.asarray(jacobian)
        comparisons.append(compare(lambda c_=conv_out: c_, lambda d_=dense_out: d_, [], rtol=rtol))
        # Mixing: each output channel depends on every input channel (the conv of one-hot pixels, minus the
        # bias, is its Jacobian: no zero entry).
        mixes &= bool(np.all(jacobian != 0))
    return evidence(
        "measurement",
        compared("nnx.Conv 1x1 = nnx.Linear applied to every pixel with the same weights, for fewer and "
                 "more output channels", max(comparisons, key=lambda c: c.max_rel_err)),
        core("all widths agree", all(c.ok for c in comparisons)),
        core("every output channel depends on every input channel", mixes),
    )


@claim(
    "architectures/1x1-reduction-cuts-the-24x24-example",
    sources=["S004-21", "S000-03"],
    says="1x1 convolutions do channel reduction, lowering the computation: for a 24x24x3 input, two 3x3x128 "
    "convolutions cost 24x24x3x3x3x128 + 24x24x128x3x3x128; 3x3x128, 1x1x64, 3x3x128 cost 24x24x3x3x3x128 + "
    "24x24x128x1x1x64 + 24x24x64x3x3x128.",
    expected="holds",
    scope={"size": 24, "stacks": S004_21, "conventions": ["every tap (the note)", "in bounds (XLA)"]},
)
def _example_24(scope) -> Evidence:
    rows = {name: stack_macs_and_xla(stack, scope["size"]) for name, stack in scope["stacks"].items()}
    note = {"two 3x3x128": 24 * 24 * 3 * 3 * 3 * 128 + 24 * 24 * 128 * 3 * 3 * 128,
            "3x3x128, 1x1x64, 3x3x128": 24 * 24 * 3 * 3 * 3 * 128 + 24 * 24 * 128 * 64 + 24 * 24 * 64 * 3 * 3 * 128}
    (a, _, a_x), (b, _, b_x) = rows.values()
    return evidence(
        "measurement",
        core("the note's products = conv_macs (every tap) for both stacks", all(rows[n][0] == note[n] for n in rows),
             two_3x3=a, with_1x1=b),
        core("XLA's flops = 2 x the in-bounds MACs for both stacks", all(v[2] == 2 * v[1] for v in rows.values())),
        core("the 1x1 reduction lowers the cost in both conventions", b < a and b_x < a_x,
             ratio_every_tap=a / b, ratio_xla=a_x / b_x),
        details={n: {"every_tap_macs": v[0], "in_bounds_macs": v[1], "xla_flops": v[2]} for n, v in rows.items()},
    )


@claim(
    "architectures/add-equals-concat-then-a-shared-kernel",
    sources=["S001-08", "S002-15"],
    says="add is equivalent to concat followed by a convolution in which corresponding channels share the same "
    "kernel. When the two inputs have 'corresponding channels of similar meaning', add can replace concat and "
    "saves parameters and computation (concat is 2 times add).",
    expected="holds",
    scope={"channels": [4, 64], "c_out_and_kernel": [(3, 1), (64, 3)], "input": (2, 6, 6), "dtype": "float64",
           "twice": "the next layer's weights and MACs (its bias is not doubled: reported)"},
)
def _add_vs_concat(scope, rtol) -> Evidence:
    rng = np.random.default_rng(4)
    cases, weights, macs, with_bias = [], [], [], []
    for c, (co, k_) in itertools.product(scope["channels"], scope["c_out_and_kernel"]):
        a, b = (rng.normal(size=(*scope["input"], c)) for _ in range(2))
        cases.append((a, b, rng.normal(size=(k_, k_, c, co))))
        conv = functools.partial(nnx.Conv, out_features=co, kernel_size=(k_, k_), use_bias=False)
        after_add = module_params(lambda m=conv, c_=c: m(c_, rngs=_rngs()))
        after_concat = module_params(lambda m=conv, c_=c: m(2 * c_, rngs=_rngs()))
        weights.append(after_concat / after_add)
        macs.append(conv_macs(k_, k_, 2 * c, co, 8, 8) / conv_macs(k_, k_, c, co, 8, 8))
        with_bias.append(conv_params(k_, k_, 2 * c, co) / conv_params(k_, k_, c, co))
    # The displayed identity, per output channel at one pixel of a 1x1 conv: sum_c k_c (a_c + b_c).
    eq = add_is_concat_with_shared_kernel()
    n = 4
    a_, b_, k_s = sp.IndexedBase("a"), sp.IndexedBase("b"), sp.IndexedBase("k")
    va, vb, vk = (rng.normal(size=n) for _ in range(3))

    def both_sides(configs, pixel, kernel):  # every configuration and the displayed pixel, in one program
        sides = [(conv2d(u + v, w_, padding=w_.shape[0] // 2),
                  conv2d(jnp.concatenate([u, v], -1), jnp.concatenate([w_, w_], 2), padding=w_.shape[0] // 2))
                 for u, v, w_ in configs]
        return sides, conv2d(pixel, kernel)[0, 0, 0, 0]

    sides, conv_side = run_once(both_sides, cases, (va + vb).reshape(1, 1, 1, n), vk.reshape(1, 1, n, 1))
    sides = [(np.asarray(add), np.asarray(cat)) for add, cat in sides]
    comparisons = [compare(lambda u, v, s_=add: s_, lambda u, v, s_=cat: s_, [a, b], rtol=rtol)
                   for (a, b, _), (add, cat) in zip(cases, sides, strict=True)]
    point = {**{a_[i + 1]: va[i] for i in range(n)}, **{b_[i + 1]: vb[i] for i in range(n)},
             **{k_s[i + 1]: vk[i] for i in range(n)}}
    subs = {C: n}
    lhs = float(instantiate(eq.lhs, subs).subs(point))
    rhs = float(instantiate(eq, subs).subs(point))
    conv_side = float(conv_side)
    displayed = compare(lambda: np.array([lhs, rhs]), lambda: np.array([conv_side, conv_side]), [], rtol=rtol)
    return evidence(
        "measurement",
        compared(f"conv(a + b, K) = conv(concat(a, b), [K; K]) over {len(comparisons)} widths and kernels",
                 max(comparisons, key=lambda c_: c_.max_rel_err)),
        core("every configuration agrees", all(c_.ok for c_ in comparisons)),
        compared("the displayed sum, both sides, = the 1x1 conv of a + b at a pixel", displayed),
        core("after concat the next conv has exactly 2x the weights and 2x the MACs, in every configuration",
             set(weights) == {2.0} and set(macs) == {2.0}),
        details={"params_ratio_with_bias": with_bias, "min_with_bias": min(with_bias)},
    )


@claim(
    "architectures/fc-on-7x7x512-is-a-7x7-conv-that-slides",
    sources=["S001-36", "S002-26"],
    says="Can FC be converted to a convolutional layer? If the input of the FC layer is 7*7*512, set the filter "
    "size to 7. Passing a larger image through the converted convnet is more efficient: it gives a map of class "
    "scores across spatial positions, computationally more efficient than iterating a single convnet over the "
    "positions.",
    expected="holds",
    scope={"window": (7, 7, 512), "classes": 10, "larger_image": 9, "score_map": 3, "layer_below": "3x3 conv 16 -> 512",
           "dtype": "float64"},
)
def _fc_as_conv(scope, rtol) -> Evidence:
    head = nnx.merge(*drawn_state(abstract_module(built(blocks.FCAsConv, *scope["window"], scope["classes"],
                                                          dtype=jnp.float64)), 7))
    rng = np.random.default_rng(7)
    side, scores = scope["larger_image"], scope["score_map"]
    x7, x9 = (rng.normal(size=(1, s, s, scope["window"][2])) for s in (7, side))

    def windows(v):
        return jnp.stack([jnp.stack([head.dense(v[:, i : i + 7, j : j + 7].reshape(1, -1))[0] for j in range(scores)])
                          for i in range(scores)])[None]  # fmt: skip

    def programs(u, v):  # the conv head and the dense layer, on the 7x7 map and on the larger one
        return head(u)[:, 0, 0], head.dense(u.reshape(1, -1)), head(v), windows(v)

    conv7, dense7, conv9, windows9 = (np.asarray(a) for a in run_once(programs, x7, x9))
    same = compare(lambda: conv7, lambda: dense7, [], rtol=rtol)
    slide = compare(lambda: conv9, lambda: windows9, [], rtol=rtol)
    head_once, head_windows = score_map_flops(head, None, scores=scores)
    net_once, net_windows = score_map_flops(head, 3, scores=scores)
    return evidence(
        "measurement",
        compared("7x7x512 -> 10: the dense layer = a 7x7 VALID conv", same),
        compared(f"on {side}x{side}x512 the conv's {scores}x{scores} score map = the dense layer on each window",
                 slide),
        core("the head alone does the same products either way (XLA flops)", head_once == head_windows,
             flops=head_once),
        core("with a 3x3 conv below the head, the converted net run once costs fewer flops than the net run on "
             "each window", net_once < net_windows, saving=net_windows / net_once),
    )


@claim(
    "architectures/separable-costs-one-over-cout-plus-one-over-k-squared",
    sources=["S000-17", "S002-14"],
    says="Depthwise separable convolution: the computation Kh x Kw x Cin x Cout x H x W becomes Kh x Kw x Cin x "
    "H x W + 1 x 1 x Cin x Cout x H x W.",
    expected="holds",
    scope={"c_in": [8, 32], "c_out": [16, 64], "kernels": [3, 5], "size": 8},
)
def _separable(scope, rtol) -> Evidence:
    eq = separable_ratio()
    proof = prove_identity(eq.lhs, 1 / C_out + 1 / K**2, [C_out, K, C_in, H, W],
                           sampler=lambda rng, n: rng.integers(1, 512, n).astype(float))
    size, rows = scope["size"], []
    for ci, co, k_ in itertools.product(scope["c_in"], scope["c_out"], scope["kernels"]):
        x = jax.ShapeDtypeStruct((1, size, size, ci), jnp.float32)
        shape = lambda *dims: jax.ShapeDtypeStruct(dims, jnp.float32)  # noqa: E731
        sep = contraction_flops(blocks.depthwise_conv2d_grouped, x, shape(k_, k_, ci)) + \
            contraction_flops(conv2d, x, shape(1, 1, ci, co))
        std = contraction_flops(functools.partial(conv2d, padding=k_ // 2), x, shape(k_, k_, ci, co))
        sep_tap = contraction_flops(functools.partial(im2col_conv, groups=ci), x, shape(k_, k_, 1, ci)) + \
            contraction_flops(im2col_conv, x, shape(1, 1, ci, co))
        std_tap = contraction_flops(im2col_conv, x, shape(k_, k_, ci, co))
        taps = taps_in_bounds(size, k_, 1, k_ // 2) ** 2
        rows.append({"c_in": ci, "c_out": co, "k": k_, "formula": value(eq, {C_out: co, K: k_}),
                     "every_tap": sep_tap / std_tap, "xla": sep / std,
                     "xla_is_in_bounds": sep == 2 * (taps * ci + size**2 * ci * co) and std == 2 * taps * ci * co})
    return evidence(
        "symbolic",
        proved("SymPy: separable / standard = 1/C_out + 1/K^2", proof),
        core(f"every tap counted (im2col + GEMM, XLA's flops): the ratio = 1/C_out + 1/K^2 in all {len(rows)} "
             "configurations", all(abs(r_["every_tap"] - r_["formula"]) <= rtol * r_["formula"] for r_ in rows)),
        core("XLA's cost analysis of its own convolutions = 2 x their in-bounds MACs in every configuration "
             "(so its ratio is higher on small maps: the KxK conv loses padding taps, the 1x1 none)",
             all(r_["xla_is_in_bounds"] for r_ in rows)),
        details={"rows": rows},
    )


@claim(
    "architectures/alexnet-crops-and-flips-give-2048-times-the-data",
    sources=["S001-08"],
    says="Data augmentation: random 224 x 224 crops of the 256 x 256 original images (and their horizontal "
    "mirror images) amount to (256-224)^2 * 2 = 2048 times more data.",
    expected="qualified",
    correction="A 224-pixel window fits at 256 - 224 + 1 = 33 offsets per axis: 33^2 x 2 = 2178 distinct "
    "crops (the paper's 2048 drops the + 1); neighbouring crops share most pixels, so they are far from 2178 "
    "independent images.",
    scope={"image": 256, "crop": 224, "flips": True, "about": 0.1},
    rtol=0.1,
    tolerance="'2048 times' read as the order of the count: within 10%",
)
def _alexnet_crops(scope, rtol) -> Evidence:
    offsets, count = distinct_crops(scope["image"], scope["crop"], flips=scope["flips"])
    formula = (scope["image"] - scope["crop"]) ** 2 * 2
    return evidence(
        "measurement",
        core(f"the distinct crops and mirror images are about (256 - 224)^2 x 2 (within {rtol:g})",
             abs(count - formula) <= rtol * formula, distinct=count, offsets_per_axis=offsets),
        scoped("(256 - 224)^2 x 2 is their number", count == formula, formula=formula),
    )


@claim(
    "architectures/conv-has-far-fewer-parameters-than-dense-on-an-image",
    sources=["S002-52", "S004-10"],
    says="DNN inputs are vectors and ignore the planar structure; a CNN's input can be a tensor, and filters "
    "extract local features, keeping the planar structure (S002-52). Conv layers over FC: spatial structure "
    "kept, translation invariance, weight sharing, local connection (S004-10).",
    expected="qualified",
    correction="Fewer weights, local connection and weight sharing hold. A conv layer is translation "
    "equivariant (a shifted input gives the shifted output, away from the border), not invariant: its output "
    "moves with the input; invariance comes, approximately, from pooling and the global head.",
    scope={"images": [(16, 16, 3), (32, 32, 3)], "c_out": 64, "kernel": 3, "far": 1000, "shift": 4,
           "dtype": "float64"},
)
def _conv_vs_dense(scope, rtol) -> Evidence:
    ratios, shifted, unmoved, modules, images = [], [], [], [], []
    s = scope["shift"]
    for h_, w_, c_ in scope["images"]:
        conv = block_params(built(nnx.Conv, c_, scope["c_out"], (3, 3)))
        ratios.append(conv_params(1, 1, h_ * w_ * c_, h_ * w_ * scope["c_out"]) / conv)
        images.append(np.random.default_rng(1).normal(size=(1, h_, w_, c_)))
        modules.append(nnx.merge(*drawn_state(abstract_module(built(nnx.Conv, c_, scope["c_out"], (3, 3),
                                                                    param_dtype=jnp.float64)), 1)))

    def outputs(xs):  # every image size in one program
        return [(m(jnp.roll(v, s, axis=2)), jnp.roll(m(v), s, axis=2), m(v)) for m, v in zip(modules, xs, strict=True)]

    for triple in run_once(outputs, images):
        of_shifted, shifted_out, unshifted = (np.asarray(a)[:, s:-s, 2 * s : -s] for a in triple)
        shifted.append(compare(lambda a=of_shifted: a, lambda b=shifted_out: b, [], rtol=rtol))
        unmoved.append(compare(lambda a=of_shifted: a, lambda b=unshifted: b, [], rtol=rtol))
    return evidence(
        "measurement",
        core(f"a dense layer image -> image has over {scope['far']} times the 3x3 conv's parameters (nnx.state), "
             "on every image size", min(ratios) > scope["far"], smallest_ratio=min(ratios)),
        compared("away from the border, a shifted input gives the shifted output (weight sharing: equivariance)",
                 max(shifted, key=lambda c: c.max_rel_err)),
        compared("translation invariance, as S004-10 words it: a shifted input leaves the conv layer's output "
                 "unchanged", max(unmoved, key=lambda c: c.max_rel_err), role="scope"),
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "architectures"]))
