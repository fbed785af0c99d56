"""Self-study: a terminal quiz over the claims (guess the verdict, then see the correction and the evidence)
and an Anki deck with one note per claim (``genanki``; stable ids, so re-importing updates the deck).

The questions' original wording comes from the seed index (``derivations/annotations/seed-index.md``, a copy
of ``shared/seed-index.md``); verdicts and corrections from the registry; the evidence from the stored report
when it was made from the current sources (a quiz never runs the claims).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from derivations import runner
from derivations.claims import VERDICTS, Claim, all_claims
from derivations.notes import HERE

# Fixed ids: Anki matches a re-imported deck, model and note by them, so a new build updates the old cards.
DECK_ID = 1_734_120_001
MODEL_ID = 1_734_120_002
ANSWERS = {"h": "holds", "q": "qualified", "r": "refuted"}


def questions() -> dict[str, str]:
    """Question id -> the question as the notes word it (from the seed index)."""
    out = {}
    for line in (HERE / "seed-index.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| (S00\d-\d\d) \| (.+?) \|", line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out


def pick(*, chapter: str | None = None, verdict: str | None = None, count: int | None = None,
         seed: int = 0) -> list[Claim]:
    """The claims to ask, shuffled by ``seed``: all of them, or those of a chapter or a recorded verdict."""
    import jax

    if count is not None and count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"--verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    backend = jax.default_backend()
    chosen = [c for c in all_claims() if (chapter is None or c.chapter == chapter)
              and (verdict is None or c.expected_on(backend) == verdict)]
    random.Random(seed).shuffle(chosen)
    return chosen[:count] if count else chosen


def _evidence() -> dict[str, dict[str, Any]]:
    stored = runner.stored_report()
    return {e["id"]: e for e in stored["claims"]} if stored else {}


def run(claims: list[Claim], ask: Callable[[str], str], say: Callable[[str], None]) -> tuple[int, int]:
    """Ask each claim's verdict; returns (right, asked). Stops early when ``ask`` raises EOFError."""
    import jax

    backend, texts, evidence = jax.default_backend(), questions(), _evidence()
    right = asked = 0
    for number, c in enumerate(claims, 1):
        say(f"\n[{number}/{len(claims)}] {', '.join(c.sources)}: {' / '.join(texts.get(s, '') for s in c.sources)}")
        say(f"The note says: {c.says}")
        while True:
            try:
                answer = ask("holds, qualified or refuted? [h/q/r] ").strip().lower()[:1]
            except EOFError:
                say(f"\nscore: {right}/{asked}")
                return right, asked
            if answer in ANSWERS:
                break
            say("answer h, q or r")
        truth = c.expected_on(backend)
        asked += 1
        right += ANSWERS[answer] == truth
        say(("right: " if ANSWERS[answer] == truth else "no: ") + f"{truth.upper()} ({c.id})")
        if c.correction:
            say(f"Correction: {c.correction}")
        if c.id in evidence:
            say(f"Evidence: {evidence[c.id]['summary']}")
    say(f"\nscore: {right}/{asked}")
    return right, asked


def anki(path: Path, claims: list[Claim]) -> int:
    """Write an Anki package with one note per claim; returns the number of notes."""
    import genanki
    import jax

    backend, texts, evidence = jax.default_backend(), questions(), _evidence()
    model = genanki.Model(
        MODEL_ID, "DL Derivation Workbook claim",
        fields=[{"name": "Claim"}, {"name": "Question"}, {"name": "Says"}, {"name": "Verdict"},
                {"name": "Correction"}, {"name": "Evidence"}, {"name": "Link"}],
        templates=[{
            "name": "Verdict",
            "qfmt": "<div class=q>{{Question}}</div><p><b>The note says:</b> {{Says}}</p>"
                    "<p>holds, qualified or refuted?</p>",
            "afmt": "{{FrontSide}}<hr id=answer><p><b>{{Verdict}}</b></p><p>{{Correction}}</p>"
                    "<p><small>{{Evidence}}</small></p><p><small>{{Claim}} · {{Link}}</small></p>",
        }],
        css=".card { font-family: sans-serif; font-size: 18px; } .q { color: #555; }",
    )
    deck = genanki.Deck(DECK_ID, "DL Derivation Workbook")
    for c in claims:
        chapter, slug = c.id.split("/", 1)
        fields = [c.id, _html(" / ".join(f"{s}: {texts.get(s, '')}" for s in c.sources)), _html(c.says),
                  c.expected_on(backend).upper(), _html(c.correction or ""),
                  _html(evidence.get(c.id, {}).get("summary") or ""),
                  f"book/_build/html/chapters/{chapter}.html#{slug}"]
        deck.add_note(genanki.Note(model=model, fields=fields, guid=genanki.guid_for(c.id), tags=[chapter]))
    genanki.Package(deck).write_to_file(str(path))
    return len(claims)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
