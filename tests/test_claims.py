"""Every claim in the registry passes (the ledger as a parametrized test), and the registry refuses
malformed claims."""

import pytest

from derivations import claims as registry
from derivations.claims import Claim, Evidence, all_claims, claims_for
from derivations.runner import run_claim, run_claims

ALL = all_claims()


@pytest.mark.parametrize("claim", ALL, ids=[c.id for c in ALL])
def test_claim_passes(claim):
    result = run_claim(claim)
    assert result.error is None, result.error
    assert result.verdict == claim.expected, result.evidence.summary
    assert result.evidence.summary


def _evidence(verdict="holds"):
    return Evidence(verdict=verdict, method="symbolic", summary="test")


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        (Claim("Activations/Bad Id", ("S001-11",), "x", "holds", _evidence), "chapter/slug"),
        (Claim("activations/no-seed", (), "x", "holds", _evidence), "seed ids"),
        (Claim("activations/bad-seed", ("S1-1",), "x", "holds", _evidence), "seed ids"),
        (Claim("activations/bad-verdict", ("S001-11",), "x", "maybe", _evidence), "expected must be"),
        (Claim("activations/refuted-without-correction", ("S001-11",), "x", "refuted", _evidence), "correction"),
        (Claim("activations/holds-with-correction", ("S001-11",), "x", "holds", _evidence, "y"), "correction"),
    ],
)
def test_registry_refuses_a_malformed_claim(claim, message):
    with pytest.raises(ValueError, match=message):
        registry.register(claim)


def test_registry_refuses_a_duplicate_id():
    with pytest.raises(ValueError, match="twice"):
        registry.register(ALL[0])


def test_evidence_refuses_an_unknown_verdict():
    with pytest.raises(ValueError, match="verdict"):
        Evidence(verdict="probably", method="symbolic", summary="")


def test_unknown_names_are_value_errors_naming_the_chapters():
    with pytest.raises(ValueError, match="valid chapters: activations"):
        claims_for(["activation"])
    with pytest.raises(ValueError, match="unknown claim id"):
        claims_for(["activations/no-such-claim"])


def test_a_claim_whose_check_raises_is_a_failure_with_its_error(monkeypatch):
    def broken():
        raise ZeroDivisionError("division by zero in the check")

    bad = Claim("activations/raises", ("S001-11",), "x", "holds", broken)
    report = run_claims([bad, ALL[0]])
    first, second = report.results
    assert not first.ok and first.error == "ZeroDivisionError: division by zero in the check"
    assert second.ok
    assert report.summary["failed"] == 1 and report.summary["ok"] == 1


def test_a_check_that_disagrees_with_the_recorded_verdict_fails():
    disagreeing = Claim("activations/disagrees", ("S001-11",), "x", "holds", lambda: _evidence("refuted"))
    assert not run_claim(disagreeing).ok
