"""The claims of the conv_arithmetic chapter: output sizes against XLA's shapes, transposed convolution as
the adjoint, parameters against ``nnx.state``, MACs against im2col and XLA's cost analysis, receptive fields
against the gradient support measured by autodiff. Every claim searches a grid of configurations (its scope)."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx
from jax import lax

from derivations.bridge import instantiate, mark_evaluated, prove_identity, value
from derivations.claims import Evidence, claim, compared, core, evidence, premise, proved, scoped
from derivations.compare import compare
from derivations.conv_arithmetic import (
    _branches_and_identities,
    _centre_supports,
    _random,
    _rf,
    a,
    adjoint_gap,
    conv_macs_in_bounds,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    d,
    equivariance_error,
    evaluate_exact,
    evaluate_integer,
    flax_output_size,
    flop_table,
    k,
    measured_receptive_fields,
    n,
    output_size,
    p,
    receptive_field,
    receptive_field_recursion,
    s,
    same_padding_keeps_the_size,
    taps_in_bounds_formula,
    transpose_output_size,
)
from derivations.harness import module_params, xla_flops
from models.conv import (
    DIMENSIONS,
    bilinear_upsample_2x,
    circular_conv2d,
    conv2d,
    conv2d_transpose,
    conv2d_transpose_by_zero_insertion,
)


def _size_grid(scope) -> list[tuple[int, int, int, int, int]]:
    """Every (n, k, s, p, d) of the scope's lists whose dilated kernel fits the padded input."""
    return [
        c
        for c in itertools.product(scope["n"], scope["kernel"], scope["stride"], scope["padding"], scope["dilation"])
        if c[4] * (c[1] - 1) + 1 <= c[0] + 2 * c[3]
    ]


SIZES = {"n": [5, 6, 7, 13, 32], "kernel": [1, 2, 3, 5], "stride": [1, 2, 3], "padding": [0, 1, 2], "dilation": [1, 2]}


# --- sizes ----------------------------------------------------------------------------------------------


@claim(
    "conv_arithmetic/output-size-is-floor-of-padded-span-over-stride-plus-one",
    sources=["S000-15", "S001-06"],
    says="W2 = (W1 - F + 2P)/S + 1 (and the same for H).",
    expected="qualified",
    correction="W2 = floor((W1 + 2P - D(F - 1) - 1)/S) + 1: the division needs a floor whenever S does not "
    "divide W1 + 2P - F (the last partial window is dropped), and a dilated kernel spans D(F - 1) + 1.",
    scope={**SIZES, "compared_with": "jax.eval_shape of lax.conv_general_dilated"},
)
def _output_size(scope) -> Evidence:
    grid = _size_grid(scope)
    xla = {c: flax_output_size(*c) for c in grid}
    floor_wrong = [c for c in grid if conv_output_size(*c) != xla[c]]
    notes_eq = output_size()[1]
    notes = {c: evaluate_exact(notes_eq.rhs, {n: c[0], k: c[1], s: c[2], p: c[3]}) for c in grid}
    undilated = [c for c in grid if c[4] == 1]
    whole = [c for c in undilated if float(notes[c]).is_integer()]
    notes_wrong = [c for c in undilated if notes[c] != xla[c]]
    dilated_wrong = [c for c in grid if c[4] > 1 and notes[c] != xla[c]]
    example = next((c for c in notes_wrong if not float(notes[c]).is_integer()), None)
    return evidence(
        "measurement",
        core(
            "floor((n + 2p - d(k-1) - 1)/s) + 1 equals XLA's output size in every configuration",
            not floor_wrong,
            configurations=len(grid),
            mismatches=len(floor_wrong),
        ),
        core(
            "the notes' (W1 - F + 2P)/S + 1 equals XLA's size wherever it is a whole number (S divides W1 - F + 2P)",
            all(notes[c] == xla[c] for c in whole),
            configurations=len(whole),
        ),
        scoped(
            "the notes' formula also holds where S does not divide W1 - F + 2P (no floor written)",
            not notes_wrong,
            wrong=len(notes_wrong),
            of=len(undilated),
            example=str(example[:4]) if example else "none",
        ),
        scoped("the notes' formula also holds for a dilated kernel", not dilated_wrong, wrong=len(dilated_wrong)),
        details={
            "notes_mismatches": [[list(c), float(notes[c]), xla[c]] for c in notes_wrong],
            "floor_mismatches": [list(c) for c in floor_wrong],
        },
    )


def uses_keys(uses: dict) -> list[tuple[int, int, int]]:
    """The (n, k, s) cases of a table keyed by ((n, k, s), padding)."""
    return sorted({key[0] for key in uses})


