"""Claims found while annotating note 004: a small learning rate converges slowly (not never), and random
search against grid search at the same budget."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

from derivations import optimizers as opt
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.statistics import MC_Z


@claim(
    "optimizers/small-learning-rate-converges-slowly-not-never",
    sources=["S004-01", "S004-04"],
    says="Too low a learning rate makes the model converge too slowly (学习率过低会导致模型收敛太慢, S004-01); against "
    "underfitting, train for more iterations (增加训练次数, S004-04).",
    expected="holds",
    scope={"curvatures": [1.0, 10.0], "lr_times_L": [0.01, 0.03, 0.1, 0.3, 1.0], "tol": 1e-6, "band": [0.5, 2.0],
           "loss_steps": 2000, "model": "gradient descent (optax.sgd) on a 2-D quadratic, curvatures 1 and L = 10"},
)
def _slow_small_lr(scope) -> Evidence:
    eigs = np.asarray(scope["curvatures"])
    a, x_star, x0 = jnp.diag(jnp.asarray(eigs)), jnp.zeros(2), jnp.ones(2)
    big = eigs.max()
    lrs = [f / big for f in scope["lr_times_L"]]
    measured = [opt.gd_steps_to_tolerance(a, x_star, x0, lr, scope["tol"]) for lr in lrs]
    predicted = [opt.predicted_gd_steps(eigs, np.ones(2), lr, scope["tol"]) for lr in lrs]
    # the slow direction contracts by 1 - lr lambda_min per step: ln(1/tol) / (lr lambda_min) steps
    scaled = [k * lr * eigs.min() / np.log(1 / scope["tol"]) for k, lr in zip(measured, lrs, strict=True)]
    losses = np.asarray(opt.gd_losses(lrs[0], a, x0, scope["loss_steps"])[0])
    low, high = scope["band"]
    return evidence(
        "measurement",
        compared("the measured steps to reach tol equal the steps the contraction 1 - lr lambda predicts",
                 compare(lambda: np.array(measured, float), lambda: np.array(predicted, float), [], rtol=0.0)),
        core("every small learning rate converges (a finite number of steps, below the 10^6 cap)",
             max(measured) < 1_000_000, steps=str(measured)),
        core(f"the steps grow like 1 / lr: steps x lr x lambda_min / ln(1/tol) stays within {scope['band']}",
             all(low <= v <= high for v in scaled), smallest=min(scaled), largest=max(scaled)),
        core(f"at the smallest rate the loss falls at every one of {scope['loss_steps']} steps (more iterations keep "
             "lowering the training loss)", bool(np.all(np.diff(losses) < 0))),
    )


def search_best(dimension: int, per_axis: int, importance: np.ndarray, draws: int, seed: int):
    """Best loss found by a grid of per_axis^d points and by as many uniform random points, on
    f(h) = sum_i a_i (h_i - c_i)^2 over [0, 1]^d with the optimum c uniform; one row per draw of c."""
    rng = np.random.default_rng(seed)
    budget = per_axis**dimension
    axis = (np.arange(per_axis) + 0.5) / per_axis
    grid = np.stack(np.meshgrid(*[axis] * dimension, indexing="ij"), -1).reshape(-1, dimension)
    c = rng.uniform(size=(draws, dimension))
    points = rng.uniform(size=(draws, budget, dimension))
    best_grid = (((grid[None] - c[:, None]) ** 2) * importance).sum(-1).min(1)
    best_random = (((points - c[:, None]) ** 2) * importance).sum(-1).min(1)
    distinct = (len(np.unique(grid[:, 0])), len(np.unique(points[0, :, 0])))
    return best_grid, best_random, distinct


def _z(best_grid: np.ndarray, best_random: np.ndarray) -> float:
    diff = best_random - best_grid
    return float(diff.mean() / (diff.std(ddof=1) / np.sqrt(diff.size)))


@claim(
    "optimizers/random-search-beats-grid-search-only-when-few-hyperparameters-matter",
    sources=["S004-16"],
    says="Random search: it has been found that simply trying a fixed number of random settings is more effective "
    "in high-dimensional spaces than exhaustive (grid) search (简单地对参数设置进行固定次数的随机搜索，比在穷举搜索中的"
    "高维空间更有效).",
    expected="qualified",
    correction="At the same budget B = k^d a grid tries only k values of each hyperparameter, random search B "
    "distinct ones. So random search wins when few of the hyperparameters matter (Bergstra and Bengio 2012's "
    "low effective dimensionality, the usual case), by a wide margin, and at a fixed budget its lead grows with "
    "the dimension, as the grid's k = B^(1/d) values per axis fall. When every hyperparameter matters equally "
    "the grid's even coverage wins instead at these budgets: the dimension helps random search only through the "
    "hyperparameters that do not matter.",
    scope={"shapes": [[2, 3], [3, 3], [2, 5], [4, 2]], "unimportant_weight": 1e-3, "draws": 2000, "z": MC_Z,
           "fixed_budget": {"budget": 64, "shapes": [[2, 8], [3, 4], [6, 2]]}},
    tolerance=f"Monte-Carlo: a difference counts when it exceeds {MC_Z} standard errors of the paired mean",
)
def _random_search(scope) -> Evidence:
    few, all_matter, distinct = {}, {}, {}
    for i, (d, k) in enumerate(scope["shapes"]):
        one = np.array([1.0] + [scope["unimportant_weight"]] * (d - 1))
        g, r, counts = search_best(d, k, one, scope["draws"], seed=i)
        few[f"d={d}, B={k**d}"] = _z(g, r)
        distinct[f"d={d}, B={k**d}"] = counts
        g, r, _ = search_best(d, k, np.ones(d), scope["draws"], seed=100 + i)
        all_matter[f"d={d}, B={k**d}"] = _z(g, r)
    fixed = scope["fixed_budget"]
    lead, lead_z = {}, {}
    for i, (d, k) in enumerate(fixed["shapes"]):
        g, r, _ = search_best(d, k, np.array([1.0] + [scope["unimportant_weight"]] * (d - 1)), scope["draws"],
                              seed=200 + i)  # fmt: skip
        lead[f"d={d}"], lead_z[f"d={d}"] = float(g.mean() / r.mean()), _z(g, r)
    grows = list(lead.values())
    return evidence(
        "measurement",
        core("at budget k^d the grid tries k values of each hyperparameter, random search k^d distinct ones",
             all(c == (k, k**d) for c, (d, k) in zip(distinct.values(), scope["shapes"], strict=True))),
        core("when one hyperparameter matters, random search finds a better setting than the grid at every shape "
             f"(z below -{scope['z']})", all(z < -scope["z"] for z in few.values()), worst_z=max(few.values())),
        scoped("when all hyperparameters matter equally, random search is also better",
               all(z < -scope["z"] for z in all_matter.values()), best_z=min(all_matter.values())),
        core(f"at a fixed budget of {fixed['budget']} points, one hyperparameter mattering, random search's lead "
             "(the grid's mean best loss over random's) grows with the dimension, each lead beyond "
             f"{scope['z']} standard errors", all(b > a for a, b in itertools.pairwise(grows))
             and all(z < -scope["z"] for z in lead_z.values()), **{f"lead_{k}": v for k, v in lead.items()}),
        details={"z (random - grid), one matters": few, "z (random - grid), all matter": all_matter,
                 "fixed budget: grid / random mean best loss": lead, "fixed budget: z": lead_z},
    )
