"""The command line: ``workbook list``, ``workbook show CHAPTER``, ``workbook check [NAMES...] [--json FILE]``,
``workbook summary NETWORK [--input H] [--json FILE]``.

Exit codes: 0 every claim passed, 1 a claim failed or raised, 2 a usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import sympy as sp
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from derivations import runner
from derivations.chapters import CHAPTERS
from derivations.claims import VERDICTS, all_claims, claims_for, derivations_for

VERDICT_STYLE = {"holds": "green", "qualified": "yellow", "refuted": "magenta", "not-checkable": "dim",
                 "invalid": "red", None: "red"}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, not argparse's usage block
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbook", description="Deep-learning interview claims, settled by execution.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    listing = commands.add_parser("list", help="chapters with their claim counts; with a filter, the claims' ids")
    listing.add_argument("query", nargs="?", help="text to find in a claim's id, says or correction")
    listing.add_argument("--verdict", choices=VERDICTS)
    listing.add_argument("--chapter", choices=CHAPTERS, metavar="CHAPTER")
    listing.add_argument("--seed", metavar="SEED", help="a question id, e.g. S002-41")
    show = commands.add_parser("show", help="a chapter's derivations and claims (or one claim's, by id)")
    show.add_argument("chapter", metavar="CHAPTER|CLAIM-ID|QUESTION-ID")
    check = commands.add_parser("check", help="run claims (all, or the chapters / claim ids named)")
    check.add_argument("names", nargs="*", metavar="CHAPTER|CLAIM-ID")
    check.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    check.add_argument("--jobs", type=int, metavar="N", default=None,
                       help="worker processes (default: one per core)")
    check.add_argument("--reuse", action="store_true",
                       help="show the stored report instead when it was made from the current sources "
                            "(all claims only; `make run` uses this)")
    notes = commands.add_parser("notes", help="the notes annotated line by line (one note, or all)")
    notes.add_argument("file", nargs="?", metavar="NOTE", help="a note's prefix (000) or file name")
    notes.add_argument("--json", type=Path, metavar="FILE", help="write the annotation as JSON")
    quiz = commands.add_parser("quiz", help="guess each claim's verdict, then see the correction and evidence")
    quiz.add_argument("--chapter", choices=CHAPTERS, metavar="CHAPTER")
    quiz.add_argument("--verdict", choices=VERDICTS)
    quiz.add_argument("--count", type=int, metavar="N")
    quiz.add_argument("--seed", type=int, default=0, metavar="S", help="the order of the questions")
    quiz.add_argument("--anki", type=Path, metavar="FILE.apkg", help="write an Anki deck instead of asking")
    summary = commands.add_parser("summary", help="a classic network's per-layer shapes, parameters, MACs and "
                                  "receptive fields")  # fmt: skip
    summary.add_argument("network", metavar="NETWORK",
                         help="alexnet, vgg16, resnet18, resnet50, mobilenet_v1 or googlenet")
    summary.add_argument("--input", type=int, default=224, metavar="H",
                         help="input side (default 224); AlexNet and VGG-16 take the sides whose last feature map "
                              "is a multiple of their adaptive pool's 6 or 7 (224 among them)")  # fmt: skip
    summary.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    explain = commands.add_parser("explain", help="one claim in full: says, scope, findings, verdict, correction")
    explain.add_argument("names", nargs="+", metavar="CLAIM-ID|CHAPTER|QUESTION-ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            return _list(console, args.query, args.verdict, args.chapter, args.seed)
        if args.command == "show":
            return _show(console, args.chapter)
        if args.command == "notes":
            return _notes(console, args.file, args.json)
        if args.command == "quiz":
            return _quiz(console, args)
        if args.command == "summary":
            from derivations import networks

            return networks.summary_command(console, args.network, args.input, args.json)
        if args.command == "explain":
            return _explain(console, args.names)
        return _check(console, args.names, args.json, args.jobs, reuse=args.reuse)
    except (UsageError, ValueError) as exc:
        print(f"workbook: error: {exc}", file=sys.stderr)
        return 2


def _list(console: Console, query: str | None, verdict: str | None, chapter: str | None, seed: str | None) -> int:
    if seed is not None and not re.fullmatch(r"S00\d-\d\d", seed):
        raise ValueError(f"--seed takes a question id like S002-41, got {seed!r}")
    claims = all_claims()
    if not (query or verdict or chapter or seed):
        table = Table(title="Chapters")
        for column in ("chapter", "claims", "holds", "qualified", "refuted"):
            table.add_column(column, justify="left" if column == "chapter" else "right")
        for name in CHAPTERS:
            mine = [c.expected_on(_backend()) for c in claims if c.chapter == name]
            table.add_row(name, str(len(mine)), *(str(mine.count(v)) for v in VERDICTS))
        console.print(table)
        console.print("claim ids: `workbook list --chapter NAME`, `--verdict V`, `--seed S002-41` or a text query")
        return 0
    words = (query or "").lower().split()
    found = [c for c in claims
             if (verdict is None or c.expected_on(_backend()) == verdict) and (chapter is None or c.chapter == chapter)
             and (seed is None or seed in c.sources)
             and all(w in " ".join([c.id, c.says, c.correction or ""]).lower() for w in words)]
    for c in found:  # the id on its own line, never cut, so it can be copied
        v = c.expected_on(_backend())
        console.print(f"[{VERDICT_STYLE[v]}]{v:<9}[/{VERDICT_STYLE[v]}] {c.id}", highlight=False, soft_wrap=True)
        console.print(f"          {' '.join(c.sources)}: {_plain(c.says)}", highlight=False)
    console.print(f"{len(found)} claims", highlight=False)
    return 0


def _backend() -> str:
    import jax

    return jax.default_backend()


def _plain(text: str) -> str:
    """LaTeX-ish text as readable terminal text: no $ or backslashes, common macros as symbols; square brackets
    escaped, so that rich prints E[a] instead of reading [a] as a style."""
    for tex, plain in (("\\sigma", "σ"), ("\\gamma", "γ"), ("\\beta", "β"), ("\\alpha", "α"), ("\\eta", "η"),
                       ("\\epsilon", "ε"), ("\\lambda", "λ"), ("\\mu", "μ"), ("\\theta", "θ"), ("\\nabla", "∇"),
                       ("\\partial", "∂"), ("\\sqrt", "√"), ("\\cdot", "·"), ("\\times", "×"), ("\\le", "≤"),
                       ("\\ge", "≥"), ("\\infty", "∞"), ("\\frac", ""), ("\\left", ""), ("\\right", ""),
                       ("\\mathrm", ""), ("\\operatorname", "")):
        text = text.replace(tex, plain)
    return escape(text.replace("$", "").replace("{", "").replace("}", "").replace("\\", ""))


def _show(console: Console, name: str) -> int:
    if "/" in name or re.fullmatch(r"S00\d-\d\d", name):
        return _explain(console, [name])
    steps = derivations_for(name)  # validates the name
    module = sys.modules[f"derivations.{name}"]
    console.print(f"[bold]{name}[/bold]: {(module.__doc__ or '').strip().splitlines()[0]}\n")
    console.rule("derivations")
    for step in steps:
        console.print(f"\n[bold]{_plain(_title(step))}[/bold]  [dim]({step.name})[/dim]", highlight=False)
        value = step.func()
        for item in value if isinstance(value, list | tuple) else [value]:
            console.print(sp.pretty(item, use_unicode=True), highlight=False, soft_wrap=True)
    console.rule("claims")
    for c in claims_for([name]):
        v = c.expected_on(_backend())
        console.print(f"\n[bold]{c.id}[/bold] [{VERDICT_STYLE[v]}]{v}[/{VERDICT_STYLE[v]}]  {', '.join(c.sources)}",
                      soft_wrap=True)
        console.print(f"  says: {_plain(c.says)}", highlight=False)
        if c.correction:
            console.print(f"  correction: {_plain(c.correction)}", highlight=False)
    return 0


def _title(step) -> str:
    """A derivation's whole first paragraph (its title may run over several docstring lines)."""
    doc = (step.func.__doc__ or step.name).strip().split("\n\n")[0]
    return " ".join(doc.split())


