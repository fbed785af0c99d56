"""The SymPy -> JAX bridge and identity proofs: known traps pinned, false identities not proved."""

import jax
import jax.numpy as jnp
import pytest
import sympy as sp

from derivations import bridge
from derivations.bridge import prove_identity, to_jax

x = sp.Symbol("x", real=True)


def test_heaviside_prints_as_one_half_at_zero():
    assert float(to_jax(sp.Heaviside(x), [x])(0.0)) == 0.5


def test_gradient_at_the_kink_differs_between_relu_and_maximum():
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0
    assert float(jax.grad(lambda v: jnp.maximum(v, 0.0))(0.0)) == 0.5
    assert float(jax.grad(to_jax(sp.Max(x, 0), [x]))(0.0)) == 0.5
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0


def test_erf_is_mapped_to_jax_not_to_math():
    values = to_jax(sp.erf(x), [x])(jnp.asarray([-1.0, 0.0, 2.0]))
    assert jnp.allclose(values, jax.scipy.special.erf(jnp.asarray([-1.0, 0.0, 2.0])), rtol=1e-15)


def test_lambdified_function_is_differentiable_in_float64():
    derivative = jax.grad(to_jax(sp.exp(2 * x), [x]))(0.5)
    assert derivative.dtype == jnp.float64
    assert abs(float(derivative) - 2 * float(sp.exp(1))) <= 1e-15 * 2 * float(sp.exp(1))


def test_a_wrong_entry_in_the_pinned_table_fails_at_import(monkeypatch):
    monkeypatch.setattr(bridge, "_PINNED", [("tanh as sinh", sp.tanh(bridge._x), jnp.sinh)])
    with pytest.raises(RuntimeError, match="tanh as sinh"):
        bridge._check_pinned()


def test_true_identity_is_proved_symbolically():
    sigma = 1 / (1 + sp.exp(-x))
    proof = prove_identity(sp.diff(sigma, x), sigma * (1 - sigma), [x])
    assert proof.proved and proof.holds
    assert proof.max_rel_err <= 1e-10


def test_identity_needing_a_rewrite_is_proved():
    proof = prove_identity(sp.tanh(x), (sp.exp(x) - sp.exp(-x)) / (sp.exp(x) + sp.exp(-x)), [x])
    assert proof.proved


def test_false_identity_is_not_proved():
    sigma = 1 / (1 + sp.exp(-x))
    proof = prove_identity(sp.diff(sigma, x), sigma * (1 + sigma), [x])
    assert not proof.proved and not proof.holds
    assert proof.max_rel_err > 1e-3


def test_identity_sympy_cannot_decide_rests_on_numbers_and_says_so():
    proof = prove_identity(sp.erf(x) + sp.erfc(x), sp.Integer(1), [x])
    assert not proof.proved and proof.holds
    assert proof.method == "numeric only"


def test_numeric_evidence_rejects_a_near_identity():
    proof = prove_identity(sp.erf(x) + sp.erfc(x), 1 + x / 10**6, [x])
    assert not proof.proved and not proof.holds


@pytest.fixture(autouse=True)
def no_kept_decisions(monkeypatch):
    """These tests count SymPy's calls: a decision kept on disk by an earlier run would skip them."""
    monkeypatch.setattr(bridge, "_decisions", bridge._DecisionCache(None))


def test_kept_decisions_are_reused_only_for_the_same_expression(monkeypatch, tmp_path):
    monkeypatch.setattr(bridge, "_decisions", bridge._DecisionCache(str(tmp_path)))
    calls, simplify = [], sp.simplify
    monkeypatch.setattr(bridge.sp, "simplify", lambda e: calls.append(e) or simplify(e))
    true = sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1
    assert bridge.vanishes(true) and len(calls) == 1
    assert bridge.vanishes(true) and len(calls) == 1  # read back, not simplified again
    rewrites = [(name, lambda e, f=f: calls.append(e) or f(e)) for name, f in bridge._REWRITES]
    monkeypatch.setattr(bridge, "_REWRITES", rewrites)
    assert bridge.reduces_to_zero(true) == "simplify" and len(calls) == 1 + 2  # together-expand, then simplify
    assert bridge.reduces_to_zero(true) == "simplify" and len(calls) == 3
    # negative controls: another expression, or the same symbol with other assumptions, is decided afresh
    assert not bridge.vanishes(true + x / 10**6) and len(calls) == 3  # refuted at a point: no simplify
    y = sp.Symbol("x", positive=True)
    assert bridge.vanishes(sp.sin(y) ** 2 + sp.cos(y) ** 2 - 1) and len(calls) == 4
    assert len(list(tmp_path.iterdir())) == 4


