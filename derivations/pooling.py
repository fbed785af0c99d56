"""Pooling: no parameters, the backward rules of max and average pooling, unpooling, spatial pyramid and
global pooling, and how invariant max pooling really is.

Seeds: S000-07, S000-22, S001-05, S002-09, S002-10, S002-35, S003-04, S003-10, S004-18, S004-20
(narrative: S001-30, S002-36). Run ``python -m derivations.pooling`` to print the derivations and check
the claims.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.conv_arithmetic import conv_output_size
from derivations.harness import module_params, verdict, xla_flops
from models.conv import conv2d
from models.pooling import (
    SpatialPyramidPooling,
    avg_pool,
    avg_pool_as_conv,
    avg_pool_backward,
    global_avg_pool,
    global_max_pool,
    max_pool,
    max_pool_backward,
    max_unpool,
)

window = sp.symbols("x1:5", real=True)  # one 2x2 window, row-major
levels = sp.symbols("n1:4", integer=True, positive=True)
C = sp.Symbol("C", integer=True, positive=True)


def _random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


# --- derivations ---------------------------------------------------------------------------------------


@derivation
def average_pool_gradient() -> sp.Eq:
    """Average pooling of a 2x2 window: every input gets 1/4 of the window's gradient."""
    mean = sum(window) / 4
    return sp.Eq(
        sp.Matrix([sp.Derivative(sp.Symbol("y"), v) for v in window]).T,
        sp.Matrix([[sp.diff(mean, v) for v in window]]),
        evaluate=False,
    )


@derivation
def max_pool_gradient() -> sp.Eq:
    """Max pooling of a 2x2 window: dy/dx1 is 1 where x1 is the maximum and 0 elsewhere (SymPy's Heaviside,
    1/2 at a tie; Flax's backward gives a tie to the first maximum)."""
    return sp.Eq(sp.Derivative(sp.Symbol("y"), window[0]), sp.diff(sp.Max(*window), window[0]), evaluate=False)


@derivation
def gradient_sum() -> list[sp.Eq]:
    """Summed over a window, the gradient is 1 for both poolings: each window passes on exactly its dy."""
    mean, top = sum(window) / 4, sp.Max(*window)
    max_sum = sum(sp.diff(top, v) for v in window).subs(dict(zip(window, (3, 1, 2, 0), strict=True)))
    return [
        sp.Eq(
            sp.Sum(sp.Symbol(r"\partial y_{avg}/\partial x_i"), (sp.Symbol("i"), 1, 4)),
            sum(sp.diff(mean, v) for v in window),
            evaluate=False,
        ),
        sp.Eq(sp.Symbol(r"\sum_i \partial y_{max}/\partial x_i |_{x=(3,1,2,0)}"), max_sum, evaluate=False),
    ]


@derivation
def spp_output_length() -> sp.Eq:
    """Spatial pyramid pooling with levels n1, n2, n3 over C channels: C (n1^2 + n2^2 + n3^2) features, no H or W."""
    return sp.Eq(sp.Symbol("L"), C * sum(v**2 for v in levels), evaluate=False)


# --- claims --------------------------------------------------------------------------------------------

BACKWARD_CASES = [(8, 2, 2), (9, 3, 2), (7, 3, 1), (8, 4, 4)]  # (size, window, stride): non-overlapping and overlapping


@claim(
    "pooling/pooling-has-no-parameters",
    sources=["S000-22", "S002-35", "S003-10", "S000-07"],
    says="Max and mean pooling have no parameters to learn; the pooling layer only passes the error back.",
    expected="holds",
)
def _no_params() -> Evidence:
    counts = {
        "SpatialPyramidPooling": module_params(lambda: SpatialPyramidPooling(levels=(1, 2, 4))),
        "nnx.Sequential(max_pool, avg_pool)": module_params(
            lambda: nnx.Sequential(lambda x: nnx.max_pool(x, (2, 2), (2, 2)), lambda x: nnx.avg_pool(x, (2, 2), (2, 2)))
        ),
    }
    x = _random((1, 8, 8, 2), 0)
    closure = jax.make_jaxpr(lambda v: max_pool(v, 2, 2) + avg_pool(v, 2, 2))(x)
    ok = all(c == 0 for c in counts.values()) and not closure.consts
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary="nnx.Param count: "
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + f"; the jaxpr of max_pool + avg_pool captures {len(closure.consts)} constants (nothing to learn)",
        samples=len(counts),
    )


