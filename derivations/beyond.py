"""Beyond CNNs: scaled dot-product attention, the GAN objective, and softmax variants (temperature, label
smoothing, additive margin), derived in SymPy and checked against autodiff and XLA.

Seeds: S002-50, S002-49, S001-26. Run ``python -m derivations.beyond`` to print the derivations and check
the claims.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations import bridge
from derivations.activations import softmax
from derivations.bridge import to_jax
from derivations.claims import derivation
from derivations.compare import Comparison, compare
from models.attention import attention_weights

K = 3  # classes in the softmax-variant derivations (SymPy simplifies K = 4 too, four times slower)
temperature = sp.Symbol("T", positive=True)
smoothing = sp.Symbol("alpha", nonnegative=True)
scale_s, margin = sp.symbols("s m", positive=True)
d_model = sp.Symbol("d", positive=True, integer=True)
p_data, p_gen, disc = sp.symbols("p_data p_g D", positive=True)
MC_Z = 4.5  # Monte-Carlo estimates must lie within this many standard errors of the exact value


def logits(k: int = K) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"z1:{k + 1}", real=True)


def targets(k: int = K) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"y1:{k + 1}", real=True)


def cross_entropy(zs, ys) -> sp.Expr:
    """-sum_k y_k log softmax(z)_k, written with log-sum-exp so SymPy differentiates it cleanly."""
    return sp.log(sum(sp.exp(v) for v in zs)) * sum(ys) - sum((y * v for y, v in zip(ys, zs, strict=True)))


@bridge.cache
def _gradient(loss: sp.Expr, zs: tuple[sp.Symbol, ...]) -> sp.ImmutableMatrix:
    return sp.ImmutableMatrix([sp.simplify(sp.diff(loss, v)) for v in zs])


MOMENTS = sp.symbols("E[q^2] E[k^2] E[q] E[k]")  # of one query and one key coordinate


@derivation
@bridge.cache
def query_key_variance() -> list[sp.Eq]:
    """For independent q_i and k_i, E[(q k)^2] = E[q^2] E[k^2] and E[q k] = E[q] E[k], so the product has
    variance E[q^2] E[k^2] - (E[q] E[k])^2; at mean 0 and variance 1 that is 1, and the d independent terms add
    up: Var(q . k) = d (S002-50)."""
    eq2, ek2, eq, ek = MOMENTS
    product_variance = eq2 * ek2 - (eq * ek) ** 2
    one_term = product_variance.subs({eq2: 1, ek2: 1, eq: 0, ek: 0})
    return [
        sp.Eq(sp.Symbol("Var(q_i k_i)"), product_variance, evaluate=False),
        sp.Eq(sp.Symbol("Var(q_i k_i)|_{mean 0, variance 1}"), one_term, evaluate=False),
        sp.Eq(sp.Symbol("Var(q . k)"), d_model * one_term, evaluate=False),
        sp.Eq(sp.Symbol("Var(q . k / sqrt(d))"), d_model * one_term / d_model, evaluate=False),
    ]


def softmax_jacobian_transpose_product() -> sp.Matrix:
    """J^T g from SymPy's Jacobian of softmax (K = 3): the reference the displayed VJP is proved equal to."""
    zs, gs = (logits(3), sp.symbols("g1:4", real=True))
    return softmax(zs).jacobian(zs).T * sp.Matrix(gs)


@derivation
@bridge.cache
def softmax_vjp() -> sp.Eq:
    """The softmax's vector-Jacobian product, the heart of attention's backward pass: for an upstream
    gradient g, (J^T g)_j = p_j (g_j - sum_i p_i g_i), shown for K = 3 with p = softmax(z); the claim
    proves it equal to SymPy's Jacobian-transpose product."""
    ps, gs = (sp.symbols("p1:4", positive=True), sp.symbols("g1:4", real=True))
    form = sp.Matrix([ps[j] * (gs[j] - sum(ps[i] * gs[i] for i in range(3))) for j in range(3)])
    return sp.Eq(sp.MatrixSymbol("J^T g", 3, 1), form, evaluate=False)


