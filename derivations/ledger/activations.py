"""The claims of the activations chapter: each derivative against jax.grad of the Flax function over a
domain and at the float64 extremes, the kinks and the conventions libraries choose there, saturation as
limits, the learnable and random variants, dead units in one- and two-hidden-layer networks, and what one
ReLU can classify."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
import sympy.stats as stats
from flax import nnx

from derivations import bridge
from derivations.activations import (
    alpha,
    derivative_check,
    derivative_limits,
    elu,
    lam,
    leaky_relu,
    logits,
    lower,
    prelu_gradients,
    relu,
    relu_derivative,
    rrelu_expected_slope,
    sigmoid,
    sigmoid_derivative_bound,
    softmax,
    softmax_jacobian,
    tanh_note,
    upper,
    z,
)
from derivations.bridge import instantiate, prove_identity, to_jax, value, vanishes
from derivations.claims import Evidence, claim, compared, core, evidence, proved, scoped
from derivations.compare import compare, elementwise_grad, sample_points
from derivations.harness import EXTREME_ATOL, EXTREMES, xla_cost
from models import OPTIMISED
from models.activations import Maxout, OneHiddenReLU, PReLU, RReLU
from models.mlp import init_params_numpy, mlp_with_preactivations

SMOOTH = {"domain": [-4.0, 4.0], "extremes": list(EXTREMES)}
KINKED = {"domain": [-50.0, 50.0], "extremes": list(EXTREMES)}


def _at_zero(expr: sp.Expr) -> sp.Expr:
    """SymPy's value of a piecewise expression at z = 0 (the branch the written form takes at the kink)."""
    return sp.piecewise_fold(expr).subs(z, 0)


# --- derivatives ----------------------------------------------------------------------------------------


@claim(
    "activations/sigmoid-derivative-is-s-times-one-minus-s",
    sources=["S001-11"],
    says="The sigmoid f(z) = 1/(1 + e^{-z}) has derivative f'(z) = f(z)(1 - f(z)).",
    expected="holds",
    scope=SMOOTH,
)
def _sigmoid_derivative(scope, rtol) -> Evidence:
    return derivative_check(sigmoid(), sigmoid() * (1 - sigmoid()), nnx.sigmoid, domain=scope["domain"], rtol=rtol)


@claim(
    "activations/tanh-derivative-is-one-minus-tanh-squared",
    sources=["S001-11"],
    says="tanh f(z) = (e^z - e^{-z})/(e^z + e^{-z}) has derivative f'(z) = 1 - (f(z))^2.",
    expected="holds",
    scope=SMOOTH,
)
def _tanh_derivative(scope, rtol) -> Evidence:
    return derivative_check(tanh_note(), 1 - tanh_note() ** 2, nnx.tanh, domain=scope["domain"], rtol=rtol)


@claim(
    "activations/leaky-relu-derivative-is-one-or-alpha",
    sources=["S001-12"],
    says="Leaky ReLU is f(z) = z for z > 0, alpha z for z <= 0, which keeps part of the negative gradient so that "
    "it is not entirely lost (保留了部分负梯度信息以致不完全丢失). Its value for z <= 0 (其值不为零) is "
    "activations/leaky-relu-is-non-zero-for-z-at-most-zero.",
    expected="holds",
    scope={**KINKED, "alpha": ["1/100", "1/10"]},
)
def _leaky_relu_derivative(scope, rtol) -> Evidence:
    findings, details = [], {}
    for text in scope["alpha"]:
        slope = sp.Rational(text)
        f = leaky_relu(z, slope)
        # Compared away from the kink: the value JAX picks at z = 0 is recorded by relu-subgradient-at-zero.
        found = derivative_check(
            f,
            sp.Piecewise((1, z > 0), (slope, True)),
            lambda x, s=float(slope): nnx.leaky_relu(x, negative_slope=s),
            domain=scope["domain"],
            rtol=rtol,
        )
        findings += [dataclasses.replace(f_, proposition=f"alpha = {text}: {f_.proposition}") for f_ in found.findings]
        details[text] = found.details
    # At z = 0 leaky ReLU has no derivative (one-sided slopes alpha and 1): what the libraries pick there is a
    # convention, not the note's "negative gradient", so it is recorded, not tested.
    details["jax_grad_at_zero"] = float(jax.grad(jax.nn.leaky_relu)(0.0))
    return evidence("autodiff", *findings, details=details)


@claim(
    "activations/elu-derivative-is-elu-plus-lambda-on-the-left",
    sources=["S001-12"],
    says="ELU(x) = x for x >= 0, lambda (e^x - 1) for x < 0 (its derivative: 1 for x > 0 and "
    "lambda e^x = ELU(x) + lambda for x < 0, a gloss: the note gives only the function).",
    expected="holds",
    scope={**SMOOTH, "lambda": ["1", "3/2"]},
)
def _elu_derivative(scope, rtol) -> Evidence:
    findings = []
    for text in scope["lambda"]:
        scale = sp.Rational(text)
        f = elu(z, scale)
        found = derivative_check(
            f,
            sp.Piecewise((1, z >= 0), (f + scale, True)),
            lambda x, s=float(scale): nnx.elu(x, alpha=s),
            domain=scope["domain"],
            rtol=rtol,
        )
        findings += [dataclasses.replace(f_, proposition=f"lambda = {text}: {f_.proposition}") for f_ in found.findings]
    kink = _at_zero(sp.diff(elu(), z))
    findings.append(
        core(
            "the note's form takes its x >= 0 branch at 0: SymPy's derivative there is 1", kink == 1, at_zero=str(kink)
        )
    )
    return evidence("autodiff", *findings)


@claim(
    "activations/relu-derivative-is-a-step",
    sources=["S001-11"],
    says="ReLU f(z) = max(0, z) has derivative f'(z) = 1 for z > 0 and 0 for z <= 0.",
    expected="qualified",
    correction="For z != 0 yes. At z = 0 ReLU has no derivative: 0 is a choice from the "
    "subdifferential [0, 1]. It is the choice jax.nn.relu makes, but not jnp.maximum(z, 0) (1/2) "
    "nor SymPy's Heaviside (1/2).",
    scope={**KINKED, "kink": 0},
)
def _relu_derivative(scope, rtol) -> Evidence:
    away = derivative_check(relu(), sp.Piecewise((1, z > 0), (0, True)), nnx.relu, domain=scope["domain"], rtol=rtol)
    displayed = relu_derivative()
    step = to_jax(displayed, [z])  # the displayed derivative, d/dz Max(0, z) = Heaviside(z)
    points = sample_points(256, *scope["domain"], seed=3)
    points = points[points != 0]
    heaviside = compare(step, elementwise_grad(nnx.relu), [points], rtol=rtol)
    left = sp.limit(relu() / z, z, scope["kink"], "-")  # one-sided difference quotients at 0
    right = sp.limit(relu() / z, z, scope["kink"], "+")
    return evidence(
        "autodiff",
        *away.findings,
        compared("the displayed derivative (SymPy's Heaviside) equals jax.grad(relu) away from 0", heaviside),
        scoped(
            "ReLU is differentiable at z = 0 (its one-sided difference quotients agree)",
            left == right,
            left=str(left),
            right=str(right),
        ),
        details={"left_derivative_at_0": str(left), "right_derivative_at_0": str(right), **away.details},
    )


@jax.jit
def _bias_gradients_at_the_kink(x, kernel, head):
    """A 3x3 conv with zero bias (nnx.Conv's default initialisation) and a ReLU, read out by a fixed linear head:
    the fraction of pre-activations exactly 0, and dL/dbias with relu'(0) = 0 and with relu'(0) = 1."""

    def loss(bias, at_zero):
        z = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
        hidden = jnp.where(z >= 0, z, 0.0) if at_zero else jnp.where(z > 0, z, 0.0)  # derivative 1 / 0 at z = 0
        return jnp.sum(hidden * head), z

    bias = jnp.zeros(kernel.shape[-1], x.dtype)
    (_, z), zero = jax.value_and_grad(loss, has_aux=True)(bias, False)
    one = jax.grad(lambda b: loss(b, True)[0])(bias)
    return jnp.mean(z == 0), zero, one


