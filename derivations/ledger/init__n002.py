"""Claims found while annotating note 002 (init chapter): what vanishing or exploding activations do to
training, measured on a deep narrow network trained by gradient descent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from derivations import bridge
from derivations.claims import Evidence, claim, core, evidence, premise

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


@bridge.cache
def _step(activation: str):
    """One compiled full-batch gradient-descent step on the mean squared error of a plain deep network (no
    biases, linear output layer), returning the new weights and the loss before the step."""
    act = ACTIVATIONS[activation]

    def loss(params, x, y):
        h = x
        for w in params[:-1]:
            h = act(h @ w)
        return jnp.mean((h @ params[-1] - y) ** 2)

    @jax.jit
    def step(params, x, y, lr):
        value, grad = jax.value_and_grad(loss)(params, x, y)
        return [p - lr * g for p, g in zip(params, grad, strict=True)], value

    return step


def train_losses(ws: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float, *, activation: str,
                 steps: int) -> tuple[np.ndarray, float]:
    """The loss at every step of ``steps`` of gradient descent from ``ws``, and the last hidden layer's
    activation std at the start."""
    h = np.asarray(_last_hidden(activation)(ws[:-1], x))
    step, params, losses = _step(activation), list(ws), []
    for _ in range(steps):
        params, value = step(params, x, y, lr)
        losses.append(value)
    return np.asarray([np.asarray(v) for v in losses]), float(np.std(h))


@bridge.cache
def _last_hidden(activation: str):
    """The last hidden layer's activations at the start, one compiled program per activation."""
    act = ACTIVATIONS[activation]

    def hidden(ws, x):
        h = x
        for w in ws:
            h = act(h @ w)
        return h

    return jax.jit(hidden)


def _weights(rng, width: int, depth: int, scale: float) -> list[np.ndarray]:
    """depth - 1 hidden layers of N(0, scale^2 / width) weights and a standard output layer."""
    return [rng.normal(size=(width, width)) * scale / np.sqrt(width) for _ in range(depth - 1)] + [
        rng.normal(size=(width, 1)) / np.sqrt(width)]


@claim(
    "init/vanishing-or-exploding-activations-stop-training",
    sources=["S002-20"],
    says="If the layers' outputs explode or vanish, the gradient of the loss also becomes very large or very small "
    "and cannot be propagated back effectively, so the network needs longer to converge or does not converge at all "
    "(使得神经网络需要更长的时间才能收敛甚至无法收敛).",
    expected="holds",
    scope={"depth": 6, "width": 16, "samples": 64, "steps": 150, "lr": 0.05, "fit": 0.25,
           "scales": {"relu": {"vanishing": 0.5, "matched": 1.4142135623730951, "exploding": 3.0},
                      "tanh": {"vanishing": 0.3, "matched": 1.0}},
           "target": "y = sin(x . v / sqrt(n)), a smooth teacher"},
)
def _init_training(scope) -> Evidence:
    rng = np.random.default_rng(0)
    n = scope["width"]
    x = rng.normal(size=(scope["samples"], n))
    y = np.sin(x @ rng.normal(size=(n, 1)) / np.sqrt(n))
    baseline = float(np.var(y))  # the loss of the best constant prediction
    fit, spread = {}, {}
    for act, scales in scope["scales"].items():
        for name, g in scales.items():
            losses, std = train_losses(_weights(rng, n, scope["depth"], g), x, y, scope["lr"], activation=act,
                                       steps=scope["steps"])
            final = float(losses[-1])
            fit[f"{act} {name}"] = final / baseline if np.isfinite(final) else float("inf")  # diverged: no fit
            spread[f"{act} {name}"] = float(std)
    limit = scope["fit"]
    return evidence(
        "autodiff",
        premise("the task is learnable in the budget: from the matched scale (He for ReLU, Xavier for tanh) the loss "
                f"falls below {limit:.0%} of the constant predictor's",
                fit["relu matched"] < limit and fit["tanh matched"] < limit),
        core("at the small scales the activations vanish (the last hidden layer's spread is under a tenth of the "
             "matched one) and at the large ReLU scale they explode (over ten times)",
             all(spread[f"{a} vanishing"] < spread[f"{a} matched"] / 10 for a in scope["scales"])
             and spread["relu exploding"] > 10 * spread["relu matched"],
             **{f"spread {k}": round(v, 6) for k, v in spread.items()}),
        core("with vanishing activations training does not converge in the budget (the loss stays near the "
             "constant predictor's), for ReLU and tanh",
             all(fit[f"{a} vanishing"] > limit for a in scope["scales"])),
        core("with exploding ReLU activations it does not converge either",
             fit["relu exploding"] > limit, **{f"final/constant {k}": round(v, 4) if np.isfinite(v) else "diverged"
                                               for k, v in fit.items()}),
    )
