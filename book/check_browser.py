"""Open built book pages in headless Chromium and check what a reader would see.

    python book/check_browser.py book/_build/html [PAGE ...]

For each page: every formula typeset by MathJax 3 (no TeX error, no raw delimiters left in the text),
every image loaded, no request leaving the machine, no JavaScript error. A full-page screenshot goes to
book/_build/screenshots/<page>.png. Prints one line per page; exits 1 if any check failed.
"""

import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import BrowserContext, sync_playwright

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
  return {problems, formulas: formulas.length, typeset, images: document.images.length};
}
"""


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname in LOCAL_HOSTS


def check_page(context: BrowserContext, html_dir: Path, page: str, shots: Path) -> list[str]:
    """Load one page and return its problems (empty when everything passed)."""
    path = html_dir / page
    if not path.is_file():
        return [f"missing {path}"]
    problems: list[str] = []
    tab = context.new_page()
    tab.on("request", lambda r: None if is_local(r.url) else problems.append(f"external request: {r.url}"))
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    tab.on("console", lambda m: problems.append(f"console error: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.goto(path.resolve().as_uri(), wait_until="load")
    result = tab.evaluate(INSPECT_JS)
    problems += result["problems"]
    shot = shots / Path(page).with_suffix(".png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=shot, full_page=True)
    tab.close()
    if not problems:
        counts = f"{result['typeset']} formulas typeset, {result['images']} images"
        print(f"OK   {page}: {counts}, screenshot {shot}")
    return list(dict.fromkeys(problems))  # a failed load is reported by several events


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    html_dir = Path(argv[0])
    pages = argv[1:] or DEFAULT_PAGES
    shots = html_dir.parent / "screenshots"
    failed = False
    with tempfile.TemporaryDirectory(prefix="book-chromium-") as profile, sync_playwright() as pw:
        # A persistent context is how Playwright accepts an explicit, fresh --user-data-dir.
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        for page in pages:
            problems = check_page(context, html_dir, page, shots)
            if problems:
                failed = True
                print(f"FAIL {page}: " + "; ".join(problems))
        context.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
