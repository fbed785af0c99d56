"""Claims found while annotating note 004: a 1x1 convolution is a linear map per pixel, not a normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from models.conv import conv2d


def layer_norm_channels(x: jax.Array, epsilon: float = 0.0) -> jax.Array:
    """Normalise each pixel's channel vector to mean 0 and variance 1 (a normalisation over the features)."""
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + epsilon)


@claim(
    "architectures/1x1-conv-normalises-the-features",
    sources=["S004-21"],
    says="The 1x1 convolution normalises the different features (对不同特征进行归一化操作).",
    expected="refuted",
    correction="A 1x1 convolution is a dense layer applied at every pixel, y = W x + b: a fixed affine map of the "
    "channels. It can apply a fixed affine normalisation, one fitted beforehand: BatchNorm in evaluation mode is "
    "exactly a 1x1 conv with a diagonal W and a bias (BN folding). What it cannot do is normalise, i.e. "
    "standardise by statistics of its own input as LayerNorm, or BatchNorm in training, does: without the bias "
    "its output scales with the input, and with it the output keeps whatever mean and spread the weights give "
    "it. Normalisation is a separate layer; what the 1x1 conv does is mix (fuse) the channels and change their "
    "number.",
    scope={"scales": [0.01, 1.0, 100.0], "channels": [3, 8], "pixels": 5},
    aliases=["architectures/1x1-conv-is-linear-not-a-normalisation"],
)
def _one_by_one(scope, rtol) -> Evidence:
    rng = np.random.default_rng(3)
    scaled, expected, invariant, moments, cases = [], [], [], [], []
    for c in scope["channels"]:
        x = rng.normal(size=(1, scope["pixels"], scope["pixels"], c)) * 2 + 1
        cases.append((x, rng.normal(size=(1, 1, c, 2 * c))))

    @jax.jit
    def outputs(cs):  # every width and scale in one program
        return [(conv2d(x, w), layer_norm_channels(x), [(conv2d(a * x, w), layer_norm_channels(a * x))
                                                        for a in scope["scales"]]) for x, w in cs]

    for base, normed, rescaled in outputs(cases):
        base, normed = np.asarray(base), np.asarray(normed)
        for a, (conv_a, normed_a) in zip(scope["scales"], rescaled, strict=True):
            conv_a = np.asarray(conv_a)
            scaled.append(conv_a.ravel() / (a * float(np.abs(base).max())))
            expected.append(base.ravel() / float(np.abs(base).max()))
            invariant.append(float(np.max(np.abs(conv_a - base))) == 0.0)
            moments.append(float(np.max(np.abs(np.asarray(normed_a) - normed))))
    folded = _folded_batchnorm_gap(cases[0][0])
    return evidence(
        "measurement",
        compared(f"the 1x1 conv is linear: conv(a x) = a conv(x) for a in {scope['scales']} and C in "
                 f"{scope['channels']} (compared relative to the largest output)",
                 compare(lambda: np.concatenate(scaled), lambda: np.concatenate(expected), [], rtol=rtol,
                         atol=rtol)),
        core("the 1x1 conv normalises its features: like a normalisation by its input's statistics (the channel "
             "LayerNorm here, unchanged up to rounding under rescaling), its output does not change when the input "
             "is rescaled", all(invariant), normalisation_change=max(moments)),
        scoped("read as a fixed affine normalisation it can: BatchNorm in evaluation mode equals a 1x1 conv with a "
               "diagonal W and a bias", folded <= rtol, max_rel_err=folded),
    )


def _folded_batchnorm_gap(x: np.ndarray) -> float:
    """Relative gap between eval-mode BatchNorm (random running statistics, gamma, beta) and the 1x1 conv with
    W = diag(gamma / sqrt(var + eps)) and b = beta - gamma mean / sqrt(var + eps)."""
    rng = np.random.default_rng(8)
    c = x.shape[-1]
    mean, var, gamma, beta = rng.normal(size=c), rng.uniform(0.5, 2, c), rng.normal(size=c), rng.normal(size=c)
    eps = 1e-5
    bn = gamma * (x - mean) / np.sqrt(var + eps) + beta
    scale = gamma / np.sqrt(var + eps)
    folded = np.asarray(conv2d(jnp.asarray(x), jnp.asarray(np.diag(scale)[None, None]))) + (beta - mean * scale)
    return float(np.max(np.abs(folded - bn)) / np.max(np.abs(bn)))


@claim(
    "architectures/a-1x1-conv-replaces-only-a-dense-layer-on-a-1x1-map",
    sources=["S004-21"],
    says="A 1x1 convolution can replace the fully connected layer, and does not restrict the size of the "
    "network's input (1x1卷积可以替代全连接层，且不会限制网络输入的大小).",
    expected="qualified",
    correction="A dense layer on a 1x1 map (after global pooling, or a classifier's second and third dense layers) is "
    "a 1x1 convolution, and a network made of convolutions then takes inputs of any size (a larger one gives a "
    "map of outputs). The first dense layer after the last feature map is not: on a 7x7x512 map it is a 7x7 "
    "convolution (architectures/fc-on-7x7x512-is-a-7x7-conv-that-slides), since each of its outputs depends on "
    "every position, while a 1x1 convolution's output at a position depends on that position alone.",
    scope={"channels_in": 8, "channels_out": 16, "map": 7, "larger_input": 9},
)
def _one_by_one_replaces_dense(scope, rtol) -> Evidence:
    rng = np.random.default_rng(4)
    c_in, c_out, side = scope["channels_in"], scope["channels_out"], scope["map"]
    w = rng.normal(size=(c_in, c_out)) / np.sqrt(c_in)
    pooled = rng.normal(size=(2, 1, 1, c_in))
    as_dense, as_conv = pooled.reshape(2, c_in) @ w, np.asarray(conv2d(jnp.asarray(pooled), jnp.asarray(w[None, None])))
    # On a 7 x 7 map: which input positions does output channel 0 depend on (the support of jax.grad)?
    fmap = jnp.asarray(rng.normal(size=(1, side, side, c_in)))
    w_first = jnp.asarray(rng.normal(size=(side * side * c_in, c_out)))
    dense_support = np.asarray(jnp.any(jax.grad(lambda v: (v.reshape(1, -1) @ w_first)[0, 0])(fmap) != 0, -1))[0]
    centre = side // 2
    conv_support = np.asarray(jnp.any(jax.grad(lambda v: conv2d(v, jnp.asarray(w[None, None]))[0, centre, centre, 0])(
        fmap) != 0, -1))[0]
    larger = conv2d(jnp.asarray(rng.normal(size=(1, scope["larger_input"], scope["larger_input"], c_in))),
                    jnp.asarray(w[None, None]))
    return evidence(
        "autodiff",
        compared("on a 1x1 map (after global pooling), the dense layer equals the 1x1 convolution with its weights",
                 compare(lambda: as_conv.reshape(2, c_out), lambda: as_dense, [], rtol=rtol)),
        core(f"a stack of convolutions takes a larger input: the 1x1 conv on a {scope['larger_input']} x "
             f"{scope['larger_input']} map gives a {scope['larger_input']} x {scope['larger_input']} map of outputs",
             larger.shape[1:3] == (scope["larger_input"], scope["larger_input"])),
        scoped(f"a 1x1 conv replaces the first dense layer too: on a {side} x {side} map, the dense layer's output "
               f"depends on every position ({int(dense_support.sum())} of {side * side}), a 1x1 conv's output at a "
               f"position on that position alone ({int(conv_support.sum())})",
               int(dense_support.sum()) == int(conv_support.sum())),
    )
