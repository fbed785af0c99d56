# `make run`: check every claim, then build the book. `make test`: lint, tests, book build, browser check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-pyproject
HTML := book/_build/html

.PHONY: run test lint pytest check book browser-check bench clean

run: check book
	@echo "Book: $(abspath $(HTML))/index.html"

test: lint pytest book browser-check

# The venv is (re)made when it is missing or pyproject.toml changed since it was installed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,book]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	mkdir -p book/_build
	$(BIN)/python -m derivations check --json book/_build/claims.json

book: $(STAMP)
	$(BIN)/python book/cache_guard.py
	$(BIN)/python -m sphinx -b html -W --keep-going -q book $(HTML)

browser-check: $(STAMP)
	sh book/ensure_chromium.sh
	$(BIN)/python book/check_browser.py $(HTML) index.html ledger.html appendix.html $$(cd $(HTML) && ls chapters/*.html)

# Speed and memory, measured side by side (never asserted in tests): benchmarks/results/<backend>.json.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf book/_build .pytest_cache .hypothesis
