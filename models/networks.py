"""Whole classic networks as Flax NNX modules (NHWC), built from ``models.blocks``: AlexNet and VGG-16 in
torchvision's layouts, ResNet-18 and ResNet-50 (torchvision's v1.5: the stride in the bottleneck's 3x3),
MobileNet v1 and GoogLeNet (Inception v1, the paper's layout).

Each network is ``features`` (the layers up to the last spatial feature map, an ``nnx.List`` of layers and
blocks run in order) followed by ``head`` (global or adaptive pooling, flattening, the classifier). The
layers are modules, pooling included, so that a summary can walk the network in order and read each
layer's geometry from the module itself. Padding is written out per side, as torchvision pads (one pixel
for a 3x3, three for a 7x7, none for the pools of AlexNet and VGG), never XLA's "SAME", which pads a
strided layer on one side only.

``width`` scales every channel count (at least one channel): the spatial structure, and so every receptive
field, is the same at any width, which lets a receptive field be measured on a narrow copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
from flax import nnx

from models.blocks import BasicBlock, Bottleneck, DepthwiseSeparable, InceptionModule, VGGStack
from models.normalization import BatchNorm

# --- parameter-free layers as modules (the summary reads their geometry) ------------------------------------


class MaxPool(nnx.Module):
    """``window x window`` max pool at ``stride``, ``padding`` on each side (padded with -inf)."""

    def __init__(self, window: int, stride: int, padding: int = 0):
        self.window, self.stride, self.padding = window, stride, padding

    def __call__(self, x: jax.Array) -> jax.Array:
        pads = ((self.padding, self.padding),) * 2
        return nnx.max_pool(x, (self.window,) * 2, strides=(self.stride,) * 2, padding=pads)


class AvgPool(nnx.Module):
    """``window x window`` average pool at ``stride``, no padding (GoogLeNet's 7x7 pool before the classifier)."""

    def __init__(self, window: int, stride: int):
        self.window, self.stride = window, stride

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.avg_pool(x, (self.window,) * 2, strides=(self.stride,) * 2)


class GlobalAvgPool(nnx.Module):
    """The mean over H and W: one value per channel, which sees the whole image."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.mean(x, axis=(1, 2))


class AdaptiveAvgPool(nnx.Module):
    """torchvision's ``AdaptiveAvgPool2d(size)`` for maps whose side is a multiple of ``size``: average pool with
    window and stride ``side / size`` (at 224x224 input AlexNet's and VGG's maps already have that size, and it
    is the identity)."""

    def __init__(self, size: int):
        self.size = size

    def factor(self, side: int) -> int:
        if side % self.size:
            raise ValueError(f"AdaptiveAvgPool({self.size}): the map side {side} must be a multiple of {self.size}")
        return side // self.size

    def __call__(self, x: jax.Array) -> jax.Array:
        f = self.factor(x.shape[1])
        return x if f == 1 else nnx.avg_pool(x, (f, f), strides=(f, f))


class Flatten(nnx.Module):
    """Row-major flattening of H, W, C (the dense layer after it sees the whole map)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)


