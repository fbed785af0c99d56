"""Claims found while annotating note 001 (conv arithmetic chapter): the transposed convolution is the
convolution's transpose, not its inverse (why 'deconvolution' misleads), and how many channels a kernel has."""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from derivations.claims import Evidence, claim, compared, core, evidence, scoped
from derivations.compare import compare
from derivations.conv_arithmetic import TRANSPOSE_CASES, adjoint_gap
from models.conv import conv2d, conv2d_transpose


def round_trip_error(n: int, k: int, s: int, p: int, d: int, seed: int = 0, transpose=conv2d_transpose) -> float:
    """||transpose(conv(x)) - x|| / ||x|| for random float64 x (1 x n x n x 2) and kernel (k x k x 2 x 2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1, n, n, 2))
    kern = rng.normal(size=(k, k, 2, 2)) / np.sqrt(k * k * 2)
    back = np.asarray(_round_trip(x, kern, n, s, p, d, transpose))
    return float(np.linalg.norm(back - x) / np.linalg.norm(x))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _round_trip(x, kern, n, s, p, d, transpose):
    """transpose(conv(x)), in one program."""
    return transpose(conv2d(x, kern, stride=s, padding=p, dilation=d), kern, n, stride=s, padding=p, dilation=d)


@claim(
    "conv_arithmetic/transposed-conv-is-the-transpose-not-the-inverse",
    sources=["S001-03"],
    says="'Deconvolution' is easily misunderstood; 'transposed convolution' is the more fitting name "
         "(逆卷积(Deconvolution)比较容易引起误会，转置卷积(Transposed Convolution)是一个更为合适的叫法).",
    expected="holds",
    scope={"cases": TRANSPOSE_CASES, "round_trips": 2, "not_inverse": 1e-2},
    # not_inverse: a relative round-trip error above 1% is no inverse (an inverse would give ~1e-15)
)
def _transpose_not_inverse(scope, rtol) -> Evidence:
    cases = [tuple(c) for c in scope["cases"]]
    gaps = [adjoint_gap(*c) for c in cases]
    adjoint = compare(lambda: np.array([g[1] for g in gaps]), lambda: np.array([g[0] for g in gaps]), [], rtol=rtol)
    errors = {f"n={c[0]}, k={c[1]}, s={c[2]}, p={c[3]}, d={c[4]}": round_trip_error(*c)
              for c in cases[:scope["round_trips"]]}
    return evidence(
        "measurement",
        compared("the transposed convolution is the transpose (adjoint) of the convolution: <conv x, y> = "
                 "<x, conv^T y> in every case", adjoint, cases=len(cases)),
        core("it is not the inverse: conv^T(conv x) differs from x in every case tried (no 'deconvolution')",
             min(errors.values()) > scope["not_inverse"], smallest_round_trip_error=min(errors.values())),
        details={"relative round-trip error ||conv^T conv x - x|| / ||x||": errors},
    )


def kernel_channels(c_in: int, c_out: int, k: int, groups: int) -> tuple[int, int]:
    """(channels of one kernel, number of kernels) of Flax's nnx.Conv, read from its kernel's shape."""
    conv = nnx.eval_shape(lambda: nnx.Conv(c_in, c_out, (k, k), feature_group_count=groups, rngs=nnx.Rngs(0)))
    shape = conv.kernel.shape  # abstract: the shapes Flax would allocate, with no initialisation run
    return int(shape[2]), int(shape[3])


@claim(
    "conv_arithmetic/kernel-channels-equal-input-channels-only-without-groups",
    sources=["S001-06"],
    says="Always remember: the number of input channels = the number of channels of a kernel; the number of "
         "output channels = the number of kernels (输入通道数＝卷积核的通道数, 输出通道数＝卷积核的个数).",
    expected="qualified",
    correction="For an ordinary (ungrouped) convolution, yes. A grouped convolution with G groups has kernels of "
               "C_in / G channels (a depthwise convolution, G = C_in, kernels of one channel); the number of "
               "output channels is still the number of kernels.",
    scope={"plain": [(3, 16), (64, 64), (1, 8)], "grouped": [(16, 32, 4), (32, 32, 32)], "kernel": 3},
)
def _kernel_channels(scope) -> Evidence:
    k = scope["kernel"]
    plain = {f"{ci}->{co}": kernel_channels(ci, co, k, 1) for ci, co in scope["plain"]}
    grouped = {f"{ci}->{co}, G={g}": kernel_channels(ci, co, k, g) for ci, co, g in scope["grouped"]}
    return evidence(
        "measurement",
        core("ungrouped: a kernel has C_in channels and there are C_out kernels",
             all(v == (ci, co) for v, (ci, co) in zip(plain.values(), scope["plain"], strict=True)),
             cases=len(plain)),
        core("grouped too: the number of output channels is the number of kernels",
             all(v[1] == co for v, (_, co, _) in zip(grouped.values(), scope["grouped"], strict=True))),
        scoped("grouped convolutions: a kernel has C_in channels",
               all(v[0] == ci for v, (ci, _, _) in zip(grouped.values(), scope["grouped"], strict=True)),
               kernel_channels={key: v[0] for key, v in grouped.items()}),
        details={"plain (kernel channels, kernels)": plain, "grouped (kernel channels, kernels)": grouped},
    )
