"""Activations with learnable or random parts, as Flax NNX modules over pure functions.

Each numeric core is a pure function (``prelu``, ``rrelu``, ``maxout``) that a chapter can differentiate;
the modules only hold parameters, randomness and the train/eval switch. Fixed activations (sigmoid,
tanh, ReLU, Leaky ReLU, ELU, softmax) are Flax's own: ``nnx.sigmoid`` and friends are ``jax.nn``'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib


def prelu(x: jax.Array, alpha: jax.Array) -> jax.Array:
    """PReLU: ``x`` where ``x >= 0``, else ``alpha * x``. At 0 the output is 0 either way; the gradient
    with respect to ``x`` there is 1 (the ``x >= 0`` branch), as in ``jax.nn.leaky_relu``."""
    return jnp.where(x >= 0, x, alpha * x)


def rrelu(x: jax.Array, slope: jax.Array) -> jax.Array:
    """RReLU with given negative-side slopes (drawn per element in training, fixed at evaluation); at 0 the
    ``x >= 0`` branch, as in ``prelu``."""
    return jnp.where(x >= 0, x, slope * x)


def maxout(x: jax.Array, pieces: int) -> jax.Array:
    """Maxout over the last axis split into groups of ``pieces`` consecutive features: out[..., j] =
    max_k x[..., j * pieces + k]. Under ``jax.grad`` the whole gradient goes to the winning piece."""
    if x.shape[-1] % pieces:
        raise ValueError(f"maxout: {x.shape[-1]} features do not split into groups of {pieces}")
    return jnp.max(x.reshape(*x.shape[:-1], x.shape[-1] // pieces, pieces), axis=-1)


class PReLU(nnx.Module):
    """Parametric ReLU (He et al., 2015): the negative-side slope ``alpha`` is learned, one per channel
    (``num_channels``) or shared (``num_channels=None``); He et al. initialise it to 0.25."""

    def __init__(self, num_channels: int | None = None, *, alpha_init: float = 0.25, dtype=jnp.float32):
        shape = () if num_channels is None else (num_channels,)
        self.alpha = nnx.Param(jnp.full(shape, alpha_init, dtype=dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return prelu(x, self.alpha[...])


class RReLU(nnx.Module):
    """Randomized ReLU (Xu et al., 2015): in training each element's negative slope is drawn from
    U(lower, upper); in evaluation the slope is the mean (lower + upper) / 2. ``deterministic=True``
    (or ``module.eval()``) selects evaluation, as for ``nnx.Dropout``."""

    def __init__(
        self,
        lower: float = 1 / 8,
        upper: float = 1 / 3,
        *,
        deterministic: bool = False,
        rng_collection: str = "dropout",
        rngs: rnglib.Rngs | None = None,
    ):
        if not 0 <= lower <= upper:
            raise ValueError(f"RReLU needs 0 <= lower <= upper, got lower={lower}, upper={upper}")
        self.lower, self.upper = lower, upper
        self.deterministic = deterministic
        self.rngs = rngs[rng_collection].fork() if rngs is not None else nnx.data(None)

    def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic:
            return rrelu(x, jnp.asarray((self.lower + self.upper) / 2, dtype=x.dtype))
        if self.rngs is None:
            raise ValueError("RReLU in training mode needs rngs (pass rngs=nnx.Rngs(...) or use eval mode)")
        slope = jax.random.uniform(self.rngs(), x.shape, x.dtype, self.lower, self.upper)
        return rrelu(x, slope)


class Maxout(nnx.Module):
    """Maxout unit (Goodfellow et al., 2013): ``pieces`` affine maps per output, keep the largest."""

    def __init__(self, in_features: int, out_features: int, pieces: int, *, rngs: rnglib.Rngs, dtype=None):
        self.pieces = pieces
        self.linear = nnx.Linear(in_features, out_features * pieces, rngs=rngs, param_dtype=dtype or jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        return maxout(self.linear(x), self.pieces)


class OneHiddenReLU(nnx.Module):
    """A network with one hidden ReLU layer: ``Linear -> relu -> Linear``."""

    def __init__(self, in_features: int, hidden: int, out_features: int, *, rngs: rnglib.Rngs, dtype=None):
        param_dtype = dtype or jnp.float32
        self.hidden = nnx.Linear(in_features, hidden, rngs=rngs, param_dtype=param_dtype)
        self.out = nnx.Linear(hidden, out_features, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(nnx.relu(self.hidden(x)))
