"""The claims of the schedules chapter: each closed form against optax at every step, over a grid of
configurations that includes the edges (a one-step warm-up, a zero initial or final rate, boundaries at 1)."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import optax

from derivations.bridge import value
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.schedules import (
    STEPS,
    _substitutions,
    closed_form_values,
    exponential_decay,
    optax_values,
    optax_warmup_plateau_cosine,
    step_decay,
    warmup_cosine,
    warmup_cosine_slopes,
    warmup_plateau_cosine,
)


def _grid(scope: dict) -> list[dict]:
    """Every combination of the scope's lists, as optax keyword arguments."""
    keys = [k for k in scope if isinstance(scope[k], list)]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(scope[k] for k in keys))]


def _against_optax(expr_of, config_of, schedule_of, configs: list[dict], steps: int, rtol: float):
    """The closed form against optax at t = 0 ... steps - 1 for every configuration: one comparison."""
    closed = np.concatenate([closed_form_values(expr_of(c), _substitutions(config_of(c)), steps) for c in configs])
    library = np.concatenate([optax_values(schedule_of(c), steps) for c in configs])
    return compare(lambda: closed, lambda: library, [], rtol=rtol), closed.reshape(len(configs), steps)


ROUNDING = 4 * np.finfo(np.float64).eps  # "never rises" up to a few ulps of the peak (the cosine's rounding)
WARMUP_SCOPE = {"init_value": [0.0, 1e-4], "peak_value": [0.1, 3.0], "warmup_steps": [1, 10, 100],
                "decay_steps": [200, 1000], "end_value": [0.0, 1e-3], "steps": STEPS,
                # A half-step one-sided difference of the cosine is off its slope by ~ eta_max (pi/(T-W))^2 / 8
                # ~ 1.5e-7 here: the slopes at the joins are compared to an absolute 1e-6.
                "slope_difference_atol": 1e-6}


@claim(
    "schedules/warmup-cosine-matches-its-closed-form",
    sources=["S000-09", "S002-43"],
    says="Warm-up trains with a very small learning rate at first, raises it slowly, and later lowers it slowly "
    "(在刚刚开始训练时以很小的学习率进行训练……随着训练的进行学习率慢慢变大……学习率再慢慢变小).",
    expected="holds",
    scope=WARMUP_SCOPE,
)
def _warmup_cosine(scope, rtol) -> Evidence:
    configs = _grid(scope)
    result, curves = _against_optax(lambda c: warmup_cosine().rhs, lambda c: c,
                                    lambda c: optax.warmup_cosine_decay_schedule(**c), configs, scope["steps"], rtol)
    shapes = []
    for config, curve in zip(configs, curves, strict=True):
        w, t = config["warmup_steps"], config["decay_steps"]
        shapes.append(bool(np.all(np.diff(curve[: w + 1]) > 0)
                           and np.all(np.diff(curve[w:]) <= ROUNDING * config["peak_value"])
                           and int(np.argmax(curve)) == w
                           and np.all(np.abs(curve[t:] - config["end_value"]) <= 1e-12 * config["peak_value"])))
    # The slopes at the joins, from the derivation, against one-sided differences of optax's schedule.
    config = {"init_value": 1e-4, "peak_value": 0.1, "warmup_steps": 100, "decay_steps": 1000, "end_value": 1e-3}
    subs = _substitutions(config)
    derived = np.array([value(eq, subs) for eq in warmup_cosine_slopes()])
    fine = np.asarray(optax.warmup_cosine_decay_schedule(**config)(jnp.asarray([99.0, 100.0, 100.5, 999.5, 1000.0])))
    measured = np.array([fine[1] - fine[0], (fine[2] - fine[1]) / 0.5, (fine[4] - fine[3]) / 0.5])
    slopes = compare(lambda: measured, lambda: derived, [], atol=scope["slope_difference_atol"])
    counter = optax.warmup_cosine_decay_schedule(**config)(jnp.arange(3, dtype=jnp.int32))
    return evidence(
        "autodiff",
        compared(f"the closed form equals optax.warmup_cosine_decay_schedule at every step of {len(configs)} "
                 "configurations", result, configurations=len(configs)),
        core("the rate rises strictly up to the peak at t = W, never rises after it and ends at eta_end, in every "
             "configuration",
             all(shapes), configurations=len(configs)),
        compared("the derived slopes at the joins (rise (eta_max - eta_0)/W, then 0 at W+ and at T-) match optax's "
                 "one-sided differences", slopes),
        details={"dtype_with_optax_int32_counter": str(counter.dtype)},
    )