class ReLU(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(x)


class ConvBNReLU(nnx.Module):
    """A convolution without bias, BatchNorm, ReLU (the stems of ResNet and MobileNet)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, padding: int = 0, rngs: nnx.Rngs,
                 dtype=jnp.float32):  # fmt: skip
        self.conv = nnx.Conv(c_in, c_out, (kernel, kernel), strides=stride, padding=padding, use_bias=False,
                             rngs=rngs, param_dtype=dtype)  # fmt: skip
        self.bn = BatchNorm(c_out, rngs=rngs, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.bn(self.conv(x)))


class Network(nnx.Module):
    """``features`` then ``head``, each an ``nnx.List`` of modules applied in order."""

    features: nnx.List
    head: nnx.List

    def feature_map(self, x: jax.Array) -> jax.Array:
        """The last spatial feature map (before global pooling and the classifier)."""
        for layer in self.features:
            x = layer(x)
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.feature_map(x)
        for layer in self.head:
            x = layer(x)
        return x


class Features(Network):
    """Given layers as ``features`` and no head: a network cut after an inner layer (its last map is that
    layer's), for measuring an inner receptive field on a smaller program."""

    def __init__(self, layers: list[nnx.Module]):
        self.features = nnx.List(layers)
        self.head = nnx.List([])


def _scale(width: float) -> Callable[[int], int]:
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return lambda c: max(1, round(c * width))


def _dense(c_in, c_out, rngs, dtype):
    return nnx.Linear(c_in, c_out, rngs=rngs, param_dtype=dtype)


def _conv(c_in, c_out, kernel, rngs, dtype, *, stride=1, padding=0):
    return nnx.Conv(c_in, c_out, (kernel, kernel), strides=stride, padding=padding, rngs=rngs, param_dtype=dtype)


# --- the networks -----------------------------------------------------------------------------------------------


class AlexNet(Network):
    """torchvision's AlexNet (Krizhevsky's "one weird trick" variant: 64-192-384-256-256 channels, no LRN):
    five convolutions with bias and ReLU, three 3x3/2 max pools, a 6x6 adaptive average pool and three dense
    layers (dropout, which has no parameters and is the identity in evaluation, left out)."""

    def __init__(self, *, classes: int = 1000, width: float = 1.0, rngs: nnx.Rngs, dtype=jnp.float32):
        c = _scale(width)
        convs = [(3, c(64), 11, 4, 2), (c(64), c(192), 5, 1, 2), (c(192), c(384), 3, 1, 1),
                 (c(384), c(256), 3, 1, 1), (c(256), c(256), 3, 1, 1)]  # fmt: skip
        layers = []
        for i, (ci, co, k, s, p) in enumerate(convs):
            layers += [_conv(ci, co, k, rngs, dtype, stride=s, padding=p), ReLU()]
            if i in (0, 1, 4):
                layers.append(MaxPool(3, 2))
        self.features = nnx.List(layers)
        self.head = nnx.List([AdaptiveAvgPool(6), Flatten(), _dense(c(256) * 36, c(4096), rngs, dtype), ReLU(),
                              _dense(c(4096), c(4096), rngs, dtype), ReLU(), _dense(c(4096), classes, rngs, dtype)])


class VGG16(Network):
    """VGG-16 without BatchNorm (configuration D): five ``VGGStack`` blocks of 2, 2, 3, 3, 3 3x3 convolutions,
    each ending in a 2x2/2 max pool, a 7x7 adaptive average pool and three dense layers."""

    def __init__(self, *, classes: int = 1000, width: float = 1.0, rngs: nnx.Rngs, dtype=jnp.float32):
        c = _scale(width)
        stages = [(3, c(64), 2), (c(64), c(128), 2), (c(128), c(256), 3), (c(256), c(512), 3), (c(512), c(512), 3)]
        self.features = nnx.List([VGGStack(ci, co, convs=n, rngs=rngs, dtype=dtype) for ci, co, n in stages])
        self.head = nnx.List([AdaptiveAvgPool(7), Flatten(), _dense(c(512) * 49, c(4096), rngs, dtype), ReLU(),
                              _dense(c(4096), c(4096), rngs, dtype), ReLU(), _dense(c(4096), classes, rngs, dtype)])


def _resnet(self, block, depths, *, bottleneck, classes, width, rngs, dtype):
    c = _scale(width)
    layers = [ConvBNReLU(3, c(64), 7, stride=2, padding=3, rngs=rngs, dtype=dtype), MaxPool(3, 2, 1)]
    c_in = c(64)
    for stage, depth in enumerate(depths):
        mid = c(64 * 2**stage)
        c_out = mid * 4 if bottleneck else mid
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            if bottleneck:
                layers.append(block(c_in, mid, c_out, stride=stride, padding=1, rngs=rngs, dtype=dtype))
            else:
                layers.append(block(c_in, c_out, stride=stride, padding=1, rngs=rngs, dtype=dtype))
            c_in = c_out
    self.features = nnx.List(layers)
    self.head = nnx.List([GlobalAvgPool(), _dense(c_in, classes, rngs, dtype)])


class ResNet18(Network):
    """ResNet-18: 7x7/2 stem with BN and ReLU, 3x3/2 max pool (padding 1), four stages of two ``BasicBlock``s
    (64, 128, 256, 512 channels; the first block of stages 2-4 has stride 2 and a projection shortcut), global
    average pool, one dense layer."""

    def __init__(self, *, classes: int = 1000, width: float = 1.0, rngs: nnx.Rngs, dtype=jnp.float32):
        _resnet(self, BasicBlock, (2, 2, 2, 2), bottleneck=False, classes=classes, width=width, rngs=rngs,
                dtype=dtype)  # fmt: skip


class ResNet50(Network):
    """ResNet-50 v1.5 (torchvision's): the ResNet-18 stem, stages of 3, 4, 6, 3 ``Bottleneck``s (1x1 reduce to
    64-512, 3x3 carrying the stride, 1x1 expand to 4x), global average pool, one dense layer."""

    def __init__(self, *, classes: int = 1000, width: float = 1.0, rngs: nnx.Rngs, dtype=jnp.float32):
        _resnet(self, Bottleneck, (3, 4, 6, 3), bottleneck=True, classes=classes, width=width, rngs=rngs,
                dtype=dtype)  # fmt: skip


MOBILENET_V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


class MobileNetV1(Network):
    """MobileNet v1 (Howard et al. 2017, Table 1): a 3x3/2 convolution to 32 channels with BN and ReLU, 13
    ``DepthwiseSeparable`` blocks (the stride in the depthwise 3x3, padding 1 on each side), global average
    pool, one dense layer. ``width`` is the paper's width multiplier alpha. The depthwise step runs as XLA's
    grouped convolution (``fast=False``), whose multiply-accumulates XLA counts."""

    def __init__(self, *, classes: int = 1000, width: float = 1.0, fast: bool = False, rngs: nnx.Rngs,
                 dtype=jnp.float32):  # fmt: skip
        c = _scale(width)
        layers = [ConvBNReLU(3, c(32), 3, stride=2, padding=1, rngs=rngs, dtype=dtype)]
        c_in = c(32)
        for c_out, stride in MOBILENET_V1:
            layers.append(DepthwiseSeparable(c_in, c(c_out), stride=stride, fast=fast, rngs=rngs, dtype=dtype))
            c_in = c(c_out)
        self.features = nnx.List(layers)
        self.head = nnx.List([GlobalAvgPool(), _dense(c_in, classes, rngs, dtype)])


# (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) of GoogLeNet's Inception modules, Szegedy et al. 2015, Table 1.
GOOGLENET = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}  # fmt: skip


class GoogLeNet(Network):
    """GoogLeNet (Inception v1) as the paper lays it out: 7x7/2 conv, 3x3/2 max pool, 1x1 and 3x3 convs (with
    bias and ReLU; the paper's LRNs, which have no parameters, left out), 3x3/2 max pool, Inception 3a-3b, max
    pool, 4a-4e, max pool, 5a-5b (``InceptionModule``: 1x1 | 1x1-3x3 | 1x1-5x5 | 3x3 pool-1x1), 7x7 average
    pool and one dense layer; no auxiliary classifiers (they are dropped at inference). The max pools pad one
    pixel on each side, which gives the paper's map sizes (112, 56, 28, 14, 7). The paper's 7x7/1 average pool
    is written as a global average pool (torchvision's ``AdaptiveAvgPool2d((1, 1))``): the same layer at 224,
    and the network then takes any input size, as ResNet does."""

    def __init__(self, *, classes: int = 1000, width: float = 1.0, rngs: nnx.Rngs, dtype=jnp.float32):
        c = _scale(width)
        layers = [_conv(3, c(64), 7, rngs, dtype, stride=2, padding=3), ReLU(), MaxPool(3, 2, 1),
                  _conv(c(64), c(64), 1, rngs, dtype), ReLU(), _conv(c(64), c(192), 3, rngs, dtype, padding=1),
                  ReLU(), MaxPool(3, 2, 1)]  # fmt: skip
        c_in = c(192)
        for name, sizes in GOOGLENET.items():
            if name in ("4a", "5a"):
                layers.append(MaxPool(3, 2, 1))
            c1, c3r, c3, c5r, c5, pp = (c(v) for v in sizes)
            layers.append(InceptionModule(c_in, c1=c1, c3_reduce=c3r, c3=c3, c5_reduce=c5r, c5=c5, pool_proj=pp,
                                          rngs=rngs, dtype=dtype))  # fmt: skip
            c_in = c1 + c3 + c5 + pp
        self.features = nnx.List(layers)
        self.head = nnx.List([GlobalAvgPool(), _dense(c_in, classes, rngs, dtype)])


NETWORKS: dict[str, type[Network]] = {
    "alexnet": AlexNet, "vgg16": VGG16, "resnet18": ResNet18, "resnet50": ResNet50, "mobilenet_v1": MobileNetV1,
    "googlenet": GoogLeNet,
}  # fmt: skip


class KeySource(Protocol):
    """What the networks' layers draw their initial weights from: ``nnx.Rngs``, or any object whose
    ``params()`` returns a key (every layer here, Flax's and the blocks', calls only ``rngs.params()``)."""

    def params(self) -> jax.Array: ...


def build(name: str, *, width: float = 1.0, classes: int = 1000, rngs: nnx.Rngs | KeySource | None = None,
          dtype=jnp.float32) -> Network:  # fmt: skip
    """The network ``name`` (one of ``NETWORKS``) with Flax's initial weights drawn from ``rngs``."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; valid networks: {', '.join(NETWORKS)}")
    return NETWORKS[name](classes=classes, width=width, rngs=rngs or nnx.Rngs(params=0), dtype=dtype)
