"""The claims of the pooling chapter: the backward rules against ``jax.vjp`` of Flax's pooling over window/stride
cases (overlapping included, ties included), the gradient-sum rule over pooling variants, unpooling, SPP and
global pooling, and how invariant max pooling is, measured graded (correlation) over shifts, rotations, zooms."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations.bridge import instantiate, value
from derivations.claims import Evidence, claim, compared, core, evidence, premise, scoped
from derivations.compare import compare
from derivations.conv_arithmetic import conv_output_size
from derivations.harness import module_params, xla_flops
from derivations.pooling import (
    BACKWARD_CASES,
    C,
    _pooled_pair,
    _random,
    average_pool_gradient,
    backward_check,
    correlation,
    evaluate_at,
    gradient_sum,
    gradient_sums_traced,
    levels,
    max_pool_gradient,
    relative_change,
    spp_output_length,
    window,
)
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


def _worst(found, proposition, **figures):
    """One finding for a list of comparisons: the worst one when all agree, else a failed core finding."""
    if all(c.ok for c in found):
        return compared(proposition, max(found, key=lambda c: c.max_rel_err), cases=len(found), **figures)
    return core(proposition, False, failing=sum(not c.ok for c in found), cases=len(found))


# One program per shape for what several claims measure (eager jnp would compile one program per operation).
_max_pool = jax.jit(max_pool, static_argnums=(1, 2))
_window_max_grad = jax.jit(jax.vmap(jax.grad(jnp.max)))
_window_mean_grad = jax.jit(jax.vmap(jax.grad(jnp.mean)))


def _reference_pool(x: np.ndarray, win: int, reduce) -> np.ndarray:
    """Non-overlapping ``win x win`` pooling in numpy, from the definition (reshape, reduce over each window)."""
    b, h, w, c = x.shape
    oh, ow = h // win, w // win
    return reduce(x[:, : oh * win, : ow * win].reshape(b, oh, win, ow, win, c), axis=(2, 4))


@claim(
    "pooling/pooling-has-no-parameters",
    sources=["S000-22", "S002-35", "S003-10", "S000-07"],
    says="Neither max pooling nor mean pooling has parameters to learn, so in training a CNN the pooling layer "
    "only passes the error term on to the layer before and computes no gradient.",
    expected="holds",
    scope={
        "windows": [2, 3],
        "inputs": [[2, 9, 8, 3]],
        "modules": ["SpatialPyramidPooling"],
        "control": "nnx.Conv 3x3 (has parameters)",
    },
)
def _no_params(scope, rtol) -> Evidence:
    found, closed = [], []
    for (i, shape), win in itertools.product(enumerate(scope["inputs"]), scope["windows"]):
        x = _random(tuple(shape), i)
        pooled = jax.jit(lambda v, win=win: (max_pool(v, win, win), avg_pool(v, win, win)))(x)
        for out, reduce in zip(pooled, (np.max, np.mean), strict=True):
            found.append(
                compare(
                    lambda v, out=out: np.asarray(out),
                    lambda v, reduce=reduce, win=win: _reference_pool(np.asarray(v), win, reduce),
                    [x],
                    rtol=rtol,
                )
            )
        for pool in (max_pool, avg_pool):
            closed.append(len(jax.make_jaxpr(lambda v, pool=pool, win=win: pool(v, win, win))(x).consts))
    conv = nnx.jit(lambda: nnx.Conv(2, 2, (3, 3), rngs=nnx.Rngs(0)))()  # initialised in one program
    control = len(jax.make_jaxpr(lambda v: conv(v))(_random((1, 9, 9, 2), 0)).consts)
    spp = module_params(lambda: SpatialPyramidPooling(levels=(1, 2, 4)))
    return evidence(
        "measurement",
        _worst(found, "max and mean pooling = the numpy definition from the input alone (no weights), every case"),
        core("their jaxprs capture no constants (nothing learned), every case", not any(closed)),
        premise(
            "the constant count sees a layer that has weights (control: a 3x3 conv)",
            control > 0,
            conv_constants=control,
        ),
        core("SpatialPyramidPooling has no nnx.Param", spp == 0, params=spp),
    )


@claim(
    "pooling/max-routes-gradient-to-argmax",
    sources=["S000-22", "S002-35", "S003-10", "S004-18", "S001-05"],
    says="Max pooling: the forward pass records the index of the maximum, and the backward pass passes the error "
    "to that neuron unchanged; the other neurons get 0.",
    expected="qualified",
    correction="Without ties, exactly. At a tie (common after a ReLU: an all-zero window) which neuron is 'the' "
    "maximum is the implementation's choice: nnx.max_pool (XLA's select-and-scatter) passes dy to the first maximum "
    "only, while a max written with jnp.max (models.pooling.global_max_pool, the spatial pyramid pooling here) "
    "splits it evenly among the tied neurons. Both are subgradients, and both pass the whole of dy on.",
    scope={
        "cases_size_window_stride": [list(c) for c in BACKWARD_CASES],
        "inputs": ["random normal", "rounded (ties)"],
        "tie": "the first maximum in row-major order (XLA's select-and-scatter)",
        "window_points": 64,
        "tied_window": "2x2 of zeros; nnx.max_pool and models.pooling.global_max_pool",
    },
)
def _max_backward(scope, rtol) -> Evidence:
    cases = [tuple(c) for c in scope["cases_size_window_stride"]]
    plain = backward_check(max_pool_backward, max_pool, cases=cases, rtol=rtol)
    tied = backward_check(max_pool_backward, max_pool, ties=True, cases=cases, rtol=rtol)
    # The displayed derivative of Max, evaluated, against jax.grad of a max over one window (no ties).
    # evaluate_at per point (lambdify of Max goes through a slow Piecewise simplification).
    displayed = max_pool_gradient()
    points = np.random.default_rng(3).normal(size=(scope["window_points"], len(window)))
    window_grad = compare(
        lambda q: np.asarray([evaluate_at(displayed, dict(zip(window, row, strict=True))) for row in np.asarray(q)]),
        lambda q: np.asarray(_window_max_grad(q))[:, 0],
        [jax.device_put(points)],
        rtol=rtol,
    )
    zeros = jnp.zeros((1, 2, 2, 1))
    routed = {
        "nnx.max_pool": np.asarray(jax.grad(lambda v: jnp.sum(max_pool(v, 2, 2)))(zeros)).ravel(),
        "global_max_pool": np.asarray(jax.grad(lambda v: jnp.sum(global_max_pool(v)))(zeros)).ravel(),
    }
    return evidence(
        "autodiff",
        _worst(plain, "dy routed to each window's argmax (summed where windows overlap) = jax.vjp(nnx.max_pool)"),
        _worst(tied, "with ties, routed to the first maximum = jax.vjp(nnx.max_pool)"),
        compared("the displayed dy/dx1 (Heaviside of the differences) = jax.grad of the window's max", window_grad),
        core("every max pooling here passes the whole of dy on at a tie (the gradient sums to 1)",
             all(abs(g.sum() - 1.0) <= rtol for g in routed.values())),
        scoped("at a tie every max pooling here passes dy to one neuron and 0 to the others",
               all(np.count_nonzero(g) == 1 for g in routed.values()),
               **{k: str(v.tolist()) for k, v in routed.items()}),
    )


@claim(
    "pooling/average-spreads-gradient-evenly",
    sources=["S004-18", "S002-35", "S003-10", "S001-05"],
    says="Mean pooling: the error term of the next layer is divided evenly among all the neurons of the "
    "corresponding block of the layer before.",
    expected="holds",
    scope={"cases_size_window_stride": [list(c) for c in BACKWARD_CASES]},
)
def _avg_backward(scope, rtol) -> Evidence:
    cases = [tuple(c) for c in scope["cases_size_window_stride"]]
    found = backward_check(avg_pool_backward, avg_pool, cases=cases, rtol=rtol)
    displayed = np.asarray(instantiate(average_pool_gradient()), dtype=np.float64).ravel()
    one_window_grad = jax.jit(jax.grad(lambda v: avg_pool(v, 2, 2)[0, 0, 0, 0]))
    one_window = np.asarray(one_window_grad(_random((1, 2, 2, 1), 4))).ravel()
    return evidence(
        "autodiff",
        _worst(found, "dy / k^2 added to every entry of each window = jax.vjp(nnx.avg_pool)"),
        compared(
            "the displayed gradient of a 2x2 mean (1/4 each) = jax.grad of nnx.avg_pool",
            compare(lambda: displayed, lambda: one_window, [], rtol=rtol),
        ),
    )


@claim(
    "pooling/gradient-sum-is-preserved",
    sources=["S000-22", "S002-35", "S004-18"],
    says="Follow the principle that the sum of the propagated gradients stays unchanged.",
    expected="qualified",
    correction="True for max pooling (ties included: the tie goes to one entry) and for average pooling over "
    "windows inside the input, overlapping or not; false for average pooling with zero padding counted in the "
    "divisor (count_include_pad, Flax's default for SAME): the share that falls on padding is lost.",
    rtol=1e-12,
    tolerance="sums of ~50 float64 terms in different orders (a few ulps of the sum)",
    scope={
        "input": [1, 7, 7, 2],
        "poolings": [
            "max 2x2/2",
            "max 3x3/2",
            "avg 2x2/2",
            "avg 3x3/2",
            "avg 3x3/1 SAME padding counted",
            "avg 3x3/1 SAME padding not counted",
        ],
        "inputs": ["random", "all tied (max)"],
        "window_points": 16,
    },
)
def _gradient_sum(scope, rtol) -> Evidence:
    x, tied = _random(tuple(scope["input"]), 1), np.ones(tuple(scope["input"]))
    poolings = {
        "max 2x2/2": lambda v: nnx.max_pool(v, (2, 2), (2, 2)),
        "max 3x3/2": lambda v: nnx.max_pool(v, (3, 3), (2, 2)),
        "avg 2x2/2": lambda v: nnx.avg_pool(v, (2, 2), (2, 2)),
        "avg 3x3/2": lambda v: nnx.avg_pool(v, (3, 3), (2, 2)),
        "avg 3x3/1 SAME padding counted": lambda v: nnx.avg_pool(v, (3, 3), (1, 1), "SAME"),
        "avg 3x3/1 SAME padding not counted": lambda v: nnx.avg_pool(
            v, (3, 3), (1, 1), "SAME", count_include_pad=False
        ),
    }
    dys = {name: _random(jax.eval_shape(poolings[name], x).shape, 2) for name in scope["poolings"]}

    @jax.jit
    def all_sums(x, tied, dys):
        """(sum of dy, sum of dL/dx) of every pooling, tied inputs for max, in one program."""
        sums = {}
        for name, dy in dys.items():
            sums[name] = gradient_sums_traced(poolings[name], x, dy)
            if name.startswith("max"):
                sums[name + ", all tied"] = gradient_sums_traced(poolings[name], tied, dy)
        return sums

    measured = all_sums(x, tied, dys)
    rows = {}
    for name in scope["poolings"]:
        rows[name] = tuple(float(v) for v in measured[name])
        if name.startswith("max"):
            rows[name + ", all tied"] = tuple(float(v) for v in measured[name + ", all tied"])
    kept = {name: abs(a - b) <= rtol * abs(a) for name, (a, b) in rows.items()}
    # The displayed sums, both sides evaluated at random windows (no ties): the left side with jax.grad's
    # gradient entries put in for its summand, the right side (SymPy's formula) evaluated by value.
    mean_eq, max_eq = gradient_sum()
    points = np.random.default_rng(5).normal(size=(scope["window_points"], len(window)))
    entry = sp.IndexedBase("g")

    def lhs_at(eq, grads) -> float:
        summed = eq.lhs.subs(eq.lhs.function, entry[eq.lhs.limits[0][0]]).doit()
        return float(summed.subs({entry[j + 1]: float(v) for j, v in enumerate(grads)}))

    mean_grads = np.asarray(_window_mean_grad(points))
    max_grads = np.asarray(_window_max_grad(points))
    # evaluate_at per point: lambdify prints Max as a Piecewise and simplifies its conditions (~10 s here).
    max_rhs = np.asarray([evaluate_at(max_eq, dict(zip(window, row, strict=True))) for row in points])
    sides = {
        "mean": ([lhs_at(mean_eq, row) for row in mean_grads], [value(mean_eq)] * len(points)),
        "max": ([lhs_at(max_eq, row) for row in max_grads], max_rhs.tolist()),
    }
    displayed_ok = all(
        abs(left - 1.0) <= rtol and abs(right - 1.0) <= rtol
        for lefts, rights in sides.values()
        for left, right in zip(lefts, rights, strict=True)
    )
    return evidence(
        "autodiff",
        core(
            "the displayed window sums, both sides (left: jax.grad's entries summed; right: the SymPy formula), "
            "are 1 for mean and max pooling at every random window",
            displayed_ok,
            windows=len(points),
        ),
        core(
            "max pooling keeps the sum, overlapping and tied included",
            all(v for nm, v in kept.items() if nm.startswith("max")),
        ),
        core(
            "average pooling over windows inside the input keeps it, overlapping included",
            all(v for nm, v in kept.items() if nm.startswith("avg") and "SAME" not in nm),
        ),
        scoped(
            "average pooling with SAME zero padding keeps it too (padding counted in the divisor)",
            kept["avg 3x3/1 SAME padding counted"],
            sum_dy=rows["avg 3x3/1 SAME padding counted"][0],
            sum_dx=rows["avg 3x3/1 SAME padding counted"][1],
        ),
        core("average pooling with SAME padding not counted keeps it", kept["avg 3x3/1 SAME padding not counted"]),
        details={n_: {"sum_dy": a, "sum_dx": b, "preserved": kept[n_]} for n_, (a, b) in rows.items()},
    )


@claim(
    "pooling/max-unpooling-is-the-vjp-of-max-pooling",
    sources=["S002-09", "S000-22"],
    says="Max Unpooling: record the index of the maximum in max pooling; when unpooling, put each value back at "
    "that index and fill the other positions with 0.",
    expected="holds",
    scope={"input": [2, 8, 8, 3], "window": 2, "stride": 2, "reference": "numpy argmax scatter"},
)
def _unpool(scope, rtol) -> Evidence:
    b_, hh, ww, cc = scope["input"]
    win = scope["window"]
    oh, ow = hh // win, ww // win
    x = _random(tuple(scope["input"]), 3)
    values = _random((b_, oh, ow, cc), 4)
    unpooled = np.asarray(jax.jit(max_unpool, static_argnums=(2, 3))(values, x, win, scope["stride"]))
    windows = np.asarray(x).reshape(b_, oh, win, ow, win, cc).transpose(0, 1, 3, 5, 2, 4).reshape(b_, oh, ow, cc, -1)
    arg = windows.argmax(-1)
    expected = np.zeros((b_, oh, win, ow, win, cc))
    b, i, jj, c = np.indices(arg.shape)
    expected[b, i, arg // win, jj, arg % win, c] = np.asarray(values)
    cmp = compare(lambda: unpooled, lambda: expected.reshape(b_, hh, ww, cc), [], rtol=rtol)
    nonzero = int(np.count_nonzero(np.asarray(unpooled)))
    return evidence(
        "autodiff",
        compared("jax.vjp(nnx.max_pool) applied to the values = the values scattered to each window's argmax", cmp),
        core("one non-zero per window, zeros elsewhere", nonzero == values.size, nonzero=nonzero, size=unpooled.size),
    )


@claim(
    "pooling/spp-output-length-is-independent-of-input-size",
    sources=["S001-05"],
    says="Spatial pyramid pooling mainly describes multi-scale information: e.g. it computes 1x1, 2x2 and 4x4 "
    "poolings at once and concatenates the results as the next layer's input. (The claim's id, an output length "
    "independent of the input size, is He et al.'s point, not the note's.)",
    expected="holds",
    scope={"levels": [[1, 2, 4], [1, 3, 6]], "channels": 5, "heights": [6, 7, 13, 32], "widths": [6, 16, 29]},
)
def _spp(scope, rtol) -> Evidence:
    rows, predicted = {}, {}
    for lv in map(tuple, scope["levels"]):
        module = SpatialPyramidPooling(levels=lv)
        predicted[lv] = int(value(spp_output_length(), {C: scope["channels"], **dict(zip(levels, lv, strict=True))}))
        rows[lv] = {
            (hh, ww): nnx.eval_shape(
                lambda hh=hh, ww=ww, module=module: module(jnp.zeros((2, hh, ww, scope["channels"])))
            ).shape[1]
            for hh, ww in itertools.product(scope["heights"], scope["widths"])
        }
    x = _random((1, 8, 8, scope["channels"]), 6)
    # Each level is an n x n pooling of the map: where n divides the side, level n = max_pool(side/n, side/n),
    # its n^2 cells in row-major order, each with its C channels.
    side, cc = x.shape[1], scope["channels"]
    spp_out, global_max, by_level = (
        jax.tree.map(np.asarray, v)
        for v in jax.jit(
            lambda v: (
                SpatialPyramidPooling(levels=(1, 2, 4))(v),
                global_max_pool(v),
                [max_pool(v, side // lv, side // lv).reshape(1, -1) for lv in (1, 2, 4)],
            )
        )(x)
    )
    top = compare(lambda v: spp_out[:, :cc], lambda v: global_max, [x], rtol=rtol)
    start, level_cmp = 0, []
    for lv, pooled in zip((1, 2, 4), by_level, strict=True):
        level_cmp.append(
            compare(
                lambda v, lv=lv, start=start: spp_out[:, start : start + cc * lv**2],
                lambda v, pooled=pooled: pooled,
                [x],
                rtol=rtol,
            )
        )
        start += cc * lv**2
    return evidence(
        "measurement",
        core(
            "the output length is C sum n_i^2 (displayed formula) for every input size and pyramid",
            all(set(r.values()) == {predicted[lv]} for lv, r in rows.items()),
            sizes=len(rows[next(iter(rows))]),
            length=predicted[(1, 2, 4)],
        ),
        compared("the 1x1 level is global max pooling", top),
        _worst(
            level_cmp, "the 1x1, 2x2 and 4x4 levels are max poolings of the map into 1, 4 and 16 cells, concatenated"
        ),
        details={str(lv): {f"{hh}x{ww}": v for (hh, ww), v in r.items()} for lv, r in rows.items()},
    )


@claim(
    "pooling/global-average-pooling-replaces-flatten-with-hw-times-fewer-weights",
    sources=["S003-04", "S000-07"],
    says="Global average pooling (GAP): averages all the values of each channel and outputs one global value; it "
    "greatly reduces the model's parameters and eases overfitting (GMP takes each channel's maximum).",
    expected="holds",
    scope={"maps_h_w_c": [[7, 7, 512], [4, 6, 64]], "classes": 10, "input": [2, 6, 5, 3]},
)
def _global(scope, rtol) -> Evidence:
    heads = {}
    for hh, ww, cc in scope["maps_h_w_c"]:
        flatten = module_params(
            lambda n_=hh * ww * cc: nnx.Linear(n_, scope["classes"], use_bias=False, rngs=nnx.Rngs(0))
        )
        gap = module_params(lambda cc=cc: nnx.Linear(cc, scope["classes"], use_bias=False, rngs=nnx.Rngs(0)))
        heads[(hh, ww, cc)] = (flatten, gap)
    x = _random(tuple(scope["input"]), 7)
    _, hh, ww, _ = scope["input"]
    pooled = jax.jit(
        lambda v: (
            global_avg_pool(v),
            nnx.avg_pool(v, (hh, ww))[:, 0, 0, :],
            global_max_pool(v),
            nnx.max_pool(v, (hh, ww))[:, 0, 0, :],
            jax.grad(lambda q: global_avg_pool(q)[0, 0])(v)[0, :, :, 0],
        )
    )(x)
    gap_out, avg_out, gmp_out, max_out, grad = (np.asarray(v) for v in pooled)
    gap = compare(lambda v: gap_out, lambda v: avg_out, [x], rtol=rtol)
    gmp = compare(lambda v: gmp_out, lambda v: max_out, [x], rtol=rtol)
    even = compare(lambda: grad, lambda: np.full((hh, ww), 1.0) / (hh * ww), [], rtol=rtol)
    first = next(iter(heads.values()))
    return evidence(
        "measurement",
        compared("GAP = avg_pool over the whole map", gap),
        compared("GMP = max_pool over the whole map", gmp),
        compared("GAP's gradient is 1/(HW) on every pixel", even),
        core(
            "a dense head after GAP has HW times fewer weights than after Flatten, every map",
            all(f == g * (h_ * w_) for (h_, w_, _), (f, g) in heads.items()),
            flatten=first[0],
            gap=first[1],
        ),
    )


@claim(
    "pooling/average-pooling-is-a-fixed-stride-k-conv",
    sources=["S002-10", "S001-30"],
    says="Downsampling: a. a pooling layer with stride 2 (max or average pooling); b. a convolution layer with "
    "stride 2: pooling is not learnable, and a learnable stride-2 convolution can replace it for better results. "
    "(Tested is a gloss: what a strided convolution can stand in for; 'better results' is not tested.)",
    expected="holds",
    scope={"windows": [2, 4], "input": [2, 8, 8, 3]},
)
def _avg_as_conv(scope, rtol) -> Evidence:
    found = []
    for win in scope["windows"]:
        x = _random(tuple(scope["input"]), win)
        as_conv, pooled = (np.asarray(v) for v in jax.jit(lambda v, win=win: (avg_pool_as_conv(v, win),
                                                                               avg_pool(v, win, win)))(x))
        found.append(compare(lambda v, c=as_conv: c, lambda v, p=pooled: p, [x], rtol=rtol))
    # A conv is linear, so it can only express a pooling that is: is max_pool(u + v) = max_pool(u) + max_pool(v)?
    u, v = _random(tuple(scope["input"]), 10), _random(tuple(scope["input"]), 11)
    both_sides = jax.jit(lambda q, v: (max_pool(q + v, 2, 2), max_pool(q, 2, 2) + max_pool(v, 2, 2)))
    of_sum, sum_of = (np.asarray(t) for t in both_sides(u, v))
    additive = compare(lambda q: of_sum, lambda q: sum_of, [u], rtol=rtol)
    return evidence(
        "measurement",
        _worst(found, "k x k average pooling, stride k = a depthwise stride-k conv with the fixed kernel 1/k^2"),
        core(
            "max pooling is not linear, so no conv computes it (a learned conv replaces it, not reproduces it)",
            not additive.ok,
            additivity_error=additive.max_abs_err,
        ),
    )


@claim(
    "pooling/pool-output-size-follows-the-conv-formula",
    sources=["S000-07", "S001-05"],
    says="Overlapping pooling uses a stride smaller than the window width, so neighbouring windows overlap as they "
    "slide.",
    expected="holds",
    scope={
        "n": [6, 7, 13, 27, 55],
        "window": [2, 3],
        "stride": [1, 2, 3],
        "coverage_n": 9,
        "coverage_window_stride": [[2, 1], [2, 2], [3, 2], [3, 3]],
    },
)
def _pool_sizes(scope) -> Evidence:
    rows = []
    for size, win, stride in itertools.product(scope["n"], scope["window"], scope["stride"]):
        got = jax.eval_shape(
            lambda v, win=win, stride=stride: nnx.max_pool(v, (win, win), (stride, stride)),
            jax.ShapeDtypeStruct((1, size, size, 1), jnp.float64),
        ).shape[1]
        rows.append((size, win, stride, conv_output_size(size, win, stride), got))
    # How many windows read each input: the VJP of a sum-pool (avg_pool times k^2) applied to ones.
    n_cover = scope["coverage_n"]
    configs = [tuple(c) for c in scope["coverage_window_stride"]]

    @jax.jit
    def coverage(ones):
        most = []
        for win, stride in configs:
            y, pullback = jax.vjp(lambda v, win=win, stride=stride: avg_pool(v, win, stride) * win**2, ones)
            most.append(jnp.max(pullback(jnp.ones_like(y))[0]))
        return jnp.stack(most)

    cover = dict(zip(configs, (int(c) for c in np.asarray(coverage(np.ones((1, n_cover, n_cover, 1))))), strict=True))
    return evidence(
        "measurement",
        core(
            "nnx.max_pool's output size = conv_output_size(n, window, stride) in every case",
            all(a_ == b_ for *_, a_, b_ in rows),
            cases=len(rows),
        ),
        core(
            "stride < window: some inputs are read by more than one window (overlap); stride >= window: none is",
            all((c > 1) == (stride < win) for (win, stride), c in cover.items()),
            cases=len(cover),
        ),
        details={"rows_n_window_stride_formula_flax": rows},
    )


# --- invariance -----------------------------------------------------------------------------------------


def _inputs(scope) -> dict[str, jax.Array]:
    """White noise and smooth noise (a circular box filter of radius ``smoothing``) of the scope's shape."""
    x = _random(tuple(scope["input"]), 9)
    return {"white noise": np.asarray(x), "smooth noise": np.asarray(_box_filter(x, scope["smoothing"]))}


