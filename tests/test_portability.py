"""derivations.portability: what counts as a verdict that depends on the CPU, and what does not."""

import copy

import pytest

import derivations
from derivations import portability


def _report() -> dict:
    finding = {"proposition": "the two runs agree", "role": "premise", "held": True, "figures": {"apart": 0.0}}
    scoped = {"proposition": "L2 makes it sparser", "role": "scope", "held": False, "figures": {"zeros": "[0]"}}
    claim = {"id": "regularization/x", "verdict": "qualified", "ok": True, "error": None,
             "findings": [finding, scoped]}
    other = {"id": "losses/y", "verdict": "holds", "ok": True, "error": None, "findings": [copy.deepcopy(finding)]}
    return {"claims": [claim, other], "derivations": [{"chapter": "losses", "derivation": "d", "index": 0, "ok": True}],
            "summary": {"failed": 0, "equations_unchecked": 0}}


def test_last_bits_of_figures_are_not_a_difference():
    a, b = _report(), _report()
    b["claims"][0]["findings"][0]["figures"]["apart"] = 2.2e-16
    assert portability.differences(a, b) == []
    assert portability.figures_moved(a, b) == 1
    b = _report()
    b["claims"][1]["max_rel_err"], b["claims"][1]["seconds"] = 3e-16, 9.0  # an aggregate moved; the time does not count
    a["claims"][1]["seconds"] = 1.0
    assert portability.differences(a, b) == [] and portability.figures_moved(a, b) == 1


def test_a_finding_that_flips_is_named_even_when_the_verdict_stays():
    a, b = _report(), _report()
    b["claims"][1]["findings"].append({"proposition": "extra", "role": "core", "held": True, "figures": {}})
    b["claims"][0]["findings"][0]["held"] = False
    b["claims"][0]["verdict"], b["claims"][0]["ok"] = "invalid", False
    extra, flipped = portability.differences(a, b)  # in claim-id order
    assert extra.startswith("losses/y: findings")
    assert flipped.startswith("regularization/x: verdict 'qualified' -> 'invalid'; ok True -> False")
    assert "premise finding 'the two runs agree' True -> False" in flipped


def test_a_missing_claim_and_an_unverified_equation_are_differences():
    a, b = _report(), copy.deepcopy(_report())
    del b["claims"][1]
    b["derivations"][0]["ok"] = False
    assert portability.differences(a, b) == [
        "losses/y: missing", "displayed ('losses', 'd', 0): verified True -> False"]


def test_a_finding_that_flips_while_the_verdict_stays_is_a_difference():
    a, b = _report(), _report()
    b["claims"][1]["findings"][0]["held"] = False  # losses/y: verdict, ok and count of findings unchanged
    assert portability.differences(a, b) == ["losses/y: premise finding 'the two runs agree' True -> False"]
    b = _report()
    b["claims"][0]["findings"].reverse()  # the same findings in another order
    assert len(portability.differences(a, b)) == 1


def test_a_displayed_equation_on_one_side_only_is_a_difference():
    a, b = _report(), _report()
    b["derivations"][0]["index"] = 1
    assert portability.differences(a, b) == ["displayed ('losses', 'd', 0): missing",
                                             "displayed ('losses', 'd', 1): only here"]


def test_the_child_gets_the_callers_xla_flags_without_the_quick_compile_ones():
    quick = " ".join(derivations.QUICK_COMPILE_FLAGS)
    base = {"XLA_FLAGS": f"--xla_dump_to=/tmp/x {quick}", "WORKBOOK_FAST_COMPILE": "0", "HOME": "/h"}
    env = portability.environment(portability.CONFIGURATIONS["avx2"], base)
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2"
    assert env["WORKBOOK_FAST_COMPILE"] == "1" and env["HOME"] == "/h"  # every configuration pins the compile
    assert "XLA_FLAGS" not in portability.environment(portability.CONFIGURATIONS["native"], {"XLA_FLAGS": quick})
    assert all("WORKBOOK_FAST_COMPILE" in c for c in portability.CONFIGURATIONS.values())


@pytest.mark.parametrize("argv, message", [
    (["nosuch"], "unknown chapter 'nosuch'"),
    (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--only", "native"], "--only needs two configurations or more"),
    (["--only", "native", "--only", "native"], "--only needs two configurations or more"),
    (["--only", "bogus"], "invalid choice: 'bogus'"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_run(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(portability, "run", lambda *a: pytest.fail("ran although the input is bad"))
    assert portability.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