def backward_check(derived, reference_pool, *, ties: bool = False) -> list:
    """``derived(x, dy, window, stride)`` vs ``jax.vjp`` of ``reference_pool`` on BACKWARD_CASES."""
    out = []
    for i, (size, win, stride) in enumerate(BACKWARD_CASES):
        x = jnp.round(_random((2, size, size, 3), i)) if ties else _random((2, size, size, 3), i)
        y, pullback = jax.vjp(lambda v, win=win, stride=stride: reference_pool(v, win, stride), x)
        dy = _random(y.shape, 100 + i)
        out.append(
            compare(
                lambda v, dy=dy, win=win, stride=stride: derived(v, dy, win, stride),
                lambda v, dy=dy, pullback=pullback: pullback(dy)[0],
                [x],
            )
        )
    return out


@claim(
    "pooling/max-routes-gradient-to-argmax",
    sources=["S000-22", "S002-35", "S003-10", "S004-18", "S001-05"],
    says="Max pooling passes the error unchanged to the neuron that held the maximum (the index recorded in the "
    "forward pass); the others get 0.",
    expected="holds",
)
def _max_backward() -> Evidence:
    plain = backward_check(max_pool_backward, max_pool)
    tied = backward_check(max_pool_backward, max_pool, ties=True)
    ok = all(c.ok and c.max_abs_err == 0.0 for c in plain + tied)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"dy routed to each window's argmax (summed where windows overlap) = jax.vjp(nnx.max_pool) in "
        f"{len(plain)} window/stride cases ((size, window, stride) = {BACKWARD_CASES}): max abs err "
        f"{max(c.max_abs_err for c in plain):.1e}; with rounded inputs (ties), giving the tie to the first "
        f"maximum: {max(c.max_abs_err for c in tied):.1e}",
        max_abs_err=max(c.max_abs_err for c in plain + tied),
        max_rel_err=max(c.max_rel_err for c in plain + tied),
        samples=sum(c.samples for c in plain + tied),
        dtype="float64",
    )


@claim(
    "pooling/average-spreads-gradient-evenly",
    sources=["S004-18", "S002-35", "S003-10", "S001-05"],
    says="Mean pooling divides each output's error evenly among the n neurons of its window.",
    expected="holds",
)
def _avg_backward() -> Evidence:
    cases = backward_check(avg_pool_backward, avg_pool)
    ok = all(c.ok for c in cases)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"dy / k^2 added to every entry of each window = jax.vjp(nnx.avg_pool) in {len(cases)} cases: "
        f"max rel err {max(c.max_rel_err for c in cases):.1e}",
        max_abs_err=max(c.max_abs_err for c in cases),
        max_rel_err=max(c.max_rel_err for c in cases),
        samples=sum(c.samples for c in cases),
        dtype="float64",
    )


def gradient_sums(pool, x: jax.Array, dy: jax.Array) -> tuple[float, float]:
    """(sum of dy, sum of dL/dx) through ``pool``."""
    _, pullback = jax.vjp(pool, x)
    return float(jnp.sum(dy)), float(jnp.sum(pullback(dy)[0]))


