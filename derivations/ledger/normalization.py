"""The claims of the normalization chapter: BatchNorm's backward against autodiff over batch sizes (1 and 2
included), dense, NHWC and channel-first axes, several epsilons and float32; what gamma and beta are; eval
mode and the running averages; the note's formula without epsilon; and the axes of BN, LN, IN and GN."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sympy as sp
from flax import nnx

from derivations.bridge import instantiate, to_jax, value, vanishes
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.normalization import (
    EPS,
    NORMALIZATION_AXES,
    UNIT_ROUNDOFF,
    N,
    _concrete_batch,
    _custom_vjp_backward,
    _flax_norms,
    _normalized_batch,
    _random_case,
    _reference_norms,
    _variance_condition,
    apply_module,
    autodiff_reference,
    backward_closed_form,
    backward_vs_autodiff,
    batch_variance_is_biased,
    batchnorm_backward,
    batchnorm_backward_closed_form,
    batchnorm_forward,
    batchnorm_is_scale_invariant,
    batchnorm_of_one_and_two,
    closed_form_vs_models,
    conditioned_rtol,
    constant_feature_dx,
    constant_feature_tolerance,
    dy,
    eps,
    expected_batch_variance,
    flax_batchnorm,
    gamma_beta_restore_the_input,
    j,
    module_vjp,
    mu_1,
    mu_2,
    restore_on_another_batch,
    scale,
    sigma_1,
    sigma_2,
    x,
    x_hat,
    x_i,
)
from models.normalization import BatchNorm, batch_statistics, normalize

ULPS = 8  # round-off units allowed, times the condition of the one-pass batch variance (variance_condition)
ROUNDOFF = (
    "float64 round-off of the one-pass batch variance E[x^2] - E[x]^2 (a few ulps of x^2), amplified by "
    "max x^2/(Var + epsilon): rtol 1e-10 plus 8 ulps times that condition, and the same times the largest "
    "value as atol where outputs cross 0 (derivations.normalization.conditioned_rtol)"
)


def _pooled(comparisons) -> dict:
    """The figures of several comparisons taken together (largest errors, all samples)."""
    return {
        "max_abs_err": max(c.max_abs_err for c in comparisons),
        "max_rel_err": max(c.max_rel_err for c in comparisons),
        "samples": sum(c.samples for c in comparisons),
        "dtype": "/".join(sorted({c.dtype for c in comparisons})),
    }


def _close(got, want, rtol: float, condition: float = 1.0, magnitude: float | None = None):
    """``got`` against ``want`` to ``rtol`` plus ``ULPS`` round-offs amplified by ``condition``, relative and,
    times ``magnitude`` (the size of the terms that produced ``want``; default its largest value), absolute."""
    tol = rtol + ULPS * UNIT_ROUNDOFF * condition
    reference = np.asarray(want, dtype=np.float64)
    size = float(np.max(np.abs(reference))) if magnitude is None else magnitude
    return compare(lambda: got, lambda: reference, [], rtol=tol, atol=(tol - rtol) * size)


def _condition(v, axes, epsilon=EPS) -> float:
    return (conditioned_rtol(0.0, v, axes, epsilon, 1.0)) / UNIT_ROUNDOFF


# --- the backward pass -----------------------------------------------------------------------------------


@claim(
    "normalization/batchnorm-backward-closed-form-is-the-chain-rule",
    sources=["S000-20"],
    says="BN backpropagation: 'in essence it is still the chain rule: because gamma acts on the whole batch, its "
    "partial derivative is the sum of the partial derivatives of all the samples in the batch' "
    "(本质还是链式求导：因为γ是对整个batch起作用的，所以其偏导应该是batch中所有样本对其偏导之和).",
    expected="holds",
    scope={"batch_sizes": [1, 2, 4], "loss": "L = sum_k dy_k y_k (any upstream gradient dy)"},
)
def _closed_form_symbolic(scope) -> Evidence:
    shown = batchnorm_backward_closed_form()
    names = [name.strip("\\") for name in backward_closed_form()]
    proved, displayed_at_n = {}, []
    for n in scope["batch_sizes"]:
        batch = _concrete_batch(n)
        # The displayed equations at N = n are the closed forms the proof below substitutes into.
        at_n = {name: instantiate(eq, {N: n}) for name, eq in zip(names, shown, strict=True)}
        displayed_at_n.append(
            at_n["beta"] == sp.Sum(dy[j], (j, 1, n)).doit()
            and at_n["gamma"] == sp.Sum(dy[j] * x_hat[j], (j, 1, n)).doit()
            and at_n["x_i"] == backward_closed_form()["x_i"].subs(N, n).doit()
        )
        for name, exact in batch["exact"].items():
            difference = exact - batch["closed"][name]
            # cancel(together(.)) == 0 is a proof (a rational function in x, dy and the square root); simplify
            # is the slower fallback.
            proved[f"N={n} d{name}"] = sp.cancel(sp.together(difference)) == 0 or vanishes(difference)
    gamma_is_a_sum = all(proved[f"N={n} dgamma"] for n in scope["batch_sizes"])
    return evidence(
        "symbolic",
        core(
            f"sympy.diff of L for symbolic batches N = {scope['batch_sizes']} equals the closed forms for dbeta, "
            "dgamma and every dx_k",
            all(proved.values()),
            proved=sum(proved.values()),
            identities=len(proved),
            samples=len(proved),
        ),
        core("dgamma is the sum over the batch of each sample's dy_k x_hat_k", gamma_is_a_sum),
        core("the displayed closed forms, at each N, are the ones proved", all(displayed_at_n)),
        details={"proved": proved},
    )


def _two_pass_batchnorm(v, g, b, epsilon, axes):
    """An independent forward for the channel-first check: two-pass variance (jnp.var), broadcasting by hand."""
    mean = jnp.mean(v, axis=axes, keepdims=True)
    var = jnp.var(v, axis=axes, keepdims=True)
    shape = [1 if a in axes else n for a, n in enumerate(v.shape)]
    return g.reshape(shape) * (v - mean) / jnp.sqrt(var + epsilon) + b.reshape(shape)


@functools.partial(jax.jit, static_argnums=4)
def _channel_first_case(v, g, b, upstream, axes):
    """jax.vjp of the two-pass forward, the closed form and the variance condition, in one program."""
    want = jax.vjp(lambda a, gg, bb: _two_pass_batchnorm(a, gg, bb, EPS, axes), v, g, b)[1](upstream)
    return want, batchnorm_backward(v, g, upstream, EPS, axes), _variance_condition(v, axes, EPS)


@jax.jit
def _float32_case(x64, g64, dy64):
    """The float64 closed form, the float32 closed form and jax.vjp of a float32 nnx.BatchNorm, in one program."""
    exact = batchnorm_backward(x64, g64, dy64, EPS, (0, 1, 2))
    f32 = [a.astype(jnp.float32) for a in (x64, g64, dy64)]
    ours32 = batchnorm_backward(*f32, EPS, (0, 1, 2))
    flax32 = nnx.BatchNorm(3, rngs=nnx.Rngs(params=0))
    flax32.scale[...] = f32[1]
    return exact, ours32, module_vjp(flax32, f32[0], f32[2])


@claim(
    "normalization/batchnorm-backward-matches-autodiff-for-dense-and-conv-inputs",
    sources=["S000-20", "S001-09"],
    says="BN's backward is the chain rule, and 'in a CNN ... all b x w x h neurons of a feature map' are normalized "
    "together (每个特征图所对应的全部神经元个数为 b×w×h): a gloss that tests the closed form dgamma = sum dy x_hat, "
    "dbeta = sum dy, dx = gamma/(N sigma)(N dy - sum dy - x_hat sum dy x_hat), the sums over the N H W positions of "
    "a channel.",
    expected="holds",
    scope={
        "dense_shapes": [(1, 3), (2, 3), (16, 3)],
        "conv_shapes": [(1, 4, 4, 3), (2, 4, 4, 3), (6, 4, 4, 3)],
        "epsilon": EPS,
        "larger_epsilon": {"value": 0.1, "shapes": [(2, 3), (2, 4, 4, 3)]},
        "symbolic_batch_sizes": [2, 4],
        "channel_first": {"shape": (2, 3, 4, 4), "axes": (0, 2, 3)},
        "float32_normwise_rtol": 1e-5,
    },
    tolerance=ROUNDOFF + "; float32: normwise relative error against float64 of at most 1e-5 (about 80 float32 "
    "ulps, the conditioning of the sums over up to 240 positions)",
)
def _closed_form_vs_autodiff(scope, rtol) -> Evidence:
    shapes = [tuple(s) for s in scope["dense_shapes"] + scope["conv_shapes"]]
    symbolic = [closed_form_vs_models(n=n, points=32, rtol=rtol, ulps=ULPS) for n in scope["symbolic_batch_sizes"]]
    closed, module = [], []
    larger = scope["larger_epsilon"]
    grid = [(shapes, scope["epsilon"]), ([tuple(s) for s in larger["shapes"]], larger["value"])]
    for k, (these, epsilon) in enumerate(grid):
        for cs in backward_vs_autodiff(
            batchnorm_backward, these, seed=10 * k, epsilon=epsilon, rtol=rtol, ulps=ULPS
        ).values():
            closed.extend(cs)
        for cs in backward_vs_autodiff(
            _custom_vjp_backward, these, seed=100 + 10 * k, epsilon=epsilon, rtol=rtol, ulps=ULPS
        ).values():
            module.extend(cs)
    # Features on axis 1 (NCHW): the closed form with axes (0, 2, 3) against jax.vjp of a two-pass forward.
    shape, axes = tuple(scope["channel_first"]["shape"]), tuple(scope["channel_first"]["axes"])
    rng = np.random.default_rng(31)
    v, upstream = jax.device_put(rng.normal(1.0, 2.0, shape)), jax.device_put(rng.normal(size=shape))
    g, b = jax.device_put(rng.normal(size=shape[1])), jax.device_put(rng.normal(size=shape[1]))
    want, got, condition = _channel_first_case(v, g, b, upstream, axes)
    cond = float(condition)
    channel_first = [_close(a, w, rtol, cond) for a, w in zip(got, want, strict=True)]
    # float32: the closed form and jax.vjp of nnx.BatchNorm in float32 against the float64 closed form.
    x64, g64, _, dy64 = _random_case((8, 4, 4, 3), 41)
    exact, ours32, theirs32 = (tuple(np.asarray(a) for a in r) for r in _float32_case(x64, g64, dy64))
    normwise = [
        float(np.linalg.norm(a.astype(np.float64) - e) / np.linalg.norm(e))
        for result in (ours32, theirs32)
        for a, e in zip(result, exact, strict=True)
    ]
    ours_err, flax_err = max(normwise[:3]), max(normwise[3:])
    return evidence(
        "autodiff",
        core(
            f"the SymPy closed form (N = {scope['symbolic_batch_sizes']}, lambdified) equals "
            "models.normalization.batchnorm_backward",
            all(c.ok for c in symbolic),
            **_pooled(symbolic),
        ),
        core(
            f"batchnorm_backward equals jax.vjp of nnx.BatchNorm (training mode) for {len(shapes)} dense and NHWC "
            f"shapes (batches of 1 and 2 included) at epsilon = {scope['epsilon']:g}, two of them also at "
            f"{larger['value']:g}",
            all(c.ok for c in closed),
            **_pooled(closed),
        ),
        core(
            "the custom-VJP models.normalization.BatchNorm's gradients equal jax.vjp of nnx.BatchNorm on the same grid",
            all(c.ok for c in module),
            **_pooled(module),
        ),
        scoped(
            f"with the channels on axis 1 (NCHW, statistics over {axes}) the closed form equals jax.vjp of a "
            "two-pass-variance forward",
            all(c.ok for c in channel_first),
            **_pooled(channel_first),
        ),
        scoped(
            "in float32 the closed form is within the normwise tolerance of the float64 result, as "
            "jax.vjp of a float32 nnx.BatchNorm is",
            max(normwise) <= scope["float32_normwise_rtol"],
            closed_form_float32_err=ours_err,
            autodiff_float32_err=flax_err,
        ),
        details={"float32_normwise_errors": normwise},
    )


@functools.partial(jax.jit, static_argnums=(4, 5))
def _gamma_sum_case(x_in, g, b, upstream, epsilon, axes):
    """jax.vjp's dgamma of nnx.BatchNorm, the sum over the samples of their contributions dy_k x_hat_k, the
    smallest largest contribution of a channel, and the variance condition: one program per shape."""
    _, dscale, _ = autodiff_reference(nnx.BatchNorm, x_in, g, b, upstream, epsilon)
    # Per-sample contributions dy_k * x_hat_k, x_hat from the (shared) batch statistics.
    per_position = upstream * normalize(x_in, axes, epsilon)
    per_sample = jnp.sum(per_position, axis=axes[1:]) if len(axes) > 1 else per_position
    return (dscale, jnp.sum(per_sample, axis=0), jnp.min(jnp.max(jnp.abs(per_sample), axis=0)),
            _variance_condition(x_in, axes, epsilon))  # fmt: skip


@claim(
    "normalization/gamma-gradient-is-a-sum-over-the-batch",
    sources=["S000-20"],
    says="'Because gamma acts on the whole batch, its partial derivative should be the sum of the partial "
    "derivatives of all the samples in the batch' "
    "(因为γ是对整个batch起作用的，所以其偏导应该是batch中所有样本对其偏导之和).",
    expected="holds",
    scope={"shapes": [(1, 3), (2, 3), (16, 3), (1, 4, 4, 3), (2, 4, 4, 3), (6, 4, 4, 3)], "epsilon": EPS},
)
def _gamma_sum(scope, rtol) -> Evidence:
    sums, nontrivial = [], []
    for k, shape in enumerate(map(tuple, scope["shapes"])):
        x_in, g, b, upstream = _random_case(shape, 7 + k)
        axes = tuple(range(len(shape) - 1))
        dscale, summed, smallest, condition = _gamma_sum_case(x_in, g, b, upstream, float(scope["epsilon"]), axes)
        sums.append(_close(summed, dscale, rtol, float(condition)))
        if x_in.size // shape[-1] > 1:
            nontrivial.append(float(smallest) > 0)
    return evidence(
        "autodiff",
        core(
            f"jax.vjp's dgamma of nnx.BatchNorm equals the sum over the samples of dy * x_hat, for {len(sums)} "
            "shapes (batches of 1 and 2 included)",
            all(c.ok for c in sums),
            **_pooled(sums),
        ),
        core(
            "the per-sample contributions are not zero (the sum is not trivially 0 = 0) wherever a channel has more "
            "than one value",
            all(nontrivial),
        ),
    )


def _displayed_forward(scope, rtol) -> list:
    """The displayed forward (mean, biased variance, sigma, x_hat, y), each step evaluated by SymPy at concrete
    batches, against nnx.BatchNorm's training-mode output."""
    steps = batchnorm_forward()
    results = []
    rng = np.random.default_rng(29)
    for n in scope["batch_sizes"]:
        values = rng.normal(1.0, 2.0, n)
        g_value, b_value = 1.3, -0.4
        at = {sp.Indexed(x, k + 1): values[k] for k in range(n)}
        mean = value(instantiate(steps[0], {N: n}), at)
        var = value(instantiate(steps[1], {N: n}).subs(sp.Symbol("mu", real=True), mean), at)
        std = value(steps[2], {sp.Symbol("sigma_B^2", nonnegative=True): var, eps: scope["epsilon"]})
        x_hats = [
            value(
                instantiate(steps[3], {sp.Symbol("i", integer=True, positive=True): k + 1}),
                {**at, sp.Symbol("mu", real=True): mean, sp.Symbol("sigma", positive=True): std},
            )
            for k in range(n)
        ]
        ys = [
            value(
                steps[4],
                {
                    sp.Symbol("gamma", real=True): g_value,
                    sp.Symbol("beta", real=True): b_value,
                    sp.Indexed(sp.IndexedBase(r"\hat{x}", real=True), sp.Symbol("i", integer=True, positive=True)): h,
                },
            )
            for h in x_hats
        ]
        module = flax_batchnorm(1, epsilon=scope["epsilon"])
        module.scale[...] = jax.device_put(np.asarray([g_value]))
        module.bias[...] = jax.device_put(np.asarray([b_value]))
        got = np.asarray(apply_module(module, values[:, None]))[:, 0]
        results.append(_close(got, np.asarray(ys), rtol, _condition(values[:, None], (0,))))
    return results


