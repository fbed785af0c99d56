"""Regularisation: L1 against L2 in closed form and in an optax run, the norms the notes define, weight
decay against an L2 penalty under SGD and Adam, and early stopping on a small overfitting run.

Seeds: S000-04, S002-27, S003-08, S001-18, S004-03, S002-22, S002-04 (narrative: S000-01, S001-27,
S001-43, S002-51, S003-07, S004-04, answered in the appendix). Run ``python -m derivations.regularization``
to print the derivations and check the claims; the claims are in ``derivations/ledger/regularization.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations import bridge
from derivations.bridge import to_jax
from derivations.claims import derivation

w = sp.Symbol("w", real=True)
a = sp.Symbol("a", real=True)
lam = sp.Symbol("lambda", positive=True)
eta, g = sp.symbols("eta g", real=True)


def l1_objective() -> sp.Expr:
    return (w - a) ** 2 / 2 + lam * sp.Abs(w)


def l2_objective() -> sp.Expr:
    return (w - a) ** 2 / 2 + lam * w**2


# --- derivations -------------------------------------------------------------------------------------


@derivation
@bridge.cache
def l1_minimiser() -> sp.Eq:
    """argmin_w (w - a)^2/2 + lambda |w| is the soft threshold: on w > 0 (w < 0) the stationary point is
    a - lambda (a + lambda), valid only when a > lambda (a < -lambda); otherwise 0 is optimal because the
    subdifferential lambda [-1, 1] of the kink at 0 contains a (S000-04, S002-27)."""
    right = sp.solve(sp.diff(l1_objective().subs(sp.Abs(w), w), w), w)[0]
    left = sp.solve(sp.diff(l1_objective().subs(sp.Abs(w), -w), w), w)[0]
    return sp.Eq(sp.Symbol("w*"), sp.Piecewise((right, a > lam), (left, a < -lam), (0, True)), evaluate=False)


@derivation
@bridge.cache
def soft_threshold() -> sp.Eq:
    """The same minimiser written as sign(a) max(|a| - lambda, 0) (shown equal at lambda = 1/2, 1, 2 in the claim)."""
    return sp.Eq(sp.Symbol("w*"), sp.sign(a) * sp.Max(sp.Abs(a) - lam, 0), evaluate=False)


@derivation
@bridge.cache
def l2_minimiser() -> sp.Eq:
    """argmin_w (w - a)^2/2 + lambda w^2 = a / (1 + 2 lambda): a shrinks, but is zero only if a is (S003-08)."""
    return sp.Eq(sp.Symbol("w*"), sp.solve(sp.diff(l2_objective(), w), w)[0], evaluate=False)


@derivation
@bridge.cache
def sgd_weight_decay() -> sp.Eq:
    """One SGD step on L + (lambda/2) w^2 multiplies w by (1 - eta lambda) before the gradient step: weight
    decay (S004-03)."""
    step = w - eta * (g + sp.diff(lam * w**2 / 2, w))
    return sp.Eq(sp.Symbol("w_next"), sp.collect(sp.expand(step), w), evaluate=False)


@derivation
@bridge.cache
def adam_first_step() -> list[sp.Eq]:
    """Adam's first step (bias-corrected m = g, v = g^2, eps = 0) with the L2 term inside the gradient is
    eta sign(g + lambda w): the decay is normalised away; AdamW adds eta lambda w outside the
    normalisation."""
    adam_l2 = (g + lam * w) / sp.sqrt((g + lam * w) ** 2)
    return [
        sp.Eq(sp.Symbol("Delta_Adam+L2"), -eta * adam_l2, evaluate=False),
        sp.Eq(sp.Symbol("Delta_AdamW"), -eta * (g / sp.sqrt(g**2) + lam * w), evaluate=False),
    ]


@bridge.cache
def _soft_threshold_jax():
    """The derived soft threshold, compiled: the proximal step of lambda ||w||_1."""
    return to_jax(soft_threshold().rhs, [a, lam])


# --- the sparse-regression runs ------------------------------------------------------------------------


@bridge.cache
def sparse_problem(n: int = 100, d: int = 50, nonzero: int = 5) -> tuple[jax.Array, jax.Array, np.ndarray]:
    """Fixed-seed regression y = X w_true + noise with ``nonzero`` of ``d`` true weights non-zero."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    w_true = np.zeros(d)
    w_true[:nonzero] = rng.uniform(1, 3, nonzero) * rng.choice([-1, 1], nonzero)
    return jnp.asarray(x), jnp.asarray(x @ w_true + 0.1 * rng.normal(size=n)), w_true