@claim(
    "activations/relu-subgradient-at-zero",
    sources=["S002-34", "S003-09"],
    says="ReLU is not differentiable at 0; the subdifferential at 0 is [0, 1], choose one of it; the default is "
    "usually 0 (在0处的次微分集合是【0，1】；即选择其中一个就OK了；一般默认是0). Whether a 0 input is unlikely is "
    "activations/relu-inputs-are-rarely-exactly-zero.",
    expected="holds",
    scope={"kink": 0, "libraries": ["jax.nn.relu", "jnp.maximum(z, 0)", "lambdify(Max(0, z))", "SymPy Heaviside(0)"]},
)
def _relu_subgradient(scope) -> Evidence:
    left = sp.limit(relu() / z, z, scope["kink"], "-")
    right = sp.limit(relu() / z, z, scope["kink"], "+")
    # ReLU is convex, so its subdifferential at 0 is the interval between the one-sided derivatives.
    subdifferential = sp.Interval(left, right)
    at_zero = {
        "jax.nn.relu": float(jax.grad(jax.nn.relu)(0.0)),
        "jnp.maximum(z, 0)": float(jax.grad(lambda v: jnp.maximum(v, 0.0))(0.0)),
        "lambdify(Max(0, z))": float(jax.grad(to_jax(relu(), [z]))(0.0)),
        "SymPy Heaviside(0)": float(instantiate(relu_derivative(), {z: 0})),
    }
    at_zero = {k: at_zero[k] for k in scope["libraries"]}
    # Every subgradient is a valid descent direction for a convex f: check f(v) >= f(0) + g v for each g used.
    v = np.linspace(-3.0, 3.0, 61)
    relu_v = np.asarray(jax.jit(jax.nn.relu)(v))  # the comparisons in NumPy
    supports = {k: bool(np.all(relu_v >= g * v)) for k, g in at_zero.items()}
    return evidence(
        "symbolic",
        core(
            "the subdifferential of ReLU at 0 is [0, 1]",
            subdifferential == sp.Interval(0, 1),
            subdifferential=str(subdifferential),
        ),
        core(
            "every value these libraries use at 0 lies in [0, 1] and is a subgradient (relu(v) >= g v)",
            all(subdifferential.contains(sp.Float(g)) == sp.true for g in at_zero.values()) and all(supports.values()),
            samples=len(at_zero),
        ),
        core("the usual default, jax.nn.relu's, is 0", at_zero.get("jax.nn.relu") == 0.0),
        details={
            "subdifferential": str(subdifferential),
            "gradient_at_zero": at_zero,
            "leaky_relu_and_elu_at_zero": {
                "jax.nn.leaky_relu": float(jax.grad(jax.nn.leaky_relu)(0.0)),
                "jax.nn.elu": float(jax.grad(jax.nn.elu)(0.0)),
            },
        },
    )


