"""A small tanh MLP for the batching chapter: a pure function of a parameter pytree, and a thin NNX module.

The pure ``mlp(params, x)`` is what ``jax.vmap(jax.grad(...))`` and ``shard_map`` differentiate; ``MLP``
holds the parameters (initialised by ``nnx.Linear``'s defaults) and hands them out as that pytree.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib

Params = list[dict[str, jax.Array]]


def mlp(params: Params, x: jax.Array) -> jax.Array:
    """``x @ W_1 + b_1 -> tanh -> ... -> x @ W_n + b_n`` (no activation after the last layer)."""
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["kernel"] + layer["bias"])
    return x @ params[-1]["kernel"] + params[-1]["bias"]


class MLP(nnx.Module):
    """``sizes = (in, hidden, ..., out)``: one ``nnx.Linear`` per consecutive pair."""

    def __init__(self, sizes: Sequence[int], *, rngs: rnglib.Rngs, dtype=jnp.float32):
        if len(sizes) < 2 or any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive integers, got {list(sizes)}")
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs, param_dtype=dtype) for a, b in itertools.pairwise(sizes)]
        )

    def params(self) -> Params:
        return [{"kernel": layer.kernel[...], "bias": layer.bias[...]} for layer in self.layers]

    def __call__(self, x: jax.Array) -> jax.Array:
        return mlp(self.params(), x)
