"""The annotated notes: every non-blank line covered by exactly one entry, quotes verbatim, verdicts taken
from the claims they cite; and the consistency check objects to a broken annotation."""

import dataclasses
import json
from pathlib import Path

import pytest

from derivations import notes
from derivations.cli import main

RECORDED = notes.recorded_verdicts()
SHARED_SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


@pytest.mark.parametrize("file", notes.NOTE_FILES)
def test_the_annotation_of_each_note_is_consistent(file):
    assert notes.problems(file, notes.load(file), RECORDED) == []


@pytest.mark.parametrize("file", notes.NOTE_FILES)
def test_the_copy_of_each_note_is_the_source_note(file):
    if not SHARED_SEEDS.is_dir():
        pytest.skip("shared/seeds is not beside this checkout")
    assert (notes.HERE / file).read_bytes() == (SHARED_SEEDS / file).read_bytes()


def _first_statement(entries):
    index = next(i for i, e in enumerate(entries) if e.statements)
    return index, entries[index]


def test_a_missing_line_is_reported():
    entries = notes.load(notes.NOTE_FILES[0])
    dropped = entries[1]
    found = notes.problems(notes.NOTE_FILES[0], entries[:1] + entries[2:], RECORDED)
    assert f"line {dropped.first_line}: not covered by any entry" in "\n".join(found)


def test_a_wrong_quote_an_unknown_claim_and_a_wrong_verdict_are_reported():
    file = notes.NOTE_FILES[0]
    entries = notes.load(file)
    index, entry = _first_statement(entries)
    statement = entry.statements[0]
    for broken, message in [
        (dataclasses.replace(statement, quote="这句话不在笔记里"), "the quote does not occur"),
        (dataclasses.replace(statement, claims=("activations/no-such-claim",), verdict="holds"), "unknown claim ids"),
        (dataclasses.replace(statement, verdict="holds", claims=()), "must cite a claim"),
        (dataclasses.replace(statement, verdict="not-checkable", claims=(), reason=""), "needs a reason"),
    ]:
        changed = [*entries[:index], dataclasses.replace(entry, statements=(broken,)), *entries[index + 1:]]
        assert message in "\n".join(notes.problems(file, changed, RECORDED))
    cited = next(s for e in entries for s in e.statements if s.claims)
    other = next(v for v in ("holds", "qualified", "refuted") if v != RECORDED[cited.claims[0]])
    entry = next(e for e in entries if cited in e.statements)
    changed = [dataclasses.replace(e, statements=(dataclasses.replace(cited, verdict=other),)) if e is entry else e
               for e in entries]
    assert "but its first claim" in "\n".join(notes.problems(file, changed, RECORDED))


def test_an_assertion_without_statements_and_overlapping_entries_are_reported():
    file = notes.NOTE_FILES[0]
    entries = notes.load(file)
    index, entry = _first_statement(entries)
    bare = dataclasses.replace(entry, kind="assertion", statements=())
    assert "needs at least one statement" in "\n".join(notes.problems(file, [*entries[:index], bare,
                                                                              *entries[index + 1:]], RECORDED))
    assert "covered by two entries" in "\n".join(notes.problems(file, [*entries, entries[0]], RECORDED))


def test_notes_json_covers_every_non_blank_line(tmp_path):
    path = tmp_path / "notes.json"
    assert main(["notes", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["version"] == 1
    for file in notes.NOTE_FILES:
        spans = [(e["first_line"], e["last_line"]) for e in data["notes"] if e["file"] == file]
        wanted = [i for i, line in enumerate(notes.lines(file), 1) if line.strip()]
        assert all(any(a <= i <= b for a, b in spans) for i in wanted), file
    keys = {"quote", "gloss", "verdict", "claims", "reason"}
    assert all(set(s) == keys for e in data["notes"] for s in e["statements"])


@pytest.mark.parametrize(("argv", "message"), [
    (["notes", "009"], "unknown note '009'; valid notes: 000, 001"),
    (["notes", "--json", "/nonexistent-dir/n.json"], "does not exist"),
])
def test_notes_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
