"""Optimizers: SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam and AdamW written in SymPy under three
libraries' documented conventions (optax, PyTorch, Keras) and unrolled against optax itself and against the
numeric trajectories of ``models/optimizers.py``; Adam's bias correction; Nesterov's look-ahead; Newton vs
gradient descent; the learning-rate stability bound; and the gradient of a validation loss with respect to
the learning rate.

Seeds: S002-05 (names the methods), S000-08 and S001-19 (ask which optimizers are common), S001-24 (asks how
GD and Newton differ), S000-30, S001-20, S002-46, S004-02, S004-16 (narrative: S001-28, S002-07, S004-01, in
the appendix). Run ``python -m derivations.optimizers`` to print the derivations and check the claims.

The library defines the rules and the measurements; the claims are in ``derivations/ledger/optimizers.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations import bridge
from derivations.bridge import mark_evaluated
from derivations.claims import derivation
from models.optimizers import CONVENTIONS, DEFAULTS, LIBRARY_NAMES, NAMES, hyperparameters
from models.optimizers import trajectory as _numeric_trajectory

eta = sp.Symbol("eta", positive=True)  # learning rate
mu = sp.Symbol("mu", positive=True)  # momentum
tau = sp.Symbol("tau", nonnegative=True)  # PyTorch's dampening
rho = sp.Symbol("rho", positive=True)  # RMSProp's decay
beta1, beta2 = sp.symbols("beta_1 beta_2", positive=True)
eps = sp.Symbol("epsilon", positive=True)
eps_root = sp.Symbol(r"epsilon_{root}", nonnegative=True)
s0 = sp.Symbol("s_0", nonnegative=True)  # AdaGrad's / RMSProp's initial accumulator
wd = sp.Symbol(r"lambda_{wd}", nonnegative=True)  # weight decay
lr_decay = sp.Symbol(r"eta_{decay}", nonnegative=True)  # PyTorch AdaGrad's learning-rate decay
t = sp.Symbol("t", positive=True, integer=True)
g = sp.Symbol("g_t", real=True)
theta_prev = sp.Symbol(r"\theta_{t-1}", real=True)
lam, L = sp.symbols("lambda L", positive=True)  # a curvature, the largest curvature
x = sp.Symbol("x", real=True)

# the hyper-parameter vocabulary of models.optimizers -> its symbol
HYPER_SYMBOLS = {
    "momentum": mu,
    "dampening": tau,
    "decay": rho,
    "b1": beta1,
    "b2": beta2,
    "eps": eps,
    "eps_root": eps_root,
    "initial_accumulator": s0,
    "weight_decay": wd,
    "lr_decay": lr_decay,
}
STATE_NAMES = {
    "sgd": (),
    "momentum": ("v",),
    "nesterov": ("v",),
    "adagrad": ("s",),
    "rmsprop": ("nu",),
    "adam": ("m", "v"),
    "adamw": ("m", "v"),
}


def _initial_state(name: str, convention: str) -> tuple:
    if name in ("adagrad", "rmsprop") and "initial_accumulator" in DEFAULTS[convention][name]:
        return (s0,)
    return tuple(0 for _ in STATE_NAMES[name])


def symbolic_step(name: str, convention: str, theta, grad, state: tuple, step, *, bias_correction: bool = True):
    """One step of ``name`` as ``convention`` documents it, in SymPy: (theta_{t-1}, g_t, state_{t-1}, t) ->
    (theta_t, state_t). The rule is written from the documentation, separately from models.optimizers."""
    if name not in NAMES or convention not in CONVENTIONS:
        raise ValueError(f"valid optimizers: {', '.join(NAMES)}; valid conventions: {', '.join(CONVENTIONS)}")
    uses_wd = "weight_decay" in DEFAULTS[convention][name]
    coupled = uses_wd and convention == "pytorch" and name != "adamw"  # torch.optim: L2 term in the gradient
    decoupled = uses_wd and not coupled  # Keras (all) and AdamW (all): theta -= lr * lambda * theta
    grad = grad + wd * theta if coupled else grad
    theta = theta - eta * wd * theta if decoupled else theta
    if name == "sgd":
        return theta - eta * grad, state
    if name in ("momentum", "nesterov"):
        (v,) = state
        damping = 1 - tau if (convention == "pytorch" and name == "momentum") else 1
        # torch: b_1 = g_1 undamped; afterwards b_t = mu b_{t-1} + (1 - tau) g_t. optax, Keras: v_0 = 0.
        v = grad if (convention == "pytorch" and step == 1) else mu * v + damping * grad
        return theta - eta * (grad + mu * v if name == "nesterov" else v), (v,)
    if name == "adagrad":
        (s,) = state
        s = s + grad**2
        if convention == "pytorch":
            return theta - eta / (1 + (step - 1) * lr_decay) * grad / (sp.sqrt(s) + eps), (s,)
        return theta - eta * grad / sp.sqrt(s + eps), (s,)  # optax scale_by_rss, Keras: eps inside the root
    if name == "rmsprop":
        (nu,) = state
        nu = rho * nu + (1 - rho) * grad**2
        if convention == "pytorch":
            return theta - eta * grad / (sp.sqrt(nu) + eps), (nu,)
        return theta - eta * grad / sp.sqrt(nu + eps), (nu,)  # optax eps_in_sqrt=True, Keras: inside
    m, v = state
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    c1, c2 = (1 - beta1**step, 1 - beta2**step) if bias_correction else (1, 1)
    if convention == "keras":
        # Keras: lr sqrt(1 - beta_2^t)/(1 - beta_1^t) m_t/(sqrt(v_t) + eps), eps being Kingma & Ba's eps-hat.
        return theta - eta * sp.sqrt(c2) / c1 * m / (sp.sqrt(v) + eps), (m, v)
    # sqrt(v_hat) written as sqrt(v_t)/sqrt(c2) (equal for v_t >= 0; SymPy's sqrt of a product would query
    # assumptions on every factor of a long unrolled v_t); eps_root is 0 unless given (optax only).
    root = sp.sqrt(v) / sp.sqrt(c2) if convention == "pytorch" else sp.sqrt(v / c2 + eps_root)
    return theta - eta * (m / c1) / (root + eps), (m, v)


def gradient_symbols(steps: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"g_1:{steps + 1}", real=True)


THETA0 = sp.Symbol(r"\theta_0", real=True)


def symbolic_trajectory(name: str, convention: str, steps: int, **options) -> list[sp.Expr]:
    """theta_1 ... theta_steps as expressions of theta_0, g_1 ... g_steps and the hyper-parameter symbols."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    theta, state, out = THETA0, _initial_state(name, convention), []
    for k, grad in enumerate(gradient_symbols(steps), start=1):
        theta, state = symbolic_step(name, convention, theta, grad, state, k, **options)
        out.append(theta)
    return out


