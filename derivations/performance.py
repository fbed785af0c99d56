"""Performance: theoretical vs actual speed. The note's arithmetic for dense and depthwise convolution
(S002-54) in SymPy, XLA's own counts of flops and bytes, the roofline that explains the gap, the fast
depthwise convolution of ``models.blocks``, and pruning (S001-44).

Seeds: S002-54, S002-14, S000-17, S001-44 (S002-08 is not measured: it is about GPUs; see the page). The claims
are in ``derivations/ledger/performance.py``. Nothing here is timed: whatever depends on the machine's speed
is measured by ``benchmarks/`` (``make bench``) into ``benchmarks/results/<backend>.json``, and a claim reads
those committed figures (:func:`benchmark_results`); a verdict rests on a counted quantity, XLA's cost model,
or a measured ratio with a margin of at least 3x over its threshold. Run ``python -m derivations.performance``
to print the derivations and check the claims.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations import bridge
from derivations.claims import derivation
from models.blocks import depthwise_conv2d, depthwise_conv2d_grouped
from models.conv import conv2d

H, W, C, K = sp.symbols("H W C K", integer=True, positive=True)
depthwise_conv2d_shifted = depthwise_conv2d  # the public name the page uses for the fast kernel


# --- the note's arithmetic ---------------------------------------------------------------------------------------


def dense_counts() -> dict[str, sp.Expr]:
    """A KxK conv C -> C on H x W, 'same', no bias (S002-54's convolution 1 and 3): parameters K^2 C^2,
    MACs H W C K^2 C (every tap), working set in elements H W C (input) + H W C (output) + K^2 C^2."""
    return {"params": K**2 * C**2, "macs": H * W * C * K**2 * C, "working_set": 2 * H * W * C + K**2 * C**2}


def depthwise_counts() -> dict[str, sp.Expr]:
    """A KxK depthwise conv on H x W x C (S002-54's convolution 2): K^2 C parameters, H W C K^2 MACs,
    working set 2 H W C + K^2 C elements."""
    return {"params": K**2 * C, "macs": H * W * C * K**2, "working_set": 2 * H * W * C + K**2 * C}


@derivation
def note_arithmetic() -> sp.Matrix:
    """Parameters, MACs and working set (elements) of S002-54's three convolutions, symbolic and at the note's
    sizes: rows dense 3x3 C = 256, depthwise 3x3 C = 256, dense 3x3 C = 16; all on 64x64."""
    rows = []
    for counts, c in ((dense_counts(), 256), (depthwise_counts(), 256), (dense_counts(), 16)):
        rows.append([counts[key].subs({H: 64, W: 64, K: 3, C: c}) for key in ("params", "macs", "working_set")])
    return sp.Matrix(rows)


@derivation
def arithmetic_intensity() -> list[sp.Eq]:
    """MACs per element of the working set (the roofline's x axis, up to the bytes per element): dense grows
    with C, depthwise stays below K^2 / 2 whatever C."""
    dense, dw = dense_counts(), depthwise_counts()
    return [
        sp.Eq(sp.Symbol("I_{dense}"), sp.simplify(dense["macs"] / dense["working_set"]), evaluate=False),
        sp.Eq(sp.Symbol("I_{depthwise}"), sp.simplify(dw["macs"] / dw["working_set"]), evaluate=False),
        sp.Eq(sp.Symbol(r"\lim_{HW \to \infty} I_{depthwise}"),
              sp.limit(dw["macs"] / dw["working_set"], H, sp.oo), evaluate=False),
    ]  # fmt: skip


# --- measuring (counts and XLA's cost model; times come from benchmarks/results) ---------------------------

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
MARGIN = 3.0  # a measured ratio decides a finding only this far past its threshold (issue 17)


def benchmark_results(backend: str | None = None) -> tuple[str, dict[str, dict]]:
    """The committed benchmark results of ``backend`` (default: JAX's backend), or of ``cpu`` when that
    backend has none: ``(the backend the figures are from, {name: result})``."""
    wanted = backend or jax.default_backend()
    path = RESULTS / f"{wanted}.json"
    if not path.is_file():
        path = RESULTS / "cpu.json"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark results in {RESULTS}: run `make bench`")
    document = json.loads(path.read_text(encoding="utf-8"))
    return f"{document['backend']} ({document['device']})", {r["name"]: r for r in document["results"]}


def bytes_accessed(f, *args) -> float:
    """XLA's ``cost_analysis()['bytes accessed']`` of ``jit(f)``: every operand read and result written."""
    cost = jax.jit(f).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["bytes accessed"])


def forward_backward(f):
    """(x, kernel, dy) -> (y, dx, dkernel): one training step's convolution work."""

    def step(x, kernel, dy):
        y, pullback = jax.vjp(f, x, kernel)
        return (y, *pullback(dy))

    return step


def module_forward_backward(module):
    """(x, params, dy) -> (y, dx, dparams) of an NNX module in training mode, and its params: one training
    step's work for a layer (the same step as ``benchmarks/bench_batchnorm.py`` times)."""
    from flax import nnx

    graph, params, rest = nnx.split(module, nnx.Param, ...)

    def step(x, p, dy):
        y, pullback = jax.vjp(lambda v, q: nnx.merge(graph, q, rest, copy=True)(v), x, p)
        return (y, *pullback(dy))

    return step, params


def note_convs(batch: int = 1) -> list[tuple[str, object, tuple, tuple]]:
    """S002-54's three convolutions, as (name, function, input shape, kernel shape); the depthwise one is
    the memory-bound kernel of ``models.blocks`` (XLA's grouped conv counts the same flops)."""
    dense = functools.partial(conv2d, padding=1)
    return [
        ("dense 3x3, C = 256", dense, (batch, 64, 64, 256), (3, 3, 256, 256)),
        ("depthwise 3x3, C = 256", depthwise_conv2d, (batch, 64, 64, 256), (3, 3, 256)),
        ("dense 3x3, C = 16", dense, (batch, 64, 64, 16), (3, 3, 16, 16)),
    ]


@bridge.cache
def note_conv_costs(batch: int = 1) -> tuple[dict, ...]:
    """XLA's flops and bytes accessed for S002-54's three convolutions and for XLA's grouped depthwise
    conv (float32, abstract inputs: nothing is run)."""
    rows = []
    convs = [*note_convs(batch), ("depthwise 3x3, C = 256 (grouped conv)", depthwise_conv2d_grouped,
                                  (batch, 64, 64, 256), (3, 3, 256))]
    for name, f, x_shape, k_shape in convs:
        args = (jax.ShapeDtypeStruct(x_shape, jnp.float32), jax.ShapeDtypeStruct(k_shape, jnp.float32))
        cost = jax.jit(f).lower(*args).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        rows.append({"conv": name, "xla_flops": float(cost["flops"]), "xla_bytes": float(cost["bytes accessed"])})
    return tuple(rows)


def memory_passes(f, *args) -> dict[str, int]:
    """Count, in the optimised HLO of ``jit(f)(*args)``, the arrays of about the first argument's size (at
    least half its elements) that the top-level operations read and write: each is one pass over memory.
    Counted as passes: loops that write such an array, reductions and convolutions over one, and while loops
    (their operands once each: they stream through them block by block); a small loop over a border strip is
    not a pass. What XLA fused, stored or recomputed, as whole-array traffic."""
    text = jax.jit(f).lower(*args).compile().as_text()
    least = args[0].size // 2
    entry = text[text.index("\nENTRY") :]

    def big(shape: str) -> int:
        return sum(int(np.prod([int(d) for d in dims.split(",") if d] or [1])) >= least
                   for dims in re.findall(r"\[([\d,]*)\]", shape))  # fmt: skip

    shapes, reads, writes = {}, 0, 0
    for line in entry.splitlines()[1:]:
        match = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (\(.*?\)|\w+\[[\d,]*\])", line)
        if not match:
            continue
        name, shape = match.group(1), match.group(2)
        shapes[name] = shape
        head, _, rest = line[match.end() :].partition("(")
        if head.split()[-1:] in (["parameter"], ["tuple"], ["get-tuple-element"], ["bitcast"], ["constant"]):
            continue
        operands = set(re.findall(r"%([\w.\-]+)", rest.split("), ")[0]))
        looped = head.split()[-1:] == ["while"]
        whole = big(shape) or looped or "kind=kCustom" in line or head.split()[-1:] in (["reduce"], ["convolution"])
        reads += sum(big(shapes.get(o, "")) for o in operands) if whole else 0
        writes += 0 if looped else big(shape)
    return {"reads": reads, "writes": writes}


def magnitude_prune(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """Unstructured pruning: the fraction ``sparsity`` of the weights smallest in magnitude set to 0."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    kernel = np.asarray(kernel)
    return np.where(np.abs(kernel) > np.quantile(np.abs(kernel), sparsity), kernel, 0.0)


def removable_fraction(kernel: np.ndarray) -> float:
    """The fraction of a dense HWIO conv's MACs that can be removed by dropping whole input or output
    channels whose weights are all zero: what a dense kernel can skip (the rest it multiplies, zeros or not)."""
    zero = np.asarray(kernel) == 0
    c_in, c_out = zero.shape[2], zero.shape[3]
    kept_in, kept_out = c_in - int(np.all(zero, axis=(0, 1, 3)).sum()), c_out - int(np.all(zero, axis=(0, 1, 2)).sum())
    return 1.0 - kept_in * kept_out / (c_in * c_out)


def prune_output_channels(kernel: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Structured pruning: keep the ``keep`` output channels of largest L1 norm; returns (the smaller
    kernel, the indices kept, ascending)."""
    kernel = np.asarray(kernel)
    if not 1 <= keep <= kernel.shape[-1]:
        raise ValueError(f"keep must be in [1, {kernel.shape[-1]}], got {keep}")
    kept = np.sort(np.argsort(-np.abs(kernel).sum(axis=(0, 1, 2)))[:keep])
    return kernel[..., kept], kept


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "performance"]) or main(["check", "performance"]))
