"""Scaled dot-product attention as a pure function, its backward pass in closed form, and a thin NNX
self-attention layer. Arrays are (batch, length, heads, head_dim), the layout of
``jax.nn.dot_product_attention``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import rnglib


def _scale(head_dim: int, scale: float | None) -> float:
    return head_dim**-0.5 if scale is None else scale


def attention_weights(q: jax.Array, k: jax.Array, *, scale: float | None = None) -> jax.Array:
    """softmax_j(scale * q_i . k_j), shape (batch, heads, q_length, k_length); scale defaults to 1/sqrt(d)."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * _scale(q.shape[-1], scale)
    return jax.nn.softmax(logits, axis=-1)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, scale: float | None = None) -> jax.Array:
    """softmax(scale * Q K^T) V per head (Vaswani et al., 2017)."""
    return jnp.einsum("bhqk,bkhd->bqhd", attention_weights(q, k, scale=scale), v)


def dot_product_attention_backward(
    q: jax.Array, k: jax.Array, v: jax.Array, d_out: jax.Array, *, scale: float | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(dQ, dK, dV) of ``dot_product_attention`` for the upstream gradient ``d_out``:
    dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)) (the softmax's vector-Jacobian product),
    dQ = scale dS K, dK = scale dS^T Q."""
    c = _scale(q.shape[-1], scale)
    p = attention_weights(q, k, scale=scale)
    dv = jnp.einsum("bhqk,bqhd->bkhd", p, d_out)
    dp = jnp.einsum("bqhd,bkhd->bhqk", d_out, v)
    ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))
    dq = c * jnp.einsum("bhqk,bkhd->bqhd", ds, k)
    dk = c * jnp.einsum("bhqk,bqhd->bkhd", ds, q)
    return dq, dk, dv


class SelfAttention(nnx.Module):
    """Multi-head self-attention: Q, K, V projections, ``dot_product_attention``, an output projection."""

    def __init__(self, features: int, *, num_heads: int, scale: float | None = None, rngs: rnglib.Rngs,
                 dtype=jnp.float32):
        if num_heads < 1 or features % num_heads:
            raise ValueError(f"SelfAttention: features ({features}) must split into num_heads ({num_heads}) heads")
        self.num_heads, self.scale = num_heads, scale
        self.qkv = nnx.Linear(features, 3 * features, rngs=rngs, param_dtype=dtype)
        self.out = nnx.Linear(features, features, rngs=rngs, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, features = x.shape
        q, k, v = jnp.split(self.qkv(x).reshape(batch, length, 3 * self.num_heads, -1), 3, axis=2)
        return self.out(dot_product_attention(q, k, v, scale=self.scale).reshape(batch, length, features))
