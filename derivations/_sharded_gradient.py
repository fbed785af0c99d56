"""The multi-device half of the batching chapter, run as ``python -m derivations._sharded_gradient`` in a
child process whose environment sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (XLA reads it
once, when JAX starts, so the parent process cannot). Prints one JSON object on stdout.

Nothing here names a device kind or count: ``jax.make_mesh((jax.device_count(),), ("data",))`` takes
whatever devices the process has -- 8 forced CPU devices here, the GPUs of a multi-GPU machine, or every
host's devices after ``jax.distributed.initialize()`` on a multi-host run.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import derivations  # noqa: F401  (float64)
from models.mlp import MLP, mlp

BATCH, FEATURES = 64, 5


def problem(seed: int = 0):
    """An MLP(5 -> 16 -> 1) and a regression batch of 64 examples, from fixed seeds."""
    model = MLP((FEATURES, 16, 1), rngs=nnx.Rngs(params=seed), dtype=jnp.float64)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(BATCH, FEATURES)))
    y = jnp.asarray(np.sin(np.asarray(x).sum(axis=1, keepdims=True)) + 0.1 * rng.normal(size=(BATCH, 1)))
    return model.params(), x, y


def mean_loss(params, x, y):
    return 0.5 * jnp.mean((mlp(params, x) - y) ** 2)


def sum_loss(params, x, y):
    return 0.5 * jnp.sum((mlp(params, x) - y) ** 2)


def flat(tree) -> list[float]:
    return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)]).tolist()


def main() -> dict:
    params, x, y = problem()
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    out = {"devices": jax.device_count(), "platform": jax.devices()[0].platform,
           "full_batch_mean": flat(jax.grad(mean_loss)(params, x, y)),
           "full_batch_sum": flat(jax.grad(sum_loss)(params, x, y))}

    def per_device(loss, reduce):
        # Each device differentiates the loss of its own shard of the batch, then one collective combines them.
        # The parameters are cast to device-varying first: shard_map differentiates a replicated input
        # with an implicit psum (the transpose of replication), which would sum before we choose how.
        def local(p, xs, ys):
            p = jax.tree.map(lambda leaf: jax.lax.pcast(leaf, "data", to="varying"), p)
            return jax.tree.map(lambda leaf: reduce(leaf, "data"), jax.grad(loss)(p, xs, ys))

        return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P()))

    batch_sharding, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    xs, ys = jax.device_put(x, batch_sharding), jax.device_put(y, batch_sharding)
    ps = jax.device_put(params, replicated)
    out["pmean_of_mean_loss"] = flat(per_device(mean_loss, jax.lax.pmean)(ps, xs, ys))
    out["psum_of_mean_loss"] = flat(per_device(mean_loss, jax.lax.psum)(ps, xs, ys))
    out["pmax_of_mean_loss"] = flat(per_device(mean_loss, jax.lax.pmax)(ps, xs, ys))
    out["psum_of_sum_loss"] = flat(per_device(sum_loss, jax.lax.psum)(ps, xs, ys))
    # Each device's own gradient, before any collective (stacked along the mesh axis): shard i's gradient.
    def local_only(p, xs, ys):
        p = jax.tree.map(lambda leaf: jax.lax.pcast(leaf, "data", to="varying"), p)
        grads = jax.grad(mean_loss)(p, xs, ys)
        return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(grads)])[None]

    local = jax.jit(jax.shard_map(local_only, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P("data")))
    out["per_device_gradients"] = np.asarray(local(ps, xs, ys)).tolist()
    implicit = jax.shard_map(jax.grad(mean_loss), mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P())
    out["replicated_params_grad_of_local_mean"] = flat(jax.jit(implicit)(ps, xs, ys))

    # The same without writing a collective: with the batch sharded and the parameters replicated, XLA's
    # partitioner inserts the all-reduce that the mean over the batch axis needs.
    grad_fn = jax.jit(jax.grad(mean_loss))
    out["sharded_jit"] = flat(grad_fn(ps, xs, ys))
    hlo = grad_fn.lower(ps, xs, ys).compile().as_text()
    out["sharded_jit_has_all_reduce"] = "all-reduce" in hlo
    out["batch_shard_shapes"] = sorted({str(s.data.shape) for s in xs.addressable_shards})

    # Model parallelism: split the first layer's kernel by columns (hidden units) over the devices; every
    # device sees the whole batch and computes its units.
    column_sharded = jax.device_put(params[0]["kernel"], NamedSharding(mesh, P(None, "data")))
    sharded_params = [{"kernel": column_sharded, "bias": params[0]["bias"]}, params[1]]
    out["model_parallel_kernel_shard_shapes"] = sorted({str(s.data.shape) for s in column_sharded.addressable_shards})
    out["model_parallel_output"] = flat(jax.jit(mlp)(sharded_params, x))
    out["single_device_output"] = flat(mlp(params, x))
    out["model_parallel_grad"] = flat(jax.jit(jax.grad(mean_loss))(sharded_params, x, y))
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