@claim(
    "activations/relu-inputs-are-rarely-exactly-zero",
    sources=["S002-34"],
    says="Since a 0 input is very unlikely, any subgradient will do "
    "(由于这出现的0值的概率极低，任意选择一个子梯度就OK了).",
    expected="qualified",
    correction="Only for inputs and biases drawn from continuous distributions. With zero biases every window of "
    "an image's zero background gives a pre-activation of exactly 0, and there the subgradient chosen changes the "
    "gradient (Bertoin et al. 2021): at initialisation (zero biases are nnx.Conv's and nnx.Linear's default), and "
    "throughout training in a convolution without bias (use_bias=False before BatchNorm).",
    scope={"dense": {"examples": 256, "fan_in": 16, "units": 64, "inputs": "N(0, 1)", "biases": "N(0, 1)"},
           "images": {"batch": 8, "side": 28, "object": 12, "background": 0.0, "channels_out": 4,
                      "biases": "0 (nnx.Conv's default)"},
           "rare_below": 0.01},
)
def _relu_zero_inputs(scope) -> Evidence:
    rng = np.random.default_rng(21)
    d = scope["dense"]
    dense_z = rng.normal(size=(d["examples"], d["fan_in"])) @ rng.normal(size=(d["fan_in"], d["units"])) + rng.normal(
        size=d["units"]
    )
    im = scope["images"]
    x = np.zeros((im["batch"], im["side"], im["side"], 1))
    lo = (im["side"] - im["object"]) // 2
    side = slice(lo, lo + im["object"])
    x[:, side, side, 0] = rng.uniform(size=(im["batch"], im["object"], im["object"]))
    conv = nnx.Conv(1, im["channels_out"], (3, 3), param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    head = jax.device_put(rng.normal(size=(*x.shape[:3], im["channels_out"])))
    zeros, g0, g1 = _bias_gradients_at_the_kink(jax.device_put(x), conv.kernel[...], head)
    g0, g1 = np.asarray(g0), np.asarray(g1)
    rare = scope["rare_below"]
    return evidence(
        "measurement",
        core(f"continuous inputs and biases: none of {dense_z.size} dense pre-activations is exactly 0",
             int(np.sum(dense_z == 0)) == 0, exact_zeros=int(np.sum(dense_z == 0))),
        scoped(f"images with a zero background ({im['object']}x{im['object']} objects in {im['side']}x{im['side']}), "
               f"a zero-bias 3x3 conv: under {rare:.0%} of its pre-activations are exactly 0 (bias_gradient_change: "
               "how far dL/dbias with relu'(0) = 1 is from relu'(0) = 0, relative to its largest entry)",
               float(zeros) < rare, exact_zero_fraction=float(zeros),
               bias_gradient_change=float(np.max(np.abs(g1 - g0)) / np.max(np.abs(g1)))),
        details={"bias_gradient_relu_prime_0": g0.tolist(), "bias_gradient_relu_prime_1": g1.tolist()},
    )


@claim(
    "activations/leaky-relu-is-max-of-az-and-z",
    sources=["S003-06"],
    says="leaky ReLU = max(ax, x).",
    expected="qualified",
    correction="Only for a <= 1. For a > 1, max(az, z) is az on the positive side and z on the negative "
    "side: a different function. The piecewise form (z for z > 0, az otherwise) is the definition.",
    scope={"a": ["0", "1/100", "1", "2", "10"]},
)
def _leaky_relu_max_form(scope) -> Evidence:
    results = {
        a: prove_identity(sp.Max(sp.Rational(a) * z, z), leaky_relu(z, sp.Rational(a)), [z]).holds for a in scope["a"]
    }
    usual = [a for a in scope["a"] if sp.Rational(a) <= 1]
    above = [a for a in scope["a"] if sp.Rational(a) > 1]
    return evidence(
        "symbolic",
        core(
            "max(az, z) equals Leaky ReLU for the slopes Leaky ReLU uses (0 <= a <= 1)",
            all(results[a] for a in usual),
            slopes=", ".join(usual),
        ),
        scoped(
            "max(az, z) equals Leaky ReLU for every slope a, a > 1 included",
            all(results[a] for a in above),
            slopes=", ".join(above),
        ),
        details={"equal_for_slope": results},
    )


# --- saturation -----------------------------------------------------------------------------------------


@bridge.cache
def _limits() -> dict[str, tuple[sp.Expr, sp.Expr]]:
    """f'(-oo) and f'(+oo) per function, read off the displayed matrix (derivative_limits())."""
    table = instantiate(derivative_limits())
    return {str(table[i, 0]): (table[i, 1], table[i, 2]) for i in range(table.rows)}


@claim(
    "activations/sigmoid-and-tanh-saturate-on-both-sides",
    sources=["S003-06", "S002-47"],
    says="When the input tends to +oo and the derivative goes to 0 the activation is right-saturating; when it "
    "tends to -oo, left-saturating; one that is both is a saturating activation (sigmoid, tanh).",
    expected="holds",
    scope={"functions": ["sigmoid", "tanh"], "ends": ["-oo", "+oo"], "probe": [-40.0, 40.0]},
)
def _sigmoid_tanh_saturate(scope) -> Evidence:
    table = _limits()
    probe = jnp.asarray(scope["probe"])
    tails = {
        n: np.asarray(elementwise_grad(f)(probe)).tolist() for n, f in (("sigmoid", nnx.sigmoid), ("tanh", nnx.tanh))
    }
    return evidence(
        "symbolic",
        core(
            "f'(-oo) = f'(+oo) = 0 for sigmoid and tanh (SymPy limits)",
            all(table[n] == (0, 0) for n in scope["functions"]),
        ),
        core(
            f"jax.grad of nnx.sigmoid and nnx.tanh is below {EXTREME_ATOL:g} at z = {scope['probe']}",
            all(abs(g) < EXTREME_ATOL for values in tails.values() for g in values),
        ),
        details={
            "limits": {n: {"minus_infinity": str(lo), "plus_infinity": str(hi)} for n, (lo, hi) in table.items()},
            "autodiff_at_probe": tails,
        },
    )


@claim(
    "activations/relu-has-no-saturation-region",
    sources=["S002-25", "S002-47"],
    says="In backpropagation the sigmoid has a saturation region where the gradient is tiny, giving vanishing "
    "gradients; ReLU has no saturation region, so it avoids this.",
    expected="qualified",
    correction="Only on the right: ReLU' = 1 for z > 0. On the left ReLU' is exactly 0 for every z < 0, "
    "so by S003-06's own definition ReLU is left-saturating (harder than sigmoid, whose derivative only "
    "tends to 0). Leaky ReLU is the variant with no saturation on either side.",
    scope={"negative_side": [-1e3, -1e-12], "points": 64},
)
def _relu_saturation(scope) -> Evidence:
    table = _limits()
    lo, hi = scope["negative_side"]
    negative = -np.logspace(np.log10(-hi), np.log10(-lo), scope["points"])
    largest = float(np.max(np.abs(np.asarray(elementwise_grad(jax.nn.relu)(negative)))))
    return evidence(
        "symbolic",
        core(
            "ReLU does not saturate on the right: f'(+oo) = 1, where the sigmoid's is 0",
            table["ReLU"][1] == 1 and table["sigmoid"][1] == 0,
        ),
        scoped(
            "ReLU does not saturate on the left either (f'(-oo) != 0)",
            table["ReLU"][0] != 0,
            limit=str(table["ReLU"][0]),
        ),
        scoped(
            f"jax.grad(relu) is non-zero somewhere on [{lo:g}, {hi:g}]",
            largest > 0,
            max_abs_grad=largest,
            samples=int(negative.size),
        ),
        core(
            "Leaky ReLU has f'(-oo) = alpha != 0 (the variant that does not saturate)",
            vanishes(table["LeakyReLU"][0] - alpha) and table["LeakyReLU"][1] == 1,
        ),
        details={n: {"minus_infinity": str(a), "plus_infinity": str(b)} for n, (a, b) in table.items()},
    )


@claim(
    "activations/elu-removes-the-dead-zone",
    sources=["S001-12"],
    says="ELU has ReLU's advantages and also removes ReLU's own 'dead zone' problem.",
    expected="qualified",
    correction="Mathematically ELU's gradient lambda e^z is positive for every finite z < 0, so no unit is exactly "
    "dead, but it tends to 0 as z -> -oo (ELU is left-saturating). In float64 autodiff it is worse than the "
    "math: JAX differentiates expm1 as expm1(z) + 1, which cancels, so jax.grad(nnx.elu) is exactly 0 from "
    "z of about -37.4 down, although lambda e^z only underflows below about -708 (float64's smallest normal "
    "number; XLA:CPU flushes subnormals to 0).",
    scope={"grid": [-800.0, 0.0, 0.01]},
)
def _elu_dead_zone(scope) -> Evidence:
    positive_for_finite = sp.ask(sp.Q.positive(lam * sp.exp(z)), sp.Q.real(z) & sp.Q.positive(lam))
    left_limit = _limits()["ELU"][0]
    grid = np.asarray(jnp.arange(*scope["grid"]))  # jnp's float arange (not bit-equal to np.arange's)
    grads, exps = (np.asarray(v) for v in jax.jit(lambda g: (jax.vmap(jax.grad(jax.nn.elu))(g), jnp.exp(g)))(grid))
    autodiff_zero = grid[grads == 0.0]
    exact_zero = grid[exps == 0.0]  # XLA's exp, as jnp.exp computes it
    autodiff_from = float(autodiff_zero.max()) if autodiff_zero.size else None
    exact_from = float(exact_zero.max()) if exact_zero.size else None
    return evidence(
        "measurement",
        core(
            "ELU's gradient lambda e^z is positive for every real z (SymPy), so no unit is exactly dead in the math",
            bool(positive_for_finite),
        ),
        scoped("nor does it saturate: ELU'(-oo) != 0", left_limit != 0, limit=str(left_limit)),
        scoped(
            "in float64, jax.grad(nnx.elu) is non-zero wherever e^z is (no dead zone in practice)",
            autodiff_zero.size == exact_zero.size,
            autodiff_zero_from=autodiff_from,
            exp_zero_from=exact_from,
            samples=int(grid.size),
        ),
    )


@claim(
    "activations/sigmoid-derivative-is-at-most-a-quarter",
    sources=["S002-47", "S001-11"],
    says="The sigmoid's derivative is active only near 0; in the saturated regions on both sides it tends to 0 "
    "(its maximum, 1/4 at z = 0, is a gloss).",
    expected="holds",
    scope={"grid": [-10.0, 10.0, 200_001]},
)
def _sigmoid_bound(scope, rtol) -> Evidence:
    bound = sigmoid_derivative_bound()  # 1/4 - s(1 - s) = (2s - 1)^2 / 4
    s = sorted(bound.free_symbols, key=str)[0]
    peak = bound.lhs + s * (1 - s)  # the bound the displayed identity is about
    square_of, lhs_of = to_jax(bound.rhs, [s]), to_jax(bound.lhs, [s])

    @jax.jit
    def measure():
        grid = jnp.linspace(*scope["grid"][:2], scope["grid"][2])
        return grid, jax.vmap(jax.grad(nnx.sigmoid))(grid), square_of(nnx.sigmoid(grid)), lhs_of(nnx.sigmoid(grid))

    grid, measured, square, lhs = (np.asarray(v) for v in measure())
    at_peak = compare(lambda: np.max(measured)[None], lambda: np.asarray([value(peak)]), [], rtol=rtol)
    return evidence(
        "symbolic",
        proved("SymPy: 1/4 - s(1 - s) equals the displayed square", prove_identity(bound.lhs, bound.rhs, [s])),
        core("the square is >= 0 at s = sigma(z) on the grid, so sigma' <= 1/4", bool(np.all(square >= 0))),
        compared(
            f"the largest jax.grad(sigmoid) on {scope['grid'][2]} points of [{scope['grid'][0]:g}, "
            f"{scope['grid'][1]:g}] is the bound",
            at_peak,
            at=float(grid[np.argmax(measured)]),
        ),
        core(
            "it tends to 0 on both sides: sigma'(-oo) = sigma'(+oo) = 0 (SymPy limits)", _limits()["sigmoid"] == (0, 0)
        ),
        details={"bound_minus_derivative_min": float(np.min(lhs))},
    )


@claim(
    "activations/tanh-output-range-is-minus-one-to-one",
    sources=["S003-06"],
    says="tanh is also used for binary classification, and its output range is [-1, 1].",
    expected="qualified",
    correction="Mathematically the range is the open interval (-1, 1): 1 - tanh(z) = 2/(e^{2z} + 1) > 0 and the "
    "bounds are only limits. In floating point the bounds are reached: a correctly rounded float64 tanh returns "
    "exactly 1.0 once 2/(e^{2z} + 1) < 2^-54, i.e. from z = 55 ln(2)/2 (about 19.06); XLA's tanh returns 1.0 "
    "later, from the point the evidence gives, and a few ulps below 1 just before it (not correctly rounded there).",
    scope={"grid": [0.0, 40.0, 0.001], "correctly_rounded_within": 0.01},
)
def _tanh_range(scope) -> Evidence:
    gap = sp.simplify((1 - tanh_note()).rewrite(sp.exp))
    gap_positive = sp.ask(sp.Q.positive(2 / (sp.exp(2 * z) + 1)), sp.Q.real(z))
    gap_proof = prove_identity(1 - tanh_note(), 2 / (sp.exp(2 * z) + 1), [z])
    limits = (sp.limit(tanh_note(), z, -sp.oo), sp.limit(tanh_note(), z, sp.oo))
    # float64 has 53 significant bits: 1 - 2^-54 is the midpoint below 1.0, so a correctly rounded tanh gives
    # 1.0 once the gap 2/(e^{2z} + 1) ~ 2 e^{-2z} falls below 2^-54.
    rounding_point = float(sp.solve(sp.Eq(2 * sp.exp(-2 * z), sp.Rational(1, 2**54)), z)[0])
    grid = np.asarray(jnp.arange(*scope["grid"]))  # jnp's float arange (not bit-equal to np.arange's)
    reaches = grid[np.asarray(jax.jit(jnp.tanh)(grid)) == 1.0]  # XLA's tanh; the mask in NumPy
    first_one = float(reaches[0]) if reaches.size else None
    before = jax.jit(jnp.tanh)(jnp.nextafter(first_one, 0.0)) if first_one is not None else None
    return evidence(
        "measurement",
        proved("SymPy: 1 - tanh z = 2/(e^{2z} + 1)", gap_proof),
        core(
            "the values lie in [-1, 1]: 1 - tanh z > 0 (SymPy) and tanh is odd, limits -1 and 1",
            bool(gap_positive) and limits == (-1, 1),
            gap=str(gap),
        ),
        scoped(
            "the closed bounds +-1 are values of tanh in exact arithmetic (SymPy: tanh z = 1 has a real solution)",
            sp.solveset(sp.Eq(tanh_note(), 1), z, sp.S.Reals) != sp.S.EmptySet
            and sp.solveset(sp.Eq(tanh_note(), -1), z, sp.S.Reals) != sp.S.EmptySet,
        ),
        core(
            "in float64, jnp.tanh reaches exactly 1.0 at a finite z",
            first_one is not None,
            first_z=first_one,
            samples=int(grid.size),
        ),
        scoped(
            f"it does so where a correctly rounded tanh does (within {scope['correctly_rounded_within']})",
            first_one is not None and abs(first_one - rounding_point) <= scope["correctly_rounded_within"],
            first_z=first_one,
            correctly_rounded_point=rounding_point,
            ulps_below_one_just_before=(1.0 - float(before)) / 2.0**-53 if before is not None else None,
        ),
    )


@claim(
    "activations/tanh-is-a-zero-centred-rescaled-sigmoid",
    sources=["S003-06"],
    says="Compared with the sigmoid, tanh's output is centred on 0.",
    expected="holds",
    scope={"examples": 1000, "inputs": 16, "pre_activation_std": [0.5, 2.0], "standard_errors": 4.5},
    tolerance="Monte-Carlo: each sample mean must lie within 4.5 standard errors of its centre",
)
def _tanh_zero_centred(scope) -> Evidence:
    rescaled = prove_identity(tanh_note(), 2 * sigmoid(2 * z) - 1, [z])
    odd = vanishes(tanh_note().subs(z, -z) + tanh_note())
    sigmoid_mean = sp.simplify(sigmoid(z) + sigmoid(-z))  # sigma(z) + sigma(-z) = 1: sigma is centred on 1/2
    # Why centring matters: a unit's weight gradient is delta * h; with all-positive inputs h every component has
    # delta's sign. Measured on the Flax functions' outputs for symmetric pre-activations of two scales: the
    # sample mean of sigmoid outputs is near 1/2, of tanh outputs near 0 (within 4.5 standard errors).
    rng = np.random.default_rng(13)
    centred, found = {}, True
    for std in scope["pre_activation_std"]:
        pre = rng.normal(0.0, std, (scope["examples"], scope["inputs"]))
        outputs = dict(zip(("sigmoid", "tanh"), jax.jit(lambda v: (nnx.sigmoid(v), nnx.tanh(v)))(pre), strict=True))
        for name, _f, centre in (("sigmoid", nnx.sigmoid, 0.5), ("tanh", nnx.tanh, 0.0)):
            h = np.asarray(outputs[name]).ravel()
            error = abs(h.mean() - centre) / (h.std(ddof=1) / np.sqrt(h.size))
            centred[f"{name}, std {std}"] = {
                "mean": float(h.mean()),
                "z_score": float(error),
                "all_positive": bool(np.all(h > 0)),
            }
            found &= error <= scope["standard_errors"]
    return evidence(
        "symbolic",
        proved("SymPy: tanh(z) = 2 sigmoid(2z) - 1 (a rescaled sigmoid)", rescaled),
        core(
            "tanh is odd, so its outputs are centred on 0; sigma(z) + sigma(-z) = 1 centres the sigmoid on 1/2",
            odd and sigmoid_mean == 1,
        ),
        core(
            f"measured: tanh outputs average to 0 and sigmoid outputs to 1/2 (within {scope['standard_errors']:g} "
            "standard errors), "
            "for symmetric pre-activations of each scale",
            found,
        ),
        details={"centres": centred},
    )


def _softmax_measured(formulas, points):
    """For (n, K) logits: each formula's Jacobian row by row, jax.jacobian(nnx.softmax) and the softmax
    rows' sums, in one compiled program per K (the formulas are closed over)."""

    @jax.jit
    def run(rows):
        return (
            [jax.vmap(lambda row, f=f: f(*row))(rows) for f in formulas],
            jax.vmap(jax.jacobian(nnx.softmax))(rows),
            jax.vmap(nnx.softmax)(rows).sum(axis=1),
        )

    return jax.device_get(run(jnp.asarray(points)))


@claim(
    "activations/softmax-jacobian-is-diag-s-minus-s-s-transpose",
    sources=["S003-06"],
    says="Softmax(x) = e^x / sum e^x turns the outputs into probabilities that sum to 1 (its Jacobian "
    "diag(s) - s s^T, a gloss, is what backpropagation needs).",
    expected="holds",
    scope={"K": [2, 3, 5], "proved_up_to": 5, "logit_std": 1.0, "points": 64},
)
def _softmax_jacobian(scope, rtol) -> Evidence:
    rng = np.random.default_rng(3)
    findings = []
    displayed = softmax_jacobian()  # K = 3, simplified by SymPy
    zs3 = logits(3)
    findings.append(
        core("the displayed J has the shape of the Jacobian it names (K x K)",
             displayed.lhs.shape == displayed.rhs.shape == (len(zs3), len(zs3)))
    )
    for k in scope["K"]:
        zs = logits(k)
        s = softmax(zs)
        closed_form = sp.diag(*s) - s * s.T
        if k <= scope["proved_up_to"]:
            findings.append(
                core(
                    f"SymPy: the Jacobian of softmax equals diag(s) - s s^T entrywise, K = {k}",
                    all(sp.cancel(e) == 0 for e in s.jacobian(zs) - closed_form),
                )
            )
        formulas = [to_jax(closed_form, zs)] + ([to_jax(displayed, zs3)] if k == len(zs3) else [])
        # N(0, 1) logits: when one logit dominates, s_i(1 - s_i) is computed with cancellation and two
        # correct implementations drift apart by ~eps / (1 - s_i).
        points = rng.normal(0.0, scope["logit_std"], (scope["points"], k))
        by_formula, by_autodiff, sums = _softmax_measured(formulas, points)
        if k == len(zs3):
            findings.append(
                compared(
                    "the displayed K = 3 Jacobian equals jax.jacobian(nnx.softmax)",
                    compare(lambda _, v=by_formula[1]: v, lambda _, v=by_autodiff: v, [points], rtol=rtol),
                )
            )
        findings.append(
            compared(
                f"diag(s) - s s^T equals jax.jacobian(nnx.softmax), K = {k}",
                compare(lambda _, v=by_formula[0]: v, lambda _, v=by_autodiff: v, [points], rtol=rtol),
            )
        )
        findings.append(
            compared(
                f"softmax outputs sum to 1, K = {k}",
                compare(lambda v=sums: v, lambda v=sums: np.ones_like(v), [], rtol=rtol),
            )
        )
    return evidence("autodiff", *findings)


# --- learnable and random variants ------------------------------------------------------------------------


@claim(
    "activations/prelu-gradient-with-respect-to-alpha",
    sources=["S001-12"],
    says="PReLU makes the negative-side slope alpha a learnable parameter of the network, trained with the rest "
    "of the model.",
    expected="holds",
    scope={"alpha": [0.0, 0.25, 0.5, 1.5], "shape": [32, 4]},
)
def _prelu_gradients(scope, rtol) -> Evidence:
    d_input_eq, d_alpha_eq = prelu_gradients()
    d_input, d_alpha = to_jax(d_input_eq, [z, alpha]), to_jax(d_alpha_eq, [z, alpha])
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 2.0, scope["shape"])
    upstream = rng.normal(0.0, 1.0, scope["shape"])

    @jax.jit
    def measure(x, upstream, alphas):
        """nnx.grad of the PReLU module with respect to alpha and x, and the derived gradients, in one program."""
        module = PReLU(scope["shape"][1], dtype=jnp.float64)
        module.alpha[...] = alphas

        def loss(m: PReLU, inputs: jax.Array) -> jax.Array:
            return jnp.sum(upstream * m(inputs))

        a = module.alpha[...]
        return (nnx.grad(loss)(module, x).alpha[...], jax.grad(lambda inputs: loss(module, inputs))(x),
                jnp.sum(upstream * d_alpha(x, a), axis=0), upstream * d_input(x, a))

    grads_alpha, grads_x, derived_alpha, derived_x = (
        np.asarray(v) for v in measure(x, upstream, np.asarray(scope["alpha"], dtype=np.float64))
    )
    return evidence(
        "autodiff",
        compared(
            "dL/dalpha = sum of dy * (derived d/dalpha) per channel equals nnx.grad of the PReLU module",
            compare(lambda: derived_alpha, lambda: grads_alpha, [], rtol=rtol),
        ),
        compared(
            "dL/dz = dy * (derived d/dz) equals jax.grad",
            compare(lambda: derived_x, lambda: grads_x, [], rtol=rtol),
        ),
        core("alpha gets a non-zero gradient in every channel (so training moves it)", bool(np.all(grads_alpha != 0))),
        details={"dL_dalpha": np.asarray(grads_alpha).tolist()},
    )


