"""The ledger: every claim passes and every displayed equation is verified, read from the one report of
the current sources (``runner.current_report``: stored by ``workbook check``, else run here once); and the
findings machinery, the registry and the display verifier refuse what they must."""

import pytest
import sympy as sp

from derivations import bridge, displayed
from derivations import claims as registry
from derivations.claims import (
    Claim,
    Evidence,
    Finding,
    Tolerance,
    compared,
    core,
    decide,
    evidence,
    premise,
    scoped,
)
from derivations.compare import compare
from derivations.runner import current_report, run_chapter, run_claim

REPORT = current_report()
ENTRIES = REPORT["claims"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_claim_passes(entry):
    assert entry["error"] is None, entry["error"]
    assert entry["verdict"] == entry["expected"], entry["summary"]
    assert entry["findings"] and entry["scope"]


def test_the_report_covers_every_registered_claim():
    assert [e["id"] for e in ENTRIES] == [c.id for c in registry.all_claims()]


@pytest.mark.parametrize("check", REPORT["derivations"],
                         ids=[f"{d['chapter']}.{d['derivation']}[{d['index']}]" for d in REPORT["derivations"]])
def test_every_displayed_equation_is_evaluated_by_a_claim_or_verified(check):
    assert check["ok"], f"{check['chapter']}.{check['derivation']}()[{check['index']}] unchecked: {check['item']}"


def test_every_chapter_with_derivations_has_its_equations_checked():
    chapters = {d.chapter for c in registry.all_claims() for d in registry.derivations_for(c.chapter)}
    assert chapters == {d["chapter"] for d in REPORT["derivations"]}


# --- the findings engine -------------------------------------------------------------------------------


def test_verdict_is_computed_from_findings():
    assert decide([core("a", True), scoped("b", True)]) == "holds"
    assert decide([core("a", True), scoped("b", False)]) == "qualified"
    assert decide([core("a", False), scoped("b", True)]) == "refuted"
    assert decide([core("a", False), scoped("b", False)]) == "refuted"
    assert decide([core("a", False), premise("the measurement agrees with the count", False)]) == "invalid"
    assert decide([core("a", False), premise("the measurement agrees with the count", True)]) == "refuted"


def test_a_refuted_claim_whose_premise_fails_is_a_failure():
    broken = _claim(lambda: evidence("measurement", core("statement", False), premise("apparatus", False)), "refuted")
    assert run_claim(broken).verdict == "invalid" and not run_claim(broken).ok


def _claim(check, expected="holds", **kw):
    correction = None if expected == "holds" else "a correction"
    return Claim(kw.pop("id", "schedules/test-claim"), ("S001-11",), "x", expected, check, kw.pop("scope", {"x": [1]}),
                 correction, **kw)


def test_a_failing_core_finding_is_refuted_and_a_failing_scoped_one_qualified():
    refuted = _claim(lambda: evidence("measurement", core("statement", False), scoped("edge", True)), "refuted")
    qualified = _claim(lambda: evidence("measurement", core("statement", True), scoped("edge", False)), "qualified")
    assert run_claim(refuted).verdict == "refuted" and run_claim(refuted).ok
    assert run_claim(qualified).verdict == "qualified" and run_claim(qualified).ok
    assert not run_claim(_claim(qualified.check, "holds")).ok


def test_evidence_without_findings_or_without_a_core_finding_is_refused():
    with pytest.raises(ValueError, match="at least one Finding"):
        Evidence("symbolic", ())
    with pytest.raises(ValueError, match="core finding"):
        evidence("symbolic", scoped("only a scope", True))
    with pytest.raises(ValueError, match="role"):
        Finding("p", True, "vibes")


def test_numbers_are_derived_from_the_findings():
    cmp = compare(lambda: sp_array([1.0, 2.0]), lambda: sp_array([1.0, 2.0 + 1e-12]), [])
    ev = evidence("autodiff", compared("equal", cmp), core("and more", True, samples=3, ratio=0.5))
    assert ev.max_rel_err == cmp.max_rel_err and ev.samples == 2 + 3 and ev.dtype == "float64"
    assert "ratio 0.5" in ev.summary and "equal: yes" in ev.summary


def sp_array(values):
    import jax.numpy as jnp

    return jnp.asarray(values)


def test_the_check_gets_the_claims_scope_and_tolerance():
    seen = {}

    def check(scope, rtol, atol):
        seen.update(scope=scope, rtol=rtol, atol=atol)
        return evidence("measurement", core("statement", True))

    tolerance = Tolerance(1e-6, 1e-12, "a float32 path")
    run_claim(_claim(check, scope={"depth": [1, 50]}, tolerance=tolerance))
    assert seen == {"scope": {"depth": [1, 50]}, "rtol": 1e-6, "atol": 1e-12}


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        (_claim(lambda: None, id="Activations/Bad Id"), "chapter/slug"),
        (Claim("schedules/no-seed", (), "x", "holds", lambda: None, {"x": 1}), "seed ids"),
        (Claim("schedules/bad-seed", ("S1-1",), "x", "holds", lambda: None, {"x": 1}), "seed ids"),
        (Claim("schedules/bad-verdict", ("S001-11",), "x", "maybe", lambda: None, {"x": 1}, "c"), "expected must"),
        (Claim("schedules/refuted-no-correction", ("S001-11",), "x", "refuted", lambda: None, {"x": 1}), "correction"),
        (Claim("schedules/holds-with-correction", ("S001-11",), "x", "holds", lambda: None, {"x": 1}, "y"),
         "correction"),
        (Claim("schedules/no-scope", ("S001-11",), "x", "holds", lambda: None, {}), "scope"),
        (_claim(lambda: None, id="schedules/loose", tolerance=Tolerance(1e-6)), "needs its reason"),
        (_claim(lambda: None, id="schedules/nan-tol", tolerance=Tolerance(float("nan"), 0.0, "r")), "finite"),
        (_claim(lambda depth: None, id="schedules/odd-parameter"), "may take only"),
        (Claim("schedules/per-backend", ("S001-11",), "x", {"cpu": "holds", "gpu": "wrong"}, lambda: None, {"x": 1},
               "c"), "expected must"),
    ],
)
def test_registry_refuses_a_malformed_claim(claim, message):
    with pytest.raises(ValueError, match=message):
        registry.register(claim)


