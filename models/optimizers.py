"""Optimizer trajectories under three libraries' documented conventions (optax, PyTorch, Keras).

``trajectory(name, grads, convention=..., lr=..., params0=...)`` feeds the gradients ``grads[0], grads[1],
...`` to one optimizer and returns the parameters after every step. Every rule is elementwise, so each
coordinate is an independent run: a grid of configurations can be laid out along the coordinate axis.

The rules are written from each library's documented update rule (optax ``alias.py`` docstrings and source,
``torch.optim`` algorithm boxes, Keras 3 ``update_step``); the choices where they differ are stated at the
line that makes them. Hyper-parameters use one vocabulary across libraries (``DEFAULTS`` names, per
convention and optimizer, the ones that apply and the library's default for each; ``LIBRARY_NAMES`` maps
them to each library's own argument names).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

# The arithmetic runs in NumPy float64 (elementwise, a handful of coordinates, no autodiff needed): eager
# JAX would dispatch a dozen tiny kernels per step; the result is returned as a jax.Array.

NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
CONVENTIONS = ("optax", "pytorch", "keras")
REQUIRED = None  # a hyper-parameter with no library default that makes the method what its name says

_ADAM = {"b1": 0.9, "b2": 0.999}
DEFAULTS: dict[str, dict[str, dict[str, float | None]]] = {
    "optax": {
        "sgd": {},
        "momentum": {"momentum": REQUIRED},
        "nesterov": {"momentum": REQUIRED},
        "adagrad": {"initial_accumulator": 0.1, "eps": 1e-7},
        "rmsprop": {"decay": 0.9, "eps": 1e-8, "initial_accumulator": 0.0},
        "adam": {**_ADAM, "eps": 1e-8, "eps_root": 0.0},
        "adamw": {**_ADAM, "eps": 1e-8, "eps_root": 0.0, "weight_decay": 1e-4},
    },
    "pytorch": {
        "sgd": {"weight_decay": 0.0},
        "momentum": {"momentum": REQUIRED, "dampening": 0.0, "weight_decay": 0.0},
        "nesterov": {"momentum": REQUIRED, "weight_decay": 0.0},
        "adagrad": {"lr_decay": 0.0, "initial_accumulator": 0.0, "eps": 1e-10, "weight_decay": 0.0},
        "rmsprop": {"decay": 0.99, "eps": 1e-8, "weight_decay": 0.0},
        "adam": {**_ADAM, "eps": 1e-8, "weight_decay": 0.0},
        "adamw": {**_ADAM, "eps": 1e-8, "weight_decay": 1e-2},
    },
    "keras": {
        "sgd": {"weight_decay": 0.0},
        "momentum": {"momentum": REQUIRED, "weight_decay": 0.0},
        "nesterov": {"momentum": REQUIRED, "weight_decay": 0.0},
        "adagrad": {"initial_accumulator": 0.1, "eps": 1e-7, "weight_decay": 0.0},
        "rmsprop": {"decay": 0.9, "eps": 1e-7, "weight_decay": 0.0},
        "adam": {**_ADAM, "eps": 1e-7, "weight_decay": 0.0},
        "adamw": {**_ADAM, "eps": 1e-7, "weight_decay": 4e-3},
    },
}
LIBRARY_NAMES = {
    "optax": {
        "initial_accumulator": "initial_accumulator_value (adagrad) / initial_scale (rmsprop)",
        "decay": "decay",
        "b1": "b1",
        "b2": "b2",
        "eps": "eps",
        "eps_root": "eps_root",
        "weight_decay": "weight_decay",
        "momentum": "momentum",
    },
    "pytorch": {
        "initial_accumulator": "initial_accumulator_value",
        "decay": "alpha",
        "b1": "betas[0]",
        "b2": "betas[1]",
        "eps": "eps",
        "weight_decay": "weight_decay",
        "momentum": "momentum",
        "dampening": "dampening",
        "lr_decay": "lr_decay",
    },
    "keras": {
        "initial_accumulator": "initial_accumulator_value",
        "decay": "rho",
        "b1": "beta_1",
        "b2": "beta_2",
        "eps": "epsilon",
        "weight_decay": "weight_decay",
        "momentum": "momentum",
    },
}


def hyperparameters(name: str, convention: str, given: dict[str, float] | None = None) -> dict[str, float]:
    """The library's defaults for ``name`` under ``convention``, overridden by ``given``; ValueError on an
    unknown name, convention or hyper-parameter, or a required one left out."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; valid conventions: {', '.join(CONVENTIONS)}")
    if name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(NAMES)}")
    defaults, given = DEFAULTS[convention][name], dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"{convention} {name} takes no hyper-parameter {', '.join(unknown)}; valid: {', '.join(defaults) or 'none'}"
        )
    values = {**defaults, **given}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ValueError(
            f"{convention} {name} needs {', '.join(missing)}: the library's default (0 or None) would make it plain SGD"
        )
    bad = [k for k, v in values.items() if not (math.isfinite(float(v)) and float(v) >= 0)]
    if bad:
        raise ValueError(f"hyper-parameters must be finite and >= 0, got {', '.join(f'{k}={values[k]}' for k in bad)}")
    return {k: float(v) for k, v in values.items()}


