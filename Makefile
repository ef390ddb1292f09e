# The two commands users need: `make demo` (the main job, end to end) and `make test` (every test).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `meltano install` puts the plugins (tap from this repo, editable; target-postgres from PyPI)
# in .meltano/; redo it when the plugin definitions or the tap's dependencies change.
MELTANO_STAMP := .meltano/.installed-stamp

.PHONY: venv meltano-install demo test soak lint format clean bench bench-quick

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check tap_flowfinity flowfinity_simulator tests benchmarks scripts
	$(BIN)/ruff format --check tap_flowfinity flowfinity_simulator tests benchmarks scripts
	$(BIN)/mypy tap_flowfinity

format: venv
	$(BIN)/ruff format tap_flowfinity flowfinity_simulator tests
	$(BIN)/ruff check --fix tap_flowfinity flowfinity_simulator tests

meltano-install: $(MELTANO_STAMP)

$(MELTANO_STAMP): $(STAMP) meltano.yml pyproject.toml
	$(BIN)/meltano install
	touch $@

# The main job end to end: simulator + throwaway PostgreSQL, two `meltano run`s, the result.
demo: venv meltano-install
	$(BIN)/python scripts/demo.py

test: venv meltano-install
	$(BIN)/pytest -m "not soak"

# Not part of `make test`: the shipped job run 60 times back to back with writes, Flowfinity
# faults and kills (README "Guarantees"); ~9-12 minutes on 2 CPUs.
soak: venv meltano-install
	$(BIN)/pytest -m soak -s tests/e2e

# Not part of `make test`: ~10 minutes on 2 CPUs (README "Scaling"). Needs psql on PATH.
bench: venv meltano-install
	$(BIN)/python benchmarks/run.py --records 100000 1000000

bench-quick: venv meltano-install
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .meltano .pytest_cache .mypy_cache .ruff_cache