@claim(
    "normalization/conv-batchnorm-pools-batch-height-width",
    sources=["S001-09"],
    says="'Because of the parameter sharing of CNNs ... suppose each training batch holds b samples and the feature "
    "map of one kernel is w by h: then each feature map corresponds to b×w×h neurons in all' (则每个特征图所对应的全部"
    "神经元个数为 b×w×h), normalized together.",
    expected="holds",
    scope={"shapes": [(1, 5, 6, 3), (2, 3, 3, 4), (4, 5, 6, 3)], "dense_batch_sizes": [1, 2, 5], "epsilon": EPS},
    tolerance=ROUNDOFF,
)
def _conv_axes(scope, rtol) -> Evidence:
    forward = _displayed_forward({"batch_sizes": scope["dense_batch_sizes"], "epsilon": scope["epsilon"]}, rtol)
    means, centred, differs = [], [], []
    for k, shape in enumerate(map(tuple, scope["shapes"])):
        x_in, *_ = _random_case(shape, 11 + k)
        module = flax_batchnorm(shape[-1], momentum=0.0)  # momentum 0: the running mean becomes the batch mean
        y = np.asarray(apply_module(module, x_in))
        x_np, running_mean = np.asarray(x_in), np.asarray(module.mean[...])
        means.append(_close(running_mean, np.mean(x_np, axis=(0, 1, 2)), rtol))
        centred.append(float(np.max(np.abs(np.mean(y, axis=(0, 1, 2))))))
        differs.append(float(np.max(np.abs(np.mean(x_np, axis=0) - running_mean))))
    return evidence(
        "measurement",
        core(
            "the batch mean nnx.BatchNorm uses is the mean over (N, H, W) of each channel, b*h*w values, for "
            f"{len(means)} NHWC shapes (a batch of one included)",
            all(c.ok for c in means),
            **_pooled(means),
        ),
        core(
            "the output has mean 0 over (N, H, W) in every channel",
            # y is x_hat (gamma 1, beta 0): its mean over the b*h*w values is 0 up to their summed round-off.
            max(centred) <= ULPS * UNIT_ROUNDOFF * max(s[0] * s[1] * s[2] for s in scope["shapes"]),
            largest_mean=max(centred),
        ),
        core(
            "per-position statistics (over N alone) would be different ones",
            min(differs) > 0,
            smallest_difference=min(differs),
        ),
        core(
            f"the displayed forward (mean, biased variance, sigma, x_hat, y), evaluated by SymPy for batches of "
            f"{scope['dense_batch_sizes']}, equals nnx.BatchNorm's output",
            all(c.ok for c in forward),
            **_pooled(forward),
        ),
    )


