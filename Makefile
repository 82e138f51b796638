# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test install-browser install-services run test migrate seed clean lint bench bench-quick bench-workers soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

migrate: install
	$(BIN)/sigmachat db upgrade

seed: migrate
	$(BIN)/sigmachat seed

# `serve` applies migrations and seeds the demo data on first run by itself.
run: install
	$(BIN)/sigmachat serve

test: install-test
	# exit code 5 means "no tests selected" (e.g. a -k filter): not a failure of the suite.
	$(BIN)/python -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The gate: formatting, lint rules and types (configured in pyproject.toml).
lint: install-test
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

# Benchmarks: the simulator and the app as separate processes, all paths side by side
# (docs/benchmarks.md). Full: under 5 minutes on 2 cores; quick: under 1 minute.
bench: install
	$(BIN)/sigmachat bench $(BENCH_ARGS)

bench-quick: install
	$(BIN)/sigmachat bench --quick $(BENCH_ARGS)

# `serve --workers 2` against one worker (PostgreSQL + Redis from Debian packages), same load:
# CPU per streamed token over all processes of each app; a section of docs/benchmarks.md.
bench-workers: install
	$(BIN)/sigmachat bench --workers-compare $(BENCH_ARGS)

# 100 concurrent streams for 60 s with disconnects, resumes and cancels; every run accounted for.
soak: install
	$(BIN)/sigmachat soak $(SOAK_ARGS)

# The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
# Needs root, as in CI; without it the browser tests skip on a dev machine (never in CI).
install-browser:
	@[ -x /usr/bin/chromium ] || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# PostgreSQL, Redis and nginx for the cluster and PostgreSQL tests: the suite starts them itself
# (temporary directories, free loopback ports). Needs root, as in CI; without them those tests
# skip on a developer machine (never in CI).
install-services:
	@([ -x /usr/bin/redis-server ] && [ -x /usr/sbin/nginx ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1) || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server nginx-light)

clean:
	rm -rf $(VENV) var .pytest_cache
