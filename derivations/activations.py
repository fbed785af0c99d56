"""Activations: sigmoid, tanh, ReLU and its variants, softmax, Maxout, derived and checked.

Seeds: S001-11, S001-12, S002-16, S002-25, S002-34, S002-47, S003-06, S003-09, S001-40 (narrative:
S001-13, S002-40, S004-19). This module is the library (formulas, derivations, the derivative harness in
z); the claims are in ``derivations/ledger/activations.py``. ``sigmoid`` and ``softmax`` are defined here
once for the whole workbook. Run ``python -m derivations.activations`` to print the derivations and check
the claims.
"""

from __future__ import annotations

import sympy as sp
import sympy.stats as stats

from derivations import bridge, harness
from derivations.claims import Evidence, derivation

z = sp.Symbol("z", real=True)
t = sp.Symbol("t", positive=True)  # a stand-in for z -> +oo (z = t) and z -> -oo (z = -t)
alpha = sp.Symbol("alpha", positive=True)
lam = sp.Symbol("lambda", positive=True)
lower, upper = sp.symbols("l u", positive=True)

# The notes' forms sigma(1 - sigma), 1 - tanh^2 and ELU + lambda subtract nearly equal numbers as |z|
# grows (relative error ~ eps / f'(z)); on [-4, 4] that stays below 1e-12, so 1e-10 is a fair test there.
SMOOTH_DOMAIN = (-4.0, 4.0)


# --- the functions, as the notes write them ---------------------------------------------------------


def sigmoid(x: sp.Expr = z) -> sp.Expr:
    """The logistic sigmoid 1 / (1 + e^-x) (S001-11); the workbook's one definition of it."""
    return 1 / (1 + sp.exp(-x))


def tanh_note(x: sp.Expr = z) -> sp.Expr:
    """tanh as the notes define it, (e^z - e^-z) / (e^z + e^-z)."""
    return (sp.exp(x) - sp.exp(-x)) / (sp.exp(x) + sp.exp(-x))


def relu(x: sp.Expr = z) -> sp.Expr:
    return sp.Max(0, x)


def leaky_relu(x: sp.Expr = z, a: sp.Expr = alpha) -> sp.Expr:
    """Leaky ReLU as S001-12 writes it: z for z > 0, a z for z <= 0."""
    return sp.Piecewise((x, x > 0), (a * x, True))


def elu(x: sp.Expr = z, scale: sp.Expr = lam) -> sp.Expr:
    """ELU as S001-12 writes it: z for z >= 0, lambda (e^z - 1) for z < 0."""
    return sp.Piecewise((x, x >= 0), (scale * (sp.exp(x) - 1), True))


def softmax(zs: tuple[sp.Symbol, ...]) -> sp.Matrix:
    """softmax(z)_i = e^{z_i} / sum_j e^{z_j}, as a column Matrix; the workbook's one definition of it."""
    exps = [sp.exp(v) for v in zs]
    return sp.Matrix([e / sum(exps) for e in exps])


def logits(k: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"z1:{k + 1}", real=True)


# --- derivations -------------------------------------------------------------------------------------


@derivation
@bridge.cache
def sigmoid_derivative() -> list[sp.Eq]:
    """The sigmoid's derivative, as SymPy differentiates it, equals sigma(1 - sigma) (S001-11)."""
    derivative = sp.diff(sigmoid(), z)
    return [
        sp.Eq(sp.Derivative(sigmoid(), z), derivative, evaluate=False),
        sp.Eq(derivative, sigmoid() * (1 - sigmoid()), evaluate=False),
    ]


@derivation
@bridge.cache
def tanh_derivative() -> list[sp.Eq]:
    """tanh's derivative, as SymPy differentiates the notes' definition, equals 1 - tanh^2 (S001-11)."""
    derivative = sp.diff(tanh_note(), z)
    return [
        sp.Eq(sp.Derivative(tanh_note(), z), derivative, evaluate=False),
        sp.Eq(derivative, 1 - tanh_note() ** 2, evaluate=False),
    ]


@derivation
def sigmoid_derivative_bound() -> sp.Eq:
    """sigma' <= 1/4 everywhere: 1/4 - s(1 - s) is a square (s = sigma(z)), zero only at z = 0."""
    s = sp.Symbol("s")
    return sp.Eq(sp.Rational(1, 4) - s * (1 - s), sp.factor(sp.Rational(1, 4) - s * (1 - s)), evaluate=False)


