"""Claims found while annotating note 003 (normalization chapter): LayerNorm undoes the scale of its input, so
activations that grow or shrink layer by layer no longer make the gradient explode or vanish."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from derivations.claims import Evidence, claim, compared, core, evidence, premise
from derivations.compare import compare


def layer_norm(h, epsilon: float = 0.0):
    """(h - mean) / sqrt(var + epsilon) over the features (LayerNorm without scale and bias)."""
    mu = jnp.mean(h, -1, keepdims=True)
    return (h - mu) / jnp.sqrt(jnp.mean((h - mu) ** 2, -1, keepdims=True) + epsilon)


@jax.jit
def _run(weights, gain, x, probe, use_norm):
    """Loss <f(x), probe>, its input gradient and the RMS after each layer of x -> (LN) x W_1 g ... W_L g."""
    def f(v):
        def step(h, w):
            h = h @ (gain * w)
            h = jnp.where(use_norm, layer_norm(h), h)
            return h, jnp.sqrt(jnp.mean(h**2))
        h, rms = jax.lax.scan(step, v, weights)
        return jnp.sum(h * probe), rms
    (_, rms), grad = jax.value_and_grad(f, has_aux=True)(x)
    return grad, rms


def ln_findings(scope: dict, norm=layer_norm) -> dict:
    rng = np.random.default_rng(scope["seed"])
    n, depth = scope["width"], scope["depth"]
    # NumPy in, compiled programs (eagerly, every primitive per shape is one).
    weights = rng.normal(size=(depth, n, n)) / np.sqrt(n)
    x = rng.normal(size=(1, n))
    probe = rng.normal(size=(1, n))
    ln = nnx.LayerNorm(n, epsilon=scope["epsilon"], use_bias=False, use_scale=False, rngs=nnx.Rngs(0),
                       param_dtype=jnp.float64, dtype=jnp.float64)
    sample = rng.normal(size=(8, n)) * 3 + 1
    out = {"matches_flax": (np.asarray(jax.jit(norm)(sample)), np.asarray(nnx.jit(lambda m, v: m(v))(ln, sample)))}
    for label, use in (("plain", False), ("ln", True)):
        runs = [_run(weights, g, x, probe, use) for g in scope["gains"]]
        out[label] = {"grads": [np.asarray(r[0]) for r in runs], "rms": [np.asarray(r[1]) for r in runs]}
    return out


@claim(
    "normalization/layer-norm-undoes-the-scale-of-its-input",
    sources=["S003-02"],
    says="LayerNorm prevents the vanishing or exploding gradients caused by activations that are too large or too "
    "small (防止了激活值过大或过小导致的梯度消失或梯度爆炸问题).",
    expected="holds",
    scope={"width": 16, "depth": 20, "gains": [0.3, 3.0], "epsilon": 0.0, "seed": 0, "gain_law_margin": 0.05,
           "network": "deep linear, weights N(0, 1/n) times the gain, nnx.LayerNorm (no scale, no bias) after every "
           "layer; 'too large or too small' made by the gain"},
    rtol=1e-9, tolerance="20 layers of float64 matrix products and normalisations (about 20 ulps each)",
)
def _ln_scale(scope, rtol) -> Evidence:
    r = ln_findings(scope)
    (ga, gb), (pa, pb) = r["ln"]["grads"], r["plain"]["grads"]
    ratio = float(np.linalg.norm(pb) / np.linalg.norm(pa))
    lo, hi = scope["gains"]
    mine, flax = r["matches_flax"]
    return evidence(
        "autodiff",
        compared("the layer norm used equals nnx.LayerNorm (no scale, no bias, epsilon 0)",
                 compare(lambda: mine, lambda: flax, [], rtol=rtol), role="premise"),
        premise("without LayerNorm the activations shrink or grow with depth as the gain^L, and the input gradient "
                "with them", abs(np.log(ratio) / (scope["depth"] * np.log(hi / lo)) - 1) < scope["gain_law_margin"],
                plain_gradient_ratio=ratio,
                plain_rms_last=str([float(v[-1]) for v in r["plain"]["rms"]])),
        core("with LayerNorm every layer's activations have RMS 1, whatever the gain",
             all(np.allclose(v, 1.0, rtol=rtol, atol=0) for v in r["ln"]["rms"])),
        compared("and the input gradient is the same at both gains (LayerNorm(a h) = LayerNorm(h))",
                 compare(lambda: ga, lambda: gb, [], rtol=rtol)),
    )
