"""Claims found while annotating note 002 (regularisation chapter): does L2, like L1, make the network sparser?"""

from __future__ import annotations

import numpy as np

from derivations.claims import Evidence, claim, core, evidence, premise, scoped
from derivations.regularization import penalised_run


def zero_count(w: np.ndarray) -> int:
    """Number of weights that are exactly zero."""
    return int(np.sum(np.asarray(w) == 0))


def sparsity_table(strengths: list[float], steps: int, count=zero_count) -> dict[str, list[int]]:
    """Exact zeros among the 50 weights of the sparse regression after ``steps`` of SGD with each penalty, at
    strength 0 (no penalty) and at each of ``strengths``."""
    return {kind: [count(penalised_run(kind, s, steps)) for s in [0.0, *strengths]] for kind in ("l1-proximal", "l2")}


@claim(
    "regularization/l1-and-l2-both-make-the-network-sparser",
    sources=["S002-04"],
    says="Against overfitting: L1 and L2 regularisation limit the size of the weights in training by adding a "
    "penalty, making the network sparser (L1、L2正则化：训练时限制权值的大小，增加惩罚机制，使得网络更稀疏).",
    expected="qualified",
    correction="Only L1 makes the network sparser: its proximal step sets weights exactly to 0 (most of the null "
    "weights of a sparse regression at every strength). L2 shrinks every weight but sets none to 0, at any "
    "strength; it limits the weights' size without making them sparse (S002-27 of the same note says so).",
    scope={"penalties": ["l1-proximal", "l2"], "strengths": [0.1, 0.3, 1.0], "steps": 500,
           "regression": "50 weights, 5 true non-zeros, 100 samples (regularization.sparse_problem)"},
)
def _l1_and_l2_sparser(scope) -> Evidence:
    table = sparsity_table(scope["strengths"], scope["steps"])
    norms = {k: [float(np.linalg.norm(penalised_run(k, s, scope["steps"]))) for s in [0.0, *scope["strengths"]]]
             for k in scope["penalties"]}
    l1, l2 = table["l1-proximal"], table["l2"]
    # At strength 0 the two runs take the same steps, but XLA compiles two programs (the L2 loss keeps its 0 * ||w||^2
    # term), whose sums may round differently: the same weights to a few ulp, not bit for bit on every CPU.
    unpenalised = [np.asarray(penalised_run(k, 0.0, scope["steps"])) for k in scope["penalties"]]
    apart = float(np.max(np.abs(unpenalised[0] - unpenalised[1])) / np.linalg.norm(unpenalised[0]))
    return evidence(
        "autodiff",
        premise("without a penalty the two runs are the same run (weights within 1e-12 of their norm), with no "
                "exact zeros", l1[0] == l2[0] == 0 and apart <= 1e-12, apart=apart),
        core("both penalties limit the weights' size: the norm falls below the unpenalised one at every strength",
             all(n < v[0] for v in norms.values() for n in v[1:]),
             l1_norms=str([round(n, 3) for n in norms["l1-proximal"]]),
             l2_norms=str([round(n, 3) for n in norms["l2"]])),
        core("L1 makes the network sparser: more exact zeros than without it at every strength",
             all(z > l1[0] for z in l1[1:]), l1_zeros=str(l1)),
        scoped("L2 makes it sparser too: more exact zeros than without it at every strength",
               all(z > l2[0] for z in l2[1:]), l2_zeros=str(l2)),
    )
