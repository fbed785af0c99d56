"""The claims of the batching chapter: the gradient of a batch-mean loss, what a minibatch step estimates and
what it costs, how its variance and direction depend on B (every minibatch of a small set enumerated), and
data and model parallelism over 8 XLA devices, each against an independent NumPy backpropagation."""

from __future__ import annotations

import jax
import numpy as np
import sympy as sp

from derivations import _sharded_gradient as child
from derivations.batching import (
    DEVICES,
    ENUMERATED,
    enumerated_minibatch_statistics,
    gradient_of_the_mean,
    gradients,
    mean_loss,
    minibatch_variance,
    numpy_forward,
    numpy_gradient,
    per_example_gradients,
    problem,
    sharded_run,
)
from derivations.bridge import to_jax
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.harness import xla_flops


@claim(
    "batching/mean-loss-gradient-is-mean-of-per-example-gradients",
    sources=["S000-18"],
    says="A batch is propagated forward and each example's loss is computed; for backpropagation the batch's "
    "losses, per example, are summed (over the sample's feature dimension) and divided by the batch size, and that "
    "is backpropagated (一组batch数据前向传播，计算每一个样本对应的loss，反向传播的时候将整个batch求出的loss"
    "以样本为单位，在样本的特征维度上求和之后除以batch，然后进行反向传播).",
    expected="holds",
    scope={"batch": [1, 3, 32], "model": "MLP(5-16-1), tanh", "seed": 0, "displayed_batch": 3},
)
def _mean_of_gradients(scope, rtol) -> Evidence:
    findings = []
    # The displayed derivation (B = 3), its per-example derivatives replaced by per-example gradients.
    displayed = gradient_of_the_mean()
    slots = sorted(displayed.rhs.atoms(sp.Derivative), key=str)
    names = sp.symbols(f"g1:{len(slots) + 1}")
    mean_rule = to_jax(displayed.rhs.subs(dict(zip(slots, names, strict=True))), names)
    params, x, y = problem(scope["displayed_batch"], scope["seed"])
    rows = np.asarray(gradients(params, x, y)[0])  # the program the B = 3 case below reuses
    findings.append(
        compared(
            f"the displayed derivative of the mean of {len(slots)} losses, evaluated on the per-example gradients, "
            "equals the NumPy backpropagation of the batch-mean loss",
            compare(lambda: mean_rule(*rows), lambda: numpy_gradient(params, x, y), [], rtol=rtol),
        )
    )
    for batch in scope["batch"]:
        params, x, y = problem(batch, scope["seed"])
        per_example, of_mean = (np.asarray(a) for a in gradients(params, x, y))  # one program per batch size
        findings.append(
            compared(
                f"B = {batch}: the mean of jax.vmap(jax.grad(per-example loss)) equals the hand-written NumPy "
                "backpropagation of the batch-mean loss",
                compare(
                    lambda p=per_example: np.mean(p, axis=0),
                    lambda a=(params, x, y): numpy_gradient(*a),
                    [],
                    rtol=rtol,
                ),
            )
        )
        findings.append(
            compared(
                f"B = {batch}: jax.grad of the batch-mean loss equals the same reference",
                compare(
                    lambda g=of_mean: g,
                    lambda a=(params, x, y): numpy_gradient(*a),
                    [],
                    rtol=rtol,
                ),
            )
        )
    return evidence("autodiff", *findings)


@claim(
    "batching/minibatch-gradient-is-unbiased",
    sources=["S002-18"],
    says="With large amounts of data, stochastic gradient descent speeds up the computation of the gradient; "
    "each update uses only a randomly chosen sample, so each learning step is very fast and can be done online "
    "(使用随机梯度下降法能够加快梯度的计算；每次只随机选取一个样本来更新模型参数，因此每次的学习是非常快速的，并且可以进行"
    "在线更新).",
    expected="holds",
    scope={"examples": 256, "batch": [1, 8], "draws": 4000, "standard_errors": 4.5, "cost_ratio_band": [0.9, 1.1]},
    tolerance="Monte-Carlo: the mean of the drawn minibatch gradients must lie within 4.5 standard errors of the "
    "full-batch gradient in every coordinate; XLA's FLOP count of a step must be within 10% of B/N of the "
    "full-batch step's (a few flops per step do not scale with B)",
)
def _unbiased(scope) -> Evidence:
    n, k = scope["examples"], scope["standard_errors"]
    params, x, y = problem(n)
    per_example = per_example_gradients(params, x, y)
    full = numpy_gradient(params, x, y)
    full_flops = xla_flops(jax.grad(mean_loss), params, x, y)
    low, high = scope["cost_ratio_band"]
    findings = []
    for batch in scope["batch"]:
        # The data loader's way: a fresh random permutation per step, its first B examples.
        order = np.random.default_rng(batch).permuted(np.tile(np.arange(n), (scope["draws"], 1)), axis=1)
        estimates = np.asarray(per_example)[order[:, :batch]].mean(axis=1)
        error = np.abs(estimates.mean(axis=0) - full) / (estimates.std(axis=0, ddof=1) / np.sqrt(scope["draws"]))
        findings.append(
            core(
                f"B = {batch}: the average of {scope['draws']} random minibatch gradients is the "
                f"full-batch gradient (within {k:g} standard errors in each of {full.size} coordinates)",
                bool(np.all(error <= k)),
                max_z_score=float(error.max()),
                samples=scope["draws"],
            )
        )
        ratio = xla_flops(jax.grad(mean_loss), params, x[:batch], y[:batch]) / full_flops / (batch / n)
        findings.append(
            core(
                f"B = {batch}: a step's gradient costs B/N of the full-batch gradient's FLOPs (XLA's count)",
                low <= ratio <= high,
                cost_over_b_over_n=ratio,
            )
        )
    return evidence("measurement", *findings)