@claim(
    "activations/rrelu-evaluation-slope-is-the-training-expectation",
    sources=["S001-12"],
    says="Randomized ReLU (RReLU) adds a random mechanism: in training its value follows a uniform distribution, "
    "and at test time it is set to that uniform distribution's mathematical expectation (l + u)/2.",
    expected="holds",
    scope={
        "slope_convention": {"l": "1/8", "u": "1/3"},
        "divisor_convention": {"l": "3", "u": "8"},
        "x": [-3.0, -1.0, -0.25, 0.0, 0.5, 2.0],
        "draws": 20_000,
        "standard_errors": 4.5,
    },
    tolerance="Monte-Carlo: the training-mode mean must lie within 4.5 standard errors of the evaluation output",
)
def _rrelu_expectation(scope, rtol) -> Evidence:
    mean_a, mean_inverse = rrelu_expected_slope()
    slope_cfg = {lower: sp.Rational(scope["slope_convention"]["l"]), upper: sp.Rational(scope["slope_convention"]["u"])}
    divisor_cfg = {
        lower: sp.Rational(scope["divisor_convention"]["l"]),
        upper: sp.Rational(scope["divisor_convention"]["u"]),
    }
    module = RReLU(float(slope_cfg[lower]), float(slope_cfg[upper]), rngs=nnx.Rngs(dropout=7))
    x = np.asarray(scope["x"])
    draws, k = scope["draws"], scope["standard_errors"]
    negative = x < 0

    @nnx.jit
    def measure(m, x):
        # One call on a (draws, n) batch: every element draws its own slope, so each row is a fresh draw.
        train = m(jnp.broadcast_to(x, (draws, x.size)))
        return jnp.mean(train, axis=0), jnp.std(train, axis=0, ddof=1) / np.sqrt(draws), m(x, deterministic=True)

    mean, stderr, evaluation = (np.asarray(v) for v in jax.device_get(measure(module, jnp.asarray(x))))
    z_scores = np.where(stderr > 0, np.abs(mean - evaluation) / np.where(stderr > 0, stderr, 1.0), 0.0)
    eval_slope = compare(
        lambda: evaluation[negative] / x[negative],
        lambda: np.full(int(negative.sum()), value(mean_a, slope_cfg)),
        [],
        rtol=rtol,
    )
    # Xu et al.'s configuration: y = x / a in training (a ~ U(3, 8)), x / ((l + u)/2) at test; numpy draws.
    l_d, u_d = float(divisor_cfg[lower]), float(divisor_cfg[upper])
    outputs = np.asarray(x)[None, :] / np.random.default_rng(8).uniform(l_d, u_d, (draws, 1))
    outputs = np.where(np.asarray(negative)[None, :], outputs, np.asarray(x)[None, :])
    divisor_mean, divisor_err = outputs.mean(axis=0), outputs.std(axis=0, ddof=1) / np.sqrt(draws)
    divisor_test = np.where(np.asarray(negative), np.asarray(x) / value(mean_a, divisor_cfg), np.asarray(x))
    divisor_z = np.abs(divisor_mean - divisor_test)[np.asarray(negative)] / divisor_err[np.asarray(negative)]
    mean_slope = value(mean_inverse, divisor_cfg)
    neg = np.asarray(negative)
    formula_z = np.abs(divisor_mean[neg] / np.asarray(x)[neg] - mean_slope) / (
        divisor_err[neg] / np.abs(np.asarray(x)[neg])
    )
    return evidence(
        "measurement",
        compared(
            "slope convention (y = a x, a ~ U(1/8, 1/3)): the module's evaluation slope is (l + u)/2 = E[a]", eval_slope
        ),
        core(
            f"slope convention: the mean training output is the evaluation output at every x "
            f"(within {k:g} standard errors; exactly where x >= 0)",
            bool(np.all(z_scores <= k)) and bool(np.all(np.where(negative, True, mean == evaluation))),
            max_z_score=float(np.max(z_scores)),
            samples=draws,
        ),
        core(
            f"divisor convention (Xu et al.: a ~ U({l_d:g}, {u_d:g}) divides x): the test value (l + u)/2 is E[a] "
            f"too, and the mean training slope is E[1/a] = ln(u/l)/(u - l) (within {k:g} standard errors), so the "
            "test output x / E[a] is below the mean training output by the Jensen factor (ratio; the note does not "
            "say the outputs agree)",
            bool(np.all(formula_z <= k)) and value(mean_a, divisor_cfg) == (l_d + u_d) / 2,
            max_z_score=float(formula_z.max()),
            samples=draws,
            test_slope=1 / value(mean_a, divisor_cfg),
            mean_training_slope=mean_slope,
            ratio=1 / value(mean_a, divisor_cfg) / mean_slope,
            outputs_z_score=float(divisor_z.max()),
        ),
        details={
            "x": np.asarray(x).tolist(),
            "train_mean": np.asarray(mean).tolist(),
            "standard_error": np.asarray(stderr).tolist(),
            "eval": np.asarray(evaluation).tolist(),
            "divisor_train_mean": divisor_mean.tolist(),
            "divisor_test": divisor_test.tolist(),
        },
    )