def gan_pointwise_value(d: sp.Expr = disc) -> sp.Expr:
    """The integrand of V(D, G) at one x: p_data log D + p_g log(1 - D)."""
    return p_data * sp.log(d) + p_gen * sp.log(1 - d)


@derivation
@bridge.cache
def optimal_discriminator() -> list[sp.Eq]:
    """Maximising p_data log D + p_g log(1 - D) over D in (0, 1) pointwise: the derivative vanishes at
    D* = p_data / (p_data + p_g) and the second derivative there is negative (S002-49)."""
    stationary = sp.solve(sp.diff(gan_pointwise_value(), disc), disc)
    d_star = stationary[0]
    curvature = sp.simplify(sp.diff(gan_pointwise_value(), disc, 2).subs(disc, d_star))
    return [
        sp.Eq(sp.Symbol("D^*"), d_star, evaluate=False),
        sp.Eq(sp.Symbol("d^2V/dD^2 at D^*"), curvature, evaluate=False),
    ]


def jsd_pointwise() -> sp.Expr:
    """-log 4 (p_data + p_g)/2 + p_data log(p_data / m) + p_g log(p_g / m), m = (p_data + p_g)/2: the
    pointwise form of -log 4 + 2 JSD(p_data || p_g) (each of p_data, p_g sums to 1)."""
    m = (p_data + p_gen) / 2
    return -sp.log(4) * m + p_data * sp.log(p_data / m) + p_gen * sp.log(p_gen / m)


@derivation
@bridge.cache
def value_at_optimal_discriminator() -> sp.Eq:
    """The value at D*, pointwise, rewritten as the two KL terms of the Jensen-Shannon divergence."""
    d_star = p_data / (p_data + p_gen)
    return sp.Eq(gan_pointwise_value(d_star), jsd_pointwise(), evaluate=False)


@derivation
@bridge.cache
def dirac_gan_jacobian() -> sp.Eq:
    """Dirac-GAN (Mescheder et al., 2018): data at 0, generator at theta, discriminator sigmoid(psi x),
    V = f(psi theta) with f(t) = -log(1 + e^-t). The simultaneous-gradient field (-dV/dtheta, dV/dpsi)
    has Jacobian eigenvalues +-i f'(0) at the equilibrium: purely imaginary, so gradient steps rotate."""
    theta, psi = sp.symbols("theta psi", real=True)
    value = -sp.log(1 + sp.exp(-psi * theta))
    field = sp.Matrix([-sp.diff(value, theta), sp.diff(value, psi)])
    jacobian = field.jacobian([theta, psi]).subs({theta: 0, psi: 0})
    return sp.Eq(
        sp.Symbol("eigenvalues"), sp.Matrix([sorted(jacobian.eigenvals(), key=sp.default_sort_key)]), evaluate=False
    )


@derivation
@bridge.cache
def temperature_softmax_gradient() -> sp.Eq:
    """Cross-entropy of softmax(z / T) (S001-26) and its gradient (softmax(z / T) - y) / T; the claim proves
    SymPy's derivative equal to it when the target sums to 1 (K = 3)."""
    return sp.Eq(sp.Symbol("dL/dz"), temperature_gradient_claimed(), evaluate=False)


def temperature_gradient_claimed() -> sp.Matrix:
    zs, ys = (logits(), targets())
    return (softmax([v / temperature for v in zs]) - sp.Matrix(ys)) / temperature


def smoothed_target(ys, alpha=smoothing) -> list[sp.Expr]:
    """Label smoothing as optax.smooth_labels does it: (1 - alpha) y + alpha / K."""
    return tuple((1 - alpha) * y + alpha / len(ys) for y in ys)


@derivation
@bridge.cache
def label_smoothing_gradient() -> sp.Eq:
    """Cross-entropy with the smoothed target (1 - alpha) y + alpha / K (S001-26, as optax.smooth_labels) has
    gradient softmax(z) minus the smoothed target, because the smoothed target still sums to 1 (K = 3)."""
    return sp.Eq(sp.Symbol("dL/dz"), label_smoothing_gradient_claimed(), evaluate=False)


def label_smoothing_gradient_claimed() -> sp.Matrix:
    zs, ys = (logits(), targets())
    return softmax(zs) - sp.Matrix(smoothed_target(ys))


