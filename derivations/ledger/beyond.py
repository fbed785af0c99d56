"""The claims of the beyond chapter: attention (the query-key variance, saturation without the scale, the
closed-form backward, what attention costs), the GAN objective (the optimal discriminator, the JSD value, the
Dirac-GAN's rotation) and the softmax variants' gradients, each probed over the scope it is meant for."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp

from derivations.activations import softmax
from derivations.beyond import (
    MC_Z,
    MOMENTS,
    K,
    _numpy_attention,
    additive_margin_gradient,
    am_softmax_input_gradient,
    am_softmax_loss,
    cosine_gradient,
    cosine_gradient_pair,
    cross_entropy,
    d_model,
    dirac_gan_jacobian,
    disc,
    gan_pointwise_value,
    gan_value,
    label_smoothing_gradient,
    logits,
    margin,
    optimal_discriminator,
    p_data,
    p_gen,
    query_key_variance,
    saturation_weights,
    scale_s,
    smoothed_target,
    smoothing,
    softmax_jacobian_transpose_product,
    softmax_saturation,
    softmax_vjp,
    targets,
    temperature,
    temperature_softmax_gradient,
    value_at_optimal_discriminator,
)
from derivations.bridge import instantiate, prove_identity, to_jax, value, vanishes
from derivations.claims import Evidence, claim, compared, core, evidence, proved, scoped
from derivations.compare import compare
from derivations.harness import xla_cost
from models.attention import attention_weights, dot_product_attention, dot_product_attention_backward

_S002_50 = (
    "S002-50 gives attention's purpose: 'it makes it easier for the system to find, in the input, the "
    "useful information relevant to the current output' (让系统更加容易的找到输入的数据中与当前输出信息相关的"
    "有用信息); it does not mention the 1/sqrt(d) scale. "
)


def _unit_variance_draws(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Independent draws of mean 0 and variance 1 from a named distribution."""
    if kind == "normal":
        return rng.normal(size=shape)
    if kind == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), shape)
    if kind == "rademacher":
        return rng.choice([-1.0, 1.0], shape)
    raise ValueError(f"unknown distribution {kind!r}")


@claim(
    "beyond/query-key-dot-product-has-variance-d",
    sources=["S002-50"],
    says=_S002_50 + "This claim tests a gloss, the usual reason for the scale of scaled dot-product attention: "
    "for independent queries and keys of mean 0 and variance 1, q . k has variance d, and q . k / sqrt(d) "
    "variance 1.",
    expected="holds",
    scope={"d": [1, 16, 64, 256], "distributions": ["normal", "uniform", "rademacher"], "draws": 20_000, "z": MC_Z},
    tolerance=f"Monte-Carlo: each sample variance within {MC_Z} standard errors (from the draws' fourth moment) "
    "of the derived value",
)
def _qk_variance(scope) -> Evidence:
    steps = query_key_variance()
    one_term = value(steps[1])
    # The product's variance in general, against the joint distribution of two independent discrete variables
    # with non-zero means, enumerated (E[(q k)^2] - E[q k]^2 over every pair of values, weighted by both chances).
    eq2, ek2, eq, ek = MOMENTS  # the moments the displayed formula is written in
    pairs = [((np.array([-1.0, 0.5, 2.0]), np.array([0.2, 0.5, 0.3])), (np.array([0.0, 1.5]), np.array([0.6, 0.4]))),
             ((np.array([3.0, 4.0]), np.array([0.5, 0.5])), (np.array([-2.0, 1.0, 5.0]), np.array([0.1, 0.3, 0.6])))]
    formula, enumerated = [], []
    for (qv, qp), (kv, kp) in pairs:
        products, chances = np.multiply.outer(qv, kv), np.multiply.outer(qp, kp)
        enumerated.append(float(np.sum(chances * products**2) - np.sum(chances * products) ** 2))
        formula.append(value(steps[0], {eq2: qp @ qv**2, ek2: kp @ kv**2, eq: qp @ qv, ek: kp @ kv}))
    general = compare(lambda: np.asarray(formula), lambda: np.asarray(enumerated), [])
    rng = np.random.default_rng(0)
    rows, worst = {}, 0.0
    for kind in scope["distributions"]:
        for d in scope["d"]:
            q, k = (_unit_variance_draws(rng, kind, (scope["draws"], d)) for _ in range(2))
            scores = np.einsum("nd,nd->n", q, k)
            for name, s, step in (("raw", scores, steps[2]), ("scaled", scores / np.sqrt(d), steps[3])):
                target = value(step, {d_model: d})
                variance = s.var(ddof=1)
                se = np.std((s - s.mean()) ** 2, ddof=1) / np.sqrt(scope["draws"])
                z = float(abs(variance - target) / se)
                worst = max(worst, z)
                rows[f"{kind}, d={d}, {name}"] = {
                    "variance": float(variance),
                    "derived": target,
                    "standard_error": float(se),
                    "z": z,
                }
    return evidence(
        "measurement",
        compared("the derivation's step: a product of independent q_i, k_i has variance E[q^2] E[k^2] - "
                 "(E[q] E[k])^2, against the enumerated joint distribution of two discrete pairs with non-zero means",
                 general, role="premise"),
        core("SymPy: at mean 0 and variance 1 that is 1", one_term == 1.0),
        core(
            f"the sample variance of q . k is d, and of q . k / sqrt(d) is 1, for d in {scope['d']} and "
            f"{'/'.join(scope['distributions'])} coordinates, within {scope['z']} standard errors",
            worst <= scope["z"],
            worst_z=worst,
            samples=scope["draws"] * len(rows) // 2,
            dtype="float64",
        ),
        details=rows,
    )


