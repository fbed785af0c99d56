"""Claims found while annotating note 001 (architectures chapter): DenseNet's concatenation gives every layer of
a dense block a direct path to the block's output, so its gradient does not have to pass through later layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from derivations.claims import Evidence, claim, compared, core, evidence
from derivations.compare import compare


def dense_block(params, x, concat=True):
    """A dense block of tanh layers h_l = tanh(W_l [x, h_1, ..., h_{l-1}]) whose output is the concatenation
    [x, h_1, ..., h_L] (``concat=False``: a plain chain h_l = tanh(W_l h_{l-1}), output h_L)."""
    feats, h = [x], x
    for w in params:
        h = jnp.tanh((jnp.concatenate(feats, -1) if concat else h) @ w)
        feats.append(h)
    return jnp.concatenate(feats, -1) if concat else h


def _params(depth: int, width: int, growth: int, concat: bool, scale: float, seed: int):
    rng = np.random.default_rng(seed)
    sizes = [width + i * growth if concat else (width if i == 0 else growth) for i in range(depth)]
    return [jnp.asarray(scale * rng.normal(size=(s, growth)) / np.sqrt(s)) for s in sizes]


def gradient_of_first_layer(depth: int, scope: dict, concat: bool, zero_later: bool) -> tuple[np.ndarray, np.ndarray]:
    """dL/dh_1 for L = <c, block output> (c random), with every layer after the first zeroed or not; and the
    part of c that multiplies h_1's slice of the output (the direct path)."""
    width, growth = scope["width"], scope["growth"]
    params = _params(depth, width, growth, concat, scope["weight_scale"], depth)
    if zero_later:
        params = [params[0]] + [jnp.zeros_like(w) for w in params[1:]]
    x = jnp.asarray(np.random.default_rng(7).normal(size=(width,)))
    h1 = jnp.tanh(x @ params[0])
    out_size = dense_block(params, x, concat).shape[-1]
    c = jnp.asarray(np.random.default_rng(8).normal(size=(out_size,)))

    def loss_of_h1(h):  # the block from h_1 on, h_1 given
        feats, prev = [x, h], h
        for w in params[1:]:
            prev = jnp.tanh((jnp.concatenate(feats, -1) if concat else prev) @ w)
            feats.append(prev)
        out = jnp.concatenate(feats, -1) if concat else prev
        return jnp.vdot(c, out)

    grad = np.asarray(jax.grad(loss_of_h1)(h1))
    direct = np.asarray(c[width:width + growth]) if concat else np.zeros(growth)
    return grad, direct


@claim(
    "architectures/dense-block-gives-every-layer-a-direct-gradient-path",
    sources=["S001-08"],
    says="DenseNet's main feature: every layer's output is an input of all later layers, so the last layer "
         "concatenates the outputs of all earlier layers; this structure ensures that every layer can access the "
         "gradient directly from the loss, so very deep networks can be trained (这种结构确保了每一层能从损失函数"
         "直接访问到梯度). Tested within one dense block, whose concatenated output the loss reads.",
    expected="holds",
    scope={"depths": [2, 4], "width": 4, "growth": 3, "weight_scale": 1.0},
)
def _dense_direct_path(scope, rtol) -> Evidence:
    direct, plain = [], []
    for depth in scope["depths"]:
        g, d = gradient_of_first_layer(depth, scope, concat=True, zero_later=True)
        direct.append(compare(lambda g=g: g, lambda d=d: d, [], rtol=rtol))
        g_plain, _ = gradient_of_first_layer(depth, scope, concat=False, zero_later=True)
        plain.append(float(np.max(np.abs(g_plain))))
    return evidence(
        "autodiff",
        *[compared(f"depth {d}: with every later layer's weights zero, the first layer's gradient is exactly the "
                   "loss's gradient on its slice of the block output (the direct path)", c, depth=d)
          for d, c in zip(scope["depths"], direct, strict=True)],
        core("in a plain chain of the same depths, zeroing the later layers cuts the first layer's gradient to 0 "
             "(it has no path but through them)", max(plain) == 0.0, largest=max(plain)),
    )
