"""Claims found while annotating note 002 (architectures chapter): a dense network is blind to how the pixels
are arranged (so it ignores the planar structure) while a convolution is not; and what shapes Addition and
Concatenate need."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence
from derivations.compare import compare
from models.conv import conv2d


@functools.partial(jax.jit, static_argnames=("lr", "steps"))
def _mlp_losses(x: jax.Array, y: jax.Array, w1: jax.Array, w2: jax.Array, lr: float, steps: int) -> jax.Array:
    """The squared-error losses of a one-hidden-layer tanh network on flattened images over ``steps`` of
    gradient descent from (w1, w2)."""

    def loss(params):
        a, b = params
        return jnp.mean((jnp.tanh(x @ a) @ b - y) ** 2)

    def step(params, _):
        value, grad = jax.value_and_grad(loss)(params)
        return jax.tree.map(lambda p, g: p - lr * g, params, grad), value

    return jax.lax.scan(step, (w1, w2), None, length=steps)[1]


@claim(
    "architectures/dense-network-ignores-the-pixel-arrangement",
    sources=["S002-52"],
    says="A DNN's input is a vector and does not take the planar structure into account ... a CNN's input can be a "
    "tensor such as a 2-D matrix, and its filters get local features, keeping the planar structure (DNN的输入是向量"
    "形式，并未考虑到平面的结构信息 ... CNN的输入可以是tensor ... 较好的保留了平面结构信息). Tested: scrambling the "
    "pixels by a fixed permutation changes nothing for a dense network (it trains identically from the "
    "correspondingly permuted initialisation) but changes a convolution's output beyond a rearrangement.",
    expected="holds",
    scope={"image": [6, 6], "samples": 16, "hidden": 8, "steps": 30, "lr": 0.1, "kernel": 3},
)
def _dense_blind(scope, rtol) -> Evidence:
    h, w = scope["image"]
    d = h * w
    rng = np.random.default_rng(5)
    images = rng.normal(size=(scope["samples"], h, w))
    y = rng.normal(size=(scope["samples"], 1))
    perm = rng.permutation(d)
    x = images.reshape(-1, d)
    w1 = rng.normal(size=(d, scope["hidden"])) / np.sqrt(d)
    w2 = rng.normal(size=(scope["hidden"], 1)) / np.sqrt(scope["hidden"])
    plain = np.asarray(_mlp_losses(x, y, w1, w2, lr=scope["lr"], steps=scope["steps"]))
    scrambled = np.asarray(_mlp_losses(x[:, perm], y, w1[perm], w2, lr=scope["lr"], steps=scope["steps"]))
    kernel = rng.normal(size=(scope["kernel"],) * 2 + (1, 1))
    conv = jax.jit(lambda im: conv2d(im[..., None], kernel, padding=1)[..., 0].reshape(im.shape[0], -1))
    conv_of_scrambled = np.sort(np.asarray(conv(x[:, perm].reshape(-1, h, w))), axis=1)
    scrambled_conv = np.sort(np.asarray(conv(images)), axis=1)  # sorted: equal up to any rearrangement
    rearranged = compare(lambda: conv_of_scrambled, lambda: scrambled_conv, [], rtol=rtol)
    return evidence(
        "autodiff",
        compared("a dense network trained on pixel-scrambled images follows the same losses, step by step, as on "
                 "the images (from the permuted initialisation): the pixel arrangement is invisible to it",
                 compare(lambda: scrambled, lambda: plain, [], rtol=rtol)),
        core("a 3x3 convolution sees it: on scrambled images its outputs are not even a rearrangement of its outputs "
             "on the images", not rearranged.ok),
        core("and training did move the dense network (the loss changed), so the equality is not vacuous",
             bool(plain[-1] < plain[0]), first=float(plain[0]), last=float(plain[-1])),
    )


@claim(
    "architectures/concat-needs-equal-hw-add-needs-equal-shapes",
    sources=["S002-15"],
    says="Addition adds two feature maps of the same dimensions position by position into a new map of the same "
    "dimensions; Concatenate only requires the two maps to have the same H and W, the channel counts may differ, "
    "and it joins them along the channels into a larger map (它只要求两个feature map的HW相同，通道数可以不同，然后两个"
    "feature map在通道上直接拼接，得到一个更大的feature map).",
    expected="holds",
    scope={"hw": [5, 7], "channels": [[3, 3], [3, 8], [1, 4]], "mismatched_hw": [5, 6]},
)
def _concat_and_add(scope) -> Evidence:
    h, w = scope["hw"]
    # Shapes only: jnp's shape rules applied by tracing (jax.eval_shape), nothing compiled.
    maps = lambda *shape: jax.ShapeDtypeStruct((1, *shape), jnp.float64)  # noqa: E731
    concat = lambda a, b: jax.eval_shape(lambda u, v: jnp.concatenate([u, v], axis=-1), a, b)  # noqa: E731
    add = lambda a, b: jax.eval_shape(lambda u, v: u + v, a, b)  # noqa: E731
    concat_shapes, add_ok, add_refused = [], [], []
    for c1, c2 in scope["channels"]:
        a, b = maps(h, w, c1), maps(h, w, c2)
        concat_shapes.append(concat(a, b).shape == (1, h, w, c1 + c2))
        if c1 == c2:
            add_ok.append(add(a, b).shape == a.shape)
        elif min(c1, c2) > 1:
            try:
                _ = add(a, b)
                add_refused.append(False)
            except (TypeError, ValueError):
                add_refused.append(True)
    try:
        concat(maps(*scope["mismatched_hw"], 3), maps(h, w, 3))
        hw_refused = False
    except (TypeError, ValueError):
        hw_refused = True
    broadcast = add(maps(h, w, 1), maps(h, w, 4)).shape
    return evidence(
        "measurement",
        core("concatenation joins maps of equal H, W and any channel counts into one of C1 + C2 channels",
             all(concat_shapes)),
        core("it refuses maps whose H, W differ", hw_refused),
        core("addition of equal shapes gives the same shape", all(add_ok)),
        core("addition refuses different channel counts (neither 1)", all(add_refused) and bool(add_refused),
             broadcast_of_one_channel=str(broadcast)),
    )
