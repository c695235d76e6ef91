# Two commands: `make up` runs the orchestrator, `make test` runs the test suite.
# Each bootstraps what it needs: a virtualenv in .venv with the project installed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: up test test-fast lint docs install clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# Quiet by default (runs started and finished, warnings, errors); make up VERBOSE=1 shows everything.
up: $(VENV)/.installed
	$(PY) manage.py up --port $(PORT)$(if $(filter 1 true yes,$(VERBOSE)), --verbose)

# Tests keep their data (SQLite test file, broker folders) inside the checkout unless told
# otherwise, so two checkouts can run their suites at once.
test: export ORCHESTRATOR_HOME ?= $(CURDIR)/.test-home
test: $(VENV)/.installed
	$(PY) manage.py makemigrations --check --dry-run >/dev/null || { echo "Models have changes without migrations: run manage.py makemigrations"; exit 1; }
	$(PY) -m pytest $(PYTEST_ARGS)

# The unit tier: no live server, subprocess, browser, PostgreSQL, Celery, Docker or cluster.
test-fast: export ORCHESTRATOR_HOME ?= $(CURDIR)/.test-home
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not (live_server or subprocess or browser or postgres or celery or docker or dask or ray or slow)" $(PYTEST_ARGS)

# The static gate: lint, formatting, types, import direction.
lint: export ORCHESTRATOR_HOME ?= $(CURDIR)/.test-home
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The documentation site (docs/), as CI builds it.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache
