"""The notes, annotated line by line: every non-blank line of the five source notes is covered by one entry
that says what kind of line it is and, for the statements it makes, what the workbook established.

The data is one TOML file per note, ``derivations/annotations/<prefix>.toml`` (reviewable in a diff), beside
a copy of the note itself (``<file>.txt``, identical to ``shared/seeds/``)::

    [[entry]]
    lines = [7, 7]
    kind = "question"
    question = "S000-02"           # the seed index's id, on the entry that asks the question
    gloss = "How to choose convolution kernels"

    [[entry]]
    lines = [8, 8]                 # first and last line, numbered from 1 as in the file
    kind = "assertion"             # heading question assertion formula table code reference advice other
    [[entry.statements]]
    quote = '三个3\\*3的卷积核相当于一个7\\*7'   # the note's words, verbatim (a TOML literal string)
    gloss = "Three stacked 3x3 convolutions see what one 7x7 sees."
    verdict = "holds"              # from the first claim cited, or "not-checkable" with a reason
    claims = ["architectures/three-3x3-convs-see-what-one-7x7-sees"]

A statement's verdict is the verdict of the first claim it cites (the consistency tests compare it with the
registry and with the report); a statement with nothing to compute is ``not-checkable`` with its ``reason``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "annotations"
NOTE_FILES: tuple[str, ...] = (
    "000_c016968a88fa59c0.txt", "001_615c38c4d05adb92.txt", "002_d3753e17707acfe2.txt",
    "003_999ae0f969f47503.txt", "004_05639a3bc28a7237.txt",
)  # fmt: skip
KINDS = ("heading", "question", "assertion", "formula", "table", "code", "reference", "advice", "other")
STATEMENT_KINDS = ("assertion", "formula", "table")  # kinds whose entries make statements
VERDICTS = ("holds", "qualified", "refuted", "not-checkable")
NOTES_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Statement:
    quote: str
    gloss: str
    verdict: str
    claims: tuple[str, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"quote": self.quote, "gloss": self.gloss, "verdict": self.verdict, "claims": list(self.claims),
                "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Entry:
    file: str
    first_line: int
    last_line: int
    kind: str
    statements: tuple[Statement, ...] = ()
    question: str | None = None  # on the entry that asks a question of the seed index: its id (S001-06)
    gloss: str | None = None  # an English rendering of that question

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "first_line": self.first_line, "last_line": self.last_line, "kind": self.kind,
                "question": self.question, "gloss": self.gloss, "statements": [s.as_dict() for s in self.statements]}


def resolve(name: str) -> str:
    """A note's file name from its name, stem or three-digit prefix (``000``, ``S000``); ValueError if none."""
    key = name.strip().removeprefix("S")
    for file in NOTE_FILES:
        if key in (file, file.removesuffix(".txt"), file[:3]):
            return file
    raise ValueError(f"unknown note {name!r}; valid notes: {', '.join(f[:3] for f in NOTE_FILES)} "
                     f"(or a file name such as {NOTE_FILES[0]})")


def lines(file: str) -> list[str]:
    """The note's lines (index 0 is line 1)."""
    return (HERE / file).read_text(encoding="utf-8").splitlines()


def annotation_path(file: str) -> Path:
    return HERE / f"{file[:3]}.toml"


def load(file: str) -> list[Entry]:
    """The entries of one note, in line order; a malformed field is a ValueError naming the entry."""
    path = annotation_path(file)
    if not path.is_file():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for number, raw in enumerate(data.get("entry", []), 1):
        where = f"{path.name} entry {number}"
        span = raw.get("lines")
        if isinstance(span, int):
            span = [span, span]
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)):
            raise ValueError(f"{where}: lines must be [first, last], got {span!r}")
        statements = []
        for s in raw.get("statements", []):
            unknown = set(s) - {"quote", "gloss", "verdict", "claims", "reason"}
            if unknown:
                raise ValueError(f"{where}: unknown statement fields {sorted(unknown)}")
            statements.append(Statement(str(s.get("quote", "")), str(s.get("gloss", "")), str(s.get("verdict", "")),
                                        tuple(s.get("claims", ())), s.get("reason")))
        unknown = set(raw) - {"lines", "kind", "statements", "question", "gloss"}
        if unknown:
            raise ValueError(f"{where}: unknown entry fields {sorted(unknown)}")
        entries.append(Entry(file, span[0], span[1], str(raw.get("kind", "")), tuple(statements),
                             raw.get("question"), raw.get("gloss")))
    return sorted(entries, key=lambda e: (e.first_line, e.last_line))


