"""Claims found while annotating note 004: a 1x1 convolution is a linear map per pixel, not a normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence
from derivations.compare import compare
from models.conv import conv2d


def layer_norm_channels(x: jax.Array, epsilon: float = 0.0) -> jax.Array:
    """Normalise each pixel's channel vector to mean 0 and variance 1 (a normalisation over the features)."""
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + epsilon)


@claim(
    "architectures/1x1-conv-is-linear-not-a-normalisation",
    sources=["S004-21"],
    says="The 1x1 convolution normalises the different features (对不同特征进行归一化操作).",
    expected="refuted",
    correction="A 1x1 convolution is a dense layer applied at every pixel, y = W x + b: a linear (affine) map of "
    "the channels. It does not normalise anything: scaling the input scales its output by the same factor and "
    "its outputs keep whatever mean and spread the weights give them. Normalisation is a separate layer (BN, LN); "
    "what the 1x1 conv does is mix (fuse) the channels and change their number.",
    scope={"scales": [0.01, 1.0, 100.0], "channels": [3, 8], "pixels": 5},
)
def _one_by_one(scope, rtol) -> Evidence:
    rng = np.random.default_rng(3)
    scaled, expected, invariant, moments = [], [], [], []
    for c in scope["channels"]:
        x = jnp.asarray(rng.normal(size=(1, scope["pixels"], scope["pixels"], c)) * 2 + 1)
        w = jnp.asarray(rng.normal(size=(1, 1, c, 2 * c)))
        base, normed = conv2d(x, w), layer_norm_channels(x)
        for a in scope["scales"]:
            scaled.append(np.asarray(conv2d(a * x, w)).ravel() / (a * float(jnp.abs(base).max())))
            expected.append(np.asarray(base).ravel() / float(jnp.abs(base).max()))
            invariant.append(float(jnp.max(jnp.abs(conv2d(a * x, w) - base))) == 0.0)
            moments.append(float(jnp.max(jnp.abs(layer_norm_channels(a * x) - normed))))
    return evidence(
        "measurement",
        compared(f"the 1x1 conv is linear: conv(a x) = a conv(x) for a in {scope['scales']} and C in "
                 f"{scope['channels']} (compared relative to the largest output)",
                 compare(lambda: np.concatenate(scaled), lambda: np.concatenate(expected), [], rtol=rtol,
                         atol=rtol)),
        core("the 1x1 conv normalises its features: like a normalisation (the channel LayerNorm here, unchanged "
             "up to rounding under rescaling), its output does not change when the input is rescaled",
             all(invariant), normalisation_change=max(moments)),
    )