def test_registry_refuses_a_duplicate_id():
    with pytest.raises(ValueError, match="twice"):
        registry.register(registry.all_claims()[0])


def test_a_per_backend_verdict_is_read_for_the_running_backend():
    claim = _claim(lambda: evidence("measurement", core("s", True), scoped("fast", False)),
                   {"cpu": "qualified", "default": "holds"})
    assert claim.expected_on("cpu") == "qualified" and claim.expected_on("tpu") == "holds"
    assert run_claim(claim).ok


def test_a_claim_whose_check_raises_is_a_failure_with_its_error():
    def broken():
        raise ZeroDivisionError("division by zero in the check")

    result = run_claim(_claim(broken))
    assert not result.ok and result.error == "ZeroDivisionError: division by zero in the check"


# --- the displayed-equation verifier (negative controls) ------------------------------------------------

t, w = sp.symbols("t w", positive=True)


def test_a_true_identity_is_verified_and_a_false_one_is_not():
    assert displayed.how_verified(sp.Eq(sp.Derivative(sp.sin(t) ** 2, t), 2 * sp.sin(t) * sp.cos(t)), frozenset())
    assert displayed.how_verified(sp.Eq(sp.Derivative(sp.sin(t) ** 2, t), 2 * sp.sin(t)), frozenset()) is None
    assert displayed.how_verified(sp.Le(sp.exp(-t), 1), frozenset())
    assert displayed.how_verified(sp.Ge(sp.exp(-t), 1), frozenset()) is None


def test_an_identity_lambdify_cannot_print_is_still_checked_at_sampled_points():
    # mpmath's printer has no Product: the refutation falls back to subs and N, and the 30-digit check decides.
    n, k = sp.symbols("n k", integer=True, positive=True)
    product = lambda m, e=k: sp.Product(1 + t**e, (k, 1, m))  # noqa: E731
    assert displayed.how_verified(sp.Eq(product(n), product(n - 1) * (1 + t**n), evaluate=False), frozenset())
    assert displayed.how_verified(sp.Eq(product(n), product(n - 1) * (1 + t ** (n + 1)), evaluate=False),
                                  frozenset()) is None