def penalised_run(kind: str, strength: float = 0.3, steps: int = 500) -> jax.Array:
    """Weights after ``steps`` of optax.sgd on the mean squared error / 2 with the penalty ``kind``:
    ``"l1-proximal"`` (gradient step, then the soft threshold: ISTA), ``"l1-subgradient"`` (jax.grad of
    lambda |w|), ``"l2"`` (lambda ||w||^2 in the loss)."""
    if kind not in ("l1-proximal", "l1-subgradient", "l2"):
        raise ValueError(f"kind must be 'l1-proximal', 'l1-subgradient' or 'l2', got {kind!r}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    return _penalised(kind, steps)(np.asarray(strength, np.float64))


@bridge.cache
def _penalised(kind: str, steps: int):
    """One compiled run per (kind, steps); the strength is traced, so every strength reuses it."""
    x, y, _ = sparse_problem()
    lr = 1.0 / float(jnp.linalg.eigvalsh(x.T @ x / x.shape[0])[-1])  # 1 / Lipschitz constant of the MSE gradient
    optimizer = optax.sgd(lr)
    threshold = _soft_threshold_jax()

    def run(strength):
        def loss(v: jax.Array) -> jax.Array:
            mse = jnp.mean((x @ v - y) ** 2) / 2
            if kind == "l1-subgradient":
                return mse + strength * jnp.sum(jnp.abs(v))
            if kind == "l2":
                return mse + strength * jnp.sum(v**2)
            return mse

        def step(carry, _):
            v, state = carry
            updates, state = optimizer.update(jax.grad(loss)(v), state, v)
            v = optax.apply_updates(v, updates)
            if kind == "l1-proximal":
                v = threshold(v, lr * strength)
            return (v, state), None

        v0 = jnp.zeros(x.shape[1])
        return jax.lax.scan(step, (v0, optimizer.init(v0)), None, length=steps)[0][0]

    return jax.jit(run)


# --- weight decay under Adam ------------------------------------------------------------------------


def adam_decay_per_weight(scales: np.ndarray, *, lr: float, decay: float, steps: int,
                          seed: int = 0) -> dict[str, np.ndarray]:
    """How much each weight is decayed when its gradients have scale ``scales[i]``: every weight starts at 1
    and receives the same stream of gradients ``scales[i] * xi_t`` (xi_t ~ N(0, 1), fixed seed), once with
    the decay and once without; the decay's effect on weight i is the difference of the two final weights.
    Returns that effect for Adam on L + (decay/2) ||w||^2 (the L2 term's gradient decay * w goes through
    Adam's normalisation) and for optax.adamw (decoupled decay), and lr * decay * steps, the shrink a plain
    decoupled decay of each step would give to first order."""
    scales = np.asarray(scales, dtype=np.float64)
    xi = np.random.default_rng(seed).normal(size=(steps, scales.size)) * scales  # NumPy: the same float64 product

    def run(optimizer, l2: float, gradients) -> jax.Array:
        def step(carry, g):
            v, state = carry
            updates, state = optimizer.update(g + l2 * v, state, v)
            return (optax.apply_updates(v, updates), state), None

        v0 = jnp.ones(scales.size)
        return jax.lax.scan(step, (v0, optimizer.init(v0)), gradients)[0][0]

    # The three runs in one compiled program; the differences in NumPy.
    plain, with_l2, with_adamw = (np.asarray(r) for r in jax.jit(lambda gs: (
        run(optax.adam(lr), 0.0, gs), run(optax.adam(lr), decay, gs),
        run(optax.adamw(lr, weight_decay=decay), 0.0, gs)))(xi))
    return {"adam_l2": plain - with_l2, "adamw": plain - with_adamw,
            "first_order": np.full(scales.size, lr * decay * steps)}


def sgd_trajectories(x: jax.Array, y: jax.Array, *, lr: float, decay: float, steps: int,
                     v0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weights after each of ``steps`` SGD steps on the MSE/2 of (x, y): (a) optax.sgd on L + (decay/2)||w||^2,
    the penalty differentiated by jax.grad; (b) the derived decoupled rule of :func:`sgd_weight_decay`,
    w <- (1 - eta lambda) w - eta dL/dw, evaluated from its SymPy form."""
    return _sgd_pair(steps)(x, y, np.asarray(lr), np.asarray(decay), v0)


def momentum_gap(x: jax.Array, y: jax.Array, *, lr: float, decay: float, momentum: float, steps: int,
                 v0: jax.Array, decoupled_decay: float | None = None) -> dict[str, float]:
    """With momentum, after ``steps`` steps: ``gap``, the largest difference between (a) momentum SGD on
    L + (decay/2)||w||^2 and (b) the decoupled step w <- (1 - eta lambda) w - eta m, m the momentum of dL/dw alone
    (SGDW, Loshchilov and Hutter; its lambda is ``decoupled_decay``, by default ``decay``), relative to the largest
    |w| of (a); ``written_vs_optax``, the same relative difference between (a) as written here and
    optax.sgd(lr, momentum) on the penalised loss."""
    lam_b = decay if decoupled_decay is None else decoupled_decay
    a, b, c = (np.asarray(t) for t in _momentum_pair(steps)(x, y, np.asarray(lr), np.asarray(decay),
                                                           np.asarray(lam_b), np.asarray(momentum), v0))
    scale = float(np.max(np.abs(c)))
    return {"gap": float(np.max(np.abs(a - b))) / scale, "written_vs_optax": float(np.max(np.abs(a - c))) / scale}


@functools.cache
def _momentum_pair(steps: int):
    @jax.jit
    def pair(x, y, lr, decay, decay_b, mu, v0):
        def mse(v):
            return jnp.mean((x @ v - y) ** 2) / 2

        def coupled(carry, _):
            v, m = carry
            m = mu * m + jax.grad(lambda u: mse(u) + decay / 2 * jnp.sum(u**2))(v)  # optax.trace, then -lr
            return (v - lr * m, m), None

        def decoupled(carry, _):
            v, m = carry
            m = mu * m + jax.grad(mse)(v)
            return ((1 - lr * decay_b) * v - lr * m, m), None

        zero = jnp.zeros_like(v0)
        a = jax.lax.scan(coupled, (v0, zero), None, length=steps)[0][0]
        b = jax.lax.scan(decoupled, (v0, zero), None, length=steps)[0][0]
        optimizer = optax.sgd(lr, momentum=mu)  # (a) is optax's own momentum SGD: checked in the same program

        def library(carry, _):
            v, state = carry
            updates, state = optimizer.update(jax.grad(lambda u: mse(u) + decay / 2 * jnp.sum(u**2))(v), state, v)
            return (optax.apply_updates(v, updates), state), None

        c = jax.lax.scan(library, (v0, optimizer.init(v0)), None, length=steps)[0][0]
        return a, b, c

    return pair


@bridge.cache
def _sgd_pair(steps: int):
    update = to_jax(sgd_weight_decay(), [w, eta, g, lam])

    def pair(x, y, lr, decay, v0):
        def mse(v):
            return jnp.mean((x @ v - y) ** 2) / 2

        optimizer = optax.sgd(lr)

        def coupled(carry, _):
            v, state = carry
            updates, state = optimizer.update(jax.grad(lambda u: mse(u) + decay / 2 * jnp.sum(u**2))(v), state, v)
            v = optax.apply_updates(v, updates)
            return (v, state), v

        def decoupled(v, _):
            v = update(v, lr, jax.grad(mse)(v), decay)
            return v, v

        a = jax.lax.scan(coupled, (v0, optimizer.init(v0)), None, length=steps)[1]
        b = jax.lax.scan(decoupled, v0, None, length=steps)[1]
        return a, b

    return jax.jit(pair)


# --- early stopping ------------------------------------------------------------------------------------


def _legendre_sample(rng: np.random.Generator, n: int, degree: int) -> tuple[np.ndarray, np.ndarray]:
    xs = rng.uniform(-1, 1, n)
    return np.polynomial.legendre.legvander(xs, degree), np.sin(np.pi * xs) + rng.normal(0, 0.3, n)


@bridge.cache
def early_stopping_runs(seeds: tuple[int, ...], lrs: tuple[float, ...], degree: int = 15, steps: int = 5000,
                        n_train: int = 20) -> dict[str, np.ndarray]:
    """Train, validation (200 samples) and held-out test (2000 samples) MSE per step of optax.adam fitting a
    degree-``degree`` Legendre polynomial to ``n_train`` noisy samples of sin(pi x), for every (seed, lr):
    arrays of shape (len(seeds) * len(lrs), steps), seed-major. One compiled program runs every configuration."""
    def quadratic(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        # mean((x v - y)^2) = v'Av - 2 b'v + c: a held-out MSE per step costs a 16 x 16 product, not a pass
        # over the 2000 samples.
        return [x.T @ x / len(y), x.T @ y / len(y), np.mean(y**2)]

    data = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        # The test set is drawn last, so it leaves the training and validation samples unchanged.
        train, val, test = (_legendre_sample(rng, n, degree) for n in (n_train, 200, 2000))
        data.append([*train, *quadratic(*val), *quadratic(*test)])
    columns = [np.stack([d[i] for d in data for _ in lrs]) for i in range(8)]
    rates = np.asarray([lr for _ in seeds for lr in lrs])

    def one(xt, yt, av, bv, cv, ah, bh, ch, rate):
        optimizer = optax.adam(rate)

        def step(carry, _):
            v, state = carry
            train, grads = jax.value_and_grad(lambda u: jnp.mean((xt @ u - yt) ** 2))(v)
            updates, state = optimizer.update(grads, state, v)
            v = optax.apply_updates(v, updates)
            return (v, state), (train, v @ av @ v - 2 * bv @ v + cv, v @ ah @ v - 2 * bh @ v + ch)

        v0 = jnp.zeros(degree + 1)
        return jax.lax.scan(step, (v0, optimizer.init(v0)), None, length=steps)[1]

    train, val, test = jax.jit(jax.vmap(one))(*columns, rates)
    return {"train": np.asarray(train), "val": np.asarray(val), "test": np.asarray(test)}


def early_stopping_curves(degree: int = 15, steps: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation MSE per step of optax.adam(0.01) fitting a degree-15 Legendre polynomial to 20
    noisy samples of sin(pi x) (200 validation samples): a model that overfits."""
    runs = early_stopping_runs((0,), (0.01,), degree, steps)
    return runs["train"][0], runs["val"][0]


def early_stopping_test_curve(degree: int = 15, steps: int = 5000) -> np.ndarray:
    """MSE per step of the same run on 2000 fresh samples that neither training nor the choice of the
    stopping step sees: whether the validation minimum is also the best step on new data."""
    return early_stopping_runs((0,), (0.01,), degree, steps)["test"][0]


def patience_stop(val: np.ndarray, patience: int) -> int:
    """The step the rule "stop when the validation loss no longer falls" picks: training stops once the
    validation loss has not improved on its best for ``patience`` steps, and the best step so far is kept."""
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    best = 0
    for t in range(1, len(val)):
        if val[t] < val[best]:
            best = t
        elif t - best >= patience:
            break
    return best


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "regularization"]) or main(["check", "regularization"]))
