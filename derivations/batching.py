"""Batch size and data parallelism: the gradient of the mean loss is the mean of per-example gradients, a
minibatch gradient is unbiased with variance falling as 1/B, and averaging per-device gradients across 8
XLA devices gives the full-batch gradient.

Seeds: S000-18, S001-34, S001-39, S002-18, S002-30, S002-32. This module is the library (the problem, the
losses, per-example gradients, an independent NumPy backpropagation for the reference gradient, the
minibatch statistics, the multi-device run); the claims are in ``derivations/ledger/batching.py``. Run
``python -m derivations.batching`` to print the derivations and check the claims. The multi-device checks run
``derivations._sharded_gradient`` in a child process (XLA reads ``--xla_force_host_platform_device_count``
only when JAX starts).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations import bridge
from derivations.claims import derivation
from models.mlp import MLP, mlp

N, B = sp.symbols("N B", positive=True, integer=True)
sigma2 = sp.Symbol("sigma^2", positive=True)
DEVICES = 8
ROOT = Path(__file__).resolve().parent.parent


def problem(examples: int, seed: int = 0):
    """Parameters of an MLP(5 -> 16 -> 1) and a regression set of ``examples`` examples, from fixed seeds."""
    if examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples, 5))  # NumPy arrays: no staging program per batch size
    y = np.sin(x.sum(axis=1, keepdims=True)) + 0.1 * rng.normal(size=(examples, 1))
    return initial_params(seed), x, y


@functools.cache  # arrays, no SymPy: the same initialisation for every batch size
def initial_params(seed: int):
    """``MLP((5, 16, 1), rngs=Rngs(params=seed)).params()`` in float64, initialised in one compiled program
    (eager initialisation compiles a program per operation and shape)."""
    return jax.jit(lambda: MLP((5, 16, 1), rngs=nnx.Rngs(params=seed), dtype=jnp.float64).params())()


def example_loss(params, x, y) -> jax.Array:
    """Half the squared error of one example."""
    return 0.5 * jnp.sum((mlp(params, x[None]) - y[None]) ** 2)


def mean_loss(params, x, y) -> jax.Array:
    return 0.5 * jnp.mean(jnp.sum((mlp(params, x) - y) ** 2, axis=-1))


def flat(tree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


@jax.jit
def per_example_gradients(params, x, y) -> jax.Array:
    """Row i is the flattened gradient of example i's loss (``vmap`` of ``grad``)."""
    return jax.vmap(lambda xi, yi: flat(jax.grad(example_loss)(params, xi, yi)))(x, y)


@jax.jit
def gradients(params, x, y) -> tuple[jax.Array, jax.Array]:
    """(per_example_gradients, the flattened jax.grad of mean_loss): both in one compiled program."""
    return per_example_gradients(params, x, y), flat(jax.grad(mean_loss)(params, x, y))


# --- derivations -------------------------------------------------------------------------------------


@derivation
@bridge.cache
def gradient_of_the_mean() -> sp.Eq:
    """The gradient of the batch-mean loss is the mean of the per-example gradients (linearity, S000-18); B = 3."""
    theta = sp.Symbol("theta")
    losses = [sp.Function(f"ell_{i}")(theta) for i in range(1, 4)]
    mean = sum(losses) / 3
    return sp.Eq(sp.Derivative(mean, theta), sp.expand(sp.diff(mean, theta)), evaluate=False)


@derivation
@bridge.cache
def minibatch_gradient_variance() -> sp.Eq:
    """A minibatch of B drawn without replacement from N examples: Var = sigma^2/B (N - B)/(N - 1) (S001-34,
    S002-30); sigma^2 is the per-example gradients' population variance (divided by N, not N - 1)."""
    # Two distinct draws without replacement have covariance -sigma^2/(N - 1) (the N draws sum to a constant).
    covariance = -sigma2 / (N - 1)
    variance = (B * sigma2 + B * (B - 1) * covariance) / B**2
    return sp.Eq(sp.Symbol(r"\mathrm{Var}[\bar g_B]"), sp.factor(variance), evaluate=False)


def minibatch_variance(population_variance: float, examples: int, batch: int) -> float:
    """minibatch_gradient_variance() evaluated (recorded as evaluated: the displayed formula is this one)."""
    if not 1 <= batch <= examples:
        raise ValueError(f"batch must be in [1, {examples}], got {batch}")
    from derivations.bridge import instantiate

    # N and B substituted exactly first: at B = N the factor (N - B) is an exact 0, not a rounded one.
    return float(instantiate(minibatch_gradient_variance(), {N: examples, B: batch}).subs(sigma2, population_variance))


def numpy_gradient(params, x, y, *, reduction: str = "mean") -> np.ndarray:
    """The gradient of 0.5 * mean (or sum) of squared errors of a one-hidden-layer tanh MLP, by hand-written
    backpropagation in NumPy float64: a reference independent of JAX's autodiff and of XLA. Flattened in
    ``flat``'s order (per layer: bias, then kernel)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if len(params) != 2:
        raise ValueError(f"numpy_gradient handles one hidden layer, got {len(params) - 1}")
    (w1, b1), (w2, b2) = ((np.asarray(p["kernel"]), np.asarray(p["bias"])) for p in params)
    x, y = np.asarray(x), np.asarray(y)
    h = np.tanh(x @ w1 + b1)
    d_out = (h @ w2 + b2 - y) / (x.shape[0] if reduction == "mean" else 1)
    d_pre = (d_out @ w2.T) * (1 - h**2)
    return np.concatenate([d_pre.sum(axis=0), (x.T @ d_pre).ravel(), d_out.sum(axis=0), (h.T @ d_out).ravel()])


def numpy_forward(params, x) -> np.ndarray:
    """The MLP's output in NumPy (the reference for the model-parallel forward pass)."""
    (w1, b1), (w2, b2) = ((np.asarray(p["kernel"]), np.asarray(p["bias"])) for p in params)
    return np.tanh(np.asarray(x) @ w1 + b1) @ w2 + b2




ENUMERATED = 12  # every minibatch of a 12-example set is enumerated: the expectations below are exact


@bridge.cache
def enumerated_minibatch_statistics() -> dict:
    """Over all C(12, B) minibatches of each size B: the total variance of the minibatch gradient (trace of
    the covariance, dividing by the number of minibatches) and the mean cosine between a minibatch gradient
    and the full-batch gradient, with the full-batch gradient and the per-example population variance."""
    params, x, y = problem(ENUMERATED)
    per_example, full = (np.asarray(a) for a in gradients(params, x, y))
    population = float(np.mean(np.sum((per_example - per_example.mean(axis=0)) ** 2, axis=1)))
    by_batch = {}
    for batch in range(1, ENUMERATED + 1):
        subsets = np.asarray(list(itertools.combinations(range(ENUMERATED), batch)))
        means = per_example[subsets].mean(axis=1)
        cosines = means @ full / (np.linalg.norm(means, axis=1) * np.linalg.norm(full))
        by_batch[batch] = {"variance": float(np.mean(np.sum((means - means.mean(axis=0)) ** 2, axis=1))),
                           "mean_cosine": float(cosines.mean()), "minibatches": len(subsets)}
    return {"full": full, "population_variance": population, "by_batch": by_batch}


@bridge.cache
def sharded_run() -> dict:
    """Run ``derivations._sharded_gradient`` on 8 forced CPU devices and return its JSON."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"  # the forced devices are host devices; on a GPU machine stay on them
    done = subprocess.run([sys.executable, "-m", "derivations._sharded_gradient"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"derivations._sharded_gradient failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "batching"]) or main(["check", "batching"]))
