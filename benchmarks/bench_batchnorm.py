"""The custom-VJP BatchNorm (closed-form backward) against nnx.BatchNorm under autodiff: one training
step's forward and backward (dx, dscale, dbias), jit-compiled, float32, NHWC."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks.harness import side_by_side
from models.normalization import BatchNorm

SIZES = ((64, 32, 32, 64), (128, 32, 32, 128))


def forward_backward(module: nnx.Module):
    """A pure function (x, params, dy) -> (dx, dparams) for ``module`` in training mode."""
    graph, params, rest = nnx.split(module, nnx.Param, ...)

    def step(x, p, dy):
        def apply(v, q):
            return nnx.merge(graph, q, rest, copy=True)(v)

        return jax.vjp(apply, x, p)[1](dy)

    return step, params


def run() -> list[dict]:
    results = []
    for shape in SIZES:
        c = shape[-1]
        kx, kd = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, shape, jnp.float32) * 2.0 + 1.0
        dy = jax.random.normal(kd, shape, jnp.float32)
        autodiff, params = forward_backward(nnx.BatchNorm(c, rngs=nnx.Rngs(params=0)))
        closed, _ = forward_backward(BatchNorm(c, rngs=nnx.Rngs(params=0)))
        results.append(side_by_side(
            f"batchnorm_forward_backward_{'x'.join(map(str, shape))}",
            ("nnx.BatchNorm + jax.vjp (autodiff)", autodiff),
            ("models.normalization.BatchNorm (custom_vjp closed form)", closed),
            (x, params, dy),
            unit_note="seconds per forward+backward (dx, dscale, dbias), float32 NHWC, median of 15 alternating runs",
            extra={"shape": list(shape), "dtype": "float32"},
        ))  # fmt: skip
    return results