def cosine_symbols(n: int = 3):
    return (sp.symbols(f"x1:{n + 1}", real=True), sp.symbols(f"w1:{n + 1}", real=True))


def cosine_gradient_pair() -> tuple[sp.Matrix, sp.Matrix]:
    """(SymPy's gradient of cos(w, x) with respect to x, the claimed (w_hat - cos x_hat) / |x|), n = 3."""
    xs, ws = cosine_symbols()
    x, w = (sp.Matrix(xs), sp.Matrix(ws))
    cos = (w.T * x)[0] / (w.norm() * x.norm())
    return (sp.Matrix([sp.diff(cos, v) for v in xs]), (w / w.norm() - cos * x / x.norm()) / x.norm())


@derivation
@bridge.cache
def cosine_gradient() -> sp.Eq:
    """The gradient of cos(w, x) = w.x / (|w| |x|) with respect to x is (w_hat - cos x_hat) / |x| (n = 3):
    the factor that carries the additive-margin softmax's gradient back to the features (S001-26)."""
    x1 = cosine_symbols()[0][0]
    _, claimed = cosine_gradient_pair()
    return sp.Eq(sp.Derivative(sp.Symbol("cos"), x1), sp.factor(claimed[0]), evaluate=False)


@derivation
@bridge.cache
def additive_margin_gradient() -> sp.Eq:
    """Additive-margin softmax (Wang et al., 2018): logits s (cos_j - m [j = y]); with a one-hot y the
    gradient with respect to the cosines is s (p - y), p the softmax of the margin logits (K = 3, y = e_1)."""
    cs = sp.symbols("c1:4", real=True)
    ys = (1, 0, 0)
    margin_logits = [scale_s * (c - margin * y) for c, y in zip(cs, ys, strict=True)]
    grad = _gradient(cross_entropy(tuple(margin_logits), ys), cs)
    return sp.Eq(sp.Symbol("dL/dcos"), grad, evaluate=False)


def am_softmax_loss(x: jax.Array, w: jax.Array, label: jax.Array, *, s: float, m: float) -> jax.Array:
    """Additive-margin softmax loss of one feature vector ``x`` (n,), class weights ``w`` (K, n) and an
    integer label: optax's cross-entropy on s (cos - m onehot(label))."""
    if isinstance(s, int | float) and isinstance(m, int | float) and (s <= 0 or m < 0):
        raise ValueError(f"am_softmax_loss: need s > 0 and m >= 0, got s={s}, m={m}")
    cos = w / jnp.linalg.norm(w, axis=-1, keepdims=True) @ (x / jnp.linalg.norm(x))
    return optax.softmax_cross_entropy_with_integer_labels(s * (cos - m * jax.nn.one_hot(label, w.shape[0])), label)


@bridge.cache
def _compiled(expr: sp.Matrix, symbols: tuple[sp.Symbol, ...]):
    return to_jax(expr, symbols)


def gradient_formula_vs_autodiff(formula: sp.Matrix, symbols: tuple[sp.Symbol, ...], loss, inputs) -> Comparison:
    """A SymPy gradient (a K x 1 matrix of ``symbols``) evaluated row by row on ``inputs`` (an array whose rows
    are values of ``symbols``), against ``jax.grad`` of ``loss`` on the same rows (loss takes one row and
    differentiates with respect to its first K entries)."""
    evaluate = _compiled(sp.ImmutableMatrix(formula), tuple(symbols))
    k = formula.rows
    return compare(
        lambda rows: jax.vmap(lambda row: evaluate(*row)[:, 0])(rows),
        jax.vmap(lambda row: jax.grad(loss)(row)[:k]),
        [inputs],
    )


