"""Batch size and data parallelism: the gradient of the mean loss is the mean of per-example gradients, a
minibatch gradient is unbiased with variance falling as 1/B, and averaging per-device gradients across 8
XLA devices gives the full-batch gradient.

Seeds: S000-18, S001-34, S001-39, S002-18, S002-30, S002-32. Run ``python -m derivations.batching`` to
print the derivations and check the claims. The multi-device checks run ``derivations._sharded_gradient``
in a child process (XLA reads ``--xla_force_host_platform_device_count`` only when JAX starts).
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

from derivations.claims import Evidence, claim, derivation
from derivations.compare import compare
from derivations.harness import verdict
from models.mlp import MLP, mlp

N, B = sp.symbols("N B", positive=True, integer=True)
sigma2 = sp.Symbol("sigma^2", positive=True)
DEVICES = 8
ROOT = Path(__file__).resolve().parent.parent


def problem(examples: int, seed: int = 0):
    """Parameters of an MLP(5 -> 16 -> 1) and a regression set of ``examples`` examples, from fixed seeds."""
    if examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    model = MLP((5, 16, 1), rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(examples, 5)))
    y = jnp.asarray(np.sin(np.asarray(x).sum(axis=1, keepdims=True)) + 0.1 * rng.normal(size=(examples, 1)))
    return model.params(), x, y


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


# --- derivations -------------------------------------------------------------------------------------


@derivation
def gradient_of_the_mean() -> sp.Eq:
    """The gradient of the batch-mean loss is the mean of the per-example gradients (linearity, S000-18); B = 3."""
    theta = sp.Symbol("theta")
    losses = [sp.Function(f"ell_{i}")(theta) for i in range(1, 4)]
    mean = sum(losses) / 3
    return sp.Eq(sp.Derivative(mean, theta), sp.expand(sp.diff(mean, theta)), evaluate=False)


@derivation
def minibatch_gradient_variance() -> sp.Eq:
    """A minibatch of B drawn without replacement from N examples: Var = sigma^2/B (N - B)/(N - 1) (S001-34,
    S002-30); sigma^2 is the per-example gradients' population variance (divided by N, not N - 1)."""
    # Two distinct draws without replacement have covariance -sigma^2/(N - 1) (the N draws sum to a constant).
    covariance = -sigma2 / (N - 1)
    variance = (B * sigma2 + B * (B - 1) * covariance) / B**2
    return sp.Eq(sp.Symbol(r"\mathrm{Var}[\bar g_B]"), sp.factor(variance), evaluate=False)


def minibatch_variance(population_variance: float, examples: int, batch: int) -> float:
    """minibatch_gradient_variance() evaluated."""
    expr = minibatch_gradient_variance().rhs
    return float(expr.subs({sigma2: population_variance, N: examples, B: batch}))


# --- claims ------------------------------------------------------------------------------------------


@claim(
    "batching/mean-loss-gradient-is-mean-of-per-example-gradients",
    sources=["S000-18"],
    says="With a batch, each example's loss is computed, the losses are summed and divided by the batch size, "
    "and that mean is backpropagated.",
    expected="holds",
)
def _mean_of_gradients() -> Evidence:
    params, x, y = problem(32)
    per_example = per_example_gradients(params, x, y)
    result = compare(lambda: jnp.mean(per_example, axis=0), lambda: flat(jax.grad(mean_loss)(params, x, y)), [])
    return Evidence(
        verdict=verdict(result.ok, "holds"),
        method="autodiff",
        summary=f"MLP(5-16-1), batch of 32: mean of jax.vmap(jax.grad(per-example loss)) vs jax.grad(mean loss) "
        f"over {per_example.shape[1]} parameters: {result.describe()}",
        max_abs_err=result.max_abs_err,
        max_rel_err=result.max_rel_err,
        samples=int(per_example.shape[1]),
        dtype=result.dtype,
        details={"worst": result.worst},
    )


ENUMERATED = 12  # every minibatch of a 12-example set is enumerated: the expectations below are exact


