"""Regularisation: L1 against L2 in closed form and in an optax run, the norms the notes define, weight
decay against an L2 penalty under SGD and Adam, and early stopping on a small overfitting run.

Seeds: S000-04, S002-27, S003-08, S001-18, S004-03, S002-22, S002-04 (narrative: S000-01, S001-27,
S001-43, S002-51, S003-07, S004-04, answered in the appendix). Run ``python -m derivations.regularization``
to print the derivations and check the claims.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations.bridge import prove_identity, to_jax
from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict

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
@functools.cache
def l1_minimiser() -> sp.Eq:
    """argmin_w (w - a)^2/2 + lambda |w| is the soft threshold: on w > 0 (w < 0) the stationary point is
    a - lambda (a + lambda), valid only when a > lambda (a < -lambda); otherwise 0 is optimal because the
    subdifferential lambda [-1, 1] of the kink at 0 contains a (S000-04, S002-27)."""
    right = sp.solve(sp.diff(l1_objective().subs(sp.Abs(w), w), w), w)[0]
    left = sp.solve(sp.diff(l1_objective().subs(sp.Abs(w), -w), w), w)[0]
    return sp.Eq(sp.Symbol("w*"), sp.Piecewise((right, a > lam), (left, a < -lam), (0, True)), evaluate=False)


@derivation
@functools.cache
def soft_threshold() -> sp.Eq:
    """The same minimiser written as sign(a) max(|a| - lambda, 0) (shown equal at lambda = 1/2, 1, 2 in the claim)."""
    return sp.Eq(sp.Symbol("w*"), sp.sign(a) * sp.Max(sp.Abs(a) - lam, 0), evaluate=False)


@derivation
@functools.cache
def l2_minimiser() -> sp.Eq:
    """argmin_w (w - a)^2/2 + lambda w^2 = a / (1 + 2 lambda): a shrinks, but is zero only if a is (S003-08)."""
    return sp.Eq(sp.Symbol("w*"), sp.solve(sp.diff(l2_objective(), w), w)[0], evaluate=False)


@derivation
@functools.cache
def sgd_weight_decay() -> sp.Eq:
    """One SGD step on L + (lambda/2) w^2 multiplies w by (1 - eta lambda) before the gradient step: weight
    decay (S004-03)."""
    step = w - eta * (g + sp.diff(lam * w**2 / 2, w))
    return sp.Eq(sp.Symbol("w_next"), sp.collect(sp.expand(step), w), evaluate=False)


@derivation
@functools.cache
def adam_first_step() -> list[sp.Eq]:
    """Adam's first step (bias-corrected m = g, v = g^2, eps = 0) with the L2 term inside the gradient is
    eta sign(g + lambda w): the decay is normalised away; AdamW adds eta lambda w outside the
    normalisation."""
    adam_l2 = (g + lam * w) / sp.sqrt((g + lam * w) ** 2)
    return [
        sp.Eq(sp.Symbol("Delta_Adam+L2"), -eta * adam_l2, evaluate=False),
        sp.Eq(sp.Symbol("Delta_AdamW"), -eta * (g / sp.sqrt(g**2) + lam * w), evaluate=False),
    ]


@functools.cache
def _soft_threshold_jax():
    """The derived soft threshold, compiled: the proximal step of lambda ||w||_1."""
    return to_jax(soft_threshold().rhs, [a, lam])


# --- the sparse-regression runs ------------------------------------------------------------------------


@functools.cache
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
    x, y, _ = sparse_problem()
    lr = 1.0 / float(jnp.linalg.eigvalsh(x.T @ x / x.shape[0])[-1])  # 1 / Lipschitz constant of the MSE gradient
    optimizer = optax.sgd(lr)

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
            v = _soft_threshold_jax()(v, lr * strength)
        return (v, state), None

    v0 = jnp.zeros(x.shape[1])
    return jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((v0, optimizer.init(v0)))[0][0]


# --- early stopping ------------------------------------------------------------------------------------


@functools.cache
def _early_stopping_run(degree: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and held-out test MSE per step (see :func:`early_stopping_curves`)."""
    rng = np.random.default_rng(0)

    def sample(n: int) -> tuple[jax.Array, jax.Array]:
        xs = rng.uniform(-1, 1, n)
        return jnp.asarray(np.polynomial.legendre.legvander(xs, degree)), jnp.asarray(np.sin(np.pi * xs)
                                                                                      + rng.normal(0, 0.3, n))

    # The test set is drawn last, so it leaves the training and validation samples unchanged.
    (xt, yt), (xv, yv), (xh, yh) = sample(20), sample(200), sample(2000)
    optimizer = optax.adam(0.01)

    def step(carry, _):
        v, state = carry
        train, grads = jax.value_and_grad(lambda u: jnp.mean((xt @ u - yt) ** 2))(v)
        updates, state = optimizer.update(grads, state, v)
        v = optax.apply_updates(v, updates)
        return (v, state), (train, jnp.mean((xv @ v - yv) ** 2), jnp.mean((xh @ v - yh) ** 2))

    v0 = jnp.zeros(degree + 1)
    _, curves = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((v0, optimizer.init(v0)))
    return tuple(np.asarray(c) for c in curves)


