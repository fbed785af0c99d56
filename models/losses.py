"""Classification heads and the losses the losses chapter differentiates, as Flax NNX over pure functions.

The losses themselves are optax's (``optax.softmax_cross_entropy``, ``optax.sigmoid_binary_cross_entropy``,
``optax.sigmoid_focal_loss``, ``optax.hinge_loss``); what lives here is what optax does not have: the
cross-entropy of a head written with ``jax.nn.log_softmax`` (an independent second implementation), a
class-weighted cross-entropy, the sigmoid + squared-error loss that S000-13 warns against, and a logistic
regression trained by SGD to compare the two.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax.nnx import rnglib
from jax import lax

from models import OPTIMISED


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """-sum_k y_k log softmax(z)_k over the last axis. ``log_softmax`` subtracts max(z) before the
    exponential, so logits of any finite size give a finite loss."""
    return -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def weighted_softmax_cross_entropy(logits: jax.Array, labels: jax.Array, class_weights: jax.Array) -> jax.Array:
    """Class-weighted cross-entropy -sum_k w_k y_k log softmax(z)_k (S000-11): a rare class gets a larger w_k."""
    return -jnp.sum(class_weights * labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def sigmoid_squared_error(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """(sigmoid(z) - y)^2: squared error on a sigmoid output, the pairing S000-13 advises against."""
    return (jax.nn.sigmoid(logits) - labels) ** 2


class ClassifierHead(nnx.Module):
    """A linear classification head: features -> ``num_outputs`` logits, of which the first
    ``num_classes`` are the classes' (S003-03: a head with one output too many is sliced, not retrained).

    ``num_outputs`` defaults to ``num_classes``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_outputs: int | None = None,
        rngs: rnglib.Rngs,
        dtype=jnp.float32,
    ):
        num_outputs = num_classes if num_outputs is None else num_outputs
        if not 2 <= num_classes <= num_outputs:
            raise ValueError(f"ClassifierHead needs 2 <= num_classes <= num_outputs, got {num_classes}, {num_outputs}")
        self.num_classes = num_classes
        self.linear = nnx.Linear(in_features, num_outputs, rngs=rngs, param_dtype=dtype)

    def all_logits(self, x: jax.Array) -> jax.Array:
        return self.linear(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.all_logits(x)[..., : self.num_classes]

    def loss(self, x: jax.Array, labels: jax.Array) -> jax.Array:
        """Mean cross-entropy of the sliced logits against one-hot (or soft) ``labels``."""
        return jnp.mean(softmax_cross_entropy(self(x), labels))


class LogisticRegression(nnx.Module):
    """p(y = 1 | x) = sigmoid(x w + b); ``__call__`` returns the logit z = x w + b."""

    def __init__(self, in_features: int, *, rngs: rnglib.Rngs, dtype=jnp.float32):
        self.linear = nnx.Linear(in_features, 1, rngs=rngs, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x)[..., 0]


LOSSES = {
    "bce": optax.sigmoid_binary_cross_entropy,
    "sigmoid_mse": sigmoid_squared_error,
}


def fit_logistic(
    model: LogisticRegression, x: jax.Array, y: jax.Array, *, loss: str, learning_rate: float, steps: int
) -> jax.Array:
    """Train ``model`` in place with ``optax.sgd`` on the mean ``loss`` ("bce" or "sigmoid_mse") for
    ``steps`` full-batch steps; returns the training accuracy after each step, shape (steps,)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    loss_fn = LOSSES[loss]
    optimizer = nnx.Optimizer(model, optax.sgd(learning_rate), wrt=nnx.Param)

    @nnx.scan(in_axes=(nnx.Carry,), out_axes=(nnx.Carry, 0), length=steps)
    def train(carry):
        m, opt = carry
        grads = nnx.grad(lambda m: jnp.mean(loss_fn(m(x), y)))(m)
        opt.update(m, grads)
        accuracy = jnp.mean((m(x) > 0) == (y > 0.5))
        return (m, opt), accuracy

    _, accuracy = nnx.jit(train)((model, optimizer))
    return accuracy


def accuracy_curves(kernel: jax.Array, bias: jax.Array, x: jax.Array, y: jax.Array, *, loss: str,
                    learning_rates: jax.Array, steps: int) -> jax.Array:
    """Full-batch SGD on the mean ``loss`` ("bce" or "sigmoid_mse") of the logistic model z = x w + b from
    (``kernel``, ``bias``), one run per learning rate (vectorised): the training accuracy after each step,
    shape (len(learning_rates), steps). The same update as ``fit_logistic``, as a pure function."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return _accuracy_curves(kernel, bias, x, y, learning_rates, loss=loss, steps=steps)


@functools.partial(jax.jit, static_argnames=("loss", "steps"), compiler_options=OPTIMISED)
def _accuracy_curves(kernel, bias, x, y, learning_rates, *, loss, steps):
    loss_fn = LOSSES[loss]

    def run(rate):
        def step(params, _):
            grads = jax.grad(lambda q: jnp.mean(loss_fn(x @ q[0] + q[1], y)))(params)
            params = jax.tree.map(lambda v, g: v - rate * g, params, grads)
            return params, jnp.mean((x @ params[0] + params[1] > 0) == (y > 0.5))

        return lax.scan(step, (kernel, bias), None, length=steps)[1]

    return jax.vmap(run)(learning_rates)