@functools.cache
def enumerated_minibatch_statistics() -> dict:
    """Over all C(12, B) minibatches of each size B: the mean minibatch gradient and the total variance
    (trace of the covariance, dividing by the number of minibatches), with the full-batch gradient and
    the per-example population variance."""
    params, x, y = problem(ENUMERATED)
    per_example = np.asarray(per_example_gradients(params, x, y))
    full = np.asarray(flat(jax.grad(mean_loss)(params, x, y)))
    population = float(np.mean(np.sum((per_example - per_example.mean(axis=0)) ** 2, axis=1)))
    by_batch = {}
    for batch in range(1, ENUMERATED + 1):
        subsets = np.asarray(list(itertools.combinations(range(ENUMERATED), batch)))
        means = per_example[subsets].mean(axis=1)
        by_batch[batch] = {"mean": means.mean(axis=0),
                           "variance": float(np.mean(np.sum((means - means.mean(axis=0)) ** 2, axis=1))),
                           "minibatches": len(subsets)}
    return {"full": full, "population_variance": population, "by_batch": by_batch}


@claim(
    "batching/minibatch-gradient-is-unbiased",
    sources=["S002-18"],
    says="Stochastic gradient descent updates from a random sample instead of the whole set, which is much "
    "faster per update.",
    expected="holds",
)
def _unbiased() -> Evidence:
    stats = enumerated_minibatch_statistics()
    results = {b: compare(lambda b=b: stats["by_batch"][b]["mean"], lambda: stats["full"], [])
               for b in (1, 3, 6)}
    ok = all(r.ok for r in results.values())
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="measurement",
        summary=f"all minibatches of a {ENUMERATED}-example set enumerated (B = 1, 3, 6: "
        + ", ".join(str(stats["by_batch"][b]["minibatches"]) for b in results)
        + " minibatches): the average minibatch gradient equals the full-batch gradient, max rel err "
        f"{max(r.max_rel_err for r in results.values()):.1e} (rtol 1e-10) -- each step is an unbiased estimate "
        "at 1/N of the cost",
        max_abs_err=max(r.max_abs_err for r in results.values()),
        max_rel_err=max(r.max_rel_err for r in results.values()),
        samples=sum(stats["by_batch"][b]["minibatches"] for b in results),
        dtype="float64",
    )


@claim(
    "batching/gradient-variance-falls-as-one-over-batch-size",
    sources=["S001-34", "S002-30"],
    says="Within reason, a larger batch gives a more accurate descent direction and less oscillation; batch "
    "size 1 makes gradient descent very random.",
    expected="holds",
)
def _variance() -> Evidence:
    stats = enumerated_minibatch_statistics()
    measured = np.asarray([stats["by_batch"][b]["variance"] for b in range(1, ENUMERATED + 1)])
    derived = np.asarray([minibatch_variance(stats["population_variance"], ENUMERATED, b)
                          for b in range(1, ENUMERATED + 1)])
    result = compare(lambda: measured[:-1], lambda: derived[:-1], [])
    full_batch_exact = abs(measured[-1]) <= 1e-25 and derived[-1] == 0
    decreasing = bool(np.all(np.diff(measured) < 0))
    return Evidence(
        verdict=verdict(result.ok and full_batch_exact and decreasing, "holds"),
        method="measurement",
        summary=f"total variance of the minibatch gradient over all minibatches of a {ENUMERATED}-example set, "
        f"B = 1 ... {ENUMERATED}: {measured[0]:.4g} at B = 1, {measured[3]:.4g} at B = 4, {measured[-2]:.3g} at "
        f"B = {ENUMERATED - 1}, 0 at B = N; equals sigma^2/B (N - B)/(N - 1) ({result.describe()}); strictly "
        "decreasing in B; its standard deviation, the size of the noise, falls only as 1/sqrt(B)",
        max_abs_err=result.max_abs_err,
        max_rel_err=result.max_rel_err,
        samples=int(sum(stats["by_batch"][b]["minibatches"] for b in stats["by_batch"])),
        dtype="float64",
        details={"population_variance": stats["population_variance"], "measured": measured.tolist(),
                 "derived": derived.tolist()},
    )


@functools.cache
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


def _vs(run: dict, name: str, reference: str):
    return compare(lambda: np.asarray(run[name]), lambda: np.asarray(run[reference]), [])