def early_stopping_curves(degree: int = 15, steps: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation MSE per step of optax.adam(0.01) fitting a degree-15 Legendre polynomial to 20
    noisy samples of sin(pi x) (200 validation samples): a model that overfits."""
    return _early_stopping_run(degree, steps)[:2]


def early_stopping_test_curve(degree: int = 15, steps: int = 5000) -> np.ndarray:
    """MSE per step of the same run on 2000 fresh samples that neither training nor the choice of the
    stopping step sees: whether the validation minimum is also the best step on new data."""
    return _early_stopping_run(degree, steps)[2]


# --- claims ------------------------------------------------------------------------------------------


@claim(
    "regularization/l1-gives-exact-zeros-l2-only-shrinks",
    sources=["S002-27", "S003-08", "S000-04"],
    says="L1 regularisation produces sparse weights (many exactly zero); L2 shrinks the weights towards zero "
    "but never makes them exactly zero.",
    expected="holds",
)
def _l1_vs_l2_closed_form() -> Evidence:
    # bridge.prove_identity samples every symbol alike; lambda > 0 is fixed per proof instead.
    proofs = [prove_identity(l1_minimiser().rhs.subs(lam, v), soft_threshold().rhs.subs(lam, v), [a])
              for v in (sp.Rational(1, 2), 1, 2)]
    st_holds, st_proved = all(p.holds for p in proofs), all(p.proved for p in proofs)
    grid_a = np.linspace(-3, 3, 601)
    grid_w = jnp.linspace(-4, 4, 16001)
    rows, optimal = {}, True
    for name, objective, minimiser in (("L1", l1_objective(), l1_minimiser().rhs),
                                       ("L2", l2_objective(), l2_minimiser().rhs)):
        f = to_jax(objective, [w, a, lam])
        best = np.asarray(to_jax(minimiser, [a, lam])(jnp.asarray(grid_a), 1.0))
        at_best = np.asarray(f(jnp.asarray(best), jnp.asarray(grid_a), 1.0))
        on_grid = np.asarray(jax.vmap(lambda av, f=f: jnp.min(f(grid_w, av, 1.0)))(jnp.asarray(grid_a)))
        optimal = optimal and bool(np.all(at_best <= on_grid + 1e-12))
        rows[name] = {"zeros": int(np.sum(best == 0.0)), "zeros_expected": int(np.sum(np.abs(grid_a) <= 1.0))
                      if name == "L1" else int(np.sum(grid_a == 0.0))}
    runs = {kind: int(jnp.sum(penalised_run(kind) == 0.0)) for kind in ("l1-proximal", "l2")}
    l2_zero_only_at_zero = sp.solve(sp.Eq(l2_minimiser().rhs, 0), a) == [0]
    ok = (st_holds and optimal and rows["L1"]["zeros"] == rows["L1"]["zeros_expected"]
          and rows["L2"]["zeros"] == rows["L2"]["zeros_expected"] and l2_zero_only_at_zero
          and runs["l1-proximal"] > 0 and runs["l2"] == 0)
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"piecewise minimiser = sign(a) max(|a| - lambda, 0) for lambda = 1/2, 1, 2 "
        f"({'proved by SymPy' if st_proved else 'numerically'}); closed forms (lambda = 1) beat every point "
        f"of a 16001-point grid on 601 values of a: {optimal}; "
        f"L1 minimiser exactly 0 for {rows['L1']['zeros']} of 601 a (all |a| <= lambda), L2 for "
        f"{rows['L2']['zeros']} (a = 0 only; SymPy: a/(1+2 lambda) = 0 iff a = 0); sparse regression (50 "
        f"weights, 5 true) with optax.sgd: exact zeros L1 proximal {runs['l1-proximal']}, L2 {runs['l2']}",
        max_rel_err=max(p.max_rel_err for p in proofs),
        samples=601,
        dtype="float64",
        details={"closed_form": rows, "optax_runs_exact_zeros": runs, "soft_threshold_proved": st_proved},
    )


@claim(
    "regularization/l1-sparsity-comes-from-the-kink-not-a-constant-derivative",
    sources=["S000-04"],
    says="L1 produces sparse weights because its derivative is a constant.",
    expected="qualified",
    correction="The constant-size push lambda sign(w) (which, unlike L2's 2 lambda w, does not fade near 0) is "
    "the intuition, but it does not produce a single exact zero by itself: plain (sub)gradient descent "
    "on the L1-penalised loss oscillates around 0. Exact zeros come from the kink: at w = 0 the "
    "subdifferential is the whole interval lambda [-1, 1], so 0 is optimal for every |gradient| <= lambda, "
    "and a proximal (soft-threshold) step lands on 0 exactly.",
)
def _l1_reason() -> Evidence:
    x, y, w_true = sparse_problem()
    strength = 0.3
    runs = {kind: penalised_run(kind, strength) for kind in ("l1-proximal", "l1-subgradient", "l2")}
    zeros = {k: int(jnp.sum(v == 0.0)) for k, v in runs.items()}
    tiny = {k: int(jnp.sum(jnp.abs(v) < 1e-3)) for k, v in runs.items()}
    # Optimality of the proximal run (KKT): the MSE gradient is -lambda sign(w) on the support and at most
    # lambda in size off it.
    grad = np.asarray(x.T @ (x @ runs["l1-proximal"] - y) / x.shape[0])
    support = np.asarray(runs["l1-proximal"]) != 0
    kkt_on = float(np.max(np.abs(grad[support] + strength * np.sign(np.asarray(runs["l1-proximal"])[support]))))
    kkt_off = float(np.max(np.abs(grad[~support]))) if np.any(~support) else 0.0
    ok = zeros["l1-proximal"] > 0 and zeros["l1-subgradient"] == 0 and zeros["l2"] == 0 and kkt_on <= 1e-8 \
        and kkt_off <= strength
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"50-weight sparse regression (5 true non-zeros), lambda = {strength}, 500 optax.sgd steps: exact "
        f"zeros: " + ", ".join(f"{k} {zeros[k]} (|w| < 1e-3: {tiny[k]})" for k in runs)
        + f"; proximal solution satisfies the L1 optimality conditions (on support {kkt_on:.1e}, off support "
        f"max |grad| {kkt_off:.3f} <= {strength})",
        samples=int(x.shape[0]),
        dtype="float64",
        details={"exact_zeros": zeros, "below_1e-3": tiny, "kkt_on_support": kkt_on, "kkt_off_support": kkt_off,
                 "true_nonzeros": int(np.sum(w_true != 0))},
    )


@claim(
    "regularization/l2-norm-has-a-square-root",
    sources=["S003-08"],
    says="||W||_2 = w_1^2 + w_2^2 + ... + w_n^2, and the L2-regularised loss is J(w) + lambda ||W||_2.",
    expected="refuted",
    correction="||W||_2 = sqrt(w_1^2 + ... + w_n^2); the L2 penalty is its square lambda ||W||_2^2. The "
    "difference matters: the unsquared norm has a kink at W = 0 and zeroes the whole vector when ||a|| <= "
    "lambda (minimiser max(0, 1 - lambda/||a||) a), while the squared penalty only shrinks (a / (1 + 2 lambda)).",
)
def _l2_norm_square_root() -> Evidence:
    v = jnp.asarray([3.0, 4.0])
    notes_form, norm = float(jnp.sum(v**2)), float(jnp.linalg.norm(v, 2))
    # Minimiser of ||w - a||^2/2 + lambda ||w||_2 (block soft threshold), checked against random perturbations.
    rng = np.random.default_rng(2)
    lam_v, hits, zeroed = 1.0, 0, 0
    problems = rng.normal(0, 0.8, (50, 3))
    objective = jax.jit(lambda u, av: jnp.sum((u - av) ** 2) / 2 + lam_v * jnp.linalg.norm(u))
    for av in problems:
        best = max(0.0, 1 - lam_v / float(np.linalg.norm(av))) * av
        trials = best + rng.normal(0, 0.05, (200, 3))
        zeroed += bool(np.all(best == 0.0))
        hits += bool(np.all(np.asarray(jax.vmap(objective, (0, None))(jnp.asarray(trials), jnp.asarray(av)))
                            >= float(objective(jnp.asarray(best), jnp.asarray(av))) - 1e-12))
    checked = len(problems)
    notes_right = abs(notes_form - norm) <= 1e-12 * norm
    ok_demo = hits == checked and zeroed > 0
    return Evidence(
        verdict=verdict(notes_right, "holds", "refuted" if ok_demo else "qualified"),
        method="measurement",
        summary=f"w = (3, 4): sum of squares {notes_form:g}, jnp.linalg.norm {norm:g}; penalty lambda ||w||_2 "
        f"(unsquared): the block soft threshold is optimal in {hits}/{checked} problems and is exactly 0 in "
        f"{zeroed} of them (||a|| <= lambda), unlike the squared penalty",
        samples=checked,
        dtype="float64",
        details={"sum_of_squares": notes_form, "norm": norm, "zeroed": zeroed},
    )


@claim(
    "regularization/l0-l1-l2-norm-definitions",
    sources=["S004-03", "S001-18", "S002-22"],
    says="L0 counts the non-zero entries, L1 is the sum of absolute values, L2 is the square root of the sum "
    "of squares.",
    expected="holds",
)
def _norms() -> Evidence:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(200, 12)) * (rng.random((200, 12)) < 0.5)
    definitions = {
        "L0": (lambda v: jnp.sum(v != 0, axis=-1).astype(v.dtype), 0),
        "L1": (lambda v: jnp.sum(jnp.abs(v), axis=-1), 1),
        "L2": (lambda v: jnp.sqrt(jnp.sum(v**2, axis=-1)), 2),
    }
    results = {name: compare(f, lambda v, o=order: jnp.linalg.norm(v, ord=o, axis=-1), [vectors])
               for name, (f, order) in definitions.items()}
    l0_not_homogeneous = bool(jnp.all(definitions["L0"][0](2 * jnp.asarray(vectors))
                                      == definitions["L0"][0](jnp.asarray(vectors))))
    ok = all(r.ok for r in results.values()) and l0_not_homogeneous
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary="definitions vs jnp.linalg.norm(ord=0, 1, 2) on 200 sparse vectors: "
        + ", ".join(f"{n} max rel err {r.max_rel_err:.1e}" for n, r in results.items())
        + "; L0 is not a norm (||2w||_0 = ||w||_0)",
        max_abs_err=max(r.max_abs_err for r in results.values()),
        max_rel_err=max(r.max_rel_err for r in results.values()),
        samples=200,
        dtype="float64",
    )


@claim(
    "regularization/weight-decay-equals-l2-for-sgd-not-for-adam",
    sources=["S004-03", "S002-22"],
    says="Weight decay is a regulariser: it is the L2 penalty.",
    expected="qualified",
    correction="For SGD, decaying w by (1 - eta lambda) each step is exactly gradient descent on L + (lambda/2) "
    "||w||^2. For Adam it is not: an L2 term in the loss is divided by sqrt(v) like the rest of the gradient, "
    "so weights with large gradients are barely decayed; optax.adamw (decoupled decay) is a different method.",
)
def _weight_decay() -> Evidence:
    x, y, _ = sparse_problem()
    lr, decay, steps = 0.01, 0.1, 100

    def mse(v: jax.Array) -> jax.Array:
        return jnp.mean((x @ v - y) ** 2) / 2

    def with_l2(v: jax.Array) -> jax.Array:
        return mse(v) + decay / 2 * jnp.sum(v**2)

    def train(optimizer: optax.GradientTransformation, loss) -> jax.Array:
        def step(carry, _):
            v, state = carry
            updates, state = optimizer.update(jax.grad(loss)(v), state, v)
            return (optax.apply_updates(v, updates), state), None

        v0 = jnp.asarray(np.random.default_rng(1).normal(size=x.shape[1]))
        return jax.lax.scan(step, (v0, optimizer.init(v0)), None, length=steps)[0][0]

    sgd_decay = train(optax.chain(optax.add_decayed_weights(decay), optax.sgd(lr)), mse)
    sgd_l2 = train(optax.sgd(lr), with_l2)
    adamw = train(optax.adamw(lr, weight_decay=decay), mse)
    adam_l2 = train(optax.adam(lr), with_l2)
    same = compare(lambda: sgd_decay, lambda: sgd_l2, [])
    differ = float(jnp.linalg.norm(adamw - adam_l2) / jnp.linalg.norm(adam_l2))
    ok = same.ok and differ > 1e-3
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="measurement",
        summary=f"{steps} steps on a 50-weight regression, lambda = {decay}: sgd + add_decayed_weights vs sgd on "
        f"L + lambda/2 ||w||^2: {same.describe()}; optax.adamw vs adam on L + lambda/2 ||w||^2: final weights "
        f"differ by {differ:.1%} (relative norm)",
        max_abs_err=same.max_abs_err,
        max_rel_err=same.max_rel_err,
        samples=steps,
        dtype=same.dtype,
        details={"adamw_vs_adam_l2_relative_difference": differ},
    )


@claim(
    "regularization/early-stopping-at-the-validation-minimum",
    sources=["S002-04", "S002-22"],
    says="When the training loss keeps falling but the validation loss stops falling the model starts to "
    "overfit; stop there: the step with the smallest validation loss is the best number of iterations.",
    expected="holds",
)
def _early_stopping() -> Evidence:
    train, val = early_stopping_curves()
    test = early_stopping_test_curve()
    best, test_best = int(np.argmin(val)), int(np.argmin(test))
    interior = 0 < best < len(val) - 1
    overfits = train[-1] < train[best] and val[-1] > 1.5 * val[best]
    # "Best" is judged on data that played no part: within 5% of the best test MSE of any step, and
    # clearly better than training to the end.
    generalises = test[best] <= 1.05 * test[test_best] and test[-1] > 1.5 * test[best]
    ok = interior and overfits and generalises
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"degree-15 polynomial, 20 training points, optax.adam, {len(val)} steps: validation minimum "
        f"{val[best]:.4f} at step {best + 1}; at the end training MSE fell further ({train[best]:.4f} -> "
        f"{train[-1]:.4f}) while validation MSE rose to {val[-1]:.4f} ({val[-1] / val[best]:.1f}x the minimum); "
        f"on 2000 held-out test points the MSE at step {best + 1} is {test[best]:.4f} (best of any step "
        f"{test[test_best]:.4f}, at step {test_best + 1}; at the end {test[-1]:.4f})",
        samples=len(val),
        dtype="float64",
        details={"best_step": best + 1, "val_min": float(val[best]), "val_last": float(val[-1]),
                 "train_at_best": float(train[best]), "train_last": float(train[-1]),
                 "test_at_best": float(test[best]), "test_min": float(test[test_best]),
                 "test_best_step": test_best + 1, "test_last": float(test[-1])},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "regularization"]) or main(["check", "regularization"]))