def _notes(console: Console, name: str | None, json_path: Path | None) -> int:
    from derivations import notes

    files = [notes.resolve(name)] if name else list(notes.NOTE_FILES)
    if json_path is not None:
        writable_file(json_path)
    entries = notes.load_all(files)
    if json_path is not None:
        json_path.write_text(json.dumps(notes.as_json(entries), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for file in files:
        mine = [e for e in entries if e.file == file]
        table = Table(title=f"{file}", show_lines=False)
        for column in ("lines", "verdict", "gloss", "claims"):
            table.add_column(column, overflow="fold")
        for e in mine:
            span = str(e.first_line) if e.first_line == e.last_line else f"{e.first_line}-{e.last_line}"
            for s in e.statements:
                style = VERDICT_STYLE.get(s.verdict, "dim")
                table.add_row(span, f"[{style}]{s.verdict}[/{style}]", s.gloss,
                              "\n".join(s.claims) or (s.reason or ""))
        console.print(table)
        c = notes.counts(mine)
        console.print(f"{file}: {c['entries']} entries, {c['statements']} statements: " + ", ".join(
            f"{c[v]} {v}" for v in notes.VERDICTS), highlight=False)
    if json_path is not None:
        console.print(f"annotation written to {json_path}")
    return 0


def _quiz(console: Console, args: argparse.Namespace) -> int:
    from derivations import quiz

    if args.anki is not None:
        writable_file(args.anki, option="--anki")
        if args.anki.suffix != ".apkg":
            raise ValueError(f"--anki {args.anki}: an Anki package is a .apkg file")
    claims = quiz.pick(chapter=args.chapter, verdict=args.verdict, count=args.count, seed=args.seed)
    if args.anki is not None:
        console.print(f"{quiz.anki(args.anki, claims)} notes written to {args.anki}")
        return 0
    quiz.run(claims, input, lambda text: console.print(_plain(text), highlight=False))
    return 0


def _explain(console: Console, names: Sequence[str]) -> int:
    """Claims as the README's "How to read a claim" lays them out, from the stored report when it is fresh."""
    chosen = claims_for(list(names))  # validates: claim ids, old ids, chapters, question ids
    stored = runner.stored_report()
    found = stored["claims"] if stored else runner.run([c.id for c in chosen], jobs=1)["claims"]
    entries = {e["id"]: e for e in found}
    for c in chosen:
        _explain_one(console, entries[c.id])
    return 0


def _explain_one(console: Console, e: dict) -> None:
    style = VERDICT_STYLE[e["verdict"]]
    console.print(f"\n[bold]{e['id']}[/bold]   seeds {' '.join(e['sources'])}   [{style}]{e['verdict']}[/{style}]"
                  + ("" if e["ok"] else f" [red](recorded: {e['expected']})[/red]"), highlight=False, soft_wrap=True)
    console.print(f"  says:       {_plain(e['says'])}", highlight=False)
    console.print("  scope:      " + "; ".join(f"{k}: {v}" for k, v in e["scope"].items()), highlight=False)
    for i, f in enumerate(e["findings"]):
        mark = "[green]✓[/green]" if f["held"] else "[red]✗[/red]"
        figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in f["figures"].items()
                            if k not in ("worst", "rtol", "atol") and not isinstance(v, dict | list))
        console.print(f"  {'findings:  ' if i == 0 else '           '} {mark} {f['role']:<5} {_plain(f['proposition'])}"
                      + (f" ({figures})" if figures else ""), highlight=False)
    tol = e["tolerance"]
    console.print(f"  tolerance:  rtol {tol['rtol']:g}, atol {tol['atol']:g}"
                  + (f" — {tol['reason']}" if tol["reason"] else ""), highlight=False)
    if e["correction"]:
        console.print(f"  correction: {_plain(e['correction'])}", highlight=False)
    page = runner.ROOT / "book" / "_build" / "html" / "chapters" / f"{e['chapter']}.html"
    console.print(f"  page:       {page.as_uri()}#{e['id'].split('/', 1)[1]}", highlight=False, soft_wrap=True)


def writable_file(path: Path, option: str = "--json") -> Path:
    """``path`` if a file can be written there, else a ValueError saying why (checked before any work)."""
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable")
    return path


def _check(console: Console, names: Sequence[str], json_path: Path | None, jobs: int | None, *,
           reuse: bool = False) -> int:
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if reuse and names:
        raise ValueError("--reuse applies to the whole ledger only; name no chapters or claims with it")
    if json_path is not None:
        writable_file(json_path)
    claims = claims_for(list(names))  # validates the names before any claim runs
    stored = runner.stored_report() if reuse else None
    if stored is not None:
        console.print(f"sources unchanged since {runner.DEFAULT_REPORT}: showing that report, no claim re-run",
                      highlight=False)
        return _report_done(console, stored, json_path)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )
    with progress:
        task = progress.add_task("checking claims", total=len(claims))

        def advance(claim_id: str, ok: bool) -> None:
            progress.update(task, advance=1, description=claim_id)

        report = runner.run(names, jobs=jobs, on_claim=advance)
    if report["complete"]:
        runner.write_report(report, runner.DEFAULT_REPORT)
    return _report_done(console, report, json_path)


