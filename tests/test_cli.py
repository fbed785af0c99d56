"""The command line: its output, its JSON contract (version 3) and its exit codes."""

import json
import subprocess
import sys

import pytest
import sympy as sp

from derivations import claims as registry
from derivations import displayed, runner
from derivations.claims import Claim, core, derivations_for, evidence
from derivations.cli import main

FAST_CLAIMS = ["schedules/step-decay-matches-its-closed-form", "schedules/warmup-is-rise-flat-fall"]
CLAIM_KEYS = {"id", "chapter", "sources", "says", "expected", "verdict", "ok", "method", "max_abs_err",
              "max_rel_err", "samples", "dtype", "seconds", "summary", "details", "findings", "scope", "correction",
              "tolerance", "error"}
SUMMARY_KEYS = {"claims", "ok", "failed", "holds", "qualified", "refuted", "seconds", "equations",
                "equations_unchecked"}


def _claim(claim_id, expected, check):
    correction = None if expected == "holds" else "a correction"
    return Claim(claim_id, ("S001-11",), "x", expected, check, {"x": [0, 1]}, correction)


def test_list_shows_the_chapters(capsys):
    assert main(["list"]) == 0
    assert "schedules" in capsys.readouterr().out


def test_show_prints_derivations_and_claims(capsys):
    assert main(["show", "schedules"]) == 0
    out = capsys.readouterr().out
    assert "Linear warm-up from eta_0 to eta_max" in out
    assert "schedules/warmup-is-rise-flat-fall" in out