@claim(
    "activations/maxout-routes-the-gradient-to-the-winning-piece",
    sources=["S002-16"],
    says="The common activations include ... the MaxOut function (the note only names it; that Maxout outputs the "
    "largest of k affine pieces and only the winning piece gets a gradient is a gloss).",
    expected="holds",
    scope={"pieces": [2, 4], "in": 5, "out": 3, "batch": 8},
)
def _maxout_routing(scope, rtol) -> Evidence:
    findings = []
    n_in, n_out, batch = scope["in"], scope["out"], scope["batch"]
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(size=(batch, n_in)))
    upstream = jnp.asarray(rng.normal(size=(batch, n_out)))
    for pieces in scope["pieces"]:
        module = nnx.jit(lambda p=pieces: Maxout(n_in, n_out, p, rngs=nnx.Rngs(params=2), dtype=jnp.float64))()

        @nnx.jit
        def measure(m, pieces=pieces):
            # One compiled program per k: the module's gradient (whole batch and one sample), its output, and
            # the gradient routed by hand to each output's argmax piece.
            grads = nnx.grad(lambda m_: jnp.sum(upstream * m_(x)))(m).linear
            one = nnx.grad(lambda m_: jnp.sum(upstream[:1] * m_(x[:1])))(m).linear.bias[...]
            pre = m.linear(x).reshape(batch, n_out, pieces)
            # d max_k p_k / d p_k is the indicator of the argmax (ties have probability 0 with continuous inputs).
            winner = jax.nn.one_hot(jnp.argmax(pre, axis=-1), pieces, dtype=x.dtype)
            routed = (upstream[:, :, None] * winner).reshape(batch, n_out * pieces)
            return x.T @ routed, grads.kernel[...], jnp.all(m(x) == jnp.max(pre, axis=-1)), one

        by_hand, kernel_grad, is_max, one = jax.device_get(measure(module))
        findings.append(
            compared(
                f"k = {pieces}: nnx.grad of the Maxout kernel equals the argmax-routed gradient",
                compare(lambda r=by_hand: r, lambda g=kernel_grad: g, [], rtol=rtol),
            )
        )
        findings.append(core(f"k = {pieces}: the output is the largest piece", bool(is_max)))
        findings.append(
            core(
                f"k = {pieces}: for one sample exactly one piece per output has a non-zero gradient",
                bool(np.all(np.count_nonzero(np.asarray(one).reshape(n_out, pieces), axis=1) == 1)),
            )
        )
    return evidence("autodiff", *findings)