@functools.partial(jax.jit, static_argnums=4)
def _query_key_gradient_norms(q, k, v, upstream, scaled):
    """|dL/dq|, |dL/dk| and each query's |dL/dq_i| of L = sum(upstream * softmax(q k^T / s) v), s = sqrt(d) or 1."""

    def loss(q, k):
        logits = q @ k.T / (jnp.sqrt(q.shape[-1]) if scaled else 1.0)
        return jnp.sum(upstream * (jax.nn.softmax(logits, axis=-1) @ v))

    dq, dk = jax.grad(loss, argnums=(0, 1))(q, k)
    return jnp.linalg.norm(dq), jnp.linalg.norm(dk), jnp.linalg.norm(dq, axis=-1)


@claim(
    "beyond/scaling-by-one-over-sqrt-d-keeps-the-softmax-out-of-saturation",
    sources=["S002-50"],
    says=_S002_50 + "This claim tests a gloss: without the 1/sqrt(d) scale the softmax of large dot products "
    "saturates and passes little gradient.",
    expected="qualified",
    correction="The weights saturate without the scale at every d in scope (their entropy falls well below the "
    "scaled one), but the softmax's own Jacobian shrinks only slowly with d (partly peaked weights have the "
    "largest Jacobian): comparable to the scaled one at d = 16, below half of it at d = 512. At d = 512 most "
    "queries do get far less gradient without the scale, but the total gradient reaching the queries and keys, "
    "what trains the projections, is larger at every d in scope: the logits are sqrt(d) times more sensitive to q "
    "and k, and the few queries whose largest logits nearly tie get very large gradients.",
    scope={"d": [16, 64, 512], "keys": [8, 32], "queries": 128, "entropy_fraction": 0.5, "jacobian_fraction": 0.5},
)
def _scaling_saturation(scope) -> Evidence:
    rows = {}
    saturation_weights([(d, keys, scope["queries"], 0) for d in scope["d"] for keys in scope["keys"]])  # one program
    for d in scope["d"]:
        for keys in scope["keys"]:
            scaled = softmax_saturation(d, scaled=True, keys=keys, queries=scope["queries"])
            raw = softmax_saturation(d, scaled=False, keys=keys, queries=scope["queries"])
            rows[(d, keys)] = {
                "scaled": scaled,
                "unscaled": raw,
                "uniform_entropy": float(np.log(keys)),
                "jacobian_ratio": raw["jacobian_norm"] / scaled["jacobian_norm"],
            }
    rng = np.random.default_rng(50)
    reaching = {}
    for d in scope["d"]:
        for keys in scope["keys"]:
            q, k, v, up = (jax.device_put(rng.normal(size=shape)) for shape in
                           ((scope["queries"], d), (keys, d), (keys, d), (scope["queries"], d)))  # fmt: skip
            (sq, sk, sqi), (rq, rk, rqi) = (jax.device_get(_query_key_gradient_norms(q, k, v, up, f))
                                            for f in (True, False))  # fmt: skip
            reaching[(d, keys)] = {"dq_unscaled_over_scaled": float(rq / sq), "dk_unscaled_over_scaled": float(rk / sk),
                                   "median_query_ratio": float(np.median(rqi / sqi)),
                                   "share_of_queries_getting_less": float(np.mean(rqi < sqi))}  # fmt: skip
    spread = all(v["scaled"]["entropy"] > scope["entropy_fraction"] * v["uniform_entropy"] for v in rows.values())
    peaked = all(v["unscaled"]["entropy"] < scope["entropy_fraction"] * v["scaled"]["entropy"] for v in rows.values())
    largest = scope["d"][-1]

    def small_gradient(d):
        return all(rows[(d, k)]["jacobian_ratio"] < scope["jacobian_fraction"] for k in scope["keys"])

    return evidence(
        "measurement",
        core(
            f"with the scale the weights stay spread (entropy above {scope['entropy_fraction']} of uniform) for "
            f"d in {scope['d']}, keys in {scope['keys']}",
            spread,
        ),
        core(
            f"without it the weights saturate: entropy below {scope['entropy_fraction']} of the scaled one, "
            "everywhere in scope",
            peaked,
            samples=scope["queries"] * len(rows) * 2,
            dtype="float64",
        ),
        core(
            f"at d = {largest} the softmax Jacobian diag(p) - p p^T is below {scope['jacobian_fraction']} of the "
            "scaled one (little gradient)",
            small_gradient(largest),
            jacobian_ratio=max(rows[(largest, k)]["jacobian_ratio"] for k in scope["keys"]),
        ),
        *(
            scoped(
                f"at d = {d} too the Jacobian is below {scope['jacobian_fraction']} of the scaled one",
                small_gradient(d),
                jacobian_ratio=max(rows[(d, k)]["jacobian_ratio"] for k in scope["keys"]),
            )
            for d in scope["d"][:-1]
        ),
        core(
            f"at d = {largest} most queries get less gradient without the scale: the median query's |dL/dq_i| is "
            "below the scaled one's, for every number of keys",
            all(reaching[(largest, k)]["median_query_ratio"] < 1 for k in scope["keys"]),
            median_query_ratio=max(reaching[(largest, k)]["median_query_ratio"] for k in scope["keys"]),
            share_getting_less=min(reaching[(largest, k)]["share_of_queries_getting_less"] for k in scope["keys"]),
        ),
        scoped(
            "without the scale the total gradient reaching the queries and keys (|dL/dq|, |dL/dk| over all queries) "
            "is smaller too, everywhere in scope",
            all(r["dq_unscaled_over_scaled"] < 1 and r["dk_unscaled_over_scaled"] < 1 for r in reaching.values()),
            smallest_ratio=min(min(r["dq_unscaled_over_scaled"], r["dk_unscaled_over_scaled"])
                               for r in reaching.values()),
        ),
        details={**{f"d={d}, keys={k}": v for (d, k), v in rows.items()},
                 "query_key_gradients": {f"d={d}, keys={k}": v for (d, k), v in reaching.items()}},
    )