@functools.partial(jax.jit, static_argnums=1)
def _box_filter(x: jax.Array, r: int) -> jax.Array:
    """The circular box filter of radius ``r`` (the mean of the (2r + 1)^2 shifted copies), one program."""
    smooth = sum(jnp.roll(x, (i, j), axis=(1, 2)) for i in range(-r, r + 1) for j in range(-r, r + 1))
    return smooth / (2 * r + 1) ** 2


def _transformed(x: jax.Array, kind: str, amount) -> jax.Array:
    """x shifted (pixels, circular), rotated (degrees, bilinear, wrapped) or zoomed about the centre (factor)."""
    import scipy.ndimage  # here: a top-level import costs every process that loads the chapter ~1 s
    v = np.asarray(x)  # in NumPy: no program per shift
    if kind == "shift":
        return np.roll(v, (0, amount), axis=(1, 2))
    if kind == "rotation":
        return scipy.ndimage.rotate(v, amount, axes=(1, 2), reshape=False, order=1, mode="grid-wrap")
    zoomed = scipy.ndimage.zoom(v, (1, amount, amount, 1), order=1, mode="grid-wrap")
    offset = (zoomed.shape[1] - v.shape[1]) // 2
    return zoomed[:, offset : offset + v.shape[1], offset : offset + v.shape[2]]