def _report_done(console: Console, report: dict, json_path: Path | None) -> int:
    console.print(_table(report))
    for entry in report["claims"]:
        if not entry["ok"]:
            reason = entry["error"] or f"observed {entry['verdict']}, expected {entry['expected']}: {entry['summary']}"
            console.print(f"[red]FAILED[/red] {entry['id']}: {reason}", highlight=False)
    for item in report["derivations"]:
        if not item["ok"]:
            console.print(f"[red]UNCHECKED[/red] {item['chapter']}.{item['derivation']}()[{item['index']}]: "
                          f"{item['item']} is displayed but neither evaluated by a claim nor verified", highlight=False)
    s = report["summary"]
    console.print(
        f"{s['claims']} claims: {s['ok']} passed, {s['failed']} failed "
        f"(verdicts: {s['holds']} holds, {s['qualified']} qualified, {s['refuted']} refuted); "
        f"{s['equations'] - s['equations_unchecked']} of {s['equations']} displayed equations verified; "
        f"{s['seconds']:.1f} s of checks"
    )
    if json_path is not None:
        runner.write_report(report, json_path)
        console.print(f"report written to {json_path}")
    return 0 if runner.report_ok(report) else 1


def _table(report: dict) -> Table:
    table = Table(title="Claims")
    for column, justify in (("claim", "left"), ("seeds", "left"), ("verdict", "left"), ("ok", "center"),
                            ("method", "left"), ("max rel err", "right"), ("samples", "right"), ("s", "right")):
        table.add_column(column, justify=justify)
    for e in report["claims"]:
        style = VERDICT_STYLE[e["verdict"]]
        verdict = f"[{style}]{e['verdict'] or 'error'}[/{style}]"
        if e["verdict"] != e["expected"]:
            verdict += f" (expected {e['expected']})"
        rel = "" if e["max_rel_err"] is None else f"{e['max_rel_err']:.1e}"
        table.add_row(
            e["id"], " ".join(e["sources"]), verdict, "[green]✓[/green]" if e["ok"] else "[red]✗[/red]",
            e["method"] or "", rel, "" if e["samples"] is None else str(e["samples"]), f"{e['seconds']:.2f}",
        )
    return table