# --- gamma, beta, evaluation mode ------------------------------------------------------------------------


@claim(
    "normalization/gamma-sigma-beta-mu-restores-the-input",
    sources=["S000-19", "S001-09"],
    says="'BN may force data that were reasonably distributed into a smaller interval; the trainable scale and "
    "shift can then effectively restore it' (这个时候使用可训练的扩张平移超参数就能有效的还原这种不需要的操作); "
    "'introducing gamma and beta ... can restore the optimal input distribution' (就可以恢复最优的输入数据分布).",
    expected="qualified",
    correction="Only against fixed statistics. gamma and beta are learned constants while the batch mean and "
    "variance change with every batch, so in training mode gamma = sigma_B, beta = mu_B fitted to one batch "
    "restores that batch alone; on another batch the residual is mu_1 - mu_2 + (sigma_1/sigma_2 - 1)(x - mu_2). "
    "In eval mode, where BN uses the running averages, gamma = sqrt(running var + epsilon), beta = running mean "
    "restores every input exactly: what the scale and shift guarantee is that BN can represent the identity.",
    scope={"batch_sizes": [1, 2, 32], "features": 4, "distribution": "Normal(1.5, 2^2)", "momentum": 0.9},
    tolerance=ROUNDOFF,
)
def _restore(scope, rtol) -> Evidence:
    identity = gamma_beta_restore_the_input()
    proved = identity.rhs == x[sp.Symbol("i", integer=True, positive=True)]
    shown = restore_on_another_batch()
    y_formula = to_jax(shown[0], (x_i, sigma_1, mu_1, sigma_2, mu_2))
    residual_formula = to_jax(shown[1], (x_i, sigma_1, mu_1, sigma_2, mu_2))
    same, predicted, fresh_restored, eval_restores, residuals = [], [], [], [], {}
    rng = np.random.default_rng(5)
    for n in scope["batch_sizes"]:
        # Arrays in NumPy and each module call compiled (apply_module): eager jnp compiles every primitive.
        fitted, fresh = (rng.normal(1.5, 2.0, (n, scope["features"])) for _ in range(2))
        mean_1, var_1 = (np.asarray(a) for a in batch_statistics(jax.device_put(fitted), (0,)))
        module = flax_batchnorm(scope["features"], momentum=scope["momentum"])
        module.scale[...], module.bias[...] = jax.device_put(np.sqrt(var_1[0] + EPS)), jax.device_put(mean_1[0])
        same.append(_close(apply_module(module, fitted), fitted, rtol, _condition(fitted, (0,))))
        mean_2, var_2 = (np.asarray(a) for a in batch_statistics(jax.device_put(fresh), (0,)))
        on_fresh = np.asarray(apply_module(module, fresh))
        args = (fresh, module.scale[...], module.bias[...], np.sqrt(var_2 + EPS), mean_2)
        cond = _condition(fresh, (0,))
        predicted += [
            _close(on_fresh, y_formula(*args), rtol, cond),
            _close(on_fresh - fresh, residual_formula(*args), rtol, cond * float(np.max(np.abs(fresh)))),
        ]
        fresh_restored.append(_close(on_fresh, fresh, rtol, cond))
        residuals[n] = float(np.max(np.abs(on_fresh - fresh)) / np.max(np.abs(fresh)))
        # Eval mode: the same substitution with the running averages (after the two training passes above).
        running_mean = np.asarray(module.mean[...])
        module.scale[...] = jax.device_put(np.sqrt(np.asarray(module.var[...]) + EPS))
        module.bias[...] = jax.device_put(running_mean)
        module.eval()
        # y = (x - running mean) + running mean: an absolute round-off of a few ulps of |x| + |running mean|.
        eval_restores += [
            _close(apply_module(module, v), v, rtol, magnitude=float(np.max(np.abs(v)) + np.max(np.abs(running_mean))))
            for v in (fitted, fresh)
        ]
    return evidence(
        "measurement",
        core("SymPy: gamma x_hat + beta with gamma = sqrt(sigma_B^2 + epsilon), beta = mu simplifies to x_i", proved),
        core(
            f"nnx.BatchNorm (training mode) with gamma, beta fitted to a batch returns that batch, for batch sizes "
            f"{scope['batch_sizes']}",
            all(c.ok for c in same),
            **_pooled(same),
        ),
        core(
            "in eval mode gamma = sqrt(running var + epsilon), beta = running mean restore every input",
            all(c.ok for c in eval_restores),
            **_pooled(eval_restores),
        ),
        core(
            "on another batch the output and the residual are the derived y_i and y_i - x_i",
            all(c.ok for c in predicted),
            **_pooled(predicted),
        ),
        scoped(
            "in training mode the fitted gamma, beta also restore another batch from the same distribution",
            all(c.ok for c in fresh_restored),
            smallest_relative_residual=min(residuals.values()),
        ),
        details={"fresh_batch_relative_residual": residuals},
    )


@nnx.jit
def _sgd_step(module, optimizer, inputs, upstream):
    """One optimizer step on L = sum dy * module(x), compiled (eagerly, every primitive is a program)."""
    optimizer.update(module, nnx.grad(lambda m: jnp.sum(upstream * m(inputs)))(module))


