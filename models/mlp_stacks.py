"""Deep fully-connected stacks for the initialisation and gradient-flow chapters, as Flax NNX modules over
pure functions.

``dense_stack`` runs ``depth`` square layers with ``jax.lax.scan`` over stacked parameters, so a 50-layer
network compiles once as one loop body instead of 50 unrolled layers. Each layer is
``h -> act(norm(h @ W + b))``, or ``h -> h + act(norm(h @ W + b))`` with a skip connection; ``norm`` is
batch standardisation (training-mode BatchNorm with gamma = 1, beta = 0, as at initialisation).
Arrays are ``(batch, features)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib

from models import OPTIMISED

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}
Initializer = Callable[..., jax.Array]
_HE_NORMAL = jax.nn.initializers.he_normal()
_LECUN_NORMAL = jax.nn.initializers.lecun_normal()
_ZEROS = jax.nn.initializers.zeros


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def dense_stack(
    x: jax.Array,
    kernels: jax.Array,
    biases: jax.Array,
    *,
    activation: str = "relu",
    residual: bool = False,
    normalize: bool = False,
    taps: jax.Array | None = None,
    epsilon: float = 1e-5,
) -> tuple[jax.Array, jax.Array]:
    """Run the stack; returns ``(output, hidden)`` with ``hidden[l]`` the output of layer ``l + 1``.

    ``kernels`` is ``(depth, width, width)`` and ``biases`` ``(depth, width)``. With ``normalize`` the
    pre-activation is standardised over the batch with the biased variance and ``epsilon`` inside the
    square root, as ``nnx.BatchNorm`` does in training mode (``jax.nn.standardize``). ``taps``
    (``(depth, batch, width)``, zeros) are added to each layer's output: the gradient of a loss with
    respect to them is the gradient reaching each layer, dL/dh_l.
    """
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2] or biases.shape != kernels.shape[:2]:
        raise ValueError(f"kernels must be (depth, width, width) with biases (depth, width), got "
                         f"{kernels.shape} and {biases.shape}")
    _activation(activation)
    if taps is None:
        taps = jnp.zeros((kernels.shape[0], *x.shape), x.dtype)
    # The switches are traced, not static: one compiled program serves every activation and variant.
    return _traced_stack(x, kernels, biases, taps, jnp.asarray(list(ACTIVATIONS).index(activation)),
                         jnp.asarray(residual), jnp.asarray(normalize), epsilon)


@jax.jit
def _traced_stack(x, kernels, biases, taps, which, residual, normalize, epsilon):
    branches = list(ACTIVATIONS.values())

    def layer(h, params):
        kernel, bias, tap = params
        pre = h @ kernel + bias
        pre = jax.lax.cond(normalize, lambda p: jax.nn.standardize(p, axis=0, epsilon=epsilon), lambda p: p, pre)
        out = jnp.where(residual, h, 0.0) + jax.lax.switch(which, branches, pre) + tap
        return out, out

    return jax.lax.scan(layer, x, (kernels, biases, taps))


def stacked_kernels(init: Initializer, key: jax.Array, depth: int, width: int, dtype=jnp.float32) -> jax.Array:
    """``depth`` independent ``(width, width)`` kernels from ``init``. Each is drawn with its own 2-D shape
    (``vmap`` over keys), so the initializer sees fan_in = fan_out = width, not a 3-D receptive field."""
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
    return _kernel_drawer(init, depth, width, jnp.dtype(dtype))(key)


@functools.lru_cache(maxsize=256)
def _kernel_drawer(init: Initializer, depth: int, width: int, dtype) -> Callable[[jax.Array], jax.Array]:
    # One compiled draw per (initializer, depth, width, dtype): eager vmap would re-trace every call.
    return jax.jit(lambda key: jax.vmap(lambda k: init(k, (width, width), dtype))(jax.random.split(key, depth)))


class DeepMLP(nnx.Module):
    """``depth`` square layers of ``width`` units (see :func:`dense_stack`), biases initialised to 0."""

    def __init__(
        self,
        width: int,
        depth: int,
        *,
        activation: str = "relu",
        kernel_init: Initializer = _HE_NORMAL,
        residual: bool = False,
        normalize: bool = False,
        rngs: rnglib.Rngs,
        param_dtype=jnp.float32,
    ):
        _activation(activation)
        self.activation, self.residual, self.normalize = activation, residual, normalize
        self.kernels = nnx.Param(stacked_kernels(kernel_init, rngs.params(), depth, width, param_dtype))
        self.biases = nnx.Param(jnp.zeros((depth, width), param_dtype))

    def hidden(self, x: jax.Array) -> jax.Array:
        """Every layer's output, ``(depth, batch, width)``."""
        return self._run(x)[1]

    def __call__(self, x: jax.Array) -> jax.Array:
        return self._run(x)[0]

    def _run(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return dense_stack(x, self.kernels[...], self.biases[...], activation=self.activation,
                           residual=self.residual, normalize=self.normalize)


def residual_block(x: jax.Array, w1: jax.Array, b1: jax.Array, w2: jax.Array, b2: jax.Array) -> jax.Array:
    """``x + F(x)`` with ``F(x) = W2 tanh(W1 x + b1) + b2`` for one column vector ``x`` (the notes'
    H(x) = F(x) + x, S000-26)."""
    return x + w2 @ jnp.tanh(w1 @ x + b1) + b2


class TwoLayerMLP(nnx.Module):
    """``Linear -> activation -> Linear``; the initializers are keyword arguments so that a chapter can
    start it from all zeros."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        out_features: int,
        *,
        activation: str = "relu",
        kernel_init: Initializer = _LECUN_NORMAL,
        bias_init: Initializer = _ZEROS,
        rngs: rnglib.Rngs,
        param_dtype=jnp.float32,
    ):
        self.act = _activation(activation)
        kwargs = dict(kernel_init=kernel_init, bias_init=bias_init, rngs=rngs, param_dtype=param_dtype)
        self.hidden = nnx.Linear(in_features, hidden, **kwargs)
        self.out = nnx.Linear(hidden, out_features, **kwargs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.act(self.hidden(x)))


def layer_profile(
    x: jax.Array,
    kernels: jax.Array,
    biases: jax.Array,
    readout: jax.Array,
    *,
    activation: str = "relu",
    residual: bool = False,
    normalize: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Per layer of the stack: the variance of its output (over batch and units) and the norm of the
    gradient reaching it, ||dL/dh_l||, for the loss L = mean over the batch of ``output @ readout``."""
    _activation(activation)
    args = (x, kernels, biases, readout, jnp.asarray(list(ACTIVATIONS).index(activation)), jnp.asarray(residual),
            jnp.asarray(normalize))
    # Called inside another program, the body is inlined there; called on arrays, it is its own program, which
    # runs long enough (a deep stack) to be compiled with XLA's optimisations (models.OPTIMISED).
    traced = any(isinstance(a, jax.core.Tracer) for a in args)
    return (_traced_profile if traced else _optimised_profile)(*args)


def _profile_body(x, kernels, biases, readout, which, residual, normalize):
    # One compiled program per shape serves every activation and variant (the switches are traced).
    def run(taps):
        return _traced_stack(x, kernels, biases, taps, which, residual, normalize, 1e-5)

    taps = jnp.zeros((kernels.shape[0], *x.shape), x.dtype)
    grads = jax.grad(lambda t: jnp.mean(run(t)[0] @ readout))(taps)
    hidden = run(taps)[1]
    return jnp.var(hidden, axis=(1, 2)), jnp.sqrt(jnp.sum(grads**2, axis=(1, 2)))


_traced_profile = jax.jit(_profile_body)
_optimised_profile = jax.jit(_profile_body, compiler_options=OPTIMISED)
