# `make run`: check every claim (reusing the report when no source changed), then build the book. `make test`: lint, tests, book build, browser check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-pyproject
HTML := book/_build/html

.PHONY: run test lint pytest fuzz portability check report book browser-check screenshots bench clean

run: $(STAMP)
	$(BIN)/python -m derivations check --reuse
	$(MAKE) --no-print-directory book
	@echo "Book: $(abspath $(HTML))/index.html"

# The report first (every claim once, one worker per core), so the tests and the book only read it.
test: lint report pytest book browser-check

# The venv is (re)made when it is missing or pyproject.toml changed since it was installed. The project is
# installed by uv (from PyPI, by pip), which resolves the same versions as pip and installs them in parallel:
# 40 s where pip takes 85-100 s on 2 cores (bytecode compiled, as pip does). `make INSTALLER=pip` uses pip
# alone (e.g. behind an index that only pip is configured for: uv reads UV_INDEX_URL and UV_CONSTRAINT, not pip.conf
# or PIP_* variables).
INSTALLER ?= uv
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),pip)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,book]'
else
	$(BIN)/python -m pip install --quiet 'uv>=0.13,<0.14'
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[test,book]'
endif
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

# Deterministic whatever the environment: the `ci` hypothesis profile (derandomized). Fresh random
# exploration is `make fuzz`, to run before a change lands.
pytest: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q -n auto

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest -q --ignore=tests/test_claims.py

# Every claim under five CPU configurations (instruction-set ceilings, XLA's default compile): the verdicts and
# findings must not change, only figures' last bits. 5-10 min on 2 cores; run it before a change to a check lands.
portability: $(STAMP)
	$(BIN)/python -m derivations.portability

# Every claim, in parallel workers; the report (book/_build/claims.json) is what the book and the tests read.
check: $(STAMP)
	$(BIN)/python -m derivations check

# The report for the current sources: reused when it exists, else the claims run once.
report: $(STAMP)
	$(BIN)/python -m derivations.runner

# -a writes every page, also those unchanged: an incremental build drops the index entries of the pages it does
# not write from the search index (sphinx-doc/sphinx#12599), and a search for a claim id then misses its chapter.
# The notebooks' outputs come from the jupyter-cache, so this costs well under a second here.
book: report
	$(BIN)/python book/cache_guard.py
	$(BIN)/python -m sphinx -b html -W --keep-going -q -j auto -a book $(HTML)

PAGES = index.html ledger.html corrections.html appendix.html references.html $$(cd $(HTML) && ls chapters/*.html notes/*.html)

# Every page checked in Chromium; the screenshots (book/_build/screenshots) show each page's first screen.
browser-check: $(STAMP)
	sh book/ensure_chromium.sh
	$(BIN)/python book/check_browser.py $(HTML) $(PAGES)

# The same checks, with screenshots of every whole page, to read the book by eye.
screenshots: book
	sh book/ensure_chromium.sh
	BROWSER_CHECK_FULL_PAGE=1 $(BIN)/python book/check_browser.py $(HTML) $(PAGES)

# Speed and memory, measured side by side (never asserted in tests): benchmarks/results/<backend>.json.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf book/_build .pytest_cache .hypothesis