def _invariance_table(scope, kind: str) -> list[dict]:
    """Correlation of input and transformed input, and of their max poolings, for every input, window, amount."""
    rows = []
    for (name, x), win, amount in itertools.product(_inputs(scope).items(), scope["windows"], scope[kind]):
        moved = _transformed(x, kind, amount)
        pooled, pooled_moved = (np.asarray(v) for v in _pooled_pair(x, moved, win))
        rows.append(
            {
                "input": name,
                "window": win,
                kind: amount,
                "input_corr": correlation(x, moved),
                "pooled_corr": correlation(pooled, pooled_moved),
                "pooled_rel_l2": relative_change(pooled, pooled_moved),
            }
        )
    return rows


INVARIANCE_SCOPE = {
    "input": [8, 32, 32, 4],
    "smoothing": 2,
    "windows": [2, 4],
    "measure": "Pearson correlation",
    "agreement_correlation": 0.5,
}


@claim(
    "pooling/max-pooling-is-approximately-invariant-to-small-translations",
    sources=["S001-05", "S003-04", "S004-20"],
    says="The essence of pooling is downsampling, which markedly reduces the parameters; besides, it keeps "
    "invariance to translation (shifting) operations.",
    expected="qualified",
    correction="Approximately, and only for shifts smaller than the window: a 1-pixel shift leaves max-pooled maps "
    "more alike than the inputs (correlation up from ~0 to ~0.4 for white noise at 2x2, ~0.7 at 4x4), but the "
    "pooled map still changes, and a shift by the stride just moves it by one cell (no invariance left). Exact "
    "translation invariance needs global pooling (conv_arithmetic/conv-is-translation-invariant).",
    scope={**INVARIANCE_SCOPE, "shift": [1, 2, 3, 4]},
    aliases=["pooling/max-pooling-is-invariant-to-translation-scale-rotation"],
)
def _translation(scope) -> Evidence:
    rows = _invariance_table(scope, "shift")
    small = [r for r in rows if r["shift"] < r["window"]]
    agree = scope["agreement_correlation"]
    x = _inputs(scope)["white noise"]
    cell = all(
        bool(
            np.array_equal(
                np.asarray(_max_pool(np.roll(x, (0, win), axis=(1, 2)), win, win)),
                np.roll(np.asarray(_max_pool(x, win, win)), (0, 1), axis=(1, 2)),
            )
        )
        for win in scope["windows"]
    )
    one = next(r for r in rows if r["input"] == "white noise" and r["window"] == 2 and r["shift"] == 1)
    wide = next(
        r for r in rows if r["input"] == "white noise" and r["window"] == max(scope["windows"]) and r["shift"] == 1
    )
    exact = all(r["pooled_corr"] == 1.0 for r in rows if r["shift"] == 1)
    return evidence(
        "measurement",
        core(
            "pooling makes shifted maps more alike than the inputs, for every shift below the window, input and window",
            all(r["pooled_corr"] > r["input_corr"] for r in small),
            input_corr=one["input_corr"],
            pooled_corr=one["pooled_corr"],
            pooled_corr_widest_window=wide["pooled_corr"],
        ),
        scoped("exact invariance: a 1-pixel shift leaves the pooled map unchanged", exact),
        scoped(
            f"the pooled maps still agree (correlation >= {agree}) at every shift up to the window",
            all(r["pooled_corr"] >= agree for r in rows if r["shift"] <= r["window"]),
            lowest=min(r["pooled_corr"] for r in rows if r["shift"] <= r["window"]),
        ),
        premise(
            "a shift by the stride moves the pooled map by exactly one cell (equivariance on the pooled grid)", cell
        ),
        details={
            "rows": rows,
            "note": "pooled_rel_l2 is the relative L2 change; it is small even for unrelated "
            "maps (see _correlation) and decides nothing",
        },
    )