@claim(
    "pooling/gradient-sum-is-preserved",
    sources=["S000-22", "S002-35", "S004-18"],
    says="Pooling's backward pass keeps the sum of the gradients unchanged.",
    expected="qualified",
    correction="True for max pooling (ties included: the tie goes to one entry) and for average pooling over "
    "windows inside the input, overlapping or not; false for average pooling with zero padding counted in the "
    "divisor (count_include_pad, Flax's default for SAME): the share that falls on padding is lost.",
)
def _gradient_sum() -> Evidence:
    x, tied = _random((1, 7, 7, 2), 1), jnp.ones((1, 7, 7, 2))
    rows = {}
    poolings = {
        "max 2x2/2": lambda v: nnx.max_pool(v, (2, 2), (2, 2)),
        "max 3x3/2 (overlapping)": lambda v: nnx.max_pool(v, (3, 3), (2, 2)),
        "avg 2x2/2": lambda v: nnx.avg_pool(v, (2, 2), (2, 2)),
        "avg 3x3/2 (overlapping)": lambda v: nnx.avg_pool(v, (3, 3), (2, 2)),
        "avg 3x3/1 SAME, padding counted": lambda v: nnx.avg_pool(v, (3, 3), (1, 1), "SAME"),
        "avg 3x3/1 SAME, padding not counted": lambda v: nnx.avg_pool(
            v, (3, 3), (1, 1), "SAME", count_include_pad=False
        ),
    }
    for name, pool in poolings.items():
        dy = _random(jax.eval_shape(pool, x).shape, 2)
        rows[name] = gradient_sums(pool, x, dy)
        if name.startswith("max"):
            rows[name + ", all inputs tied"] = gradient_sums(pool, tied, dy)
    kept = {name: abs(a - b) <= 1e-12 * max(1.0, abs(a)) for name, (a, b) in rows.items()}
    ok = all(v for n_, v in kept.items() if "padding counted" not in n_) and not kept["avg 3x3/1 SAME, padding counted"]
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary="sum dy -> sum dx: " + "; ".join(f"{n_}: {a:.4f} -> {b:.4f}" for n_, (a, b) in rows.items()),
        samples=len(rows),
        dtype="float64",
        details={n_: {"sum_dy": a, "sum_dx": b, "preserved": kept[n_]} for n_, (a, b) in rows.items()},
    )


@claim(
    "pooling/max-unpooling-is-the-vjp-of-max-pooling",
    sources=["S002-09", "S000-22"],
    says="Max unpooling records the argmax positions in max pooling and puts each value back at its position, "
    "zeros elsewhere (SegNet's upsampling).",
    expected="holds",
)
def _unpool() -> Evidence:
    x = _random((2, 8, 8, 3), 3)
    values = _random((2, 4, 4, 3), 4)
    unpooled = max_unpool(values, x, 2, 2)
    windows = np.asarray(x).reshape(2, 4, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 4, 3, 4)
    arg = windows.argmax(-1)
    expected = np.zeros((2, 4, 2, 4, 2, 3))
    b, i, jj, c = np.indices(arg.shape)
    expected[b, i, arg // 2, jj, arg % 2, c] = np.asarray(values)
    expected = expected.reshape(2, 8, 8, 3)
    cmp = compare(lambda: unpooled, lambda: jnp.asarray(expected), [])
    nonzero = int(np.count_nonzero(np.asarray(unpooled)))
    ok = cmp.ok and cmp.max_abs_err == 0.0 and nonzero == values.size
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"jax.vjp(nnx.max_pool 2x2/2) applied to the values = the values scattered to the numpy argmax of "
        f"each window: max abs err {cmp.max_abs_err:.1e}; {nonzero} non-zeros of {unpooled.size} (one per window)",
        max_abs_err=cmp.max_abs_err,
        samples=int(values.size),
        dtype="float64",
    )


