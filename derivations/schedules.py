"""Learning-rate schedules: linear warm-up then cosine decay, step decay, exponential decay, written as SymPy
closed forms and checked against optax's schedules at every step.

Seeds: S000-09, S001-20, S002-43. The claims are in ``derivations/ledger/schedules.py``; run
``python -m derivations.schedules`` to print the derivations and check the claims. Steps count from 0, as
optax's ``count`` does: the learning rate of the first update is
the schedule at 0.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations import bridge
from derivations.bridge import to_jax
from derivations.claims import derivation

step = sp.Symbol("t", nonnegative=True)  # the update count, 0, 1, 2, ...
init, peak, end = sp.symbols("eta_0 eta_max eta_end", positive=True)
warmup, total, hold = sp.symbols("W T H", positive=True, integer=True)
rate, period = sp.Symbol("gamma", positive=True), sp.Symbol("P", positive=True, integer=True)
ETA = sp.Function("eta")(step)  # the learning rate at step t, as the pages name it

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
@bridge.cache
def warmup_cosine() -> sp.Eq:
    """Linear warm-up from eta_0 to eta_max over W steps, then cosine decay to eta_end at step T (S002-43);
    optax counts the warm-up inside T, so the cosine spans T - W steps."""
    phase = sp.pi * (step - warmup) / (total - warmup)
    return sp.Eq(ETA, sp.Piecewise(
        (init + (peak - init) * step / warmup, step < warmup),
        (end + (peak - end) * (1 + sp.cos(phase)) / 2, step <= total),
        (end, True)), evaluate=False)


@derivation
@bridge.cache
def warmup_plateau_cosine() -> sp.Eq:
    """The note's rise-flat-fall (S002-43): warm up over W steps, hold eta_max for H steps, cosine decay to T."""
    phase = sp.pi * (step - warmup - hold) / (total - warmup - hold)
    return sp.Eq(ETA, sp.Piecewise(
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
@bridge.cache
def step_decay_rule() -> sp.Eq:
    """Step decay (S000-09): the rate is multiplied by a factor at each boundary (0.1 at 300 and 600, 0.5 at 800)."""
    return sp.Eq(ETA, step_decay(STEP_DECAY["boundaries_and_scales"]), evaluate=False)


@derivation
@bridge.cache
def exponential_decay() -> list[sp.Eq]:
    """Exponential decay (S000-09): eta_0 gamma^(t/P), continuous or, with a staircase, gamma^floor(t/P)."""
    return [sp.Eq(ETA, init * rate ** (step / period), evaluate=False),
            sp.Eq(sp.Function("eta_staircase")(step), init * rate ** sp.floor(step / period), evaluate=False)]


@derivation
@bridge.cache
def warmup_cosine_slopes() -> list[sp.Eq]:
    """The slopes at the joins: the warm-up rises at (eta_max - eta_0)/W up to t = W, the cosine leaves the peak
    with slope 0 and arrives at eta_end with slope 0. So the rate is continuous at W but its slope jumps there
    (a kink at the peak); the cosine is smooth at T."""
    warm, decay = (piece[0] for piece in warmup_cosine().rhs.args[:2])
    rise, fall = sp.diff(warm, step), sp.diff(decay, step)
    return [sp.Eq(sp.Symbol("eta'(W^-)"), sp.simplify(rise.subs(step, warmup)), evaluate=False),
            sp.Eq(sp.Symbol("eta'(W^+)"), sp.simplify(fall.subs(step, warmup)), evaluate=False),
            sp.Eq(sp.Symbol("eta'(T^-)"), sp.simplify(fall.subs(step, total)), evaluate=False)]


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


@bridge.cache
def _compiled(expr: sp.Expr, symbols: tuple[sp.Symbol, ...]):
    """The closed form compiled once with its configuration as arguments (not one program per configuration)."""
    return to_jax(expr, list(symbols))


def closed_form_values(expr: sp.Expr, values: dict[sp.Symbol, float], steps: int = STEPS) -> np.ndarray:
    """The closed form at t = 0 ... steps - 1, with the configuration substituted."""
    symbols = tuple(sorted(values, key=str))
    f = _compiled(expr, (step, *symbols))
    t = jnp.arange(steps, dtype=jnp.float64)
    return np.asarray(jnp.broadcast_to(f(t, *[jnp.float64(float(values[v])) for v in symbols]), (steps,)))


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


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "schedules"]) or main(["check", "schedules"]))
