"""Convolution arithmetic: output sizes, transposed convolution, parameters, FLOPs and receptive fields,
derived in SymPy and measured on Flax/XLA.

Seeds: S000-10, S000-15, S000-16, S000-28, S000-29, S001-01, S001-03, S001-04, S001-06, S001-31, S001-35,
S001-38, S002-03, S002-06, S002-09, S002-11, S002-12, S002-13, S002-21, S002-38, S002-45, S003-01,
S004-14. The public functions (``conv_output_size``, ``conv_transpose_output_size``, ``receptive_field``,
``conv_params``, ``conv_macs``, ``conv_macs_in_bounds``) evaluate the SymPy expressions of this module on
integers. Run ``python -m derivations.conv_arithmetic`` to print the derivations and check the claims.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations.bridge import cache, mark_evaluated
from derivations.claims import derivation
from derivations.harness import gradient_support, module_params, support_extent, xla_flops  # noqa: F401  (re-exported)
from models.conv import (
    conv2d,
    conv2d_transpose,
)

n, k, s, d = sp.symbols("n k s d", integer=True, positive=True)
p = sp.Symbol("p", integer=True, nonnegative=True)
a = sp.Symbol("a", integer=True, nonnegative=True)  # output_padding
t = sp.Symbol("t", integer=True, nonnegative=True)  # a kernel tap
r, j = sp.symbols("r j", integer=True, positive=True)  # receptive field and jump so far
_n = n  # the public functions name their first argument n too
kh, kw, c_in, c_out, h, w, g = sp.symbols("k_h k_w C_in C_out H W G", integer=True, positive=True)


# --- the formulas --------------------------------------------------------------------------------------


def output_size_expr() -> sp.Expr:
    """floor((n + 2p - d(k-1) - 1) / s) + 1: the positions of a dilated kernel (span d(k-1)+1) that fit."""
    return sp.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1


def notes_output_size_expr() -> sp.Expr:
    """(W1 - F + 2P) / S + 1, as S001-06 writes it: no floor, no dilation."""
    return (n - k + 2 * p) / s + 1


def transpose_output_size_expr() -> sp.Expr:
    """(n - 1)s - 2p + d(k-1) + a + 1: the input size of the conv whose output size is n (a = output_padding
    picks among the s input sizes that the conv's floor maps to the same n)."""
    return (n - 1) * s - 2 * p + d * (k - 1) + a + 1


@cache  # built once: the Sum of Max/Min/floor terms takes ~75 ms to construct
def taps_in_bounds_expr() -> sp.Expr:
    """The (output position, kernel tap) pairs along one axis whose input index o s - p + t d lies in
    [0, n): the multiply-accumulates that touch real input rather than padding."""
    return sp.Sum(_taps_of_one_kernel_position(output_size_expr()), (t, 0, k - 1))


def _taps_of_one_kernel_position(n_out: sp.Expr) -> sp.Expr:
    """How many of the ``n_out`` outputs read tap t from inside the image (o from ceil((p - td)/s) to
    floor((n - 1 + p - td)/s), clipped to [0, n_out - 1])."""
    first_o = sp.Max(0, sp.ceiling((p - t * d) / s))
    last_o = sp.Min(n_out - 1, sp.floor((n - 1 + p - t * d) / s))
    return sp.Max(0, last_o - first_o + 1)


def params_expr(bias: bool = True) -> sp.Expr:
    """k_h k_w (C_in / G) C_out weights, plus C_out biases: each of the G groups maps C_in/G channels to C_out/G."""
    return kh * kw * (c_in / g) * c_out + (c_out if bias else 0)


def macs_expr() -> sp.Expr:
    """k_h k_w (C_in / G) C_out H W multiply-accumulates for an H x W output: every tap counted, padding too."""
    return kh * kw * (c_in / g) * c_out * h * w


def receptive_field_step() -> tuple[sp.Expr, sp.Expr]:
    """One layer's update: r <- r + d(k - 1) j and j <- j s (the jump j is the input distance between
    neighbouring outputs). Padding appears nowhere."""
    return r + d * (k - 1) * j, j * s


# --- the public functions: the expressions above, evaluated on integers --------------------------------


def _integer(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def evaluate_exact(expr: sp.Expr, values: dict[sp.Symbol, int]) -> sp.Expr:
    """``expr`` at integer ``values``, exactly (a SymPy number), recorded as evaluated (``bridge.mark_evaluated``).

    xreplace rebuilds the tree with the integers in place, so Min/Max/floor of numbers evaluate at once;
    ``subs`` first tries to simplify Max/Min of partly substituted symbols, which is ~100x slower here."""
    mark_evaluated([expr])
    return sp.sympify(expr).xreplace({sym: sp.Integer(v) for sym, v in values.items()})


def evaluate_integer(expr: sp.Expr, values: dict[sp.Symbol, int]) -> int:
    """``expr`` at integer ``values``, exactly. A ``Sum`` is added up term by term: SymPy's closed-form
    summation of floor/ceiling terms is not reliable (it returned 3 for a sum whose one term is 4)."""
    expr = sp.sympify(expr)
    if isinstance(expr, sp.Sum):
        mark_evaluated([expr])
        ((var, low, high),) = expr.limits
        first, last = evaluate_integer(low, values), evaluate_integer(high, values)
        return sum(evaluate_integer(expr.function, {**values, var: i}) for i in range(first, last + 1))
    out = evaluate_exact(expr, values)
    if not out.is_Integer:
        raise ValueError(f"{expr} is not an integer at {values}: {out}")
    return int(out)


def _check_window(n_: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    _integer("n", n_, 1)
    _integer("kernel", kernel, 1)
    _integer("stride", stride, 1)
    _integer("padding", padding, 0)
    _integer("dilation", dilation, 1)
    if dilation * (kernel - 1) + 1 > n_ + 2 * padding:
        raise ValueError(
            f"dilated kernel {dilation * (kernel - 1) + 1} (kernel {kernel}, dilation {dilation}) is larger than "
            f"the padded input {n_ + 2 * padding}; it must be at most n + 2 * padding"
        )


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution (or pooling) along one axis (S000-15, S001-06):
    ``floor((n + 2 padding - dilation (kernel - 1) - 1) / stride) + 1``, ``padding`` zeros on each side.

    >>> conv_output_size(227, 11, stride=4)
    55
    """
    _check_window(n, kernel, stride, padding, dilation)
    return evaluate_integer(output_size_expr(), {_n: n, k: kernel, s: stride, p: padding, d: dilation})


def conv_transpose_output_size(
    n: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution (S001-03, S002-09), PyTorch's convention:
    ``(n - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1``; ``output_padding`` must be
    below ``stride`` or below ``dilation`` (it only resolves the floor of the forward conv).
    """
    for name, value, minimum in (
        ("n", n, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("output_padding", output_padding, 0),
        ("dilation", dilation, 1),
    ):
        _integer(name, value, minimum)
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding must be < max(stride, dilation) = {max(stride, dilation)}, got {output_padding}"
        )
    size = evaluate_integer(
        transpose_output_size_expr(),
        {_n: n, k: kernel, s: stride, p: padding, a: output_padding, d: dilation},
    )
    if size < 1:
        raise ValueError(
            f"padding {padding} leaves no output (size {size}); padding must be at most "
            f"((n - 1) stride + dilation (kernel - 1) + output_padding) / 2"
        )
    return size


def receptive_field(layers: Sequence[tuple[int, ...]]) -> list[tuple[int, int]]:
    """Receptive field and jump after each layer (S001-06, S002-06, S002-03): ``layers`` is a list of
    ``(kernel, stride, padding)`` or ``(kernel, stride, padding, dilation)``; r starts at 1, j at 1 and
    each layer applies ``r <- r + dilation (kernel - 1) j``, ``j <- j stride``. Padding is validated but
    does not enter. A pooling layer is a layer like any other.

    >>> receptive_field([(3, 1, 1), (3, 1, 1)])
    [(3, 1), (5, 1)]
    """
    r_next, j_next = receptive_field_step()
    field, jump, out = 1, 1, []
    for index, layer in enumerate(layers):
        if len(layer) not in (3, 4):
            raise ValueError(f"layer {index} must be (kernel, stride, padding[, dilation]), got {layer!r}")
        kernel, stride, padding, dilation = (*layer, 1) if len(layer) == 3 else layer
        _integer(f"layer {index} kernel", kernel, 1)
        _integer(f"layer {index} stride", stride, 1)
        _integer(f"layer {index} padding", padding, 0)
        _integer(f"layer {index} dilation", dilation, 1)
        values = {r: field, j: jump, k: kernel, s: stride, d: dilation}
        field, jump = evaluate_integer(r_next, values), evaluate_integer(j_next, values)
        out.append((field, jump))
    return out


def _check_channels(c_in_: int, c_out_: int, groups: int) -> None:
    _integer("c_in", c_in_, 1)
    _integer("c_out", c_out_, 1)
    _integer("groups", groups, 1)
    if c_in_ % groups or c_out_ % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in_} and c_out={c_out_}")


def conv_params(kh_: int, kw_: int, c_in_: int, c_out_: int, groups: int = 1, bias: bool = True) -> int:
    """Parameters of a 2-D convolution (S002-11, S002-45): ``kh kw (c_in / groups) c_out`` weights, plus
    ``c_out`` biases when ``bias``. A dense layer is the 1x1 case."""
    _integer("kh", kh_, 1)
    _integer("kw", kw_, 1)
    _check_channels(c_in_, c_out_, groups)
    return evaluate_integer(params_expr(bool(bias)), {kh: kh_, kw: kw_, c_in: c_in_, c_out: c_out_, g: groups})


def conv_macs(kh_: int, kw_: int, c_in_: int, c_out_: int, h_: int, w_: int, groups: int = 1) -> int:
    """Multiply-accumulates of a 2-D convolution with an ``h x w`` output, every tap counted, padding
    included (the notes' count, S001-38 and S002-12, divided by ``groups``, S002-45). Bias adds excluded."""
    _integer("kh", kh_, 1)
    _integer("kw", kw_, 1)
    _integer("h", h_, 1)
    _integer("w", w_, 1)
    _check_channels(c_in_, c_out_, groups)
    return evaluate_integer(macs_expr(), {kh: kh_, kw: kw_, c_in: c_in_, c_out: c_out_, h: h_, w: w_, g: groups})


def taps_in_bounds(n_: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Along one axis, the (output, tap) pairs whose input index is inside the image, not in the padding."""
    _check_window(n_, kernel, stride, padding, dilation)
    return evaluate_integer(taps_in_bounds_expr(), {n: n_, k: kernel, s: stride, p: padding, d: dilation})


def conv_macs_in_bounds(
    h_in: int,
    w_in: int,
    kernel: int,
    c_in_: int,
    c_out_: int,
    *,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> int:
    """The multiply-accumulates of a square-kernel convolution that touch the image, taps on padding left
    out, which is what XLA's cost analysis counts (2 FLOPs each; a kernel may still multiply the zeros).
    ``taps_in_bounds(h) taps_in_bounds(w) (c_in / groups) c_out``."""
    _check_channels(c_in_, c_out_, groups)
    rows = taps_in_bounds(h_in, kernel, stride, padding, dilation)
    cols = taps_in_bounds(w_in, kernel, stride, padding, dilation)
    return rows * cols * (c_in_ // groups) * c_out_


# --- derivations ---------------------------------------------------------------------------------------


@derivation
def output_size() -> list[sp.Eq]:
    """Output size with floor and dilation (top), and the notes' version, which has neither (bottom)."""
    return [
        sp.Eq(sp.Symbol("n_{out}"), output_size_expr(), evaluate=False),
        sp.Eq(sp.Symbol("W_2"), notes_output_size_expr(), evaluate=False),
    ]


@derivation
def same_padding_keeps_the_size() -> sp.Eq:
    """At stride 1, padding d(k-1)/2 on each side (an odd effective kernel) gives n_out = n exactly."""
    same = output_size_expr().subs({s: 1, p: d * (k - 1) / 2})
    return sp.Eq(sp.Symbol(r"n_{out}|_{s = 1,\ p = d(k-1)/2}"), sp.simplify(same), evaluate=False)


@derivation
def transpose_output_size() -> list[sp.Eq]:
    """The transposed conv's output size inverts the conv's: feeding it back into the conv gives n again
    (bottom, for output_padding 0 <= a < s)."""
    back = output_size_expr().subs(n, transpose_output_size_expr())
    return [
        sp.Eq(sp.Symbol("n_{T}"), transpose_output_size_expr(), evaluate=False),
        sp.Eq(back, sp.simplify(back.subs(a, 0)), evaluate=False),
    ]


@derivation
def parameters_and_macs() -> list[sp.Eq]:
    """Parameters and multiply-accumulates of a grouped convolution (G = 1: the ordinary one)."""
    return [
        sp.Eq(sp.Symbol("params"), params_expr(), evaluate=False),
        sp.Eq(sp.Symbol("MACs"), macs_expr(), evaluate=False),
    ]


@derivation
def taps_in_bounds_formula() -> list[sp.Eq]:
    """The taps that land on the image, per axis; for a 'same' 3x3 conv (k=3, p=1, s=1, d=1) it is 3n - 2."""
    same = {k: 3, p: 1, s: 1, d: 1}
    per_tap = taps_in_bounds_expr().function.subs(same)
    same3 = sp.simplify(sum(per_tap.subs(t, tap) for tap in range(3)))
    tau = sp.Function("tau")(t)
    return [
        sp.Eq(sp.Symbol("T"), sp.Sum(tau, (t, 0, k - 1)), evaluate=False),
        sp.Eq(tau, _taps_of_one_kernel_position(sp.Symbol("n_{out}")), evaluate=False),
        sp.Eq(sp.Symbol(r"T_{3 \times 3,\ same}"), same3, evaluate=False),
    ]


@derivation
def receptive_field_recursion() -> list[sp.Eq]:
    """The receptive-field recursion, and its closed form after three layers:
    r = 1 + sum d_l (k_l - 1) prod_{i<l} s_i."""
    r_next, j_next = receptive_field_step()
    layers = [sp.symbols(f"k_{i} s_{i} d_{i}", integer=True, positive=True) for i in (1, 2, 3)]
    field, jump = sp.Integer(1), sp.Integer(1)
    for k_, s_, d_ in layers:
        field, jump = r_next.subs({r: field, j: jump, k: k_, d: d_}), j_next.subs({j: jump, s: s_})
    closed = 1 + sum(d_ * (k_ - 1) * sp.Mul(*[q[1] for q in layers[:i]]) for i, (k_, s_, d_) in enumerate(layers))
    assert sp.expand(field - closed) == 0, "receptive-field recursion and closed form disagree"
    return [
        sp.Eq(sp.Symbol("r_{l+1}"), r_next.subs({r: sp.Symbol("r_l"), j: sp.Symbol("j_l")}), evaluate=False),
        sp.Eq(sp.Symbol("j_{l+1}"), j_next.subs({j: sp.Symbol("j_l")}), evaluate=False),
        sp.Eq(sp.Symbol("r_3"), sp.expand(field), evaluate=False),
    ]


# --- measurement helpers -------------------------------------------------------------------------------


def flax_output_size(n_: int, kernel: int, stride: int, padding: int | str, dilation: int) -> int:
    """The output length ``lax.conv_general_dilated`` (what ``nnx.Conv`` calls) gives, from its shape alone."""
    x = jax.ShapeDtypeStruct((1, n_, n_, 1), jnp.float64)
    kern = jax.ShapeDtypeStruct((kernel, kernel, 1, 1), jnp.float64)
    conv = functools.partial(conv2d, stride=stride, padding=padding, dilation=dilation)
    return jax.eval_shape(conv, x, kern).shape[1]


SIZE_GRID = [
    (n_, k_, s_, p_, d_)
    for n_, k_, s_, p_, d_ in itertools.product((5, 6, 7, 13, 32), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2))
    if d_ * (k_ - 1) + 1 <= n_ + 2 * p_
]


def output_size_check(formula: Callable[[int, int, int, int, int], object], grid=SIZE_GRID) -> tuple[bool, list]:
    """``formula(n, k, s, p, d)`` against XLA's shapes on ``grid``; returns (all equal, the mismatches)."""
    wrong = [(cfg, formula(*cfg), flax_output_size(*cfg)) for cfg in grid]
    wrong = [row for row in wrong if row[1] != row[2]]
    return not wrong, wrong


def ones_network(layers: Sequence[tuple[int, ...]]) -> Callable[[jax.Array], jax.Array]:
    """A stack of one-channel convolutions with all-ones kernels (an average pool is one, up to scale):
    positive weights and inputs, so no gradient cancels and the support is the full dependency set."""

    def apply(x):
        for layer in layers:
            kernel, stride, padding, dilation = (*layer, 1) if len(layer) == 3 else layer
            x = conv2d(x, jnp.ones((kernel, kernel, 1, 1)), stride=stride, padding=padding, dilation=dilation)
        return x

    return apply


def measured_receptive_field(layers: Sequence[tuple[int, ...]], size: int) -> int:
    """The receptive field of the centre output pixel of ``ones_network(layers)`` on a ``size`` input."""
    return measured_receptive_fields([layers], size)[0]


def measured_receptive_fields(networks: Sequence[Sequence[tuple[int, ...]]], size: int) -> list[int]:
    """:func:`measured_receptive_field` of each of ``networks``, all measured in one compiled program."""
    key = tuple(tuple(tuple(int(v) for v in layer) for layer in net) for net in networks)
    supports = np.asarray(_centre_supports(key, int(size)))
    out = []
    for grad in supports:
        rows, cols = support_extent(grad)
        out.append(rows if rows == cols else -1)
    return out


@functools.partial(jax.jit, static_argnums=(0, 1))
def _centre_supports(networks: tuple, size: int) -> jax.Array:
    """|d out[centre] / d x| (as ``gradient_support``) of each network of ones, stacked: (networks, size, size)."""
    x = jnp.ones((1, size, size, 1))
    grads = []
    for layers in networks:
        apply = ones_network(layers)
        out = jax.eval_shape(apply, x).shape[1]
        grads.append(jax.grad(lambda v, apply=apply, c=out // 2: apply(v)[0, c, c, 0])(x)[0, :, :, 0])
    return jnp.abs(jnp.stack(grads))


NOTES_NET = [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1)]  # S001-06: conv1 pool1 conv2 pool2 conv3
NOTES_TABLE = [11, 19, 51, 67, 99]  # the receptive sizes S001-06 prints, for comparison only


def receptive_field_check(
    recursion: Callable[[Sequence[tuple[int, ...]]], list[int]], size: int = 227
) -> tuple[bool, list]:
    """``recursion(layers)`` (receptive field after each layer) against the autodiff-measured field after
    each prefix of S001-06's network and of a dilated stack; returns (all equal, rows)."""
    rows = []
    for net in (NOTES_NET, [(3, 1, 1, 1), (3, 1, 2, 2), (3, 2, 4, 4), (3, 1, 1, 1)]):
        predicted = recursion(net)
        measured = measured_receptive_fields([net[:depth] for depth in range(1, len(net) + 1)], size)
        for depth in range(1, len(net) + 1):
            rows.append((depth, predicted[depth - 1], measured[depth - 1]))
    return all(p_ == m_ for _, p_, m_ in rows), rows


def _rf(layers):
    return [field for field, _ in receptive_field(layers)]




def _random(shape, seed):
    # device_put, not jnp.asarray: the same float64 array without a staging program per shape.
    return jax.device_put(np.random.default_rng(seed).normal(size=shape))


TRANSPOSE_CASES = [(9, 3, 2, 1, 1), (10, 3, 2, 1, 2), (8, 4, 2, 1, 1), (11, 5, 3, 2, 1), (7, 3, 1, 0, 2)]


def adjoint_gap(
    n_: int, k_: int, s_: int, p_: int, d_: int, transpose=conv2d_transpose, seed: int = 0
) -> tuple[float, float]:
    """<conv x, y> and <x, transpose(y)> for random float64 x (n x n x 3), y, kernel (k x k x 3 x 2)."""
    x, kern = _random((1, n_, n_, 3), seed), _random((k_, k_, 3, 2), seed + 1)
    out = jax.eval_shape(functools.partial(conv2d, stride=s_, padding=p_, dilation=d_), x, kern)
    y = _random(out.shape, seed + 2)
    lhs, rhs = np.asarray(_inner_products(x, kern, y, n_, s_, p_, d_, transpose))
    return float(lhs), float(rhs)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _inner_products(x, kern, y, n_, s_, p_, d_, transpose) -> jax.Array:
    out = conv2d(x, kern, stride=s_, padding=p_, dilation=d_)
    return jnp.stack([jnp.vdot(out, y), jnp.vdot(x, transpose(y, kern, n_, stride=s_, padding=p_, dilation=d_))])


# --- claims: parameters and FLOPs ----------------------------------------------------------------------


PARAM_CASES = [
    (3, 3, 3, 64, 1, True),
    (3, 3, 64, 64, 1, False),
    (1, 1, 256, 64, 1, True),
    (5, 3, 32, 48, 4, True),
    (3, 3, 32, 32, 32, False),
    (7, 7, 3, 96, 1, True),
]


# (label, n, kernel, C_in, C_out, stride, padding, dilation, groups)
FLOP_CASES = [
    ("same 3x3 on 64x64", 64, 3, 16, 16, 1, 1, 1, 1),
    ("valid 3x3 on 64x64", 64, 3, 16, 16, 1, 0, 1, 1),
    ("same 5x5 on 32x32", 32, 5, 8, 8, 1, 2, 1, 1),
    ("3x3 stride 2, pad 1, on 32x32", 32, 3, 8, 16, 2, 1, 1, 1),
    ("3x3 dilation 2, pad 2, on 32x32", 32, 3, 8, 8, 1, 2, 2, 1),
    ("same 3x3 grouped G=4 on 32x32", 32, 3, 16, 32, 1, 1, 1, 4),
    ("11x11 stride 4 on 227x227 (AlexNet conv1)", 227, 11, 3, 8, 4, 0, 1, 1),
]


def flop_table(cases=FLOP_CASES) -> list[dict]:
    """For each case: the notes' count (MACs, every tap), the exact MACs (taps on padding skipped), and XLA's flops."""
    rows = []
    for label, n_, k_, ci, co, s_, p_, d_, groups in cases:
        out = conv_output_size(n_, k_, s_, p_, d_)
        x = jax.ShapeDtypeStruct((1, n_, n_, ci), jnp.float64)  # lowering needs shapes only
        kern = jax.ShapeDtypeStruct((k_, k_, ci // groups, co), jnp.float64)
        xla = xla_flops(functools.partial(conv2d, stride=s_, padding=p_, dilation=d_, groups=groups), x, kern)
        notes = conv_macs(k_, k_, ci, co, out, out)
        rows.append(
            {
                "case": label,
                "notes_macs": notes,
                "notes_macs_over_g": conv_macs(k_, k_, ci, co, out, out, groups),
                "exact_macs": conv_macs_in_bounds(
                    n_, n_, k_, ci, co, stride=s_, padding=p_, dilation=d_, groups=groups
                ),
                "xla_flops": xla,
            }
        )
    return rows


# --- claims: receptive fields --------------------------------------------------------------------------


def _branches_and_identities() -> dict[str, tuple[int, int]]:
    """Measured receptive fields (centre pixel, 32x32 input) for the rules S001-06 lists, with the expectation."""
    base = [(3, 1, 1), (3, 2, 1)]
    base_rf = _rf(base)[-1]
    expected = {
        "two branches (1x1 and 5x5 after a 3x3)": max(_rf([(3, 1, 1), (1, 1, 0)])[-1], _rf([(3, 1, 1), (5, 1, 2)])[-1]),
        "+ ReLU": base_rf,
        "+ BatchNorm (eval)": base_rf,
        "+ dropout (training mask, centre kept)": base_rf,
        "+ 1x1 conv, stride 1": base_rf,
        "+ residual shortcut": base_rf,
        "+ global average pool": 32,
        "+ dense layer": 32,
    }

    def variants() -> dict:
        net = ones_network(base)
        k1 = jnp.ones((1, 1, 1, 1))
        bn = nnx.BatchNorm(1, use_running_average=True, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
        # A training-time dropout mask (rate 1/2, inverted scaling) with the measured centre output kept: a
        # dropped output depends on nothing, a kept one on what it depended on before.
        kept = jax.random.bernoulli(jax.random.key(0), 0.5, (1, 16, 16, 1)).at[0, 8, 8, 0].set(True)
        dropout_mask = kept / 0.5

        def branches(x):
            x = conv2d(x, jnp.ones((3, 3, 1, 1)), padding=1)
            return conv2d(x, jnp.ones((1, 1, 1, 1))) + conv2d(x, jnp.ones((5, 5, 1, 1)), padding=2)

        return {
            "two branches (1x1 and 5x5 after a 3x3)": branches,
            "+ ReLU": lambda x: jax.nn.relu(net(x)),
            "+ BatchNorm (eval)": lambda x: bn(net(x)),
            "+ dropout (training mask, centre kept)": lambda x: net(x) * dropout_mask,
            "+ 1x1 conv, stride 1": lambda x: conv2d(net(x), k1),
            "+ residual shortcut": lambda x: net(x) + conv2d(x, k1, stride=2, padding=0)[:, :16, :16],
            "+ global average pool": lambda x: jnp.mean(net(x), axis=(1, 2), keepdims=True),
            "+ dense layer": lambda x: (net(x).reshape(1, -1) @ jnp.ones((net(x).size, 1))).reshape(1, 1, 1, 1),
        }

    def supports() -> jax.Array:
        """``gradient_support`` of each variant's centre output, all in one compiled program."""
        x = jnp.ones((1, 32, 32, 1))
        grads = []
        for apply in variants().values():
            shape = jax.eval_shape(apply, x).shape
            centre = lambda v, apply=apply, r=shape[1] // 2, c=shape[2] // 2: apply(v)[0, r, c, 0]  # noqa: E731
            grads.append(jax.grad(centre)(x)[0, :, :, 0])
        return jnp.abs(jnp.stack(grads))

    grads = np.asarray(jax.jit(supports)())
    return {name: (support_extent(grad)[0], expected[name]) for name, grad in zip(expected, grads, strict=True)}


# --- claims: what a conv computes ----------------------------------------------------------------------


def equivariance_error(conv: Callable[[jax.Array], jax.Array], x: jax.Array, shift: tuple[int, int]) -> np.ndarray:
    """|conv(roll(x)) - roll(conv(x))| per output pixel, a circular shift by ``shift`` (rows, cols)."""
    difference = jax.jit(lambda v: conv(jnp.roll(v, shift, axis=(1, 2))) - jnp.roll(conv(v), shift, axis=(1, 2)))
    return np.abs(np.asarray(difference(x))).max(axis=(0, 3))


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "conv_arithmetic"]) or main(["check", "conv_arithmetic"]))