@claim(
    "normalization/gamma-and-beta-are-learned-parameters",
    sources=["S000-19"],
    says="'BN has two important hyperparameters: the scale and the shift; BN provides a switch that turns their "
    "learning on or off; if it is on, backpropagation updates them' "
    "(BN中有两个重要的超参数：扩张+平移参数 ... 如果启用，"
    "反向传播的时候就会更新).",
    expected="qualified",
    correction="gamma and beta are parameters, not hyperparameters: they get gradients (dgamma = sum dy x_hat, "
    "dbeta = sum dy) and the optimizer updates them like weights. The hyperparameters of BN are epsilon and "
    "the momentum of the running averages. The note's switch is, in Flax, nnx.BatchNorm(use_scale=..., "
    "use_bias=...): switched off, the parameter does not exist (gamma = 1, beta = 0 fixed).",
    scope={
        "shapes": [(2, 3), (16, 3), (4, 3, 3, 3)],
        "optimizer": "optax.sgd(0.1)",
        "hyperparameter": "a value set before training, not updated by backpropagation",
    },
)
def _learned(scope, rtol) -> Evidence:
    learned, off = [], []
    for k, shape in enumerate(map(tuple, scope["shapes"])):
        x_in, _, _, upstream = _random_case(shape, 2 + k)
        axes = tuple(range(len(shape) - 1))
        module = flax_batchnorm(shape[-1])
        params = nnx.state(module, nnx.Param)
        _, dscale, dbias = module_vjp(module, x_in, upstream)
        before = jax.tree.map(np.asarray, nnx.to_pure_dict(params))
        optimizer = nnx.Optimizer(module, optax.sgd(0.1), wrt=nnx.Param)
        _sgd_step(module, optimizer, x_in, upstream)
        moved = all(bool(np.all(np.asarray(getattr(module, key)[...]) != before[key])) for key in ("scale", "bias"))
        learned.append(
            sorted(params.keys()) == ["bias", "scale"]
            and bool(np.all(np.asarray(dscale) != 0))
            and bool(np.all(np.asarray(dbias) != 0))
            and moved
        )
        switched = flax_batchnorm(shape[-1], use_scale=False, use_bias=False)
        fixed = _close(apply_module(switched, x_in), normalize(x_in, axes, EPS), rtol, _condition(x_in, axes))
        off.append(not jax.tree.leaves(nnx.state(switched, nnx.Param)) and fixed.ok)
    return evidence(
        "autodiff",
        core(
            f"scale and bias are nnx.Param with non-zero gradients that one {scope['optimizer']} step changes, for "
            f"{len(learned)} shapes",
            all(learned),
        ),
        core("the switch exists: use_scale=False, use_bias=False leaves no Param and the output is x_hat", all(off)),
        scoped("they are hyperparameters (set before training, not updated by backpropagation)", not all(learned)),
    )


@claim(
    "normalization/without-eval-mode-testing-changes-gamma-and-beta",
    sources=["S000-21"],
    says="model.eval(): 'at inference it uses the mean and variance produced on the training set, i.e. it keeps "
    "the mean and variance in the BN layer unchanged; without it, testing would change BN's scale and shift "
    "parameters' (如果不启用这个功能，使用test测试的时候BN中的扩张、平移参数就会随之改变).",
    expected="refuted",
    correction="Without eval mode a forward pass on test data changes the running mean and variance and "
    "normalizes with the test batch's own statistics (so each output depends on the rest of the batch); gamma "
    "and beta, the scale and shift, change only when an optimizer step is taken, in either mode: a training-mode "
    "pass leaves them bit-identical.",
    scope={"batch_sizes": [1, 2, 32], "momentum": [0.9, 0.99], "test_passes": 3},
    aliases=["normalization/eval-mode-freezes-the-statistics-not-gamma-beta"],
)
def _eval_mode(scope) -> Evidence:
    rng = np.random.default_rng(4)
    params_same, stats_frozen_in_eval, stats_move_in_train, eval_uses_running, batch_free = [], [], [], [], []
    dependence = {}
    for momentum in scope["momentum"]:
        for n in scope["batch_sizes"]:
            # NumPy arrays, every module call compiled (apply_module), state read back as NumPy.
            def state(m):
                return {k: np.asarray(getattr(m, k)[...]) for k in ("mean", "var", "scale", "bias")}

            def run(m, v):
                return np.asarray(apply_module(m, v))

            train_batch = rng.normal(0, 1, (max(n, 2), 3))
            module = flax_batchnorm(3, momentum=momentum)
            module.scale[...] = jax.device_put(np.asarray([0.5, 1.5, 2.0]))
            module.bias[...] = jax.device_put(np.asarray([0.1, -0.2, 0.3]))
            run(module, train_batch)
            snapshot = state(module)
            tests = [rng.normal(2, 3, (n, 3)) for _ in range(scope["test_passes"])]
            for t in tests:
                run(module, t)  # training mode on test data
            after = state(module)
            params_same.append(all(bool(np.array_equal(after[k], snapshot[k])) for k in ("scale", "bias")))
            stats_move_in_train.append(all(bool(np.all(after[k] != snapshot[k])) for k in ("mean", "var")))
            if n > 1:
                other = tests[0].copy()
                other[1:] = rng.normal(-4, 0.5, (n - 1, 3))
                dependence[(momentum, n)] = float(np.max(np.abs(run(module, tests[0])[0] - run(module, other)[0])))
            module.eval()
            frozen = state(module)
            outputs = [run(module, t) for t in tests]
            now = state(module)
            stats_frozen_in_eval.append(
                all(bool(np.array_equal(now[k], frozen[k])) for k in ("mean", "var", "scale", "bias"))
            )
            running = now["scale"] * (tests[0] - now["mean"]) / np.sqrt(now["var"] + EPS) + now["bias"]
            eval_uses_running.append(
                bool(
                    np.allclose(outputs[0], running, rtol=0, atol=ULPS * UNIT_ROUNDOFF * float(np.max(np.abs(running))))
                )
            )
            batch_free.append(bool(np.array_equal(run(module, tests[0][:1])[0], outputs[0][0])))
    configurations = len(scope["momentum"]) * len(scope["batch_sizes"])
    return evidence(
        "measurement",
        core(
            f"in eval mode nnx.BatchNorm normalizes with the running (training) mean and variance, keeps them "
            f"bit-identical over {scope['test_passes']} test passes, and each example's output is the same alone "
            f"or in its batch, in {configurations} configurations",
            all(stats_frozen_in_eval) and all(eval_uses_running) and all(batch_free),
        ),
        core(
            "without eval mode, test passes change BN's scale and shift (gamma, beta)",
            not all(params_same),
            configurations_with_gamma_beta_bit_identical=sum(params_same),
        ),
        core(
            "without eval mode, test passes change the running mean and variance, and an example's output depends "
            "on the rest of its batch",
            all(stats_move_in_train) and min(dependence.values()) > 0,
            smallest_dependence=min(dependence.values()),
        ),
        details={"train_mode_dependence_on_the_rest_of_the_batch": {str(k): v for k, v in dependence.items()}},
    )


