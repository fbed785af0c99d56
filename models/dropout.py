"""Dropout in its two forms, as pure functions of an explicit keep-mask, and the notes' (non-inverted)
form as an NNX module beside Flax's ``nnx.Dropout`` (which is the inverted form).

``rate`` is always the *drop* probability p, as in ``nnx.Dropout``; the keep probability is 1 - p.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib


def _check_rate(rate: float) -> None:
    if isinstance(rate, jax.core.Tracer):  # a traced rate (one compile for every rate) is checked by its caller
        return
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate (the drop probability) must be in [0, 1), got {rate}")


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """A Bernoulli(1 - rate) mask: 1 keeps a unit, 0 drops it."""
    _check_rate(rate)
    return jax.random.bernoulli(key, 1.0 - rate, shape)


def inverted_dropout(x: jax.Array, mask: jax.Array, rate: float) -> jax.Array:
    """Training-time inverted dropout: ``x * mask / (1 - rate)``; at evaluation the layer is the identity."""
    _check_rate(rate)
    return jnp.where(mask, x / (1.0 - rate), 0.0)


def plain_dropout(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Training-time dropout as the notes describe it (S001-10): ``x * mask``, no rescaling; evaluation must
    then multiply by the keep probability (``plain_dropout_eval``)."""
    return jnp.where(mask, x, 0.0)


def plain_dropout_eval(x: jax.Array, rate: float) -> jax.Array:
    """Evaluation for ``plain_dropout``: scale by the keep probability 1 - rate, the training expectation."""
    _check_rate(rate)
    return x * (1.0 - rate)


class PlainDropout(nnx.Module):
    """Non-inverted dropout: in training zero each unit with probability ``rate`` and leave the rest unscaled;
    in evaluation (``deterministic=True``, ``.eval()``) multiply by ``1 - rate``. Same switch and rng
    collection as ``nnx.Dropout``."""

    def __init__(self, rate: float, *, deterministic: bool = False, rng_collection: str = "dropout",
                 rngs: rnglib.Rngs | None = None):  # fmt: skip
        _check_rate(rate)
        self.rate = rate
        self.deterministic = deterministic
        self.rngs = rngs[rng_collection].fork() if rngs is not None else nnx.data(None)

    def __call__(self, x: jax.Array, *, deterministic: bool | None = None) -> jax.Array:
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic:
            return plain_dropout_eval(x, self.rate)
        if self.rngs is None:
            raise ValueError("PlainDropout in training mode needs rngs (pass rngs=nnx.Rngs(dropout=...))")
        return plain_dropout(x, keep_mask(self.rngs(), x.shape, self.rate))