def load_all(files: tuple[str, ...] | list[str] = NOTE_FILES) -> list[Entry]:
    return [e for file in files for e in load(file)]


def problems(file: str, entries: list[Entry], recorded: dict[str, str]) -> list[str]:
    """Everything wrong with a note's annotation (empty when consistent). ``recorded`` maps every claim id to
    its verdict (the registry's expected verdict, or the report's computed one)."""
    text = lines(file)
    out = []
    covered: dict[int, int] = {}
    for index, e in enumerate(entries):
        where = f"{file} lines {e.first_line}-{e.last_line}"
        if not 1 <= e.first_line <= e.last_line <= len(text):
            out.append(f"{where}: outside the file's {len(text)} lines")
            continue
        for line in range(e.first_line, e.last_line + 1):
            if text[line - 1].strip():
                if line in covered:
                    out.append(f"{file} line {line}: covered by two entries")
                covered[line] = index
        if e.kind not in KINDS:
            out.append(f"{where}: kind {e.kind!r} is not one of {KINDS}")
        if e.kind == "assertion" and not e.statements:
            out.append(f"{where}: an assertion entry needs at least one statement")
        if e.question is not None and not (e.question.startswith(f"S{file[:3]}-") and len(e.question) == 7):
            out.append(f"{where}: question {e.question!r} is not a question id of this note (S{file[:3]}-NN)")
        body = "\n".join(text[e.first_line - 1:e.last_line])
        flat = " ".join(body.split())
        for s in e.statements:
            label = f"{where}: statement {s.quote[:30]!r}"
            if not s.quote or (s.quote not in body and " ".join(s.quote.split()) not in flat):
                out.append(f"{label}: the quote does not occur in these lines")
            if not s.gloss.strip():
                out.append(f"{label}: no gloss")
            if s.verdict not in VERDICTS:
                out.append(f"{label}: verdict {s.verdict!r} is not one of {VERDICTS}")
            unknown = [c for c in s.claims if c not in recorded]
            if unknown:
                out.append(f"{label}: unknown claim ids {unknown}")
            if s.verdict == "not-checkable":
                if not (s.reason or "").strip():
                    out.append(f"{label}: not-checkable needs a reason")
            elif not s.claims:
                out.append(f"{label}: a checkable statement must cite a claim")
            elif s.claims[0] in recorded and recorded[s.claims[0]] != s.verdict:
                out.append(f"{label}: verdict {s.verdict} but its first claim {s.claims[0]} is {recorded[s.claims[0]]}")
    for line, content in enumerate(text, 1):
        if content.strip() and line not in covered:
            out.append(f"{file} line {line}: not covered by any entry")
    return out


def by_question(files: tuple[str, ...] | list[str] = NOTE_FILES) -> dict[str, list[Entry]]:
    """Question id -> the entries from the one that asks it up to the next question (its answer)."""
    out: dict[str, list[Entry]] = {}
    for file in files:
        current = None
        for e in load(file):
            if e.question:
                current = e.question
            if current:
                out.setdefault(current, []).append(e)
    return out


def recorded_verdicts() -> dict[str, str]:
    """Every claim id and its recorded verdict on this backend (from the registry: no claim runs)."""
    import jax

    from derivations.claims import all_claims

    backend = jax.default_backend()
    return {c.id: c.expected_on(backend) for c in all_claims()}


def counts(entries: list[Entry]) -> dict[str, int]:
    statements = [s for e in entries for s in e.statements]
    return {"entries": len(entries), "statements": len(statements), **{v: sum(s.verdict == v for s in statements)
                                                                        for v in VERDICTS}}


def as_json(entries: list[Entry]) -> dict[str, Any]:
    return {"version": NOTES_VERSION, "notes": [e.as_dict() for e in entries]}
