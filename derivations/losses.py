"""Losses: softmax + cross-entropy, sigmoid + BCE vs sigmoid + MSE, MSE vs MAE, hinge, weighted CE, focal
loss, and a head with one output too many, derived in SymPy and settled against optax and Flax.

Seeds: S000-11, S000-12, S000-13, S001-25, S001-29, S001-41, S002-28, S002-33, S002-41, S003-03,
S003-05, S004-02, S004-11. The claims are in ``derivations/ledger/losses.py``; run
``python -m derivations.losses`` to print the derivations and check the claims.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations import bridge
from derivations.activations import sigmoid, softmax
from derivations.claims import derivation
from models.losses import ClassifierHead, accuracy_curves

z = sp.Symbol("z", real=True)  # a logit
y = sp.Symbol("y", real=True)  # a label (0/1 for BCE, +-1 for hinge)
p = sp.Symbol("p", positive=True)  # a predicted probability, p = sigma(z)
c = sp.Symbol("c", real=True)  # a constant prediction
gamma = sp.Symbol("gamma", nonnegative=True)
f = sp.Symbol("f", real=True)  # a raw score (hinge)

# The sigma(1 - sigma) forms subtract nearly equal numbers as |z| grows; [-4, 4] keeps that below 1e-12.
SMOOTH_DOMAIN = (-4.0, 4.0)


# --- the functions, as the notes write them ---------------------------------------------------------


def binary_cross_entropy(prob: sp.Expr, label: sp.Expr = y) -> sp.Expr:
    """BCE as S003-05 writes it: -(y log p + (1 - y) log(1 - p)); "binary log loss" is the same formula."""
    return -(label * sp.log(prob) + (1 - label) * sp.log(1 - prob))


def bernoulli_log_loss(prob: sp.Expr = p, label: sp.Expr = y) -> sp.Expr:
    """Log loss as its name defines it: the negative log-likelihood -log(p^y (1 - p)^(1 - y)) of a Bernoulli
    label (S004-02)."""
    return -sp.log(prob**label * (1 - prob) ** (1 - label))


def is_binary_cross_entropy(expr: sp.Expr) -> bool:
    """SymPy decides ``expr == binary_cross_entropy(p)``. ``expand_log(force=True)`` splits log(a b) and
    log(a^b), which is valid here because p and 1 - p are positive."""
    return bridge.vanishes(sp.expand_log(expr - binary_cross_entropy(p), force=True))


def squared_error(prediction: sp.Expr, label: sp.Expr = y) -> sp.Expr:
    return (prediction - label) ** 2


def logits(k: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"z1:{k + 1}", real=True)


def labels(k: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"y1:{k + 1}", real=True)


def class_weights(k: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"w1:{k + 1}", positive=True)


def cross_entropy(zs: tuple[sp.Symbol, ...], ys: tuple[sp.Symbol, ...], ws=None) -> sp.Expr:
    """-sum_k w_k y_k log softmax(z)_k (S003-05's -sum y log y_hat, with y_hat = softmax(z)); w = 1 unweighted."""
    ws = ws or (1,) * len(zs)
    return -sum(w * yk * sp.log(sk) for w, yk, sk in zip(ws, ys, softmax(zs), strict=True))


def focal_loss(x: sp.Expr = z, g: sp.Expr = gamma) -> sp.Expr:
    """Focal loss of a positive example (y = 1): -(1 - p)^gamma log p with p = sigma(z) (Lin et al., 2017).
    A negative example is the same function of -z. 1 - sigma(z) is written sigma(-z), its equal, because
    evaluated at 30 digits 1 - sigma(40) cancels to 0 and the exact reference at the extremes would be NaN."""
    return -(sigmoid(-x) ** g) * sp.log(sigmoid(x))


def focal_loss_of_p() -> sp.Expr:
    """The focal loss of a positive example in terms of p, as the page shows it."""
    return -((1 - p) ** gamma) * sp.log(p)


# --- derivations -------------------------------------------------------------------------------------


@derivation
def softmax_ce_gradient() -> list[sp.Eq]:
    """Softmax + cross-entropy for K = 3: dL/dz_i = s_i sum_k y_k - y_i, which is s_i - y_i when
    sum_k y_k = 1 (S002-41)."""
    zs, ys = logits(3), labels(3)
    loss = cross_entropy(zs, ys)
    s = softmax(zs)
    raw = sp.Matrix([sp.simplify(sp.diff(loss, v)) for v in zs])
    return [
        sp.Eq(sp.Symbol("L"), -sum(yk * sp.log(sp.Symbol(f"s_{i}")) for i, yk in enumerate(ys, start=1)),
              evaluate=False),
        sp.Eq(sp.Symbol("s_1"), s[0], evaluate=False),
        sp.Eq(sp.Symbol(r"\nabla_z L"), raw, evaluate=False),
        sp.Eq(raw, sp.Matrix([s[i] * sum(ys) - ys[i] for i in range(3)]), evaluate=False),
    ]


def softmax_ce_gradient_is_s_minus_y(k: int) -> bool:
    """SymPy's gradient of softmax + CE with K classes, after y_K = 1 - sum of the others, minus (s - y), is 0."""
    zs, ys = logits(k), labels(k)
    loss, s = cross_entropy(zs, ys), softmax(zs)
    on_simplex = {ys[-1]: 1 - sum(ys[:-1])}
    # In e_j = exp(z_j) > 0 the difference is a rational function, which cancel() decides (simplify is slow).
    exps = {sp.exp(v): sp.Symbol(f"e_{j}", positive=True) for j, v in enumerate(zs)}
    return all(sp.cancel(sp.expand_log((sp.diff(loss, zs[i]) - (s[i] - ys[i])).subs(on_simplex), force=True)
                         .subs(exps)) == 0 for i in range(k))


@derivation
def bce_vs_mse_chain_rule() -> list[sp.Eq]:
    """The chain rule dL/dz = dL/dp * dp/dz with p = sigma(z): BCE's dL/dp has p(1 - p) in its denominator and
    cancels sigma' = p(1 - p); squared error's does not (S000-13, S001-29)."""
    sigma_prime = sp.diff(sigmoid(), z).subs(sp.exp(-z), 1 / p - 1)
    dbce, dmse = sp.factor(sp.diff(binary_cross_entropy(p), p)), sp.diff(squared_error(p), p)
    return [
        sp.Eq(sp.Derivative(sp.Function("sigma")(z), z), sp.factor(sp.simplify(sigma_prime)), evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("BCE"), p), dbce, evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("BCE"), z), sp.simplify(dbce * p * (1 - p)), evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("MSE"), p), dmse, evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("MSE"), z), dmse * p * (1 - p), evaluate=False),
    ]


