"""Claims found while annotating note 003 (losses chapter): is cross-entropy a distance between the predicted
and the true distribution?"""

from __future__ import annotations

import numpy as np
import optax
from scipy.special import entr, rel_entr

from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare


def cross_entropy(p, q):
    """optax's softmax cross-entropy of labels p against the distribution q (logits log q), per row."""
    return np.asarray(optax.softmax_cross_entropy(np.log(q), p))


def ce_findings(scope: dict, ce=cross_entropy) -> dict:
    rng = np.random.default_rng(scope["seed"])
    k, n = scope["classes"], scope["pairs"]
    p = rng.dirichlet(np.ones(k), n)
    q = rng.dirichlet(np.ones(k), n)
    onehot = np.eye(k)[rng.integers(0, k, n)]
    entropy = entr(p).sum(1)
    kl = rel_entr(p, q).sum(1)
    # q = p against perturbed q (renormalised): Gibbs' inequality says none beats q = p
    noise = np.exp(scope["perturbation"] * rng.normal(size=(scope["perturbations"], n, k)))
    others = p[None] * noise
    others /= others.sum(-1, keepdims=True)
    at_p = ce(p, p)
    beaten = np.min(np.stack([ce(p, o) for o in others]) - at_p[None])
    return {"p": p, "q": q, "entropy": entropy, "kl": kl, "onehot": onehot, "at_p": at_p, "beaten": float(beaten),
            "onehot_self": ce(onehot, np.clip(onehot, 1e-300, 1.0)), "asym": np.abs(ce(p, q) - ce(q, p))}


@claim(
    "losses/cross-entropy-is-a-distance-between-distributions",
    sources=["S003-05"],
    says="Cross-entropy measures the distance between the predicted distribution and the true distribution in a "
    "classification task (测量分类任务中预测分布与真实分布的距离).",
    expected="qualified",
    correction="Cross-entropy is H(p) + KL(p || q): it is smallest at q = p and, with one-hot labels (H(p) = 0), it "
    "equals KL(p || q), a divergence that is 0 only at q = p. It is not a distance: with soft labels it is "
    "H(p) > 0 at q = p, and it is not symmetric (nor is KL).",
    scope={"classes": 5, "pairs": 64, "seed": 0, "perturbations": 32, "perturbation": 0.3,
           "labels": "Dirichlet(1) soft labels and one-hot labels", "reference": "scipy.special entr, rel_entr"},
)
def _ce_distance(scope, rtol) -> Evidence:
    r = ce_findings(scope)
    p, q = r["p"], r["q"]
    return evidence(
        "measurement",
        compared("optax cross-entropy = H(p) + KL(p || q) (scipy's entr and rel_entr)",
                 compare(lambda a, b: cross_entropy(a, b), lambda a, b: entr(a).sum(1) + rel_entr(a, b).sum(1),
                         [p, q], rtol=rtol)),
        core("so it is smallest at q = p: no perturbed q gives less (Gibbs' inequality)", r["beaten"] >= 0,
             least_excess=r["beaten"]),
        core("with one-hot labels it is KL(p || q), 0 exactly at q = p", bool(np.all(r["onehot_self"] == 0))),
        scoped("like a distance, it is 0 when the prediction equals a soft label (q = p)",
               bool(np.all(r["at_p"] == 0)), smallest_ce_at_q_equal_p=float(r["at_p"].min())),
        scoped("like a distance, it is symmetric: CE(p, q) = CE(q, p)", bool(np.all(r["asym"] < 1e-12)),
               largest_asymmetry=float(r["asym"].max())),
    )
