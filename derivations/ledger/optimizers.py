"""The claims of the optimizers chapter: each update rule under optax's, PyTorch's and Keras's documented
conventions (optax against the library itself; PyTorch and Keras, whose libraries are not installed, the
SymPy rule against the numeric trajectory and against closed-form first steps), the adaptive-step claims
over gradient scales 1e-8 ... 1e2 in every convention, Nesterov's look-ahead, Newton beyond quadratics, the
stability bound and the hyper-gradient."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations import bridge
from derivations import optimizers as opt
from derivations.bridge import mark_evaluated, prove_identity, to_jax, value
from derivations.claims import Evidence, claim, compared, core, evidence, premise, proved, scoped
from derivations.compare import compare

CONVENTIONS = list(opt.CONVENTIONS)
RULE_SCOPE = {
    "conventions": CONVENTIONS,
    "gradient_scales": [1e-6, 1e-3, 1.0, 1e3],
    "steps": 24,
    "symbolic_steps": 8,
    "learning_rates": [1e-3, 0.1],
    "momentum": [0.5, 0.9],
    "weight_decay": 0.05,
}


def _gradients(scales, steps: int, seed: int = 0) -> np.ndarray:
    """(steps, 3 * len(scales)) gradients: scale sigma, a fixed random sign per coordinate, +-50 % per step."""
    rng = np.random.default_rng(seed)
    scale = np.repeat(np.asarray(scales, dtype=float), 3) * rng.choice([-1.0, 1.0], 3 * len(scales))
    return scale * (1 + 0.5 * rng.uniform(-1, 1, (steps, scale.size)))


def _configs(name: str, scope) -> list[dict]:
    momenta = scope["momentum"] if name in ("momentum", "nesterov") else [None]
    return [{"lr": lr, **({} if m is None else {"momentum": m})} for lr in scope["learning_rates"] for m in momenta]


def _rule_findings(name: str, scope, rtol: float, **extra_hyper) -> list:
    """optax: trajectory == optax itself; pytorch, keras: trajectory == the SymPy rule (displayed equations)."""
    grads = _gradients(scope["gradient_scales"], scope["steps"])
    rng = np.random.default_rng(1)
    params0 = rng.normal(size=grads.shape[1])
    findings = []
    configs = _configs(name, scope)

    def run_all(fn):
        return np.concatenate([np.asarray(fn(c)) for c in configs])

    against_optax = compare(
        lambda: run_all(lambda c: opt.trajectory(name, grads, convention="optax", params0=params0, **c, **extra_hyper)),
        lambda: run_all(lambda c: opt.optax_trajectory(name, grads, params0=params0, **c, **extra_hyper)),
        [],
        rtol=rtol,
    )
    findings.append(
        compared(
            f"optax convention: trajectory('{name}') equals optax itself at every one of "
            f"{scope['steps']} steps, gradient scales {scope['gradient_scales']}, "
            f"{len(configs)} configurations",
            against_optax,
        )
    )
    short = grads[: scope["symbolic_steps"]]
    for convention in CONVENTIONS:
        # Where the library takes a weight decay, also with a non-zero one (PyTorch couples it into the
        # gradient, Keras and AdamW decouple it): at the default 0 the two placements cannot be told apart.
        # Nor can they for plain SGD, where theta - lr (g + wd theta) = theta - lr wd theta - lr g: only momentum
        # and the adaptive rules, whose state sees the coupled decay, separate them.
        decays = [{}] + (
            [{"weight_decay": scope["weight_decay"]}] if "weight_decay" in opt.DEFAULTS[convention][name] else []
        )

        def run_decays(fn, decays=decays):
            return np.concatenate([np.asarray(fn({**c, **d})) for c in configs for d in decays])

        result = compare(
            lambda convention=convention, run_decays=run_decays: run_decays(
                lambda c: opt.trajectory(name, short, convention=convention, params0=params0, **c, **extra_hyper)
            ),
            lambda convention=convention, run_decays=run_decays: run_decays(
                lambda c: opt.symbolic_iterates(name, short, convention=convention, params0=params0, **c, **extra_hyper)
            ),
            [],
            rtol=rtol,
        )
        findings.append(
            compared(
                f"{convention} convention: trajectory equals the SymPy rule written from the "
                f"documentation, {scope['symbolic_steps']} steps"
                + (f", weight decay 0 and {scope['weight_decay']:g}" if len(decays) > 1 else ""),
                result,
            )
        )
    return findings


SGD_SAYS = (
    "S002-05 names 'basic gradient descent methods: GD, BGD, SGD' (S000-08 and S001-19 only ask which "
    "optimizers are common). Gloss tested: SGD moves the parameters by minus the learning rate times "
    "the gradient."
)


@claim(
    "optimizers/sgd-steps-against-the-gradient",
    sources=["S002-05", "S000-08", "S001-19"],
    says=SGD_SAYS,
    expected="holds",
    scope=RULE_SCOPE,
)
def _sgd(scope, rtol) -> Evidence:
    return evidence("autodiff", *_rule_findings("sgd", scope, rtol))


@claim(
    "optimizers/momentum-accumulates-a-velocity",
    sources=["S002-05"],
    says="S002-05 names Momentum among the 'momentum methods'. Gloss tested: momentum keeps a velocity, a "
    "decaying sum of past gradients, and steps along it.",
    expected="holds",
    scope={**RULE_SCOPE, "dampening": 0.5},
)
def _momentum(scope, rtol) -> Evidence:
    findings = _rule_findings("momentum", scope, rtol)
    unrolled = opt.momentum_unrolled()
    grads = _gradients([1.0], 3)
    f = to_jax(unrolled, [*opt.gradient_symbols(3), opt.eta, opt.mu])  # its rhs is theta_3 - theta_0
    # From theta_0 = 0.3, not 0, so that theta_3 - theta_0 is not theta_3 itself.
    start = opt.trajectory("momentum", grads, convention="optax", lr=0.1, momentum=0.9,
                           params0=np.full(grads.shape[1], 0.3))
    closed = compare(lambda: np.asarray(f(*grads, 0.1, 0.9)), lambda: np.asarray(start[-1] - start[0]), [], rtol=rtol)
    same = compare(
        lambda: np.asarray(opt.trajectory("momentum", _gradients([1.0], 24), convention="keras", lr=0.1, momentum=0.9)),
        lambda: np.asarray(
            opt.trajectory("momentum", _gradients([1.0], 24), convention="pytorch", lr=0.1, momentum=0.9)
        ),
        [],
        rtol=rtol,
    )
    one = opt.symbolic_trajectory("momentum", "optax", 1)[0]
    first = value(one, {opt.THETA0: 0.0, opt.gradient_symbols(1)[0]: float(grads[0, 0]), opt.eta: 0.1, opt.mu: 0.9})
    # PyTorch's documented buffer with dampening tau: b_1 = g_1, b_2 = mu g_1 + (1 - tau) g_2 (hand-unrolled).
    damp, lr, m = scope["dampening"], 0.1, 0.9
    by_hand = np.stack(
        [np.zeros(grads.shape[1]), -lr * grads[0], -lr * grads[0] - lr * (m * grads[0] + (1 - damp) * grads[1])]
    )
    damped = compare(
        lambda: np.asarray(
            opt.trajectory("momentum", grads[:2], convention="pytorch", lr=lr, momentum=m, dampening=damp)
        ),
        lambda: by_hand,
        [],
        rtol=rtol,
    )
    damped_sym = compare(
        lambda: opt.symbolic_iterates(
            "momentum",
            grads[:2],
            convention="pytorch",
            lr=lr,
            momentum=m,
            dampening=damp,
            params0=np.zeros(grads.shape[1]),
        ),
        lambda: by_hand,
        [],
        rtol=rtol,
    )
    return evidence(
        "autodiff",
        *findings,
        core(
            "the one-step unroll is theta_1 = theta_0 - eta g_1",
            abs(first + 0.1 * float(grads[0, 0])) <= rtol * abs(0.1 * float(grads[0, 0])),
        ),
        compared(
            f"PyTorch with dampening {damp:g}: trajectory gives b_1 = g_1 (undamped), then "
            "b_2 = mu g_1 + (1 - dampening) g_2, as its docs write",
            damped,
        ),
        compared("and so does the SymPy rule", damped_sym),
        compared(
            "theta_3 - theta_0 = -eta ((1 + mu + mu^2) g_1 + (1 + mu) g_2 + g_3) (the unrolled "
            "velocity) equals three optax-convention steps",
            closed,
        ),
        compared(
            "at their defaults (dampening 0) and a constant learning rate, PyTorch's and Keras's momentum give "
            "the same iterates (a velocity of undamped gradient sums)",
            same,
            role="scope",
        ),
    )


def _sutskever_lookahead(grad_f, theta0, lr: float, momentum: float, steps: int) -> np.ndarray:
    """Sutskever et al. 2013: v_t = mu v_{t-1} - lr grad f(theta_{t-1} + mu v_{t-1}), theta_t = theta_{t-1} + v_t;
    returns the look-ahead points theta_t + mu v_t, t = 0 ... steps."""
    theta, v, points = np.asarray(theta0, dtype=float), np.zeros_like(theta0, dtype=float), []
    for _ in range(steps + 1):
        points.append(theta + momentum * v)
        v = momentum * v - lr * np.asarray(grad_f(jnp.asarray(theta + momentum * v)))
        theta = theta + v
    return np.stack(points)


@bridge.cache
def _nesterov_on(f, steps: int):
    """optax.sgd(lr, momentum, nesterov=True) on the function f for ``steps`` steps, compiled once (lr and
    momentum traced): the iterates theta_0 ... theta_steps."""
    grad_f = jax.grad(f)

    @jax.jit
    def run(theta0, lr, momentum):
        optimizer = optax.sgd(lr, momentum=momentum, nesterov=True)

        def step(carry, _):
            theta, state = carry
            update, state = optimizer.update(grad_f(theta), state, theta)
            theta = optax.apply_updates(theta, update)
            return (theta, state), theta

        path = jax.lax.scan(step, (theta0, optimizer.init(theta0)), None, length=steps)[1]
        return jnp.concatenate([theta0[None], path])

    return run


def _sum_sqrt(v):
    return jnp.sum(jnp.sqrt(1 + v**2))


def _stiff_quadratic(v):
    return 0.5 * jnp.sum(jnp.linspace(1.0, 10.0, 5) * v**2)


@claim(
    "optimizers/nesterov-adds-the-momentum-look-ahead",
    sources=["S002-05"],
    says="S002-05 names NAG among the 'momentum methods'. Gloss tested: Nesterov accelerated gradient is "
    "momentum with the gradient taken at the look-ahead point theta + mu v.",
    expected="holds",
    scope={
        **RULE_SCOPE,
        "functions": ["sum sqrt(1 + x^2)", "quadratic, curvatures 1 ... 10"],
        "look_ahead_steps": 30,
        "look_ahead_lr": 0.05,
    },
)
def _nesterov(scope, rtol) -> Evidence:
    findings = _rule_findings("nesterov", scope, rtol)
    theta0 = np.linspace(-2.0, 3.0, 5)
    functions = {"sum sqrt(1 + x^2)": _sum_sqrt, "quadratic, curvatures 1 ... 10": _stiff_quadratic}
    lookahead = []
    for f in functions.values():
        grad_f = jax.jit(jax.grad(f))
        run = _nesterov_on(f, scope["look_ahead_steps"])
        for m in scope["momentum"]:
            lookahead.append(
                compare(
                    lambda run=run, m=m: np.asarray(run(jnp.asarray(theta0), scope["look_ahead_lr"], m)),
                    lambda grad_f=grad_f, m=m: _sutskever_lookahead(
                        grad_f, theta0, scope["look_ahead_lr"], m, scope["look_ahead_steps"]
                    ),
                    [],
                    rtol=rtol,
                )
            )
    worst = max(lookahead, key=lambda c: c.max_rel_err)
    grads = _gradients(scope["gradient_scales"], scope["steps"])
    plain = compare(
        lambda: np.asarray(opt.trajectory("momentum", grads, convention="optax", lr=0.1, momentum=0.9)),
        lambda: np.asarray(
            opt.optax_trajectory("nesterov", grads, lr=0.1, params0=np.zeros(grads.shape[1]), momentum=0.9)
        ),
        [],
        rtol=rtol,
    )
    return evidence(
        "autodiff",
        *findings,
        core(
            "optax's Nesterov iterates are Sutskever's look-ahead points theta_t + mu v_t, the gradient taken "
            f"there (Bengio et al. 2013's reformulation), on {len(functions)} functions x momenta "
            f"{scope['momentum']}, {scope['look_ahead_steps']} steps",
            all(c.ok for c in lookahead),
            max_rel_err=worst.max_rel_err,
            samples=sum(c.samples for c in lookahead),
            dtype="float64",
        ),
        core(
            "plain momentum is rejected against optax's Nesterov",
            not plain.ok,
            plain_momentum_rel_err=plain.max_rel_err,
        ),
    )


ADAPTIVE_SCALES = [10.0**k for k in range(-8, 3)]
ADAPTIVE_SCOPE = {
    **RULE_SCOPE,
    "adaptive_gradient_scales": ADAPTIVE_SCALES,
    "adaptive_steps": 24,
    "adaptive_ratio": 0.5,
}


_OPTAX_ARGUMENT = {"initial_accumulator": {"adagrad": "initial_accumulator_value", "rmsprop": "initial_scale"}}


def _optax_defaults(name: str):
    """A premise: the defaults the checks call "optax's" (models.optimizers.DEFAULTS) are the defaults of optax's
    own function (``inspect.signature``), so that the adaptivity findings test optax and not a copy of it."""
    ours = opt.hyperparameters(name, "optax")
    parameters = inspect.signature(getattr(optax, name)).parameters
    theirs = {k: parameters[_OPTAX_ARGUMENT.get(k, {}).get(name, k)].default for k in ours}
    return premise(f"the optax defaults used are optax.{name}'s own (inspect.signature, optax {optax.__version__})",
                   ours == theirs, ours=ours, optax=theirs)  # fmt: skip


# Keras's own published numbers (keras/src/optimizers: the RMSprop docstring's example, adam_test.py's
# test_single_step): a check of the keras convention that does not go through this workbook's reading of the docs.
KERAS_PUBLISHED = {
    "rmsprop": {"source": "the RMSprop docstring's example", "lr": 0.1, "params0": [10.0], "grad": [10.0],
                "after": [9.683772], "atol": 5e-7},  # printed to 7 digits
    "adam": {"source": "adam_test.py, test_single_step", "lr": 0.5, "params0": [1.0, 2.0, 3.0, 4.0],
             "grad": [1.0, 6.0, 7.0, 2.0], "after": [0.5, 1.5, 2.5, 3.5], "atol": 1e-4},  # the test's own tolerance
}


def _keras_published(name: str):
    case = KERAS_PUBLISHED[name]
    got = np.asarray(opt.trajectory(name, np.asarray([case["grad"]]), convention="keras", lr=case["lr"],
                                    params0=np.asarray(case["params0"]))[1])  # fmt: skip
    return core(f"keras convention: one step reproduces Keras's own published result ({case['source']}: "
                f"{case['after']}, to {case['atol']:g})", bool(np.all(np.abs(got - case["after"]) <= case["atol"])),
                got=got.tolist())  # fmt: skip


def _adaptive_findings(name: str, scope) -> tuple[list, dict]:
    """Per convention: is the default step within adaptive_ratio of the scale-free step at every scale?"""
    findings, table = [], {}
    for convention in CONVENTIONS:
        ratios = opt.adaptivity(name, convention, scope["adaptive_gradient_scales"], steps=scope["adaptive_steps"])
        table[convention] = dict(
            zip([f"{s:g}" for s in scope["adaptive_gradient_scales"]], ratios.tolist(), strict=True)
        )
        adaptive = [
            s for s, r in zip(scope["adaptive_gradient_scales"], ratios, strict=True) if r >= scope["adaptive_ratio"]
        ]
        smallest = min(adaptive) if adaptive else None
        findings.append(
            scoped(
                f"{convention} defaults: the step adapts to the gradient's scale (at least {scope['adaptive_ratio']:g} "
                f"of the scale-free step) at every scale {scope['adaptive_gradient_scales'][0]:g} ... "
                f"{scope['adaptive_gradient_scales'][-1]:g}",
                len(adaptive) == len(ratios),
                smallest_adaptive_scale=smallest,
                ratio_at_smallest_scale=float(ratios[0]),
            )
        )
    return findings, table


def _first_step_findings(name: str, rtol: float) -> list:
    """The derived closed-form first step of each convention against its trajectory, at scales 1e-8 ... 1e2."""
    positive_g = sp.Symbol("g_t", positive=True)
    scales = np.asarray(ADAPTIVE_SCALES)
    found = []
    for convention, eq in zip(CONVENTIONS, [e for e in opt.first_steps() if name in str(e.lhs)], strict=True):
        h = opt.hyperparameters(name, convention)
        syms = [positive_g, opt.eta, *(opt.HYPER_SYMBOLS[k] for k in h)]
        f = to_jax(eq, syms)
        result = compare(
            lambda f=f, h=h: np.asarray(f(scales, 1e-3, *h.values())),
            lambda convention=convention: np.asarray(
                opt.trajectory(name, scales[None, :], convention=convention, lr=1e-3)[1]
            ),
            [],
            rtol=rtol,
        )
        found.append(
            compared(
                f"{convention}: the derived first step {sp.sstr(eq.rhs)} equals the trajectory's, |g| = 1e-8 ... 1e2",
                result,
            )
        )
    return found


@claim(
    "optimizers/adagrad-divides-by-the-root-of-summed-squares",
    sources=["S002-05"],
    says="S002-05 classes AdaGrad among the 'adaptive learning-rate methods'. Gloss tested: AdaGrad divides "
    "each parameter's step by the root of the sum of its squared past gradients, so the step adapts to "
    "each parameter's gradient scale.",
    expected="qualified",
    correction="Under PyTorch's defaults (accumulator from 0, eps = 1e-10 outside the root) the step adapts at "
    "every gradient scale 1e-8 ... 1e2. optax and Keras start the accumulator at 0.1 (and put eps = 1e-7 "
    "inside the root): the denominator sqrt(0.1 + sum g^2) stays near sqrt(0.1) until the summed squares "
    "approach 0.1, for about the first 0.1/g^2 steps, and during those steps the step is plain SGD with learning "
    "rate lr/sqrt(0.1), not adaptive. The table gives each scale's smallest ratio over 24 steps (the first "
    "step's): at |g| = 0.1 the phase lasts about 10 steps, at 1e-2 about 1000, below that longer than any run.",
    scope=ADAPTIVE_SCOPE,
)
def _adagrad(scope, rtol) -> Evidence:
    adaptive, table = _adaptive_findings("adagrad", scope)
    return evidence(
        "autodiff",
        _optax_defaults("adagrad"),
        *_rule_findings("adagrad", scope, rtol),
        *_first_step_findings("adagrad", rtol),
        *adaptive,
        details={"step_over_scale_free_step": table},
    )


@claim(
    "optimizers/rmsprop-divides-by-a-moving-rms",
    sources=["S002-05"],
    says="S002-05 classes RMSProp among the 'adaptive learning-rate methods'. Gloss tested: RMSProp divides "
    "the gradient by the root of an exponential moving average of squared gradients, so the step adapts to "
    "each parameter's gradient scale.",
    expected="qualified",
    correction="The moving RMS divides the gradient in all three libraries, but eps sets a floor under the "
    "denominator: optax (eps = 1e-8 inside the root, a floor of 1e-4) adapts only from gradients of about 1e-3 "
    "up, Keras (1e-7 inside) from about 1e-2, PyTorch (1e-8 outside) from about 1e-6; below that the step is "
    "plain SGD with a rescaled learning rate. The first step is lr/sqrt(1 - rho) for |g| well above the floor: "
    "3.16 lr in optax and Keras (rho = 0.9), 10 lr in PyTorch (alpha = 0.99).",
    scope=ADAPTIVE_SCOPE,
)
def _rmsprop(scope, rtol) -> Evidence:
    adaptive, table = _adaptive_findings("rmsprop", scope)
    return evidence(
        "autodiff",
        _optax_defaults("rmsprop"),
        _keras_published("rmsprop"),
        *_rule_findings("rmsprop", scope, rtol),
        *_first_step_findings("rmsprop", rtol),
        *adaptive,
        details={"step_over_scale_free_step": table},
    )


@claim(
    "optimizers/adam-matches-optax-only-with-bias-correction",
    sources=["S002-05"],
    says="S002-05 names Adam among the 'adaptive learning-rate methods'. Gloss tested: Adam combines momentum "
    "(first moment) with RMSProp (second moment), with bias correction.",
    expected="holds",
    scope=RULE_SCOPE,
)
def _adam(scope, rtol) -> Evidence:
    findings = _rule_findings("adam", scope, rtol)
    grads = _gradients(scope["gradient_scales"], scope["steps"])
    uncorrected = compare(
        lambda: opt.symbolic_iterates(
            "adam", grads, convention="optax", lr=0.1, params0=np.zeros(grads.shape[1]), bias_correction=False
        ),
        lambda: np.asarray(opt.optax_trajectory("adam", grads, lr=0.1, params0=np.zeros(grads.shape[1]))),
        [],
        rtol=rtol,
    )
    decoupled = _rule_findings("adamw", scope, rtol)
    return evidence(
        "autodiff",
        *findings,
        core(
            "the same rule without bias correction is rejected by optax",
            not uncorrected.ok,
            uncorrected_rel_err=uncorrected.max_rel_err,
        ),
        *[scoped("AdamW: " + f.proposition, f.held, **f.figures) for f in decoupled],
    )


def _uncorrected_early_steps(scope) -> list:
    """Adam's steps without bias correction for a constant gradient, from the SymPy rule (optax's convention),
    over lr: (1 - beta_1^t)/sqrt(1 - beta_2^t) up to eps (1e-8 against sqrt(v_t) >= 0.03 here, a relative 3e-7,
    hence the rtol of 1e-6 against the closed form)."""
    found, defaults = [], opt.hyperparameters("adam", "optax")
    t = np.arange(1, scope["steps"] + 1)
    grads = np.full((scope["steps"], 1), scope["gradient"])
    for b1, b2 in scope["betas"]:
        iterates = opt.symbolic_iterates("adam", grads, convention="optax", lr=1.0, params0=np.zeros(1),
                                         bias_correction=False, b1=b1, b2=b2)  # fmt: skip
        ratio = np.abs(np.diff(np.asarray(iterates)[:, 0]))
        closed = (1 - b1**t) / np.sqrt(1 - b2**t)
        at = {f"step_over_lr_at_{k}": float(ratio[k - 1]) for k in (1, 2, 5, 10) if k <= scope["steps"]}
        matches = bool(np.allclose(ratio, closed, rtol=1e-6, atol=0))
        found.append(core(f"beta = ({b1:g}, {b2:g}): without correction the step for a constant gradient is "
                          f"(1 - beta_1^t)/sqrt(1 - beta_2^t) lr (the SymPy rule, t = 1 ... {scope['steps']}, "
                          "rtol 1e-6: eps)", matches))  # fmt: skip
        shrunk = bool(np.all(ratio < 1))
        if (b1, b2) == (defaults["b1"], defaults["b2"]):
            found.append(scoped("at the default betas, without correction the early steps would be shrunk towards "
                                "0 (below lr), which the correction undoes", shrunk, **at))  # fmt: skip
        else:
            found.append(core(f"with beta_1 = {b1:g} (1 - beta_1 < sqrt(1 - beta_2)) they are shrunk", shrunk, **at))
    return found


@claim(
    "optimizers/adam-bias-correction-makes-the-first-step-about-lr",
    sources=["S002-05"],
    says="S002-05 names Adam among the adaptive methods. Gloss tested: Adam's bias correction makes m_hat an "
    "unbiased estimate of E[g], so early steps are not shrunk towards 0, and the first step has size about lr "
    "whatever the gradient's scale.",
    expected="qualified",
    correction="m_hat is unbiased for stationary gradients, and the first step is lr g/(|g| + eps) (optax, "
    "PyTorch) or lr g/(|g| + eps/sqrt(1 - beta_2)) (Keras, whose eps is the paper's eps-hat): about lr only "
    "for |g| >> eps. At |g| = eps = 1e-8 it is lr/2 in optax and PyTorch; Keras's effective eps at step 1 is "
    "1e-7/sqrt(0.001), so its first step is within 10 % of lr only from |g| of about 1e-4 and is under 1 % of "
    "lr at 1e-8. Without correction it would be (1 - beta_1)/sqrt(1 - beta_2) = 3.16 lr. The gloss's 'not shrunk "
    "towards 0' has the direction wrong at the default betas: without correction m_t is shrunk by "
    "1 - beta_1^t, but sqrt(v_t) more, by sqrt(1 - beta_2^t), so the early steps would be larger than lr "
    "(3.16, 4.25, 5.80, 6.53 lr at t = 1, 2, 5, 10 for a constant gradient), the 'much larger initial steps' of "
    "Kingma & Ba (section 3); they would be shrunk only where 1 - beta_1 < sqrt(1 - beta_2), e.g. beta_1 = 0.99.",
    scope={
        "conventions": CONVENTIONS,
        "early_steps": {"steps": 10, "betas": [[0.9, 0.999], [0.99, 0.999]], "gradient": 1.0},
        "gradient_scales": ADAPTIVE_SCALES,
        "about_lr": 0.1,
        "monte_carlo": {"runs": 20000, "steps": 10, "gradient": "N(1, 1)", "z_margin": 4.5},
    },
    tolerance="the Monte-Carlo mean of m_hat_t is held to z_margin standard errors of E[g]",
)
def _adam_bias(scope, rtol) -> Evidence:
    expected_m, expected_m_hat = opt.adam_bias_correction()
    unbiased = prove_identity(expected_m_hat.rhs, opt.MEAN_G, [opt.MEAN_G, opt.beta1, opt.t])
    mark_evaluated([expected_m_hat])  # its rhs is the object proved equal to E[g]
    mc = scope["monte_carlo"]
    # NumPy float64 (one seeded draw): eager JAX would compile each of a dozen small reductions separately.
    draws = np.random.default_rng(0).normal(size=(mc["runs"], mc["steps"])) + 1.0
    mean_m = to_jax(expected_m, [opt.MEAN_G, opt.beta1, opt.t])
    m = np.empty((mc["steps"], mc["runs"]))
    running = np.zeros(mc["runs"])
    for step_ in range(mc["steps"]):  # m_t = beta_1 m_{t-1} + (1 - beta_1) g_t, beta_1 = 0.9, from m_0 = 0
        running = 0.9 * running + 0.1 * draws[:, step_]
        m[step_] = running
    steps = np.arange(1, mc["steps"] + 1)
    z_m = np.abs(m.mean(axis=1) - np.asarray(mean_m(1.0, 0.9, steps))) / (m.std(axis=1, ddof=1) / np.sqrt(mc["runs"]))
    m_hat = m / (1 - 0.9**steps)[:, None]
    z = np.abs(m_hat.mean(axis=1) - 1.0) / (m_hat.std(axis=1, ddof=1) / np.sqrt(mc["runs"]))
    no_correction = opt.adam_first_step_without_correction()
    defaults = {
        opt.beta1: 0.9,
        opt.beta2: 0.999,
        opt.eps: 0.0,
        opt.eps_root: 0.0,
        opt.eta: 1.0,
        sp.Symbol("g_t", positive=True): 1.0,
    }
    uncorrected_size = -value(no_correction, defaults)
    # optax's own moments after one step, used without correction: lr m_1/(sqrt(v_1) + eps), eps = 0 here.
    _, state = jax.jit(lambda v: optax.adam(1.0, eps=0.0).update(v, optax.adam(1.0, eps=0.0).init(v)))(jnp.ones(1))
    uncorrected_numeric = float(state[0].mu[0] / np.sqrt(state[0].nu[0]))
    findings = [
        proved("E[m_hat_t] = E[g] for stationary gradients (E[m_t] = (1 - beta_1^t) E[g])", unbiased),
        core(
            f"Monte-Carlo ({mc['runs']} runs, g ~ {mc['gradient']}): the mean of m_t matches (1 - beta_1^t) "
            f"E[g] and that of m_hat_t matches E[g] within {mc['z_margin']} standard errors, t = 1 ... "
            f"{mc['steps']}",
            bool(np.all(z < mc["z_margin"]) and np.all(z_m < mc["z_margin"])),
            max_z=float(max(z.max(), z_m.max())),
            samples=mc["runs"],
        ),
        core(
            "without correction the first step is (1 - beta_1)/sqrt(1 - beta_2) lr (derived, and from "
            "optax's own first moments m_1/sqrt(v_1)), far from lr",
            abs(uncorrected_size - uncorrected_numeric) <= rtol * uncorrected_size and uncorrected_size > 3,
            uncorrected_first_step_over_lr=uncorrected_size,
        ),
        *_first_step_findings("adam", rtol),
        _optax_defaults("adam"),
        _keras_published("adam"),
        *_uncorrected_early_steps(scope["early_steps"]),
    ]
    sizes = {}
    for convention in CONVENTIONS:
        first = (
            -np.asarray(
                opt.trajectory("adam", np.asarray(scope["gradient_scales"])[None, :], convention=convention, lr=1e-3)[1]
            )
            / 1e-3
        )
        sizes[convention] = dict(zip([f"{s:g}" for s in scope["gradient_scales"]], first.tolist(), strict=True))
        near = [s for s, r in zip(scope["gradient_scales"], first, strict=True) if abs(r - 1) <= scope["about_lr"]]
        findings.append(
            scoped(
                f"{convention}: the first step is within {scope['about_lr']:.0%} of lr at every "
                f"|g| = {scope['gradient_scales'][0]:g} ... {scope['gradient_scales'][-1]:g}",
                len(near) == len(first),
                smallest_scale_near_lr=min(near) if near else None,
                first_step_over_lr_at_smallest=float(first[0]),
            )
        )
    return evidence("autodiff", *findings, details={"first_step_over_lr": sizes, "mc_z_scores": z.tolist()})


NEWTON_SCOPE = {
    "quadratic_condition_numbers": [1.0, 10.0, 100.0, 1000.0],
    "dimension": 4,
    "gd_tolerance": 1e-8,
    "smooth_convex": "f = sqrt(1 + x^2)",
    "starts": [0.5, 0.9, 0.99, 1.01, 1.1, 2.0],
    "newton_steps": 6,
    "gd_steps": 200,
    "saddle": "f = (x_1^2 - x_2^2)/2",
}


@claim(
    "optimizers/newton-solves-a-quadratic-in-one-step",
    sources=["S001-24"],
    says="S001-24 asks for 'the differences and connections between gradient descent and Newton's method' "
    "(a heading with no answer). Gloss tested, the textbook answer: gradient descent uses first derivatives "
    "only; Newton's method also uses the second derivative (the Hessian) and converges in far fewer steps.",
    expected="qualified",
    correction="On a quadratic Newton lands on the minimum in one step while GD's step count grows with the "
    "condition number. Beyond quadratics the pure Newton step need not converge at all: on the convex "
    "f = sqrt(1 + x^2) it maps x to -x^3 and diverges from every |x_0| > 1, where GD with lr 1/max f'' "
    "converges; on a saddle it jumps to the stationary point, not away from it. It also needs the Hessian "
    "(d^2 entries) and a d x d solve per step. 'Far fewer steps' holds near a minimum with positive curvature "
    "(quadratic convergence), with a line search or damping elsewhere.",
    scope=NEWTON_SCOPE,
    tolerance="the GD step counts are integers compared exactly; Newton's iterate is compared at rtol 1e-10 "
    "scaled by the quadratic's condition number (the solve's relative error grows with it); the saddle's Newton "
    "step, exactly (0, 0), to atol 1e-15",
)
def _newton(scope, rtol) -> Evidence:
    proof = opt.newton_step_on_a_quadratic()
    lands = [
        prove_identity(u, v, sorted(proof.lhs.free_symbols | proof.rhs.free_symbols, key=str))
        for u, v in zip(proof.lhs, proof.rhs, strict=True)
    ]
    newton_errors, steps = [], {}
    newton_step = jax.jit(
        lambda a, x_star, x0: (
            x0
            - jnp.linalg.solve(
                jax.hessian(opt.quadratic_loss(a, x_star))(x0), jax.grad(opt.quadratic_loss(a, x_star))(x0)
            )
        )
    )
    for kappa in scope["quadratic_condition_numbers"]:
        a, x_star, x0 = opt.quadratic(np.linspace(1.0, kappa, scope["dimension"]))
        x1 = newton_step(a, x_star, x0)
        newton_errors.append(compare(lambda x1=x1: x1, lambda x_star=x_star: x_star, [], rtol=rtol * kappa))
        evals, q = np.linalg.eigh(np.asarray(a))
        coefficients = q.T @ np.asarray(x0 - x_star)
        steps[f"{kappa:g}"] = {
            "gd": opt.gd_steps_to_tolerance(a, x_star, x0, 1.0 / kappa, scope["gd_tolerance"]),
            "predicted": opt.predicted_gd_steps(evals, coefficients, 1.0 / kappa, scope["gd_tolerance"]),
        }
    worst = max(newton_errors, key=lambda c: c.max_rel_err)
    counts = [r["gd"] for r in steps.values()]
    newton_map, gd_map = opt.newton_on_a_smooth_convex_function()
    f_newton = to_jax(newton_map, [opt.x])
    f_gd = to_jax(gd_map, [opt.x])
    starts = jnp.asarray(scope["starts"])
    newton_path, gd_path = [starts], [starts]
    for _ in range(scope["newton_steps"]):
        newton_path.append(f_newton(newton_path[-1]))
    for _ in range(scope["gd_steps"]):
        gd_path.append(f_gd(gd_path[-1]))
    autodiff_newton = jax.jit(
        jax.vmap(
            lambda v: (
                v - jax.grad(lambda u: jnp.sqrt(1 + u**2))(v) / jax.grad(jax.grad(lambda u: jnp.sqrt(1 + u**2)))(v)
            )
        )
    )
    map_check = compare(lambda: f_newton(starts), lambda: autodiff_newton(starts), [], rtol=rtol)
    newton_final, gd_final = np.abs(np.asarray(newton_path[-1])), np.abs(np.asarray(gd_path[-1]))
    x1, x2 = sp.symbols("x_1 x_2", real=True)
    saddle = opt.newton_on_a_saddle()
    start_point = (0.7, -1.3)

    def saddle_f(a, b):  # the saddle's f = (x_1^2 - x_2^2)/2 (scope["saddle"])
        return (a**2 - b**2) / 2

    def autodiff_newton_on_saddle(v):  # x - H^-1 grad f, with jax.hessian and jax.grad of the saddle's f
        f = lambda u: saddle_f(u[0], u[1])  # noqa: E731
        return v - jnp.linalg.solve(jax.hessian(f)(v), jax.grad(f)(v))

    saddle_starts = np.asarray([start_point, (2.0, 0.5), (-3.0, 4.0)])
    derived_saddle_steps = np.asarray([[value(c, {x1: p[0], x2: p[1]}) for c in saddle.rhs] for p in saddle_starts])
    mark_evaluated([saddle])  # its components were evaluated one by one above
    lands_on_saddle = derived_saddle_steps[0].tolist()
    saddle_step = compare(lambda: derived_saddle_steps, lambda: jax.vmap(autodiff_newton_on_saddle)(saddle_starts),
                          [], rtol=rtol, atol=1e-15)  # the exact step is (0, 0): an absolute bound
    return evidence(
        "autodiff",
        core("SymPy: the Newton step on x^T A x/2 - b^T x lands on A^-1 b from any x", all(p.holds for p in lands)),
        compared(
            "one Newton step with jax.hessian hits x* of quadratics with condition numbers "
            f"{scope['quadratic_condition_numbers']}",
            worst,
        ),
        core(
            "GD (lr 1/L) needs many steps, growing with the condition number, exactly as the contraction "
            "1 - lambda/L predicts: " + ", ".join(f"kappa {k}: {v['gd']}" for k, v in steps.items()),
            all(r["gd"] == r["predicted"] for r in steps.values())
            and counts[-1] > 10 * counts[1]
            and all(c > 1 for c in counts[1:]),
        ),
        compared("sqrt(1 + x^2): the derived Newton map -x^3 equals x - f'/f'' from autodiff", map_check),
        scoped(
            f"Newton converges on the smooth convex {scope['smooth_convex']} from every start {scope['starts']}",
            bool(np.all(newton_final < 1e-3)),
            newton_after_steps=float(newton_final.max()),
            gd_after_steps=float(gd_final.max()),
            starts_where_newton_diverges=[s for s, v in zip(scope["starts"], newton_final, strict=True) if v > 1],
        ),
        compared(
            f"SymPy's Newton step on the saddle {scope['saddle']} equals x - H^-1 grad f by jax.hessian from "
            f"{len(saddle_starts)} starts: it lands on the stationary point (0, 0)",
            saddle_step,
            role="premise",
        ),
        scoped(
            f"on the saddle {scope['saddle']} (unbounded below) Newton's step decreases f, as a descent "
            f"method's does, from {start_point}",
            saddle_f(*lands_on_saddle) < saddle_f(*start_point),
            newton_lands_at=str(lands_on_saddle),
            f_before=saddle_f(*start_point),
            f_after=saddle_f(*lands_on_saddle),
        ),
        details={
            "gd_steps_by_condition_number": steps,
            "newton_path_on_sqrt": np.asarray(jnp.stack(newton_path)).tolist(),
            "gd_after_steps_on_sqrt": gd_final.tolist(),
        },
    )


@claim(
    "optimizers/gd-converges-iff-lr-below-two-over-curvature",
    sources=["S000-30", "S001-20", "S004-02"],
    says="S004-02: the training loss/accuracy oscillating without falling is caused by too high a learning "
    "rate; lower it. S000-30 lists 'adjust the learning rate' among the fixes for a model that does not converge.",
    expected="holds",
    scope={"curvatures": [1.0, 10.0], "lr_over_1_over_L": list(opt.STABILITY_FACTORS), "steps": opt.STABILITY_STEPS,
           "non_quadratic": {"loss": "sqrt(1 + x**2) + 3*x/10", "x0": 1.0, "learning_rates": [1.0, 2.0, 2.5, 3.0],
                             "steps": 400, "tail": 40, "above_minimum": 0.01}},
)
def _stability(scope, rtol) -> Evidence:
    table = opt.stability_table()
    bound_eq = opt.gd_stability_bound()
    bound = opt.stable_learning_rates()
    errors = [abs(r["loss_ratio"] - r["predicted_ratio"]) / r["predicted_ratio"] for r in table.values()]
    mark_evaluated([bound_eq[1]])  # compared with the interval below
    lr, curvature = 1.5 / scope["curvatures"][-1], scope["curvatures"][-1]
    one_step = value(bound_eq[0], {opt.x: 1.0, opt.eta: lr, opt.L: curvature})
    optax_step = float(opt.gd_losses(lr, jnp.diag(jnp.asarray([curvature])), jnp.ones(1), 1)[1][1, 0])
    return evidence(
        "measurement",
        core(
            f"SymPy: |1 - eta L| < 1 iff eta in {bound}",
            bound == sp.Interval.open(0, 2 / opt.L) and bound_eq[1].rhs == bound,
        ),
        core(
            "the derived step x_{k+1} = x (1 - eta L) is one optax.sgd step",
            abs(one_step - optax_step) <= rtol * abs(optax_step),
            derived=one_step,
            optax=optax_step,
        ),
        core(
            "optax.sgd converges exactly where the bound says, diverges above 2/L",
            all((r["loss_ratio"] < 1) == r["bound_says_converges"] for r in table.values()),
            **{f"loss_ratio_{k}": r["loss_ratio"] for k, r in table.items()},
        ),
        core(
            "the measured loss ratios equal the derived contraction's",
            max(errors) <= rtol,
            max_rel_err=max(errors),
            samples=len(table),
            dtype="float64",
        ),
        *_oscillation_without_falling(scope["non_quadratic"]),
        details=table,
    )


def _oscillation_without_falling(scope) -> list:
    """The note's symptom itself. On a quadratic a too large lr makes the loss grow at every step (it never
    oscillates); on a loss that flattens away from its minimum GD above 2 / f''(x*) settles into a 2-cycle whose
    loss alternates between two values above the minimum, and below that lr it converges (optax.sgd, float64)."""
    xs = sp.Symbol("x", real=True)
    loss = sp.sympify(scope["loss"], locals={"x": xs})
    (x_star,) = sp.solve(sp.diff(loss, xs), xs)
    bound = float(2 / sp.diff(loss, xs, 2).subs(xs, x_star))
    f, f_star = to_jax(loss, [xs]), float(loss.subs(xs, x_star))

    def losses(lr):
        sgd = optax.sgd(lr)

        def step(carry, _):
            x, state = carry
            update, state = sgd.update(jax.grad(f)(x), state)
            x = optax.apply_updates(x, update)
            return (x, state), f(x)

        x0 = jnp.asarray(scope["x0"])
        return jax.lax.scan(step, (x0, sgd.init(x0)), None, length=scope["steps"])[1]

    rates = np.asarray(scope["learning_rates"])
    runs = np.asarray(jax.jit(jax.vmap(losses))(jnp.asarray(rates)))
    tail = runs[:, -scope["tail"] :]
    turns = np.diff(tail, axis=1)
    alternates = np.all(turns[:, :-1] * turns[:, 1:] < 0, axis=1)
    oscillates = alternates & np.all(tail > f_star + scope["above_minimum"], axis=1)
    converges = np.abs(runs[:, -1] - f_star) <= 1e-9 * f_star
    below, above = rates < bound, rates > bound
    ranges = {f"{r:g}": [float(t.min()), float(t.max())] for r, t in zip(rates[above], tail[above], strict=True)}
    return [
        core(f"on {scope['loss']}, above lr 2/f''(x*) = {bound:.3f} ({rates[above].tolist()}) the loss oscillates "
             f"without falling: over the last {scope['tail']} of {scope['steps']} steps it goes up and down in turn "
             f"and stays above the minimum + {scope['above_minimum']:g}",
             bool(above.any() and np.all(oscillates[above])),
             tail_range=ranges, minimum=f_star),
        core(f"lowered below 2/f''(x*) ({rates[below].tolist()}) it converges to the minimum (to 1e-9)",
             bool(below.any() and np.all(converges[below]) and not np.any(oscillates[below]))),
    ]


@functools.partial(jax.jit, static_argnums=3)
def _momentum_loss_rises(curvatures, lr, beta, steps):
    """Steps at which the loss sum(c x^2)/2 rises under optax.sgd(lr, momentum=beta) from x = 1."""
    tx = optax.sgd(lr, momentum=beta)

    def loss(x):
        return 0.5 * jnp.sum(curvatures * x**2)

    def step(carry, _):
        x, state = carry
        updates, state = tx.update(jax.grad(loss)(x), state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), loss(x)

    x0 = jnp.ones_like(curvatures)
    _, values = jax.lax.scan(step, (x0, tx.init(x0)), None, length=steps)
    return jnp.sum(jnp.diff(jnp.concatenate([loss(x0)[None], values])) > 0)


@claim(
    "optimizers/too-large-a-lr-oscillates-too-small-never-converges",
    sources=["S002-46", "S004-02"],
    says="S002-46: a learning rate set too large easily causes oscillation; one set too small keeps the model "
    "from converging.",
    expected="qualified",
    correction="On a quadratic of largest curvature L: for 1/L < lr < 2/L the iterates oscillate but converge, "
    "and the loss itself does not oscillate: it falls at every step (each coordinate's square shrinks by "
    "(1 - lr lambda)^2); above 2/L the oscillation grows geometrically, so the loss diverges rather than merely "
    "oscillating. Under plain GD a loss that goes up and down needs a loss that is not quadratic "
    "(optimizers/gd-converges-iff-lr-below-two-over-curvature); with momentum a quadratic loss goes up and down "
    "at learning rates far below 2/L, so there the oscillation is not a sign of too large a rate. A small lr "
    "(0 < lr < 1/L) converges monotonically; it is slow (steps grow like 1/(lr * lambda_min)), not non-convergent.",
    scope={
        "optimizer": "plain full-batch GD (optax.sgd, no momentum); the momentum finding: optax.sgd(momentum=0.9)",
        "momentum": {"beta": 0.9, "lr_over_1_over_L": 0.1, "steps": 200},
        "curvatures": [1.0, 10.0],
        "lr_over_1_over_L": list(opt.STABILITY_FACTORS),
        "steps": opt.STABILITY_STEPS,
        "small_lr_over_1_over_L": [0.01, 0.1, 1.0],
        "small_lr_steps": 2000,
    },
)
def _oscillation(scope) -> Evidence:
    table = opt.stability_table()
    n = scope["steps"]
    a, x_star, x0 = opt.quadratic(np.asarray(scope["curvatures"]))
    slow = {
        f"{c:g}/L": opt.gd_steps_to_tolerance(a, x_star, x0, c / scope["curvatures"][-1], 1e-6)
        for c in scope["small_lr_over_1_over_L"]
    }
    losses = np.asarray(
        opt.gd_losses(
            scope["small_lr_over_1_over_L"][0] / scope["curvatures"][-1],
            jnp.diag(jnp.asarray(scope["curvatures"])),
            jnp.ones(2),
            scope["small_lr_steps"],
        )[0]
    )
    over = np.asarray(opt.gd_losses(1.5 / scope["curvatures"][-1], jnp.diag(jnp.asarray(scope["curvatures"])),
                                    jnp.ones(2), n)[0])
    heavy = scope["momentum"]
    rises = _momentum_loss_rises(jnp.asarray(scope["curvatures"]), heavy["lr_over_1_over_L"] / scope["curvatures"][-1],
                                 heavy["beta"], heavy["steps"])  # fmt: skip
    return evidence(
        "measurement",
        scoped(
            f"with momentum {heavy['beta']} the loss on the quadratic falls at every step at "
            f"{heavy['lr_over_1_over_L']}/L too, far below the stability bound ({heavy['steps']} steps)",
            int(rises) == 0,
            steps_where_the_loss_rises=int(rises),
        ),
        scoped(
            f"and the loss oscillates with it: at 1.5/L the loss does not fall at every one of {n} steps",
            not bool(np.all(np.diff(over) < 0)),
            largest_step_change=float(np.max(np.diff(over))),
        ),
        core(
            "too large a learning rate oscillates: at 1.5/L the stiff coordinate changes sign every step",
            table["1.5/L"]["sign_changes_along_stiff_axis"] == n,
            loss_ratio=table["1.5/L"]["loss_ratio"],
        ),
        scoped(
            "the oscillation is the whole story above 1/L (it never diverges)",
            table["2.5/L"]["loss_ratio"] < 1,
            loss_ratio_at_2_5_over_L=table["2.5/L"]["loss_ratio"],
        ),
        scoped(
            "too small a learning rate keeps GD from converging",
            not (slow["0.01/L"] < 1_000_000 and bool(np.all(np.diff(losses) < 0))),
            **{f"steps_to_1e-6_at_{k}": v for k, v in slow.items()},
        ),
        core("at 0.5/L (below 1/L) there is no oscillation", table["0.5/L"]["sign_changes_along_stiff_axis"] == 0),
        details={"stability": table, "steps_to_1e-6": slow},
    )


@claim(
    "optimizers/learning-rate-gradient-through-unrolled-training",
    sources=["S004-16"],
    says="S004-16: gradient-based search computes the gradient with respect to the hyper-parameters and then "
    "optimises them by gradient descent.",
    expected="holds",
    scope={"learning_rates": [0.02, 0.1, 0.3], "steps": opt.HYPER_STEPS, "fd_relative_step": 1e-5, "fd_rtol": 1e-6},
    tolerance="the central finite difference (h = 1e-5 lr) is held to fd_rtol = 1e-6 relative: its truncation "
    "error is O(h^2) and its rounding error O(eps/h); the exact comparison is the derived closed form at 1e-10",
)
def _hypergradient(scope, rtol) -> Evidence:
    data = opt.regression_problem()
    lrs, h = scope["learning_rates"], scope["fd_relative_step"]
    autodiff = jax.jit(jax.grad(opt.validation_loss_after_training), static_argnums=2)
    grads = np.asarray([float(autodiff(jnp.asarray(lr), data, scope["steps"])) for lr in lrs])
    derivative = opt.hypergradient_of_unrolled_gd()
    closed = np.asarray(
        [opt.hypergradient_closed_form(lr, data, scope["steps"], derivative=derivative.rhs) for lr in lrs]
    )
    mark_evaluated([derivative])  # the displayed derivative is the one hypergradient_closed_form evaluated
    loss = jax.jit(opt.validation_loss_after_training, static_argnums=2)
    fd = np.asarray(
        [
            (float(loss(lr * (1 + h), data, scope["steps"])) - float(loss(lr * (1 - h), data, scope["steps"])))
            / (2 * h * lr)
            for lr in lrs
        ]
    )
    lr0 = lrs[0]
    lr1 = lr0 - 0.5 * lr0 * np.sign(grads[0])
    return evidence(
        "autodiff",
        compared(
            f"jax.grad of the validation loss through {scope['steps']} unrolled optax.sgd steps equals the "
            "derived d theta_K/d eta",
            compare(lambda: grads, lambda: closed, [], rtol=rtol),
        ),
        compared("and central finite differences", compare(lambda: grads, lambda: fd, [], rtol=scope["fd_rtol"])),
        core(
            "a step on lr along the hyper-gradient lowers the validation loss",
            float(loss(lr1, data, scope["steps"])) < float(loss(lr0, data, scope["steps"])),
        ),
        details={"autodiff": grads.tolist(), "closed_form": closed.tolist(), "finite_difference": fd.tolist()},
    )