def test_a_refuted_identity_never_reaches_the_slow_rewrites(monkeypatch):
    def slow(e):
        raise AssertionError("simplify was tried on an identity the numbers refute")

    monkeypatch.setattr(bridge, "_REWRITES", [bridge._REWRITES[0], ("simplify", slow)])
    proof = prove_identity(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1 + x**2 / 100, [x])
    assert not proof.proved and not proof.holds and "slower rewrites not tried" in proof.how
    # negative control: a true identity that only the slow rewrite decides still gets there
    with pytest.raises(AssertionError, match="simplify was tried"):
        prove_identity(sp.sin(x) ** 2 + sp.cos(x) ** 2, sp.Integer(1), [x])


def test_a_displayed_equation_a_sampled_point_refutes_is_not_simplified(monkeypatch):
    from derivations import displayed

    calls, simplify = [], sp.simplify
    monkeypatch.setattr(displayed.sp, "simplify", lambda e: calls.append(e) or simplify(e))
    assert displayed._holds(sp.Eq(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1 + x**2 / 100)) is None and not calls
    # negative control: the true one is simplified, and proved
    assert displayed._holds(sp.Eq(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)) == "identity proved by SymPy after doit()"
    assert calls


def test_vanishes_refutes_a_wrong_formula_at_a_point_before_simplify(monkeypatch):
    y = sp.Symbol("y", positive=True)
    wrong = sp.diff(sum(d / (2 * h + 1) for d, h in ((x, y), (y, x))), y) - sp.Integer(2)
    calls, simplify = [], sp.simplify
    monkeypatch.setattr(bridge.sp, "simplify", lambda e: calls.append(e) or simplify(e))
    assert bridge.refuted_at_a_point(wrong) and not bridge.vanishes(wrong) and not calls
    # negative controls: a true identity is not refuted and simplify proves it; an Indexed one is left to simplify
    true = sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1
    assert not bridge.refuted_at_a_point(true) and bridge.vanishes(true) and calls
    assert not bridge.refuted_at_a_point(sp.IndexedBase("v")[1] - 1)


# --- an equation's left-hand side that is a formula is evaluated too -------------------------------------


def test_a_formula_on_the_left_must_agree_with_the_right_where_a_check_evaluates_it():
    p, r = sp.symbols("P R", positive=True)
    at = {p: sp.Rational(1, 3), r: sp.Rational(3, 4)}
    f1 = sp.Eq(2 * p * r / (p + r), 2 / (1 / p + 1 / r), evaluate=False)
    assert bridge.value(f1, at) == pytest.approx(6 / 13, rel=1e-15)
    with pytest.raises(ValueError, match="does not hold at"):  # the negative control: a wrong label
        bridge.value(sp.Eq(2 * p * r / (p - r), 2 / (1 / p + 1 / r), evaluate=False), at)
    with pytest.raises(ValueError, match="does not hold at"):
        bridge.instantiate(sp.Eq(sp.Sum(p, (sp.Symbol("l"), 0, 2)), 2 * p, evaluate=False), at)


def test_a_name_on_the_left_is_a_label_and_is_not_evaluated():
    p, z = sp.Symbol("p"), sp.Symbol("z", real=True)
    var = sp.Symbol(r"\operatorname{Var}")
    # d Var / dp would be 0 as a derivative of a bare symbol; as a name it is a label of the right-hand side.
    assert bridge.value(sp.Eq(sp.Derivative(var, p), 1 / (1 - p) ** 2), {p: 0}) == 1.0
    assert bridge.value(sp.Eq(sp.Function("E")(sp.Max(z, 0) ** 2), sp.Rational(1, 2)), {}) == 0.5
    assert bridge.value(sp.Eq(sp.Symbol("F_1"), 2 * p), {p: 1}) == 2.0