@functools.partial(jax.jit, static_argnums=1)
def _attention_and_backwards_all(cases, scales):
    """:func:`_attention_and_backwards` of every ``(q, k, v, d_out)`` with its scale: one program for all."""
    return [_attention_and_backwards(*case, scale) for case, scale in zip(cases, scales, strict=True)]


def _attention_and_backwards(q, k, v, d_out, scale):
    """The forward output, the closed-form (dQ, dK, dV), jax.vjp's and jax.nn.dot_product_attention's output,
    each flattened."""
    out, vjp = jax.vjp(lambda a, b, e: dot_product_attention(a, b, e, scale=scale), q, k, v)
    flat = lambda ts: jnp.concatenate([jnp.ravel(t) for t in ts])  # noqa: E731
    library = jax.nn.dot_product_attention(q, k, v)  # its default scale 1/sqrt(d); compared only where scale is None
    return (jnp.ravel(out), flat(dot_product_attention_backward(q, k, v, d_out, scale=scale)), flat(vjp(d_out)),
            jnp.ravel(library))


@claim(
    "beyond/attention-backward-matches-autodiff",
    sources=["S002-50"],
    says=_S002_50 + "This claim tests a gloss, the mechanism that finds the relevant input: softmax-weighted "
    "dot products, and its closed-form backward pass.",
    expected="holds",
    scope={"shapes": [(2, 7, 3, 8), (1, 1, 1, 4), (1, 5, 2, 16)], "scales": [None, 0.05],
           "unequal_q_k_v_dy_shapes": [[(1, 5, 2, 4), (1, 11, 2, 4), (1, 11, 2, 4), (1, 5, 2, 4)]]},
)
def _attention_backward(scope, rtol) -> Evidence:
    product = softmax_jacobian_transpose_product()
    zs = logits(3)
    p = softmax(zs)
    shown = instantiate(softmax_vjp(), {sp.Symbol(f"p{i + 1}", positive=True): p[i] for i in range(3)})
    gs, us = sp.symbols("g1:4", real=True), sp.symbols("u1:4", positive=True)
    exps = {sp.exp(z): u for z, u in zip(zs, us, strict=True)}  # rational in u = e^z: SymPy decides it quickly
    vjp_proofs = [
        prove_identity(
            shown[j].subs(exps), product[j].subs(exps), [*us, *gs], sampler=lambda rng, n: rng.uniform(0.1, 3.0, n)
        )
        for j in range(3)
    ]
    rng = np.random.default_rng(1)
    outputs, references, closed, autodiff, gaps = [], [], [], [], []
    # Queries, keys, values and dy of one shape each; and a case with 5 queries on 11 keys.
    shapes = [(shape,) * 4 for shape in scope["shapes"]]
    shapes += [tuple(map(tuple, s)) for s in scope["unequal_q_k_v_dy_shapes"]]
    cases = [(shape, scale, tuple(rng.normal(size=one) for one in shape))
             for shape in shapes for scale in scope["scales"]]
    results = jax.device_get(_attention_and_backwards_all([c for _, _, c in cases], tuple(s for _, s, _ in cases)))
    for (_, scale, (q, k, v, _)), (out, by_hand, by_vjp, library) in zip(cases, results, strict=True):
        outputs.append(out)
        references.append(np.ravel(_numpy_attention(q, k, v, scale=scale)))
        closed.append(by_hand)
        autodiff.append(by_vjp)
        if scale is None:
            gaps.append(float(np.max(np.abs(library - references[-1]))))
    fwd = compare(lambda: np.concatenate(outputs), lambda: np.concatenate(references), [], rtol=rtol)
    bwd = compare(lambda: np.concatenate(closed), lambda: np.concatenate(autodiff), [], rtol=rtol)
    configurations = len(shapes) * len(scope["scales"])
    return evidence(
        "autodiff",
        *(
            proved(f"SymPy: the displayed softmax VJP p_j (g_j - sum_i p_i g_i) equals (J^T g)_{j + 1}", proof)
            for j, proof in enumerate(vjp_proofs)
        ),
        compared(
            f"the forward pass equals a NumPy float64 reference in {configurations} "
            f"configurations (length 1 included, and 5 queries on 11 keys; scales {scope['scales']}, None = "
            "1/sqrt(d))",
            fwd,
        ),
        compared(f"the closed-form (dQ, dK, dV) equals jax.vjp in {configurations} configurations", bwd),
        details={"jax_nn_dot_product_attention_max_abs_err_float32_softmax": max(gaps)},
    )