@claim(
    "schedules/warmup-is-rise-flat-fall",
    sources=["S002-43"],
    says="With warm-up the learning rate goes up, stays flat at the set rate, then goes down "
    "(学习率变化：上升——平稳——下降).",
    expected="qualified",
    correction="That is one shape (warm-up, hold, decay), built in optax by joining linear, constant and cosine "
    "schedules. optax.warmup_cosine_decay_schedule, the common form, has no flat part: it starts decaying "
    "the step after the peak.",
    scope={"init_value": [1e-4], "peak_value": [0.1, 3.0], "warmup_steps": [1, 100], "hold_steps": [1, 200],
           "decay_steps": [1000], "end_value": [0.0, 1e-3], "steps": STEPS,
           "compared_with": "optax.join_schedules(linear, constant, cosine); optax.warmup_cosine_decay_schedule"},
)
def _rise_flat_fall(scope, rtol) -> Evidence:
    configs = _grid(scope)
    result, curves = _against_optax(lambda c: warmup_plateau_cosine().rhs, lambda c: c,
                                    lambda c: optax_warmup_plateau_cosine(**c), configs, scope["steps"], rtol)
    flat = [int(np.sum(curve == curve.max())) == c["hold_steps"] + 1 for c, curve in zip(configs, curves, strict=True)]
    plain = [optax_values(optax.warmup_cosine_decay_schedule(
        **{k: v for k, v in c.items() if k != "hold_steps"}), scope["steps"]) for c in configs]
    at_peak = [int(np.sum(p == p.max())) for p in plain]
    return evidence(
        "autodiff",
        compared("the rise-flat-fall closed form equals optax's joined linear, constant and cosine schedules at "
                 f"every step of {len(configs)} configurations", result),
        core("that schedule rises, holds the peak for exactly H steps after reaching it, then falls", all(flat)),
        scoped("optax.warmup_cosine_decay_schedule, the common warm-up, also has a flat part",
               all(n > 1 for n in at_peak), steps_at_peak=max(at_peak)),
    )


@claim(
    "schedules/step-decay-matches-its-closed-form",
    sources=["S000-09", "S001-20"],
    says="Learning-rate schedules (S000-09 and S001-20 are headings only: 常见的学习率控制方法有哪些, 学习率lr的设定). "
    "This claim tests a gloss: step decay multiplies the learning rate by a fixed factor at chosen steps.",
    expected="holds",
    scope={"init_value": [0.1, 2.0], "boundaries_and_scales": [{300: 0.1, 600: 0.1, 800: 0.5}, {1: 0.5},
                                                               {50: 0.0, 60: 3.0}, {100: 2.0, 101: 0.25}],
           "steps": STEPS},
)
def _step_decay(scope, rtol) -> Evidence:
    configs = _grid(scope)
    result, curves = _against_optax(lambda c: step_decay(c["boundaries_and_scales"]), lambda c: c,
                                    lambda c: optax.piecewise_constant_schedule(**c), configs, scope["steps"], rtol)
    jumps = []
    for config, curve in zip(configs, curves, strict=True):
        changes = {int(t) + 1 for t in np.nonzero(np.diff(curve))[0]}
        expected = {b for b, s in config["boundaries_and_scales"].items() if s != 1 and curve[b - 1] != 0}
        jumps.append(changes == expected)
    return evidence(
        "autodiff",
        compared(f"the closed form equals optax.piecewise_constant_schedule at every step of {len(configs)} "
                 "configurations (a boundary at 1, a zero scale, a scale above 1, adjacent boundaries)", result),
        core("the rate changes exactly at the chosen boundaries and is constant between them", all(jumps)),
    )


@claim(
    "schedules/exponential-decay-matches-its-closed-form",
    sources=["S000-09", "S001-20"],
    says="Learning-rate schedules (S000-09 and S001-20 are headings only). This claim tests a gloss: exponential "
    "decay multiplies the learning rate by gamma every P steps, smoothly or in a staircase.",
    expected="holds",
    scope={"init_value": [0.1, 1.0], "transition_steps": [1, 37, 100], "decay_rate": [0.5, 0.96, 1.5],
           "staircase": [False, True], "steps": STEPS},
)
def _exponential(scope, rtol) -> Evidence:
    configs = _grid(scope)
    forms = exponential_decay()
    result, curves = _against_optax(lambda c: forms[1 if c["staircase"] else 0].rhs, lambda c: c,
                                    lambda c: optax.exponential_decay(**c), configs, scope["steps"], rtol)
    ratios = []
    for config, curve in zip(configs, curves, strict=True):
        p, gamma = config["transition_steps"], config["decay_rate"]
        normal = curve[:-p] > 1e-290  # where 0.5^(t/P) has not underflowed
        ratios.append(bool(np.allclose(curve[p:][normal] / curve[:-p][normal], gamma, rtol=1e-12, atol=0)))
    return evidence(
        "autodiff",
        compared(f"the closed forms equal optax.exponential_decay at every step of {len(configs)} configurations, "
                 "smooth and staircase", result),
        core("eta(t + P) / eta(t) = gamma at every step, in every configuration", all(ratios)),
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "schedules"]))
