"""Claims found while annotating note 001 (normalization chapter): internal covariate shift, the statement that
training the layers below changes the distribution of a hidden layer's inputs, and what BN does about it."""

from __future__ import annotations

import numpy as np

from derivations.claims import Evidence, claim, core, evidence, premise
from derivations.normalization import apply_module, flax_batchnorm


def _hidden_input(params, x):
    """The input of the second layer of a two-layer tanh network: tanh(x W1 + b1) (batch x hidden)."""
    return np.tanh(x @ params["w1"] + params["b1"])


def _grad(params, x, y):
    """The gradient of mean((tanh(x W1 + b1) W2 - y)^2), by the chain rule."""
    h = _hidden_input(params, x)
    r = 2 * (h @ params["w2"] - y) / y.size
    dz = (r @ params["w2"].T) * (1 - h**2)
    return {"w1": x.T @ dz, "b1": dz.sum(0), "w2": h.T @ r}


def statistics_under_training(scope: dict, seed: int = 0) -> dict:
    """Train the network with plain SGD on a fixed batch; after each step record the per-feature batch mean and
    standard deviation of the second layer's input, and after BatchNorm (training mode, gamma 1, beta 0) at the
    first and the last step."""
    rng = np.random.default_rng(seed)
    n, d, h = scope["batch"], scope["inputs"], scope["hidden"]
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, 1))
    params = {"w1": rng.normal(size=(d, h)) / np.sqrt(d), "b1": np.zeros(h), "w2": rng.normal(size=(h, 1)) / np.sqrt(h)}
    bn = flax_batchnorm(h, epsilon=scope["epsilon"])
    raw, normed, w1_moved = [], [], []
    for step in range(scope["steps"] + 1):
        a = _hidden_input(params, x)
        raw.append((np.asarray(a.mean(0)), np.asarray(a.std(0))))
        if step in (0, scope["steps"]):  # BN's output at the start and at the end of training
            b = np.asarray(apply_module(bn, a))  # compiled (eagerly, every primitive is a program)
            normed.append((np.asarray(b.mean(0)), np.asarray(b.std(0))))
        g = _grad(params, x, y)
        w1_moved.append(float(np.linalg.norm(g["w1"])))
        params = {k: params[k] - scope["lr"] * g[k] for k in params}
    return {"raw": raw, "normed": normed, "w1_gradient_norms": w1_moved}


@claim(
    "normalization/hidden-layer-inputs-shift-as-the-layers-below-train",
    sources=["S001-09"],
    says="As training proceeds, the parameter changes of each hidden layer change the next layer's input, so the "
         "distribution of each batch of training data (at that layer) changes too (随着网络训练的进行，每个隐层的参数"
         "变化使得后一层的输入发生变化，从而每一批训练数据的分布也随之改变).",
    expected="holds",
    scope={"batch": 64, "inputs": 10, "hidden": 16, "steps": 20, "lr": 0.5, "epsilon": 1e-5, "shift": 0.05,
           "bn_tolerance": 1e-3},
    # shift: a change of a feature's mean or std by more than 0.05 (of inputs with std ~0.5) is a shift, not rounding;
    # bn_tolerance: BN's output std is sqrt(var / (var + epsilon)), 1 to within epsilon / (2 var) ~ 1e-4 here.
)
def _internal_covariate_shift(scope) -> Evidence:
    r = statistics_under_training(scope)
    (m0, s0), (m1, s1) = r["raw"][0], r["raw"][-1]
    shift = float(max(np.max(np.abs(m1 - m0)), np.max(np.abs(s1 - s0))))
    bn_mean = max(float(np.max(np.abs(m))) for m, _ in r["normed"])
    bn_std = max(float(np.max(np.abs(s - 1))) for _, s in r["normed"])
    return evidence(
        "measurement",
        premise("the first layer's weights are trained (their gradient is non-zero at every step)",
                min(r["w1_gradient_norms"]) > 0, smallest_gradient_norm=min(r["w1_gradient_norms"])),
        core(f"after {scope['steps']} SGD steps on the same batch, the per-feature mean or standard deviation of the "
             "second layer's input has moved", shift > scope["shift"], largest_shift=shift),
        core("after BatchNorm (training mode) the same inputs have per-feature batch mean 0 and standard deviation "
             "1 at the first and the last step: BN removes the shift of the first two moments",
             bn_mean < scope["bn_tolerance"] and bn_std < scope["bn_tolerance"], largest_mean=bn_mean,
             largest_std_error=bn_std),
    )


ALEXNET_LRN = {"k": 2.0, "n": 5, "alpha": 1e-4, "beta": 0.75}  # Krizhevsky et al. (2012), section 3.3


