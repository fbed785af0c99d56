"""The command line: its output, its JSON contract and its exit codes."""

import json
import subprocess
import sys

import pytest

from derivations import claims as registry
from derivations.claims import Claim, Evidence
from derivations.cli import main

FAST_CLAIMS = ["activations/relu-subgradient-at-zero", "activations/leaky-relu-is-max-of-az-and-z"]
CLAIM_KEYS = {"id", "chapter", "sources", "says", "expected", "verdict", "ok", "method", "max_abs_err",
              "max_rel_err", "samples", "dtype", "seconds", "details", "correction", "error"}
SUMMARY_KEYS = {"claims", "ok", "failed", "holds", "qualified", "refuted", "seconds"}


def test_list_shows_the_chapters(capsys):
    assert main(["list"]) == 0
    assert "activations" in capsys.readouterr().out


def test_show_prints_derivations_and_claims(capsys):
    assert main(["show", "activations"]) == 0
    out = capsys.readouterr().out
    assert "The sigmoid's derivative" in out
    assert "activations/softmax-jacobian-is-diag-s-minus-s-s-transpose" in out


def test_check_writes_the_documented_json(tmp_path):
    path = tmp_path / "report.json"
    assert main(["check", *FAST_CLAIMS, "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["version"] == 1
    assert set(report["summary"]) >= SUMMARY_KEYS
    assert [c["id"] for c in report["claims"]] == FAST_CLAIMS
    for entry in report["claims"]:
        assert set(entry) >= CLAIM_KEYS
        assert entry["ok"] is True and entry["error"] is None
        assert entry["method"] in {"symbolic", "autodiff", "measurement"}
    assert report["summary"]["claims"] == 2 and report["summary"]["failed"] == 0


def test_two_runs_differ_only_in_timings(tmp_path):
    reports = []
    for name in ("a.json", "b.json"):
        main(["check", "activations/sigmoid-derivative-is-s-times-one-minus-s", *FAST_CLAIMS,
              "--json", str(tmp_path / name)])
        report = json.loads((tmp_path / name).read_text())
        for entry in report["claims"]:
            entry.pop("seconds")
        report["summary"].pop("seconds")
        reports.append(report)
    assert reports[0] == reports[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "activation"], "unknown chapter 'activation'; valid chapters: activations"),
        (["check", "activations/no-such-claim"], "unknown claim id 'activations/no-such-claim'"),
        (["show", "alchemy"], "unknown chapter 'alchemy'; valid chapters: activations"),
        (["frobnicate"], "invalid choice"),
        (["check", "--jsn", "x"], "unrecognized arguments"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_a_failing_claim_makes_check_exit_1(monkeypatch, capsys, tmp_path):
    wrong = Claim("activations/deliberately-wrong", ("S001-11",), "x", "holds",
                  lambda: Evidence(verdict="refuted", method="symbolic", summary="the check disagrees"))
    monkeypatch.setitem(registry._CLAIMS, wrong.id, wrong)
    path = tmp_path / "r.json"
    assert main(["check", wrong.id, FAST_CLAIMS[0], "--json", str(path)]) == 1
    assert "FAILED activations/deliberately-wrong" in capsys.readouterr().out
    report = json.loads(path.read_text())
    assert [c["ok"] for c in report["claims"]] == [False, True]


def test_a_raising_claim_is_reported_and_the_run_goes_on(monkeypatch, tmp_path):
    def broken():
        raise RuntimeError("kaboom")

    raising = Claim("activations/raises", ("S001-11",), "x", "holds", broken)
    monkeypatch.setitem(registry._CLAIMS, raising.id, raising)
    path = tmp_path / "r.json"
    assert main(["check", raising.id, FAST_CLAIMS[0], "--json", str(path)]) == 1
    first, second = json.loads(path.read_text())["claims"]
    assert first["error"] == "RuntimeError: kaboom" and first["verdict"] is None
    assert second["ok"]


def test_the_module_entry_point_exits_2_on_an_unknown_name():
    done = subprocess.run([sys.executable, "-m", "derivations", "check", "nope"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("workbook: error: unknown chapter 'nope'; valid chapters: activations")
    assert done.stderr.count("\n") == 1