@bridge.cache
def _compiled_rule(name: str, convention: str, bias_correction: bool = True):
    """The displayed one-step equations of ``name`` under ``convention``, lambdified (NumPy, float64) into
    (theta_{t-1}, g_t, t, eta, hyper-parameters..., state_{t-1}...) -> [state_t..., theta_t]."""
    equations = rule_equations(name, convention, bias_correction=bias_correction)
    mark_evaluated(equations)  # evaluated below by lambdify: recorded for the displayed-equation check
    arguments = [
        theta_prev,
        g,
        t,
        eta,
        *(HYPER_SYMBOLS[k] for k in DEFAULTS[convention][name]),
        *_state_symbols(name, "t-1"),
    ]
    return sp.lambdify(arguments, [eq.rhs for eq in equations], modules="numpy")


def symbolic_iterates(
    name: str, grads, *, convention: str, lr: float, params0, bias_correction: bool = True, **given
) -> np.ndarray:
    """theta_0 ... theta_T (shape (T + 1, d)) from the SymPy one-step rule (the displayed equations), applied
    step after step from the documented initial state; PyTorch's momentum buffer starts as b_1 = g_1."""
    h = hyperparameters(name, convention, given)
    rule = _compiled_rule(name, convention, bias_correction)
    grads = np.asarray(grads, dtype=np.float64)
    theta = np.asarray(params0, dtype=np.float64) + np.zeros(grads.shape[1])
    state = [
        np.full(grads.shape[1], float(sp.sympify(s).subs({HYPER_SYMBOLS[k]: v for k, v in h.items()})))
        for s in _initial_state(name, convention)
    ]
    out = [theta]
    for k, grad in enumerate(grads, start=1):
        values = dict(h)
        if k == 1 and convention == "pytorch" and name == "momentum":
            values["dampening"] = 0.0  # torch's b_1 = g_1: the first gradient is not damped
        *state, theta = rule(out[-1], grad, k, lr, *values.values(), *state)
        out.append(np.asarray(theta, dtype=np.float64) + np.zeros(grads.shape[1]))
    return np.stack(out)


