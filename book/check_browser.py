"""Open built book pages in headless Chromium and check what a reader would see.

    python book/check_browser.py book/_build/html [PAGE ...]

For each page: every formula typeset by MathJax 3 (no TeX error, no raw delimiters left in the text),
every image loaded, no request leaving the machine, no JavaScript error, no stray emphasis (italics or bold
inside a word: a `*` or `_` that Markdown ate), no horizontal overflow at a 420 px wide
phone viewport, verdict badges on the pages that show claims. Then every link to an anchor of a checked page
must resolve, the ledger's filters must work from the URL and by typing, the book's search must rank a
chapter holding the claim first for a question id and for a claim id, the index must list every claim,
and quiz mode must fold the claim boxes (from the address) and a click reveal one. Screenshots go to
book/_build/screenshots/<page>.png (and <page>-420.png): the first screen of each page, or the whole page with
``BROWSER_CHECK_FULL_PAGE=1`` (``make screenshots``), to read every page by eye. Every check above runs on the whole
page either way; only the pictures differ. Prints one line per page; exits 1 if any check failed.

The pages are checked in one browser per core (``BROWSER_CHECK_JOBS`` to change it), the largest first, and
reported in the order given; the ledger, search and quiz checks run beside them in the main process's browser.
"""

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from playwright.sync_api import BrowserContext, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CHROMIUM = "/usr/bin/chromium"
DEFAULT_PAGES = ["index.html", "chapters/activations.html", "ledger.html"]
# Playwright adds --headless itself (headless=True) and takes the profile as user_data_dir.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# A full-page screenshot of a long chapter (1280 x 23000 px) takes 3-6 s (a first screen: well under 0.1 s), and
# more than half of the browser check's time went to them; beside another browser on a busy machine one can take
# several times that, so it gets more than Playwright's default 30 s.
SCREENSHOT_TIMEOUT_MS = 180_000
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# Runs in the page once it has loaded; returns a list of problems.
INSPECT_JS = """
async () => {
  const problems = [];
  if (window.MathJax?.startup?.promise) {
    const timeout = new Promise(resolve => setTimeout(() => resolve("timeout"), 60000));
    if (await Promise.race([MathJax.startup.promise, timeout]) === "timeout") {
      problems.push("MathJax did not finish within 60 s");
    }
  }
  await document.fonts.ready;
  const formulas = document.querySelectorAll(".math");
  const typeset = document.querySelectorAll("mjx-container").length;
  if (formulas.length && !window.MathJax?.startup) problems.push("MathJax did not start");
  const untypeset = [...formulas].filter(el => !el.querySelector("mjx-container")).length;
  if (untypeset) problems.push(`${untypeset} of ${formulas.length} formulas not typeset`);
  const texErrors = document.querySelectorAll("mjx-merror").length;
  if (texErrors) problems.push(`${texErrors} TeX errors`);
  // Code cells legitimately show "$$" and "\\(" in their source, so read the prose without them.
  const code = [...document.querySelectorAll("pre, code")];
  const display = code.map(el => el.style.display);
  code.forEach(el => { el.style.display = "none"; });
  const text = document.body.innerText;
  code.forEach((el, i) => { el.style.display = display[i]; });
  for (const delimiter of ["\\\\(", "\\\\[", "$$"]) {
    if (text.includes(delimiter)) problems.push(`raw ${delimiter} in text`);
  }
  const broken = [...document.images].filter(img => !(img.complete && img.naturalWidth > 0));
  broken.forEach(img => problems.push(`image not loaded: ${img.getAttribute("src")}`));
  const main = document.querySelector("main, article, .bd-article") || document.body;
  const prose = [...main.querySelectorAll("em, strong")]
    .filter(el => !el.closest("pre, code, .highlight, mjx-container"));
  const word = /[A-Za-z0-9]/;
  const stray = prose.filter(el => {
    const before = el.previousSibling?.textContent?.slice(-1) || "";
    const after = el.nextSibling?.textContent?.slice(0, 1) || "";
    return word.test(before) || word.test(after);
  });
  stray.slice(0, 3).forEach(el => problems.push(`stray emphasis around "${el.textContent.slice(0, 30)}"`));
  const ids = [...document.querySelectorAll("[id]")].map(el => el.id);
  const links = [...document.querySelectorAll("a[href*='#']")].map(a => a.href).filter(h => h.startsWith("file:"));
  const badges = document.querySelectorAll(".badge.verdict, .admonition.claim").length;
  return {problems, formulas: formulas.length, typeset, images: document.images.length, ids, links, badges};
}
"""

