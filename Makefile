# dualop: `make up` runs the local stack, `make test` runs the suite.
# Both create .venv/ at the repo root from nothing but Python 3.11, git and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test test-fast lint check bench bench-postgres clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/dualop up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only (about a minute): no Prefect server, no PostgreSQL.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: lint test

# Benchmarks print figures next to a baseline measured in the same run (see README).
bench: $(STAMP)
	$(BIN)/python tests/bench/bench_classify.py
	$(BIN)/python tests/bench/bench_audit.py
	$(BIN)/python tests/bench/bench_overhead.py
	$(BIN)/python tests/bench/bench_webhook.py
	$(BIN)/python tests/bench/bench_webhook.py --burst

bench-postgres: $(STAMP)
	$(BIN)/python tests/bench/bench_overhead.py --database postgres
	$(BIN)/python tests/bench/bench_webhook.py --database postgres
	$(BIN)/python tests/bench/bench_webhook.py --burst --database postgres

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
