"""The claims of the dropout chapter, each over a grid of drop rates that includes the edges 0 and close to 1.

Convention: p is the drop probability, as in ``nnx.Dropout(rate=p)``; the keep probability is 1 - p. Where the
note uses p for the keep probability (S001-10's second clause, its keep_prob 0.8), the claim says so.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

from derivations.bridge import to_jax, value, vanishes
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.dropout import (
    VALUES,
    Z_MAX,
    dropout_is_an_l2_penalty,
    ensemble_average,
    linear_regression_loss,
    mask_variances,
    p,
    standard_error,
    training_draws,
    training_expectations,
    x,
    z_scores,
)
from models.dropout import PlainDropout, inverted_dropout

MONTE_CARLO = "Monte-Carlo: within 4.5 standard errors of the mean (z_max in the scope)"


def _at(eq, rate: float, unit: float) -> float:
    """A displayed formula of p and x at a rate and a unit value (SymPy, recorded as evaluated)."""
    return value(eq, {p: sp.Rational(str(rate)), x: unit})


@claim(
    "dropout/test-time-weights-are-multiplied-by-p",
    sources=["S001-10"],
    says="'In training, for each mini-batch, each neuron is dropped (失活) with probability p%, ... and at test time "
    "each neuron's parameters are multiplied in advance by the probability p, to make up for the neuron having "
    "been used in the forward pass with probability p only in training' "
    "(在测试过程中每个神经元的参数要预先乘以概率系数 p).",
    expected="refuted",
    correction="The note uses p for two things: first the drop probability (失活 with probability p%), then "
    "the probability that a neuron is used (只有 p 的概率被用于), i.e. the keep probability. With p the drop "
    "probability, as its first sentence and nnx.Dropout(rate=p) define it, a unit takes part with probability "
    "1 - p and test-time weights are multiplied by the keep probability 1 - p (the two agree only at p = 1/2). "
    "Srivastava et al. (2014) define p as the retain probability, and in that convention 'multiply by p' is "
    "right. Frameworks use inverted dropout instead: scale by 1/(1 - p) in training, leave evaluation alone.",
    scope={
        "rates": [0.0, 0.2, 0.5, 0.8, 0.99],
        "draws": 20000,
        "z_max": Z_MAX,
        "convention": "p = drop probability (the note's first clause, nnx.Dropout's rate)",
    },
    tolerance=MONTE_CARLO,
    aliases=["dropout/test-time-factor-is-the-keep-probability"],
)
def _test_factor(scope) -> Evidence:
    expectation = training_expectations()[0]
    symbolic_ok = vanishes(expectation.rhs - (1 - p) * x)
    keep_z, note_z, note_right_at = [], {}, []
    for k, rate in enumerate(scope["rates"]):
        train = training_draws(PlainDropout(rate, rngs=nnx.Rngs(dropout=k)), VALUES, scope["draws"])
        derived = np.asarray([_at(expectation, rate, float(v)) for v in VALUES])
        keep_z.append(float(z_scores(train, derived).max()))
        note_z[rate] = float(z_scores(train, VALUES * rate).min())
        if note_z[rate] <= scope["z_max"]:
            note_right_at.append(rate)
    return evidence(
        "measurement",
        core("E[m x] = (1 - p) x for m ~ Bernoulli(1 - p) (sympy.stats)", symbolic_ok),
        core(
            f"plain dropout's training mean is (1 - p) x at every rate of {scope['rates']} ({scope['draws']} draws)",
            max(keep_z) <= scope["z_max"],
            largest_z=max(keep_z),
            samples=scope["draws"] * len(scope["rates"]),
        ),
        core(
            "multiplying by p at test time, p the drop rate, matches the training mean",
            not any(z > scope["z_max"] for z in note_z.values()),
            rates_where_it_does=str(note_right_at) or "none",
        ),
        scoped(
            "with p the keep probability (the note's second clause, Srivastava et al.) the factor p is the keep "
            "probability, the one measured",
            max(keep_z) <= scope["z_max"],
        ),
        details={"z_note_factor": note_z},
    )


@claim(
    "dropout/training-expectation-equals-the-eval-output",
    sources=["S001-10", "S000-21"],
    says="At test time each neuron's parameters are multiplied by the probability p beforehand, 'to restore that in "
    "training the neuron took part in the forward pass with probability p only' (以恢复在训练中该神经元只有 $p$ 的"
    "概率被用于整个神经网络的前向传播计算). Tested (a gloss of 'restore'): the training-mode mean output equals the "
    "eval output.",
    expected="holds",
    scope={
        "rates": [0.0, 0.3, 0.9, 0.99],
        "draws": 20000,
        "z_max": Z_MAX,
        "forms": ["inverted (nnx.Dropout)", "plain (models.dropout.PlainDropout)"],
    },
    tolerance=MONTE_CARLO,
)
def _expectation(scope) -> Evidence:
    plain_eq, inverted_eq = training_expectations()
    symbolic = inverted_eq.rhs == x and vanishes(plain_eq.rhs - (1 - p) * x)
    z_inverted, z_plain, z_plain_derived = [], [], []
    for k, rate in enumerate(scope["rates"]):
        inverted = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=1 + k))
        plain = PlainDropout(rate, rngs=nnx.Rngs(dropout=20 + k))
        derived = np.asarray([_at(inverted_eq, rate, float(v)) for v in VALUES])
        z_inverted.append(float(z_scores(training_draws(inverted, VALUES, scope["draws"]), derived).max()))
        eval_inverted = inverted(VALUES, deterministic=True)
        z_inverted[-1] = max(z_inverted[-1], 0.0 if bool(jnp.array_equal(eval_inverted, VALUES)) else np.inf)
        plain_draws = training_draws(plain, VALUES, scope["draws"])
        z_plain.append(float(z_scores(plain_draws, plain(VALUES, deterministic=True)).max()))
        z_plain_derived.append(
            float(z_scores(plain_draws, np.asarray([_at(plain_eq, rate, float(v)) for v in VALUES])).max())
        )
    return evidence(
        "measurement",
        core("E[m x/(1 - p)] = x and E[m x] = (1 - p) x (sympy.stats)", symbolic),
        core(
            f"nnx.Dropout (inverted): the training mean equals its eval output x at rates {scope['rates']}",
            max(z_inverted) <= scope["z_max"],
            largest_z=max(z_inverted),
            samples=scope["draws"] * len(scope["rates"]),
        ),
        core(
            "plain dropout: the training mean equals its eval output (1 - p) x, and the displayed E[m x]",
            max(z_plain + z_plain_derived) <= scope["z_max"],
            largest_z=max(z_plain + z_plain_derived),
            samples=scope["draws"] * len(scope["rates"]),
        ),
        details={"z_inverted": z_inverted, "z_plain": z_plain},
    )


@claim(
    "dropout/eval-mode-uses-every-neuron",
    sources=["S000-21"],
    says="model.eval() for dropout: 'use all the neurons, do not drop neurons at random' "
    "(利用全部神经元，不进行神经元的随机丢弃).",
    expected="holds",
    scope={"rates": [0.0, 0.4, 0.99], "units": 100_000, "calls": 2, "z_max": Z_MAX},
    tolerance="the training-mode dropped fraction: within 4.5 binomial standard errors of the rate",
)
def _eval_mode(scope) -> Evidence:
    v = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, scope["units"]))
    z, identical = [], []
    for k, rate in enumerate(scope["rates"]):
        module = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=3 + k))
        dropped = float(jnp.mean(module(v) == 0))
        stderr = float(np.sqrt(rate * (1 - rate) / scope["units"]))
        z.append(0.0 if dropped == rate else abs(dropped - rate) / stderr if stderr else np.inf)
        module.eval()
        identical.append(all(bool(jnp.array_equal(module(v), v)) for _ in range(scope["calls"])))
    return evidence(
        "measurement",
        core(
            f"after .eval() nnx.Dropout returns its input unchanged, bit for bit, on every call, at rates "
            f"{scope['rates']}",
            all(identical),
            samples=scope["units"] * len(scope["rates"]),
        ),
        core(
            "in training mode it drops the fraction p of the units (a check that the switch matters)",
            max(z) <= scope["z_max"],
            largest_z=max(z),
        ),
    )


@functools.partial(jax.jit, static_argnums=0)  # one program per rate (eagerly, one per primitive)
def _dropout_vjp(rate, v, upstream, seed):
    """jax.vjp of nnx.Dropout(rate) with the key of ``seed``: its output y and dx, and, with the forward pass's
    mask (y != 0), the derived dx = dy mask / (1 - p) and inverted_dropout(v, mask, p)."""
    module = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=4))
    y, pullback = jax.vjp(lambda a: module(a, rngs=jax.random.key(seed)), v)
    (dx,) = pullback(upstream)
    mask = y != 0
    return y, dx, jnp.where(mask, upstream / (1 - rate), 0.0), inverted_dropout(v, mask, rate)


@claim(
    "dropout/gradient-flows-through-the-same-mask",
    sources=["S004-06"],
    says="'Dropout switches neurons off with probability p; the switched-off neurons play no part in either the "
    "forward or the backward pass of training' "
    "(关闭的神经元在训练阶段的前向传播和后向传播阶段都不起作用); here p is the "
    "drop probability.",
    expected="holds",
    scope={"rates": [0.0, 0.5, 0.9, 0.99], "units": 4096},
)
def _gradient(scope, rtol) -> Evidence:
    rng = np.random.default_rng(5)
    v, upstream = rng.normal(size=scope["units"]), rng.normal(size=scope["units"])
    derived, same_mask, zero_where_dropped, dropped = [], [], [], []
    for k, rate in enumerate(scope["rates"]):
        y, dx, formula, inverted = (np.asarray(a) for a in _dropout_vjp(rate, v, upstream, 7 + k))
        mask = y != 0  # inputs are continuous, so a kept unit is non-zero with probability 1
        derived.append(compare(lambda f=formula: f, lambda d=dx: d, [], rtol=rtol))
        same_mask.append(compare(lambda i=inverted: i, lambda y=y: y, [], rtol=rtol))
        zero_where_dropped.append(bool(np.all(dx[~mask] == 0)))
        dropped.append(int(np.sum(~mask)))
    return evidence(
        "autodiff",
        compared(
            f"jax.vjp of nnx.Dropout with a fixed key: dx = dy * mask / (1 - p) with the forward pass's mask, at "
            f"rates {scope['rates']}",
            _worst(derived),
        ),
        compared("the forward output is inverted_dropout with that mask", _worst(same_mask)),
        core("every dropped unit gets a gradient of exactly 0", all(zero_where_dropped), dropped_units=sum(dropped)),
    )


def _worst(comparisons):
    """Several comparisons as one: ``ok`` when all are, the largest errors, all samples."""
    worst = max(comparisons, key=lambda c: (c.max_rel_err, c.max_abs_err))
    return type(worst)(
        **{
            **worst.__dict__,
            "ok": all(c.ok for c in comparisons),
            "samples": sum(c.samples for c in comparisons),
            "max_abs_err": max(c.max_abs_err for c in comparisons),
        }
    )


@claim(
    "dropout/rate-one-half-maximises-mask-variance",
    sources=["S001-10"],
    says="'On the setting of keep_prob in Dropout: cross-validation shows that a dropout rate of 0.5 for the hidden "
    "nodes works best ... set the input layer to a number closer to 1 (0.8), so that the input does not change too "
    "much' (经过交叉验证，隐含节点dropout率等于0.5的时候效果最好 ... "
    "输入层设为更接近1的数(0.8)。使得输入变化不会太大); its 0.5 "
    "is a drop rate, its 0.8 a keep_prob.",
    expected="qualified",
    correction="That 0.5 works best is an empirical finding about particular networks and cannot be checked "
    "here. What can be checked is the usual justification, that the mask is most random at 1/2: the unscaled "
    "mask's variance p(1 - p) (p the drop rate) does peak at p = 1/2, but the noise a unit actually sees under "
    "inverted dropout has variance p/(1 - p) x^2, which grows without bound as p -> 1. The note also mixes its two "
    "parameters: its 0.5 is a drop rate, its input-layer 0.8 a keep probability (keep_prob), i.e. a drop rate of "
    "0.2; only read that way does the input 'not change too much' (noise variance 0.25 x^2, not 4 x^2).",
    scope={
        "rates": [0.0, 0.3, 0.5, 0.7, 0.95],
        "draws": 200_000,
        "z_max": Z_MAX,
        "input_layer": 0.8,
        "convention": "p = drop probability; the note's 0.8 read as keep_prob (drop 0.2) and as a drop rate",
    },
    tolerance="Monte-Carlo: the sample variance within 4.5 of its standard errors (Bernoulli fourth moment)",
)
def _rate_half(scope) -> Evidence:
    steps = mask_variances()
    argmax = value(steps[1])
    inverted = steps[2]
    slopes = [value(steps[3], {p: sp.Rational(str(r))}) for r in scope["rates"]]
    plain_variances = [value(steps[0], {p: sp.Rational(str(r))}) for r in scope["rates"]]
    monotone = sp.ask(sp.Q.positive(steps[3].rhs), sp.Q.positive(p) & sp.Q.positive(1 - p))
    measured = {}
    for k, rate in enumerate(scope["rates"]):
        out = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=10 + k))(jnp.ones(scope["draws"]))
        var = float(jnp.var(out, ddof=1))
        want = value(inverted, {p: sp.Rational(str(rate))})
        # Var of the sample variance is (mu4 - (n - 3)/(n - 1) sigma^4)/n (exact; its leading term mu4 - sigma^4
        # vanishes for the symmetric two-point mask at p = 1/2).
        mu4, n = float(jnp.mean((out - jnp.mean(out)) ** 4)), scope["draws"]
        stderr = float(standard_error(np.sqrt(max(mu4 - (n - 3) / (n - 1) * var**2, 0.0) / n), want))
        z = 0.0 if var == want else abs(var - want) / stderr if stderr else np.inf
        measured[rate] = {"variance": var, "p/(1-p)": want, "z": z}
    keep_reading = value(inverted, {p: 1 - sp.Rational(str(scope["input_layer"]))})
    drop_reading = value(inverted, {p: sp.Rational(str(scope["input_layer"]))})
    hidden = value(inverted, {p: sp.Rational(1, 2)})
    return evidence(
        "measurement",
        core(
            "the unscaled mask's variance p(1 - p) peaks at p = 1/2 (SymPy), the largest of the rates "
            f"{scope['rates']}",
            argmax == 0.5 and max(plain_variances) == value(steps[0], {p: sp.Rational(1, 2)}),
            argmax=argmax,
        ),
        core(
            f"nnx.Dropout's output variance for x = 1 is p/(1 - p) at rates {scope['rates']}",
            all(m["z"] <= scope["z_max"] for m in measured.values()),
            largest_z=max(m["z"] for m in measured.values()),
            samples=scope["draws"] * len(scope["rates"]),
        ),
        scoped(
            "the noise a unit sees under inverted dropout is largest at p = 1/2 too",
            not (bool(monotone) and all(s > 0 for s in slopes[1:])),
            noise_variance_at_0_95=measured[max(scope["rates"])]["variance"],
        ),
        core(
            "read as keep_prob (drop 0.2), the input layer's 0.8 changes the input less than the hidden layers' 0.5",
            keep_reading < hidden,
            noise_variance_keep_reading=keep_reading,
        ),
        scoped(
            "read as a drop rate, as the note's 0.5 is, 0.8 changes the input less",
            drop_reading < hidden,
            noise_variance_drop_reading=drop_reading,
        ),
        details={str(k): v for k, v in measured.items()},
    )


@functools.partial(nnx.jit, static_argnums=(0, 1))  # the three initialisations in one program
def _ensemble_layers(n: int, hidden: int):
    rngs = nnx.Rngs(params=0)
    return (nnx.Linear(n, 3, rngs=rngs, param_dtype=jnp.float64),
            nnx.Linear(n, hidden, rngs=rngs, param_dtype=jnp.float64),
            nnx.Linear(hidden, 1, rngs=rngs, param_dtype=jnp.float64))  # fmt: skip


@claim(
    "dropout/eval-output-is-the-average-of-the-subnetworks",
    sources=["S002-29", "S004-06", "S001-10"],
    says="'In training, dropout can be seen as sampling subsets of the full network ...; not using dropout at test "
    "time can be understood as an ensemble of a huge number of sub-networks (like bagging, but with shared "
    "parameters)' (可以理解为是对数量巨大的子网络做模型集成(类似于bagging，但是其参数是共享的)).",
    expected="qualified",
    correction="Exactly so for a layer that is linear in the dropped units (the average over all 2^n masks "
    "equals the eval output); after a nonlinearity the eval output is only an approximation of the ensemble "
    "average (the 'weight scaling inference rule').",
    scope={
        "rates": [0.1, 0.5, 0.9],
        "inputs": 200,
        "units": 10,
        "hidden": 8,
        "networks": ["nnx.Linear(10, 3)", "Linear-ReLU-Linear"],
    },
)
def _ensemble(scope, rtol) -> Evidence:
    n = scope["units"]
    linear, hidden, out = _ensemble_layers(n, scope["hidden"])
    vs = jax.device_put(np.random.default_rng(6).normal(size=(scope["inputs"], n)))

    def network(a):
        return out(nnx.relu(hidden(a)))

    compiled = {}

    def over_inputs(f, rate):
        # One compile per network, the rate traced (a new closure per rate would compile each time).
        if id(f) not in compiled:
            compiled[id(f)] = jax.jit(lambda r, f=f: jax.vmap(lambda v: ensemble_average(f, v, r))(vs))
        return compiled[id(f)](rate)

    linear_eval, network_eval = (np.asarray(a) for a in jax.jit(lambda: (linear(vs), network(vs)))())
    exact_linear, nonlinear, gaps = [], [], {}
    for rate in scope["rates"]:
        exact_linear.append(compare(lambda r=rate: over_inputs(linear, r), lambda: linear_eval, [], rtol=rtol))
        ensemble = np.asarray(over_inputs(network, rate))
        nonlinear.append(compare(lambda e=ensemble: e, lambda: network_eval, [], rtol=rtol))
        gap = (ensemble - network_eval)[:, 0]
        gaps[rate] = {
            "mean": float(gap.mean()),
            "median_abs": float(np.median(np.abs(gap))),
            "max_abs": float(np.abs(gap).max()),
        }
    return evidence(
        "measurement",
        compared(
            f"the average over all {2**n} dropout masks, each weighted by its probability, equals the eval "
            f"output of nnx.Linear({n}, 3), at rates {scope['rates']}",
            _worst(exact_linear),
        ),
        scoped(
            "after a ReLU (Linear-ReLU-Linear) the eval output is the ensemble average too",
            all(c.ok for c in nonlinear),
            largest_gap=max(g["max_abs"] for g in gaps.values()),
            eval_output_sd=float(np.std(network_eval)),
        ),
        details={"nonlinear_gap": {str(k): v for k, v in gaps.items()}},
    )


_plain_squared_error = jax.jit(lambda w, v, target: (target - v @ w) ** 2)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))  # one program per rate (eagerly, one per primitive)
def _dropped_squared_error(rate, seed, draws, w, v, target):
    """(y - w.(dropout(x)))^2 for ``draws`` independent nnx.Dropout(rate) masks of x."""
    dropped = nnx.Dropout(rate, rngs=nnx.Rngs(dropout=seed))(jnp.broadcast_to(v, (draws, v.shape[0])))
    return (target - dropped @ w) ** 2


@claim(
    "dropout/dropout-on-linear-regression-is-an-l2-penalty",
    sources=["S001-10"],
    says="'From a single neuron's point of view, since every input may be cleared at random, the neuron does not "
    "depend on any particular input, so it will not put too much weight on any one input. This works like L2 "
    "regularisation' (这和L2正则化有异曲同工之妙).",
    expected="qualified",
    correction="For linear regression it is exact in expectation: E[(y - w.(m*x)/(1 - p))^2] = (y - w.x)^2 + "
    "p/(1 - p) sum_j w_j^2 x_j^2 (p the drop rate), an L2 penalty on w. Unlike the uniform lambda ||w||^2 of L2 "
    "regularisation, its weight on w_j is p/(1 - p) x_j^2 (over a data set, p/(1 - p) times the second moment of "
    "input j); for a non-linear network the correspondence is only approximate (not checked here).",
    scope={
        "rates": [0.0, 0.1, 0.3, 0.9],
        "draws": 200_000,
        "z_max": Z_MAX,
        "symbolic_inputs": 3,
        "w": [0.8, -1.5, 2.0],
        "x": [1.2, 0.7, -0.4],
        "y": 0.5,
    },
    tolerance=MONTE_CARLO,
)
def _l2_penalty(scope) -> Evidence:
    expected, penalty = linear_regression_loss(scope["symbolic_inputs"])
    proved = vanishes(expected - penalty)
    shown = dropout_is_an_l2_penalty()
    ws, xs, y = sp.symbols("w1:4", real=True), sp.symbols("x1:4", real=True), sp.Symbol("y", real=True)
    closed_form = to_jax(shown, (*ws, *xs, y, p))
    w, v, target = np.asarray(scope["w"]), np.asarray(scope["x"]), scope["y"]
    plain = np.asarray(_plain_squared_error(w, v, target))
    z_penalty, z_plain = {}, {}
    for k, rate in enumerate(scope["rates"]):
        squared_error = _dropped_squared_error(rate, 20 + k, scope["draws"], w, v, target)
        want = np.asarray(closed_form(*w, *v, target, rate))
        z_penalty[rate] = float(z_scores(squared_error[:, None], want[None])[0])
        z_plain[rate] = float(z_scores(squared_error[:, None], plain[None])[0])
    # L2 regularisation's penalty is lambda ||w||^2: the same weight on every w_j^2. Dropout's weight on w_j^2:
    weights = np.asarray(v) ** 2
    return evidence(
        "measurement",
        core(
            "sympy.stats: E over three Bernoulli(1 - p) masks of the squared error equals (y - w.x)^2 + p/(1 - p) "
            "sum w_j^2 x_j^2",
            proved,
        ),
        core(
            f"nnx.Dropout's mean squared error equals that formula at rates {scope['rates']} "
            f"({scope['draws']} draws each)",
            max(z_penalty.values()) <= scope["z_max"],
            largest_z=max(z_penalty.values()),
            samples=scope["draws"] * len(scope["rates"]),
        ),
        core(
            "and differs from the unregularised (y - w.x)^2 at every rate p > 0",
            all(z > scope["z_max"] for r, z in z_plain.items() if r > 0),
            smallest_z=min(z for r, z in z_plain.items() if r > 0),
        ),
        scoped(
            "the penalty is L2 regularisation's lambda ||w||^2 (one weight for every w_j)",
            bool(np.all(weights == weights[0])),
            penalty_weights_over_p_ratio=str(weights.round(3).tolist()),
        ),
        details={"z_penalty": z_penalty, "z_plain": z_plain},
    )
