"""Claims found while annotating note 000: whether a 1x3 followed by a 3x1 convolution extracts the same
features as a 3x3 one (it spans only the kernels of rank <= the middle width)."""

from __future__ import annotations

import numpy as np

from derivations.architectures import run_once
from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from models.conv import conv2d


def composite_kernel(row: np.ndarray, column: np.ndarray) -> np.ndarray:
    """The 3x3 kernel (HWIO) of a 1x3 conv ``row`` (1, 3, C, M) followed by a 3x1 conv ``column`` (3, 1, M, C):
    K[r, c, i, o] = sum_m row[0, c, i, m] column[r, 0, m, o]."""
    return np.einsum("cim,rmo->rcio", row[0], column[:, 0])


def kernel_rank(kernel: np.ndarray, relative: float) -> int:
    """Rank of the (row tap, out) x (column tap, in) unfolding of an HWIO kernel, counting singular values above
    ``relative`` times the largest."""
    h, w, cin, cout = kernel.shape
    s = np.linalg.svd(kernel.transpose(0, 3, 1, 2).reshape(h * cout, w * cin), compute_uv=False)
    return int(np.sum(s > relative * s[0]))


def best_factored_residual(kernel: np.ndarray, middle: int) -> float:
    """Relative Frobenius distance from ``kernel`` to the nearest 1x3-then-3x1 pair with ``middle`` channels
    (Eckart-Young on the unfolding: the singular values beyond the first ``middle``)."""
    h, w, cin, cout = kernel.shape
    s = np.linalg.svd(kernel.transpose(0, 3, 1, 2).reshape(h * cout, w * cin), compute_uv=False)
    return float(np.sqrt(np.sum(s[middle:] ** 2) / np.sum(s**2)))


def _widest_pair(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 1x3 kernel (C_in -> 3 C) and a 3x1 kernel (3 C -> C_out) whose composite is ``kernel`` exactly: the SVD of
    its (row tap, out) x (column tap, in) unfolding, U S as the 3x1 kernel and V^T as the 1x3 one."""
    h, w, cin, cout = kernel.shape
    u, sv, vt = np.linalg.svd(kernel.transpose(0, 3, 1, 2).reshape(h * cout, w * cin), full_matrices=False)
    middle = sv.size
    column = (u * sv).reshape(h, cout, middle).transpose(0, 2, 1)[:, None, :, :]  # (3, 1, M, C_out)
    row = vt.reshape(middle, w, cin).transpose(1, 2, 0)[None]  # (1, 3, C_in, M)
    return row, column


@claim(
    "architectures/1x3-then-3x1-extracts-the-same-features-as-a-3x3",
    sources=["S000-25"],
    says="Google's 1*3 and 3*1 in place of 3*3: the two have the same receptive field, so the features extracted "
    "are not affected (两者感受野一样，所以提取的特征是不受影响的).",
    expected="refuted",
    correction="The same receptive field does not make the same layer: a 1x3 conv to M channels followed by a 3x1 "
    "conv computes a 3x3 conv whose kernel, unfolded as a (3 C_out) x (3 C_in) matrix, has rank at most M. A "
    "general 3x3 kernel has rank up to 3C, and the nearest factored pair still misses a large part of it (see "
    "the residual): the factorisation restricts the features (its 6C^2 weights cannot span 9C^2), which is "
    "why Inception-v3 uses it as a cheaper approximation, not an equivalent. Only a middle of 3C channels reaches "
    "every 3x3 kernel, with twice the 3x3's weights (18C^2): no width that saves weights (M < 1.5C) does.",
    scope={"channels": [1, 4, 8], "input": 9, "rank_relative": 1e-10, "miss_at_least": 0.1,
           "middle": "M = C (the pair's weights 6C^2 against the 3x3's 9C^2); a 3C middle for comparison"},
)
def _factored_features(scope, rtol) -> Evidence:
    rng = np.random.default_rng(0)
    same_map, ranks, full_ranks, residuals, cases, wide, narrower = [], [], [], [], [], [], []
    for c in scope["channels"]:
        row, column = rng.normal(size=(1, 3, c, c)), rng.normal(size=(3, 1, c, c))
        x = rng.normal(size=(2, scope["input"], scope["input"], c))
        k = composite_kernel(row, column)
        cases.append((x, row, column, k))
        ranks.append(kernel_rank(k, scope["rank_relative"]))
        general = rng.normal(size=(3, 3, c, c))
        full_ranks.append(kernel_rank(general, scope["rank_relative"]))
        residuals.append(best_factored_residual(general, c))
        wide.append((x, *_widest_pair(general), general))
        narrower.append(best_factored_residual(general, 3 * c - 1))
    # Every width in one program: the pair of convs and the composite 3x3.
    maps = run_once(lambda cs: [(conv2d(conv2d(x, row), column), conv2d(x, k)) for x, row, column, k in cs], cases)
    for pair, whole in maps:
        pair, whole = np.asarray(pair), np.asarray(whole)
        same_map.append(compare(lambda pair=pair: pair, lambda whole=whole: whole, [], rtol=rtol,
                                atol=rtol * float(np.abs(pair).max())))
    wide_maps = run_once(lambda cs: [(conv2d(conv2d(x, row), column), conv2d(x, k)) for x, row, column, k in cs], wide)
    wide_miss = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
                    for a, b in wide_maps)  # fmt: skip
    return evidence(
        "measurement",
        *(compared(f"C = {c}: 1x3 then 3x1 is one 3x3 conv with the composite kernel", cmp)
          for c, cmp in zip(scope["channels"], same_map, strict=True)),
        core("that composite kernel's unfolding has rank <= C, while a random 3x3 kernel's has rank 3C",
             all(r <= c for r, c in zip(ranks, scope["channels"], strict=True))
             and all(f == 3 * c for f, c in zip(full_ranks, scope["channels"], strict=True)),
             composite_ranks=str(ranks), general_ranks=str(full_ranks)),
        core("the pair extracts the same features as a 3x3 conv: every 3x3 kernel has a 1x3-then-3x1 pair "
             f"(best pair within {scope['miss_at_least']} of a random 3x3 kernel, relative)",
             max(residuals) < scope["miss_at_least"], smallest_miss=min(residuals), largest_miss=max(residuals)),
        scoped("with a middle of 3C channels (18C^2 weights, twice the 3x3's) a 1x3-then-3x1 pair built from the "
               "kernel's SVD computes the random 3x3 conv itself (outputs within 1e-12 of the largest)",
               wide_miss < 1e-12, largest_relative_difference=wide_miss),
        core("and no narrower middle does: with 3C - 1 channels the nearest pair misses the random kernel by at "
             "least 1e-3 (relative)", min(narrower) >= 1e-3, smallest_miss=min(narrower)),
    )