@claim(
    "normalization/eval-statistics-are-running-averages",
    sources=["S001-09", "S000-21"],
    says="'For the prediction stage, the mean and variance we use are the expectations of the mean and variance "
    "of the whole training set' (对于预测阶段，我们所使用的均值和方差，是整个训练样本的均值和方差的期望值).",
    expected="qualified",
    correction="It depends on the library. The BN paper's inference rule (Algorithm 2) is the note's: the mean of "
    "the batch means and N/(N - 1) times the mean of the batch variances over training batches, the expectations; "
    "PyTorch keeps the unbiased batch variance, and with momentum=None an equal-weight average. Flax's "
    "nnx.BatchNorm (and the custom-VJP BatchNorm here) keeps exponential moving averages, "
    "stat <- momentum stat + (1 - momentum) batch_stat (momentum 0.99 by default), of the batch mean and of the "
    "biased batch variance: recent batches weigh most, and for batches of N its variance has expectation "
    "(N - 1)/N of the variance (0 for N = 1, where the running variance decays to 0).",
    scope={
        "library": "flax nnx.BatchNorm (EMA of the biased batch variance), against the BN paper's Algorithm 2",
        "momentum": [0.9, 0.99],
        "recurrence_batches": 20,
        "recurrence_batch_sizes": [1, 2, 8],
        "monte_carlo_batch_sizes": [2, 3, 4, 5, 8],
        "monte_carlo_batches": 4000,
        "sigma": 2.0,
        "z_max": 4.5,
    },
    tolerance="Monte-Carlo: the mean batch variance must lie within 4.5 standard errors of (N - 1)/N s^2",
)
def _running_averages(scope, rtol) -> Evidence:
    rng = np.random.default_rng(12)
    s = scope["sigma"]
    recurrence, drop_in, last_weights = [], [], []
    for momentum in scope["momentum"]:
        for n in scope["recurrence_batch_sizes"]:
            batches = rng.normal(3.0, s, (scope["recurrence_batches"], n, 2))
            flax_module = flax_batchnorm(2, momentum=momentum)
            ours = BatchNorm(2, momentum=momentum, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
            flax_path, ours_path, ema, ema_path = [], [], np.ones(2), []
            for b in batches:
                apply_module(flax_module, b)  # compiled: eagerly every primitive of every call is a program
                apply_module(ours, b)
                ema = momentum * ema + (1 - momentum) * b.var(axis=0)  # numpy's var divides by N (ddof=0)
                flax_path.append(np.asarray(flax_module.var[...]))
                ours_path.append(np.asarray(ours.var[...]))
                ema_path.append(ema)
            recurrence.append(_close(np.stack(flax_path), np.stack(ema_path), rtol, float(np.max(batches**2)) / s**2))
            drop_in.append(_close(np.stack(ours_path), np.stack(flax_path), rtol, float(np.max(batches**2)) / s**2))
        # Each batch's weight in the running mean, measured on the module: batch k has every value 1, the others
        # 0, so from a running mean of 0 the final running mean is batch k's weight (the first and the last).
        weights = []
        for k in (scope["recurrence_batches"] - 1, 0):
            probe = flax_batchnorm(1, momentum=momentum)
            for t in range(scope["recurrence_batches"]):
                apply_module(probe, jnp.full((2, 1), float(t == k)))
            weights.append(float(probe.mean[...][0]))
        last_weights.append(np.asarray(weights))
    z = {}
    s2 = sp.Symbol("s^2", positive=True)
    displayed = {int(re.search(r"N=(\d+)", str(eq.lhs)).group(1)): eq for eq in batch_variance_is_biased()}
    for n in scope["monte_carlo_batch_sizes"]:
        batch_vars = rng.normal(3.0, s, (scope["monte_carlo_batches"], n)).var(axis=1)
        mean_var = float(batch_vars.mean())
        stderr = float(batch_vars.std(ddof=1) / np.sqrt(scope["monte_carlo_batches"]))
        biased = value(displayed[n], {s2: s**2}) if n in displayed else float(expected_batch_variance(n).subs(s2, s**2))
        z[n] = {
            "mean": mean_var,
            "stderr": stderr,
            "biased": biased,
            "z_biased": abs(mean_var - biased) / stderr,
            "z_unbiased": abs(mean_var - s**2) / stderr,
        }
    one = float(expected_batch_variance(1))
    return evidence(
        "measurement",
        core(
            "the prediction statistics are averages of the training batches' means and variances: nnx.BatchNorm's "
            f"running variance follows the EMA of the biased batch variances at every step (momentum "
            f"{scope['momentum']}, batch sizes {scope['recurrence_batch_sizes']}), and the custom-VJP BatchNorm's "
            "equals it",
            all(c.ok for c in recurrence + drop_in),
            **_pooled(recurrence + drop_in),
        ),
        core(
            f"the mean batch variance over {scope['monte_carlo_batches']} batches is (N - 1)/N s^2 (SymPy) within "
            f"{scope['z_max']} standard errors, N = {scope['monte_carlo_batch_sizes']}",
            all(v["z_biased"] <= scope["z_max"] for v in z.values()),
            largest_z=max(v["z_biased"] for v in z.values()),
        ),
        scoped(
            "nnx.BatchNorm's average is the expectation over all training batches (each of T batches weighs 1/T, "
            "measured on the module for the last and the first batch)",
            all(bool(np.allclose(w, 1 / scope["recurrence_batches"], rtol=rtol, atol=0)) for w in last_weights),
            weight_of_the_last_batch=max(float(w[0]) for w in last_weights),
            weight_of_the_first_batch=min(float(w[-1]) for w in last_weights),
        ),
        scoped(
            "nnx.BatchNorm's variance is the expectation of the variance s^2 (unbiased)",
            all(v["z_unbiased"] <= scope["z_max"] for v in z.values()) and one == s**2,
            smallest_z_from_s2=min(v["z_unbiased"] for v in z.values()),
            expected_batch_variance_at_n_1=one,
        ),
        details={"monte_carlo": {str(k): v for k, v in z.items()}},
    )


@functools.partial(jax.jit, static_argnums=(3,))
def _constant_feature_case(x_in, g, upstream, epsilons):
    """Everything ``_epsilon`` measures on one batch, in one program: the note's formula without epsilon (and
    as worded), and per epsilon nnx.BatchNorm's output and jax.vjp (the custom-VJP's at the first epsilon)."""
    varying = x_in[:, jnp.asarray([0, x_in.shape[1] - 1])]
    without = normalize(x_in, (0,), 0.0)
    # The note's words: divide by sqrt(standard deviation) instead of by the standard deviation.
    as_worded = (varying - jnp.mean(varying, axis=0)) / jnp.sqrt(jnp.std(varying, axis=0))
    out = {
        "without": without,
        "unit_variance": jnp.var(without[:, jnp.asarray([0, x_in.shape[1] - 1])], axis=0),
        "worded_variance": jnp.var(as_worded, axis=0),
        "varying_condition": _variance_condition(varying, (0,), 0.0),
        "condition": _variance_condition(x_in, (0,), epsilons[0]),
        "custom": _custom_vjp_backward(x_in, g, upstream, epsilons[0], (0,)),
    }
    out["per_epsilon"] = []
    for epsilon in epsilons:
        module = flax_batchnorm(x_in.shape[1], epsilon=epsilon)
        module.scale[...] = g
        out["per_epsilon"].append((module(x_in), *module_vjp(module, x_in, upstream)))
    return out


@claim(
    "normalization/the-notes-formula-needs-epsilon",
    sources=["S001-09"],
    says="x_hat = (x - E[x]) / sqrt(Var[x]), 'where Var[x] is the standard deviation of this batch of data at the "
    "k-th neuron' (Var[x^(k)] 为这一批数据在第k个神经元的标准差).",
    expected="qualified",
    correction="Var[x] is the (biased) batch variance, its square root the standard deviation; and the formula "
    "needs epsilon under the root: for a constant feature (variance 0) the note's formula gives 0/0 = NaN. With "
    "epsilon the output is beta, and the gradient is finite: x_hat = 0 there, so dx = (gamma/sqrt(epsilon))"
    "(dy - mean dy) and ||dx||_2 <= (|gamma|/sqrt(epsilon)) ||dy||_2, with equality when dy has mean 0.",
    scope={
        "batch_sizes": [2, 16],
        "epsilons": [1e-5, 1e-3],
        "levels": [2.5, -0.3, 40.0],
        "gamma": [1.5, -0.7],
        "roundoff_ulps": ULPS,
    },
    tolerance="dx of a constant feature against (gamma/sqrt(epsilon))(dy - mean dy): the one-pass variance of a "
    "constant is a few ulps of level^2, not 0, which moves dx by that over 2 epsilon relative (rtol + 8 ulps * "
    "level^2/epsilon), and dy - mean dy cancels where dy is near its mean, an absolute round-off multiplied by "
    "|gamma|/sqrt(epsilon), about 316 |gamma| at epsilon 1e-5 (atol 8 ulps * |gamma|/sqrt(epsilon) * max|dy|)",
)
def _epsilon(scope, rtol) -> Evidence:
    rng = np.random.default_rng(9)
    constants = [(level, g) for level in scope["levels"] for g in scope["gamma"]]
    k = len(constants)  # features 0 and k + 1 vary, features 1 ... k are constant (one per level and gamma)
    g = np.asarray([1.0, *(g for _, g in constants), 0.5])
    levels = np.asarray([level for level, _ in constants])
    unit, std_instead, nan_without, finite, beta_out, formula, same, bound_ok, attained = ([] for _ in range(9))
    gains = []
    for n in scope["batch_sizes"]:
        derived = constant_feature_dx(n)
        x_in = rng.normal(size=(n, k + 2))
        x_in[:, 1 : k + 1] = np.broadcast_to(levels, (n, k))
        upstream = rng.normal(size=(n, k + 2))
        case = jax.tree.map(np.asarray, _constant_feature_case(x_in, g, upstream, tuple(scope["epsilons"])))
        cond = float(case["varying_condition"])
        unit.append(bool(np.all(np.abs(case["unit_variance"] - 1) <= ULPS * UNIT_ROUNDOFF * cond)))
        std_instead.append(bool(np.all(np.abs(case["worded_variance"] - 1) <= ULPS * UNIT_ROUNDOFF * cond)))
        nan_without.append(bool(np.all(np.isnan(case["without"][:, 1 : k + 1]))))
        centred = upstream - np.mean(upstream, axis=0)
        for epsilon, (y, dx, dscale, dbias) in zip(scope["epsilons"], case["per_epsilon"], strict=True):
            finite.append(all(bool(np.all(np.isfinite(v))) for v in (y, dx, dscale, dbias)))
            if epsilon == scope["epsilons"][0]:
                ours = case["custom"]
                finite.append(all(bool(np.all(np.isfinite(v))) for v in ours))
                same.append(_close(ours[0], dx, rtol, float(case["condition"])))
            # The derived dx of every constant feature at once (the formula is elementwise in the features).
            columns = slice(1, k + 1)
            on_dy = np.asarray(derived(upstream[:, columns], g[columns], epsilon))
            on_centred = np.asarray(derived(centred[:, columns], g[columns], epsilon))
            for f, (level, g_const) in enumerate(constants, start=1):
                # Exactly beta when x - mean rounds to 0; else within the round-off of x - mean (an ulp of the
                # level) times |gamma|/sqrt(epsilon).
                beta_out.append(
                    bool(np.all(np.abs(y[:, f]) <= ULPS * UNIT_ROUNDOFF * abs(level) * abs(g_const) / np.sqrt(epsilon)))
                )
                tol, atol = constant_feature_tolerance(
                    level, g_const, upstream[:, f], epsilon, rtol, scope["roundoff_ulps"]
                )
                formula.append(compare(lambda d=on_dy[:, f - 1]: d, lambda d=dx[:, f]: d, [], rtol=tol, atol=atol))
                bound = abs(g_const) / np.sqrt(epsilon)
                gain = float(np.linalg.norm(dx[:, f]) / np.linalg.norm(upstream[:, f]))
                gains.append(gain / bound)
                bound_ok.append(gain <= bound * (1 + tol))
                attained.append(
                    compare(
                        lambda d=on_centred[:, f - 1], c=centred[:, f]: np.linalg.norm(d) / np.linalg.norm(c),
                        lambda b=bound: np.asarray(b),
                        [],
                        rtol=tol,
                    )
                )
    return evidence(
        "autodiff",
        core(
            "with Var the biased batch variance, (x - E[x])/sqrt(Var) gives each non-constant feature mean 0 and "
            "variance 1",
            all(unit),
        ),
        scoped("with Var the standard deviation, as worded, the output has unit variance", all(std_instead)),
        scoped(
            "the formula without epsilon is defined for every batch (a constant feature gives 0/0)",
            not any(nan_without),
        ),
        core(
            f"with epsilon (nnx.BatchNorm, epsilon = {scope['epsilons']}) a constant feature outputs beta (up to the "
            "round-off of x - mean times |gamma|/sqrt(epsilon)) and every gradient (also the custom-VJP's) is finite",
            all(finite) and all(beta_out),
        ),
        compared(
            "jax.vjp's dx on the constant feature equals the derived (gamma/sqrt(epsilon))(dy - mean dy), to the "
            "tolerance scaled by its conditioning",
            _pool_comparison(formula),
        ),
        compared("the custom-VJP BatchNorm's dx equals jax.vjp's", _pool_comparison(same)),
        core(
            "||dx||_2 <= (|gamma|/sqrt(epsilon)) ||dy||_2 on the constant feature, with equality for a mean-zero dy",
            all(bound_ok) and all(c.ok for c in attained),
            largest_gain_over_bound=max(gains),
        ),
    )


def _pool_comparison(comparisons):
    """The worst of several comparisons, as one (``ok`` only when all are)."""
    worst = max(comparisons, key=lambda c: c.max_rel_err)
    return type(worst)(
        **{
            **worst.__dict__,
            "ok": all(c.ok for c in comparisons),
            "samples": sum(c.samples for c in comparisons),
            "max_abs_err": max(c.max_abs_err for c in comparisons),
        }
    )


# --- why it helps ---------------------------------------------------------------------------------------------


def _gauss_hermite_mean(f, points: int = 80) -> float:
    """E[f(Z)] for Z ~ N(0, 1) by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite.hermgauss(points)
    return float(np.sum(weights * f(np.sqrt(2.0) * nodes)) / np.sqrt(np.pi))


@claim(
    "normalization/batchnorm-moves-sigmoid-inputs-out-of-saturation",
    sources=["S001-32", "S002-48"],
    says="'Batch normalization helps in getting rid of outliers ... input to every layer in the network is made zero "
    "mean and unit variance ... activation like sigmoid which saturates ... will not make gradients zero as its input "
    "is in the centre'; BN 'pulls the increasingly skewed distribution back to a standard one, so that the "
    "activation's inputs fall in its sensitive region' (使得激活函数的输入值落在激活函数对输入比较敏感的区域).",
    expected="qualified",
    correction="It centres and scales each feature, so inputs that a shift or scale had pushed into the "
    "sigmoid's flat tails come back to where sigma' is large (at gamma = 1, beta = 0; gamma and beta are learned "
    "and can move them out again). It does not remove outliers: BN is one affine map per feature, so an outlier "
    "stays an outlier; it inflates the batch variance, so after BN it still sits in the sigmoid's flat tail and "
    "the rest of the batch is squeezed together.",
    scope={
        "shifts": [0.0, 4.0, 8.0, -8.0],
        "spreads": [0.5, 3.0],
        "batch": 4096,
        "clean_batch": 64,
        "outliers": [10.0, 25.0],
        "z_max": 4.5,
    },
    tolerance="Monte-Carlo: the mean sigmoid' after BN within 4.5 standard errors of E[sigmoid'(Z)], Z ~ N(0, 1)",
)
def _saturation(scope) -> Evidence:
    rng = np.random.default_rng(21)
    slope = jax.jit(jax.vmap(jax.grad(jax.nn.sigmoid)))
    centre = _gauss_hermite_mean(lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2)
    module = flax_batchnorm(1)
    z_after, gained, table = [], [], {}
    # NumPy arrays in and out of the two compiled functions (eager jnp compiles every primitive per shape).
    for shift in scope["shifts"]:
        for spread in scope["spreads"]:
            z = rng.normal(shift, spread, (scope["batch"], 1))
            before = np.asarray(slope(z[:, 0]))
            after_values = np.asarray(slope(np.asarray(apply_module(module, z))[:, 0]))
            after = float(np.mean(after_values))
            stderr = float(np.std(after_values, ddof=1)) / np.sqrt(scope["batch"])
            z_after.append(abs(after - centre) / stderr)
            gained.append(float(np.mean(before)) < after if abs(shift) > 0 or spread > 1 else True)
            table[f"shift {shift:g}, sd {spread:g}"] = {"before": float(np.mean(before)), "after": after}
    clean = rng.normal(0, 1, (scope["clean_batch"], 1))
    removed, squeezed, outlier_slopes = [], [], []
    for outlier in scope["outliers"]:
        with_outlier = clean.copy()
        with_outlier[0, 0] = outlier
        normalized = np.asarray(apply_module(module, with_outlier))[:, 0]
        removed.append(bool(np.abs(normalized[0]) <= np.max(np.abs(normalized[1:]))))
        squeezed.append(float(np.std(normalized[1:])) < float(np.std(np.asarray(apply_module(module, clean))[1:, 0])))
        outlier_slopes.append(float(np.asarray(slope(normalized))[0]))
    return evidence(
        "measurement",
        core(
            f"after nnx.BatchNorm the mean sigmoid' of N(shift, sd^2) pre-activations (shifts {scope['shifts']}, sd "
            f"{scope['spreads']}) is E[sigmoid'(Z)] = {centre:.4f} for Z ~ N(0, 1), within {scope['z_max']} standard "
            "errors",
            max(z_after) <= scope["z_max"],
            largest_z=max(z_after),
        ),
        core(
            "it is larger than before BN wherever a shift or a wide spread had pushed the inputs into the tails",
            all(gained),
        ),
        scoped(
            f"BN gets rid of outliers (one value of {scope['outliers']} in a N(0, 1) batch of "
            f"{scope['clean_batch']} ends inside the others' range)",
            any(removed),
            outlier_sigmoid_slope=max(outlier_slopes),
        ),
        core("the outlier squeezes the rest of the batch together", all(squeezed)),
        details={"mean_sigmoid_slope": table, "outlier_sigmoid_slopes": outlier_slopes},
    )


@claim(
    "normalization/batchnorm-is-invariant-to-the-scale-of-its-weights",
    sources=["S000-19"],
    says="BN 'mainly serves to constrain the trainable parameters (收束可训练参数), increasing the system's "
    "robustness, "
    "and then speeds up model convergence' (a gloss: what is tested is the mechanism, scale invariance).",
    expected="qualified",
    correction="What can be checked is the mechanism: BN makes a layer invariant to the scale of the weights "
    "feeding it, BN(aWx) = BN(Wx) for a > 0, and the gradient shrinks as the weights grow, dL/d(aW) = "
    "(1/a) dL/dW: exactly at epsilon = 0, up to O(epsilon/sigma^2) with epsilon > 0. That training converges "
    "faster is an empirical finding that this workbook does not settle.",
    scope={"factors": [0.01, 0.1, 10.0, 100.0], "batch_sizes": [2, 3, 32], "epsilon_positive": EPS},
    tolerance=ROUNDOFF,
)
def _scale_invariance(scope, rtol) -> Evidence:
    shown = batchnorm_is_scale_invariant()
    proved_display = vanishes(shown[0].lhs - shown[0].rhs)
    xs = sp.symbols("x1:4", real=True)
    scaled, plain = _normalized_batch([scale * v for v in xs], 0)[1], _normalized_batch(xs, 0)[1]
    proved = proved_display and all(vanishes(a - b) for a, b in zip(scaled, plain, strict=True))
    gradient_rule = shown[1].rhs
    rng = np.random.default_rng(17)
    outputs, grads, eps_gaps, at_two = [], [], [], []
    for n in scope["batch_sizes"]:
        inputs, weights = rng.normal(size=(n, 5)), rng.normal(size=(5, 4))
        upstream = rng.normal(size=(n, 4))
        graph, params, rest = nnx.split(flax_batchnorm(4, epsilon=0.0), nnx.Param, ...)

        def layer(w, graph=graph, params=params, rest=rest, inputs=inputs):
            return nnx.merge(graph, params, rest, copy=True)(inputs @ w)

        # One compiled forward and one compiled gradient per batch size, every factor a call of them.
        forward = jax.jit(layer)
        grad = jax.jit(jax.grad(lambda w, layer=layer, upstream=upstream: jnp.sum(upstream * layer(w))))
        cond = _condition(inputs @ weights, (0,), 0.0)
        at_w = np.asarray(grad(weights))
        for a in scope["factors"]:
            outputs.append(_close(forward(a * weights), forward(weights), rtol, cond))
            rule = value(shown[1], {gradient_rule.free_symbols.difference({scale}).pop(): 1, scale: a})
            # The size of one chain-rule term, max|dy| max|x| / (a sd(x W)), what round-off is measured against.
            term = float(
                np.max(np.abs(upstream)) * np.max(np.abs(inputs)) / (a * np.min(np.std(inputs @ weights, axis=0)))
            )
            if n == 2:  # the output is +/-1 whatever W: the gradient is 0, any rule would match its round-off
                at_two.append(float(np.max(np.abs(np.asarray(grad(a * weights))))) / term)
            else:
                grads.append(_close(grad(a * weights), at_w * rule, rtol, cond, magnitude=term))
        with_eps = flax_batchnorm(4, epsilon=scope["epsilon_positive"])
        smallest, unit = (
            apply_module(with_eps, inputs @ (min(scope["factors"]) * weights)),
            apply_module(with_eps, inputs @ weights),
        )
        eps_gaps.append(float(np.max(np.abs(np.asarray(smallest) - np.asarray(unit)))))
    return evidence(
        "autodiff",
        core(
            "SymPy proves x_hat(a x) = x_hat(x) at epsilon = 0 (the displayed form and a symbolic batch of 3)", proved
        ),
        core(
            f"nnx.BatchNorm (epsilon = 0) after x @ W: BN(x aW) = BN(x W) for a = {scope['factors']}, batch sizes "
            f"{scope['batch_sizes']}",
            all(c.ok for c in outputs),
            **_pooled(outputs),
        ),
        core(f"jax.grad at aW equals (1/a) jax.grad at W, batch sizes {[n for n in scope['batch_sizes'] if n > 2]}",
             all(c.ok for c in grads), **_pooled(grads)),
        core("at batch size 2 the gradient is 0 up to round-off at every a (the output is +/-1 whatever W): "
             "below 1e-13 of one chain-rule term", max(at_two) < 1e-13, largest_share_of_a_term=max(at_two)),
        scoped(
            f"the invariance is exact with epsilon = {scope['epsilon_positive']:g} too",
            max(eps_gaps) == 0.0,
            output_gap_at_smallest_a=max(eps_gaps),
        ),
    )


# --- LN, IN, GN -------------------------------------------------------------------------------------------


AXES_SHAPES = [(3, 4, 5, 6), (1, 4, 5, 6)]


@nnx.jit
def _apply_each(modules: dict, v):
    """Every module of ``modules`` applied to ``v``, in one compiled program."""
    return {name: module(v) for name, module in modules.items()}


@functools.partial(jax.jit, static_argnums=1)
def _reference_norms_and_conditions(v, groups):
    """(x - mean)/sqrt(var + eps) over each method's axes, and the variance condition over BN's and IN's axes."""
    return _reference_norms(v, groups), (_variance_condition(v, (0, 1, 2), EPS), _variance_condition(v, (1, 2), EPS))


@claim(
    "normalization/bn-ln-in-gn-normalize-over-different-axes",
    sources=["S003-02", "S001-16"],
    says="Batch normalization 'standardizes each layer's output within a mini-batch'; layer normalization normalizes "
    "'the activations of all the neurons of a layer'; instance normalization works 'in each sample' (每个样本); Group "
    "Normalization (a heading only, S001-16).",
    expected="holds",
    scope={"shapes": AXES_SHAPES, "groups": 2, "layout": "NHWC", "epsilon": EPS},
    tolerance=ROUNDOFF,
)
def _axes(scope, rtol) -> Evidence:
    results, distinct = [], []
    for k, shape in enumerate(map(tuple, scope["shapes"])):
        v = np.random.default_rng(1 + k).normal(2.0, 3.0, shape)
        flax = jax.tree.map(np.asarray, _apply_each(_flax_norms(shape[-1], scope["groups"]), v))
        ours, conditions = _reference_norms_and_conditions(v, scope["groups"])
        cond = max(float(c) for c in conditions)
        results += [_close(flax[name], ours[name], rtol, cond) for name in flax]
        names = [n for n in flax if shape[0] > 1 or n != "BatchNorm"]  # a batch of one: BN is IN
        distinct.append(min(float(np.max(np.abs(flax[a] - flax[b]))) for a in names for b in names if a < b))
    return evidence(
        "measurement",
        core(
            "nnx.BatchNorm, LayerNorm(reduction_axes=(1, 2, 3)), InstanceNorm and GroupNorm each equal (x - mean)/"
            "sqrt(var + eps) over "
            + "; ".join(f"{k.split(' ')[0]}: ({a})" for k, (a, _) in NORMALIZATION_AXES.items())
            + f", for NHWC {scope['shapes']}",
            all(r.ok for r in results),
            **_pooled(results),
        ),
        core(
            "the methods give different outputs (BN and IN coincide only for a batch of one)",
            min(distinct) > 0,
            smallest_difference=min(distinct),
        ),
    )


@jax.jit
def _normalized_and_condition(v):
    """x_hat over (H, W) and over C, each with its variance condition, in one program."""
    return [(normalize(v, axes, EPS), _variance_condition(v, axes, EPS)) for axes in ((1, 2), (3,))]


@claim(
    "normalization/instance-norm-normalizes-each-channel-separately",
    sources=["S003-02"],
    says="Instance normalization: 'each sample is normalized over the channel dimension' "
    "(每个样本在通道维度上进行归一化).",
    expected="qualified",
    correction="Each sample *and each channel* separately, over the spatial axes H and W; it does not "
    "average across channels (that would be a LayerNorm over C alone).",
    scope={"shapes": AXES_SHAPES, "epsilon": EPS},
    tolerance=ROUNDOFF,
)
def _instance(scope, rtol) -> Evidence:
    spatial, across = [], []
    for k, shape in enumerate(map(tuple, scope["shapes"])):
        v = np.random.default_rng(2 + k).normal(2.0, 3.0, shape)
        flax_in = apply_module(
            nnx.InstanceNorm(shape[-1], epsilon=EPS, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0)), v
        )
        (spatial_norm, spatial_cond), (channel_norm, channel_cond) = _normalized_and_condition(v)
        spatial.append(_close(flax_in, spatial_norm, rtol, float(spatial_cond)))
        across.append(_close(flax_in, channel_norm, rtol, float(channel_cond)))
    return evidence(
        "measurement",
        core(
            "nnx.InstanceNorm normalizes each sample on its own (per-sample statistics, over H and W)",
            all(c.ok for c in spatial),
            **_pooled(spatial),
        ),
        scoped(
            "the statistics are taken over the channel dimension",
            all(c.ok for c in across),
            smallest_gap=min(c.max_abs_err for c in across),
        ),
    )