@derivation
def relu_derivative() -> sp.Eq:
    """ReLU's derivative is a step; SymPy's Heaviside takes the value 1/2 at the kink."""
    return sp.Eq(sp.Derivative(relu(), z), sp.diff(relu(), z), evaluate=False)


@derivation
def leaky_relu_derivative() -> sp.Eq:
    """Leaky ReLU's derivative: 1 on the positive side, alpha on the negative side."""
    return sp.Eq(sp.Derivative(leaky_relu(), z), sp.diff(leaky_relu(), z), evaluate=False)


@derivation
def elu_derivative() -> sp.Eq:
    """ELU's derivative: lambda e^z = ELU(z) + lambda on the negative side."""
    return sp.Eq(sp.Derivative(elu(), z), sp.diff(elu(), z), evaluate=False)


@derivation
def prelu_gradients() -> list[sp.Eq]:
    """PReLU's gradients with respect to its input and to its learned slope alpha."""
    f = leaky_relu()
    return [
        sp.Eq(sp.Derivative(f, z), sp.diff(f, z), evaluate=False),
        sp.Eq(sp.Derivative(f, alpha), sp.diff(f, alpha), evaluate=False),
    ]


@derivation
@bridge.cache
def rrelu_expected_slope() -> list[sp.Eq]:
    """RReLU draws a ~ U(l, u) in training and uses its mean (l + u)/2 at evaluation (S001-12). Where a is
    the slope (y = a x on the negative side: PyTorch, the workbook's module) that mean is the mean slope.
    Xu et al. (2015) run a ~ U(3, 8) as a divisor (y = x / a) and test with x / ((l + u)/2): the mean
    slope there is E[1/a] = ln(u/l)/(u - l), not 1/E[a]."""
    a = stats.Uniform("a", lower, upper)
    v = sp.Symbol("a", positive=True)
    density = 1 / (upper - lower)  # U(l, u) with 0 < l < u, as both conventions have
    return [sp.Eq(sp.Symbol("E[a]"), sp.simplify(stats.E(a)), evaluate=False),
            sp.Eq(sp.Symbol("E[1/a]"), sp.integrate(density / v, (v, lower, upper)), evaluate=False)]


@derivation
@bridge.cache
def softmax_jacobian() -> sp.Eq:
    """The softmax Jacobian for K = 3: d s_i / d z_j = s_i (delta_ij - s_j)."""
    zs = logits(3)
    s = softmax(zs)
    return sp.Eq(sp.MatrixSymbol("J", 3, 3), sp.simplify(s.jacobian(zs)), evaluate=False)


@derivation
@bridge.cache
def derivative_limits() -> sp.Matrix:
    """Limits of each derivative at -oo and +oo: zero at an end means saturation there (S003-06).
    Rows: sigmoid, tanh, ReLU, Leaky ReLU, ELU; columns: the function, f'(-oo), f'(+oo)."""
    rows = [[sp.Symbol(name), lo, hi] for name, (lo, hi) in _saturation_table().items()]
    return sp.Matrix(rows)


def _one_sided_limit(expr: sp.Expr, direction: int) -> sp.Expr:
    # Substituting z = +t or -t with t > 0 lets SymPy pick the Piecewise branch before the limit.
    return sp.limit(expr.subs(z, direction * t), t, sp.oo)


@bridge.cache
def _saturation_table() -> dict[str, tuple[sp.Expr, sp.Expr]]:
    functions = {
        "sigmoid": sigmoid(),
        "tanh": tanh_note(),
        "ReLU": relu(),
        "LeakyReLU": leaky_relu(),
        "ELU": elu(),
    }
    out = {}
    for name, f in functions.items():
        d = sp.diff(f, z)
        out[name] = (_one_sided_limit(d, -1), _one_sided_limit(d, +1))
    return out


def derivative_check(function, claimed, reference, *, domain=None, rtol: float = harness.RTOL,
                     atol: float = 0.0) -> Evidence:
    """The shared derivative harness (``derivations.harness``) in this chapter's variable z; the default
    domain is SMOOTH_DOMAIN."""
    return harness.derivative_check(function, claimed, reference, z, domain=tuple(domain or SMOOTH_DOMAIN),
                                    rtol=rtol, atol=atol)


if __name__ == "__main__":
    from derivations.cli import main

    raise SystemExit(main(["show", "activations"]) or main(["check", "activations"]))