@claim(
    "pooling/spp-output-length-is-independent-of-input-size",
    sources=["S001-05"],
    says="Spatial pyramid pooling pools at several scales (e.g. 1x1, 2x2, 4x4) and concatenates the results.",
    expected="holds",
)
def _spp() -> Evidence:
    module = SpatialPyramidPooling(levels=(1, 2, 4))
    predicted = int(spp_output_length().rhs.subs({C: 5, levels[0]: 1, levels[1]: 2, levels[2]: 4}))
    lengths = {
        (hh, ww): nnx.eval_shape(lambda hh=hh, ww=ww: module(jnp.zeros((2, hh, ww, 5)))).shape[1]
        for hh, ww in itertools.product((4, 7, 13, 32), (5, 16, 29))
    }
    x = _random((1, 8, 8, 5), 6)
    top_level = np.asarray(module(x))[0, :5]
    ok = set(lengths.values()) == {predicted} and np.array_equal(top_level, np.asarray(global_max_pool(x))[0])
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"levels 1, 2, 4 over 5 channels: output length {sorted(set(lengths.values()))} for all "
        f"{len(lengths)} input sizes from 4x5 to 32x29 (SymPy: C(1 + 4 + 16) = {predicted}); the 1x1 level is "
        f"global max pooling",
        samples=len(lengths),
        details={f"{hh}x{ww}": v for (hh, ww), v in lengths.items()},
    )


@claim(
    "pooling/global-average-pooling-replaces-flatten-with-hw-times-fewer-weights",
    sources=["S003-04", "S000-07"],
    says="Global average pooling averages each channel to one value; it greatly reduces the parameters (GMP takes "
    "each channel's maximum).",
    expected="holds",
)
def _global() -> Evidence:
    hh, ww, cc, classes = 7, 7, 512, 10
    flatten_head = module_params(lambda: nnx.Linear(hh * ww * cc, classes, rngs=nnx.Rngs(0)))
    gap_head = module_params(lambda: nnx.Linear(cc, classes, rngs=nnx.Rngs(0)))
    x = _random((2, 6, 5, 3), 7)
    gap = compare(global_avg_pool, lambda v: nnx.avg_pool(v, (6, 5))[:, 0, 0, :], [x])
    gmp = compare(global_max_pool, lambda v: nnx.max_pool(v, (6, 5))[:, 0, 0, :], [x])
    grad = jax.grad(lambda v: global_avg_pool(v)[0, 0])(x)
    pixels = x.shape[1] * x.shape[2]
    even = bool(jnp.allclose(grad[0, :, :, 0], 1 / pixels, rtol=1e-15, atol=0))
    ok = gap.ok and gmp.ok and even and flatten_head - classes == hh * ww * (gap_head - classes)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"7x7x512 -> 10 classes: Flatten + Dense {flatten_head} parameters, GAP + Dense {gap_head} "
        f"(weights {hh * ww}x fewer); GAP = avg_pool over the whole map (max rel err {gap.max_rel_err:.1e}), GMP = "
        f"max_pool over it ({gmp.max_abs_err:.1e}); on a {x.shape[1]}x{x.shape[2]} map GAP's gradient is 1/(HW) = "
        f"1/{pixels} on every pixel ({'exactly' if even else 'NOT'})",
        max_abs_err=max(gap.max_abs_err, gmp.max_abs_err),
        max_rel_err=max(gap.max_rel_err, gmp.max_rel_err),
        samples=int(x.size),
        dtype="float64",
    )