@claim(
    "normalization/group-norm-spans-layer-norm-to-instance-norm",
    sources=["S001-16"],
    says="'Group Normalization' (a heading in the notes with no text): GN with one group is LN, GN with one channel "
    "per group is IN (the chapter's gloss).",
    expected="holds",
    scope={"shapes": AXES_SHAPES},
    tolerance=ROUNDOFF,
)
def _group(scope, rtol) -> Evidence:
    one, each, middle = [], [], []
    for k, shape in enumerate(map(tuple, scope["shapes"])):
        v = np.random.default_rng(3 + k).normal(-1.0, 2.0, shape)
        c = shape[-1]
        kw = {"param_dtype": jnp.float64, "rngs": nnx.Rngs(params=0)}
        cond = max(_condition(v, (1, 2, 3)), _condition(v, (1, 2)))
        modules = {f"group {g}": nnx.GroupNorm(c, num_groups=g, **kw) for g in (1, 2, c)}
        modules |= {"layer": nnx.LayerNorm(c, reduction_axes=(1, 2, 3), **kw), "instance": nnx.InstanceNorm(c, **kw)}
        out = jax.tree.map(np.asarray, _apply_each(modules, v))
        group, layer, instance = {g: out[f"group {g}"] for g in (1, 2, c)}, out["layer"], out["instance"]
        one.append(_close(group[1], layer, rtol, cond))
        each.append(_close(group[c], instance, rtol, cond))
        middle.append(float(np.max(np.abs(group[2] - instance))))
    return evidence(
        "measurement",
        core(
            f"GroupNorm(1) equals LayerNorm over (H, W, C) on NHWC {scope['shapes']}",
            all(c.ok for c in one),
            **_pooled(one),
        ),
        core("GroupNorm(C) equals InstanceNorm", all(c.ok for c in each), **_pooled(each)),
        core("GroupNorm(2) is neither (it differs from IN)", min(middle) > 0, smallest_gap=min(middle)),
    )