@claim(
    "batching/gradient-variance-falls-as-one-over-batch-size",
    sources=["S001-34", "S002-30"],
    says="Within a reasonable range, a larger batch size gives a more accurate descent direction and less "
    "oscillation (在合理的范围之内，越大的 batch size 使下降方向越准确，震荡越小); when the batch size is 1, 'the "
    "gradient descent is very random' (S001-34).",
    expected="holds",
    scope={"examples": ENUMERATED, "batch": list(range(1, ENUMERATED + 1)), "sampling": "without replacement"},
)
def _variance(scope, rtol) -> Evidence:
    stats = enumerated_minibatch_statistics()
    sizes = scope["batch"]
    measured = np.asarray([stats["by_batch"][b]["variance"] for b in sizes])
    derived = np.asarray([minibatch_variance(stats["population_variance"], scope["examples"], b) for b in sizes])
    cosines = np.asarray([stats["by_batch"][b]["mean_cosine"] for b in sizes])
    inner = [i for i, b in enumerate(sizes) if b < scope["examples"]]
    return evidence(
        "measurement",
        compared(
            "the total variance over all C(N, B) minibatches equals sigma^2/B (N - B)/(N - 1), B < N",
            compare(lambda: measured[inner], lambda: derived[inner], [], rtol=rtol),
        ),
        core(
            "at B = N the variance is 0 (derived: exactly; enumerated: below 1e-20 of sigma^2)",
            derived[-1] == 0 and abs(measured[-1]) <= 1e-20 * stats["population_variance"],
        ),
        core(
            "the variance falls strictly with B (less oscillation)",
            bool(np.all(np.diff(measured) < 0)),
            at_1=float(measured[0]),
            at_n_minus_1=float(measured[-2]),
        ),
        core(
            "the mean cosine between a minibatch gradient and the full-batch gradient rises strictly with B (a "
            "more accurate direction)",
            bool(np.all(np.diff(cosines) > 0)),
            cosine_at_1=float(cosines[0]),
            cosine_at_4=float(cosines[3]),
        ),
        details={
            "population_variance": stats["population_variance"],
            "measured": measured.tolist(),
            "derived": derived.tolist(),
            "mean_cosine": cosines.tolist(),
        },
    )


def _references() -> dict:
    """NumPy backpropagation of the child's problem: the full batch (mean and sum) and each device's shard."""
    params, x, y = jax.device_get(child.problem())  # NumPy from here: no program per shard
    shards = np.split(np.arange(child.BATCH), DEVICES)
    return {
        "mean": numpy_gradient(params, x, y),
        "sum": numpy_gradient(params, x, y, reduction="sum"),
        "shards": np.stack([numpy_gradient(params, x[s], y[s]) for s in shards]),
        "output": numpy_forward(params, x).ravel(),
    }


def _against(run: dict, name: str, reference: np.ndarray, rtol: float):
    return compare(lambda: np.asarray(run[name]), lambda: reference, [], rtol=rtol)


