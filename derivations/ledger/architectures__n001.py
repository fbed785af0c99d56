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


def _params(depth: int, width: int, growth: int, concat: bool, scale: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [width + i * growth if concat else (width if i == 0 else growth) for i in range(depth)]
    return [scale * rng.normal(size=(s, growth)) / np.sqrt(s) for s in sizes]


def _first_layer_inputs(depth: int, scope: dict, concat: bool, zero_later: bool):
    """(params, x, c): the block's weights (every layer after the first zeroed or not), its input and the
    loss's random weights c on the block output, drawn by NumPy."""
    width, growth = scope["width"], scope["growth"]
    params = _params(depth, width, growth, concat, scope["weight_scale"], depth)
    if zero_later:
        params = [params[0]] + [np.zeros_like(w) for w in params[1:]]
    x = np.random.default_rng(7).normal(size=(width,))
    out_size = width + depth * growth if concat else growth
    c = np.random.default_rng(8).normal(size=(out_size,))
    return params, x, c


def _first_layer_gradient(params, x, c, concat: bool) -> jax.Array:
    """dL/dh_1 for L = <c, block output>, h_1 = tanh(W_1 x) given."""

    def loss_of_h1(h):  # the block from h_1 on, h_1 given
        feats, prev = [x, h], h
        for w in params[1:]:
            prev = jnp.tanh((jnp.concatenate(feats, -1) if concat else prev) @ w)
            feats.append(prev)
        out = jnp.concatenate(feats, -1) if concat else prev
        return jnp.vdot(c, out)

    return jax.grad(loss_of_h1)(jnp.tanh(x @ params[0]))


def _direct(c: np.ndarray, scope: dict, concat: bool) -> np.ndarray:
    width, growth = scope["width"], scope["growth"]
    return c[width:width + growth] if concat else np.zeros(growth)


def gradient_of_first_layer(depth: int, scope: dict, concat: bool, zero_later: bool) -> tuple[np.ndarray, np.ndarray]:
    """dL/dh_1 for L = <c, block output> (c random), with every layer after the first zeroed or not; and the
    part of c that multiplies h_1's slice of the output (the direct path)."""
    params, x, c = _first_layer_inputs(depth, scope, concat, zero_later)
    grad = np.asarray(jax.jit(_first_layer_gradient, static_argnums=3)(params, x, c, concat))
    return grad, _direct(c, scope, concat)


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
    cases = [(_first_layer_inputs(depth, scope, concat, zero_later=True), concat)
             for depth in scope["depths"] for concat in (True, False)]
    # Every depth, with and without concatenation, in one program.
    grads = jax.jit(lambda inputs: [_first_layer_gradient(*args, concat) for args, concat in zip(
        inputs, [concat for _, concat in cases], strict=True)])([args for args, _ in cases])
    direct, plain = [], []
    for ((_, _, c), concat), g in zip(cases, grads, strict=True):
        g = np.asarray(g)
        if concat:
            d = _direct(c, scope, True)
            direct.append(compare(lambda g=g: g, lambda d=d: d, [], rtol=rtol))
        else:
            plain.append(float(np.max(np.abs(g))))
    return evidence(
        "autodiff",
        *[compared(f"depth {d}: with every later layer's weights zero, the first layer's gradient is exactly the "
                   "loss's gradient on its slice of the block output (the direct path)", c, depth=d)
          for d, c in zip(scope["depths"], direct, strict=True)],
        core("in a plain chain of the same depths, zeroing the later layers cuts the first layer's gradient to 0 "
             "(it has no path but through them)", max(plain) == 0.0, largest=max(plain)),
    )