OVERFLOW_JS = """
() => {
  const width = window.innerWidth;
  const over = document.documentElement.scrollWidth - width;
  if (over <= 1) return [];
  const culprits = [...document.querySelectorAll("body *")].filter(el => el.getBoundingClientRect().right > width + 1
    && !el.closest("pre, .highlight, mjx-container, .MathJax, .bd-sidebar-primary, .bd-sidebar-secondary"))
    .slice(0, 2).map(el => el.tagName.toLowerCase() + (el.className ? "." + String(el.className).split(" ")[0] : ""));
  return [`${over} px of horizontal overflow at ${width} px (${culprits.join(", ")})`];
}
"""
BADGED = ("chapters/", "ledger.html", "notes/0", "corrections.html")


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname in LOCAL_HOSTS


def check_page(
    context: BrowserContext, html_dir: Path, page: str, shots: Path, anchors: dict, links: list
) -> tuple[list[str], str]:
    """Load one page and return its problems (empty when everything passed) and its summary line; records its
    ids in ``anchors`` and its links with a fragment in ``links``."""
    path = html_dir / page
    if not path.is_file():
        return [f"missing {path}"], ""
    problems: list[str] = []
    tab = context.new_page()
    tab.on("request", lambda r: None if is_local(r.url) else problems.append(f"external request: {r.url}"))
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    tab.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.goto(path.resolve().as_uri(), wait_until="load")
    result = tab.evaluate(INSPECT_JS)
    problems += result["problems"]
    anchors[path.resolve().as_uri()] = set(result["ids"])
    links.extend((page, href) for href in result["links"])
    if page.startswith(BADGED) and not result["badges"]:
        problems.append("no verdict badge on a page that shows claims")
    shot = shots / Path(page).with_suffix(".png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=shot, full_page=_full_page(), timeout=SCREENSHOT_TIMEOUT_MS)
    tab.set_viewport_size({"width": 420, "height": 900})
    tab.wait_for_timeout(100)
    problems += tab.evaluate(OVERFLOW_JS)
    tab.screenshot(path=shot.with_name(shot.stem + "-420.png"), full_page=False)
    tab.close()
    summary = f"{result['typeset']} formulas typeset, {result['images']} images, screenshot {shot}"
    return list(dict.fromkeys(problems)), summary  # a failed load is reported by several events


LEDGER_JS = """
() => {
  const rows = [...document.querySelectorAll("#ledger-tool tbody tr")];
  const shown = rows.filter(r => !r.hidden);
  return {total: rows.length, shown: shown.length, verdicts: [...new Set(shown.map(r => r.dataset.verdict))],
          seeds: shown.map(r => r.dataset.seeds), chapters: [...new Set(shown.map(r => r.dataset.chapter))],
          count: document.querySelector(".ledger-count")?.textContent || ""};
}
"""


def check_ledger(context: BrowserContext, html_dir: Path, shots: Path) -> list[str]:
    """The ledger's filters from the URL (verdict, seed, chapter + text) and by typing."""
    problems = []
    tab = context.new_page()
    url = (html_dir / "ledger.html").resolve().as_uri()
    tab.goto(url + "?verdict=refuted", wait_until="load")
    state = tab.evaluate(LEDGER_JS)
    if not state["shown"] or state["verdicts"] != ["refuted"] or str(state["shown"]) not in state["count"]:
        problems.append(f"?verdict=refuted shows {state['shown']} rows with verdicts {state['verdicts']}")
    tab.screenshot(path=shots / "ledger-refuted.png", full_page=False)
    tab.goto(url + "?seed=S002-43", wait_until="load")
    state = tab.evaluate(LEDGER_JS)
    if not state["shown"] or not all("S002-43" in s.split() for s in state["seeds"]):
        problems.append(f"?seed=S002-43 shows {state['shown']} rows")
    tab.goto(url + "?chapter=schedules&q=warm", wait_until="load")
    state = tab.evaluate(LEDGER_JS)
    if not state["shown"] or state["chapters"] != ["schedules"]:
        problems.append(f"?chapter=schedules&q=warm shows {state['shown']} rows of {state['chapters']}")
    tab.goto(url, wait_until="load")
    everything = tab.evaluate(LEDGER_JS)["shown"]
    tab.fill("#ledger-tool input[name=q]", "exponential decay")
    state = tab.evaluate(LEDGER_JS)
    if not 0 < state["shown"] < everything:
        problems.append(f"typing 'exponential decay' shows {state['shown']} of {everything} rows")
    if "q=exponential" not in tab.url:
        problems.append("typing does not update the address")
    tab.close()
    return problems


SEARCH_JS = """
async () => {
  for (let i = 0; i < 200 && !document.querySelector("#search-results ul.search li"); i++) {
    await new Promise(resolve => setTimeout(resolve, 100));
  }
  return [...document.querySelectorAll("#search-results ul.search li a")].map(a => a.href).slice(0, 5);
}
"""

QUIZ_JS = """
() => {
  const box = document.querySelector("div.admonition.claim");
  const shown = el => !!el && getComputedStyle(el).display !== "none" && el.getClientRects().length > 0;
  return {
    switch: !!document.querySelector("label.quiz-switch input"),
    on: document.body.classList.contains("quiz-mode"),
    says: shown(box?.querySelector(".claim-says")),
    title: shown(box?.querySelector(".admonition-title")),
    prompt: shown(box?.querySelector(".quiz-prompt")),
  };
}
"""


def check_search(context: BrowserContext, html_dir: Path) -> list[str]:
    """The book's search, given a question id or a claim id, lists first a chapter page holding that claim;
    the index (genindex) lists every claim."""
    report = json.loads((html_dir.parent / "claims.json").read_text(encoding="utf-8"))
    claims = report["claims"]
    question = "S002-41" if any("S002-41" in c["sources"] for c in claims) else claims[0]["sources"][0]
    holders = {c["chapter"] for c in claims if question in c["sources"]}
    problems = []
    tab = context.new_page()
    search = (html_dir / "search.html").resolve().as_uri()
    for query, pages in [
        (question, holders),
        (claims[0]["id"], {claims[0]["chapter"]}),
        (claims[-1]["id"], {claims[-1]["chapter"]}),
    ]:
        tab.goto(f"{search}?q={query}", wait_until="load")
        hits = tab.evaluate(SEARCH_JS)
        first = hits[0].split("/html/", 1)[-1] if hits else None
        if first is None or first.split("#")[0] not in {f"chapters/{p}.html" for p in pages}:
            problems.append(f"search {query!r}: first result {first}, expected chapters/{sorted(pages)}.html")
    tab.goto((html_dir / "genindex.html").resolve().as_uri(), wait_until="load")
    text = tab.inner_text("body")
    missing = [c["id"] for c in claims if c["id"] not in text]
    if missing:
        problems.append(f"genindex lacks {len(missing)} of {len(claims)} claim ids, e.g. {missing[0]}")
    tab.close()
    return problems


def check_quiz(context: BrowserContext, html_dir: Path, shots: Path) -> list[str]:
    """Quiz mode from the address folds every claim box to the note's statement; a click reveals one."""
    problems = []
    tab = context.new_page()
    tab.goto((html_dir / "chapters" / "losses.html").resolve().as_uri() + "?quiz=1", wait_until="load")
    state = tab.evaluate(QUIZ_JS)
    if not (state["switch"] and state["on"] and state["says"] and state["prompt"] and not state["title"]):
        problems.append(f"?quiz=1 does not fold the first claim box: {state}")
    tab.screenshot(path=shots / "quiz-mode.png", full_page=False)
    tab.click("div.admonition.claim .quiz-prompt")
    state = tab.evaluate(QUIZ_JS)
    if not state["title"] or state["prompt"]:
        problems.append(f"clicking a folded box does not reveal it: {state}")
    tab.goto((html_dir / "chapters" / "losses.html").resolve().as_uri() + "?quiz=0", wait_until="load")
    state = tab.evaluate(QUIZ_JS)
    if state["on"] or not state["title"]:
        problems.append(f"?quiz=0 leaves quiz mode on: {state}")
    tab.close()
    return problems


@contextlib.contextmanager
def browser() -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile, offline but for the local pages."""
    with tempfile.TemporaryDirectory(prefix="book-chromium-") as profile, sync_playwright() as pw:
        # A persistent context is how Playwright accepts an explicit, fresh --user-data-dir.
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def check_pages(html_dir: Path, pages: list[str], shots: Path) -> tuple[dict, dict, list]:
    """Check ``pages`` in one browser: {page: (problems, summary)}, the anchors and the links they hold."""
    anchors: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []
    results: dict[str, tuple[list[str], str]] = {}
    with browser() as context:
        for page in pages:
            try:
                results[page] = check_page(context, html_dir, page, shots, anchors, links)
            except PlaywrightError as exc:  # a timeout or a crashed tab fails its page, not the whole check
                results[page] = [f"{type(exc).__name__}: {str(exc).splitlines()[0]}"], ""
    return results, anchors, links


def _share(html_dir: Path, pages: list[str], jobs: int) -> list[list[str]]:
    """The pages dealt to ``jobs`` browsers, largest first, so that they finish together."""
    size = {p: (html_dir / p).stat().st_size if (html_dir / p).is_file() else 0 for p in pages}
    shares: list[list[str]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for page in sorted(pages, key=lambda p: -size[p]):
        lightest = load.index(min(load))
        shares[lightest].append(page)
        load[lightest] += size[page]
    return [share for share in shares if share]


def _full_page() -> bool:
    value = os.environ.get("BROWSER_CHECK_FULL_PAGE", "0")
    if value not in ("0", "1"):
        raise SystemExit(f"BROWSER_CHECK_FULL_PAGE must be 0 or 1, got {value!r}")
    return value == "1"


def _jobs() -> int:
    value = os.environ.get("BROWSER_CHECK_JOBS", "")
    if value and not (value.isdigit() and int(value) >= 1):
        raise SystemExit(f"BROWSER_CHECK_JOBS must be an integer >= 1, got {value!r}")
    return int(value) if value else len(os.sched_getaffinity(0))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    html_dir = Path(argv[0])
    _full_page(), _jobs()  # bad settings are refused before a browser starts
    pages = argv[1:] or DEFAULT_PAGES
    shots = html_dir.parent / "screenshots"
    failed = False
    results: dict[str, tuple[list[str], str]] = {}
    anchors: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []
    spawn = multiprocessing.get_context("spawn")  # Playwright's sync API does not survive a fork
    shares = _share(html_dir, pages, _jobs())
    with concurrent.futures.ProcessPoolExecutor(len(shares), mp_context=spawn) as pool, browser() as context:
        futures = [pool.submit(check_pages, html_dir, share, shots) for share in shares]
        # The whole-book checks need no page's results, so they run while the pages are checked.
        extra: list[tuple[str, list[str]]] = []
        if "ledger.html" in pages:
            extra.append(("ledger filters", check_ledger(context, html_dir, shots)))
        if (html_dir / "search.html").is_file() and (html_dir.parent / "claims.json").is_file():
            extra += [
                ("search and index", check_search(context, html_dir)),
                ("quiz mode", check_quiz(context, html_dir, shots)),
            ]
        for future in futures:
            found, their_anchors, their_links = future.result()
            results.update(found)
            anchors.update(their_anchors)
            links.extend(their_links)
    for page in pages:
        problems, summary = results[page]
        failed = failed or bool(problems)
        print(f"FAIL {page}: " + "; ".join(problems) if problems else f"OK   {page}: {summary}")
    dangling = sorted(
        {
            f"{page} -> {href.split('/html/', 1)[-1]}"
            for page, href in links
            if href.split("#", 1)[0] in anchors
            and href.split("#", 1)[1]
            and unquote(href.split("#", 1)[1]) not in anchors[href.split("#", 1)[0]]
        }
    )
    if dangling:
        failed = True
        print(f"FAIL anchors: {len(dangling)} links to a missing anchor: " + "; ".join(dangling[:8]))
    else:
        print(f"OK   anchors: {len(links)} links with a fragment resolve")
    for name, problems in extra:
        failed = failed or bool(problems)
        detail = ": " + "; ".join(problems) if problems else ""
        print(("FAIL" if problems else "OK  ") + f" {name}" + detail)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