def trajectory(name: str, grads, *, convention: str, lr: float, params0=None, **hyperparameters_given) -> jax.Array:
    """Parameters after each step (shape ``(T + 1, d)`` for ``grads`` of shape ``(T, d)``) of ``name`` in
    {sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw} under ``convention`` in {optax, pytorch, keras},
    with that library's defaults for every hyper-parameter not given (``models.optimizers.DEFAULTS``;
    ``momentum`` must be given for momentum and nesterov). ValueError names the valid values."""
    return _numeric_trajectory(name, grads, convention=convention, lr=lr, params0=params0, **hyperparameters_given)


def optax_optimizer(name: str, lr: float, **given) -> optax.GradientTransformation:
    """The optax optimizer ``name`` with the hyper-parameters of ``trajectory``'s vocabulary."""
    traced = {k: v for k, v in given.items() if isinstance(v, jax.core.Tracer)}
    h = {**hyperparameters(name, "optax", {k: (1.0 if k in traced else v) for k, v in given.items()}), **traced}
    if name == "sgd":
        return optax.sgd(lr)
    if name in ("momentum", "nesterov"):
        return optax.sgd(lr, momentum=h["momentum"], nesterov=name == "nesterov")
    if name == "adagrad":
        return optax.adagrad(lr, initial_accumulator_value=h["initial_accumulator"], eps=h["eps"])
    if name == "rmsprop":
        return optax.rmsprop(lr, decay=h["decay"], eps=h["eps"], initial_scale=h["initial_accumulator"])
    if name == "adam":
        return optax.adam(lr, b1=h["b1"], b2=h["b2"], eps=h["eps"], eps_root=h["eps_root"])
    return optax.adamw(lr, b1=h["b1"], b2=h["b2"], eps=h["eps"], eps_root=h["eps_root"], weight_decay=h["weight_decay"])


def optax_iterates(optimizer: optax.GradientTransformation, grads, params0) -> jax.Array:
    """theta_0 ... theta_T from optax itself (``update(g, state, params)`` then ``apply_updates``)."""

    def step(carry, grad):
        theta, state = carry
        update, state = optimizer.update(grad, state, theta)
        theta = optax.apply_updates(theta, update)
        return (theta, state), theta

    params0 = jnp.asarray(params0)
    return jnp.concatenate([params0[None], jax.lax.scan(step, (params0, optimizer.init(params0)), grads)[1]])


@bridge.cache
def _optax_run(name: str, keys: tuple[str, ...]):
    """One compiled optax run of ``name`` per set of hyper-parameter names: the learning rate and every
    hyper-parameter value are traced arguments, so a grid of configurations reuses the compile."""

    @jax.jit
    def run(lr, values, grads, params0):
        return optax_iterates(optax_optimizer(name, lr, **dict(zip(keys, values, strict=True))), grads, params0)

    return run


def optax_trajectory(name: str, grads, *, lr: float, params0, **given) -> jax.Array:
    """``optax_iterates(optax_optimizer(name, lr, **given), grads, params0)``, compiled once per optimizer
    (and shape): lr and the hyper-parameters are traced."""
    keys = tuple(sorted(given))
    values = tuple(jnp.asarray(given[k], dtype=jnp.float64) for k in keys)
    return _optax_run(name, keys)(jnp.asarray(lr, dtype=jnp.float64), values, jnp.asarray(grads), jnp.asarray(params0))


# --- the conventions table, from each library's documented update rule ------------------------------------