def lrn(a: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """AlexNet's local response normalization across the channels (last axis) of ``a``:
    b_i = a_i / (k + alpha sum_{|j - i| <= n/2} a_j^2)^beta, vectorised with a cumulative sum."""
    sq = np.concatenate([np.zeros((*a.shape[:-1], 1)), np.cumsum(a**2, -1)], -1)
    idx = np.arange(a.shape[-1])
    lo, hi = np.maximum(idx - n // 2, 0), np.minimum(idx + n // 2, a.shape[-1] - 1) + 1
    return a / (k + alpha * (sq[..., hi] - sq[..., lo])) ** beta


def lrn_by_loop(a: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """The same, one channel at a time (an independent count for the premise)."""
    out = np.empty_like(a)
    for i in range(a.shape[-1]):
        window = a[..., max(0, i - n // 2):min(a.shape[-1], i + n // 2 + 1)]
        out[..., i] = a[..., i] / (k + alpha * np.sum(window**2, -1)) ** beta
    return out


def lrn_contrasts(scope: dict, norm=lrn) -> dict:
    """For post-ReLU activations (|N(0, 1)| times a scale) with one channel raised to ``peak`` times the scale:
    the contrast factor (b_peak / b_j) / (a_peak / a_j) for the channels inside and outside the peak's window,
    and, for a small test value, how much more LRN divides it next to the peak than far from it."""
    rng = np.random.default_rng(0)
    c, p, half = scope["channels"], scope["channels"] // 2, ALEXNET_LRN["n"] // 2
    rows = {}
    for scale in scope["scales"]:
        a = np.abs(rng.normal(size=(scope["positions"], c))) * scale
        a[:, p] = scope["peak"] * scale
        b = norm(a, **ALEXNET_LRN)
        factor = (b[:, p:p + 1] / b) / (a[:, p:p + 1] / a)
        inside = [j for j in range(c) if 0 < abs(j - p) <= half]
        outside = [j for j in range(c) if abs(j - p) > half]
        near, far = a.copy(), a.copy()
        near[:, p + 1] = far[:, 0] = scale  # the same test value next to the peak and far from it
        divided_far = far[:, 0] / norm(far, **ALEXNET_LRN)[:, 0]
        suppression = divided_far / (near[:, p + 1] / norm(near, **ALEXNET_LRN)[:, p + 1])
        rows[scale] = {"largest_factor_inside": float(factor[:, inside].max()),
                       "smallest_factor_inside": float(factor[:, inside].min()),
                       "largest_factor_outside": float(factor[:, outside].max()),
                       "smallest_factor_outside": float(factor[:, outside].min()),
                       "far_over_near_division": float(suppression.max())}
    return rows


LRN_SCOPE = {"channels": 16, "positions": 64, "scales": [1.0, 10.0, 100.0], "peak": 15.0}


def _premise_lrn(rtol) -> object:
    a = np.abs(np.random.default_rng(3).normal(size=(4, 9))) * 30
    got, want = lrn(a, **ALEXNET_LRN), lrn_by_loop(a, **ALEXNET_LRN)
    return premise("the vectorised LRN equals the channel-by-channel loop", bool(np.allclose(got, want, rtol=rtol,
                                                                                             atol=0)))


@claim(
    "normalization/lrn-makes-the-larger-responses-relatively-larger",
    sources=["S001-08"],
    says="AlexNet's LRN creates a competition between the activities of local neurons, making the larger responses "
         "relatively larger (使得其中响应比较大的值变得相对更大).",
    expected="refuted",
    correction="LRN divides each response by a power of the sum of squares in its window, and the largest "
               "response's window holds its own square: the largest response is divided the most. Against the "
               "channels that share its window its ratio stays about the same (a factor near 1, below it for "
               "some), against the channels outside its window it falls (by a factor that shrinks as the "
               "activations grow: about 0.99 at scale 1, far smaller at scale 100). No response becomes relatively "
               "larger; what LRN does is suppress the neighbours of a large response (see "
               "normalization/lrn-suppresses-the-neighbours-of-a-large-response).",
    scope=LRN_SCOPE,
    aliases=["normalization/lrn-does-not-make-the-largest-response-relatively-larger"],
)
def _lrn_relative(scope, rtol) -> Evidence:
    rows = lrn_contrasts(scope)
    outside = max(r["largest_factor_outside"] for r in rows.values())
    inside = min(r["smallest_factor_inside"] for r in rows.values())
    return evidence(
        "measurement",
        _premise_lrn(rtol),
        core("the largest response becomes relatively larger against the channels outside its window (contrast "
             "factor above 1 at every scale)", min(r["smallest_factor_outside"] for r in rows.values()) > 1,
             largest_factor_outside=outside),
        core("and against every channel inside its window", inside > 1, smallest_factor_inside=inside),
        details={"contrast factors by activation scale": rows},
    )


@claim(
    "normalization/lrn-suppresses-the-neighbours-of-a-large-response",
    sources=["S001-08"],
    says="LRN suppresses the other neurons, whose responses are smaller (并抑制其他反馈较小的神经元).",
    expected="holds",
    scope=LRN_SCOPE,
)
def _lrn_suppresses(scope, rtol) -> Evidence:
    rows = lrn_contrasts(scope)
    return evidence(
        "measurement",
        _premise_lrn(rtol),
        core("a small response next to a large one is divided by more than the same response far from it, at every "
             "activation scale", all(r["far_over_near_division"] < 1 for r in rows.values()),
             largest_ratio=max(r["far_over_near_division"] for r in rows.values())),
        details={"contrast factors by activation scale": rows},
    )
