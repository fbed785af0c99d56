"""Learning-rate schedules: linear warm-up then cosine decay, step decay, exponential decay, written as SymPy
closed forms and checked against optax's schedules at every step.

Seeds: S000-09, S001-20, S002-43. Run ``python -m derivations.schedules`` to print the derivations and
check the claims. Steps count from 0, as optax's ``count`` does: the learning rate of the first update is
the schedule at 0.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations.bridge import to_jax
from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict

step = sp.Symbol("t", nonnegative=True)  # the update count, 0, 1, 2, ...
init, peak, end = sp.symbols("eta_0 eta_max eta_end", positive=True)
warmup, total, hold = sp.symbols("W T H", positive=True, integer=True)
rate, period = sp.Symbol("gamma", positive=True), sp.Symbol("P", positive=True, integer=True)

# The configurations every check and figure uses (optax's argument names).
WARMUP_COSINE = {"init_value": 1e-4, "peak_value": 0.1, "warmup_steps": 100, "decay_steps": 1000,
                 "end_value": 1e-3}
WARMUP_PLATEAU_COSINE = {"init_value": 1e-4, "peak_value": 0.1, "warmup_steps": 100, "hold_steps": 200,
                         "decay_steps": 1000, "end_value": 1e-3}
STEP_DECAY = {"init_value": 0.1, "boundaries_and_scales": {300: 0.1, 600: 0.1, 800: 0.5}}
EXPONENTIAL = {"init_value": 0.1, "transition_steps": 100, "decay_rate": 0.5}
STEPS = 1200  # every schedule is compared at t = 0, 1, ..., STEPS - 1 (past its end, where it must stay flat)


def _positive_int(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --- closed forms ------------------------------------------------------------------------------------


@derivation
def warmup_cosine() -> sp.Eq:
    """Linear warm-up from eta_0 to eta_max over W steps, then cosine decay to eta_end at step T (S002-43);
    optax counts the warm-up inside T, so the cosine spans T - W steps."""
    phase = sp.pi * (step - warmup) / (total - warmup)
    return sp.Eq(sp.Symbol(r"\eta(t)"), sp.Piecewise(
        (init + (peak - init) * step / warmup, step < warmup),
        (end + (peak - end) * (1 + sp.cos(phase)) / 2, step <= total),
        (end, True)), evaluate=False)


@derivation
def warmup_plateau_cosine() -> sp.Eq:
    """The note's rise-flat-fall (S002-43): warm up over W steps, hold eta_max for H steps, cosine decay to T."""
    phase = sp.pi * (step - warmup - hold) / (total - warmup - hold)
    return sp.Eq(sp.Symbol(r"\eta(t)"), sp.Piecewise(
        (init + (peak - init) * step / warmup, step < warmup),
        (peak, step < warmup + hold),
        (end + (peak - end) * (1 + sp.cos(phase)) / 2, step <= total),
        (end, True)), evaluate=False)


def step_decay(boundaries_and_scales: dict[int, float]) -> sp.Expr:
    """eta_0 times the product of the scales whose boundary t has reached (t >= b: the new rate applies at
    step b itself, as in optax)."""
    for boundary, scale in boundaries_and_scales.items():
        _positive_int("boundary", boundary)
        if scale < 0:
            raise ValueError(f"scales must be >= 0, got {scale} at boundary {boundary}")
    factor = sp.Integer(1)
    for boundary, scale in sorted(boundaries_and_scales.items()):
        factor *= sp.Piecewise((sp.Float(scale), step >= boundary), (1, True))
    return init * factor


@derivation
def step_decay_rule() -> sp.Eq:
    """Step decay (S000-09): the rate is multiplied by a factor at each boundary (0.1 at 300 and 600, 0.5 at 800)."""
    return sp.Eq(sp.Symbol(r"\eta(t)"), step_decay(STEP_DECAY["boundaries_and_scales"]), evaluate=False)


@derivation
def exponential_decay() -> list[sp.Eq]:
    """Exponential decay (S000-09): eta_0 gamma^(t/P), continuous or, with a staircase, gamma^floor(t/P)."""
    return [sp.Eq(sp.Symbol(r"\eta(t)"), init * rate ** (step / period), evaluate=False),
            sp.Eq(sp.Symbol(r"\eta_{\mathrm{staircase}}(t)"), init * rate ** sp.floor(step / period), evaluate=False)]