def softmax_saturation(d: int, *, scaled: bool, keys: int = 32, queries: int = 256, seed: int = 0) -> dict[str, float]:
    """Mean entropy of the attention weights, mean Frobenius norm of the softmax Jacobian diag(p) - p p^T
    (sqrt(sum p^2 - 2 sum p^3 + (sum p^2)^2)) and mean largest weight, for N(0, I) queries and keys of
    dimension d, with the 1/sqrt(d) scale or without it."""
    if d < 1:
        raise ValueError(f"softmax_saturation: d must be >= 1, got {d}")
    weights = np.asarray(_saturation_weights(d, keys, queries, seed)[0 if scaled else 1])
    entropy = -np.sum(np.where(weights > 0, weights * np.log(np.where(weights > 0, weights, 1.0)), 0.0), axis=-1)
    square = np.sum(weights**2, axis=-1)
    jacobian_norm = np.sqrt(np.maximum(square - 2 * np.sum(weights**3, axis=-1) + square**2, 0.0))
    return {
        "entropy": float(np.mean(entropy)),
        "jacobian_norm": float(np.mean(jacobian_norm)),
        "max_weight": float(np.mean(np.max(weights, axis=-1))),
    }


def _saturation_weights(d: int, keys: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The attention weights of N(0, I) queries and keys, with the 1/sqrt(d) scale and without it, from the
    same draws."""
    return saturation_weights([(d, keys, queries, seed)])[0]


def saturation_weights(configs) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_saturation_weights` of each ``(d, keys, queries, seed)`` of ``configs``; those not computed
    before are computed together, in one compiled program. Memoised."""
    todo = [c for c in dict.fromkeys(tuple(int(v) for v in c) for c in configs) if c not in _WEIGHTS]
    if todo:
        draws = []
        for d, keys, queries, seed in todo:
            rng = np.random.default_rng(seed)  # NumPy draws: an XLA program drawing float64 normals is slow to compile
            draws.append((rng.normal(size=(1, queries, 1, d)), rng.normal(size=(1, keys, 1, d))))
        out = jax.device_get(_weights_both_scales(draws))
        _WEIGHTS.update(zip(todo, (tuple(w) for w in out), strict=True))
    return [_WEIGHTS[tuple(int(v) for v in c)] for c in configs]


_WEIGHTS: dict = {}


@jax.jit
def _weights_both_scales(draws):
    return [(attention_weights(q, k, scale=None)[0, 0], attention_weights(q, k, scale=1.0)[0, 0]) for q, k in draws]


def _numpy_attention(q, k, v, *, scale: float | None = None) -> np.ndarray:
    """softmax(scale q . k) v in NumPy float64 (scale 1/sqrt(d) by default): the reference for the model."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) * (q.shape[-1] ** (-0.5) if scale is None else scale)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.einsum("bhqk,bkhd->bqhd", weights / weights.sum(axis=-1, keepdims=True), v)


def _two_distributions(size: int = 8, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = (rng.uniform(0.1, 1.0, size), rng.uniform(0.1, 1.0, size))
    return (a / a.sum(), b / b.sum())


def gan_value(d: jax.Array, data: jax.Array, generated: jax.Array) -> jax.Array:
    """V(D, G) = E_data[log D] + E_g[log(1 - D)] on a finite sample space."""
    return jnp.sum(data * jnp.log(d) + generated * jnp.log1p(-d))


def _logit_rows(columns: int, seed: int, batch: int = 64) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(0.0, 2.0, (batch, columns)))


def _one_hot_rows(seed: int, batch: int = 64) -> jax.Array:
    return jax.nn.one_hot(np.random.default_rng(seed).integers(0, K, batch), K, dtype=jnp.float64)


def am_softmax_input_gradient(x: jax.Array, w: jax.Array, label: jax.Array, *, s: float, m: float) -> jax.Array:
    """The derived gradient of ``am_softmax_loss`` with respect to x: sum_j s (p_j - y_j) (w_hat_j - cos_j
    x_hat) / |x|, the chain rule through the two derivations above."""
    x_norm = jnp.linalg.norm(x)
    w_hat, x_hat = (w / jnp.linalg.norm(w, axis=-1, keepdims=True), x / x_norm)
    cos = w_hat @ x_hat
    y = jax.nn.one_hot(label, w.shape[0], dtype=x.dtype)
    p = jax.nn.softmax(s * (cos - m * y))
    return s * (p - y) @ ((w_hat - cos[:, None] * x_hat) / x_norm)


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "beyond"]) or main(["check", "beyond"]))
