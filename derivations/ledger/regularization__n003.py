"""Claims found while annotating note 003 (regularisation chapter): what w and b do to a curve, minimal-loss
parameters that differ widely, the penalised and the constrained forms of L1 and L2 (Lagrange), and the shapes
of the L1 and L2 balls in two dimensions."""

from __future__ import annotations

import itertools

import jax
import numpy as np

from derivations.claims import Evidence, claim, core, evidence, premise, scoped

# --- w and b -------------------------------------------------------------------------------------------

def _line(t, w, b):
    return w * t + b


def bias_findings(scope: dict, line=_line) -> dict:
    slope = jax.jit(jax.vmap(jax.grad(line), in_axes=(0, None, None)))
    x = np.linspace(*scope["x"])
    out = {"vertical": 0.0, "slope_kept": 0.0, "slope_changed": np.inf, "horizontal": 0.0}
    for w, b, d in itertools.product(scope["weights"], scope["biases"], scope["deltas"]):
        out["vertical"] = max(out["vertical"], float(np.max(np.abs(line(x, w, b + d) - (line(x, w, b) + d)))))
        base = np.asarray(slope(x, w, b))
        out["slope_kept"] = max(out["slope_kept"], float(np.max(np.abs(np.asarray(slope(x, w, b + d)) - base))))
        out["slope_changed"] = min(out["slope_changed"], float(np.min(np.abs(np.asarray(slope(x, w + d, b)) - base))))
        s = jax.nn.sigmoid
        out["horizontal"] = max(out["horizontal"], float(np.max(np.abs(s(w * x + b + d) - s(w * (x + d / w) + b)))))
    return out


@claim(
    "regularization/bias-only-translates-the-curve",
    sources=["S003-08"],
    says="Before the activation a neuron's output is y = wx + b; w, the weight of each input, directly determines "
    "what the fitted curve looks like, while the bias b does not change the curve's shape, it only translates it "
    "(b作为偏置，不会改变曲线的样子，只会改变曲线的平移情况).",
    expected="holds",
    scope={"x": [-3.0, 3.0, 61], "weights": [-2.0, 0.5, 3.0], "biases": [-1.0, 0.0, 2.0], "deltas": [-0.7, 1.5],
           "activation_for_the_shift": "sigmoid"},
    atol=1e-14, tolerance="float64 rounding of w x + b (a few ulps of values of order 10)",
)
def _bias(scope, atol) -> Evidence:
    r = bias_findings(scope)
    return evidence(
        "autodiff",
        core("changing b by d moves every output by d (a vertical translation)", r["vertical"] <= atol,
             max_abs_err=r["vertical"]),
        core("it leaves the slope dy/dx = w unchanged at every x (jax.grad)", r["slope_kept"] <= atol),
        core("changing w by d changes the slope by d everywhere (w sets the curve's shape)",
             abs(r["slope_changed"] - min(abs(d) for d in scope["deltas"])) <= atol),
        core("after a sigmoid, b + d is the same curve moved by -d/w along x (a translation still)",
             r["horizontal"] <= atol, max_abs_err_shift=r["horizontal"]),
    )


# --- many minimisers -----------------------------------------------------------------------------------

def minimiser_findings(scope: dict) -> dict:
    rng = np.random.default_rng(scope["seed"])
    out = {}
    for name, (n, p) in scope["designs"].items():
        x = rng.normal(size=(n, p))
        y = rng.normal(size=n)
        loss = lambda w, x=x, y=y: float(np.mean((x @ w - y) ** 2))  # noqa: E731
        w0 = np.linalg.lstsq(x, y, rcond=None)[0]
        _, sv, vt = np.linalg.svd(x)
        rank = int(np.sum(sv > 1e-10 * sv[0]))
        null = vt[rank:]
        if len(null):
            w1 = w0 + scope["spread"] * null[0] / np.linalg.norm(null[0])
        else:  # full column rank: any move raises the loss
            w1 = w0 + scope["spread"] * rng.normal(size=p) / np.sqrt(p)
        out[name] = {"loss0": loss(w0), "loss1": loss(w1), "norms": (float(np.linalg.norm(w0)),
                                                                     float(np.linalg.norm(w1))), "null": len(null)}
    return out


