"""The browser check's sharing of pages between browsers (book/check_browser.py), without a browser."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("check_browser", ROOT / "book" / "check_browser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_browser = _load()


def _pages(tmp_path: Path, sizes: dict[str, int]) -> list[str]:
    for name, size in sizes.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * size)
    return list(sizes)


def test_every_page_goes_to_exactly_one_browser_and_the_loads_are_balanced(tmp_path):
    sizes = {"a.html": 900, "b.html": 500, "c.html": 400, "chapters/d.html": 300, "e.html": 200, "f.html": 100}
    pages = _pages(tmp_path, sizes)
    shares = check_browser._share(tmp_path, pages, 2)
    assert sorted(p for share in shares for p in share) == sorted(pages)
    loads = sorted(sum(sizes[p] for p in share) for share in shares)
    assert loads == [1200, 1200]  # largest first onto the lighter browser: 900+300 and 500+400+200+100


def test_no_empty_browser_and_a_missing_page_still_goes_to_one(tmp_path):
    pages = [*_pages(tmp_path, {"only.html": 10}), "missing.html"]
    shares = check_browser._share(tmp_path, pages, 8)
    assert sorted(p for share in shares for p in share) == sorted(pages)
    assert all(shares) and len(shares) == 2


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_job_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("BROWSER_CHECK_JOBS", value)
    with pytest.raises(SystemExit, match="BROWSER_CHECK_JOBS must be an integer >= 1"):
        check_browser._jobs()


def test_the_job_count_defaults_to_the_cores_and_can_be_set(monkeypatch):
    monkeypatch.delenv("BROWSER_CHECK_JOBS", raising=False)
    assert check_browser._jobs() >= 1
    monkeypatch.setenv("BROWSER_CHECK_JOBS", "3")
    assert check_browser._jobs() == 3