def _processor(x: jax.Array, w1: jax.Array, w2: jax.Array) -> jax.Array:
    """The work done per input token downstream of the attention: a two-layer ReLU MLP (d -> h -> d)."""
    return jax.nn.relu(x @ w1) @ w2


@claim(
    "beyond/attention-reduces-computation-by-selecting-a-subset",
    aliases=["beyond/soft-attention-does-not-reduce-computation"],
    sources=["S002-50"],
    says="Attention reduces the computational burden of processing high-dimensional input data by selecting, "
    "in a structured way, a subset of the input, which lowers the data's dimension (减少处理高维输入数据的计算负担,"
    "结构化的选取输入的子集,从而降低数据的维度).",
    expected="qualified",
    correction="True of hard attention, which the sentence describes: scoring n inputs and processing only the "
    "k selected costs less than processing all n. Not of soft (dot-product) attention, the form of "
    "Transformers and attention decoders: every input gets a non-zero weight, so no subset is selected, and "
    "adding self-attention to the same per-token processing adds about 4 n^2 d FLOPs, quadratic in n.",
    scope={
        "n": [64, 256],
        "d": 32,
        "hidden": 128,
        "selected_fraction": [0.125, 0.5],
        "baseline": "the same per-token MLP applied to all n inputs, without attention",
    },
)
def _attention_cost(scope) -> Evidence:
    d, h = scope["d"], scope["hidden"]
    rng = np.random.default_rng(11)
    w1, w2, query = (rng.normal(size=s) / np.sqrt(s[0]) for s in ((d, h), (h, d), (d,)))
    rows, hard_cheaper, soft_cheaper, dense = {}, [], [], []
    inputs = {n: rng.normal(size=(n, d)) for n in scope["n"]}
    smallest_weight = jax.jit(lambda xs: [jnp.min(attention_weights(t[None, :, None], t[None, :, None])) for t in xs])
    smallest = dict(zip(inputs, (float(w) for w in smallest_weight(list(inputs.values()))), strict=True))
    for n, x in inputs.items():
        baseline = xla_cost(lambda t: _processor(t, w1, w2), x)["flops"]
        soft = xla_cost(
            lambda t: _processor(
                dot_product_attention(t[None, :, None], t[None, :, None], t[None, :, None])[0, :, 0], w1, w2
            ),
            x,
        )["flops"]
        dense.append(smallest[n] > 0.0)
        row = {"baseline": baseline, "soft_self_attention": soft, "4n^2d": 4 * n * n * d}
        for fraction in scope["selected_fraction"]:
            k = max(1, int(fraction * n))

            def hard(t, k=k):
                chosen = jax.lax.top_k(t @ query, k)[1]  # score every input, keep the k best (a glimpse)
                return _processor(t[chosen], w1, w2)

            row[f"hard_top_{k}"] = xla_cost(hard, x)["flops"]
            hard_cheaper.append(row[f"hard_top_{k}"] < baseline)
        soft_cheaper.append(soft < baseline)
        rows[n] = row
    return evidence(
        "measurement",
        core(
            f"hard attention (score all n inputs, process the top k, k/n in {scope['selected_fraction']}) costs "
            f"fewer XLA FLOPs than processing all n, n in {scope['n']}",
            all(hard_cheaper),
            largest_hard_to_baseline=max(
                v[key] / v["baseline"] for v in rows.values() for key in v if key.startswith("hard")
            ),
        ),
        scoped("soft (dot-product) attention selects a subset: some input gets weight 0", not all(dense)),
        scoped(
            "soft self-attention in front of the same processing reduces its FLOPs",
            all(soft_cheaper),
            soft_to_baseline_at_largest_n=rows[scope["n"][-1]]["soft_self_attention"]
            / rows[scope["n"][-1]]["baseline"],
        ),
        details={str(n): v for n, v in rows.items()},
    )


# --- GANs ----------------------------------------------------------------------------------------------