CONVENTION_SOURCES = {
    "optax": "optax 0.2 API docs (optax.sgd, adagrad, rmsprop, adam, adamw) and optax/_src/alias.py",
    "pytorch": "torch.optim docs: SGD, Adagrad, RMSprop, Adam, AdamW algorithm boxes",
    "keras": "Keras 3 optimizer docs (SGD, Adagrad, RMSprop, Adam, AdamW) and keras/src/optimizers/*.py",
}
_EPS_PLACEMENT = {
    ("optax", "adagrad"): "inside the root: g/sqrt(s + eps)",
    ("optax", "rmsprop"): "inside the root: g/sqrt(nu + eps)",
    ("optax", "adam"): "outside: m_hat/(sqrt(v_hat + eps_root) + eps)",
    ("pytorch", "adagrad"): "outside: g/(sqrt(s) + eps)",
    ("pytorch", "rmsprop"): "outside: g/(sqrt(v) + eps)",
    ("pytorch", "adam"): "outside: m_hat/(sqrt(v_hat) + eps)",
    ("keras", "adagrad"): "inside the root: g/sqrt(s + eps)",
    ("keras", "rmsprop"): "inside the root: g/sqrt(v + eps)",
    ("keras", "adam"): "outside, unscaled (eps-hat): sqrt(1-b2^t)/(1-b1^t) m/(sqrt(v) + eps)",
}
_DECAY = {
    "optax": "adamw only: decoupled, update -lr (adam direction + wd theta), so multiplied by lr",
    "pytorch": "SGD/Adagrad/RMSprop/Adam: coupled L2, g += wd theta; AdamW: decoupled theta -= lr wd theta",
    "keras": "every optimizer: decoupled, theta -= lr wd theta before the step",
}


def conventions_table() -> list[dict[str, str]]:
    """One row per (library, optimizer): the defaults, the initial accumulator, where eps goes, the decay."""
    rows = []
    for convention in CONVENTIONS:
        for name in NAMES:
            h = DEFAULTS[convention][name]
            shown = ", ".join(
                f"{LIBRARY_NAMES[convention].get(k, k).split(' ')[0]}={'required' if v is None else f'{v:g}'}"
                for k, v in h.items()
                if k != "initial_accumulator"
            )
            key = (convention, "adam" if name == "adamw" else name)
            rows.append(
                {
                    "library": convention,
                    "optimizer": name,
                    "defaults": shown or "-",
                    "initial accumulator": (
                        f"{h['initial_accumulator']:g}"
                        if "initial_accumulator" in h
                        else ("0" if name in ("adagrad", "rmsprop", "adam", "adamw") else "-")
                    ),
                    "eps": _EPS_PLACEMENT.get(key, "-"),
                    "weight decay": _DECAY[convention] if "weight_decay" in h or name == "adamw" else "-",
                }
            )
    return rows


def conventions_markdown() -> str:
    rows = conventions_table()
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in rows]
    return "\n".join(lines)


# --- displayed rules ---------------------------------------------------------------------------------------


def _state_symbols(name: str, when: str) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"{n}_{{{when}}}", real=True) for n in STATE_NAMES[name])


def rule_equations(name: str, convention: str, *, bias_correction: bool = True) -> list[sp.Eq]:
    """One step as equations: each state_t, then theta_t, in terms of theta_{t-1}, g_t and state_{t-1}."""
    previous = _state_symbols(name, "t-1")
    new_theta, new_state = symbolic_step(name, convention, theta_prev, g, previous, t, bias_correction=bias_correction)
    lines = [sp.Eq(sp.Symbol(f"{n}_t"), e, evaluate=False) for n, e in zip(STATE_NAMES[name], new_state, strict=True)]
    return [*lines, sp.Eq(sp.Symbol(r"\theta_t"), new_theta, evaluate=False)]


def _rules(name: str) -> list[sp.Eq]:
    return [eq for convention in CONVENTIONS for eq in rule_equations(name, convention)]


@derivation
def sgd_rule() -> list[sp.Eq]:
    """SGD in optax, PyTorch, Keras (in that order): theta_t = theta_{t-1} - eta g_t, plus each library's decay."""
    return _rules("sgd")


@derivation
def momentum_rule() -> list[sp.Eq]:
    """Momentum (heavy ball) in optax, PyTorch, Keras: the velocity sums past gradients, undamped by default."""
    return _rules("momentum")


@derivation
def nesterov_rule() -> list[sp.Eq]:
    """Nesterov in optax, PyTorch, Keras: the step is eta (g_t + mu v_t), Bengio et al.'s reformulation."""
    return _rules("nesterov")


@derivation
def adagrad_rule() -> list[sp.Eq]:
    """AdaGrad in optax, PyTorch, Keras: where eps sits and where the accumulator starts differ."""
    return _rules("adagrad")


@derivation
def rmsprop_rule() -> list[sp.Eq]:
    """RMSProp in optax, PyTorch, Keras: eps inside the root (optax, Keras) or outside (PyTorch)."""
    return _rules("rmsprop")


@derivation
def adam_rule() -> list[sp.Eq]:
    """Adam in optax, PyTorch, Keras: both moments bias-corrected; Keras's eps is the paper's eps-hat."""
    return _rules("adam")