@claim(
    "normalization/layer-norm-does-not-depend-on-the-batch",
    sources=["S003-02"],
    says="'Compared with Batch Normalization, LayerNorm suits small-batch training and sequence modelling (such as "
    "RNNs) better, because it does not depend on the statistics of the mini-batch' "
    "(因为它不依赖于 mini-batch 的统计信息).",
    expected="holds",
    scope={"batch_sizes": [1, 2, 8], "features": 6},
)
def _ln_batch(scope) -> Evidence:
    rng = np.random.default_rng(8)
    ln = nnx.LayerNorm(scope["features"], param_dtype=jnp.float64, rngs=nnx.Rngs(params=0))
    bn = flax_batchnorm(scope["features"])
    ln_changes, bn_changes, alone = [], [], []

    def run(module, inputs):  # one compiled program per module and shape, the output in NumPy
        return np.asarray(apply_module(module, jax.device_put(inputs)))

    for n in scope["batch_sizes"]:
        v = rng.normal(size=(n, scope["features"]))
        alone.append(float(np.max(np.abs(run(ln, v[:1])[0] - run(ln, v)[0]))))
        if n > 1:
            other = v.copy()
            other[1:] = rng.normal(5.0, 2.0, (n - 1, scope["features"]))
            ln_changes.append(float(np.max(np.abs(run(ln, v)[0] - run(ln, other)[0]))))
            bn_changes.append(float(np.max(np.abs(run(bn, v)[0] - run(bn, other)[0]))))
    return evidence(
        "measurement",
        core(
            f"replacing the rest of a batch (sizes {scope['batch_sizes'][1:]}) leaves an example's LayerNorm output "
            "bit-identical, and a batch of one gives the same output",
            max(ln_changes + alone) == 0.0,
        ),
        core("its BatchNorm output changes", min(bn_changes) > 0, smallest_bn_change=min(bn_changes)),
    )


