"""Claims found while annotating note 000: what weight sharing is (one kernel applied at every position),
told apart from 'the pixels of a receptive field share one output value', which an unshared locally
connected layer has too."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from derivations.claims import Evidence, claim, core, evidence
from derivations.harness import support_extent
from models.conv import conv2d


def conv1d_valid(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """y[t] = sum_j kernel[j] x[t + j]: one kernel at every position (weight sharing)."""
    k = kernel.shape[0]
    windows = jnp.arange(x.shape[0] - k + 1)[:, None] + jnp.arange(k)[None, :]
    return x[windows] @ kernel


def locally_connected_valid(x: jax.Array, kernels: jax.Array) -> jax.Array:
    """y[t] = sum_j kernels[t, j] x[t + j]: the same windows, a different kernel at each position (no sharing)."""
    k = kernels.shape[1]
    windows = jnp.arange(kernels.shape[0])[:, None] + jnp.arange(k)[None, :]
    return jnp.sum(x[windows] * kernels, axis=1)


def window_property(jacobian: np.ndarray, k: int) -> bool:
    """Each output depends on exactly a window of k consecutive inputs (its receptive field)."""
    return all(list(np.flatnonzero(row)) == list(range(t, t + k)) for t, row in enumerate(jacobian))


def shares_weights(jacobian: np.ndarray, k: int) -> bool:
    """Every output applies the same k weights to its window (the Jacobian's rows are shifts of one row)."""
    taps = np.array([row[t:t + k] for t, row in enumerate(jacobian)])
    return bool(np.all(taps == taps[0]))


@claim(
    "conv_arithmetic/weight-sharing-is-a-receptive-field-sharing-one-output",
    sources=["S000-29"],
    says="When the kernel is not sliding, each value of the feature map corresponds to a receptive field, and the "
    "pixel values of that range are that value's responsibility; conversely, the pixel values of this receptive "
    "field share one value of the feature map, and that is weight sharing (在卷积核不发生滑动计算的时候，feature map中"
    "的每一个权值对应一个感受野范围，该范围中的像素值由这个特征值负责，反过来说，就是这个感受野中的像素值共享了一个"
    "feature map上的value，也就是权重共享).",
    expected="refuted",
    correction="That the pixels of a receptive field all feed one output is local connectivity (every layer has "
    "it in some form); it does not share any weight: a locally connected layer, with a different kernel at each "
    "position, has exactly that property and no weight sharing. Weight sharing is the note's next sentence: one "
    "kernel's weights are applied at every position (the Jacobian's rows are shifts of one row), which divides "
    "the weights by the number of positions and makes the layer translation equivariant.",
    scope={"length": 16, "kernel": 3, "inputs": "x ~ N(0, 1); layers without bias"},
    aliases=["conv_arithmetic/weight-sharing-is-one-kernel-at-every-position"],
)
def _weight_sharing(scope) -> Evidence:
    n, k = scope["length"], scope["kernel"]

    @jax.jit
    def jacobians():
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (n,), jnp.float64)
        kernel = jax.random.normal(keys[1], (k,), jnp.float64)
        kernels = jax.random.normal(keys[2], (n - k + 1, k), jnp.float64)
        return (jax.jacfwd(lambda v: conv1d_valid(v, kernel))(x),
                jax.jacfwd(lambda v: locally_connected_valid(v, kernels))(x), kernels.size)

    j_conv, j_local, local_weights = (np.asarray(v) for v in jacobians())
    return evidence(
        "autodiff",
        core("in the convolution each output depends on exactly its k-input window (the note's receptive field)",
             window_property(j_conv, k)),
        core("the convolution applies one kernel at every position (weight sharing, the note's next sentence)",
             shares_weights(j_conv, k), weights=k),
        core("the note's property identifies weight sharing: the locally connected layer, whose receptive-field "
             "pixels also share one output value, shares its weights",
             window_property(j_local, k) and shares_weights(j_local, k),
             local_has_the_property=window_property(j_local, k), local_weights=int(local_weights)),
    )


def dilated_field_and_weights(rate: int, size: int, kernel: int = 3) -> tuple[tuple[int, int], int, int]:
    """The measured receptive field (gradient support) of one k x k conv at dilation ``rate``, its number of
    weights, and the weights of the dense kernel with the same span."""
    field = support_extent(np.asarray(_centre_support(rate, size, kernel)))
    return field, kernel * kernel, field[0] * field[1]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _centre_support(rate: int, size: int, kernel: int) -> jax.Array:
    """``gradient_support`` of the centre output of a k x k all-ones 'SAME' conv at dilation ``rate``, jitted."""
    weights = jnp.ones((kernel, kernel, 1, 1), jnp.float64)
    x = jnp.ones((1, size, size, 1))
    grad = jax.grad(lambda v: conv2d(v, weights, padding="SAME", dilation=rate)[0, size // 2, size // 2, 0])(x)
    return jnp.abs(grad[0, :, :, 0])


@claim(
    "conv_arithmetic/dilated-kernel-sees-further-with-the-same-weights",
    sources=["S000-01"],
    says="Methods against overfitting, from the data flow through the network: in the convolution, use dilated "
    "convolution (从网络数据流传输流程来看：卷积操作：使用空洞卷积). This claim tests a gloss, the mechanism: "
    "a dilated kernel covers a large receptive field with the weights of a small one (fewer weights, less to overfit, "
    "than a dense kernel of the same span); that it overfits less in training is not measured here.",
    expected="holds",
    scope={"rates": [1, 2, 3, 4], "kernel": 3, "input": 21},
)
def _dilated_weights(scope) -> Evidence:
    rows = {r: dilated_field_and_weights(r, scope["input"], scope["kernel"]) for r in scope["rates"]}
    k = scope["kernel"]
    return evidence(
        "autodiff",
        core("the measured receptive field of a k x k kernel at rate d is d(k - 1) + 1 on each side",
             all(field == (r * (k - 1) + 1,) * 2 for r, (field, _, _) in rows.items()),
             fields=str({r: f"{f[0]}x{f[1]}" for r, (f, _, _) in rows.items()})),
        core("its weights stay k^2 at every rate, while a dense kernel of the same span needs (d(k - 1) + 1)^2",
             all(w == k * k and dense == (r * (k - 1) + 1) ** 2 for r, (_, w, dense) in rows.items()),
             dense_weights=str({r: dense for r, (_, _, dense) in rows.items()})),
    )
