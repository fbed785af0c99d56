"""The custom-VJP BatchNorm (closed-form backward) against nnx.BatchNorm under autodiff: one training
step's forward and backward (dx, dscale, dbias), jit-compiled, float32, NHWC; and, for each, the bytes of
the residuals that ``jax.vjp`` keeps from the forward pass for the backward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks.harness import side_by_side
from models.normalization import BatchNorm

SIZES = ((64, 32, 32, 64), (128, 32, 32, 128))


def _apply(module: nnx.Module):
    graph, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(v, q):
        return nnx.merge(graph, q, rest, copy=True)(v)

    return apply, params


def forward_backward(module: nnx.Module):
    """A pure function (x, params, dy) -> (dx, dparams) for ``module`` in training mode."""
    apply, params = _apply(module)

    def step(x, p, dy):
        return jax.vjp(apply, x, p)[1](dy)

    return step, params


def vjp_residuals(module: nnx.Module, x: jax.Array) -> list[jax.ShapeDtypeStruct]:
    """Shapes and dtypes of what ``jax.vjp`` of ``module`` (training mode) at ``x`` keeps for the backward pass:
    the array leaves of the VJP function it returns (abstractly evaluated, nothing is computed). In a network,
    these stay alive from the layer's forward pass until its backward pass; x itself counts when it is kept."""
    apply, params = _apply(module)
    return jax.eval_shape(lambda v, q: jax.tree.leaves(jax.vjp(apply, v, q)[1]), x, params)


def residual_bytes(module: nnx.Module, x: jax.Array) -> int:
    """The total size of ``vjp_residuals(module, x)`` in bytes."""
    return sum(r.size * r.dtype.itemsize for r in vjp_residuals(module, x))


def run() -> list[dict]:
    results = []
    for shape in SIZES:
        c = shape[-1]
        kx, kd = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, shape, jnp.float32) * 2.0 + 1.0
        dy = jax.random.normal(kd, shape, jnp.float32)
        flax_bn, ours = nnx.BatchNorm(c, rngs=nnx.Rngs(params=0)), BatchNorm(c, rngs=nnx.Rngs(params=0))
        residuals = {
            "baseline_residual_bytes": residual_bytes(flax_bn, x),
            "candidate_residual_bytes": residual_bytes(ours, x),
            "x_bytes": x.size * x.dtype.itemsize,
        }
        autodiff, params = forward_backward(flax_bn)
        closed, _ = forward_backward(ours)
        results.append(side_by_side(
            f"batchnorm_forward_backward_{'x'.join(map(str, shape))}",
            ("nnx.BatchNorm + jax.vjp (autodiff)", autodiff),
            ("models.normalization.BatchNorm (custom_vjp closed form)", closed),
            (x, params, dy),
            unit_note="seconds per forward+backward (dx, dscale, dbias), float32 NHWC, median of 15 alternating runs",
            extra={"shape": list(shape), "dtype": "float32", **residuals},
        ))  # fmt: skip
    return results