def relu_rescaling(examples: int, inputs: int, hidden: int, c: float, seed: int) -> dict:
    """Mean squared errors and parameter norms of a two-layer ReLU network at random parameters and at the
    same parameters with the hidden layer rescaled (c W1, c b1, W2 / c), and with its units permuted."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(examples, inputs)), rng.normal(size=examples)
    w1, b1, w2, b2 = rng.normal(size=(inputs, hidden)), rng.normal(size=hidden), rng.normal(size=hidden), 0.1

    def loss(w1, b1, w2):
        return float(np.mean((np.maximum(x @ w1 + b1, 0.0) @ w2 + b2 - y) ** 2))

    def norm(*params):
        return float(np.sqrt(sum(np.sum(np.square(q)) for q in params)))

    order = rng.permutation(hidden)
    return {"loss": loss(w1, b1, w2), "rescaled_loss": loss(c * w1, c * b1, w2 / c),
            "permuted_loss": loss(w1[:, order], b1[order], w2[order]),
            "norm": norm(w1, b1, w2), "rescaled_norm": norm(c * w1, c * b1, w2 / c)}


@claim(
    "regularization/minimal-loss-parameters-can-differ-widely",
    sources=["S003-08"],
    says="Even when the minimal loss value is reached, the corresponding parameters w and b can differ enormously, "
    "some large, some small (即使达到了最小的损失函数值，其对应的参数w和b也会天差地别).",
    expected="qualified",
    correction="For a network it holds whatever the amount of data: a ReLU unit is positively homogeneous, so "
    "scaling a hidden layer's incoming weights and bias by c > 0 and its outgoing weights by 1/c gives the same "
    "function, hence the same loss, for every parameter setting, minimisers included (and permuting hidden "
    "units changes nothing either). For a linear model it holds only where the minimiser is not unique: with "
    "more weights than independent examples (or collinear inputs) every w* + v, v in the null space of X, has "
    "the same minimal loss; with full column rank (more independent examples than weights) the least-squares "
    "minimiser is unique.",
    scope={"designs": {"over-parameterised": [8, 20], "full column rank": [40, 5]}, "spread": 100.0, "seed": 0,
           "widely": 10, "loss": "mean squared error of a linear model",
           "relu_network": {"examples": 400, "inputs": 3, "hidden": 4, "rescale": 100.0}},
    rtol=1e-9, tolerance="the losses compared are equal up to the lstsq rounding, amplified by the spread (100)",
)
def _minimisers(scope, rtol) -> Evidence:
    r = minimiser_findings(scope)
    over, full = r["over-parameterised"], r["full column rank"]
    net = scope["relu_network"]
    relu = relu_rescaling(net["examples"], net["inputs"], net["hidden"], net["rescale"], scope["seed"])
    return evidence(
        "measurement",
        core("over-parameterised: w* + 100 v (v in the null space of X) has the same minimal loss",
             abs(over["loss1"] - over["loss0"]) <= rtol * max(1.0, over["loss0"]) * scope["spread"],
             loss=over["loss0"], norms=str([round(v, 2) for v in over["norms"]])),
        core("so minimisers of very different size exist there", over["norms"][1] > scope["widely"] * over["norms"][0]),
        core(f"a two-layer ReLU network on {net['examples']} examples: (c W1, c b1, W2 / c) with c = "
             f"{net['rescale']:g}, and the hidden units permuted, have the loss of (W1, b1, W2), at any parameters "
             "and so at a minimiser", abs(relu["rescaled_loss"] - relu["loss"]) <= rtol * relu["loss"]
             and abs(relu["permuted_loss"] - relu["loss"]) <= rtol * relu["loss"]
             and relu["rescaled_norm"] > scope["widely"] * relu["norm"],
             norms=str([round(relu["norm"], 2), round(relu["rescaled_norm"], 2)])),
        scoped("with full column rank another w of the same (minimal) loss exists too",
               full["null"] > 0 and abs(full["loss1"] - full["loss0"]) <= rtol * full["loss0"],
               loss_at_minimum=full["loss0"], loss_elsewhere=full["loss1"]),
    )


# --- penalty and constraint (Lagrange) -----------------------------------------------------------------

def lasso(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """argmin ||x w - y||^2 + lam ||w||_1, exactly, by enumerating supports and signs against the KKT
    conditions (small p only)."""
    p = x.shape[1]
    best, best_value = None, np.inf
    for size in range(p + 1):
        for support in itertools.combinations(range(p), size):
            for signs in itertools.product((-1.0, 1.0), repeat=size):
                w = np.zeros(p)
                if size:
                    xs = x[:, support]
                    ws = np.linalg.solve(xs.T @ xs, xs.T @ y - lam * np.array(signs) / 2)
                    if np.any(np.sign(ws) != np.array(signs)):
                        continue
                    w[list(support)] = ws
                grad = 2 * x.T @ (y - x @ w)
                off = [j for j in range(p) if j not in support]
                if off and np.max(np.abs(grad[off])) > lam * (1 + 1e-12):
                    continue
                value = float(np.sum((x @ w - y) ** 2) + lam * np.sum(np.abs(w)))
                if value < best_value:
                    best, best_value = w, value
    return best


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """argmin ||x w - y||^2 + lam ||w||_2^2."""
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def _in_ball(rng, p: int, count: int, radius: float, norm: str) -> np.ndarray:
    """Random points of the ball {||w||_1 <= radius} or {||w||_2^2 <= radius}, half of them on its boundary."""
    d = rng.normal(size=(count, p))
    if norm == "l1":
        d = d / np.sum(np.abs(d), 1, keepdims=True) * radius
    else:
        d = d / np.linalg.norm(d, axis=1, keepdims=True) * np.sqrt(radius)
    scale = np.where(np.arange(count) % 2 == 0, 1.0, rng.uniform(0, 1, count))
    return d * scale[:, None]


def lagrange_findings(scope: dict, solvers=(lasso, ridge)) -> dict:
    rng = np.random.default_rng(scope["seed"])
    out = {"offset": 0.0, "l1": np.inf, "l2": np.inf, "tangent": 1.0}
    n, p = scope["shape"]
    for _ in range(scope["problems"]):
        x = rng.normal(size=(n, p))
        y = x @ rng.normal(size=p) * 2 + rng.normal(size=n)
        J = lambda w, x=x, y=y: np.sum((w @ x.T - y) ** 2, -1)  # noqa: E731
        for lam in scope["lambdas"]:
            pts = rng.normal(size=(64, p))
            c = 1.0
            g1 = J(pts) + lam * (np.abs(pts).sum(1) - c)
            g2 = J(pts) + lam * np.abs(pts).sum(1)
            out["offset"] = max(out["offset"], float(np.max(np.abs((g2 - g1) - lam * c)) / np.max(np.abs(g2))))
            for norm, solve, size in (("l1", solvers[0], lambda w: np.abs(w).sum(-1)),
                                      ("l2", solvers[1], lambda w: (w**2).sum(-1))):
                w = solve(x, y, lam)
                radius = float(size(w))
                others = _in_ball(rng, p, scope["feasible_points"], radius, norm)
                excess = float(np.min(J(others) - J(w)) / J(w))
                out[norm] = min(out[norm], excess)
                if norm == "l2":
                    grad = 2 * x.T @ (x @ w - y)
                    cos = float(grad @ w / (np.linalg.norm(grad) * np.linalg.norm(w)))
                    out["tangent"] = min(out["tangent"], -cos)
    return out


@claim(
    "regularization/penalty-form-has-the-solution-of-the-constraint-form",
    sources=["S003-08"],
    says="Regularisation puts a constraint on the parameters: for L1, with loss J(w), by the Lagrange-multiplier "
    "method, constraining the parameters to ||W||_1 - c < 0 gives L(w, lambda) = J(w) + lambda(||W||_1 - c), whose "
    "solutions are those of L(w, lambda) = J(w) + lambda ||W||_1; for L2 the same, and the solution is where the "
    "circle meets a contour of the loss (得到的解为圆与等值线相交的点).",
    expected="holds",
    scope={"shape": [20, 3], "problems": 10, "lambdas": [1.0, 10.0, 40.0], "feasible_points": 400, "seed": 0,
           "loss": "J(w) = ||X w - y||^2", "l2_penalty": "lambda ||w||_2^2 (the note's ||W||_2, the sum of squares)"},
    rtol=1e-9, tolerance="the tangency cosine and the objective offset are computed in float64 from solves of "
    "condition ~1e2",
)
def _lagrange(scope, rtol) -> Evidence:
    r = lagrange_findings(scope)
    return evidence(
        "measurement",
        premise("J + lambda(||W||_1 - c) and J + lambda ||W||_1 differ by the constant lambda c, so they have the "
                "same minimisers (arithmetic, evaluated at sample points)", r["offset"] <= rtol,
                max_rel_err=r["offset"]),
        core("L1: the penalised minimiser w_lambda (exact lasso) is the constrained one for c = ||w_lambda||_1: no "
             "point of that L1 ball has a lower loss", r["l1"] >= -rtol, least_relative_excess=r["l1"]),
        core("L2: the same for the ridge minimiser and c = ||w_lambda||^2", r["l2"] >= -rtol,
             least_relative_excess_l2=r["l2"]),
        core("at the L2 solution the loss gradient is antiparallel to w: the contour touches the circle there",
             abs(r["tangent"] - 1) <= rtol, cosine=-r["tangent"]),
    )


# --- the balls in two dimensions -----------------------------------------------------------------------

def ball_shapes(c: float, atol: float = 1e-14) -> dict:
    """The L1 level set |w1| + |w2| = c as the boundary of its ball (its corners, sides and whether every point lies
    on a side), and the L2 level set w1^2 + w2^2 = c found by bisection along 721 directions."""
    t = np.linspace(0, 2 * np.pi, 721)
    # the L1 level set as the boundary of its ball: the four points where it meets the axes and its sides
    corners = np.array([[c, 0], [0, c], [-c, 0], [0, -c]])
    sides = np.roll(corners, -1, 0) - corners
    lengths = np.linalg.norm(sides, axis=1)
    dots = np.sum(sides * np.roll(sides, -1, 0), 1)
    # every point with |w1| + |w2| = c lies on one of those sides
    d = np.stack([np.cos(t), np.sin(t)], 1)
    on = d / np.abs(d).sum(1, keepdims=True) * c
    def cross(u, v):
        return u[0] * v[1] - u[1] * v[0]
    on_sides = all(any(abs(cross(s, q - a)) <= atol for s, a in zip(sides, corners, strict=True)) for q in on)
    # The L2 level set found numerically: along each direction, bisect w1^2 + w2^2 - c = 0 for the distance t;
    # a circle centred at 0 has the same t in every direction and its points average to the origin.
    low, high = np.zeros(len(d)), np.full(len(d), 2.0 * (1.0 + c))
    for _ in range(200):
        mid = (low + high) / 2
        inside = np.sum((mid[:, None] * d) ** 2, 1) < c
        low, high = np.where(inside, mid, low), np.where(inside, high, mid)
    level = low[:, None] * d
    radius_err = float(max(np.max(np.abs(low - np.sqrt(c))), np.max(np.abs(level[:-1].mean(0)))))
    return {"lengths": lengths, "dots": dots, "on_sides": on_sides, "radius_err": radius_err}


def ball_findings(scope: dict, solve=lasso, atol: float = 1e-14) -> dict:
    """:func:`ball_shapes`, and over ``scope["problems"]`` random least-squares problems the share whose ``solve``
    solution (the exact lasso) has exactly one zero coordinate, at each penalty of ``scope["lambdas"]`` (or
    ``scope["lambda"]``), and how many ridge solutions have a zero coordinate."""
    rng = np.random.default_rng(scope["seed"])
    lambdas = scope.get("lambdas", [scope["lambda"]])
    vertex, l2_zero = dict.fromkeys(lambdas, 0), 0
    for _ in range(scope["problems"]):
        x = rng.normal(size=(scope["n"], 2))
        y = x @ rng.normal(size=2) * 2 + rng.normal(size=scope["n"])
        for lam in lambdas:
            vertex[lam] += int(np.sum(solve(x, y, lam) == 0) == 1)
        l2_zero += int(np.any(ridge(x, y, scope["lambda"]) == 0))
    return {**ball_shapes(scope["c"], atol), "vertex_share": vertex[scope["lambda"]] / scope["problems"],
            "l2_zero": l2_zero, "vertex_share_by_lambda": {lam: v / scope["problems"] for lam, v in vertex.items()}}


@claim(
    "regularization/l1-ball-is-a-square-l2-ball-a-circle",
    sources=["S003-08"],
    says="||W||_1 in two dimensions is a square centred at the origin; ||W||_2 a circle centred at the origin (the "
    "green square and circle are the feasible regions of w) (其在二维上的图像为一个正方形，中心在原点处; "
    "其在二维上的图像为一个圆，中心在原点处).",
    expected="holds",
    scope={"c": 2.0},
    atol=1e-14, tolerance="float64 rounding of the sides, lengths and radii (values of order 1); the bisection "
    "is run to its last bit",
)
def _balls(scope, atol) -> Evidence:
    r = ball_shapes(scope["c"], atol=atol)
    return evidence(
        "measurement",
        core("|w1| + |w2| = c is a square centred at 0 (a 45-degree diamond): four equal sides c sqrt 2 at right "
             "angles, every point of the level set on one of them, its vertices (+-c, 0), (0, +-c) on the axes",
             bool(np.allclose(r["lengths"], r["lengths"][0], rtol=0, atol=atol)) and bool(np.all(r["dots"] == 0))
             and r["on_sides"]),
        core("w1^2 + w2^2 = c is a circle of radius sqrt c centred at 0 (its points found by bisection along 721 "
             "directions)", r["radius_err"] <= atol, largest_error=r["radius_err"]),
    )


@claim(
    "regularization/l1-solutions-often-land-on-a-vertex",
    sources=["S003-08"],
    says="L1-regularised parameters often land on a vertex of the diamond, which lies on an axis, so the other "
    "coordinates of w are 0 (L1正则化的参数往往落在一个菱形的顶点处，而这个顶点处往往处于某一条轴上).",
    expected="qualified",
    correction="How often the L1 solution lands on a vertex depends on the penalty's strength, and peaks in "
    "between: a weak penalty leaves the solution near the unpenalised least-squares point, off the axes; a strong "
    "one sends it to the origin, both coordinates 0, which is not a vertex either. Often only at intermediate "
    "strengths.",
    scope={"c": 2.0, "problems": 200, "n": 10, "lambda": 20.0, "weaker_lambdas": [1.0],
           "stronger_lambdas": [100.0, 1000.0], "seed": 0,
           "often": 0.25, "loss": "J(w) = ||X w - y||^2, X 10 x 2 Gaussian",
           "often_means": "in at least a quarter of the problems"},
)
def _vertices(scope) -> Evidence:
    r = ball_findings({**scope, "lambdas": [*scope["weaker_lambdas"], scope["lambda"], *scope["stronger_lambdas"]]})
    weak = {lam: r["vertex_share_by_lambda"][lam] for lam in scope["weaker_lambdas"]}
    strong = {lam: r["vertex_share_by_lambda"][lam] for lam in scope["stronger_lambdas"]}
    return evidence(
        "measurement",
        core(f"at lambda = {scope['lambda']:g} the exact L1 solution lands on a vertex (one coordinate exactly 0) in "
             "at least a quarter of random least-squares problems", r["vertex_share"] >= scope["often"],
             vertex_share=r["vertex_share"]),
        scoped(f"at the weaker penalty lambda = {scope['weaker_lambdas']} too",
               all(v >= scope["often"] for v in weak.values()),
               **{f"vertex_share_at_{lam:g}": v for lam, v in weak.items()}),
        scoped(f"at the stronger penalties lambda = {scope['stronger_lambdas']} too",
               all(v >= scope["often"] for v in strong.values()),
               **{f"vertex_share_at_{lam:g}": v for lam, v in strong.items()}),
        premise("the L2 solution of the same problems never has a zero coordinate (the comparison)",
                r["l2_zero"] == 0),
    )