@claim(
    "pooling/max-pooling-is-invariant-to-scale-and-rotation",
    sources=["S001-05", "S003-04", "S004-20"],
    says="Pooling keeps invariance to scaling (伸缩) and rotation (旋转) operations.",
    expected="qualified",
    correction="Only approximately and only for small changes: max pooling makes a 5-degree rotation or a 1.1x zoom "
    "more alike than the inputs, but a 90-degree rotation or a 2x zoom leaves the pooled maps unrelated (a 90-degree "
    "rotation rotates the pooled map: equivariance, not invariance).",
    scope={
        **INVARIANCE_SCOPE,
        "rotation": [5, 15, 90],
        "zoom": [1.1, 1.25, 2.0],
        "small": {"rotation": 5, "zoom": 1.1},
    },
)
def _scale_rotation(scope) -> Evidence:
    rotation, zoom = _invariance_table(scope, "rotation"), _invariance_table(scope, "zoom")
    agree = scope["agreement_correlation"]
    x = _inputs(scope)["white noise"]
    equivariant = bool(
        np.array_equal(
            np.asarray(_max_pool(np.rot90(x, axes=(1, 2)).copy(), 2, 2)),
            np.rot90(np.asarray(_max_pool(x, 2, 2)), axes=(1, 2)),
        )
    )
    small_r = [r for r in rotation if r["rotation"] == scope["small"]["rotation"]]
    small_z = [r for r in zoom if r["zoom"] == scope["small"]["zoom"]]
    largest_r = [r for r in rotation if r["rotation"] == max(scope["rotation"])]
    largest_z = [r for r in zoom if r["zoom"] == max(scope["zoom"])]
    return evidence(
        "measurement",
        core(
            f"a {scope['small']['rotation']}-degree rotation: pooled maps more alike than the inputs, every input "
            "and window",
            all(r["pooled_corr"] > r["input_corr"] for r in small_r),
        ),
        core(
            f"a {scope['small']['zoom']}x zoom: pooled maps more alike than the inputs, every input and window",
            all(r["pooled_corr"] > r["input_corr"] for r in small_z),
        ),
        scoped(
            f"at every rotation up to {max(scope['rotation'])} degrees the pooled maps agree (correlation >= {agree})",
            all(r["pooled_corr"] >= agree for r in rotation),
            lowest=min(r["pooled_corr"] for r in largest_r),
        ),
        scoped(
            f"at every zoom up to {max(scope['zoom'])}x the pooled maps agree (correlation >= {agree})",
            all(r["pooled_corr"] >= agree for r in zoom),
            lowest=min(r["pooled_corr"] for r in largest_z),
        ),
        premise("a 90-degree rotation rotates the pooled map (equivariance, not invariance)", equivariant),
        details={"rotation": rotation, "zoom": zoom},
    )