@derivation
def adamw_rule() -> list[sp.Eq]:
    """AdamW in optax, PyTorch, Keras: decoupled weight decay, multiplied by the learning rate in all three."""
    return _rules("adamw")


@derivation
def momentum_unrolled() -> sp.Eq:
    """optax momentum unrolled three steps: theta_3 - theta_0 weighs g_1 by 1 + mu + mu^2, g_3 by 1."""
    total = sp.collect(sp.expand((THETA0 - symbolic_trajectory("momentum", "optax", 3)[-1]) / eta), gradient_symbols(3))
    return sp.Eq(sp.Symbol(r"\theta_3 - \theta_0"), -eta * total, evaluate=False)  # a name: optax's step


@bridge.cache
def first_step(name: str, convention: str, bias_correction: bool = True) -> sp.Expr:
    """theta_1 - theta_0 from theta_0 = 0 for a positive first gradient g_t, in lowest terms."""
    positive_g = sp.Symbol("g_t", positive=True)
    theta, _ = symbolic_step(
        name, convention, 0, positive_g, _initial_state(name, convention), 1, bias_correction=bias_correction
    )
    return sp.factor_terms(sp.cancel(theta))


@derivation
def first_steps() -> list[sp.Eq]:
    """The first step of AdaGrad, RMSProp and Adam in optax, PyTorch and Keras (theta_0 = 0, g_1 = g_t > 0):
    its size relative to eta is set by where eps sits and where the accumulator starts."""
    return [
        sp.Eq(
            sp.Symbol(rf"\Delta\theta_1^{{\mathrm{{{name}, {convention}}}}}"),
            first_step(name, convention),
            evaluate=False,
        )
        for name in ("adagrad", "rmsprop", "adam")
        for convention in CONVENTIONS
    ]


MEAN_G = sp.Symbol(r"\mathbb{E}[g]")


@derivation
@bridge.cache
def adam_bias_correction() -> list[sp.Eq]:
    """With stationary gradients (E[g_i] = E[g]), E[m_t] = (1 - beta_1^t) E[g], so E[m_hat_t] = E[g]."""
    j = sp.Symbol("j", integer=True, nonnegative=True)
    # m_t = sum_{i=1}^t (1 - beta_1) beta_1^(t - i) g_i is m_t = beta_1 m_{t-1} + (1 - beta_1) g_t unrolled from
    # m_0 = 0; with j = t - i its mean is (1 - beta_1) E[g] sum_{j=0}^{t-1} beta_1^j (the branch beta_1 != 1).
    geometric = sp.summation(beta1**j, (j, 0, t - 1)).args[-1][0]
    expected_m = sp.factor(sp.cancel((1 - beta1) * MEAN_G * geometric))
    return [
        sp.Eq(sp.Symbol(r"\mathbb{E}[m_t]"), sp.factor(expected_m), evaluate=False),
        sp.Eq(sp.Symbol(r"\mathbb{E}[\hat{m}_t]"), sp.simplify(expected_m / (1 - beta1**t)), evaluate=False),
    ]


@derivation
def adam_first_step_without_correction() -> sp.Eq:
    """Without bias correction Adam's first step is eta (1 - beta_1)/(sqrt(1 - beta_2) + eps/g)."""
    return sp.Eq(
        sp.Symbol(r"\Delta\theta_1^{\mathrm{no\ correction}}"), first_step("adam", "optax", False), evaluate=False
    )


def adaptivity(name: str, convention: str, scales, *, steps: int, seed: int = 0) -> np.ndarray:
    """Per gradient scale sigma: the smallest ratio, over steps and coordinates, of the library-default step
    to the scale-free step of the same rule (eps = 0, initial accumulator 0), for gradients sigma (1 +- 50 %).

    The scale-free rule is homogeneous of degree 0 in g, so its step does not depend on sigma; a ratio near 1
    means the denominator tracks the gradient (an adaptive step), a ratio far below 1 means eps or the
    initial accumulator sets it (a plain step of size lr g / floor)."""
    rng = np.random.default_rng(seed)
    pattern = 1 + 0.5 * rng.uniform(-1, 1, (steps, 4))
    scales = np.asarray(scales, dtype=float)
    grads = jnp.asarray((pattern[:, None, :] * scales[None, :, None]).reshape(steps, -1))
    floor_free = {k: 0.0 for k in ("eps", "initial_accumulator") if k in DEFAULTS[convention][name]}
    lr = 1e-3
    actual = np.diff(np.asarray(trajectory(name, grads, convention=convention, lr=lr)), axis=0)
    ideal = np.diff(np.asarray(trajectory(name, grads, convention=convention, lr=lr, **floor_free)), axis=0)
    return np.min((actual / ideal).reshape(steps, len(scales), 4), axis=(0, 2))


