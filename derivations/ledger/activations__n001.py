"""Claims found while annotating note 001 (activations chapter): that the activation is what makes a stack of
layers (dense or 1x1 convolutions) non-linear, and where Leaky ReLU's value is zero."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from derivations.activations import alpha, leaky_relu, z
from derivations.bridge import to_jax
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from models.conv import conv2d

ACTIVATIONS = {"relu": lambda v: np.maximum(v, 0.0), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
               "identity": lambda v: v}


def dense_stack(weights, biases, activation):
    """x -> W_L act(... act(W_1 x + b_1) ...) + b_L: the activation between layers, none after the last."""
    def f(x):
        h = x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = h @ w + b
            if i < len(weights) - 1:
                h = activation(h)
        return h
    return f


def collapsed_affine(weights, biases):
    """The one affine map a stack without activations equals: W = W_1 ... W_L, b = (...(b_1 W_2 + b_2) ...)."""
    w_total, b_total = weights[0], biases[0]
    for w, b in zip(weights[1:], biases[1:], strict=True):
        w_total, b_total = w_total @ w, b_total @ w + b
    return lambda x: x @ w_total + b_total


def affinity_defect(f, x, y) -> float:
    """max |f(x + y) - f(x) - f(y) + f(0)| / max |f(x)|: 0 exactly for an affine map."""
    zero = x * 0
    gap = np.asarray(f(x + y)) - np.asarray(f(x)) - np.asarray(f(y)) + np.asarray(f(zero))
    return float(np.max(np.abs(gap)) / np.max(np.abs(np.asarray(f(x)))))


def _stack(depth: int, width: int, seed: int):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(width, width)) / np.sqrt(width) for _ in range(depth)]
    biases = [rng.normal(size=(width,)) for _ in range(depth)]
    return weights, biases


def nonlinearity_check(scope: dict, rtol: float, activations=ACTIVATIONS) -> dict:
    """For each depth: the stack without activation against its collapsed affine map, and the affinity defect of
    the stack with each non-linear activation; the same for two 1x1 convolutions on an image."""
    rng = np.random.default_rng(1)
    width = scope["width"]
    x = rng.normal(size=(scope["points"], width))
    y = rng.normal(size=(scope["points"], width))
    linear, defects = [], {}
    for depth in scope["depths"]:
        weights, biases = _stack(depth, width, depth)
        linear.append(compare(lambda w=weights, b=biases: dense_stack(w, b, activations["identity"])(x),
                              lambda w=weights, b=biases: collapsed_affine(w, b)(x), [], rtol=rtol))
        for name in scope["activations"]:
            defects[f"depth {depth}, {name}"] = affinity_defect(dense_stack(weights, biases, activations[name]), x, y)
    # Two 1x1 convolutions (C -> C' -> C''): without an activation they are one 1x1 conv with kernel K1 K2.
    c0, c1, c2 = scope["channels"]
    k1 = jnp.asarray(rng.normal(size=(1, 1, c0, c1)))
    k2 = jnp.asarray(rng.normal(size=(1, 1, c1, c2)))
    img = jnp.asarray(rng.normal(size=(2, 5, 5, c0)))
    img2 = jnp.asarray(rng.normal(size=(2, 5, 5, c0)))
    conv_linear = compare(lambda: conv2d(conv2d(img, k1), k2), lambda: conv2d(img, (k1[0, 0] @ k2[0, 0])[None, None]),
                          [], rtol=rtol)
    conv_defect = affinity_defect(lambda v: conv2d(jax.nn.relu(conv2d(v, k1)), k2), img, img2)
    return {"linear": linear, "defects": defects, "conv_linear": conv_linear, "conv_defect": conv_defect}


@claim(
    "activations/an-activation-is-what-makes-stacked-layers-non-linear",
    sources=["S001-13", "S001-02"],
    says="The activation function is used to introduce non-linearity, and with it strong expressive power "
         "(使用激活函数是为了引入非线性从而产生强大的表达能力, S001-13); a 1x1 convolution adds non-linearity "
         "through the non-linear activation that follows it (并增加非线性(利用后接的非线性激活函数), S001-02).",
    expected="holds",
    scope={"depths": [2, 3, 6], "width": 8, "points": 16, "activations": ["relu", "tanh", "sigmoid"],
           "channels": [4, 6, 3], "non_affine": 1e-8},
    # non_affine: a defect above 1e-8 of |f| is not rounding (an affine map gives ~1e-15 in float64)
)
def _activation_makes_non_linear(scope, rtol) -> Evidence:
    r = nonlinearity_check(scope, rtol)
    least = min(r["defects"].values())
    return evidence(
        "measurement",
        *[compared(f"without activations a depth-{d} dense stack equals one affine map (W_1...W_L, composed bias)",
                   c, depth=d) for d, c in zip(scope["depths"], r["linear"], strict=True)],
        compared("two stacked 1x1 convolutions without an activation equal one 1x1 convolution (kernel K1 K2)",
                 r["conv_linear"]),
        core("with ReLU, tanh or sigmoid between the layers the stack is not affine at any depth tried "
             "(|f(x+y) - f(x) - f(y) + f(0)| far above float64 rounding)", least > scope["non_affine"],
             smallest_defect=least),
        core("two 1x1 convolutions with a ReLU between them are not affine", r["conv_defect"] > scope["non_affine"],
             defect=r["conv_defect"]),
        details={"affinity defects": r["defects"]},
    )


def leaky_values(grid: np.ndarray, slopes, expr=None) -> np.ndarray:
    """The library's Leaky ReLU (the note's piecewise form) on ``grid`` (columns) at each alpha of ``slopes``
    (rows), in one evaluation."""
    f = to_jax(leaky_relu() if expr is None else expr, (z, alpha))
    zz, aa = np.meshgrid(np.asarray(grid, float), np.asarray(slopes, float))
    return np.asarray(f(jnp.asarray(zz), jnp.asarray(aa)))


@claim(
    "activations/leaky-relu-is-non-zero-for-z-at-most-zero",
    sources=["S001-12"],
    says="The difference between Leaky ReLU and ReLU is that for z <= 0 its value is not zero "
         "(Leaky ReLU 与 ReLU 的区别在于当 z <= 0 时，其值不为零).",
    expected="qualified",
    correction="For z < 0 yes: alpha z != 0. At z = 0 Leaky ReLU is 0 like ReLU (alpha * 0 = 0): the two differ "
               "exactly on z < 0, not on z <= 0. In floating point also not where alpha |z| falls below the smallest "
               "normal number (2.2e-308 in float64): XLA:CPU flushes such subnormal results to 0.",
    scope={"negative": [-1e3, -1.0, -1e-3, -1e-300], "alphas": [0.01, 0.001, 0.2], "edge": 0.0,
           "subnormal_probe": {"z": -1e-300, "alpha": 1e-10}},
    aliases=["activations/leaky-relu-is-non-zero-for-negative-z-but-zero-at-zero"],
)
def _leaky_nonzero(scope) -> Evidence:
    neg = np.array(scope["negative"])
    values = leaky_values(np.append(neg, scope["edge"]), scope["alphas"])
    rows = dict(zip(scope["alphas"], values[:, :-1], strict=True))
    at_edge = dict(zip(scope["alphas"], values[:, -1].tolist(), strict=True))
    relu_neg = np.asarray(jax.nn.relu(jnp.asarray(neg)))
    probe = scope["subnormal_probe"]
    tiny = float(jax.jit(jax.nn.leaky_relu)(jnp.float64(probe["z"]), probe["alpha"]))
    return evidence(
        "symbolic",
        core("for every z < 0 tried Leaky ReLU's value alpha z is non-zero while ReLU's is 0",
             all(np.all(v != 0) for v in rows.values()) and bool(np.all(relu_neg == 0)),
             points=len(neg) * len(rows)),
        scoped("at z = 0 (the edge of the note's z <= 0) Leaky ReLU's value is non-zero",
               all(v != 0 for v in at_edge.values()), value_at_zero=max(abs(v) for v in at_edge.values())),
        scoped(f"jax.nn.leaky_relu (jit, float64) is non-zero at z = {probe['z']:g} with alpha = {probe['alpha']:g} "
               "too (alpha z = -1e-310 is subnormal)", tiny != 0.0, value=tiny),
        details={"values": {str(a): v.tolist() for a, v in rows.items()}},
    )


