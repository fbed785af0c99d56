"""What the book's pages call: the claims' report for the current sources, and Markdown that shows
derivations, evidence and the ledger. Every number and formula on a page comes from here.

All pages read one report, :func:`derivations.runner.current_report`: the one ``workbook check`` wrote for the
same sources, or (when there is none) one run of every claim made and stored by the first page that needs
it. So the JSON a user gets and the evidence the book shows are the same bytes apart from ``seconds``.
"""

from __future__ import annotations

import re
from typing import Any

from derivations import bridge, runner
from derivations.chapters import CHAPTERS
from derivations.claims import derivations_for

source_hash = runner.source_hash
ROOT = runner.ROOT
VERDICT_BADGE = {"holds": "HOLDS", "qualified": "QUALIFIED", "refuted": "REFUTED", "invalid": "INVALID", None: "ERROR"}


class Markdown(str):
    """A string that Jupyter (and so myst-nb) displays as Markdown, without importing IPython here."""

    def _repr_markdown_(self) -> str:
        return str(self)


@bridge.cache
def _full_report() -> dict[str, Any]:
    return runner.current_report()


def report(chapters: list[str] | tuple[str, ...] = CHAPTERS) -> dict[str, Any]:
    """The report (design.md's schema) restricted to ``chapters``."""
    unknown = [c for c in chapters if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapter {unknown[0]!r}; valid chapters: {', '.join(CHAPTERS)}")
    full = _full_report()
    entries = [e for e in full["claims"] if e["chapter"] in chapters]
    checks = [d for d in full["derivations"] if d["chapter"] in chapters]
    return {**full, "claims": entries, "derivations": checks, "summary": runner.summarize(entries, checks)}


def chapter_claims(chapter: str) -> list[dict[str, Any]]:
    """This chapter's claim entries; raises, naming them, when any claim failed or a displayed equation is
    unchecked (so the build fails)."""
    part = report([chapter])
    require_passing(part["claims"], part["derivations"])
    return part["claims"]


def require_passing(entries: list[dict[str, Any]], checks: list[dict[str, Any]] = ()) -> None:
    lines = [f"{c['id']}: {c['error'] or 'observed ' + str(c['verdict']) + ', expected ' + str(c['expected'])}"
             for c in entries if not c["ok"]]
    lines += [f"{d['chapter']}.{d['derivation']}()[{d['index']}] is displayed but unchecked: {d['item']}"
              for d in checks if not d["ok"]]
    if lines:
        raise RuntimeError("claims failed, the book is not built on them:\n" + "\n".join(lines))


def derivation(chapter: str, name: str) -> Markdown:
    """A chapter's derivation, by function name: its title and its items as the report holds them (the SymPy
    objects that were verified when the claims ran, typeset then), with how each was verified. Nothing is
    derived again for the page, so it shows exactly what was checked."""
    for step in derivations_for(chapter):
        if step.name == name:
            doc = " ".join(line.strip() for line in (step.func.__doc__ or "").strip().splitlines())
            checks = sorted((d for d in report([chapter])["derivations"] if d["derivation"] == name),
                            key=lambda d: d["index"])
            if not checks:
                raise ValueError(f"the report holds no displayed item of {chapter}.{name}(); run the claims")
            require_passing([], checks)
            how = sorted({d["verified_by"] for d in checks})
            note = f"\n\n<small>Verified when the claims ran: {escape('; '.join(how))}.</small>"
            shown = "\n\n".join(f"$$\n{d['latex']}\n$$" for d in checks)
            return Markdown(f"**{_docstring(doc)}** (`{chapter}.{name}()`)\n\n{shown}{note}")
    raise ValueError(f"chapter {chapter!r} has no derivation {name!r}")


def _number(x: float | None) -> str:
    return "—" if x is None else f"{x:.1e}"


def entry(claim_id: str) -> dict[str, Any]:
    """The report entry of one claim (raises when it failed)."""
    chapter = claim_id.split("/", 1)[0]
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown claim id {claim_id!r}")
    found = next((c for c in report([chapter])["claims"] if c["id"] == claim_id), None)
    if found is None:
        raise ValueError(f"unknown claim id {claim_id!r}")
    require_passing([found])
    return found


_SHOWN: set[str] = set()  # the claims whose evidence this page (this kernel) has shown


def evidence(claim_id: str) -> Markdown:
    """One claim as the page shows it: what the note says, the verdict computed from the findings, each
    finding with its role and figures, the scope searched, the tolerance, the correction."""
    e = entry(claim_id)
    _SHOWN.add(e["id"])
    slug = e["id"].split("/", 1)[1]
    badge = VERDICT_BADGE[e["verdict"]]
    # Index entries (main ones, marked "!") make the claim's id and its question ids appear in the book's
    # index and rank this box first when the book's search is given either id.
    entries = [e["id"], *e["sources"]]
    from derivations.claims import ALIASES

    # An old id's anchor stays, so that links made before a rename still land on the claim.
    old = [f'<span id="{a.split("/", 1)[1]}"></span>' for a, new in ALIASES.items() if new == e["id"]]
    lines = [
        f'<span id="{slug}"></span>' + "".join(old),
        "",
        *(line for name in entries for line in (f":::{{index}} !single: {name}", ":::")),
        "",
        f":::{{admonition}} {badge} · {e['id']}",
        f":class: claim claim-{e['verdict']}",
        "",
        f"**The note says** ({', '.join(e['sources'])}): {escape(e['says'])}",
        "",
        f"**Findings** ({e['method']}; the verdict follows from them):",
        "",
    ]
    for f in e["findings"]:
        mark = "✓" if f["held"] else "✗"
        figures = _figures(f["figures"])
        tail = f" — {escape(figures)}" if figures else ""
        lines.append(f"- {mark} *{f['role']}*: {escape(f['proposition'])}{tail}")
    lines += ["", f"**Scope searched:** {escape(_scope(e['scope']))}"]
    tol = e["tolerance"]
    if tol["reason"] or tol["rtol"] != 1e-10 or tol["atol"]:
        lines += ["", f"**Tolerance:** rtol {tol['rtol']:g}, atol {tol['atol']:g}"
                  + (f" — {escape(tol['reason'])}" if tol["reason"] else "")]
    if e["correction"]:
        lines += ["", f"**Correction:** {prose(e['correction'])}"]
    lines += [":::"]
    return Markdown("\n".join(lines))


def _figures(figures: dict[str, Any]) -> str:
    shown = []
    for key, v in figures.items():
        if key in ("worst", "rtol", "atol") or isinstance(v, dict | list):
            continue
        if isinstance(v, float):
            v = f"{v:.3g}"
        shown.append(f"{key.replace('_', ' ')} {v}")
    return ", ".join(shown)


def _scope(scope: dict[str, Any]) -> str:
    return "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in scope.items())


def claims_table(chapter: str) -> Markdown:
    """The chapter's claims in one table, each linked to its evidence; the evidence of claims the page has not
    shown yet (claims added while annotating the notes) follows the table, so every link has its anchor."""
    claims = chapter_claims(chapter)
    rows = ["| claim | seeds | verdict | method | max rel err | samples |", "|---|---|---|---|---|---|"]
    for c in claims:
        slug = c["id"].split("/", 1)[1]
        rows.append(
            f'| <a href="#{slug}">{_html(slug)}</a> | {" ".join(c["sources"])} | {badge(c["verdict"])} '
            f"| {c['method']} | {_number(c['max_rel_err'])} | {c['samples'] or '—'} |"
        )
    rest = [evidence(c["id"]) for c in claims if c["id"] not in _SHOWN]
    more = ["", "### More claims of this chapter", "", "\n\n".join(rest)] if rest else []
    return Markdown("\n".join(rows + more))


def ledger() -> Markdown:
    """Every claim of every chapter in one filterable, sortable table (``book/_static/ledger.js``): chapter,
    claim (linked to its evidence), seeds, what the note says, verdict badge, correction, evidence summary.
    Filters also work from the URL: ``ledger.html?verdict=refuted&chapter=losses&seed=S002-41&q=batchnorm``."""
    from derivations.claims import ALIASES

    full = report()
    require_passing(full["claims"], full["derivations"])
    old_ids: dict[str, list[str]] = {}
    for old, new in ALIASES.items():
        old_ids.setdefault(new, []).append(old)
    chapters = "".join(f'<option value="{c}">{c}</option>' for c in CHAPTERS)
    verdicts = "".join(f'<option value="{v}">{v}</option>' for v in ("holds", "qualified", "refuted"))
    html = [
        '<div id="ledger-tool" class="ledger-tool">',
        '<form class="ledger-filters" role="search" onsubmit="return false">',
        '<label>verdict <select name="verdict"><option value="">any</option>' + verdicts + "</select></label>",
        '<label>chapter <select name="chapter"><option value="">any</option>' + chapters + "</select></label>",
        '<label>question <input name="seed" size="8" placeholder="S002-41"></label>',
        '<label>text <input name="q" size="16" placeholder="batchnorm"></label>',
        '<output class="ledger-count" aria-live="polite"></output>',
        "</form>",
        '<table class="ledger"><thead><tr><th data-sort>chapter</th><th data-sort>claim</th><th data-sort>seeds</th>'
        "<th>the note says</th><th data-sort>verdict</th><th>correction</th><th>evidence</th></tr></thead><tbody>",
    ]
    for c in full["claims"]:
        chapter, slug = c["id"].split("/", 1)
        ids = " ".join([c["id"], *old_ids.get(c["id"], [])])
        html.append(
            f'<tr data-verdict="{c["verdict"]}" data-chapter="{chapter}" data-seeds="{" ".join(c["sources"])}" '
            f'data-ids="{_html(ids)}">'
            f'<td data-label="chapter"><a href="chapters/{chapter}.html">{chapter}</a></td>'
            f'<td data-label="claim"><a href="{claim_url(c["id"], "")}">{_html(slug)}</a></td>'
            f'<td data-label="seeds">{" ".join(c["sources"])}</td>'
            f'<td data-label="the note says">{_html(c["says"])}</td>'
            f'<td data-label="verdict" data-value="{c["verdict"]}">{badge(c["verdict"])}</td>'
            f'<td data-label="correction">{_emphasis_html(_html(c["correction"] or "—"))}</td>'
            f'<td data-label="evidence">{_html(c["summary"])}</td></tr>'
        )
    html += ["</tbody></table>", "</div>"]
    return Markdown("\n".join(html))


def corrections() -> Markdown:
    """Every qualified and refuted claim as the note's statement and its correction, grouped by chapter."""
    full = report()
    out = []
    for chapter in CHAPTERS:
        mine = [c for c in full["claims"] if c["chapter"] == chapter and c["verdict"] in ("qualified", "refuted")]
        if not mine:
            continue
        out.append(f"## {chapter.replace('_', ' ').capitalize()}\n")
        for c in mine:
            out.append(f"- {badge(c['verdict'], claim_url(c['id'], ''))} "
                       f"**{escape(c['says'])}** ({', '.join(c['sources'])}) → {prose(c['correction'])}\n")
    return Markdown("\n".join(out))


def _html(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("$", "&#36;"))


def headline() -> Markdown:
    """Claim counts per verdict, for the landing page."""
    full = report()
    s = full["summary"]
    chapters = {c["chapter"] for c in full["claims"]}
    links = {v: f'<a href="ledger.html?verdict={v}">{s[v]} {word}</a>'
             for v, word in (("holds", "hold"), ("qualified", "qualified"), ("refuted", "refuted"))}
    return Markdown(
        f"**{s['claims']} claims** in {len(chapters)} chapter{'s' if len(chapters) != 1 else ''}, "
        f"checked when this book was built: {links['holds']}, {links['qualified']}, {links['refuted']}; "
        f"{s['ok']} of {s['claims']} checks agree with the recorded verdict; "
        f"{s['equations'] - s['equations_unchecked']} of {s['equations']} displayed equations verified."
    )


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$#!~])")


def escape(text: str) -> str:
    """Plain text for Markdown: one line, every character Markdown would read as markup escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


_escape = escape

# *word* or *a few words* as emphasis: the opening star after a space or an opening bracket (so b*h*w stays a
# product), the closing one before a space or punctuation.
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def prose(text: str) -> str:
    """Like :func:`escape`, but the text's ``*emphasis*`` stays emphasis (the corrections are written so)."""
    text, out, last = " ".join(str(text).split()), [], 0
    mark = lambda piece: _MARKDOWN_SPECIAL.sub(r"\\\1", piece)  # noqa: E731
    for m in _EMPHASIS.finditer(text):
        out += [mark(text[last:m.start()]), "*" + mark(m.group(1)) + "*"]
        last = m.end()
    return "".join([*out, mark(text[last:])])


def _docstring(text: str) -> str:
    """A docstring's one line for Markdown: its ``literals`` as code, the rest escaped."""
    pieces = re.split(r"``(.+?)``", " ".join(str(text).split()))
    return "".join(f"`{p}`" if k % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", p) for k, p in enumerate(pieces))


def _emphasis_html(text: str) -> str:
    """``*emphasis*`` in already-escaped HTML as <em>."""
    return _EMPHASIS.sub(r"<em>\1</em>", text)


# --- the notes, annotated ------------------------------------------------------------------------------

_MATH = re.compile(r"(\$\$.+?\$\$|\$[^$\n]+?\$)", re.S)
NOTE_BADGE = {**VERDICT_BADGE, "not-checkable": "NOT CHECKABLE"}


def _note_text(text: str) -> str:
    """A note's own Markdown shown as text, line by line, with its $...$ math kept for MathJax."""
    parts = []
    for i, piece in enumerate(_MATH.split(text)):
        if i % 2:
            parts.append(piece)
        else:
            parts.append("\\\n".join(_plain_line(line) for line in piece.split("\n")))
    return "".join(parts).strip().removesuffix("\\")


def _plain_line(line: str) -> str:
    """One line of a note as literal text: inline markup escaped, and a leading list or heading marker too."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", line.strip())
    return re.sub(r"^([-+]|\d+[.)])", r"\\\1", text)


def claim_url(claim_id: str, prefix: str = "../") -> str:
    chapter, slug = claim_id.split("/", 1)
    return f"{prefix}chapters/{chapter}.html#{slug}"


def badge(verdict: str | None, href: str | None = None) -> str:
    """An accessible verdict badge (its word, not colour alone), as inline HTML."""
    label = NOTE_BADGE.get(verdict, str(verdict).upper())
    css = f"badge verdict verdict-{verdict or 'error'}"
    return f'<a class="{css}" href="{href}">{label}</a>' if href else f'<span class="{css}">{label}</span>'


def annotated_note(name: str) -> Markdown:
    """One note, line by line: the original text, and beside it each statement's gloss with its verdict badge
    linking to the claim that settles it (or the reason it is not checkable)."""
    from derivations import notes

    file = notes.resolve(name)
    text = notes.lines(file)
    out = []
    for e in notes.load(file):
        span = f"{e.first_line}" if e.first_line == e.last_line else f"{e.first_line}–{e.last_line}"
        original = _note_text("\n".join(text[e.first_line - 1:e.last_line]))
        out += [f"::::{{container}} note-entry note-{e.kind}", ":::{container} note-original",
                f'<span class="note-line">{span}</span> {original}', ":::"]
        if e.statements:
            out += [":::{container} note-statements", ""]
            for s in e.statements:
                links = " ".join(f'<a class="claim-link" href="{claim_url(c)}">{c}</a>' for c in s.claims)
                target = claim_url(s.claims[0]) if s.claims else None
                why = f" — <em>{escape(s.reason)}</em>" if s.verdict == "not-checkable" and s.reason else ""
                out.append(f"- {badge(s.verdict, target)} {escape(s.gloss)}{why} {links}".rstrip())
            out += ["", ":::"]
        else:
            out += [":::{container} note-kind", f"<span class=\"note-kind-label\">{e.kind}</span>", ":::"]
        out += ["::::", ""]
    return Markdown("\n".join(out))


def notes_summary(name: str | None = None) -> Markdown:
    """Lines, entries, statements and verdict counts per note (one note, or all)."""
    from derivations import notes

    files = [notes.resolve(name)] if name else list(notes.NOTE_FILES)
    rows = ["| note | lines | statements | " + " | ".join(notes.VERDICTS) + " |",
            "|---|---|---|" + "---|" * len(notes.VERDICTS)]
    for file in files:
        c = notes.counts(notes.load(file))
        lines_ = sum(1 for line in notes.lines(file) if line.strip())
        link = f"[{file}]({file[:3]}.md)" if name is None else file
        verdicts = " | ".join(str(c[v]) for v in notes.VERDICTS)
        rows.append(f"| {link} | {lines_} | {c['statements']} | {verdicts} |")
    return Markdown("\n".join(rows))


def questions(chapter: str, extra: tuple[str, ...] = ()) -> Markdown:
    """The questions of the notes this chapter answers (every question its claims cite, and ``extra``): id (an
    anchor, ``#S002-41``), the question as the note words it, a gloss, and the verdicts of the statements the
    note makes in its answer (from the annotated notes), each linked to the claim that settles it."""
    from derivations import notes, quiz

    ids = sorted({s for c in chapter_claims(chapter) for s in c["sources"]} | set(extra))
    answers, index = notes.by_question(), quiz.questions()
    rows = ['<table class="questions"><thead><tr><th>id</th><th>the note (original)</th><th>gloss</th>'
            "<th>what the note says there</th></tr></thead><tbody>"]
    for qid in ids:
        entries = answers.get(qid, [])
        asking = entries[0] if entries else None
        file = notes.resolve(qid[:4]) if asking else None
        original = ("".join(notes.lines(file)[asking.first_line - 1:asking.last_line]).strip().lstrip("-# ")
                    if asking else index.get(qid, ""))
        statements = [s for e in entries for s in e.statements]
        marks = " ".join(badge(s.verdict, claim_url(s.claims[0], "") if s.claims else None) for s in statements)
        note_link = f'<a href="../notes/{qid[1:4]}.html">all lines</a>' if asking else ""
        rows.append(f'<tr id="{qid}"><td>{qid}</td><td lang="zh">{_html(original)}</td>'
                    f"<td>{_html(asking.gloss or '') if asking else ''}</td><td>{marks} {note_link}</td></tr>")
    rows.append("</tbody></table>")
    return Markdown("\n".join(rows))
