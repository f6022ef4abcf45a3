# The console's commands. `make run` and `make test` work on a fresh machine with Python >= 3.12.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

# The first Python >= 3.12 found: python3.13, python3.12, python3, then pyenv's installs
# (pyenv shims exist for versions that are installed but not selected, and fail when run).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	if $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then echo $$p; break; fi; done)

.PHONY: help install run test test-fast test-browser bench lint format lock clean

help:
	@echo "make run    start the console on http://127.0.0.1:$(PORT) with a worker, beat and a demo agent"
	@echo "make test   install what the tests need and run the whole suite"
	@echo "make bench  measure the console started the production way (PostgreSQL, Redis, 2 servers)"
	@echo "make lint   ruff and mypy"
	@echo "make lock   re-resolve requirements.lock from pyproject.toml"

$(VENV)/.installed: requirements.lock
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 is required (set PYTHON=/path/to/python3.12)"; exit 1; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# --require-hashes: a fresh machine installs exactly the files CI tested, or nothing.
	set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements.lock 2>&1 | { grep -v "^WARNING: Location" || true; }
	@$(PY) -c "import django, channels, celery" && touch $@

# The OpenAI Agents SDK lives in its own directory, not in site-packages: its top-level package
# `agents` would shadow our app. Only the adapter example's subprocess puts it on sys.path.
OPENAI_AGENTS_DIR := $(VENV)/openai-agents

$(OPENAI_AGENTS_DIR)/.installed: tests/agents/sdk/requirements-openai-agents.lock $(VENV)/.installed
	rm -rf $(OPENAI_AGENTS_DIR)
	set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		--target $(OPENAI_AGENTS_DIR) -r tests/agents/sdk/requirements-openai-agents.lock 2>&1 \
		| { grep -v "^WARNING: Location" || true; }
	@test -d $(OPENAI_AGENTS_DIR)/agents && touch $@

install: $(VENV)/.installed $(OPENAI_AGENTS_DIR)/.installed

run: install
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py demo_setup
	@# Readable, quiet logs for a person at a terminal; production keeps JSON lines at INFO.
	CONSOLE_PORT=$(PORT) LOG_FORMAT=$${LOG_FORMAT:-plain} LOG_LEVEL=$${LOG_LEVEL:-WARNING} \
		$(VENV)/bin/honcho -f console/Procfile -d . start

# Browser tests run in their own pytest process: once pytest-playwright's event loop is up,
# later async tests fail (STACK.md).
test: install
	$(PY) -m pytest -m "not browser"
	$(PY) -m pytest -m browser

test-fast: install
	$(PY) -m pytest -m "not browser" -x -q

test-browser: install
	$(PY) -m pytest -m browser

# DATABASE_URL/REDIS_URL default to the local servers and a `console_bench` database.
# BENCH_ARGS="--size full" adds 1,000 waiting agents and 500 reviewer sockets.
bench: install
	$(PY) -m console.bench $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Hashes for every file of every pinned release: `make install` refuses anything else.
lock: install
	$(VENV)/bin/pip-compile --quiet --generate-hashes --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o tests/agents/sdk/requirements-openai-agents.lock \
		tests/agents/sdk/requirements-openai-agents.in

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .ruff_cache .mypy_cache