def bce_logit_gradient() -> sp.Expr:
    """d BCE(sigma(z), y) / dz, as SymPy differentiates it."""
    return sp.diff(binary_cross_entropy(sigmoid()), z)


def mse_logit_gradient() -> sp.Expr:
    """d (sigma(z) - y)^2 / dz, as SymPy differentiates it."""
    return sp.diff(squared_error(sigmoid()), z)


@derivation
def mse_mae_gradients() -> list[sp.Eq]:
    """Squared error's gradient grows with the residual; absolute error's is its sign, at most 1 in size (S003-05)."""
    return [
        sp.Eq(sp.Derivative(squared_error(c), c), sp.diff(squared_error(c), c), evaluate=False),
        sp.Eq(sp.Derivative(sp.Abs(c - y), c), sp.diff(sp.Abs(c - y), c), evaluate=False),
    ]


def squared_error_argmin(values: list[sp.Expr]) -> sp.Set:
    """argmin_c sum (y_i - c)^2: the stationary points of a strictly convex quadratic, by sympy.solveset."""
    objective = sum((v - c) ** 2 for v in values)
    return sp.solveset(sp.diff(objective, c), c, sp.Reals)


def absolute_error_argmin(values: list[sp.Expr]) -> sp.Set:
    """argmin_c sum |y_i - c| for given numbers. The objective is convex, coercive and piecewise linear with kinks
    at the data, so its minimizers form a closed interval whose ends are data points: the hull of the data
    points where it is smallest."""
    objective = sum(sp.Abs(v - c) for v in values)
    at_data = {v: objective.subs(c, v) for v in values}
    minimum = min(at_data.values())
    minimizers = [v for v, value in at_data.items() if value == minimum]
    return sp.Interval(min(minimizers), max(minimizers))


@derivation
def l1_l2_argmins() -> list[sp.Eq]:
    """argmin sum (y - c)^2 is the mean; argmin sum |y - c| is the median, a whole interval when n is even (S001-41)."""
    odd, even = [1, 2, 4, 7, 30], [1, 2, 4, 7, 8, 30]
    return [
        sp.Eq(sp.Symbol(r"\arg\min_c \sum (y_i - c)^2"), squared_error_argmin(list(map(sp.Integer, even))),
              evaluate=False),
        sp.Eq(sp.Symbol(rf"\arg\min_c \sum |y_i - c|,\ y = {odd}"), absolute_error_argmin(list(map(sp.Integer, odd))),
              evaluate=False),
        sp.Eq(sp.Symbol(rf"\arg\min_c \sum |y_i - c|,\ y = {even}"),
              absolute_error_argmin(list(map(sp.Integer, even))), evaluate=False),
    ]