def gd_contraction(rate: sp.Expr = eta, curvature: sp.Expr = lam) -> sp.Expr:
    """The factor by which one GD step multiplies the error along an eigen-direction of curvature lambda."""
    return 1 - rate * curvature


@derivation
def gd_stability_bound() -> list[sp.Eq]:
    """GD on f = L x^2/2 multiplies x by 1 - eta L each step (S000-30, S002-46): it converges iff |1 - eta L| < 1."""
    step = x - eta * sp.diff(L * x**2 / 2, x)
    stable = stable_learning_rates()
    return [
        sp.Eq(sp.Symbol("x_{k+1}"), sp.factor(step), evaluate=False),
        sp.Eq(sp.Symbol(r"\eta_{\mathrm{stable}}"), stable, evaluate=False),
    ]


@bridge.cache
def stable_learning_rates() -> sp.Set:
    """{eta : |1 - eta L| < 1}, the learning rates for which GD converges on a quadratic of curvature L."""
    return sp.solve_univariate_inequality(sp.Abs(gd_contraction(eta, L)) < 1, eta, relational=False)


@derivation
def newton_step_on_a_quadratic() -> sp.Eq:
    """Newton's step x - H^-1 grad f on f = x^T A x / 2 - b^T x lands on A^-1 b, whatever x (S001-24)."""
    a11, a12, a22, b1, b2, x1, x2 = sp.symbols("a_11 a_12 a_22 b_1 b_2 x_1 x_2", real=True)
    A, b, xs = sp.Matrix([[a11, a12], [a12, a22]]), sp.Matrix([b1, b2]), sp.Matrix([x1, x2])
    f = (xs.T * A * xs / 2 - b.T * xs)[0]
    gradient = sp.Matrix([sp.diff(f, v) for v in (x1, x2)])
    newton = (xs - sp.hessian(f, (x1, x2)).inv() * gradient).applyfunc(sp.cancel)
    return sp.Eq(newton, (A.inv() * b).applyfunc(sp.cancel), evaluate=False)


K = sp.Symbol("K", positive=True, integer=True)  # number of GD steps


def unrolled_gd_iterate(steps: sp.Expr = K) -> sp.Expr:
    """theta_K along one eigen-direction (curvature lambda, minimum theta*) after K GD steps from theta_0."""
    theta0, theta_star = sp.symbols("theta_0 theta^*", real=True)
    return theta_star + gd_contraction() ** steps * (theta0 - theta_star)


@derivation
def hypergradient_of_unrolled_gd() -> sp.Eq:
    """d theta_K / d eta along an eigen-direction: the derivative that jax.grad takes through K steps (S004-16)."""
    return sp.Eq(
        sp.Derivative(sp.Symbol(r"\theta_K"), eta), sp.factor(sp.diff(unrolled_gd_iterate(), eta)), evaluate=False
    )


@derivation
def newton_on_a_smooth_convex_function() -> list[sp.Eq]:
    """Newton's step on the convex f = sqrt(1 + x^2) is x - f'/f'' = -x^3: it diverges from any |x_0| > 1,
    while GD with lr 1/max f'' = 1 converges from everywhere."""
    f = sp.sqrt(1 + x**2)
    newton = sp.expand(sp.powsimp(sp.cancel(x - sp.diff(f, x) / sp.diff(f, x, 2))))
    gd = x - sp.diff(f, x)
    return [
        sp.Eq(sp.Symbol("x_{k+1}^{Newton}"), newton, evaluate=False),
        sp.Eq(sp.Symbol("x_{k+1}^{GD}"), gd, evaluate=False),
    ]


@derivation
def newton_on_a_saddle() -> sp.Eq:
    """On f = (x_1^2 - x_2^2)/2 Newton's step from any point lands on the saddle (0, 0): Newton seeks
    stationary points, not minima; GD moves away from the saddle along x_2."""
    x1, x2 = sp.symbols("x_1 x_2", real=True)
    f = (x1**2 - x2**2) / 2
    xs = sp.Matrix([x1, x2])
    step = (xs - sp.hessian(f, (x1, x2)).inv() * sp.Matrix([sp.diff(f, v) for v in (x1, x2)])).applyfunc(sp.cancel)
    return sp.Eq(sp.Symbol("x_{k+1}^{Newton}"), step, evaluate=False)