def test_to_jax_records_an_equation_only_when_its_left_hand_side_is_a_name():
    """to_jax evaluates the right-hand side alone: an equation with a formula on the left is left for the page
    check to verify (a wrong d|c - y|/dc = sign(c + y) evaluated at y = 0 is not marked checked)."""
    from derivations import displayed

    c, y = sp.symbols("c y", real=True)
    right = sp.Eq(sp.Derivative(sp.Abs(c - y), c), sp.sign(c - y), evaluate=False)
    wrong = sp.Eq(sp.Derivative(sp.Abs(c - y), c), sp.sign(c + y), evaluate=False)
    named = sp.Eq(sp.Symbol("g"), sp.sign(c + y), evaluate=False)
    bridge.forget_evaluated()
    for eq in (right, wrong, named):
        assert float(to_jax(eq, [c, y])(2.0, 0.0)) == 1.0
    seen = bridge.evaluated()
    assert bridge.fingerprint(named) in seen and bridge.fingerprint(wrong) not in seen
    assert bridge.fingerprint(wrong.rhs) in seen
    assert displayed.how_verified(right, seen) == "identity proved by SymPy after doit()"
    assert displayed.how_verified(wrong, seen) is None
    assert displayed.how_verified(named, seen)


def test_no_path_marks_a_relation_between_two_formulas_as_checked():
    """value, instantiate and mark_evaluated record an Eq with a formula on the left by its right side alone, so
    a wrong relation that agrees at the one point a check tried (relu' = Heaviside at z = 0) stays unverified;
    a sum of a name that shares no symbol with the right side is a name (a label of a measured quantity)."""
    from derivations import displayed

    z = sp.Symbol("z", real=True)
    wrong = sp.Eq(sp.Derivative(sp.Max(0, z) + z**2, z), sp.Heaviside(z), evaluate=False)
    right = sp.Eq(sp.Derivative(sp.Max(0, z) + z**2, z), sp.Heaviside(z) + 2 * z, evaluate=False)
    bridge.forget_evaluated()
    bridge.instantiate(wrong, {z: 0})
    bridge.value(wrong, {z: 0})
    bridge.mark_evaluated([wrong])
    seen = bridge.evaluated()
    assert bridge.fingerprint(wrong) not in seen and bridge.fingerprint(wrong.rhs) in seen
    assert displayed.how_verified(wrong, seen) is None
    assert displayed.how_verified(right, seen) == "identity proved by SymPy after doit()"
    i, p = sp.Symbol("i", integer=True), sp.Symbol("p")
    total = sp.Eq(sp.Sum(sp.Symbol(r"\partial y/\partial x_i"), (i, 1, 4)), 1, evaluate=False)
    bridge.mark_evaluated([total])
    assert displayed.how_verified(total, bridge.evaluated()) == "evaluated by a claim"
    assert bridge._formula_lhs(sp.Eq(sp.Sum(p, (i, 0, 2)), 2 * p, evaluate=False))  # p is on both sides: a formula


def test_a_name_that_its_right_hand_side_contains_is_a_formula():
    """x_i = x_i, |x| = x, d|x|/dx = sign(x) or dx/dx = 2 say something about the quantity named: they are
    relations to verify, not labels; dy/dw = 2 w and eta(t) = t / 10 stay definitions."""
    x_, y_, w_, t_ = sp.symbols("x y w t", real=True)
    formulas = [sp.Eq(x_, x_, evaluate=False), sp.Eq(sp.Abs(x_), x_, evaluate=False),
                sp.Eq(sp.Derivative(sp.Abs(x_), x_), sp.sign(x_), evaluate=False),
                sp.Eq(sp.Derivative(x_, x_), 2, evaluate=False)]
    labels = [sp.Eq(sp.Derivative(y_, w_), 2 * w_, evaluate=False),
              sp.Eq(sp.Function("eta")(t_), t_ / 10, evaluate=False)]
    assert all(bridge._formula_lhs(e) for e in formulas)
    assert not any(bridge._formula_lhs(e) for e in labels)
    with pytest.raises(ValueError, match="does not hold at"):  # evaluated at a point, the wrong one is caught
        bridge.value(sp.Eq(sp.Derivative(x_, x_), 2, evaluate=False), {x_: 1})
