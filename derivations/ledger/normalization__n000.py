"""Claims found while annotating note 000: what makes a layer trainable (parameters with gradients, not being
a Module), and what model.eval() switches (BatchNorm's statistics and dropout, nothing else)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from derivations.claims import Evidence, claim, core, evidence, scoped


def trainable_leaves(module: nnx.Module) -> int:
    """The number of nnx.Param arrays a module holds (what an optimizer would update)."""
    return len(jax.tree_util.tree_leaves(nnx.state(module, nnx.Param)))


def param_gradients(module: nnx.Module, x: jax.Array) -> list[float]:
    """The norm of d(squared error against a random target)/d(each Param) at x, in training mode."""
    target = jax.random.normal(jax.random.key(2), x.shape, x.dtype)
    grads = nnx.grad(lambda m: jnp.sum((m(x) - target) ** 2))(module)
    return [float(jnp.linalg.norm(g)) for g in jax.tree_util.tree_leaves(grads)]


def batchnorm64(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """nnx.BatchNorm in float64 throughout (Flax creates its running statistics in float32)."""
    bn = nnx.BatchNorm(features, param_dtype=jnp.float64, dtype=jnp.float64, rngs=rngs)
    bn.mean.set_value(bn.mean.get_value().astype(jnp.float64))
    bn.var.set_value(bn.var.get_value().astype(jnp.float64))
    return bn


def _layers(scope: dict) -> dict[str, nnx.Module]:
    f = scope["features"]
    rngs = nnx.Rngs(0)
    return {"BatchNorm": batchnorm64(f, rngs),
            "Dropout": nnx.Dropout(scope["rate"], rngs=rngs),
            "Linear": nnx.Linear(f, f, param_dtype=jnp.float64, rngs=rngs)}


@claim(
    "normalization/bn-is-trainable-because-it-is-a-module",
    sources=["S000-19"],
    says="In PyTorch BN's parent class is nn.Module, which shows that it is trainable (pytorch中的BN操作的父类是"
    "nn.Module，说明他是可以训练的).",
    expected="qualified",
    correction="BN is trainable: its scale and shift are parameters that get gradients. But being a Module is not "
    "why: dropout (and pooling, activations, containers) are Modules too and hold no parameter at all. A layer is "
    "trainable when it holds parameters the loss depends on.",
    scope={"features": 4, "rate": 0.5, "batch": 8, "library": "flax.nnx (nnx.Module is PyTorch's nn.Module)"},
    aliases=["normalization/being-a-module-does-not-make-a-layer-trainable"],
)
def _module_is_not_trainable(scope) -> Evidence:
    layers = _layers(scope)
    x = jax.random.normal(jax.random.key(0), (scope["batch"], scope["features"]), jnp.float64) * 3 + 1
    counts = {name: trainable_leaves(m) for name, m in layers.items()}
    bn_grads = param_gradients(layers["BatchNorm"], x)
    modules = {name: isinstance(m, nnx.Module) for name, m in layers.items()}
    return evidence(
        "autodiff",
        core("BatchNorm holds parameters (scale gamma, shift beta) and the loss has a non-zero gradient in each",
             counts["BatchNorm"] == 2 and all(g > 0 for g in bn_grads), parameters=counts["BatchNorm"],
             smallest_gradient=min(bn_grads)),
        scoped("being a Module makes a layer trainable: every Module here holds a parameter",
               all(modules.values()) and all(c > 0 for c in counts.values()),
               dropout_is_a_module=modules["Dropout"], dropout_parameters=counts["Dropout"]),
        details={"parameter arrays per layer": counts},
    )


class _Net(nnx.Module):
    def __init__(self, features: int, rate: float, rngs: nnx.Rngs):
        self.linear = nnx.Linear(features, features, param_dtype=jnp.float64, rngs=rngs)
        self.bn = batchnorm64(features, rngs)
        self.dropout = nnx.Dropout(rate, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.bn(self.linear(x)))


def _stats(net: _Net) -> np.ndarray:
    return np.concatenate([np.asarray(net.bn.mean.get_value()), np.asarray(net.bn.var.get_value())])


def eval_switch_findings(scope: dict) -> dict:
    net = _Net(scope["features"], scope["rate"], nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (scope["batch"], scope["features"]), jnp.float64) * 2 + 3
    linear_train = np.asarray(net.linear(x))
    net.train()
    before = _stats(net)
    net(x)
    train_moves_stats = not np.array_equal(before, _stats(net))
    gamma_beta = np.concatenate([np.asarray(net.bn.scale.get_value()), np.asarray(net.bn.bias.get_value())])
    net.eval()
    frozen = _stats(net)
    out_full = np.asarray(net(x))
    out_one = np.asarray(net(x[:1]))
    eval_keeps_stats = np.array_equal(frozen, _stats(net))
    # eval: BN uses the running statistics, so an example's output does not depend on the rest of the batch;
    # dropout is the identity, so two calls agree and equal the BN output.
    bn_eval = np.asarray(net.bn(net.linear(x)))
    # Equal up to round-off, not bit for bit: XLA may evaluate a batch of 16 and a batch of 1 with different
    # loop orders (it does at optimisation level 0). 8 units of float64 round-off of the output's size, while
    # in training mode the same comparison differs by O(1) (the batch's statistics replace the running ones).
    batch_gap = float(np.max(np.abs(out_full[:1] - out_one)))
    batch_independent = batch_gap <= 8 * np.finfo(np.float64).eps * float(np.max(np.abs(out_full)))
    dropout_off = np.array_equal(out_full, bn_eval) and np.array_equal(out_full, np.asarray(net(x)))
    linear_same = np.array_equal(linear_train, np.asarray(net.linear(x)))
    flags = {"bn.use_running_average": net.bn.use_running_average, "dropout.deterministic": net.dropout.deterministic}
    unchanged_params = np.array_equal(gamma_beta, np.concatenate([np.asarray(net.bn.scale.get_value()),
                                                                  np.asarray(net.bn.bias.get_value())]))
    return {"train_moves_stats": train_moves_stats, "eval_keeps_stats": eval_keeps_stats,
            "batch_independent": batch_independent, "batch_gap": batch_gap, "dropout_off": dropout_off,
            "linear_same": linear_same,
            "flags": flags, "unchanged_params": unchanged_params}


@claim(
    "normalization/eval-switches-batchnorm-and-dropout-only",
    sources=["S000-21"],
    says="model.eval(): (1) for BN, (2) for dropout (1）针对BN操作；2）针对DropOut操作); at inference it keeps "
    "the mean and variance in the BN layer unchanged (也就是保证BN层中的均值与方差不变).",
    expected="holds",
    scope={"features": 4, "rate": 0.5, "batch": 16, "library": "flax.nnx model.eval() / model.train()"},
)
def _eval_switch(scope) -> Evidence:
    out = eval_switch_findings(scope)
    return evidence(
        "measurement",
        core("eval() switches BatchNorm to its running statistics and dropout off (the flags it sets)",
             out["flags"]["bn.use_running_average"] is True and out["flags"]["dropout.deterministic"] is True),
        core("in training mode a forward pass moves BN's running mean and variance", out["train_moves_stats"]),
        core("in eval mode a forward pass leaves them bit-identical", out["eval_keeps_stats"]),
        core("in eval mode an example's BN output does not depend on the rest of the batch (to 8 round-offs)",
             out["batch_independent"], max_abs_err=out["batch_gap"]),
        core("in eval mode dropout is the identity (repeated calls agree with the network without it)",
             out["dropout_off"]),
        core("a Linear layer computes the same in both modes (eval changes only BN and dropout here)",
             out["linear_same"]),
        core("no forward pass, in either mode, changes gamma and beta", out["unchanged_params"]),
    )