@derivation
def hinge_subgradient() -> list[sp.Eq]:
    """Hinge loss max(0, 1 - y f) has derivative -y where y f < 1 and 0 where y f > 1; at y f = 1 any value between
    -y and 0 is a subgradient (SymPy's Heaviside picks -y/2, the midpoint) (S002-28)."""
    hinge = sp.Max(0, 1 - y * f)
    return [sp.Eq(sp.Derivative(hinge, f), sp.diff(hinge, f), evaluate=False)]


@derivation
def weighted_ce_gradient() -> list[sp.Eq]:
    """Class-weighted cross-entropy for K = 3: dL/dz_i = s_i sum_k w_k y_k - w_i y_i; with a one-hot label of class c
    it is w_c (s_i - y_i), the plain gradient scaled by the class weight (S000-11)."""
    zs, ys, ws = logits(3), labels(3), class_weights(3)
    loss = cross_entropy(zs, ys, ws)
    raw = sp.Matrix([sp.simplify(sp.diff(loss, v)) for v in zs])
    return [sp.Eq(sp.Symbol(r"\nabla_z L_w"), raw, evaluate=False)]


@derivation
def focal_loss_derivative() -> list[sp.Eq]:
    """Focal loss of a positive example and its derivative in terms of p = sigma(z); at gamma = 0 it is p - 1,
    cross-entropy's (S000-11, S002-33)."""
    claimed = focal_loss_claimed()
    return [
        sp.Eq(sp.Symbol("FL"), focal_loss_of_p(), evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("FL"), z), claimed.subs(sigmoid(), p), evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("FL"), z).subs(gamma, 0), sp.simplify(claimed.subs(gamma, 0).subs(sigmoid(), p)),
              evaluate=False),
    ]


def focal_loss_claimed() -> sp.Expr:
    """dFL/dz = (1 - p)^gamma (gamma p log p - (1 - p)), p = sigma(z), for a positive example."""
    s = sigmoid()
    return (1 - s) ** gamma * (gamma * s * sp.log(s) - (1 - s))


@derivation
def extra_output_softmax() -> list[sp.Eq]:
    """With an 8th logit kept in the softmax, each of the 7 classes' probabilities is the 7-way softmax times
    (1 - s_8); sliced off, the 8th logit does not appear in the loss, so dL/dz_8 = 0 (S003-03)."""
    zs8 = logits(8)
    s8, s7 = softmax(zs8), softmax(zs8[:7])
    ys = labels(7)
    return [
        sp.Eq(sp.Symbol("s^{(8)}_1"), s8[0], evaluate=False),
        sp.Eq(sp.Symbol("s^{(8)}_1"), sp.Mul(s7[0], 1 - s8[7], evaluate=False), evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("L_{sliced}"), zs8[7]), sp.diff(cross_entropy(zs8[:7], ys), zs8[7]),
              evaluate=False),
    ]


@derivation
def sigmoid_loss_curvature() -> list[sp.Eq]:
    """Second derivatives in the logit for a positive example (y = 1): squared error on a sigmoid is
    -2 sigma'(z) (1 - sigma)(1 - 3 sigma), negative (the loss is concave in z) where sigma < 1/3, i.e. for
    z < -ln 2; binary cross-entropy's is sigma'(z) > 0, convex everywhere (S000-13, S001-25)."""
    mse, bce = squared_error(sigmoid(), 1), binary_cross_entropy(sigmoid(), 1)
    mse_curvature = sp.factor(sp.simplify(sp.diff(mse, z, 2)))
    bce_curvature = sp.simplify(sp.diff(bce, z, 2))
    return [
        sp.Eq(sp.Derivative(sp.Symbol("MSE"), (z, 2)), mse_curvature, evaluate=False),
        sp.Eq(sp.Derivative(sp.Symbol("BCE"), (z, 2)), bce_curvature, evaluate=False),
        sp.Eq(sp.Symbol(r"\{z : \mathrm{MSE}''(z) < 0\}"), sp.solveset(mse_curvature < 0, z, sp.Reals),
              evaluate=False),
    ]


def class_posteriors(k: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"p1:{k + 1}", positive=True)