# --- numerics shared by the claims ----------------------------------------------------------------------


def quadratic(eigenvalues: np.ndarray, seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A = Q diag(eigenvalues) Q^T in a random rotation Q, its minimiser x* and a start x_0."""
    if np.any(np.asarray(eigenvalues) <= 0):
        raise ValueError(f"eigenvalues must be positive, got {list(eigenvalues)}")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))
    return (
        jnp.asarray(q @ np.diag(eigenvalues) @ q.T),
        jnp.asarray(rng.normal(size=len(eigenvalues))),
        jnp.asarray(rng.normal(size=len(eigenvalues))),
    )


def quadratic_loss(a: jax.Array, x_star: jax.Array) -> Callable[[jax.Array], jax.Array]:
    return lambda v: 0.5 * (v - x_star) @ a @ (v - x_star)


@jax.jit
def _gd_steps(a: jax.Array, x_star: jax.Array, x0: jax.Array, lr: jax.Array, tol: jax.Array) -> jax.Array:
    # one compiled loop for every quadratic of a shape: lr, A and x* are traced, not closed over
    optimizer, grad = optax.sgd(lr), jax.grad(lambda v: 0.5 * (v - x_star) @ a @ (v - x_star))
    target = tol * jnp.linalg.norm(x0 - x_star)

    def body(carry):
        k, v, state = carry
        update, state = optimizer.update(grad(v), state)
        return k + 1, optax.apply_updates(v, update), state

    def not_done(carry):
        return (jnp.linalg.norm(carry[1] - x_star) > target) & (carry[0] < 1_000_000)

    return jax.lax.while_loop(not_done, body, (0, x0, optimizer.init(x0)))[0]


def gd_steps_to_tolerance(a: jax.Array, x_star: jax.Array, x0: jax.Array, lr: float, tol: float) -> int:
    """How many steps optax.sgd(lr) takes until |x_k - x*| <= tol |x_0 - x*| (capped at 10^6)."""
    return int(_gd_steps(a, x_star, x0, jnp.asarray(lr), jnp.asarray(tol)))


def predicted_gd_steps(eigenvalues: np.ndarray, coefficients: np.ndarray, lr: float, tol: float) -> int:
    """The smallest k with sqrt(sum_i (c_i r_i^k)^2) <= tol |c|, r_i = 1 - lr lambda_i (the derived contraction)."""
    factor = sp.lambdify([eta, lam], gd_contraction())(lr, np.asarray(eigenvalues))
    target, start = tol * np.linalg.norm(coefficients), 0
    while start < 1_000_000:  # vectorised over blocks of k
        ks = np.arange(start, start + 50_000)[:, None]
        done = np.nonzero(np.linalg.norm(coefficients * factor**ks, axis=1) <= target)[0]
        if done.size:
            return int(ks[done[0], 0])
        start += 50_000
    return 1_000_000


STABILITY_FACTORS = (0.5, 1.0, 1.5, 1.9, 2.1, 2.5)  # learning rates as multiples of 1/L
STABILITY_STEPS = 60


@functools.partial(jax.jit, static_argnums=3)
def _gd_losses(lr: jax.Array, a: jax.Array, x0: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
    optimizer, f = optax.sgd(lr), quadratic_loss(a, jnp.zeros_like(x0))

    def step(carry, _):
        v, state = carry
        update, state = optimizer.update(jax.grad(f)(v), state)
        v = optax.apply_updates(v, update)
        return (v, state), v

    iterates = jnp.concatenate([x0[None], jax.lax.scan(step, (x0, optimizer.init(x0)), None, length=steps)[1]])
    return jax.vmap(f)(iterates), iterates


def gd_losses(lr: float, a: jax.Array, x0: jax.Array, steps: int = STABILITY_STEPS) -> tuple[jax.Array, jax.Array]:
    """Loss x^T A x / 2 and iterates of optax.sgd(lr) from x0, at steps 0 ... steps."""
    return _gd_losses(jnp.asarray(lr), jnp.asarray(a), jnp.asarray(x0), steps)


def stability_table(bound: sp.Expr | None = None) -> dict[str, dict]:
    """GD on a 2-D quadratic with curvatures 1 and L = 10 at each learning rate of STABILITY_FACTORS / L:
    the measured loss ratio, the ratio the contraction predicts, and whether the bound predicts convergence."""
    curvature = 10.0
    stable = stable_learning_rates() if bound is None else sp.Interval.open(0, bound)
    a, x0 = jnp.diag(jnp.asarray([1.0, curvature])), jnp.asarray([1.0, 1.0])
    factor = sp.lambdify([eta, lam], gd_contraction())
    table = {}
    for c in STABILITY_FACTORS:
        lr = c / curvature
        losses, iterates = gd_losses(lr, a, x0)
        ratio = float(losses[-1] / losses[0])
        weights = np.asarray(x0) ** 2 * np.asarray([1.0, curvature])
        predicted = float(weights @ factor(lr, np.asarray([1.0, curvature])) ** (2 * STABILITY_STEPS) / weights.sum())
        stiff = np.asarray(iterates[:, 1])
        table[f"{c:g}/L"] = {
            "loss_ratio": ratio,
            "predicted_ratio": predicted,
            "bound_says_converges": bool(stable.subs(L, curvature).contains(sp.Float(lr))),
            "sign_changes_along_stiff_axis": int(np.sum(np.sign(stiff[1:]) != np.sign(stiff[:-1]))),
        }
    return table


HYPER_STEPS = 30


def regression_problem(seed: int = 3) -> dict[str, jax.Array]:
    """Training and validation sets of a 5-feature linear regression, with a fixed start theta_0."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)
    x_train, x_val = rng.normal(size=(40, 5)) * np.linspace(0.3, 2.0, 5), rng.normal(size=(20, 5))
    return {
        "x_train": jnp.asarray(x_train),
        "y_train": jnp.asarray(x_train @ w + 0.3 * rng.normal(size=40)),
        "x_val": jnp.asarray(x_val),
        "y_val": jnp.asarray(x_val @ w + 0.3 * rng.normal(size=20)),
        "theta0": jnp.zeros(5),
    }


def validation_loss_after_training(lr: jax.Array, data: dict[str, jax.Array], steps: int = HYPER_STEPS) -> jax.Array:
    """Train theta by ``steps`` steps of optax.sgd(lr) on the training MSE/2 and return the validation MSE/2."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    optimizer = optax.sgd(lr)

    def train_loss(theta):
        return 0.5 * jnp.mean((data["x_train"] @ theta - data["y_train"]) ** 2)

    def step(carry, _):
        theta, state = carry
        update, state = optimizer.update(jax.grad(train_loss)(theta), state)
        return (optax.apply_updates(theta, update), state), None

    theta0 = data["theta0"]
    theta = jax.lax.scan(step, (theta0, optimizer.init(theta0)), None, length=steps)[0][0]
    return 0.5 * jnp.mean((data["x_val"] @ theta - data["y_val"]) ** 2)


def hypergradient_closed_form(
    lr: float, data: dict[str, jax.Array], steps: int = HYPER_STEPS, derivative: sp.Expr | None = None
) -> float:
    """d(validation loss)/d lr from the derived d theta_K / d eta, applied along each eigen-direction of the
    training Hessian A = X^T X / n (GD on a quadratic decouples there)."""
    x_train, y_train = np.asarray(data["x_train"]), np.asarray(data["y_train"])
    a = x_train.T @ x_train / len(y_train)
    theta_star = np.linalg.solve(a, x_train.T @ y_train / len(y_train))
    evals, q = np.linalg.eigh(a)
    start = q.T @ (np.asarray(data["theta0"]) - theta_star)
    k, th0, ths = K, *sp.symbols("theta_0 theta^*", real=True)
    theta_k = unrolled_gd_iterate(k)
    d_theta = sp.diff(theta_k, eta) if derivative is None else derivative
    at = dict(zip((eta, lam, k, th0, ths), (lr, evals, steps, start, 0.0), strict=True))
    theta_eig = sp.lambdify(list(at), theta_k)(*at.values())
    d_theta_eig = sp.lambdify(list(at), d_theta)(*at.values())
    theta = theta_star + q @ theta_eig
    residual = np.asarray(data["x_val"]) @ theta - np.asarray(data["y_val"])
    return float((np.asarray(data["x_val"]).T @ residual / len(residual)) @ (q @ d_theta_eig))


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "optimizers"]) or main(["check", "optimizers"]))
