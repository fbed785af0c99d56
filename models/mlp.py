"""A small MLP for the batching and activations chapters: a pure function of a parameter pytree, and a thin
NNX module. tanh by default (batching); the activations chapter runs it with ReLU to watch units die.

The pure ``mlp(params, x)`` is what ``jax.vmap(jax.grad(...))`` and ``shard_map`` differentiate; ``MLP``
holds the parameters (initialised by ``nnx.Linear``'s defaults) and hands them out as that pytree.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib

Params = list[dict[str, jax.Array]]


def mlp(params: Params, x: jax.Array, activation: Callable[[jax.Array], jax.Array] = jnp.tanh) -> jax.Array:
    """``x @ W_1 + b_1 -> activation -> ... -> x @ W_n + b_n`` (no activation after the last layer)."""
    return mlp_with_preactivations(params, x, activation)[1]


def mlp_with_preactivations(
    params: Params, x: jax.Array, activation: Callable[[jax.Array], jax.Array] = jnp.tanh
) -> tuple[list[jax.Array], jax.Array]:
    """The hidden layers' pre-activations ``x @ W_l + b_l`` (one array per hidden layer) and the output."""
    pre = []
    for layer in params[:-1]:
        pre.append(x @ layer["kernel"] + layer["bias"])
        x = activation(pre[-1])
    return pre, x @ params[-1]["kernel"] + params[-1]["bias"]


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


def init_params(key: jax.Array, sizes: Sequence[int], dtype=jnp.float32) -> Params:
    """Parameters for ``mlp`` drawn as ``nnx.Linear`` draws them by default (LeCun-normal kernel, zero bias):
    a pure function of ``key``, so several initialisations can be made at once with ``jax.vmap``."""
    keys = jax.random.split(key, len(sizes) - 1)
    init = nnx.initializers.lecun_normal()
    return [{"kernel": init(k, (a, b), dtype), "bias": jnp.zeros((b,), dtype)}
            for k, (a, b) in zip(keys, itertools.pairwise(sizes), strict=True)]


# The standard deviation of a standard normal truncated to [-2, 2] (jax.nn.initializers' constant).
_TRUNCATED_STD = 0.87962566103423978


def init_params_numpy(rng, sizes: Sequence[int], dtype=jnp.float64, *, count: int | None = None) -> Params:
    """``init_params``'s distribution (LeCun-normal: a normal truncated to +-2 standard deviations, scaled to
    variance 1/fan_in; zero bias) drawn by NumPy, so that no XLA program is compiled to draw it. With
    ``count`` the leaves get a leading axis of ``count`` independent initialisations (for ``jax.vmap``)."""
    import numpy as np

    lead = () if count is None else (count,)
    params = []
    for a, b in itertools.pairwise(sizes):
        draws = rng.standard_normal((*lead, a, b))
        outside = np.abs(draws) > 2
        while outside.any():  # rejection: redraw what fell outside [-2, 2]
            draws[outside] = rng.standard_normal(int(outside.sum()))
            outside = np.abs(draws) > 2
        kernel = draws * (np.sqrt(1.0 / a) / _TRUNCATED_STD)
        params.append({"kernel": jnp.asarray(kernel, dtype), "bias": jnp.zeros((*lead, b), dtype)})
    return params