@claim(
    "normalization/batchnorm-degenerates-at-batch-sizes-one-and-two",
    sources=["S003-02"],
    says="'LayerNorm suits small-batch training better than Batch Normalization, because it does not depend on the "
    "statistics of the mini-batch' (更适用于小批量训练 ... 因为它不依赖于 mini-batch 的统计信息).",
    expected="holds",
    scope={"features": 256, "epsilons": [1e-5, 1e-3], "batch_sizes": [1, 2]},
    tolerance=ROUNDOFF,
)
def _small_batches(scope, rtol) -> Evidence:
    rng = np.random.default_rng(23)
    c = scope["features"]  # each feature is its own batch of one (or two) values
    shown = batchnorm_of_one_and_two()
    one_value = value(shown[0])
    x_hat_two = to_jax(shown[1], (*sp.symbols("x1:3", real=True), eps))
    beta_exactly, pairs, bounded = [], [], []
    for epsilon in scope["epsilons"]:
        g, b = rng.normal(size=c) * 2, rng.normal(size=c)
        module = flax_batchnorm(c, epsilon=epsilon)
        module.scale[...], module.bias[...] = jax.device_put(g), jax.device_put(b)
        one = np.asarray(apply_module(module, rng.normal(0.0, 5.0, (1, c))))
        beta_exactly.append(bool(np.array_equal(one[0], b + g * one_value)))
        pair = rng.normal(0.0, 5.0, (2, c))
        got = np.asarray(apply_module(module, pair))
        x_hat = np.asarray(x_hat_two(pair[0], pair[1], epsilon))
        pairs.append(
            _close(
                got[0],
                g * x_hat + b,
                rtol,
                _condition(pair, (0,), epsilon) * float(np.max(np.abs(g)) / np.max(np.abs(got[0])) + 1),
            )
        )
        bounded.append(bool(np.all(np.abs(x_hat) < 1)))
    return evidence(
        "measurement",
        core(
            f"nnx.BatchNorm in training mode on a batch of one outputs exactly beta whatever the input "
            f"(x_hat = {one_value:g}), {c} features, epsilon {scope['epsilons']}",
            all(beta_exactly),
        ),
        core(
            "on a batch of two it outputs the derived gamma x_hat + beta, x_hat_1 = the sign of x_1 - x_2 times "
            "1/sqrt(1 + 4 epsilon/(x_1 - x_2)^2)",
            all(c.ok for c in pairs),
            **_pooled(pairs),
        ),
        core("so |x_hat| < 1: all the output keeps of a pair is which example is larger", all(bounded)),
    )
