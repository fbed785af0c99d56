"""What the book's pages call: the claims' results for this build, and Markdown that shows derivations,
evidence and the ledger. Every number and formula on a page comes from here, computed at build time.

All pages of one build share one run of the claims: the report is kept in ``WORKBOOK_RESULTS_DIR`` (the
book's ``conf.py`` sets it) under a hash of the sources of ``derivations/`` and ``models/``, so an edit
to either re-runs everything, and a page never shows evidence from other code than it was built with.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import sympy as sp

from derivations.chapters import CHAPTERS
from derivations.claims import claims_for, derivations_for
from derivations.runner import REPORT_VERSION, run_claims, summarize

ROOT = Path(__file__).resolve().parent.parent
VERDICT_BADGE = {"holds": "HOLDS", "qualified": "QUALIFIED", "refuted": "REFUTED", None: "ERROR"}


class Markdown(str):
    """A string that Jupyter (and so myst-nb) displays as Markdown, without importing IPython here."""

    def _repr_markdown_(self) -> str:
        return str(self)


def source_hash() -> str:
    """SHA-256 over the path and bytes of every ``*.py`` in ``derivations/`` and ``models/`` and of
    ``pyproject.toml`` (a dependency change can change results too)."""
    digest = hashlib.sha256()
    files = sorted(p for package in ("derivations", "models") for p in (ROOT / package).rglob("*.py"))
    for path in [*files, ROOT / "pyproject.toml"]:
        if path.is_file():
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def report(chapters: list[str] | tuple[str, ...] = CHAPTERS) -> dict[str, Any]:
    """The JSON report (design.md's schema) of the chapters' claims for the current sources.

    Each chapter runs once per build and is then reused from ``WORKBOOK_RESULTS_DIR``.
    """
    entries = [entry for chapter in chapters for entry in _chapter_entries(chapter)]
    return {"version": REPORT_VERSION, "claims": entries, "summary": summarize(entries)}


def _chapter_entries(chapter: str) -> list[dict[str, Any]]:
    folder = os.environ.get("WORKBOOK_RESULTS_DIR")
    cached = Path(folder) / f"claims-{source_hash()[:16]}-{chapter}.json" if folder else None
    if cached is not None and cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    entries = run_claims(claims_for([chapter])).as_json()["claims"]
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(entries, indent=1, ensure_ascii=False), encoding="utf-8")
    return entries


def chapter_claims(chapter: str) -> list[dict[str, Any]]:
    """This chapter's claim entries; raises, naming them, when any claim failed (so the build fails)."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; valid chapters: {', '.join(CHAPTERS)}")
    entries = report([chapter])["claims"]
    require_passing(entries)
    return entries


def require_passing(entries: list[dict[str, Any]]) -> None:
    failed = [c for c in entries if not c["ok"]]
    if failed:
        lines = [f"{c['id']}: {c['error'] or 'observed ' + str(c['verdict']) + ', expected ' + c['expected']}"
                 for c in failed]
        raise RuntimeError("claims failed, the book is not built on them:\n" + "\n".join(lines))


def math(obj: Any) -> str:
    """Display math for a SymPy object (or a list of them, one per line)."""
    items = obj if isinstance(obj, list | tuple) else [obj]
    return "\n\n".join(f"$$\n{sp.latex(item)}\n$$" for item in items)


def derivation(chapter: str, name: str) -> Markdown:
    """A chapter's derivation, by function name: its title and the SymPy result, typeset."""
    for step in derivations_for(chapter):
        if step.name == name:
            doc = " ".join(line.strip() for line in (step.func.__doc__ or "").strip().splitlines())
            return Markdown(f"**{doc}** (`{chapter}.{name}()`)\n\n{math(step.func())}")
    raise ValueError(f"chapter {chapter!r} has no derivation {name!r}")


def _number(x: float | None) -> str:
    return "—" if x is None else f"{x:.1e}"


def evidence(claim_id: str) -> Markdown:
    """One claim as the page shows it: what the note says, the verdict, the evidence, the correction."""
    chapter = claim_id.split("/", 1)[0]
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown claim id {claim_id!r}")
    entry = next((c for c in report([chapter])["claims"] if c["id"] == claim_id), None)
    if entry is None:
        raise ValueError(f"unknown claim id {claim_id!r}")
    require_passing([entry])
    lines = [
        f"> **{VERDICT_BADGE[entry['verdict']]}** · `{entry['id']}` · seeds {', '.join(entry['sources'])}",
        ">",
        f"> *The note says:* {entry['says']}",
        ">",
        f"> *Evidence ({entry['method']}):* {_escape(entry['summary'])}",
    ]
    numbers = []
    if entry["max_rel_err"] is not None or entry["max_abs_err"] is not None:
        numbers.append(f"max abs err {_number(entry['max_abs_err'])}, max rel err {_number(entry['max_rel_err'])}")
    if entry["samples"]:
        numbers.append(f"{entry['samples']} samples")
    if entry["dtype"]:
        numbers.append(entry["dtype"])
    if numbers:
        lines += [">", "> " + "; ".join(numbers)]
    if entry["tolerance"]:
        lines += [">", f"> *Tolerance:* {_escape(entry['tolerance'])}"]
    if entry["correction"]:
        lines += [">", f"> *Correction:* {_escape(entry['correction'])}"]
    return Markdown("\n".join(lines))


def claims_table(chapter: str) -> Markdown:
    """The chapter's claims in one table (slugs as plain text, so that they wrap at hyphens)."""
    rows = ["| claim | seeds | verdict | method | max rel err | samples |", "|---|---|---|---|---|---|"]
    for c in chapter_claims(chapter):
        rows.append(
            f"| {c['id'].split('/', 1)[1]} | {' '.join(c['sources'])} | {VERDICT_BADGE[c['verdict']]} "
            f"| {c['method']} | {_number(c['max_rel_err'])} | {c['samples'] or '—'} |"
        )
    return Markdown("\n".join(rows))


def ledger() -> Markdown:
    """Every claim of every chapter in one table: chapter (linked), claim, seeds, what the note says,
    verdict, the evidence summary. Slugs are plain text so that the browser can wrap them at hyphens."""
    entries = report()["claims"]
    require_passing(entries)
    rows = ["| chapter | claim | seeds | the note says | verdict | evidence |", "|---|---|---|---|---|---|"]
    for c in entries:
        chapter, slug = c["id"].split("/", 1)
        rows.append(
            f"| [{chapter}](chapters/{chapter}.md) | {slug} | {' '.join(c['sources'])} | {_escape(c['says'])} "
            f"| **{VERDICT_BADGE[c['verdict']]}** | {_escape(c['summary'])} |"
        )
    return Markdown("\n".join(rows))


def headline() -> Markdown:
    """Claim counts per verdict, for the landing page."""
    full = report()
    s = full["summary"]
    chapters = {c["chapter"] for c in full["claims"]}
    return Markdown(
        f"**{s['claims']} claims** in {len(chapters)} chapter{'s' if len(chapters) != 1 else ''}, "
        f"checked when this book was built: **{s['holds']}** hold, **{s['qualified']}** qualified, "
        f"**{s['refuted']}** refuted; {s['ok']} of {s['claims']} checks agree with the recorded verdict."
    )


def _escape(text: str) -> str:
    """Plain text for a Markdown table cell or quote: no pipes, no stray dollar math, one line."""
    return " ".join(text.replace("|", "\\|").replace("$", "\\$").split())