@derivation
def cosine_is_flat_at_both_ends() -> list[sp.Eq]:
    """The cosine part has zero slope where it starts (t = W) and where it ends (t = T): no kink into the decay."""
    decay = warmup_cosine().rhs.args[1][0]
    slope = sp.diff(decay, step)
    return [sp.Eq(sp.Symbol(r"\eta'(W^+)"), sp.simplify(slope.subs(step, warmup)), evaluate=False),
            sp.Eq(sp.Symbol(r"\eta'(T^-)"), sp.simplify(slope.subs(step, total)), evaluate=False)]


# --- the optax schedules and the comparison -----------------------------------------------------------


def optax_warmup_plateau_cosine(init_value, peak_value, warmup_steps, hold_steps, decay_steps, end_value):
    """Rise-flat-fall from optax parts: linear_schedule, constant_schedule, cosine_decay_schedule, joined."""
    for name, value in (("warmup_steps", warmup_steps), ("hold_steps", hold_steps), ("decay_steps", decay_steps)):
        _positive_int(name, value)
    if decay_steps <= warmup_steps + hold_steps:
        raise ValueError(f"decay_steps must exceed warmup_steps + hold_steps, got {decay_steps}")
    return optax.join_schedules(
        [optax.linear_schedule(init_value, peak_value, warmup_steps),
         optax.constant_schedule(peak_value),
         optax.cosine_decay_schedule(peak_value, decay_steps - warmup_steps - hold_steps, end_value / peak_value)],
        [warmup_steps, warmup_steps + hold_steps])


def closed_form_values(expr: sp.Expr, values: dict[sp.Symbol, float], steps: int = STEPS) -> np.ndarray:
    """The closed form at t = 0 ... steps - 1, with the configuration substituted."""
    return np.asarray(jnp.broadcast_to(to_jax(expr.subs(values), [step])(jnp.arange(steps, dtype=jnp.float64)),
                                       (steps,)))


def optax_values(schedule, steps: int = STEPS, count_dtype=jnp.int64) -> np.ndarray:
    """optax's schedule at integer counts 0 ... steps - 1.

    The counts are int64 here on purpose: optax keeps its step counter as int32, and ``int32 / int`` is
    float32 in JAX even with x64 on, so linear and exponential schedules fed that counter are float32."""
    return np.asarray(jnp.asarray(schedule(jnp.arange(steps, dtype=count_dtype)), dtype=jnp.float64))


def _substitutions(config: dict) -> dict[sp.Symbol, float]:
    names = {"init_value": init, "peak_value": peak, "end_value": end, "warmup_steps": warmup,
             "decay_steps": total, "hold_steps": hold, "transition_steps": period, "decay_rate": rate}
    subs = {names[k]: v for k, v in config.items() if k in names}
    if "hold_steps" in config:  # the plateau form counts its decay from W + H; T is still the last step
        subs[total] = config["decay_steps"]
    return subs


def _schedule_evidence(expr: sp.Expr, config: dict, schedule, name: str, extra_ok: bool = True,
                       extra: str = "") -> Evidence:
    closed = closed_form_values(expr, _substitutions(config))
    result = compare(lambda: closed, lambda: optax_values(schedule), [])
    return Evidence(
        verdict=verdict(result.ok and extra_ok, "holds"),
        method="autodiff",
        summary=f"closed form vs {name} at every step t = 0 ... {STEPS - 1}: {result.describe()}{extra}",
        max_abs_err=result.max_abs_err,
        max_rel_err=result.max_rel_err,
        samples=STEPS,
        dtype=result.dtype,
        details={"config": {k: str(v) for k, v in config.items()}, "worst": result.worst},
    )


