"""Claims found while annotating note 003 (activations chapter): the note's formulas for sigmoid, tanh and ReLU
against the library functions, their output ranges, and ReLU's derivative on the positive half-axis."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from derivations.activations import relu, sigmoid, tanh_note, z
from derivations.bridge import to_jax
from derivations.claims import Evidence, claim, compared, core, evidence, premise
from derivations.compare import compare

NOTE_FORMS = {"sigmoid": (sigmoid, jax.nn.sigmoid), "tanh": (tanh_note, jnp.tanh), "relu": (relu, jax.nn.relu)}


def formula_findings(scope: dict, rtol: float, forms=NOTE_FORMS) -> list:
    lo, hi, n = scope["grid"]
    grid = np.linspace(lo, hi, int(n))
    out = []
    for name, (note_form, library) in forms.items():
        f = to_jax(note_form(z), [z])
        out.append(compared(f"the note's {name} formula equals {library.__module__}.{library.__name__} on "
                            f"[{lo:g}, {hi:g}]", compare(f, library, [grid], rtol=rtol)))
    return out


@claim(
    "activations/sigmoid-tanh-relu-formulas-match-the-library",
    sources=["S003-06"],
    says="sigmoid = 1/(1 + e^-x); tanh = (e^x - e^-x)/(e^x + e^-x); Relu = max(0, x).",
    expected="holds",
    scope={"grid": [-30.0, 30.0, 601], "functions": ["sigmoid", "tanh", "relu"],
           "note": "the written tanh overflows (inf/inf) for |x| > ~710; the grid stays inside float64's exp range"},
)
def _formulas(scope, rtol) -> Evidence:
    return evidence("autodiff", *formula_findings(scope, rtol))


def range_findings(scope: dict, squash=sigmoid) -> dict:
    s, r = squash(z), relu(z)
    grid = np.concatenate([-np.logspace(-300, 300, 61), [0.0], np.logspace(-300, 300, 61)])
    sig = np.asarray(jax.nn.sigmoid(grid))
    rel = np.asarray(jax.nn.relu(grid))
    big = float(scope["large"])
    return {
        "sigmoid_open": bool(s.is_positive) and bool(sp.simplify(1 - s).is_positive),
        "sigmoid_limits": (sp.limit(s, z, -sp.oo), sp.limit(s, z, sp.oo)),
        "sigmoid_float": bool(np.all((sig >= 0) & (sig <= 1))),
        "relu_nonneg": bool(r.is_nonnegative) and bool(np.all(rel >= 0)),
        "relu_unbounded": sp.limit(r, z, sp.oo) == sp.oo and float(jax.nn.relu(big)) == big,
        "relu_identity_positive": bool(np.all(rel[grid > 0] == grid[grid > 0])),
    }


@claim(
    "activations/sigmoid-is-between-zero-and-one-relu-zero-to-infinity",
    sources=["S003-06"],
    says="The sigmoid's output lies between 0 and 1 (sigmoid激活函数的输出值在0到1之间); ReLU's output ranges "
    "from 0 to infinity (该激活函数的输出值为0到无穷).",
    expected="holds",
    scope={"float_grid": "+-10^k for k in -300 .. 300, and 0", "large": 1e300},
)
def _ranges(scope) -> Evidence:
    r = range_findings(scope)
    lo, hi = r["sigmoid_limits"]
    return evidence(
        "symbolic",
        core("SymPy: 0 < sigmoid(z) < 1 for every real z (sigmoid and 1 - sigmoid are positive)", r["sigmoid_open"]),
        core("its limits are 0 at -oo and 1 at +oo (so every value strictly between is reached)",
             lo == 0 and hi == 1, limits=f"{lo}, {hi}"),
        core("in float64, jax.nn.sigmoid stays within [0, 1] from -1e300 to 1e300", r["sigmoid_float"]),
        core("ReLU is never negative (SymPy and jax.nn.relu on the grid)", r["relu_nonneg"]),
        core("ReLU is unbounded above: relu(z) = z for every z > 0, limit oo (relu(1e300) = 1e300)",
             r["relu_unbounded"] and r["relu_identity_positive"]),
    )


def positive_axis_findings(scope: dict, act=jax.nn.relu) -> dict:
    pos = np.logspace(*scope["positive_axis"], 121)
    g = jax.vmap(jax.grad(act))(jnp.asarray(pos))
    sig_d = sp.diff(sigmoid(z), z)
    tanh_d = sp.diff(tanh_note(z), z)
    far = float(scope["far"])
    grads = {n: float(jax.grad(f)(far)) for n, f in (("sigmoid", jax.nn.sigmoid), ("tanh", jnp.tanh))}
    depth = int(scope["depth"])
    return {"relu_one": bool(np.all(np.asarray(g) == 1.0)), "relu_chain": float(np.prod(np.asarray(g)[:depth])),
            "limits": (sp.limit(sig_d, z, sp.oo), sp.limit(tanh_d, z, sp.oo)), "far": grads,
            "sigmoid_chain_bound": 0.25 ** depth}


@claim(
    "activations/relu-gradient-does-not-vanish-on-the-positive-axis",
    sources=["S003-09"],
    says="Compared with Sigmoid or Tanh, ReLU has no vanishing-gradient problem on the positive half-axis "
    "(ReLU 不会在正半轴内出现梯度消失的问题, 即梯度一直变得非常小).",
    expected="holds",
    scope={"positive_axis": [-300, 300], "far": 40.0, "depth": 50, "tiny": 1e-14},
)
def _relu_positive(scope) -> Evidence:
    r = positive_axis_findings(scope)
    ls, lt = r["limits"]
    return evidence(
        "autodiff",
        core(f"jax.grad(relu) is exactly 1 at every z in [1e-300, 1e300], so a chain of {scope['depth']} active ReLU "
             "factors passes the gradient unchanged (relu_chain: their product)", r["relu_one"],
             relu_chain=r["relu_chain"], sigmoid_chain_at_most=r["sigmoid_chain_bound"]),
        premise("sigmoid' and tanh' tend to 0 on the positive side (SymPy limits), the comparison the note makes",
                ls == 0 and lt == 0),
        core(f"at z = {scope['far']:g} jax.grad of sigmoid and tanh is below tiny (1e-14) while ReLU's is 1",
             all(v < scope["tiny"] for v in r["far"].values()), **{f"{k}_grad": v for k, v in r["far"].items()}),
    )