def _distribution_pairs(sizes: list[int], seed: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs of distributions over ``size`` points: random, nearly disjoint, and equal."""
    rng = np.random.default_rng(seed)
    pairs = []
    for size in sizes:
        a, b = rng.uniform(0.1, 1.0, size), rng.uniform(0.1, 1.0, size)
        far = np.where(np.arange(size) < size // 2, 1.0, 1e-6)
        pairs += [(a / a.sum(), b / b.sum()), (far / far.sum(), far[::-1] / far.sum()), (a / a.sum(), a / a.sum())]
    return pairs


GAN_SCOPE = {"points": [2, 8, 64], "rivals": 2000, "pairs": "random, nearly disjoint (1e-6 mass), equal"}


@claim(
    "beyond/optimal-discriminator-is-pdata-over-pdata-plus-pg",
    sources=["S002-49"],
    says="The discriminative model judges whether a given image is a real image; the generative model produces "
    "images to fool it, the discriminator tells real from fake (判别模型用于判断给定的图片是不是真实的图片 ... "
    "生成模型产生图片去欺骗判别模型,判别模型去判别真假). The claim tests a gloss: the best discriminator is "
    "D* = p_data / (p_data + p_g).",
    expected="holds",
    scope={**GAN_SCOPE, "points": [2, 64], "ulps": 8},
    tolerance="the gradient of V at D* is 0 in exact arithmetic; in float64 each component is bounded by a few "
    "ulps (scope: ulps) of (p_data + p_g) / min(D*, 1 - D*), the condition of forming 1 - D* and dividing by it",
)
def _optimal_discriminator(scope) -> Evidence:
    d_star_eq, curvature_eq = optimal_discriminator()
    stationary = vanishes(sp.diff(gan_pointwise_value(), disc).subs(disc, d_star_eq.rhs))
    optimum, curvature = to_jax(d_star_eq, (p_data, p_gen)), to_jax(curvature_eq, (p_data, p_gen))
    ulps, rivals_n = scope["ulps"], scope["rivals"]

    def measure(data, generated, sub):
        # The gradient at D* against its rounding bound, the best rival's margin, and the displayed curvature.
        d_star = optimum(data, generated)
        bound = ulps * np.finfo(np.float64).eps * (data + generated) / jnp.minimum(d_star, 1 - d_star)
        share = jnp.max(jnp.abs(jax.grad(gan_value)(d_star, data, generated)) / bound)
        rivals = jax.random.uniform(sub, (rivals_n, data.size), dtype=jnp.float64, minval=1e-4, maxval=1 - 1e-4)
        rivals = jnp.concatenate([rivals, jnp.clip(d_star + 1e-3, 1e-9, 1 - 1e-9)[None]])
        scores = jax.vmap(gan_value, (0, None, None))(rivals, data, generated)
        gap = jnp.max(scores - gan_value(d_star, data, generated))
        return share, gap, jnp.max(curvature(data, generated))

    @jax.jit
    def measure_all(pairs):  # every pair in one compiled program, the key split in sequence as before
        key, out = jax.random.key(3), []
        for data, generated in pairs:
            key, sub = jax.random.split(key)
            out.append(measure(data, generated, sub))
        return out

    grads, gaps, curvatures = [], [], []
    for share, gap, bend in jax.device_get(measure_all(_distribution_pairs(scope["points"]))):
        grads.append(float(share))
        gaps.append(float(gap))
        curvatures.append(float(bend))
    return evidence(
        "autodiff",
        core("SymPy: dV/dD vanishes at D* = p_data / (p_data + p_g)", stationary),
        core(
            "the second derivative there (the displayed formula) is negative at every point of every pair",
            max(curvatures) < 0,
            largest_curvature=max(curvatures),
        ),
        core(
            f"|jax.grad V| at D* is 0 up to rounding ({scope['ulps']} ulps of its condition), for {len(grads)} pairs "
            f"of distributions over {scope['points']} points",
            max(grads) <= 1.0,
            largest_share_of_bound=max(grads),
            dtype="float64",
        ),
        core(
            f"{scope['rivals']} random discriminators and one near D* all score lower, for every pair",
            max(gaps) < 0,
            largest_gap=max(gaps),
            samples=scope["rivals"] * len(gaps),
        ),
    )


def _jsd_value(t, width, grid):
    """V(D*, G) + log 4 = 2 JSD for p_data a bump at 0 and p_g the same bump at t, on ``grid``."""
    # A floor of 1e-30 keeps D* = pd / (pd + pg) defined where both bumps underflow.
    pd = jnp.exp(-0.5 * (grid / width) ** 2) + 1e-30
    pg = jnp.exp(-0.5 * ((grid - t) / width) ** 2) + 1e-30
    pd, pg = pd / jnp.sum(pd), pg / jnp.sum(pg)
    both = jnp.log(pd + pg)  # V(D*) in the form p log D* + q log(1 - D*) with logs that stay finite
    return jnp.sum(pd * (jnp.log(pd) - both) + pg * (jnp.log(pg) - both))


_jsd_gradient = jax.jit(jax.grad(_jsd_value))


def _generator_gradient(theta: float, width: float, grid: np.ndarray) -> float:
    """d/dtheta of V(D*, G) = -log 4 + 2 JSD for p_data a bump at 0 and p_g the same bump at theta."""
    return float(_jsd_gradient(np.float64(theta), np.float64(width), np.asarray(grid, dtype=np.float64)))


_gan_values = jax.jit(lambda triples: [gan_value(*triple) for triple in triples])  # one program for all pairs


@claim(
    "beyond/gan-value-at-the-optimal-discriminator-is-minus-log-4-plus-2-jsd",
    sources=["S002-49"],
    says="The generative model generates an image itself that looks very like the wanted image "
    "(生成模型自己生成一张图片和想要的图片很像).",
    expected="qualified",
    correction="What the identity shows: against the optimal discriminator the generator's objective is "
    "-log 4 + 2 JSD(p_data || p_g), lowest (-log 4) exactly when p_g = p_data, so the generator's best "
    "response is to produce data like the real ones. It does not show that the generator learns it: when "
    "the two distributions do not overlap the JSD is flat at log 2 and the generator's gradient vanishes "
    "(and simultaneous training need not converge, next claim).",
    scope={**GAN_SCOPE, "shifts_in_widths": [1.0, 3.0, 40.0], "width": 0.05, "vanishing_ratio": 1e-6},
)
def _gan_jsd(scope, rtol) -> Evidence:
    import scipy.spatial.distance  # here: a top-level import costs every process that loads the chapter ~1 s
    identity = value_at_optimal_discriminator()
    proof = prove_identity(identity.lhs, identity.rhs, [p_data, p_gen], sampler=lambda rng, n: rng.uniform(0.01, 1, n))
    values, jsds, equal = [], [], []
    pairs = _distribution_pairs(scope["points"])
    values = [float(v) for v in _gan_values([(d / (d + g), d, g) for d, g in pairs])]
    for data, generated in pairs:
        jsds.append(-np.log(4) + 2 * scipy.spatial.distance.jensenshannon(data, generated) ** 2)  # scipy: sqrt, nats
        equal.append(bool(np.array_equal(data, generated)))
    against_scipy = compare(lambda: np.asarray(values), lambda: np.asarray(jsds), [], rtol=rtol)
    lowest_only_at_equality = all(
        abs(v + np.log(4)) <= rtol * np.log(4) if e else v > -np.log(4) for v, e in zip(values, equal, strict=True)
    )
    grid = np.linspace(-1.0, 3.0, 801)
    gradients = {s: _generator_gradient(s * scope["width"], scope["width"], grid) for s in scope["shifts_in_widths"]}
    overlapping = abs(gradients[scope["shifts_in_widths"][0]])
    ratio = min(abs(g) for g in gradients.values()) / overlapping
    return evidence(
        "measurement",
        proved("SymPy: the pointwise value at D* equals the JSD form", proof),
        compared(
            f"V(D*) equals -log 4 + 2 JSD (scipy.spatial.distance.jensenshannon) for {len(values)} pairs", against_scipy
        ),
        core("V(D*) is -log 4 exactly for p_g = p_data and above it for every other pair", lowest_only_at_equality),
        scoped(
            f"the generator's gradient against D* does not vanish: a bump shifted by {scope['shifts_in_widths']} "
            f"widths, smallest |dV/dtheta| over the overlapping one above {scope['vanishing_ratio']}",
            ratio > scope["vanishing_ratio"],
            smallest_gradient_ratio=ratio,
        ),
        details={"gradients_by_shift": {str(s): g for s, g in gradients.items()}},
    )


def _dirac_gan_field(theta, psi):
    """(-dV/dtheta, dV/dpsi) for V = f(psi theta), f(t) = -log(1 + e^-t), by jax.grad."""
    g_theta, g_psi = jax.grad(lambda a, b: -jax.nn.softplus(-a * b), argnums=(0, 1))(theta, psi)
    return jnp.stack([-g_theta, g_psi])


@jax.jit
def _dirac_gan_at_rest(origin):
    """jax.jacfwd of the field and the field itself at the equilibrium, in one compiled program."""
    return jax.jacfwd(lambda s: _dirac_gan_field(s[0], s[1]))(origin), _dirac_gan_field(origin[0], origin[1])


@functools.partial(jax.jit, static_argnums=(2, 3))
def _dirac_gan_runs(lrs, starts, steps, alternating=False):
    """The distance to the equilibrium after ``steps`` gradient steps, one run per (lr, start): simultaneous, or
    alternating (the discriminator's step first, then the generator's at the updated discriminator, as in
    Goodfellow et al.'s Algorithm 1 with one D step)."""

    def run(lr, start):
        def step(state, _):
            if not alternating:
                return state + lr * _dirac_gan_field(state[0], state[1]), None
            state = state.at[1].add(lr * _dirac_gan_field(state[0], state[1])[1])
            return state.at[0].add(lr * _dirac_gan_field(state[0], state[1])[0]), None

        return jnp.hypot(*jax.lax.scan(step, start, None, length=steps)[0])

    return jax.vmap(run)(lrs, starts)


@claim(
    "beyond/simultaneous-gradient-descent-on-a-gan-need-not-converge",
    sources=["S002-49"],
    says="At first neither model is trained; then the two are trained adversarially together, grow stronger "
    "during training and finally reach a steady state (然后两个模型一起进行对抗训练 ... 最终达到稳态).",
    expected="qualified",
    correction="The game has an equilibrium (p_g = p_data, D = 1/2), but gradient training need not reach it: "
    "on the Dirac-GAN the simultaneous-gradient field has purely imaginary eigenvalues +-i/2 at the "
    "equilibrium, so simultaneous gradient steps spiral away from it at any learning rate, and alternating steps "
    "(the usual way to train a GAN) circle it without approaching it (over the 2000 steps run, at about the "
    "starting distance). Convergence "
    "needs more (e.g. a gradient penalty on the discriminator, Mescheder et al., 2018).",
    scope={"learning_rates": [0.01, 0.1, 0.5], "starts": [(0.5, 0.5), (0.05, 0.0), (1.0, -0.3)], "steps": 2000},
)
def _dirac_gan(scope, rtol) -> Evidence:
    shown = dirac_gan_jacobian()
    eigenvalues = np.asarray([complex(e) for e in instantiate(shown)], dtype=np.complex128)
    jacobian, field_at_rest = jax.device_get(_dirac_gan_at_rest(np.zeros(2)))
    numeric = np.sort_complex(np.linalg.eigvals(np.asarray(jacobian)))
    match = compare(
        lambda: np.concatenate([numeric.real, numeric.imag]) + 1.0,
        lambda: np.concatenate([np.sort_complex(eigenvalues).real, np.sort_complex(eigenvalues).imag]) + 1.0,
        [],
        rtol=rtol,
    )
    at_rest = float(np.max(np.abs(field_at_rest)))
    lrs, starts = np.asarray(scope["learning_rates"]), np.asarray(scope["starts"], dtype=np.float64)
    ends = np.asarray(
        _dirac_gan_runs(np.repeat(lrs, len(starts)), np.tile(starts, (len(lrs), 1)), scope["steps"])
    )
    runs = {
        f"lr={lr}, start={tuple(start)}": {"start": float(np.hypot(*start)), "end": float(end)}
        for (lr, start), end in zip(itertools.product(lrs, starts), ends, strict=True)
    }
    converged = [v["end"] < v["start"] for v in runs.values() if v["start"] > 0]
    alternated = np.asarray(_dirac_gan_runs(np.repeat(lrs, len(starts)), np.tile(starts, (len(lrs), 1)),
                                            scope["steps"], alternating=True))  # fmt: skip
    halfway = [end < 0.5 * float(np.hypot(*start)) for start, end in zip(np.tile(starts, (len(lrs), 1)), alternated,
                                                                          strict=True)]  # fmt: skip
    return evidence(
        "measurement",
        core(
            "the equilibrium (theta, psi) = (0, 0) is a steady state: the gradient field vanishes there", at_rest == 0.0
        ),
        compared(
            "the displayed eigenvalues +-i f'(0) equal those of jax.jacfwd of the field (real and imaginary "
            "parts, shifted by 1)",
            match,
        ),
        scoped(
            f"simultaneous gradient steps approach it, for learning rates {scope['learning_rates']} and "
            f"{len(scope['starts'])} starts ({scope['steps']} steps)",
            all(converged),
            smallest_growth=min(v["end"] / v["start"] for v in runs.values() if v["start"] > 0),
        ),
        scoped(
            "alternating steps (the discriminator's, then the generator's) approach it: within half the starting "
            f"distance after {scope['steps']} steps, for every learning rate and start",
            all(halfway),
            end_over_start=str([round(float(e / np.hypot(*st)), 3)
                                for st, e in zip(np.tile(starts, (len(lrs), 1)), alternated, strict=True)]),
        ),
        details=runs,
    )


# --- softmax variants ------------------------------------------------------------------------------------

_S001_26 = "'Modified softmax' (魔改 softmax: S001-26 is a heading only). This claim tests a gloss: "


def _rows(seed: int, batch: int = 64, scale: float = 2.0) -> np.ndarray:
    """Rows (logits z_1..z_K, a one-hot target y_1..y_K), made in NumPy (no program per shape)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, scale, (batch, K)), np.eye(K)[rng.integers(0, K, batch)]], axis=1)


def _sum_to_one_proofs(derived, shown: sp.Matrix, zs, ys, extra) -> list:
    """SymPy's gradient against the displayed one, with y_K = 1 - sum of the others (the target sums to 1)."""
    subs = {ys[-1]: 1 - sum(ys[:-1])}
    return [
        prove_identity(
            a.subs(subs), b.subs(subs), [*zs, *ys[:-1], *extra], sampler=lambda rng, n: rng.uniform(0.05, 3.0, n)
        )
        for a, b in zip(derived, shown, strict=True)
    ]


@claim(
    "beyond/temperature-softmax-gradient-is-softmax-minus-target-over-t",
    sources=["S001-26"],
    says=_S001_26 + "a temperature T divides the logits, and the cross-entropy's gradient becomes "
    "(softmax(z / T) - y) / T.",
    expected="holds",
    scope={"T": [0.05, 0.5, 2.0, 10.0], "K": K, "logit_scales": [0.1, 2.0, 20.0]},
)
def _temperature(scope, rtol) -> Evidence:
    zs, ys = logits(), targets()
    shown = temperature_softmax_gradient()
    derived = [sp.diff(cross_entropy(tuple(v / temperature for v in zs), ys), v) for v in zs]
    proofs = _sum_to_one_proofs(derived, shown.rhs, zs, ys, [temperature])
    formula = to_jax(shown, (*zs, *ys, temperature))

    @jax.jit
    def both(rows, t):
        # softmax and its gradient are unchanged by z -> z - max z; shifted, the displayed formula cannot overflow.
        shifted = rows.at[:, :K].add(-jnp.max(rows[:, :K], axis=1, keepdims=True))
        by_formula = jax.vmap(lambda row: formula(*row, t)[:, 0])(shifted)
        by_optax = jax.vmap(jax.grad(lambda row: optax.softmax_cross_entropy(row[:K] / t, row[K:])))(rows)[:, :K]
        return by_formula, by_optax

    got, want = [], []
    for i, (t, s) in enumerate((t, s) for t in scope["T"] for s in scope["logit_scales"]):
        by_formula, by_optax = jax.device_get(both(_rows(4 + i, scale=s), np.float64(t)))
        got.append(by_formula)
        want.append(by_optax)
    cmp = compare(lambda: np.concatenate(got), lambda: np.concatenate(want), [], rtol=rtol)
    return evidence(
        "autodiff",
        *(
            proved(
                f"SymPy: dCE/dz_{j + 1} of softmax(z/T) equals the displayed (softmax(z/T) - y)_{j + 1} / T when "
                "the target sums to 1",
                proof,
            )
            for j, proof in enumerate(proofs)
        ),
        compared(
            f"the displayed gradient equals jax.grad of optax.softmax_cross_entropy(z / T, y) for T in "
            f"{scope['T']}, logit scales {scope['logit_scales']}",
            cmp,
        ),
    )


@claim(
    "beyond/label-smoothing-gradient-is-softmax-minus-smoothed-target",
    sources=["S001-26"],
    says=_S001_26 + "label smoothing replaces the one-hot target by (1 - alpha) y + alpha / K, and the gradient "
    "becomes softmax(z) minus that target.",
    expected="holds",
    scope={"alpha": [0.0, 0.1, 0.3, 1.0], "K": K, "logit_scales": [0.1, 2.0, 20.0]},
    atol=1e-15,
    tolerance="softmax(z)_k minus the target cancels two numbers below 1 (to ~1e-9 at alpha = 1, small logits): "
    "an absolute error of a few float64 ulps (1e-15) is the rounding floor",
)
def _label_smoothing(scope, rtol, atol) -> Evidence:
    zs, ys = logits(), targets()
    shown = label_smoothing_gradient()
    derived = [sp.diff(cross_entropy(zs, smoothed_target(ys)), v) for v in zs]
    proofs = _sum_to_one_proofs(derived, shown.rhs, zs, ys, [smoothing])
    formula = to_jax(shown, (*zs, *ys, smoothing))

    @jax.jit
    def both(rows, a):
        by_formula = jax.vmap(lambda row: formula(*row, a)[:, 0])(rows)
        smoothed = jax.grad(lambda row: optax.softmax_cross_entropy(row[:K], optax.smooth_labels(row[K:], a)))
        return by_formula, jax.vmap(smoothed)(rows)[:, :K]

    got, want = [], []
    for i, (a, s) in enumerate((a, s) for a in scope["alpha"] for s in scope["logit_scales"]):
        by_formula, by_optax = jax.device_get(both(_rows(40 + i, scale=s), np.float64(a)))
        got.append(by_formula)
        want.append(by_optax)
    cmp = compare(lambda: np.concatenate(got), lambda: np.concatenate(want), [], rtol=rtol, atol=atol)
    return evidence(
        "autodiff",
        *(
            proved(
                f"SymPy: dCE/dz_{j + 1} with the smoothed target equals the displayed softmax(z)_{j + 1} minus it",
                proof,
            )
            for j, proof in enumerate(proofs)
        ),
        compared(
            f"the displayed gradient equals jax.grad of optax (softmax_cross_entropy of smooth_labels) for "
            f"alpha in {scope['alpha']}, logit scales {scope['logit_scales']}",
            cmp,
        ),
    )


@claim(
    "beyond/additive-margin-softmax-gradient-matches-autodiff",
    sources=["S001-26"],
    says=_S001_26 + "the additive-margin softmax (AM-softmax) subtracts a margin m from the target class's "
    "cosine and scales by s; its gradient is s (p - y) through (w_hat - cos x_hat) / |x|.",
    expected="holds",
    scope={"s": [1.0, 30.0, 64.0], "m": [0.0, 0.35], "classes": 5, "features": 6, "batch": 64},
    atol=1e-13,
    tolerance="s (p_k - y_k) cancels p_k ~ 1 against y_k = 1 and multiplies by s <= 64: 64 x a few float64 ulps "
    "(1e-13) is the rounding floor of an entry near 0",
)
def _additive_margin(scope, rtol, atol) -> Evidence:
    derived, _ = cosine_gradient_pair()
    shown_cos = cosine_gradient()
    xs = sp.symbols("x1:4", real=True)
    cos_proof = prove_identity(derived[0], shown_cos.rhs, [*xs, *sp.symbols("w1:4", real=True)])
    margin_step = additive_margin_gradient()
    cs = sp.symbols("c1:4", real=True)
    dl_dcos = to_jax(margin_step, (*cs, scale_s, margin))
    rng = np.random.default_rng(8)
    cosines = rng.uniform(-1, 1, (scope["batch"], 3))
    n, classes = scope["features"], scope["classes"]
    x = rng.normal(size=(scope["batch"], n))
    w = rng.normal(size=(classes, n))
    labels = rng.integers(0, classes, scope["batch"])
    pairs = [(s, m) for s in scope["s"] for m in scope["m"]]

    @jax.jit
    def both(s, m):
        by_formula = jax.vmap(lambda c: dl_dcos(*c, s, m)[:, 0])(cosines)
        by_optax = jax.vmap(
            jax.grad(lambda c: optax.softmax_cross_entropy_with_integer_labels(s * (c - m * jax.nn.one_hot(0, 3)), 0))
        )(cosines)
        closed = jax.vmap(lambda a, b: am_softmax_input_gradient(a, w, b, s=s, m=m))(x, labels)
        autodiff = jax.vmap(jax.grad(lambda a, b: am_softmax_loss(a, w, b, s=s, m=m)))(x, labels)
        return by_formula, by_optax, closed, autodiff

    results = [jax.device_get(both(np.float64(s), np.float64(m))) for s, m in pairs]
    by_cos = compare(
        lambda: np.concatenate([r[0] for r in results]),
        lambda: np.concatenate([r[1] for r in results]),
        [],
        rtol=rtol,
        atol=atol,
    )
    by_x = compare(
        lambda: np.concatenate([r[2] for r in results]),
        lambda: np.concatenate([r[3] for r in results]),
        [],
        rtol=rtol,
        atol=atol,
    )
    return evidence(
        "autodiff",
        proved("SymPy: d cos(w, x)/dx_1 equals the displayed (w_hat - cos x_hat)_1 / |x|", cos_proof),
        compared(
            f"the displayed dL/dcos equals jax.grad of optax on the margin logits, s in {scope['s']}, m in "
            f"{scope['m']}",
            by_cos,
        ),
        compared(
            f"the chained closed form dL/dx equals jax.grad of am_softmax_loss ({classes} classes, {n}-d features)",
            by_x,
        ),
    )
