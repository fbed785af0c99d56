"""Normalization layers over pure functions: BatchNorm with a closed-form backward, and the statistics
that BN, LN, IN and GN take over different axes.

``batchnorm`` is a ``jax.custom_vjp`` whose backward is the derived closed form (``batchnorm_backward``):

.. math::

    d\\beta = \\sum dy, \\quad d\\gamma = \\sum dy\\,\\hat x, \\quad
    dx = \\frac{\\gamma}{N\\sigma}\\Big(N\\,dy - \\sum dy - \\hat x \\sum dy\\,\\hat x\\Big),
    \\qquad \\sigma = \\sqrt{\\operatorname{Var}[x] + \\epsilon},

the sums and ``N`` running over the reduction axes. :class:`BatchNorm` is a drop-in for
``nnx.BatchNorm`` (same arguments, same state names, same train/eval switch) that uses it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib
from flax.nnx.nn import dtypes, initializers
from jax import lax
from jax.custom_derivatives import SymbolicZero


def _reduction_axes(ndim: int, axes: int | Sequence[int]) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if not axes or any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"axes {axes} must be a non-empty set of axes of a {ndim}-d input, each in [-{ndim}, {ndim})")
    canonical = tuple(sorted({a % ndim for a in axes}))
    if len(canonical) == ndim:
        raise ValueError(f"axes {axes} reduce every axis of a {ndim}-d input; leave at least one feature axis")
    return canonical


def _feature_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for a, n in enumerate(shape) if a not in axes)


def _keepdims(v: jax.Array, shape: tuple[int, ...], axes: tuple[int, ...]) -> jax.Array:
    """A per-feature array reshaped to broadcast against ``x`` (size 1 on the reduction axes)."""
    return v.reshape(tuple(1 if a in axes else n for a, n in enumerate(shape)))


def batch_statistics(x: jax.Array, axes: int | Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """Mean and *biased* variance (divide by N, not N - 1) of ``x`` over ``axes``, kept as broadcastable
    arrays. As in ``nnx.BatchNorm`` the variance is E[x^2] - E[x]^2 in one pass over x, clipped at 0
    against round-off, and computed in at least float32."""
    x = jnp.asarray(x)
    return _batch_statistics(x, _reduction_axes(x.ndim, axes))


STATISTICS_BLOCK_BYTES = 4 << 20  # rows read from memory once, then by both sums from the cache


@functools.cache
def last_level_cache_bytes(sysfs: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The size of this CPU's last-level cache from Linux's sysfs (32 MiB where it cannot be read)."""
    sizes = {}
    for index in Path(sysfs).glob("index*"):
        try:
            level, size = (index / "level").read_text().strip(), (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
        if level.isdigit() and size.rstrip("KM").isdigit():
            sizes[int(level)] = int(size.rstrip("KM")) * scale
    return sizes[max(sizes)] if sizes else 32 << 20


@functools.partial(jax.jit, static_argnums=(1,))  # one compile per shape and axes (eager: one per primitive)
def _batch_statistics(x, axes):
    compute = jnp.promote_types(x.dtype, jnp.float32)
    if _takes_blocks(x, axes):
        total, squares = _blocked_sums(x, len(axes), rows_per_block(x, len(axes), STATISTICS_BLOCK_BYTES), compute)
    else:
        x = x.astype(compute)
        total, squares = jnp.sum(x, axis=axes, keepdims=True), jnp.sum(jnp.square(x), axis=axes, keepdims=True)
    n = x.size // total.size
    mean = total / n
    return mean, jnp.maximum(0.0, squares / n - jnp.square(mean))


def _takes_blocks(x, axes: tuple[int, ...]) -> bool:
    """Whether the statistics are summed by :func:`_blocked_sums`: where the reduced axes lead, the backend is a
    CPU and x (in its own dtype) is larger than the last-level cache. Where x fits, the second reduction reads it
    from the cache anyway, and two reductions, each spread over the cores, beat a scan whose per-block reductions
    are too small to be split (benchmarks/results/cpu.json, rows ``batchnorm_statistics_two_passes_vs_blocked_*``,
    on a 2-core machine with a 32 MiB cache). On an accelerator XLA fuses sibling reductions itself."""
    return axes == tuple(range(len(axes))) and jax.default_backend() == "cpu" and x.nbytes > last_level_cache_bytes()


def rows_per_block(x, leading: int, block_bytes: int) -> int:
    """Rows (one index of the first ``leading`` axes each) in a block of at most ``block_bytes`` of x, at least 1."""
    rows = math.prod(x.shape[:leading])
    return max(1, min(rows, block_bytes // max(1, x.nbytes // max(rows, 1))))


def _blocked_sums(x, leading: int, rows: int, compute=None):
    """(sum x, sum x^2) over the first ``leading`` axes, keepdims, in ``compute`` (x's dtype by default), in one
    pass over memory: a scan over blocks of ``rows`` rows. Each block is read from memory once, copied (XLA:CPU
    does not fuse the scan's slice into two reductions; the copy stays in the cache) and read by both sums from
    the cache; the rows left over after the last whole block are summed on their own. The two plain reductions
    read x from memory twice (S000-20: the statistics pass of the forward). A block is converted to ``compute``
    inside the loop, so a bfloat16 x is never copied whole in float32."""
    compute = x.dtype if compute is None else compute
    features = x.shape[leading:]
    flat = x.reshape(-1, *features)
    blocks = flat.shape[0] // rows

    def sums(b):
        b = b.astype(compute)
        return jnp.sum(b, axis=0), jnp.sum(jnp.square(b), axis=0)

    def block(carry, start):
        return jax.tree.map(jnp.add, carry, sums(lax.dynamic_slice_in_dim(flat, start, rows))), None

    (total, squares), _ = lax.scan(block, sums(flat[blocks * rows :]), jnp.arange(blocks) * rows)
    keep = (1,) * leading + features
    return total.reshape(keep), squares.reshape(keep)


def normalize(x: jax.Array, axes: int | Sequence[int], epsilon: float) -> jax.Array:
    """x_hat = (x - E[x]) / sqrt(Var[x] + epsilon), statistics over ``axes``: the core that BN
    (axes N, H, W), LN (H, W, C), IN (H, W) and GN (H, W and a group of channels) share."""
    if not isinstance(epsilon, jax.core.Tracer) and epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    x = jnp.asarray(x)
    return _normalize(x, _reduction_axes(x.ndim, axes), epsilon)


@functools.partial(jax.jit, static_argnums=(1,))
def _normalize(x, axes, epsilon):
    mean, var = _batch_statistics(x, axes)
    # epsilon goes under the square root, as in nnx.BatchNorm and the BN paper.
    return (x - mean) * jax.lax.rsqrt(var + epsilon)


def _check_batchnorm_args(x: jax.Array, gamma: jax.Array, axes, epsilon: float) -> tuple[int, ...]:
    axes = _reduction_axes(x.ndim, axes)
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    want = _feature_shape(x.shape, axes)
    if jnp.shape(gamma) != want:
        raise ValueError(
            f"gamma has shape {jnp.shape(gamma)}; for x of shape {x.shape} and axes {axes} it must be {want}"
        )
    return axes


def _backward_from_stats(x, mean, inv_std, gamma, dy, axes):
    """The closed form from the forward's statistics, arranged for the fewest passes over memory: one pass
    reads x and dy for the two sums, one reads them again and writes dx (x_hat is never stored)."""
    compute = mean.dtype  # at least float32, as the statistics
    x, dy = x.astype(compute), dy.astype(compute)
    dbeta = jnp.sum(dy, axis=axes, keepdims=True)
    # sum dy x_hat = (sum dy x - mean sum dy) / sigma: each reduction reads nothing but x and dy, so XLA fuses
    # it into one loop over them, where a sum over dy (x - mean) would share x - mean with the dx loop and be
    # stored for both (a write and a read of x's size). It cancels where |mean| >> sigma, less than the
    # forward's E[x^2] - E[x]^2 does (nnx.BatchNorm's variance), so it adds no new loss of accuracy.
    dgamma = (jnp.sum(dy * x, axis=axes, keepdims=True) - mean * dbeta) * inv_std
    dx = _dx_from_sums(x, dy, mean, inv_std, gamma, dbeta, dgamma, axes)
    feature = _feature_shape(x.shape, axes)
    return dx, dgamma.reshape(feature).astype(gamma.dtype), dbeta.reshape(feature).astype(gamma.dtype)


def _dx_from_sums(x, dy, mean, inv_std, gamma, dbeta, dgamma, axes):
    """The backward's second pass: dx = gamma / sigma (dy - sum dy / N - x_hat sum dy x_hat / N), from the two
    sums (keepdims, ``dgamma`` = sum dy x_hat), x_hat recomputed from x in the same loop."""
    n = x.size // mean.size
    g = _keepdims(gamma, x.shape, axes).astype(mean.dtype) * inv_std
    return g * (dy - dbeta / n) - (g * inv_std * dgamma / n) * (x - mean)


def batchnorm_backward(
    x: jax.Array, gamma: jax.Array, dy: jax.Array, eps: float, axes: int | Sequence[int]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The closed-form BatchNorm backward (S000-20, S001-09) in training mode, statistics over ``axes``:

    dbeta = sum dy, dgamma = sum dy x_hat, dx = gamma / (N sigma) (N dy - sum dy - x_hat sum dy x_hat),

    with sigma = sqrt(Var[x] + eps) (biased variance) and N the number of elements reduced per feature.
    ``gamma`` has the shape of the non-reduced axes; returns ``(dx, dgamma, dbeta)``.
    """
    axes = _check_batchnorm_args(x, gamma, axes, eps)
    if jnp.shape(dy) != x.shape:
        raise ValueError(f"dy has shape {jnp.shape(dy)}; it must match x's shape {x.shape}")
    return _batchnorm_backward(x, gamma, dy, float(eps), axes)


@functools.partial(jax.jit, static_argnums=(4,))  # eps traced: one compile per shape serves every epsilon
def _batchnorm_backward(x, gamma, dy, eps, axes):
    mean, var = _batch_statistics(x, axes)
    dx, dgamma, dbeta = _backward_from_stats(x, mean, jax.lax.rsqrt(var + eps), gamma, dy, axes)
    return dx.astype(x.dtype), dgamma, dbeta


def batchnorm(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float, axes: int | Sequence[int]) -> jax.Array:
    """Training-mode BatchNorm, y = gamma x_hat + beta with batch statistics over ``axes``, whose
    gradient is the closed form ``batchnorm_backward`` (a ``jax.custom_vjp``) instead of autodiff's
    trace of the forward pass."""
    axes = _check_batchnorm_args(x, gamma, axes, eps)
    if jnp.shape(beta) != jnp.shape(gamma):
        raise ValueError(f"beta has shape {jnp.shape(beta)}; it must match gamma's shape {jnp.shape(gamma)}")
    return _batchnorm(x, gamma, beta, float(eps), axes)[0]


def _batchnorm_forward(x, gamma, beta, eps, axes):
    mean, var = _batch_statistics(x, axes)
    inv_std = jax.lax.rsqrt(var + eps)
    # (x - mean) * (inv_std * gamma) + beta in the statistics' dtype, as nnx.BatchNorm computes it.
    y = (x - mean) * (inv_std * _keepdims(gamma, x.shape, axes)) + _keepdims(beta, x.shape, axes)
    return (y.astype(jnp.result_type(x, gamma)), mean, var), (x, mean, inv_std, gamma)


def _batchnorm_fwd(x, gamma, beta, eps, axes):
    # symbolic_zeros=True: the primals arrive as CustomVJPPrimal records (value, perturbed).
    return _batchnorm_forward(x.value, gamma.value, beta.value, eps, axes)


def _batchnorm_bwd(eps, axes, residuals, cotangents):
    x, mean, inv_std, gamma = residuals
    dy, dmean, dvar = cotangents
    if isinstance(dy, SymbolicZero):
        dy = jnp.zeros(x.shape, jnp.result_type(x, gamma))
    dx, dgamma, dbeta = _backward_from_stats(x, mean, inv_std, gamma, dy, axes)
    # The statistics are outputs too (for the running averages). In training their cotangents are symbolic
    # zeros (the averages sit behind stop_gradient) and cost nothing; otherwise they are added exactly:
    # d mean / dx = 1/N, d var / dx = 2 (x - mean) / N.
    n = x.size // mean.size
    if not isinstance(dmean, SymbolicZero):
        dx = dx + dmean / n
    if not isinstance(dvar, SymbolicZero):
        dx = dx + 2 * dvar * (x.astype(mean.dtype) - mean) / n
    return dx.astype(x.dtype), dgamma, dbeta


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batchnorm_vjp(x, gamma, beta, eps, axes):
    return _batchnorm_forward(x, gamma, beta, eps, axes)[0]


_batchnorm_vjp.defvjp(_batchnorm_fwd, _batchnorm_bwd, symbolic_zeros=True)
# (y, batch mean, batch variance), the statistics with size-1 reduction axes: the module needs them for
# its running averages, so they leave the same pass instead of being computed a second time.
_batchnorm = jax.jit(_batchnorm_vjp, static_argnums=(3, 4))


_ZEROS, _ONES = initializers.zeros_init(), initializers.ones_init()  # nnx.BatchNorm's defaults


class BatchNorm(nnx.Module):
    """BatchNorm whose training-mode gradient is the closed form; a drop-in for ``nnx.BatchNorm``.

    Same constructor arguments, the same state (``scale``, ``bias`` as ``nnx.Param``; ``mean``, ``var``
    as ``nnx.BatchStat``), the same switch (``use_running_average``, set by ``.eval()``/``.train()`` and
    ``nnx.view``) and the same running averages: ``stat <- momentum * stat + (1 - momentum) * batch_stat``
    with the biased batch variance. One difference: the running statistics are kept in
    ``promote_types(param_dtype, float32)`` (nnx.BatchNorm always uses float32), so float64 models keep
    float64 statistics. ``axis_name`` (pmap) and ``mask`` are not supported.
    """

    def __init__(
        self,
        num_features: int,
        *,
        use_running_average: bool | None = False,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-5,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Any = _ZEROS,
        scale_init: Any = _ONES,
        rngs: rnglib.Rngs,
        bias_metadata: Any = MappingProxyType({}),
        scale_metadata: Any = MappingProxyType({}),
    ):
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        shape = (num_features,)
        stat_dtype = jnp.promote_types(param_dtype, jnp.float32)
        self.mean = nnx.BatchStat(jnp.zeros(shape, stat_dtype))
        self.var = nnx.BatchStat(jnp.ones(shape, stat_dtype))
        self.scale = nnx.data(None)
        self.bias = nnx.data(None)
        if use_scale:
            self.scale = nnx.Param(scale_init(rngs.params(), shape, param_dtype), **scale_metadata)
        if use_bias:
            self.bias = nnx.Param(bias_init(rngs.params(), shape, param_dtype), **bias_metadata)
        self.num_features = num_features
        self.use_running_average = use_running_average
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype

    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        use_running_average = nnx.module.first_from(
            use_running_average, self.use_running_average,
            error_msg="BatchNorm needs use_running_average (constructor, call, .eval()/.train() or nnx.view)",
        )  # fmt: skip
        feature_axis = self.axis % x.ndim
        if x.shape[feature_axis] != self.num_features:
            raise ValueError(
                f"input has {x.shape[feature_axis]} features on axis {self.axis}, expected {self.num_features}"
            )
        axes = tuple(a for a in range(x.ndim) if a != feature_axis)
        ones = jnp.ones(self.num_features, self.param_dtype)
        scale = self.scale[...] if self.scale is not None else ones
        bias = self.bias[...] if self.bias is not None else jnp.zeros_like(ones)
        x, mean, var, scale, bias = dtypes.promote_dtype(
            (x, self.mean[...], self.var[...], scale, bias), dtype=self.dtype
        )
        if use_running_average:
            shape = x.shape
            inv_std = jax.lax.rsqrt(_keepdims(var, shape, axes) + self.epsilon)
            return (x - _keepdims(mean, shape, axes)) * (inv_std * _keepdims(scale, shape, axes)) + _keepdims(
                bias, shape, axes
            )
        _check_batchnorm_args(x, scale, axes, self.epsilon)
        y, batch_mean, batch_var = _batchnorm(x, scale, bias, float(self.epsilon), axes)
        # The running averages see the batch statistics of the same pass, but no gradient flows into them.
        batch_mean, batch_var = jax.lax.stop_gradient(batch_mean), jax.lax.stop_gradient(batch_var)
        m = self.momentum
        self.mean[...] = m * self.mean[...] + (1 - m) * batch_mean.reshape(-1).astype(self.mean[...].dtype)
        self.var[...] = m * self.var[...] + (1 - m) * batch_var.reshape(-1).astype(self.var[...].dtype)
        return y

    def set_view(self, use_running_average: bool | None = None):
        """Used by ``nnx.view``, as in ``nnx.BatchNorm``."""
        if use_running_average is not None:
            self.use_running_average = use_running_average


def clear_statistics_caches() -> None:
    """Drop the compiled programs of this module's jitted functions, e.g. after changing
    ``STATISTICS_BLOCK_BYTES`` (a module constant, not part of their cache key)."""
    for f in (_batch_statistics, _normalize, _batchnorm_backward, _batchnorm):
        f.clear_cache()