def test_check_writes_the_documented_json(tmp_path):
    path = tmp_path / "report.json"
    assert main(["check", *FAST_CLAIMS, "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["version"] == 3
    assert set(report["summary"]) >= SUMMARY_KEYS
    assert [c["id"] for c in report["claims"]] == FAST_CLAIMS
    for entry in report["claims"]:
        assert set(entry) >= CLAIM_KEYS
        assert entry["ok"] is True and entry["error"] is None
        assert entry["method"] in {"symbolic", "autodiff", "measurement"}
        keys = {"proposition", "role", "held", "figures"}
        assert entry["findings"] and all(set(f) == keys for f in entry["findings"])
        assert entry["scope"] and set(entry["tolerance"]) == {"rtol", "atol", "reason"}
    assert [c["verdict"] for c in report["claims"]] == ["holds", "qualified"]
    assert report["summary"]["claims"] == 2 and report["summary"]["failed"] == 0


def test_a_whole_chapter_verifies_its_displayed_equations(tmp_path):
    path = tmp_path / "report.json"
    assert main(["check", "schedules", "--jobs", "1", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["derivations"] and all(d["ok"] for d in report["derivations"])
    assert {d["derivation"] for d in report["derivations"]} >= {"warmup_cosine", "warmup_cosine_slopes"}
    # The book typesets the report's LaTeX: it must be the derivation's own items, in order.
    for step in derivations_for("schedules"):
        shown = [d["latex"] for d in report["derivations"] if d["derivation"] == step.name]
        assert shown == [sp.latex(item) for item in displayed.items(step.func())]


def _without_seconds(report):
    for entry in report["claims"]:
        entry.pop("seconds")
    report["summary"].pop("seconds")
    return report


def test_two_runs_differ_only_in_seconds(tmp_path):
    reports = []
    for name in ("a.json", "b.json"):
        assert main(["check", *FAST_CLAIMS, "--json", str(tmp_path / name)]) == 0
        reports.append(_without_seconds(json.loads((tmp_path / name).read_text())))
    assert reports[0] == reports[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "schedule"], "unknown chapter 'schedule'; valid chapters: activations"),
        (["check", "schedules/no-such-claim"], "unknown claim id 'schedules/no-such-claim'"),
        (["show", "alchemy"], "unknown chapter 'alchemy'; valid chapters: activations"),
        (["frobnicate"], "invalid choice"),
        (["check", "--jsn", "x"], "unrecognized arguments"),
        (["check", "--jobs", "0", "schedules"], "--jobs must be at least 1, got 0"),
        (["check", "--jobs", "two"], "invalid int value"),
        (["check", "schedules", "--json", "/nonexistent-dir/x.json"], "folder /nonexistent-dir does not exist"),
        (["check", "schedules", "--json", "/tmp"], "is a directory"),
        (["check", "--reuse", "schedules"], "--reuse applies to the whole ledger only"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_claim_runs(argv, message, capsys, monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("a claim ran before the usage error was reported")

    monkeypatch.setattr("derivations.runner.run", no_run)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_reuse_shows_the_stored_report_without_running_a_claim(monkeypatch, capsys, tmp_path):
    stored = runner.run([FAST_CLAIMS[0]], jobs=1)

    def no_run(*args, **kwargs):
        raise AssertionError("--reuse ran the claims although the stored report is current")

    monkeypatch.setattr("derivations.runner.stored_report", lambda *a, **k: stored)
    monkeypatch.setattr("derivations.runner.run", no_run)
    path = tmp_path / "r.json"
    assert main(["check", "--reuse", "--json", str(path)]) == 0
    assert "no claim re-run" in capsys.readouterr().out
    assert json.loads(path.read_text())["claims"] == stored["claims"]
    # With no current report, --reuse runs the claims.
    monkeypatch.setattr("derivations.runner.stored_report", lambda *a, **k: None)
    with pytest.raises(AssertionError, match="ran the claims"):
        main(["check", "--reuse"])


def test_a_failing_claim_makes_check_exit_1(monkeypatch, capsys, tmp_path):
    wrong = _claim("schedules/deliberately-wrong", "holds",
                   lambda: evidence("symbolic", core("the check disagrees", False)))
    monkeypatch.setitem(registry._CLAIMS, wrong.id, wrong)
    path = tmp_path / "r.json"
    assert main(["check", wrong.id, FAST_CLAIMS[0], "--json", str(path)]) == 1
    assert "FAILED schedules/deliberately-wrong" in capsys.readouterr().out
    report = json.loads(path.read_text())
    assert [c["ok"] for c in report["claims"]] == [False, True]
    assert report["claims"][0]["verdict"] == "refuted"


def test_a_raising_claim_is_reported_and_the_run_goes_on(monkeypatch, tmp_path):
    def broken():
        raise RuntimeError("kaboom")

    raising = _claim("schedules/raises", "holds", broken)
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


def test_parallel_workers_give_the_same_report_in_reading_order(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    # Two chapters, so that --jobs 2 really starts two workers (one chapter runs in one).
    names = ["schedules/step-decay-matches-its-closed-form", "activations/sigmoid-derivative-is-s-times-one-minus-s",
             "schedules/exponential-decay-matches-its-closed-form"]
    assert main(["check", *names, "--jobs", "1", "--json", str(one)]) == 0
    assert main(["check", *names, "--jobs", "2", "--json", str(two)]) == 0
    assert _without_seconds(json.loads(one.read_text())) == _without_seconds(json.loads(two.read_text()))
    reading_order = [c.id for c in registry.claims_for(["activations", "schedules"]) if c.id in names]
    assert [c["id"] for c in json.loads(two.read_text())["claims"]] == reading_order


def test_the_workers_report_every_claim_as_it_ends():
    seen = []
    names = ["schedules/step-decay-matches-its-closed-form", "activations/sigmoid-derivative-is-s-times-one-minus-s"]
    report = runner.run(names, jobs=2, on_claim=lambda claim_id, ok: seen.append((claim_id, ok)))
    assert sorted(seen) == sorted((c["id"], True) for c in report["claims"]) and len(seen) == 2


# --- finding, explaining and quizzing (issue 21) ------------------------------------------------------------


def _run(argv, columns=80):
    env = {**__import__("os").environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "derivations", *argv], capture_output=True, text=True, env=env)


def test_list_prints_every_matching_id_whole_at_80_columns():
    done = _run(["list", "--chapter", "schedules"])
    assert done.returncode == 0
    for claim in registry.claims_for(["schedules"]):
        assert any(claim.id in line for line in done.stdout.splitlines()), claim.id
    assert "4 claims" in done.stdout


def test_list_filters_by_verdict_seed_and_text(capsys):
    assert main(["list", "--verdict", "qualified", "--chapter", "schedules"]) == 0
    out = capsys.readouterr().out
    assert "schedules/warmup-is-rise-flat-fall" in out and "step-decay" not in out
    assert main(["list", "--seed", "S002-43", "warm"]) == 0
    out = capsys.readouterr().out
    assert "schedules/warmup-cosine-matches-its-closed-form" in out and "exponential" not in out


def test_explain_shows_says_scope_findings_and_correction(capsys):
    assert main(["explain", "schedules/warmup-is-rise-flat-fall"]) == 0
    out = capsys.readouterr().out
    for part in ("says:", "scope:", "findings:", "correction:", "page:", "qualified"):
        assert part in out


def test_a_question_id_names_the_claims_that_cite_it(capsys):
    assert main(["show", "S002-43"]) == 0
    assert "schedules/warmup-is-rise-flat-fall" in capsys.readouterr().out


def test_a_near_miss_gets_a_suggestion_and_exit_2(capsys):
    assert main(["explain", "schedules/warmup-is-rise-flat-fal"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'schedules/warmup-is-rise-flat-fall'" in err and err.count("\n") == 1


def test_an_old_id_still_resolves():
    [claim] = registry.claims_for(["pooling/max-pooling-is-invariant-to-translation-scale-rotation"])
    assert claim.id == "pooling/max-pooling-is-approximately-invariant-to-small-translations"


def test_every_old_id_resolves_to_a_live_claim_and_none_is_reused():
    registry.claims_for([])  # loads every chapter
    live = {c.id for c in registry.all_claims()}
    assert len(registry.ALIASES) >= 20
    for old, new in registry.ALIASES.items():
        assert new in live and old not in live
        assert [c.id for c in registry.claims_for([old])] == [new]


def test_the_anki_deck_has_one_note_per_claim_with_stable_ids(tmp_path):
    import sqlite3
    import zipfile

    path = tmp_path / "deck.apkg"
    assert main(["quiz", "--chapter", "schedules", "--anki", str(path)]) == 0
    with zipfile.ZipFile(path) as package:
        package.extract("collection.anki2", tmp_path)
    rows = sqlite3.connect(tmp_path / "collection.anki2").execute("select guid, flds from notes").fetchall()
    assert len(rows) == len(registry.claims_for(["schedules"]))
    again = tmp_path / "again.apkg"
    assert main(["quiz", "--chapter", "schedules", "--anki", str(again)]) == 0
    with zipfile.ZipFile(again) as package:
        package.extract("collection.anki2", tmp_path / "b")
    rows_again = sqlite3.connect(tmp_path / "b" / "collection.anki2").execute("select guid, flds from notes").fetchall()
    assert sorted(g for g, _ in rows) == sorted(g for g, _ in rows_again)


def test_the_quiz_keeps_the_score(monkeypatch):
    from derivations import quiz

    claims = quiz.pick(chapter="schedules")
    answers = iter("h" if c.expected == "holds" else "q" for c in claims)
    said = []
    right, asked = quiz.run(claims, lambda prompt: next(answers), said.append)
    assert (right, asked) == (len(claims), len(claims)) and said[-1].endswith(f"{right}/{asked}")