# --- dead units ---------------------------------------------------------------------------------------------


def _dying_problem(examples: int):
    """The dying-ReLU experiments' regression: 8 Gaussian inputs, a target of mean 3, and the MSE of a ReLU MLP's
    parameters on it."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(examples, 8)))
    y = jnp.asarray(rng.normal(size=(examples, 1))) + 3.0

    def loss(params):
        return jnp.mean((mlp_with_preactivations(params, x, jax.nn.relu)[1] - y) ** 2)

    return x, y, loss


@bridge.cache
def _dying_experiment(
    depths: tuple[int, ...],
    width: int,
    examples: int,
    learning_rates: tuple[float, ...],
    seeds: int,
    steps: int,
    gentle_rate: float,
    gentle_steps: int,
) -> dict:
    """Train ReLU MLPs (8 -> width x depth -> 1, nnx.Linear's initialisation) on a regression with target mean 3:
    ``steps`` SGD steps at each learning rate, then ``gentle_steps`` more at ``gentle_rate``. A unit is dead when
    its pre-activation is <= 0 on every example. The initialisations are vmapped; one compile per depth."""
    x, _, loss = _dying_problem(examples)

    def dead(params):
        return [jnp.all(p <= 0, axis=0) for p in mlp_with_preactivations(params, x, jax.nn.relu)[0]]

    @functools.partial(jax.jit, compiler_options=OPTIMISED)
    @functools.partial(jax.vmap, in_axes=(0, None))
    def run(params, rate):
        # Both phases in one loop body (half the program to compile): the rate drops after ``steps`` steps,
        # and the weights at that point are kept for the first dead count.
        def step(i, carry):
            q, kept = carry
            lr = jnp.where(i < steps, rate, gentle_rate)
            q = jax.tree.map(lambda w, g: w - lr * g, q, jax.grad(loss)(q))
            kept = jax.tree.map(lambda a, b: jnp.where(i == steps - 1, a, b), q, kept)
            return q, kept

        final, after = jax.lax.fori_loop(0, steps + gentle_steps, step, (params, params))
        return dead(after), dead(final)

    out = {}
    for depth in depths:
        stacked = init_params_numpy(np.random.default_rng(depth), (8, *[width] * depth, 1), count=seeds)
        for rate in learning_rates:
            killed, later = jax.device_get(run(stacked, rate))
            out[(depth, rate)] = {
                "dead_fraction": [
                    float(np.mean(np.concatenate([np.asarray(k[i]) for k in killed]))) for i in range(seeds)
                ],
                "revived_per_layer": [
                    int(np.sum(np.asarray(k) & ~np.asarray(after))) for k, after in zip(killed, later, strict=True)
                ],
                "dead_per_layer": [int(np.sum(np.asarray(k))) for k in killed],
            }
    return out


DYING = {
    "depths": [1, 2],
    "width": 128,
    "examples": 128,
    "learning_rates": {"small": 0.01, "large": 0.1},
    "initialisations": 8,
    "steps": 50,
    "gentle_rate": 0.01,
    "gentle_steps": 150,
    "sizeable": 0.2,
    "long_run": {"depth": 1, "steps": 1000},
}


@bridge.cache
def _long_training(depth: int, width: int, examples: int, rates: tuple[float, ...], seeds: int, steps: int) -> dict:
    """The data and initialisations of ``_dying_experiment``, trained ``steps`` SGD steps at each rate: per rate, the
    final training loss and dead fraction of each initialisation; and the loss of predicting the mean target."""
    x, y, loss = _dying_problem(examples)

    @functools.partial(jax.jit, compiler_options=OPTIMISED)
    @functools.partial(jax.vmap, in_axes=(0, None))
    def run(params, rate):
        final = jax.lax.fori_loop(0, steps, lambda i, q: jax.tree.map(lambda w, g: w - rate * g, q,
                                                                      jax.grad(loss)(q)), params)  # fmt: skip
        dead = jnp.mean(jnp.concatenate([jnp.all(p <= 0, axis=0) for p in
                                         mlp_with_preactivations(final, x, jax.nn.relu)[0]]))  # fmt: skip
        return loss(final), dead

    stacked = init_params_numpy(np.random.default_rng(depth), (8, *[width] * depth, 1), count=seeds)
    out = {"mean_predictor_loss": float(jnp.mean((y - jnp.mean(y)) ** 2))}
    for rate in rates:
        losses, dead = jax.device_get(run(stacked, rate))
        out[rate] = {"loss": [float(v) for v in losses], "dead_fraction": [float(v) for v in dead]}
    return out


def _dying(scope: dict) -> dict:
    return _dying_experiment(
        tuple(scope["depths"]),
        scope["width"],
        scope["examples"],
        tuple(scope["learning_rates"].values()),
        scope["initialisations"],
        scope["steps"],
        scope["gentle_rate"],
        scope["gentle_steps"],
    )


@claim(
    "activations/dead-relu-unit-gets-exactly-zero-gradient",
    sources=["S001-12"],
    says="Because f(z) = max(0, z) sets the gradient to 0 when it passes through the ReLU unit, and afterwards the "
    "unit is not activated by any data, the gradient flowing through this neuron is 0 forever and it responds to "
    "no data.",
    expected="qualified",
    correction="The zero gradient is exact, and with plain SGD a dead unit's own weights never move again; in the "
    "first hidden layer, whose inputs are the fixed data, it stays dead. But a dead unit in a deeper layer "
    "recovers when its inputs change: the layers below keep training through the other units and can push its "
    "pre-activation back above 0 (measured in two-hidden-layer networks, and in a two-unit construction).",
    scope={**DYING, "sgd_steps": 3, "sgd_rate": 0.1},
)
def _dead_relu(scope) -> Evidence:
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=(64, 4)))
    y = jnp.asarray(rng.normal(size=(64, 1)))
    params = init_params_numpy(np.random.default_rng(0), (4, 3, 1))  # nnx.Linear's default distribution
    params[0]["bias"] = jnp.asarray([-100.0, 0.0, 0.0])  # unit 0: w.x - 100 < 0 on all data

    def loss(p):
        return jnp.mean((mlp_with_preactivations(p, x, jax.nn.relu)[1] - y) ** 2)

    @jax.jit
    def measure(p):
        # One compiled program: the gradient, and the dead unit's pre-activations before and after SGD.
        trained = jax.lax.fori_loop(
            0,
            scope["sgd_steps"],
            lambda _, q: jax.tree.map(lambda w, g: w - scope["sgd_rate"] * g, q, jax.grad(loss)(q)),
            p,
        )
        pre = [mlp_with_preactivations(q, x, jax.nn.relu)[0][0][:, 0] for q in (p, trained)]
        return jax.grad(loss)(p)[0], *pre

    grads, before, after = jax.device_get(measure(params))
    revival = _revived_by_the_layer_below()
    runs = _dying(scope)
    large = scope["learning_rates"]["large"]
    deep = [d for d in scope["depths"] if d > 1]
    first_layer_revived = sum(runs[(d, large)]["revived_per_layer"][0] for d in scope["depths"])
    deep_revived = {d: runs[(d, large)]["revived_per_layer"][1:] for d in deep}
    return evidence(
        "autodiff",
        core(
            "a unit with pre-activation < 0 on every example gets dL/dw = 0 and dL/db = 0 exactly, while live units' "
            "gradients are non-zero",
            bool(jnp.all(grads["kernel"][:, 0] == 0.0))
            and float(grads["bias"][0]) == 0.0
            and bool(jnp.all(grads["kernel"][:, 1:] != 0.0)),
            samples=int(x.shape[0]),
        ),
        core(
            f"one hidden layer (fixed inputs): after {scope['sgd_steps']} SGD steps its pre-activations are "
            "unchanged and still < 0",
            bool(jnp.all(before == after)) and bool(jnp.all(after < 0)),
        ),
        core(
            "in the trained networks, no dead first-hidden-layer unit revives",
            first_layer_revived == 0,
            revived=first_layer_revived,
        ),
        scoped(
            "deeper: a dead unit of a later layer never revives (trained networks after the large-rate phase)",
            sum(sum(v) for v in deep_revived.values()) == 0,
            revived=sum(sum(v) for v in deep_revived.values()),
        ),
        scoped(
            "deeper: a dead second-layer unit, its own gradients exactly 0, stays dead after one SGD step on the "
            "layer below",
            not (
                revival["own_gradients_zero"] and revival["pre_activation_after"] > 0 > revival["pre_activation_before"]
            ),
            pre_activation_before=revival["pre_activation_before"],
            pre_activation_after=revival["pre_activation_after"],
        ),
        details={"trained_networks": {f"depth {d}, lr {r}": v for (d, r), v in runs.items()}, **revival},
    )


def _revived_by_the_layer_below() -> dict:
    """x = 1 -> h = relu(a x) -> (d, e) = relu((h - 1.01, h)) -> y = d + e, loss (y - 3)^2. Unit d is dead
    (pre-activation -0.01) and gets no gradient, but the loss pulls on a through unit e, which raises h."""
    params = [
        {"kernel": jnp.ones((1, 1)), "bias": jnp.zeros(1)},
        {"kernel": jnp.ones((1, 2)), "bias": jnp.asarray([-1.01, 0.0])},
        {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)},
    ]
    x = jnp.ones((1, 1))

    def loss(p):
        return jnp.sum((mlp_with_preactivations(p, x, jax.nn.relu)[1] - 3.0) ** 2)

    def pre_activation(p) -> jax.Array:
        return mlp_with_preactivations(p, x, jax.nn.relu)[0][1][0, 0]

    @jax.jit
    def one_step(p):
        grads = jax.grad(loss)(p)
        stepped = jax.tree.map(lambda w, g: w - 0.1 * g, p, grads)
        return grads, pre_activation(p), pre_activation(stepped)

    grads, before, after = jax.device_get(one_step(params))
    own_zero = float(grads[1]["kernel"][0, 0]) == 0.0 and float(grads[1]["bias"][0]) == 0.0
    return {
        "pre_activation_before": float(before),
        "own_gradients_zero": own_zero,
        "pre_activation_after": float(after),
    }


@claim(
    "activations/large-learning-rate-kills-relu-units",
    sources=["S001-12"],
    says="In practice, if the learning rate is set large, more than a certain proportion of the neurons die "
    "irreversibly, their parameters' gradients can no longer update, and the whole training fails.",
    expected="qualified",
    correction="A large learning rate does kill a sizeable fraction of units (a small one kills few). "
    "Irreversibly only in the first hidden layer, whose inputs are the fixed data (there it is true by "
    "construction: zero gradient and unchanged inputs); in deeper networks a few dead units of later layers come "
    "back as the layers below keep training (the evidence counts them against the dead ones). And training does "
    "not fail: trained on, the one-layer networks that lost most of their units still fit far better than "
    "predicting the mean.",
    scope=DYING,
)
def _learning_rate_kills(scope) -> Evidence:
    runs = _dying(scope)
    small, large = scope["learning_rates"]["small"], scope["learning_rates"]["large"]
    sizeable = scope["sizeable"]
    big = [f for d in scope["depths"] for f in runs[(d, large)]["dead_fraction"]]
    little = [f for d in scope["depths"] for f in runs[(d, small)]["dead_fraction"]]
    first = sum(runs[(d, r)]["revived_per_layer"][0] for d in scope["depths"] for r in (small, large))
    long = scope["long_run"]
    trained = _long_training(long["depth"], scope["width"], scope["examples"], (small, large),
                             scope["initialisations"], long["steps"])  # fmt: skip
    findings = [
        core(
            f"at lr {large:g}, at least {sizeable:g} of the hidden units die in every network (depths "
            f"{scope['depths']}, {scope['initialisations']} initialisations each); at lr {small:g} fewer than that",
            min(big) >= sizeable and max(little) < sizeable,
            least_dead_at_large=min(big),
            most_dead_at_small=max(little),
        ),
        scoped(
            f"the whole training fails: trained {long['steps']} steps at lr {large:g} ({long['depth']} hidden layer), "
            "the networks do no better than predicting the mean target",
            min(trained[large]["loss"]) >= trained["mean_predictor_loss"],
            mean_predictor_loss=trained["mean_predictor_loss"],
            loss_at_large=f"{min(trained[large]['loss']):.3f}-{max(trained[large]['loss']):.3f}",
            loss_at_small=f"{min(trained[small]['loss']):.3f}-{max(trained[small]['loss']):.3f}",
            dead_at_large=f"{min(trained[large]['dead_fraction']):.2f}-{max(trained[large]['dead_fraction']):.2f}",
        ),
        scoped(
            "first hidden layer: no dead unit revives in further training at lr "
            f"{scope['gentle_rate']:g} (fixed inputs: true by construction)",
            first == 0,
            revived=first,
        ),
    ]
    for depth in [d for d in scope["depths"] if d > 1]:
        revived = runs[(depth, large)]["revived_per_layer"][1:]
        dead = runs[(depth, large)]["dead_per_layer"][1:]
        findings.append(
            scoped(
                f"{depth} hidden layers: no dead unit of a layer after the first revives in "
                f"{scope['gentle_steps']} further steps at lr {scope['gentle_rate']:g}",
                sum(revived) == 0,
                revived=sum(revived),
                dead=sum(dead),
            )
        )
    return evidence("measurement", *findings, details={f"depth {d}, lr {r}": v for (d, r), v in runs.items()})


@claim(
    "activations/relu-zeroes-half-the-units-at-initialisation",
    sources=["S002-25"],
    says="ReLU makes part of the neurons output 0, which makes the network sparse.",
    expected="holds",
    scope={"fan_in": 256, "units": 4096, "standard_errors": 4.5},
    tolerance="Monte-Carlo: the measured fraction must lie within 4.5 standard errors of 1/2",
)
def _relu_sparsity(scope) -> Evidence:
    pre_activation = stats.Normal("w_dot_x", 0, 1)  # symmetric about 0 with zero bias, whatever its scale
    p_zero = stats.P(pre_activation <= 0)
    fan_in, units = scope["fan_in"], scope["units"]

    @jax.jit
    def zero_fraction():
        # The layer is built and applied in one compiled program (its initialisation drawn inside it).
        layer = nnx.Linear(fan_in, units, rngs=nnx.Rngs(params=4), param_dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(9), (units, fan_in), dtype=jnp.float64)
        # Unit j on input j only: independent pairs (fresh weights, fresh input), so the standard error is binomial.
        outputs = nnx.relu(jnp.einsum("ji,ij->j", x, layer.kernel[...]) + layer.bias[...])
        return jnp.mean(outputs == 0)

    measured = float(zero_fraction())
    stderr = float(np.sqrt(0.25 / units))
    return evidence(
        "measurement",
        core("P(w.x <= 0) = 1/2 for symmetric weights and zero bias (sympy.stats)", p_zero == sp.Rational(1, 2)),
        core(
            f"measured on nnx.Linear({fan_in}, {units}) at its default initialisation, the fraction of outputs that "
            f"are exactly 0 is within {scope['standard_errors']:g} standard errors of 1/2",
            abs(measured - float(p_zero)) <= scope["standard_errors"] * stderr,
            fraction=measured,
            standard_error=stderr,
            samples=units,
        ),
    )


@claim(
    "activations/relu-needs-no-exponential",
    sources=["S001-12", "S002-25", "S002-47"],
    says="Sigmoid and tanh both need an exponential, which is costly, while ReLU needs only a threshold to get "
    "its activation.",
    expected="holds",
    scope={"elements": 4096, "functions": ["relu", "sigmoid", "tanh"], "parts": ["forward", "forward_and_backward"]},
)
def _relu_cost(scope) -> Evidence:
    n = scope["elements"]
    x = jnp.linspace(-4.0, 4.0, n)
    functions = {"relu": nnx.relu, "sigmoid": nnx.sigmoid, "tanh": nnx.tanh}
    costs = {
        name: {
            "forward": xla_cost(functions[name], x)["transcendentals"],
            "forward_and_backward": xla_cost(elementwise_grad(functions[name]), x)["transcendentals"],
        }
        for name in scope["functions"]
    }
    return evidence(
        "measurement",
        core(
            "XLA counts no transcendental op for ReLU, forward or with its gradient",
            all(c == 0 for c in costs["relu"].values()),
            samples=n,
        ),
        core(
            "XLA counts at least one transcendental per element for sigmoid and tanh, forward and with gradient",
            all(costs[f][p] >= n for f in ("sigmoid", "tanh") for p in scope["parts"]),
        ),
        details={"transcendentals": costs},
    )


# --- what one ReLU can classify -------------------------------------------------------------------------


@claim(
    "activations/single-relu-network-is-not-a-linear-classifier",
    sources=["S001-40"],
    says="Can a neural network with single RELU (non-linearity) act as a linear classifier? No",
    expected="refuted",
    correction="Yes, under either reading. One ReLU *unit* between two linear maps, a relu(w.x + b) + c > 0, is "
    "always a linear classifier: relu is monotone, so the decision region is a half-plane (or everything, or "
    "nothing). One hidden *layer* of ReLUs can act as any linear classifier (relu(s) - relu(-s) = s), and is not "
    "limited to one: two units separate XOR, which no linear classifier can.",
    scope={"readings": ["one ReLU unit", "one hidden layer of ReLUs"], "networks": 50, "points": 2000},
)
def _single_relu(scope) -> Evidence:
    rng = np.random.default_rng(12)
    points = jnp.asarray(rng.normal(size=(scope["points"], 2)))
    one_unit = _one_unit_networks_are_linear(scope["networks"], points, rng)
    v = sp.Symbol("s", real=True)
    identity = prove_identity(relu(v) - relu(-v), v, [v])
    # The Flax layer set to relu(s) - relu(-s) for random linear rules s = w.x + b: its class equals the rule's.
    layer_linear = []
    model = _blank(2, 2, 1)
    for _ in range(scope["networks"]):
        w, b = rng.normal(size=2), rng.normal()
        model.hidden.kernel[...] = jnp.asarray(np.stack([w, -w], axis=1))
        model.hidden.bias[...] = jnp.asarray([b, -b])
        model.out.kernel[...] = jnp.asarray([[1.0], [-1.0]])
        model.out.bias[...] = jnp.zeros(1)
        layer_linear.append(
            bool(np.array_equal(np.asarray(_forward(model, points)[:, 0] > 0), np.asarray(points) @ w + b > 0))
        )
    # XOR labels: (0,0) -> 0, (1,0) -> 1, (0,1) -> 1, (1,1) -> 0. A linear classifier needs these four
    # left-hand sides > 0; they sum to 0 identically (a Farkas certificate), so no (w1, w2, b) exists.
    w1, w2, b = sp.symbols("w1 w2 b", real=True)
    farkas = sp.simplify(-b + (w1 + b) + (w2 + b) - (w1 + w2 + b))
    xor = _blank(2, 2, 1)
    xor.hidden.kernel[...] = jnp.asarray([[1.0, 1.0], [1.0, 1.0]])
    xor.hidden.bias[...] = jnp.asarray([0.0, -1.0])
    xor.out.kernel[...] = jnp.asarray([[1.0], [-2.0]])
    xor.out.bias[...] = jnp.asarray([-0.5])
    inputs = jnp.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    xor_scores = np.asarray(_forward(xor, inputs))[:, 0]
    separates = bool(np.all((xor_scores > 0) == np.asarray([False, True, True, False])))
    return evidence(
        "measurement",
        core(
            "one ReLU unit: no Linear(2,1)-ReLU-Linear(1,1) network acts as a linear classifier "
            f"(in {scope['networks']} random ones, the class of {scope['points']} points differs from the "
            "half-plane rule derived from relu's monotonicity somewhere)",
            not one_unit,
            networks=scope["networks"],
        ),
        core(
            "one hidden layer: no Linear(2,2)-ReLU-Linear(2,1) network acts as a linear classifier "
            "(tested: relu(s) - relu(-s) for random rules s)",
            not (identity.holds and all(layer_linear)),
            networks=len(layer_linear),
        ),
        scoped(
            "one hidden layer can also do what no linear classifier can (XOR: the four linear conditions sum "
            "to 0, and two ReLUs classify all four points)",
            farkas == 0 and separates,
        ),
        details={"relu_identity": identity.how, "xor_scores": xor_scores.tolist()},
    )


@nnx.jit
def _forward(module: nnx.Module, inputs: jax.Array) -> jax.Array:
    return module(inputs)


def _blank(*sizes: int) -> OneHiddenReLU:
    """A OneHiddenReLU built in one compiled program (every check that uses one assigns all four of its
    parameters)."""
    return nnx.jit(lambda: OneHiddenReLU(*sizes, rngs=nnx.Rngs(params=0), dtype=jnp.float64))()


def _one_unit_networks_are_linear(networks: int, points: jax.Array, rng: np.random.Generator) -> bool:
    """a relu(s) + c > 0 with s = w.x + b: for a > 0 it is s > -c/a when c < 0 and always true otherwise; for
    a < 0 it is s < -c/a when c > 0 and never true otherwise. Checked against the Flax network's own output."""
    model = _blank(2, 1, 1)
    for _ in range(networks):
        model.hidden.kernel[...], model.hidden.bias[...] = (
            jnp.asarray(rng.normal(size=(2, 1))),
            jnp.asarray(rng.normal(size=1)),
        )
        model.out.kernel[...], model.out.bias[...] = (
            jnp.asarray(rng.normal(size=(1, 1))),
            jnp.asarray(rng.normal(size=1)),
        )
        a, c = float(model.out.kernel[...][0, 0]), float(model.out.bias[...][0])
        s = np.asarray(_forward(model.hidden, points)[:, 0])
        network = np.asarray(_forward(model, points)[:, 0] > 0)
        if a > 0:
            rule = s > -c / a if c < 0 else np.ones_like(network)
        else:
            rule = s < -c / a if c > 0 else np.zeros_like(network)
        if not np.array_equal(network, rule):
            return False
    return True


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "activations"]))