@derivation
def weighted_ce_minimiser() -> list[sp.Eq]:
    """At an input x whose classes have probabilities p_c, the expected class-weighted cross-entropy
    -sum_c w_c p_c log q_c is minimised over the simplex by q_c = w_c p_c / sum_k w_k p_k (K = 3): the
    weights act as a change of class prior. With w_c = 1 / pi_c the model predicts p(x | c) / sum_k p(x | k),
    the posterior of a class-balanced data set (S004-11)."""
    ps, ws = class_posteriors(3), class_weights(3)
    total = sum(w * q for w, q in zip(ws, ps, strict=True))
    return [sp.Eq(sp.Symbol(f"q_{i + 1}"), ws[i] * ps[i] / total, evaluate=False) for i in range(3)]


@derivation
def focal_gradient_ratio() -> list[sp.Eq]:
    """The focal loss's gradient over cross-entropy's, for a positive example with p = sigma(z): the loss
    ratio is (1 - p)^gamma, but the gradient ratio is (1 - p)^gamma (1 + gamma p (-log p) / (1 - p)), which
    tends to (1 + gamma)(1 - p)^gamma as p -> 1 (S002-33)."""
    ratio = sp.simplify(focal_loss_claimed().subs(sigmoid(), p) / (p - 1))
    return [
        sp.Eq(sp.Symbol("r(p)"), ratio, evaluate=False),
        sp.Eq(sp.Limit(ratio / (1 - p) ** gamma, p, 1, "-"), 1 + gamma, evaluate=False),
    ]


# --- the measurements the claims share --------------------------------------------------------------


def head_ce_gradient(k: int, batch: int, seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(derived dL/dW = x^T (s - y) / B, nnx.grad dL/dW, the head's logits) for a ClassifierHead with K classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 5))
    targets = np.eye(k)[rng.integers(0, k, batch)]  # one-hot rows
    return _head_ce_gradient(x, targets, k, seed)


@functools.partial(jax.jit, static_argnums=(2, 3))  # one program: the head's init, its grad and the formula
def _head_ce_gradient(x, targets, k, seed):
    head = ClassifierHead(5, k, rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    got = nnx.grad(lambda m: m.loss(x, targets))(head).linear.kernel[...]
    derived = x.T @ (jax.nn.softmax(head(x)) - targets) / x.shape[0]
    return derived, got, head(x)


def eight_output_head(seed: int = 0) -> tuple[ClassifierHead, jax.Array, jax.Array]:
    """A Flax head with 8 outputs for 7 classes (S003-03), 32 inputs and one-hot labels of classes 0-6."""
    rng = np.random.default_rng(seed)
    head = ClassifierHead(6, 7, num_outputs=8, rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    x = jax.device_put(rng.normal(size=(32, 6)))
    targets = jax.device_put(np.eye(7)[rng.integers(0, 7, 32)])  # one-hot rows
    return head, x, targets


LOGISTIC_STEPS, TARGET_ACCURACY = 400, 0.99
WRONG_START, ZERO_START = -3.0, 0.0


@bridge.cache
def _race_data(seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(256, 2)))
    direction = jnp.asarray([2.0, -1.0])
    return x, (x @ direction > 0).astype(jnp.float64), direction


@bridge.cache
def logistic_race(start: float = WRONG_START, learning_rates: tuple[float, ...] = (1.0,),
                  steps: int = LOGISTIC_STEPS, seed: int = 0) -> dict[str, np.ndarray]:
    """Training accuracy after each full-batch SGD step, shape (len(learning_rates), steps), for BCE and for
    sigmoid + MSE on the same separable 2-D problem (256 points), from weights ``start`` times the true
    direction (-3: confidently wrong, the sigmoid saturated on the wrong side; 0: undecided); ``seed`` draws the
    points."""
    x, targets, direction = _race_data(seed)
    kernel, bias, rates = start * direction, jnp.zeros(()), jnp.asarray(learning_rates, dtype=jnp.float64)
    return {loss: np.asarray(accuracy_curves(kernel, bias, x, targets, loss=loss, learning_rates=rates, steps=steps))
            for loss in ("bce", "sigmoid_mse")}


def steps_to_accuracy(accuracy: np.ndarray, target: float = TARGET_ACCURACY) -> int | None:
    """The first step (1-based) after which training accuracy is >= target, or None within the budget."""
    reached = np.flatnonzero(np.asarray(accuracy) >= target)
    return int(reached[0]) + 1 if reached.size else None


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "losses"]) or main(["check", "losses"]))