def test_a_kept_decision_follows_what_a_function_class_differentiates_to(monkeypatch, tmp_path):
    monkeypatch.setattr(bridge, "_decisions", bridge._DecisionCache(str(tmp_path)))

    def opaque(slope):  # two classes of one name (one srepr before doit), as an edited chapter's sp.Function
        return type("g", (sp.Function,), {"fdiff": lambda self, argindex=1: sp.Integer(slope)})

    shown = [sp.Le(sp.Derivative(opaque(slope)(t), t), 2, evaluate=False) for slope in (1, 3)]
    assert displayed.how_verified(shown[0], frozenset()) and displayed.how_verified(shown[1], frozenset()) is None
    assert bridge.definitions(opaque(1)(t)) == ((__name__, bridge._module_digest(__name__)),)
    assert bridge.definitions(sp.sin(t) + sp.Function("f")(t)) == ()


def test_a_definition_is_verified_only_when_a_claim_evaluated_its_formula():
    shown = sp.Eq(sp.Symbol("eta(t)"), w * t**2)
    assert displayed.how_verified(shown, frozenset()) is None
    assert displayed.how_verified(shown, frozenset({bridge.fingerprint(w * t**2)}))
    assert displayed.how_verified(shown, frozenset({bridge.fingerprint(w * t**3)})) is None
    # A bare number on the right matches any 0 a claim evaluated: only the equation itself counts.
    zero = sp.Eq(sp.Symbol("slope"), 0)
    assert displayed.how_verified(zero, frozenset({bridge.fingerprint(sp.Integer(0))})) is None
    assert displayed.how_verified(zero, frozenset({bridge.fingerprint(zero)}))
    assert displayed.how_verified(True, frozenset()) is None
    # A named matrix must have its value's shape (the name's shape is not typeset, so the page cannot show it).
    n = sp.Symbol("n")
    value = w * sp.MatrixSymbol("delta", n, 1)
    seen = frozenset({bridge.fingerprint(value)})
    assert displayed.how_verified(sp.Eq(sp.MatrixSymbol("dL/db", n, 1), value, evaluate=False), seen)
    assert displayed.how_verified(sp.Eq(sp.MatrixSymbol("dL/db", n, 2), value, evaluate=False), seen) is None


def test_breaking_a_displayed_equation_of_a_chapter_makes_it_unchecked(monkeypatch):
    from derivations import schedules

    step = next(d for d in registry.derivations_for("schedules") if d.name == "warmup_cosine_slopes")
    broken = [sp.Eq(e.lhs, e.rhs + 1, evaluate=False) for e in step.func()]
    steps = list(registry._DERIVATIONS["schedules"])
    steps[steps.index(step)] = registry.Derivation(step.chapter, step.name, step.title, lambda: broken)
    monkeypatch.setitem(registry._DERIVATIONS, "schedules", steps)
    checks = run_chapter("schedules")["derivations"]
    assert [d["ok"] for d in checks if d["derivation"] == "warmup_cosine_slopes"] == [False, False, False]
    assert all(d["ok"] for d in checks if d["derivation"] != "warmup_cosine_slopes")
    assert schedules.warmup_cosine_slopes()  # the library itself is untouched


def test_a_corrections_emphasis_renders_and_a_product_stays_a_product():
    from derivations.pages import _emphasis_html, _html, prose

    text = "One ReLU *unit* is not a layer; b*h*w values, 2 * 3 and x_1 are text"
    assert prose(text) == r"One ReLU *unit* is not a layer; b\*h\*w values, 2 \* 3 and x\_1 are text"
    assert _emphasis_html(_html(text)) == "One ReLU <em>unit</em> is not a layer; b*h*w values, 2 * 3 and x_1 are text"
    # a docstring's ``literal`` is code in a derivation's title, the rest plain text
    from derivations.pages import _docstring

    assert _docstring("the jump of ``conv_arithmetic``, x_1 * 2") == r"the jump of `conv_arithmetic`, x\_1 \* 2"