@functools.partial(jax.jit, static_argnums=2)
def _pooled_and_used_weights(x: jax.Array, kernel: jax.Array, win: int) -> tuple[jax.Array, jax.Array]:
    """The max-pooled map, and the weights a following 3x3 conv actually uses: the kernel entries its output
    depends on (the gradient of a sum of squares, non-zero exactly on them)."""
    pooled = max_pool(x, win, win)
    return pooled, jax.grad(lambda q: jnp.sum(conv2d(pooled, q, padding=1) ** 2))(kernel)


@claim(
    "pooling/pooling-reduces-the-next-dense-layers-parameters",
    sources=["S003-04", "S004-20"],
    says="Pooling can also control overfitting to some degree: by shrinking the feature map, it reduces the "
    "number of parameters in the model and lowers its complexity.",
    expected="qualified",
    correction="Pooling has no parameters to remove; it shrinks the feature map, which divides the weights of a "
    "dense layer that follows by k^2 (for k x k pooling), and leaves a following convolution's parameters "
    "unchanged; only its FLOPs fall, with the k^2 times fewer output positions (at least k^2-fold in XLA's "
    "count, which leaves out the taps on zero padding, a larger share of a smaller map).",
    scope={"map": [1, 16, 16, 32], "pool": [1, 2, 4], "classes": 10, "next_conv": "3x3 same, 32 -> 32"},
)
def _fewer_params(scope) -> Evidence:
    cc = scope["map"][3]
    x = _random(tuple(scope["map"]), 12)
    kernel = _random((3, 3, cc, cc), 13)
    rows = {}
    for win in scope["pool"]:
        pooled, used = _pooled_and_used_weights(x, kernel, win)
        features = int(np.prod(pooled.shape[1:]))
        rows[win] = {
            "dense": module_params(
                lambda f=features: nnx.Linear(f, scope["classes"], use_bias=False, rngs=nnx.Rngs(0))
            ),
            "conv_weights_used": int(np.count_nonzero(np.asarray(used))),
            "conv_xla_flops": xla_flops(
                functools.partial(conv2d, padding=1), jax.ShapeDtypeStruct(pooled.shape, pooled.dtype), kernel
            ),
        }
    base = rows[1]
    return evidence(
        "measurement",
        core(
            "k x k pooling divides a following dense layer's weights by k^2",
            all(base["dense"] == row["dense"] * win**2 for win, row in rows.items()),
            dense_weights=str([row["dense"] for row in rows.values()]),
        ),
        scoped(
            "it reduces a following conv's parameters (the weights its output depends on)",
            all(row["conv_weights_used"] < base["conv_weights_used"] for win, row in rows.items() if win > 1),
            conv_weights_used=str([row["conv_weights_used"] for row in rows.values()]),
        ),
        core(
            "it divides a following conv's XLA flops by at least k^2",
            all(row["conv_xla_flops"] * win**2 <= base["conv_xla_flops"] for win, row in rows.items()),
        ),
        details={str(win): row for win, row in rows.items()},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "pooling"]))