@claim(
    "schedules/warmup-cosine-matches-its-closed-form",
    sources=["S000-09", "S002-43"],
    says="Warm-up trains with a small learning rate at first and raises it, then the rate slowly decreases.",
    expected="holds",
)
def _warmup_cosine() -> Evidence:
    expr = warmup_cosine().rhs
    values = closed_form_values(expr, _substitutions(WARMUP_COSINE))
    w = WARMUP_COSINE["warmup_steps"]
    shape_ok = bool(np.all(np.diff(values[: w + 1]) > 0) and np.all(np.diff(values[w:]) <= 0)
                    and int(np.argmax(values)) == w)
    slopes = [v.rhs for v in cosine_is_flat_at_both_ends()]
    schedule = optax.warmup_cosine_decay_schedule(**WARMUP_COSINE)
    int32 = compare(lambda: optax_values(schedule, count_dtype=jnp.int32), lambda: values, [])
    return _schedule_evidence(expr, WARMUP_COSINE, schedule,
                              "optax.warmup_cosine_decay_schedule (int64 counts)", shape_ok and slopes == [0, 0],
                              f"; rises strictly for t <= {w}, peaks at t = {w}, never rises after; the cosine's "
                              f"slope at its two ends is {slopes[0]} and {slopes[1]} (SymPy); with optax's own int32 "
                              f"step counter the schedule comes out in float32 (max rel err {int32.max_rel_err:.1e})")


@claim(
    "schedules/warmup-is-rise-flat-fall",
    sources=["S002-43"],
    says="With warm-up the learning rate goes up, stays flat at the set rate, then goes down (rise, flat, fall).",
    expected="qualified",
    correction="That is one shape (warm-up, hold, decay), built in optax by joining linear, constant and cosine "
    "schedules. optax.warmup_cosine_decay_schedule, the common form, has no flat part: it starts decaying "
    "the step after the peak.",
)
def _rise_flat_fall() -> Evidence:
    config = dict(WARMUP_PLATEAU_COSINE)
    evidence = _schedule_evidence(warmup_plateau_cosine().rhs, config, optax_warmup_plateau_cosine(**config),
                                  "optax.join_schedules(linear, constant, cosine)")
    plain = optax_values(optax.warmup_cosine_decay_schedule(**WARMUP_COSINE))
    w = WARMUP_COSINE["warmup_steps"]
    flat_steps = int(np.sum(plain == plain.max()))
    ok = evidence.verdict == "holds" and flat_steps == 1 and plain[w + 1] < plain[w]
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method=evidence.method,
        summary=evidence.summary + f"; optax.warmup_cosine_decay_schedule holds its peak for {flat_steps} step and "
        f"is already {plain[w] - plain[w + 1]:.2e} below it one step later",
        max_abs_err=evidence.max_abs_err,
        max_rel_err=evidence.max_rel_err,
        samples=evidence.samples,
        dtype=evidence.dtype,
        details={**evidence.details, "warmup_cosine_steps_at_peak": flat_steps},
    )


@claim(
    "schedules/step-decay-matches-its-closed-form",
    sources=["S000-09", "S001-20"],
    says="Step decay multiplies the learning rate by a fixed factor at chosen steps.",
    expected="holds",
)
def _step_decay() -> Evidence:
    return _schedule_evidence(step_decay(STEP_DECAY["boundaries_and_scales"]), STEP_DECAY,
                              optax.piecewise_constant_schedule(**STEP_DECAY), "optax.piecewise_constant_schedule")


@claim(
    "schedules/exponential-decay-matches-its-closed-form",
    sources=["S000-09", "S001-20"],
    says="Exponential decay multiplies the learning rate by gamma every P steps, smoothly or in a staircase.",
    expected="holds",
)
def _exponential() -> Evidence:
    smooth, stairs = (eq.rhs for eq in exponential_decay())
    continuous = _schedule_evidence(smooth, EXPONENTIAL, optax.exponential_decay(**EXPONENTIAL),
                                    "optax.exponential_decay")
    staircase = _schedule_evidence(stairs, EXPONENTIAL, optax.exponential_decay(**EXPONENTIAL, staircase=True),
                                   "optax.exponential_decay(staircase=True)")
    ok = continuous.verdict == staircase.verdict == "holds"
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"{continuous.summary}; {staircase.summary}",
        max_abs_err=max(continuous.max_abs_err, staircase.max_abs_err),
        max_rel_err=max(continuous.max_rel_err, staircase.max_rel_err),
        samples=2 * STEPS,
        dtype=continuous.dtype,
        details={"continuous": dict(continuous.details), "staircase": dict(staircase.details)},
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "schedules"]) or main(["check", "schedules"]))