def _step(name: str, convention: str, h: dict[str, float], lr: float, theta, grad, state: dict, t: int):
    """One step: (theta_{t-1}, g_t, state_{t-1}, t = 1, 2, ...) -> (theta_t, state_t)."""
    wd = h.get("weight_decay", 0.0)
    if convention == "pytorch" and name != "adamw":
        grad = grad + wd * theta  # torch.optim: weight_decay is an L2 term added to the gradient (coupled)
    # Keras (every optimizer) and AdamW (all three): decoupled decay, multiplied by the learning rate.
    decay = lr * wd * theta if convention == "keras" or name == "adamw" else 0.0
    if name == "sgd":
        return theta - decay - lr * grad, state
    if name in ("momentum", "nesterov"):
        mu, v = h["momentum"], state.get("v")
        if convention == "pytorch":
            # torch: b_1 = g_1 (no dampening on the first step), then b_t = mu b_{t-1} + (1 - dampening) g_t.
            v = grad if v is None else mu * v + (1 - h.get("dampening", 0.0)) * grad
        else:
            # optax.trace and Keras: v_t = mu v_{t-1} + g_t from v_0 = 0 (Keras stores -lr v_t: the same
            # iterate for a constant learning rate).
            v = grad if v is None else mu * v + grad
        step = grad + mu * v if name == "nesterov" else v
        return theta - decay - lr * step, {"v": v}
    if name == "adagrad":
        s = state.get("s", h["initial_accumulator"]) + grad**2
        if convention == "pytorch":
            rate = lr / (1 + (t - 1) * h["lr_decay"])
            return theta - decay - rate * grad / (np.sqrt(s) + h["eps"]), {"s": s}  # eps outside the root
        # optax.scale_by_rss and Keras: eps inside the root; optax returns 0 where the accumulator is 0.
        denominator = np.sqrt(s + h["eps"])
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only where optax returns 0 anyway
            scaled = np.where(s > 0, grad / denominator, 0.0) if convention == "optax" else grad / denominator
        return theta - decay - lr * scaled, {"s": s}
    if name == "rmsprop":
        nu = h["decay"] * state.get("nu", h.get("initial_accumulator", 0.0)) + (1 - h["decay"]) * grad**2
        if convention == "pytorch":
            return theta - decay - lr * grad / (np.sqrt(nu) + h["eps"]), {"nu": nu}  # eps outside the root
        return theta - decay - lr * grad / np.sqrt(nu + h["eps"]), {"nu": nu}  # optax, Keras: inside
    if name in ("adam", "adamw"):
        b1, b2 = h["b1"], h["b2"]
        m = b1 * state.get("m", 0.0) + (1 - b1) * grad
        v = b2 * state.get("v", 0.0) + (1 - b2) * grad**2
        if convention == "keras":
            # Keras: alpha_t = lr sqrt(1 - b2^t)/(1 - b1^t) times m_t/(sqrt(v_t) + eps): eps is the paper's
            # "epsilon hat", i.e. eps/sqrt(1 - b2^t) in the m_hat/(sqrt(v_hat) + eps) form.
            step = math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + h["eps"])
        else:
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            step = m_hat / (np.sqrt(v_hat + h.get("eps_root", 0.0)) + h["eps"])
        return theta - decay - lr * step, {"m": m, "v": v}
    raise AssertionError(name)


def trajectory(name: str, grads, *, convention: str, lr: float, params0=None, **hyperparameters_given):
    """Parameters theta_0 ... theta_T (shape ``(T + 1, d)``) after feeding ``grads`` (shape ``(T, d)``).

    ``params0`` defaults to zeros; hyper-parameters not given take ``convention``'s library defaults
    (``DEFAULTS``). Raises ValueError naming the valid values for a bad name, convention, shape or value.
    """
    h = hyperparameters(name, convention, hyperparameters_given)
    grads = np.asarray(grads, dtype=np.float64)
    if grads.ndim != 2 or grads.shape[0] < 1 or grads.shape[1] < 1:
        raise ValueError(f"grads must have shape (T, d) with T, d >= 1, got {tuple(grads.shape)}")
    theta = np.zeros(grads.shape[1]) if params0 is None else np.asarray(params0, dtype=np.float64)
    if theta.shape != (grads.shape[1],):
        raise ValueError(f"params0 must have shape ({grads.shape[1]},) to match grads, got {tuple(theta.shape)}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    iterates, state = [theta], {}
    for t in range(1, grads.shape[0] + 1):
        theta, state = _step(name, convention, h, float(lr), theta, grads[t - 1], state, t)
        iterates.append(theta)
    return jnp.asarray(np.stack(iterates))
