# The two commands users need: `make demo` (the main job, end to end) and `make test` (every test).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check tap_flowfinity tests
	$(BIN)/ruff format --check tap_flowfinity tests
	$(BIN)/mypy tap_flowfinity

format: venv
	$(BIN)/ruff format tap_flowfinity tests
	$(BIN)/ruff check --fix tap_flowfinity tests

test: venv
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .meltano .pytest_cache .mypy_cache .ruff_cache