@claim(
    "conv_arithmetic/same-padding-keeps-the-size",
    sources=["S001-31"],
    says="Zero padding is used to not lose the pixels (information) in the boundary and to make the output "
    "feature map of fixed dimension.",
    expected="qualified",
    correction="Padding d(k-1) in total keeps the size only at stride 1, and an even effective kernel needs "
    "unequal padding (XLA's SAME puts the extra zero after); at stride s, 'same' padding gives ceil(n/s). The "
    "boundary half holds: without padding a corner pixel enters one output where a central one enters k^2, and at "
    "stride > 1 the floor drops whole boundary rows and columns; 'same' padding keeps them, though no padding "
    "helps a kernel smaller than its stride, whose windows skip pixels in between.",
    scope={"n": [7, 8, 13], "kernel": [2, 3, 5], "stride": [1, 2, 3], "dilation": [1, 2], "padding": "XLA SAME",
           "boundary_cases_n_k_s": [[8, 3, 1], [8, 3, 2], [9, 2, 2], [9, 2, 3]]},
)
def _same_padding(scope) -> Evidence:
    uses = {}  # how many outputs each input pixel enters: the gradient of the outputs' sum, all-ones kernel
    for n_, k_, s_ in scope["boundary_cases_n_k_s"]:
        for pad in ("VALID", "SAME"):
            count = jax.grad(lambda v, k_=k_, s_=s_, pad=pad: jnp.sum(conv2d(v, jnp.ones((k_, k_, 1, 1)), stride=s_,
                                                                              padding=pad)))  # fmt: skip
            grid = np.asarray(count(jnp.zeros((1, n_, n_, 1))))[0, :, :, 0]
            uses[(n_, k_, s_), pad] = {"unused": int(np.sum(grid == 0)), "corner": int(grid[0, 0]),
                                     "most": int(grid.max())}  # fmt: skip
    rows = [
        (n_, k_, s_, d_, flax_output_size(n_, k_, s_, "SAME", d_))
        for n_, k_, s_, d_ in itertools.product(scope["n"], scope["kernel"], scope["stride"], scope["dilation"])
    ]
    same = instantiate(same_padding_keeps_the_size())
    proof = prove_identity(same, n, [n])
    odd = [
        (n_, k_, d_)
        for n_, k_, d_ in itertools.product(scope["n"], scope["kernel"], scope["dilation"])
        if d_ * (k_ - 1) % 2 == 0
    ]
    symmetric = all(conv_output_size(n_, k_, 1, d_ * (k_ - 1) // 2, d_) == n_ for n_, k_, d_ in odd)
    strided = [(n_, s_, got) for n_, _, s_, _, got in rows if s_ > 1]
    # The padding XLA picks for SAME with an even effective kernel (total d(k-1) odd): (before, after).
    even = sorted({k_ for k_ in scope["kernel"] if (k_ - 1) % 2})
    even_pads = {k_: lax.padtype_to_pads((max(scope["n"]),), (k_,), (1,), "SAME")[0] for k_ in even}
    return evidence(
        "measurement",
        proved("SymPy: at stride 1, padding d(k-1)/2 on each side gives n_out = n", proof),
        core(
            "XLA 'SAME' at stride 1 keeps the size in every configuration",
            all(got == n_ for n_, _, s_, _, got in rows if s_ == 1),
            configurations=len(rows) // len(scope["stride"]),
        ),
        core(
            "symmetric padding d(k-1)/2 keeps the size for every odd effective kernel",
            symmetric,
            configurations=len(odd),
        ),
        scoped(
            "'same' padding keeps the size at stride > 1 too",
            all(got == n_ for n_, _, got in strided),
            kept=sum(got == n_ for n_, _, got in strided),
            of=len(strided),
        ),
        core("at stride s XLA's 'SAME' gives ceil(n/s)", all(got == -(-n_ // s_) for n_, _, s_, _, got in rows)),
        core("boundary pixels: without padding, at stride > 1 the floor drops whole boundary rows and columns (input "
             "pixels that reach no output); where the kernel is at least the stride, 'same' padding drops none",
             all(uses[c, "VALID"]["unused"] > 0 and uses[c, "SAME"]["unused"] == 0
                 for c in uses_keys(uses) if c[2] > 1 and c[1] >= c[2]),
             **{f"unused_valid_{'x'.join(map(str, c))}": uses[c, "VALID"]["unused"] for c in uses_keys(uses)}),
        scoped("'same' padding keeps every pixel in use in every case (a kernel smaller than its stride skips pixels "
               "between windows, whatever the padding)",
               all(uses[c, "SAME"]["unused"] == 0 for c in uses_keys(uses)),
               **{f"unused_same_{'x'.join(map(str, c))}": uses[c, "SAME"]["unused"] for c in uses_keys(uses)}),
        core("at stride 1 no pixel is dropped even without padding, but a corner pixel enters one output where a "
             "central one enters k^2; 'same' padding lets it enter more",
             all(uses[c, "VALID"]["unused"] == 0 and uses[c, "VALID"]["corner"] == 1
                 and uses[c, "VALID"]["most"] == c[1] ** 2 and uses[c, "SAME"]["corner"] > 1
                 for c in uses_keys(uses) if c[2] == 1),
             **{f"corner_uses_{pad.lower()}": uses[c, pad]["corner"] for c in uses_keys(uses) if c[2] == 1
                for pad in ("VALID", "SAME")}),
        scoped(
            "an even effective kernel keeps the size with equal padding on both sides",
            all(before == after for before, after in even_pads.values()),
            pads=str({k_: v for k_, v in even_pads.items()}),
        ),
        details={"rows_n_k_s_d_xla": rows, "same_pads_even_kernel": {str(k_): v for k_, v in even_pads.items()}},
    )


@claim(
    "conv_arithmetic/transposed-conv-output-size-inverts-the-conv",
    sources=["S001-03", "S002-09"],
    says="Transposed convolution (deconvolution), by padding the input feature map with zeros at intervals and "
    "then running a standard convolution, can make the output feature map larger than the input (S002-09: "
    "可以使得输出feature map的尺寸比输入更大); it does the opposite computation of convolution (S001-03).",
    expected="holds",
    scope={**SIZES, "n": [6, 7], "output_padding": "the rows the conv's floor dropped"},
)
def _transpose_size(scope) -> Evidence:
    rows = []
    named, back_eq = transpose_output_size()
    for n_, k_, s_, p_, d_ in _size_grid(scope):
        out = conv_output_size(n_, k_, s_, p_, d_)
        extra = (n_ + 2 * p_ - d_ * (k_ - 1) - 1) % s_  # the rows the floor dropped: output_padding a
        predicted = conv_transpose_output_size(out, k_, s_, p_, extra, d_)
        y = jax.ShapeDtypeStruct((1, out, out, 1), jnp.float64)
        conv_t = functools.partial(conv2d_transpose, stride=s_, padding=p_, dilation=d_)
        xla_shape = jax.eval_shape(
            lambda q, conv_t=conv_t, k_=k_, n_=n_: conv_t(q, jnp.ones((k_, k_, 1, 1)), n_), y
        ).shape[1]
        subs = {n: out, k: k_, s: s_, p: p_, d: d_}
        back = [evaluate_integer(back_eq.lhs, {**subs, a: aa}) for aa in range(s_)]
        rows.append((n_, k_, s_, p_, d_, out, predicted, xla_shape, back, evaluate_integer(back_eq.rhs, subs)))
    mark_evaluated([back_eq])  # both sides of the displayed identity were evaluated above
    return evidence(
        "measurement",
        core(
            "(n_out - 1)s - 2p + d(k-1) + a + 1, a = the rows the conv's floor dropped, equals the conv's input size "
            "and the shape of lax.conv_transpose",
            all(r[6] == r[0] == r[7] for r in rows),
            configurations=len(rows),
        ),
        core(
            "the conv maps the transposed conv's output size back to n_out for every output_padding 0 <= a < s "
            "(the displayed identity, both sides)",
            all(set(r[8]) == {r[5]} and r[9] == r[5] for r in rows),
            configurations=len(rows),
        ),
        core(
            "it can make the output larger than its input: at stride 2 and more every configuration of the grid does",
            all(r[6] > r[5] for r in rows if r[2] > 1),
            configurations=sum(r[2] > 1 for r in rows),
        ),
        # "can": not always (at stride 1 with 'same' padding or more the output is not larger); counted, not a
        # finding, since the note does not say "always".
        details={"rows": [list(map(str, r)) for r in rows], "formula": str(named.rhs),
                 "configurations_not_larger": sum(r[6] <= r[5] for r in rows)},
    )


TRANSPOSE_CASES = [(9, 3, 2, 1, 1), (10, 3, 2, 1, 2), (8, 4, 2, 1, 1), (11, 5, 3, 2, 1), (7, 3, 1, 0, 2)]


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _transpose_and_vjp(x, kern, y, n_, s_, p_, d_):
    """lax.conv_transpose of ``y`` and jax.vjp of the conv at ``x`` applied to ``y``, in one program."""
    _, pullback = jax.vjp(lambda u: conv2d(u, kern, stride=s_, padding=p_, dilation=d_), x)
    return conv2d_transpose(y, kern, n_, stride=s_, padding=p_, dilation=d_), pullback(y)[0]


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _transpose_two_ways(y, kern, n_, s_, p_, d_):
    """The transposed conv by zero insertion then a conv, and as lax.conv_transpose, in one program."""
    options = dict(kernel=kern, n=n_, stride=s_, padding=p_, dilation=d_)
    return conv2d_transpose_by_zero_insertion(y, **options), conv2d_transpose(y, **options)


@claim(
    "conv_arithmetic/transposed-conv-is-the-adjoint-and-the-vjp-of-conv",
    sources=["S001-03"],
    says="Transposed convolution does the opposite computation of convolution in the forward and backward passes.",
    expected="holds",
    scope={"cases_n_k_s_p_d": TRANSPOSE_CASES, "channels": [3, 2]},
)
def _adjoint(scope, rtol) -> Evidence:
    cases = [tuple(c) for c in scope["cases_n_k_s_p_d"]]
    pairs = np.asarray([adjoint_gap(*c, seed=i) for i, c in enumerate(cases)])
    # the pairs go in as a device array (no staging program); the columns are taken in NumPy
    inner = compare(lambda q: np.asarray(q)[:, 1], lambda q: np.asarray(q)[:, 0], [jax.device_put(pairs)], rtol=rtol)
    vjp_errs = []
    for i, (n_, k_, s_, p_, d_) in enumerate(cases):
        x, kern = _random((1, n_, n_, 3), i), _random((k_, k_, 3, 2), i + 1)
        out = jax.eval_shape(functools.partial(conv2d, stride=s_, padding=p_, dilation=d_), x, kern)
        y = _random(out.shape, i + 2)
        transposed, pulled_back = (np.asarray(v) for v in _transpose_and_vjp(x, kern, y, n_, s_, p_, d_))
        vjp_errs.append(compare(lambda q, v=transposed: v, lambda q, v=pulled_back: v, [y], rtol=rtol))
    worst = max(vjp_errs, key=lambda c: c.max_rel_err)
    return evidence(
        "autodiff",
        compared(f"<conv x, y> = <x, conv^T y> in {len(cases)} configurations (stride 1-3, dilation 1-2)", inner),
        compared(
            "lax.conv_transpose = jax.vjp of the conv, in every configuration",
            worst,
            all_ok=all(c.ok for c in vjp_errs),
        )
        if all(c.ok for c in vjp_errs)
        else core("lax.conv_transpose = jax.vjp of the conv, in every configuration", False),
        details={"inner_products": pairs.tolist()},
    )


@claim(
    "conv_arithmetic/transposed-conv-is-zero-insertion-then-conv",
    sources=["S002-09"],
    says="Transposed convolution pads the input feature map with zeros at intervals and then runs a standard "
    "convolution, which can make the output feature map larger than the input (通过对输入feature map间隔填充0，再进行"
    "标准的卷积计算，可以使得输出feature map的尺寸比输入更大).",
    expected="holds",
    scope={"cases_n_k_s_p_d": TRANSPOSE_CASES, "channels": [3, 2]},
)
def _zero_insertion(scope, rtol) -> Evidence:
    results = []
    for i, (n_, k_, s_, p_, d_) in enumerate(tuple(c) for c in scope["cases_n_k_s_p_d"]):
        kern = _random((k_, k_, 3, 2), i + 1)
        out = conv_output_size(n_, k_, s_, p_, d_)
        y = _random((1, out, out, 2), i + 2)
        by_hand, library = (np.asarray(v) for v in _transpose_two_ways(y, kern, n_, s_, p_, d_))
        results.append(compare(lambda q, v=by_hand: v, lambda q, v=library: v, [y], rtol=rtol))
    failing = [c for c in results if not c.ok]
    worst = max(results, key=lambda c: c.max_rel_err)
    return evidence(
        "measurement",
        compared(
            f"zeros inserted (s - 1 between pixels), padded by d(k-1) - p, then a stride-1 conv with the flipped "
            f"kernel = lax.conv_transpose in all {len(results)} configurations",
            worst,
            failing=len(failing),
        )
        if not failing
        else core("zero insertion then conv = lax.conv_transpose in every configuration", False, failing=len(failing)),
    )


@claim(
    "conv_arithmetic/bilinear-upsampling-is-a-fixed-transposed-conv",
    sources=["S002-09"],
    says="Upsampling: a. interpolation, usually bilinear; b. transposed convolution (deconvolution); (and max "
    "unpooling).",
    expected="holds",
    scope={"input_shapes": [[1, 6, 7, 1], [1, 5, 5, 1]], "factor": 2, "compared_with": "jax.image.resize bilinear"},
)
def _bilinear(scope, rtol) -> Evidence:
    found = []
    for i, shape in enumerate(scope["input_shapes"]):
        x = _random(tuple(shape), 5 + i)
        target = (shape[0], shape[1] * scope["factor"], shape[2] * scope["factor"], shape[3])
        both = jax.jit(lambda v, target=target: (bilinear_upsample_2x(v), jax.image.resize(v, target, "bilinear")))
        ours, resized = (np.asarray(v) for v in both(x))
        found.append(compare(lambda v, o=ours: o, lambda v, r=resized: r, [x], rtol=rtol))
    worst = max(found, key=lambda c: c.max_abs_err)
    return evidence(
        "measurement",
        compared(
            "bilinear 2x upsampling (jax.image.resize) = edge-pad 1, a stride-2 transposed conv with the fixed "
            "4x4 kernel outer((1,3,3,1)/4), crop 3, on every input shape",
            worst,
            shapes=len(found),
            all_ok=all(c.ok for c in found),
        )
        if all(c.ok for c in found)
        else core("bilinear upsampling = the fixed transposed conv on every input shape", False),
    )


# --- parameters and FLOPs -------------------------------------------------------------------------------


PARAM_CASES = [[3, 3, 3, 64], [3, 3, 64, 64], [1, 1, 256, 64], [5, 3, 32, 48], [7, 7, 3, 96]]


@claim(
    "conv_arithmetic/conv-params-are-kh-kw-cin-cout-plus-bias",
    sources=["S002-11", "S001-06"],
    says="The parameter count is the number of learnable variables: the kernels' weights, BN's scale gamma and "
    "shift beta, and, in some layers without BN, a bias. Computed as Kh x Kw x Cin x Cout (conv) and Cin x Cout "
    "(fully connected).",
    expected="holds",
    scope={
        "conv_kh_kw_cin_cout": PARAM_CASES,
        "dense_cin_cout": [[512, 10], [4096, 1000]],
        "batchnorm_channels": [64, 256],
        "grouped_kh_kw_cin_cout_g": [[5, 3, 32, 48, 4], [3, 3, 32, 32, 32]],
        "counted_by": "nnx.state(module, nnx.Param)",
    },
)
def _params(scope) -> Evidence:
    conv = {
        tuple(c): (
            module_params(lambda c=c: nnx.Conv(c[2], c[3], (c[0], c[1]), use_bias=False, rngs=nnx.Rngs(0))),
            module_params(lambda c=c: nnx.Conv(c[2], c[3], (c[0], c[1]), rngs=nnx.Rngs(0))),
        )
        for c in scope["conv_kh_kw_cin_cout"]
    }
    dense = {
        tuple(c): (
            module_params(lambda c=c: nnx.Linear(c[0], c[1], use_bias=False, rngs=nnx.Rngs(0))),
            module_params(lambda c=c: nnx.Linear(c[0], c[1], rngs=nnx.Rngs(0))),
        )
        for c in scope["dense_cin_cout"]
    }
    bn = {ch: module_params(lambda ch=ch: nnx.BatchNorm(ch, rngs=nnx.Rngs(0))) for ch in scope["batchnorm_channels"]}
    grouped = {
        tuple(c): module_params(
            lambda c=c: nnx.Conv(c[2], c[3], (c[0], c[1]), feature_group_count=c[4], use_bias=False, rngs=nnx.Rngs(0))
        )
        for c in scope["grouped_kh_kw_cin_cout_g"]
    }
    return evidence(
        "measurement",
        core(
            "a conv's weights are Kh Kw Cin Cout (nnx.Conv without bias)",
            all(w == c[0] * c[1] * c[2] * c[3] for c, (w, _) in conv.items()),
            modules=len(conv),
        ),
        core(
            "the bias the note lists adds one per output channel (nnx.Conv with bias)",
            all(b - w == c[3] for c, (w, b) in conv.items()),
        ),
        core(
            "a fully connected layer's weights are Cin Cout, its bias Cout",
            all(w == c[0] * c[1] and b - w == c[1] for c, (w, b) in dense.items()),
            modules=len(dense),
        ),
        core(
            "BN's learnable gamma and beta are 2 per channel (the running statistics are not parameters)",
            all(v == 2 * ch for ch, v in bn.items()),
            modules=len(bn),
        ),
        core(
            "the workbook's conv_params (Kh Kw (Cin/G) Cout + Cout) equals nnx.state, bias and groups included",
            all(conv_params(*c) == b for c, (_, b) in conv.items())
            and all(conv_params(*c[:4], groups=c[4], bias=False) == v for c, v in grouped.items())
            and all(conv_params(1, 1, *c) == b for c, (_, b) in dense.items()),
        ),
        details={
            "conv": {str(c): {"weights": w, "with_bias": b} for c, (w, b) in conv.items()},
            "dense": {str(c): {"weights": w, "with_bias": b} for c, (w, b) in dense.items()},
            "batchnorm": bn,
            "grouped_weights_not_kh_kw_cin_cout": {str(c): v for c, v in grouped.items()},
        },
    )


# (label, n, kernel, C_in, C_out, stride, padding, dilation, groups)
FLOP_CASES = [
    ["same 3x3 on 64x64", 64, 3, 16, 16, 1, 1, 1, 1],
    ["valid 3x3 on 64x64", 64, 3, 16, 16, 1, 0, 1, 1],
    ["same 5x5 on 32x32", 32, 5, 8, 8, 1, 2, 1, 1],
    ["3x3 stride 2, pad 1, on 32x32", 32, 3, 8, 16, 2, 1, 1, 1],
    ["3x3 dilation 2, pad 2, on 32x32", 32, 3, 8, 8, 1, 2, 2, 1],
    ["same 3x3 grouped G=4 on 32x32", 32, 3, 16, 32, 1, 1, 1, 4],
    ["11x11 stride 4 on 227x227 (AlexNet conv1)", 227, 11, 3, 8, 4, 0, 1, 1],
]


def _im2col(x, kernel, stride, padding, dilation):
    """The convolution as im2col: the patches (what a GEMM-based conv materialises, padding zeros included)
    and their product with the reshaped kernel; the GEMM's multiply-accumulates are rows x columns x C_out."""
    patches = lax.conv_general_dilated_patches(
        x,
        (kernel.shape[0], kernel.shape[1]),
        (stride, stride),
        [(padding, padding)] * 2,
        rhs_dilation=(dilation, dilation),
        dimension_numbers=DIMENSIONS,
    )
    # conv_general_dilated_patches orders each patch's features channel-major: (C_in, k_h, k_w).
    weights = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(-1, kernel.shape[3])
    return patches, patches @ weights


@claim(
    "conv_arithmetic/flops-formula-counts-macs-including-padding",
    sources=["S001-38", "S002-12", "S002-45", "S004-14"],
    says="The forward pass is essentially multiply-accumulates, so FLOPs means the number of multiply-adds; "
    "computed as Kh x Kw x Cin x Cout x H x W = params x H x W (conv) (S002-12); 'No. of FLOPS: input depth x "
    "output depth x o/p feature map width x o/p feature map height x kernel width x kernel height' (S001-38); for "
    "a fully connected layer Cin x Cout (FC全连接网络, S002-12).",
    expected="qualified",
    correction="The product is the multiply-accumulate (MAC) count in the published convention (torchvision, "
    "fvcore, the papers): every tap, padding taps included, which is what an im2col/GEMM conv executes; a grouped "
    "conv divides it by G. In floating-point operations it is 2 per MAC. XLA's cost analysis uses the other "
    "convention: 2 FLOPs per MAC, taps that fall on zero padding skipped: 2 (Cin/G) Cout T_h T_w with T the taps "
    "in bounds per axis (3n - 2 for a 'same' 3x3 conv).",
    scope={
        "cases_label_n_k_cin_cout_s_p_d_g": FLOP_CASES,
        "gemm_checked_numerically": [3, 4],
        "conventions": ["every tap (im2col/GEMM, torchvision/fvcore)", "taps in bounds (XLA cost_analysis)"],
        "fc_cin_cout": [[4096, 1000], [512, 10], [3, 7]],
    },
)
def _flops(scope, rtol) -> Evidence:
    # A fully connected layer's product x W (one example): XLA's flops against 2 Cin Cout.
    fc = {f"{ci}x{co}": xla_flops(jnp.matmul, jax.ShapeDtypeStruct((1, ci), jnp.float64),
                                  jax.ShapeDtypeStruct((ci, co), jnp.float64)) / (ci * co)
          for ci, co in scope["fc_cin_cout"]}  # fmt: skip
    cases = [tuple(c) for c in scope["cases_label_n_k_cin_cout_s_p_d_g"]]
    rows = flop_table(cases)
    gemm = []
    for _label, n_, k_, ci, co, s_, p_, d_, groups in cases:
        x = jax.ShapeDtypeStruct((1, n_, n_, ci), jnp.float64)
        kern = jax.ShapeDtypeStruct((k_, k_, ci, co), jnp.float64)
        patches = jax.eval_shape(lambda v, q, s_=s_, p_=p_, d_=d_: _im2col(v, q, s_, p_, d_)[0], x, kern).shape
        gemm.append(patches[1] * patches[2] * (patches[3] // groups) * co)  # per group: Cin/G of the columns
    numeric = []
    for i in scope["gemm_checked_numerically"]:
        _label, n_, k_, ci, co, s_, p_, d_, _ = cases[i]
        x, kern = _random((1, n_, n_, ci), 20 + i), _random((k_, k_, ci, co), 30 + i)
        both = jax.jit(
            lambda x, kern, s_=s_, p_=p_, d_=d_: (
                _im2col(x, kern, s_, p_, d_)[1], conv2d(x, kern, stride=s_, padding=p_, dilation=d_)
            )
        )
        gemm_out, conv_out = (np.asarray(v) for v in both(x, kern))
        # closures, not inputs: one image is one sample, and its worst "input" would be the image
        numeric.append(compare(lambda g=gemm_out: g, lambda c=conv_out: c, [], rtol=rtol))
    # FLOPs of the GEMM itself, from XLA's cost analysis of the matrix product (ungrouped cases checked above).
    checked = [cases[i][0] for i in scope["gemm_checked_numerically"]]
    gemm_flops = {}
    for i in scope["gemm_checked_numerically"]:
        _label, n_, k_, ci, co, s_, p_, d_, _ = cases[i]
        shape = jax.eval_shape(
            lambda v, q, s_=s_, p_=p_, d_=d_: _im2col(v, q, s_, p_, d_)[0],
            jax.ShapeDtypeStruct((1, n_, n_, ci), jnp.float64),
            jax.ShapeDtypeStruct((k_, k_, ci, co), jnp.float64),
        ).shape
        flops = xla_flops(
            jnp.matmul, jax.ShapeDtypeStruct(shape, jnp.float64), jax.ShapeDtypeStruct((shape[3], co), jnp.float64)
        )
        gemm_flops[cases[i][0]] = (rows[i]["notes_macs_over_g"], flops, rows[i]["xla_flops"], rows[i]["exact_macs"])
    grouped_product = [row["notes_macs_over_g"] for row in rows]
    # The displayed per-axis tap count, evaluated: T = sum_t tau(t), tau from the output-size formula.
    T, tau, same3 = taps_in_bounds_formula()
    per_tap = instantiate(tau, {sp.Symbol("n_{out}"): output_size()[0].rhs})
    mark_evaluated([T])  # the displayed sum, added up term by term below over its own bounds
    (index, first, last), = T.rhs.limits

    def taps(n_, k_, s_, p_, d_):
        bounds = range(evaluate_integer(first, {k: k_}), evaluate_integer(last, {k: k_}) + 1)
        return sum(evaluate_integer(per_tap, {n: n_, k: k_, s: s_, p: p_, d: d_, index: tap}) for tap in bounds)

    tap_rows = [taps(n_, k_, s_, p_, d_) for label, n_, k_, ci, co, s_, p_, d_, groups in cases]
    xla_in_bounds = all(
        row["xla_flops"] == 2 * tb * tb * (c[3] // c[8]) * c[4]
        for row, tb, c in zip(rows, tap_rows, cases, strict=True)
    )
    return evidence(
        "measurement",
        core(
            "the product Kh Kw Cin Cout H W (over G for a grouped conv) = the multiply-accumulates of the im2col GEMM "
            "(every tap, padding included) in every case",
            grouped_product == gemm,
            cases=len(cases),
        ),
        compared(
            "the im2col GEMM computes the convolution (so its MACs are what runs)",
            max(numeric, key=lambda c: c.max_rel_err),
        )
        if all(c.ok for c in numeric)
        else core("the im2col GEMM computes the convolution", False),
        core(
            "XLA's convention: cost_analysis flops = 2 x the MACs on taps in bounds, 2 (Cin/G) Cout T_h T_w with the "
            "displayed T, in every case",
            xla_in_bounds
            and all(
                row["exact_macs"] == tb * tb * (c[3] // c[8]) * c[4]
                for row, tb, c in zip(rows, tap_rows, cases, strict=True)
            ),
        ),
        core(
            "the 'same' 3x3 count T = 3n - 2 (displayed) matches the summed taps",
            value(same3, {n: cases[0][1]}) == tap_rows[0],
            T=tap_rows[0],
        ),
        core(
            f"fully connected: Cin x Cout is the layer's multiply-accumulates, XLA counting 2 FLOPs per MAC of x W "
            f"(Cin x Cout in {[tuple(c) for c in scope['fc_cin_cout']]})",
            all(v == 2.0 for v in fc.values()),
            **{f"xla_flops_over_cin_cout_{k}": v for k, v in fc.items()},
        ),
        premise(
            "XLA counts the im2col GEMM (every tap) at 2 FLOPs per multiply-accumulate",
            all(f == 2 * m for m, f, *_ in gemm_flops.values()),
        ),
        scoped(
            "the product is the number of floating-point operations (FLOPs of the im2col GEMM that computes the conv)",
            all(m == f for m, f, *_ in gemm_flops.values()),
            case=checked[0],
            product=gemm_flops[checked[0]][0],
            gemm_flops=gemm_flops[checked[0]][1],
            xla_conv_flops=gemm_flops[checked[0]][2],
            in_bounds_macs=gemm_flops[checked[0]][3],
        ),
        details={
            "rows": rows,
            "im2col_macs": gemm,
            "taps_in_bounds": tap_rows,
            "gemm_product_and_flops": {nm: list(v) for nm, v in gemm_flops.items()},
        },
    )


@claim(
    "conv_arithmetic/group-conv-divides-weights-and-macs-by-g",
    sources=["S002-45", "S004-14", "S000-10"],
    says="Group convolution is a technique that splits the convolution into groups; it effectively reduces the "
    "computation.",
    expected="holds",
    scope={"groups": [1, 2, 4, 8, 32], "c_in": 32, "c_out": 64, "kernel": 3, "size": 16},
)
def _groups(scope) -> Evidence:
    ci, co, kk, size = scope["c_in"], scope["c_out"], scope["kernel"], scope["size"]
    rows = []
    for groups in scope["groups"]:
        weights = module_params(
            lambda groups=groups: nnx.Conv(
                ci, co, (kk, kk), feature_group_count=groups, use_bias=False, rngs=nnx.Rngs(0)
            )
        )
        x = jax.ShapeDtypeStruct((1, size, size, ci), jnp.float64)  # lowering needs shapes only
        kern = jax.ShapeDtypeStruct((kk, kk, ci // groups, co), jnp.float64)
        rows.append((groups, weights, xla_flops(functools.partial(conv2d, padding=kk // 2, groups=groups), x, kern)))
    base_w, base_f = rows[0][1], rows[0][2]
    return evidence(
        "measurement",
        core(
            "nnx.Conv's weights are exactly 1/G of G = 1's",
            all(wt * g_ == base_w for g_, wt, _ in rows),
            largest_g=rows[-1][0],
            weights=rows[-1][1],
        ),
        core("XLA's flops are exactly 1/G of G = 1's", all(fl * g_ == base_f for g_, _, fl in rows), flops_g1=base_f),
        core(
            "conv_params(..., groups) = the module's weights",
            all(wt == conv_params(kk, kk, ci, co, g_, bias=False) for g_, wt, _ in rows),
        ),
        details={"rows_groups_weights_flops": rows},
    )


@claim(
    "conv_arithmetic/conv-needs-far-fewer-parameters-than-dense",
    sources=["S000-28", "S001-01", "S000-29"],
    says="The kernel is far smaller than the input, so each output neuron has connection weights only to a local "
    "region of the layer before; sparse interaction markedly reduces the number of parameters. Parameter sharing: "
    "we only need to learn one set of parameters, not optimise every parameter at every position (S001-01). CNN "
    "features: local connection + weight sharing + pooling (S000-28).",
    expected="holds",
    scope={"size": [12, 16], "c_in": 3, "c_out": 4, "kernel": 3, "padding": "same", "marked_factor": 10},
    tolerance="'markedly fewer' read as at least marked_factor (10) times fewer",
)
def _conv_vs_dense(scope) -> Evidence:
    ci, co, ks = scope["c_in"], scope["c_out"], scope["kernel"]
    kern = _random((ks, ks, ci, co), 7)
    rows = []
    for size in scope["size"]:
        jac = jax.jit(jax.jacobian(lambda v: conv2d(v, kern, padding=ks // 2)))(np.ones((1, size, size, ci)))
        matrix = np.asarray(jac).reshape(size * size * co, size * size * ci)  # the dense layer equal to the conv
        dense = module_params(
            lambda size=size: nnx.Linear(size * size * ci, size * size * co, use_bias=False, rngs=nnx.Rngs(0))
        )
        rows.append(
            {
                "size": size,
                "dense_weights": dense,
                "entries": matrix.size,
                "nonzero": int(np.count_nonzero(matrix)),
                "distinct": len(np.unique(matrix[matrix != 0])),
                "in_bounds": conv_macs_in_bounds(size, size, ks, ci, co, padding=ks // 2),
            }
        )
    conv_weights = conv_params(ks, ks, ci, co, bias=False)
    return evidence(
        "measurement",
        premise(
            "the dense layer equal to the conv (its Jacobian) has the dense layer's weight count of entries",
            all(r["entries"] == r["dense_weights"] for r in rows),
        ),
        core(
            "local connections: only the taps in bounds are non-zero, far fewer than the dense layer's weights "
            "(a locally connected layer, one weight per non-zero, already has markedly fewer)",
            all(r["nonzero"] == r["in_bounds"] and r["nonzero"] * scope["marked_factor"] <= r["entries"] for r in rows),
            nonzero=rows[-1]["nonzero"],
            entries=rows[-1]["entries"],
        ),
        core(
            "weight sharing: the non-zeros take exactly Kh Kw Cin Cout distinct values",
            all(r["distinct"] == conv_weights for r in rows),
            conv_weights=conv_weights,
        ),
        core(
            "sharing: the conv's weights are far fewer than the local layer's non-zeros, the gap growing with the map",
            all(conv_weights * scope["marked_factor"] <= r["nonzero"] for r in rows)
            and rows[-1]["nonzero"] / conv_weights > rows[0]["nonzero"] / conv_weights,
            dense_over_conv=rows[-1]["dense_weights"] / conv_weights,
        ),
        details={"rows": rows},
    )


@claim(
    "conv_arithmetic/conv-kinds-shapes-and-params",
    sources=["S000-10", "S002-13"],
    says="What are the common convolution operations? (S000-10) What are the classic convolution types? (S002-13: "
    "the note gives only a link.) The notes ask and list none; this claim tests a gloss: the usual answer "
    "(standard, dilated, strided, grouped, depthwise, depthwise separable, transposed) has the parameter counts and "
    "output sizes of the workbook's formulas.",
    expected="holds",
    scope={
        "input": [1, 32, 32, 16],
        "c_out": 32,
        "kinds": [
            "standard 3x3",
            "dilated 3x3 d=2",
            "grouped 3x3 G=4",
            "depthwise 3x3 G=16",
            "strided 3x3 s=2 VALID",
            "transposed 4x4 s=2",
            "depthwise separable 3x3 then 1x1",
        ],
    },
)
def _kinds(scope) -> Evidence:
    x = jnp.zeros(tuple(scope["input"]))
    ci, co, size = scope["input"][3], scope["c_out"], scope["input"][1]
    kinds = {
        "standard 3x3": (dict(kernel_size=(3, 3)), conv_params(3, 3, ci, co), size),
        "dilated 3x3 d=2": (dict(kernel_size=(3, 3), kernel_dilation=2), conv_params(3, 3, ci, co), size),
        "grouped 3x3 G=4": (dict(kernel_size=(3, 3), feature_group_count=4), conv_params(3, 3, ci, co, 4), size),
        "depthwise 3x3 G=16": (dict(kernel_size=(3, 3), feature_group_count=ci), conv_params(3, 3, ci, co, ci), size),
        "strided 3x3 s=2 VALID": (
            dict(kernel_size=(3, 3), strides=2, padding="VALID"),
            conv_params(3, 3, ci, co),
            conv_output_size(size, 3, 2),
        ),
    }
    rows = []
    for name, (kwargs, params, side) in kinds.items():
        make = lambda kwargs=kwargs: nnx.Conv(ci, co, rngs=nnx.Rngs(0), **kwargs)  # noqa: E731
        rows.append(
            (name, params, module_params(make), side, tuple(nnx.eval_shape(lambda make=make: make()(x)).shape[1:3]))
        )
    transposed = lambda: nnx.ConvTranspose(ci, co // 4, (4, 4), strides=2, padding="SAME", rngs=nnx.Rngs(0))  # noqa: E731
    # Flax's SAME for a 4x4/2 transposed conv pads like p = 1 in PyTorch's convention: output n s.
    rows.append(
        (
            "transposed 4x4 s=2",
            conv_params(4, 4, ci, co // 4),
            module_params(transposed),
            conv_transpose_output_size(size, 4, stride=2, padding=1),
            tuple(nnx.eval_shape(lambda: transposed()(x)).shape[1:3]),
        )
    )
    separable = lambda: nnx.Sequential(  # noqa: E731
        nnx.Conv(ci, ci, (3, 3), feature_group_count=ci, rngs=nnx.Rngs(0)), nnx.Conv(ci, co, (1, 1), rngs=nnx.Rngs(0))
    )
    rows.append(
        (
            "depthwise separable 3x3 then 1x1",
            conv_params(3, 3, ci, ci, ci) + conv_params(1, 1, ci, co),
            module_params(separable),
            size,
            tuple(nnx.eval_shape(lambda: separable()(x)).shape[1:3]),
        )
    )
    rows = [row for row in rows if row[0] in scope["kinds"]]
    return evidence(
        "measurement",
        *(
            core(
                f"{name}: conv_params and the output-size formula match nnx's module",
                p_ == m_ and sh == (sz, sz),
                params=m_,
                output=sh[0],
            )
            for name, p_, m_, sz, sh in rows
        ),
        details={"rows": [[nm, p_, m_, sz, list(sh)] for nm, p_, m_, sz, sh in rows]},
    )


# --- receptive fields -----------------------------------------------------------------------------------


def _displayed_recursion(layers) -> tuple[list[int], int | None]:
    """The displayed recursion steps, evaluated layer by layer, and the displayed closed form r_3 (3 layers)."""
    step_r, step_j, closed = receptive_field_recursion()
    field, jump, fields = 1, 1, []
    r_l, j_l = sp.Symbol("r_l"), sp.Symbol("j_l")
    for layer in layers:
        kk, ss, _, dd = (*layer, 1) if len(layer) == 3 else layer
        subs = {r_l: field, j_l: jump, k: kk, s: ss, d: dd}
        field, jump = int(value(step_r, subs)), int(value(step_j, subs))
        fields.append(field)
    three = None
    if len(layers) >= 3:
        subs = {}
        for i, layer in enumerate(layers[:3], start=1):
            kk, ss, _, dd = (*layer, 1) if len(layer) == 3 else layer
            subs.update(
                {
                    sp.Symbol(f"k_{i}", integer=True, positive=True): kk,
                    sp.Symbol(f"s_{i}", integer=True, positive=True): ss,
                    sp.Symbol(f"d_{i}", integer=True, positive=True): dd,
                }
            )
        three = int(value(closed, subs))
    return fields, three


@claim(
    "conv_arithmetic/receptive-field-recursion-matches-the-gradient-support",
    sources=["S001-06", "S000-29"],
    says="r_{l+1} = r_l + (k - 1) s_l, s_{l+1} = s_l s, starting from r = s = 1; for [11,4,0], [3,2,0], "
    "[5,1,2], [3,2,0], [3,1,1] the receptive sizes are 11, 19, 51, 67, 99.",
    expected="holds",
    scope={
        "notes_net": [[11, 4, 0], [3, 2, 0], [5, 1, 2], [3, 2, 0], [3, 1, 1]],
        "notes_table": [11, 19, 51, 67, 99],
        "dilated_net": [[3, 1, 1, 1], [3, 1, 2, 2], [3, 2, 4, 4], [3, 1, 1, 1]],
        "input_size": 227,
    },
)
def _rf_table(scope) -> Evidence:
    nets = {"notes": [tuple(x) for x in scope["notes_net"]], "dilated": [tuple(x) for x in scope["dilated_net"]]}
    prefixes = [(nm, net[:depth]) for nm, net in nets.items() for depth in range(1, len(net) + 1)]
    fields = measured_receptive_fields([net for _, net in prefixes], scope["input_size"])
    measured = {nm: [f for (name, _), f in zip(prefixes, fields, strict=True) if name == nm] for nm in nets}
    library = {nm: _rf(net) for nm, net in nets.items()}
    displayed = {nm: _displayed_recursion(net) for nm, net in nets.items()}
    return evidence(
        "autodiff",
        core(
            "receptive_field (the recursion) = the measured gradient support after every layer of both nets",
            library == measured,
            notes_net=str(measured["notes"]),
        ),
        core(
            "the displayed recursion and the closed form r_3, evaluated, = the measured support",
            all(displayed[nm][0] == measured[nm] and displayed[nm][1] == measured[nm][2] for nm in nets),
        ),
        core("the notes' table of receptive sizes = the measured support", measured["notes"] == scope["notes_table"]),
        details={"measured": measured, "recursion": library},
    )


@claim(
    "conv_arithmetic/receptive-field-does-not-depend-on-padding",
    sources=["S002-06"],
    says="The receptive field of a conv layer depends on the kernel sizes and strides of the layers before it, "
    "not on padding.",
    expected="holds",
    scope={"net_kernel_stride": [[3, 2], [3, 1], [5, 2]], "padding": [0, 1, 2], "input_size": 64},
)
def _rf_padding(scope) -> Evidence:
    nets = {pad: [(kk, ss, pad) for kk, ss in scope["net_kernel_stride"]] for pad in scope["padding"]}
    measured = dict(zip(nets, measured_receptive_fields(list(nets.values()), scope["input_size"]), strict=True))
    predicted = {pad: _rf(net)[-1] for pad, net in nets.items()}
    return evidence(
        "autodiff",
        core(
            "the measured receptive field is the same for every padding",
            len(set(measured.values())) == 1,
            field=measured[scope["padding"][0]],
        ),
        core("and equals the recursion, which has no padding term", measured == predicted),
        details={"measured": measured, "predicted": predicted},
    )


@claim(
    "conv_arithmetic/dilated-3x3-receptive-fields-are-3-5-8",
    sources=["S002-03"],
    says="a. an ordinary convolution (dilation rate = 1), receptive field 3 after the convolution; b. a dilated "
    "convolution with dilation rate = 2, receptive field 5; c. dilation rate = 3, receptive field 8.",
    expected="refuted",
    correction="A single 3x3 with dilation d spans d(3-1)+1: 3, 5, 7. Stacked (d = 1 then 2 then 3) the fields "
    "are 3, 7, 13. Eight is neither; the familiar figure's 3, 7, 15 is the stack with d = 1, 2, 4.",
    scope={"dilations": [1, 2, 3], "notes_fields": [3, 5, 8], "doubling": [1, 2, 4], "input_size": 32},
)
def _rf_dilation(scope) -> Evidence:
    size = scope["input_size"]
    stack = [(3, 1, dil, dil) for dil in scope["dilations"]]
    doubling_net = [(3, 1, dil, dil) for dil in scope["doubling"]]
    nets = (
        [[(3, 1, dil, dil)] for dil in scope["dilations"]]
        + [stack[:depth] for depth in range(1, len(stack) + 1)]
        + [doubling_net[:depth] for depth in range(1, len(doubling_net) + 1)]
    )
    fields = measured_receptive_fields(nets, size)  # one program for all three lists
    single = fields[: len(scope["dilations"])]
    stacked = fields[len(scope["dilations"]) : len(scope["dilations"]) + len(stack)]
    doubling = fields[len(scope["dilations"]) + len(stack) :]
    return evidence(
        "autodiff",
        core(
            "a single 3x3 with dilation 1, 2, 3 has the notes' fields",
            single == scope["notes_fields"],
            measured=str(single),
        ),
        core("or the stack of those three has them", stacked == scope["notes_fields"], measured=str(stacked)),
        premise(
            "the recursion predicts every measured field (single, stacked, and the 1, 2, 4 stack)",
            single == [receptive_field([layer])[0][0] for layer in stack]
            and stacked == _rf(stack)
            and doubling == _rf(doubling_net),
            doubling=str(doubling),
        ),
    )


@claim(
    "conv_arithmetic/dilation-enlarges-the-receptive-field-keeping-resolution",
    sources=["S000-16", "S001-04", "S001-35", "S000-01"],
    says="Dilated convolution enlarges the receptive field without pooling (no loss of resolution); the effective "
    "receptive field grows much more quickly.",
    expected="holds",
    scope={"depth": [2, 3], "dilations": [1, 2, 4], "pool": [2, 2, 0, 1], "input_size": 64},
)
def _dilation_growth(scope) -> Evidence:
    size, rows, nets = scope["input_size"], {}, {}
    for depth in scope["depth"]:
        plain = [(3, 1, 1, 1)] * depth
        dilated = [(3, 1, dil, dil) for dil in scope["dilations"][:depth]]
        pooled = [x for layer in plain for x in (layer, tuple(scope["pool"]))][:-1]
        for name, net in (("plain", plain), ("dilated", dilated), ("pooled", pooled)):
            nets[f"{name}, depth {depth}"] = net
    fields = dict(zip(nets, measured_receptive_fields(list(nets.values()), size), strict=True))
    # The effective field: how the gradient spreads inside the support, its weighted width (standard deviation of
    # |d out / d x| along a row) - the same compiled program as the supports above.
    key = tuple(tuple(tuple(int(v) for v in layer) for layer in net) for net in nets.values())
    widths = {}
    for name, grad in zip(nets, np.asarray(_centre_supports(key, size)), strict=True):
        weight = grad.sum(0) / grad.sum()
        centre = float(weight @ np.arange(size))
        widths[name] = float(np.sqrt(weight @ (np.arange(size) - centre) ** 2))
    for name, net in nets.items():
        out = size
        for kk, ss, pp, dd in net:
            out = conv_output_size(out, kk, ss, pp, dd)
        rows[name] = (fields[name], out)
    depths = scope["depth"]
    return evidence(
        "autodiff",
        core(
            "dilated stacks see further than plain ones of the same depth",
            all(rows[f"dilated, depth {q}"][0] > rows[f"plain, depth {q}"][0] for q in depths),
            dilated=rows[f"dilated, depth {depths[-1]}"][0],
            plain=rows[f"plain, depth {depths[-1]}"][0],
        ),
        core(
            "and keep the resolution, where pooling shrinks it",
            all(rows[f"dilated, depth {q}"][1] == size and rows[f"pooled, depth {q}"][1] < size for q in depths),
        ),
        core(
            "the gap grows with depth (faster growth)",
            rows[f"dilated, depth {depths[-1]}"][0] - rows[f"plain, depth {depths[-1]}"][0]
            > rows[f"dilated, depth {depths[0]}"][0] - rows[f"plain, depth {depths[0]}"][0],
        ),
        core(
            "the effective field too (the gradient-weighted width, std of |d out/d x|): the dilated stack's is the "
            "wider at every depth, and the gap grows with depth",
            all(widths[f"dilated, depth {q}"] > widths[f"plain, depth {q}"] for q in depths)
            and widths[f"dilated, depth {depths[-1]}"] - widths[f"plain, depth {depths[-1]}"]
            > widths[f"dilated, depth {depths[0]}"] - widths[f"plain, depth {depths[0]}"],
            **{f"width_{name.replace(', ', '_').replace(' ', '_')}": round(w, 3) for name, w in widths.items()
               if not name.startswith("pooled")}),
        details={nm: {"field": f, "output": o} for nm, (f, o) in rows.items()},
    )


@claim(
    "conv_arithmetic/receptive-field-rules-for-branches-elementwise-and-global-layers",
    sources=["S001-06"],
    says="Over several branches take the largest receptive field; 1x1 stride-1 convs, ReLU, BN, dropout and "
    "shortcuts do not change it; after a FC layer or global average pooling it is the whole input.",
    expected="holds",
    scope={
        "base": "3x3/1, 3x3/2 on 32x32",
        "layers": ["branches", "ReLU", "BatchNorm", "dropout", "1x1 conv", "shortcut", "global average pool", "dense"],
    },
)
def _rf_rules(scope) -> Evidence:
    rows = _branches_and_identities()
    return evidence(
        "autodiff",
        *(core(f"{name}: measured field = the rule's", m_ == e_, measured=m_) for name, (m_, e_) in rows.items()),
        details={nm: {"measured": m_, "expected": e_} for nm, (m_, e_) in rows.items()},
    )


@claim(
    "conv_arithmetic/dilation-pooling-and-larger-kernels-enlarge-the-receptive-field",
    sources=["S002-21"],
    says="Ways to enlarge the receptive field: dilated convolution, pooling, larger kernels.",
    expected="holds",
    scope={
        "base": [[3, 1, 1], [3, 1, 1]],
        "variants": {
            "dilated (d=2)": [[3, 1, 1], [3, 1, 2, 2]],
            "2x2/2 pool in between": [[3, 1, 1], [2, 2, 0], [3, 1, 1]],
            "7x7": [[3, 1, 1], [7, 1, 3]],
            "5x5": [[3, 1, 1], [5, 1, 2]],
        },
        "input_size": 32,
    },
)
def _rf_ways(scope) -> Evidence:
    size = scope["input_size"]
    nets = [[tuple(x) for x in scope["base"]]] + [[tuple(x) for x in net] for net in scope["variants"].values()]
    base, *fields = measured_receptive_fields(nets, size)
    measured = dict(zip(scope["variants"], fields, strict=True))
    return evidence(
        "autodiff",
        *(
            core(
                f"{nm}: field larger than two 3x3 ({base}) and = the recursion",
                v > base and v == _rf([tuple(x) for x in scope["variants"][nm]])[-1],
                field=v,
            )
            for nm, v in measured.items()
        ),
    )


# --- what a conv computes ---------------------------------------------------------------------------------


@claim(
    "conv_arithmetic/flax-conv-is-cross-correlation",
    sources=["S002-38"],
    says="The convolution in CNNs is not the convolution of the mathematical definition: a CNN does not flip the "
    "kernel.",
    expected="holds",
    scope={"kernels": [[3, 4], [2, 2], [5, 3]], "input": [9, 11]},
)
def _cross_correlation(scope, rtol) -> Evidence:
    import scipy.signal  # here: a top-level import costs every process that loads the chapter ~1 s
    found, unflipped_equal = [], []

    @jax.jit
    def flax_conv(image, kern):
        """nnx.Conv (VALID, no bias) with ``kern`` as its kernel, applied to the one-channel ``image``."""
        kh_, kw_ = kern.shape[:2]
        module = nnx.Conv(1, 1, (kh_, kw_), padding="VALID", use_bias=False, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
        module.kernel[...] = kern
        return module(image[None, :, :, None])[0, :, :, 0]

    for i, (kh_, kw_) in enumerate(scope["kernels"]):
        image, kern = _random(tuple(scope["input"]), 3 + i), _random((kh_, kw_, 1, 1), 4 + i)
        out = np.asarray(flax_conv(image, kern))
        flax_out = lambda v, out=out: out  # noqa: E731
        kc = np.asarray(kern)[:, :, 0, 0]
        found.append(
            compare(flax_out, lambda v, kc=kc: scipy.signal.correlate2d(np.asarray(v), kc, "valid"), [image], rtol=rtol)
        )
        found.append(
            compare(
                flax_out,
                lambda v, kc=kc: scipy.signal.convolve2d(np.asarray(v), kc[::-1, ::-1], "valid"),
                [image],
                rtol=rtol,
            )
        )
        unflipped_equal.append(
            compare(
                flax_out, lambda v, kc=kc: scipy.signal.convolve2d(np.asarray(v), kc, "valid"), [image], rtol=rtol
            ).ok
        )
    worst = max(found, key=lambda c: c.max_rel_err)
    return evidence(
        "measurement",
        compared("nnx.Conv = scipy correlate2d = convolve2d with the flipped kernel, every kernel shape", worst)
        if all(c.ok for c in found)
        else core("nnx.Conv = cross-correlation for every kernel shape", False),
        core("nnx.Conv differs from the mathematical convolution (kernel not flipped)", not any(unflipped_equal)),
    )


@claim(
    "conv_arithmetic/weight-sharing-makes-conv-translation-equivariant",
    sources=["S001-01"],
    says="Parameter sharing: every element of the kernel acts on a particular position of every local input, so "
    "only one set of parameters is learned; the physical meaning of parameter sharing is that it makes the "
    "parameters translation equivariant.",
    expected="holds",
    scope={
        "shifts": [[1, 0], [0, 3], [5, 7], [15, 1]],
        "input": [1, 16, 16, 3],
        "channels_out": 4,
        "padding": ["circular", "zero"],
        "unshared": "a different 3x3 kernel at every position (locally connected), circular padding",
        "broken_above": 0.1,
    },
)
def _equivariance(scope, rtol) -> Evidence:
    x, kern = _random(tuple(scope["input"]), 8), _random((3, 3, scope["input"][3], scope["channels_out"]), 9)
    conv = lambda v: circular_conv2d(v, kern)  # noqa: E731
    shifts = [tuple(sh) for sh in scope["shifts"]]
    both = jax.jit(
        lambda v: [(conv(jnp.roll(v, sh, axis=(1, 2))), jnp.roll(conv(v), sh, axis=(1, 2))) for sh in shifts]
    )
    circular = [
        compare(lambda v, a=a: np.asarray(a), lambda v, b=b: np.asarray(b), [x], rtol=rtol) for a, b in both(x)
    ]
    zero_pad = equivariance_error(lambda v: conv2d(v, kern, padding=1), x, (1, 0))
    broken_rows = [int(row) for row in np.nonzero((zero_pad > 0).any(axis=1))[0]]
    side = scope["input"][1]
    # The same windows without the sharing: a kernel per output position, applied to the wrapped patches.
    kernels = _random((side, side, 9 * scope["input"][3], scope["channels_out"]), 10)

    def unshared(v):
        patches = lax.conv_general_dilated_patches(jnp.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap"),
                                                   (3, 3), (1, 1), "VALID", dimension_numbers=DIMENSIONS)  # fmt: skip
        return jnp.einsum("nhwp,hwpo->nhwo", patches, kernels)

    local = float(np.max(equivariance_error(unshared, x, shifts[0])) / np.max(np.abs(np.asarray(unshared(x)))))
    return evidence(
        "measurement",
        core(
            f"without the sharing ({scope['unshared']}) the shift {list(shifts[0])} breaks it: the largest error is "
            f"above {scope['broken_above']} of the largest output",
            local > scope["broken_above"],
            relative_error=local,
        ),
        compared(
            "circular padding: conv(shift x) = shift(conv x) for every shift",
            max(circular, key=lambda c: c.max_abs_err),
        )
        if all(c.ok for c in circular)
        else core("circular padding: equivariant for every shift", False),
        scoped(
            "zero padding: a one-row shift breaks it only where the 3x3 window meets the border or the rolled-in row",
            set(broken_rows) <= {0, 1, side - 1},
            rows_broken=str(broken_rows),
        ),
    )


@claim(
    "conv_arithmetic/conv-is-translation-invariant",
    sources=["S003-01"],
    says="Translation invariance: the convolution operation has a degree of translation invariance, i.e. a "
    "convolutional network can recognise a feature wherever it is in the image.",
    expected="qualified",
    correction="Convolution is translation equivariant, not invariant: shifting the input shifts the output "
    "by the same amount (exactly, with circular padding). Invariance (the same output) needs a global pooling "
    "on top, or holds approximately after local pooling.",
    scope={"shifts": [[2, 3], [1, 0], [8, 8]], "input": [1, 16, 16, 3], "channels_out": 4},
)
def _invariance(scope, rtol) -> Evidence:
    x, kern = _random(tuple(scope["input"]), 8), _random((3, 3, scope["input"][3], scope["channels_out"]), 9)
    conv = lambda v: circular_conv2d(v, kern)  # noqa: E731
    shifts = list(map(tuple, scope["shifts"]))
    # Every shifted input, its response and the rolled response of x, in one program; the comparisons in NumPy.
    measured = jax.jit(
        lambda v: (conv(v), [(jnp.roll(v, sh, axis=(1, 2)), conv(jnp.roll(v, sh, axis=(1, 2))), jnp.roll(conv(v), sh,
                                                                                                      axis=(1, 2)))
                             for sh in shifts])
    )
    plain, per_shift = measured(x)
    plain = np.asarray(plain)
    moved, same_max, changed = [], [], []
    for shifted, response, rolled in per_shift:
        response, rolled = np.asarray(response), np.asarray(rolled)  # shifted stays a device array
        moved.append(compare(lambda v, r=response: r, lambda v, r=rolled: r, [shifted], rtol=rtol))
        same_max.append(
            compare(lambda v, r=response: r.max(axis=(1, 2)), lambda v: plain.max(axis=(1, 2)), [shifted], rtol=rtol)
        )
        changed.append(float(np.linalg.norm(response - plain) / np.linalg.norm(plain)))
    return evidence(
        "measurement",
        core(
            "a feature is found wherever it is: the response moves with the input (equivariance), every shift",
            all(c.ok for c in moved),
            max_abs_err=max(c.max_abs_err for c in moved),
        ),
        scoped(
            "the conv output itself is unchanged by a shift (invariance)",
            max(changed) == 0.0,
            relative_change=min(changed),
        ),
        core("after a global max pool the output is unchanged by every shift", all(c.ok for c in same_max)),
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "conv_arithmetic"]))