@claim(
    "batching/data-parallel-mean-of-device-gradients-is-the-full-batch-gradient",
    sources=["S001-39", "S002-32"],
    says="Data parallelism: the training is done by sharing the data across different GPUs.",
    expected="holds",
    scope={
        "devices": DEVICES,
        "batch": child.BATCH,
        "platform": "forced XLA CPU devices",
        "collective": ["shard_map + lax.pmean", "jit on a sharded batch (XLA inserts it)"],
    },
)
def _data_parallel(scope, rtol) -> Evidence:
    run, ref = sharded_run(), _references()
    local = np.asarray(run["per_device_gradients"])
    return evidence(
        "autodiff",
        core(
            f"the batch is split over {scope['devices']} devices, each holding a different shard",
            run["devices"] == scope["devices"]
            and run["batch_shard_shapes"] == [f"({scope['batch'] // scope['devices']}, 5)"],
            shards=", ".join(run["batch_shard_shapes"]),
        ),
        compared(
            "each device's own gradient equals the NumPy backpropagation of its shard",
            compare(lambda: local, lambda: ref["shards"], [], rtol=rtol),
        ),
        core(
            "the devices' gradients differ from one another (each sees different data)",
            bool(np.min(np.ptp(local, axis=0)[np.abs(ref["mean"]) > 0]) > 0),
        ),
        compared(
            "lax.pmean of the device gradients equals the NumPy full-batch gradient",
            _against(run, "pmean_of_mean_loss", ref["mean"], rtol),
        ),
        compared(
            "jit of jax.grad on the sharded batch (no collective written) equals the NumPy full-batch gradient",
            _against(run, "sharded_jit", ref["mean"], rtol),
        ),
        core("XLA inserted an all-reduce into the sharded jit", bool(run["sharded_jit_has_all_reduce"])),
        details={k: v for k, v in run.items() if not isinstance(v, list) or len(v) < 8},
    )


@claim(
    "batching/devices-average-gradients-not-max-and-sum-only-for-a-summed-loss",
    sources=["S002-32"],
    says="In PyTorch multi-GPU training, is the gradient communicated the average gradient, the maximum gradient "
    "or the sum of the gradients?",
    expected="qualified",
    correction="The average, when each device's loss is the mean over its (equal-sized) shard: it equals the "
    "full-batch gradient of the mean loss. The sum is right when the loss is a sum (or each device divides by "
    "the global batch size); with mean losses it is D times too large. The maximum is never the gradient.",
    scope={"devices": DEVICES, "reductions": ["pmean", "psum", "pmax"], "losses": ["mean", "sum"]},
)
def _which_reduction(scope, rtol) -> Evidence:
    run, ref = sharded_run(), _references()
    d = scope["devices"]
    return evidence(
        "autodiff",
        compared(
            "pmean of per-device mean-loss gradients is the full-batch gradient (NumPy reference)",
            _against(run, "pmean_of_mean_loss", ref["mean"], rtol),
        ),
        compared(
            "psum of per-device summed-loss gradients is the full-batch gradient of the summed loss",
            _against(run, "psum_of_sum_loss", ref["sum"], rtol),
        ),
        scoped(
            "psum of per-device mean-loss gradients is the full-batch mean-loss gradient",
            _against(run, "psum_of_mean_loss", ref["mean"], rtol).ok,
        ),
        compared(f"it is {d} x that gradient instead", _against(run, "psum_of_mean_loss", d * ref["mean"], rtol)),
        compared(
            f"and so is jax.grad inside shard_map with replicated parameters left as they are ({d} x)",
            _against(run, "replicated_params_grad_of_local_mean", d * ref["mean"], rtol),
        ),
        scoped(
            "pmax of per-device gradients is the full-batch gradient",
            _against(run, "pmax_of_mean_loss", ref["mean"], rtol).ok,
            max_rel_err_of_pmax=_against(run, "pmax_of_mean_loss", ref["mean"], rtol).max_rel_err,
        ),
    )


@claim(
    "batching/model-parallel-splits-the-parameters-not-the-architecture",
    sources=["S001-39"],
    says="Model parallelism: the training is done by sharing the parameters across the different architectures.",
    expected="qualified",
    correction="Model parallelism splits one model's parameters (and their computation) across devices -- e.g. "
    "a layer's hidden units -- and every device sees the same examples; data parallelism replicates the whole "
    "model and splits the batch. Either way the result is the single-device model's.",
    scope={"devices": DEVICES, "split": "first layer's kernel by columns (hidden units)"},
)
def _model_parallel(scope, rtol) -> Evidence:
    run, ref = sharded_run(), _references()
    return evidence(
        "autodiff",
        core(
            "the parameters are split across the devices: each holds a slice of the first layer's kernel",
            run["model_parallel_kernel_shard_shapes"] == [f"(5, {16 // scope['devices']})"],
            shards=", ".join(run["model_parallel_kernel_shard_shapes"]),
        ),
        compared(
            "the split model's output equals the one model's (NumPy forward pass)",
            _against(run, "model_parallel_output", ref["output"], rtol),
        ),
        compared(
            "its gradient equals the one model's full-batch gradient (NumPy backpropagation)",
            _against(run, "model_parallel_grad", ref["mean"], rtol),
        ),
        scoped(
            "the devices hold different architectures (the note's 'across the different architectures'): their "
            "parameter shards differ in shape",
            len(run["model_parallel_kernel_shard_shapes"]) > 1,
        ),
    )


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["check", "batching"]))