@claim(
    "batching/data-parallel-mean-of-device-gradients-is-the-full-batch-gradient",
    sources=["S001-39", "S002-32"],
    says="Data parallelism trains by splitting the data across GPUs.",
    expected="holds",
)
def _data_parallel() -> Evidence:
    run = sharded_run()
    pmean, jitted = _vs(run, "pmean_of_mean_loss", "full_batch_mean"), _vs(run, "sharded_jit", "full_batch_mean")
    ok = run["devices"] == DEVICES and pmean.ok and jitted.ok and run["sharded_jit_has_all_reduce"]
    return Evidence(
        verdict=verdict(ok, "holds"),
        method="autodiff",
        summary=f"{run['devices']} XLA {run['platform']} devices, batch of 64 split into shards "
        f"{', '.join(run['batch_shard_shapes'])}: shard_map + lax.pmean of the per-device gradients vs the "
        f"one-device full-batch gradient: {pmean.describe()}; jit on the sharded batch (no collective written, "
        f"XLA inserts an all-reduce: {run['sharded_jit_has_all_reduce']}): max rel err {jitted.max_rel_err:.1e}",
        max_abs_err=max(pmean.max_abs_err, jitted.max_abs_err),
        max_rel_err=max(pmean.max_rel_err, jitted.max_rel_err),
        samples=pmean.samples,
        dtype=pmean.dtype,
        details={k: v for k, v in run.items() if not isinstance(v, list) or len(v) < 8},
    )


@claim(
    "batching/devices-average-gradients-not-max-and-sum-only-for-a-summed-loss",
    sources=["S002-32"],
    says="In multi-GPU training, is the gradient communicated the average, the maximum or the sum?",
    expected="qualified",
    correction="The average, when each device's loss is the mean over its (equal-sized) shard: it equals the "
    "full-batch gradient of the mean loss. The sum is right when the loss is a sum (or each device divides by "
    "the global batch size); with mean losses it is D times too large. The maximum is never the gradient.",
)
def _which_reduction() -> Evidence:
    run = sharded_run()
    rows = {"pmean, mean loss": _vs(run, "pmean_of_mean_loss", "full_batch_mean"),
            "psum, mean loss": _vs(run, "psum_of_mean_loss", "full_batch_mean"),
            "pmax, mean loss": _vs(run, "pmax_of_mean_loss", "full_batch_mean"),
            "psum, summed loss": _vs(run, "psum_of_sum_loss", "full_batch_sum")}
    ratio = np.asarray(run["psum_of_mean_loss"]) / np.asarray(run["full_batch_mean"])
    implicit = np.asarray(run["replicated_params_grad_of_local_mean"]) / np.asarray(run["full_batch_mean"])
    ok = (rows["pmean, mean loss"].ok and rows["psum, summed loss"].ok and not rows["psum, mean loss"].ok
          and not rows["pmax, mean loss"].ok and bool(np.allclose(ratio, DEVICES, rtol=1e-10))
          and bool(np.allclose(implicit, DEVICES, rtol=1e-10)))
    return Evidence(
        verdict=verdict(ok, "qualified"),
        method="autodiff",
        summary=f"against the full-batch gradient on {run['devices']} devices: "
        + "; ".join(f"{k}: {'equal' if r.ok else 'WRONG'} (max rel err {r.max_rel_err:.1e})" for k, r in rows.items())
        + f"; psum of mean-loss gradients is exactly {DEVICES} x the gradient, and so is jax.grad inside shard_map "
        "with replicated parameters left as they are (shard_map psums the gradient of a replicated input)",
        max_rel_err=rows["pmean, mean loss"].max_rel_err,
        samples=len(rows),
        dtype="float64",
        details={k: {"ok": r.ok, "max_rel_err": r.max_rel_err} for k, r in rows.items()},
    )


@claim(
    "batching/model-parallel-splits-the-parameters-not-the-architecture",
    sources=["S001-39"],
    says="Model parallelism is when the training is done by sharing the parameters across different architectures.",
    expected="qualified",
    correction="Model parallelism splits one model's parameters (and their computation) across devices -- e.g. "
    "a layer's hidden units -- and every device sees the same examples; data parallelism replicates the whole "
    "model and splits the batch. Either way the result is the single-device model's.",
)
def _model_parallel() -> Evidence:
    run = sharded_run()
    output = _vs(run, "model_parallel_output", "single_device_output")
    gradient = _vs(run, "model_parallel_grad", "full_batch_mean")
    split = run["model_parallel_kernel_shard_shapes"] == ["(5, 2)"]
    return Evidence(
        verdict=verdict(output.ok and gradient.ok and split, "qualified"),
        method="autodiff",
        summary=f"first layer's 5x16 kernel split by columns over {run['devices']} devices (each holds "
        f"{', '.join(run['model_parallel_kernel_shard_shapes'])}): outputs vs one device {output.describe()}; "
        f"gradient max rel err {gradient.max_rel_err:.1e}",
        max_abs_err=max(output.max_abs_err, gradient.max_abs_err),
        max_rel_err=max(output.max_rel_err, gradient.max_rel_err),
        samples=output.samples,
        dtype=output.dtype,
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "batching"]) or main(["check", "batching"]))