@claim(
    "pooling/average-pooling-is-a-fixed-stride-k-conv",
    sources=["S002-10", "S001-30"],
    says="Downsampling is done by stride-2 pooling or by a stride-2 convolution (learnable, replacing pooling).",
    expected="holds",
)
def _avg_as_conv() -> Evidence:
    results = [
        compare(
            lambda v, win=win: avg_pool_as_conv(v, win),
            lambda v, win=win: avg_pool(v, win, win),
            [_random((2, 8, 8, 3), win)],
        )
        for win in (2, 4)
    ]
    # A conv is linear, so it can only express a pooling that is: max_pool(u + v) = max_pool(u) + max_pool(v)?
    u, v = _random((2, 8, 8, 3), 10), _random((2, 8, 8, 3), 11)
    max_additivity = compare(lambda q: max_pool(q + v, 2, 2), lambda q: max_pool(q, 2, 2) + max_pool(v, 2, 2), [u])
    ok = all(c.ok for c in results) and not max_additivity.ok
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"k x k average pooling, stride k (k = 2, 4) = depthwise stride-k conv with the fixed kernel 1/k^2: "
        f"max rel err {max(c.max_rel_err for c in results):.1e}, so a strided conv can learn average pooling; it "
        f"cannot learn max pooling, which is not linear: max_pool(u + v) - (max_pool(u) + max_pool(v)) reaches "
        f"{max_additivity.max_abs_err:.2f} for random u, v",
        max_abs_err=max(c.max_abs_err for c in results),
        max_rel_err=max(c.max_rel_err for c in results),
        samples=sum(c.samples for c in results),
        dtype="float64",
    )


@claim(
    "pooling/pool-output-size-follows-the-conv-formula",
    sources=["S000-07", "S001-05"],
    says="Pooling is usually over non-overlapping windows; overlapping pooling uses a stride smaller than the window.",
    expected="holds",
)
def _pool_sizes() -> Evidence:
    rows = []
    for size, win, stride in itertools.product((6, 7, 13, 27), (2, 3), (1, 2, 3)):
        got = nnx.eval_shape(
            lambda size=size, win=win, stride=stride: nnx.max_pool(
                jnp.zeros((1, size, size, 1)), (win, win), (stride, stride)
            )
        ).shape[1]
        rows.append((size, win, stride, conv_output_size(size, win, stride), got))
    ok = all(a_ == b_ for *_, a_, b_ in rows)
    alexnet = conv_output_size(55, 3, 2)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"nnx.max_pool output size = conv_output_size(n, window, stride) in all {len(rows)} cases, overlapping "
        f"(stride < window) included; AlexNet's overlapping 3x3/2 pool takes 55 to {alexnet}",
        samples=len(rows),
        details={"rows_n_window_stride_formula_flax": rows},
    )


def shift_change(x: jax.Array, shift: tuple[int, int], win: int = 2) -> float:
    """Fraction of max-pooled outputs that change when ``x`` is shifted circularly by ``shift``."""
    base = max_pool(x, win, win)
    moved = max_pool(jnp.roll(x, shift, axis=(1, 2)), win, win)
    return float(jnp.mean(jnp.abs(moved - base) > 0))


@claim(
    "pooling/max-pooling-is-invariant-to-translation-scale-rotation",
    sources=["S001-05", "S003-04", "S004-20"],
    says="Pooling keeps invariance to translation, scaling and rotation.",
    expected="refuted",
    correction="Max pooling is invariant only to shifts that keep each maximum inside its window. A one-pixel "
    "shift changes most 2x2/2 max-pooled outputs of a generic input; a 90-degree rotation rotates the output "
    "(equivariance, not invariance); a zoomed input gives a pooled map of another size. Global pooling on top "
    "of a circularly padded conv is what gives exact translation invariance (conv_arithmetic/conv-is-"
    "translation-invariant).",
)
def _invariance() -> Evidence:
    x = _random((8, 16, 16, 4), 9)
    pooled = max_pool(x, 2, 2)
    one_pixel = shift_change(x, (0, 1))
    two_pixels = shift_change(x, (0, 2))
    spot = jnp.zeros((1, 8, 8, 1)).at[0, 2, 2, 0].set(1.0)
    within_window = shift_change(spot, (0, 1))
    across_window = shift_change(spot, (0, 2))
    rotated = max_pool(jnp.rot90(x, axes=(1, 2)), 2, 2)
    rotation_change = float(jnp.mean(jnp.abs(rotated - pooled) > 0))
    equivariant = bool(jnp.array_equal(rotated, jnp.rot90(pooled, axes=(1, 2))))
    # Scale is reported, not tested: a zoomed input gives a map of another size, which cannot equal the
    # original's; what 2x2/2 max pooling does to a 2x nearest-neighbour zoom is undo it, exactly.
    zoomed = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    undoes_zoom = bool(jnp.array_equal(max_pool(zoomed, 2, 2), x))
    invariant = one_pixel < 0.05 and rotation_change < 0.05
    return Evidence(
        verdict=verdict(invariant, "holds"),
        method="measurement",
        summary=f"2x2/2 max pooling of 8 random 16x16x4 maps: a 1-pixel shift changes {100 * one_pixel:.0f}% of the "
        f"pooled outputs, a 2-pixel shift {100 * two_pixels:.0f}%; a single spot moved within its window changes "
        f"{100 * within_window:.0f}%, moved across a window edge {100 * across_window:.1f}% (the maximum leaves one "
        f"window for the next); a 90-degree rotation changes {100 * rotation_change:.0f}% "
        f"({'equal to' if equivariant else 'not'} the pooled map rotated: equivariant, not invariant); a 2x zoom "
        f"pooled gives back the {zoomed.shape[1] // 2}x{zoomed.shape[2] // 2} input "
        f"({'exactly' if undoes_zoom else 'NOT exactly'}), not the {pooled.shape[1]}x{pooled.shape[2]} pooled map",
        samples=int(x.size),
        dtype="float64",
        details={
            "one_pixel": one_pixel,
            "two_pixels": two_pixels,
            "spot_within": within_window,
            "spot_across": across_window,
            "rotation": rotation_change,
            "rotation_equivariant": equivariant,
            "zoom_undone_exactly": undoes_zoom,
        },
    )


