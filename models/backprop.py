"""The networks the backpropagation chapter differentiates by hand, as Flax NNX over pure functions.

``two_two_one`` is the notes' own network (S003-11): two inputs, two sigmoid hidden units that share the
bias ``b1``, one sigmoid output. ``MLP`` is a plain stack of ``nnx.Linear`` layers with an activation between them.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib

TWO_TWO_ONE_PARAMS = ("w1", "w2", "w3", "w4", "w5", "w6", "b1", "b2")


def two_two_one(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """y_hat = sigma(w5 h1 + w6 h2 + b2), h1 = sigma(w1 x1 + w2 x2 + b1), h2 = sigma(w3 x1 + w4 x2 + b1)
    (S003-11; b1 appears in both hidden units). ``x`` has shape (..., 2)."""
    x1, x2 = x[..., 0], x[..., 1]
    h1 = jax.nn.sigmoid(params["w1"] * x1 + params["w2"] * x2 + params["b1"])
    h2 = jax.nn.sigmoid(params["w3"] * x1 + params["w4"] * x2 + params["b1"])
    return jax.nn.sigmoid(params["w5"] * h1 + params["w6"] * h2 + params["b2"])


class TwoTwoOne(nnx.Module):
    """The notes' 2-2-1 sigmoid network with a shared hidden bias; each of w1..w6, b1, b2 is a scalar
    ``nnx.Param`` named as in the notes."""

    def __init__(self, *, rngs: rnglib.Rngs, dtype=jnp.float32):
        values = jax.random.normal(rngs.params(), (len(TWO_TWO_ONE_PARAMS),), dtype)
        for name, value in zip(TWO_TWO_ONE_PARAMS, values, strict=True):
            setattr(self, name, nnx.Param(value))

    def params(self) -> dict[str, jax.Array]:
        return {name: getattr(self, name)[...] for name in TWO_TWO_ONE_PARAMS}

    def __call__(self, x: jax.Array) -> jax.Array:
        return two_two_one(self.params(), x)


ACTIVATIONS = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu}


class MLP(nnx.Module):
    """``Linear -> f -> ... -> Linear``: widths ``features[0] -> features[1] -> ... -> features[-1]``, the
    activation ``f`` (tanh, sigmoid or relu) between layers, none after the last. ``bias_init`` is Flax's
    initializer for the biases (None: zeros, as nnx.Linear's)."""

    def __init__(self, features: tuple[int, ...], *, activation: str = "tanh", rngs: rnglib.Rngs,
                 dtype=jnp.float32, bias_init=None):
        if len(features) < 2 or min(features) < 1:
            raise ValueError(f"MLP needs at least two positive widths, got {features}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        bias_init = nnx.initializers.zeros_init() if bias_init is None else bias_init
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs, param_dtype=dtype, bias_init=bias_init)
             for a, b in itertools.pairwise(features)]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        f = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = f(layer(x))
        return self.layers[-1](x)