@claim(
    "pooling/pooling-reduces-the-next-dense-layers-parameters",
    sources=["S003-04", "S004-20"],
    says="Pooling reduces the number of parameters (and so controls overfitting).",
    expected="qualified",
    correction="Pooling has no parameters to remove; it shrinks the feature map, which divides the weights of a "
    "dense layer that follows by k^2 (for k x k pooling), and leaves a following convolution's parameters "
    "unchanged; only its FLOPs fall, with the k^2 times fewer output positions (at least k^2-fold in XLA's "
    "count, which leaves out the taps on zero padding, a larger share of a smaller map).",
)
def _fewer_params() -> Evidence:
    hh, cc, classes = 16, 32, 10
    rows = {}
    for win in (1, 2, 4):
        side = conv_output_size(hh, win, win)
        pooled, kernel = jnp.zeros((1, side, side, cc)), jnp.zeros((3, 3, cc, cc))
        rows[win] = {
            "dense": module_params(
                lambda side=side: nnx.Linear(side * side * cc, classes, use_bias=False, rngs=nnx.Rngs(0))
            ),
            "conv": module_params(lambda: nnx.Conv(cc, cc, (3, 3), use_bias=False, rngs=nnx.Rngs(0))),
            "conv_xla_flops": xla_flops(functools.partial(conv2d, padding=1), pooled, kernel),
        }
    base = rows[1]
    ok = all(
        base["dense"] == row["dense"] * win**2
        and row["conv"] == base["conv"]
        and row["conv_xla_flops"] * win**2 <= base["conv_xla_flops"]
        for win, row in rows.items()
    )
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"{hh}x{hh}x{cc} map, k x k pooling with k = 1, 2, 4 before a Dense({classes}): its weights "
        + ", ".join(str(row["dense"]) for row in rows.values())
        + "; before a 'same' 3x3 conv: its weights "
        + ", ".join(str(row["conv"]) for row in rows.values())
        + ", its XLA flops "
        + ", ".join(f"{row['conv_xla_flops']:.0f}" for row in rows.values())
        + " (k = 2, 4 divide them by "
        + ", ".join(f"{base['conv_xla_flops'] / rows[win]['conv_xla_flops']:.2f}" for win in (2, 4))
        + ")",
        samples=len(rows),
        details={str(win): row for win, row in rows.items()},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "pooling"]) or main(["check", "pooling"]))
