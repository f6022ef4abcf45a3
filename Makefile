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

.PHONY: help install run test test-fast test-browser bench lint format lock clean sdk-dist sdk-check

help:
	@echo "make run    start the console on http://127.0.0.1:$(PORT) with a worker, beat and a demo agent"
	@echo "make test   install what the tests need and run the whole suite"
	@echo "make bench  measure the console started the production way (PostgreSQL, Redis, 2 servers)"
	@echo "make lint   ruff and mypy"
	@echo "make lock   re-resolve requirements.lock from pyproject.toml"
	@echo "make sdk-dist  build the Python SDK's sdist and wheel into var/sdk-dist/"

$(VENV)/.installed: requirements.lock agents/sdk/pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 is required (set PYTHON=/path/to/python3.12)"; exit 1; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# --require-hashes: a fresh machine installs exactly the files CI tested, or nothing.
	set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements.lock 2>&1 | { grep -v "^WARNING: Location" || true; }
	@# The SDK (agents/sdk, import name approval_console) is a distribution of its own, which the
	@# lock cannot list (pip refuses a directory under --require-hashes). Installed editable, so the
	@# demo agent and the tests run the tree's code under the name authors install it as. Offline:
	@# its build backend, setuptools, came with its hash from the lock.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
		--no-build-isolation -e ./agents/sdk
	@$(PY) -c "import django, channels, celery, approval_console" && touch $@

# An agent author's venv holds the SDK beside the OpenAI Agents SDK and LangGraph. The console's
# venv cannot: the Agents SDK's top-level package `agents` has the name of our Django app. So the
# tests build authors' venvs of their own, offline, from these wheels (the frameworks' hashed
# lock, tests/agents/sdk/author_venv.py) and the SDK's wheel built from the tree.
AUTHOR_WHEELS := $(VENV)/author-wheels

$(AUTHOR_WHEELS)/.downloaded: tests/agents/sdk/requirements-author.lock $(VENV)/.installed
	rm -rf $(AUTHOR_WHEELS)
	set -o pipefail; $(PY) -m pip download --quiet --disable-pip-version-check --require-hashes \
		--no-deps --only-binary=:all: -d $(AUTHOR_WHEELS) -r tests/agents/sdk/requirements-author.lock \
		2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $@

install: $(VENV)/.installed $(AUTHOR_WHEELS)/.downloaded

# The SDK's sdist and wheel in var/sdk-dist/, built the way PyPI would get them.
sdk-dist: install
	rm -rf var/sdk-dist agents/sdk/build
	$(PY) -m build --no-isolation --outdir var/sdk-dist agents/sdk

# What an agent author does: the wheel, in a clean venv outside the repository, beside the OpenAI
# Agents SDK and LangGraph (the locked releases, offline: CI must not turn red on the day
# either publishes; `make lock` moves them forward deliberately).
sdk-check: sdk-dist $(AUTHOR_WHEELS)/.downloaded
	rm -rf var/sdk-check && $(PY) -m venv var/sdk-check
	set -o pipefail; var/sdk-check/bin/python -m pip install --quiet --disable-pip-version-check \
		--no-index --find-links $(AUTHOR_WHEELS) "$$(ls var/sdk-dist/*.whl)[mcp]" openai-agents \
		langgraph langchain 2>&1 | { grep -v "^WARNING: Location" || true; }
	cd /tmp && $(CURDIR)/var/sdk-check/bin/python -c "import approval_console, agents, langgraph; \
		import approval_console.mcp_server, langchain.agents.middleware; \
		assert hasattr(agents, 'Runner'); print('approval_console', approval_console.__version__, \
		'imports beside openai-agents, langgraph, langchain and mcp')"
	var/sdk-check/bin/approval-console-mcp --help > /dev/null

run: install
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py demo_setup
	@# Readable, quiet logs for a person at a terminal; production keeps JSON lines at INFO.
	CONSOLE_PORT=$(PORT) LOG_FORMAT=$${LOG_FORMAT:-plain} LOG_LEVEL=$${LOG_LEVEL:-WARNING} \
		$(VENV)/bin/honcho -f console/Procfile -d . start

# Browser tests run in their own pytest process: once pytest-playwright's event loop is up,
# later async tests fail ("Runner.run() cannot be called from a running event loop").
test: install
	$(PY) -m pytest -m "not browser"
	$(PY) -m pytest -m browser

test-fast: install
	$(PY) -m pytest -m "not browser" -x -q

test-browser: install
	$(PY) -m pytest -m browser

# DATABASE_URL/REDIS_URL default to the local servers and a `console_bench` database.
# BENCH_ARGS="--size full" adds 1,000 waiting agents and 1,000 reviewer sockets.
bench: install
	$(PY) -m console.bench $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=agents/sdk/src $(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Hashes for every file of every pinned release: `make install` refuses anything else.
lock: install
	$(VENV)/bin/pip-compile --quiet --generate-hashes --extra dev --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --extra langgraph --extra openai-agents --extra mcp \
		--extra langchain -o tests/agents/sdk/requirements-author.lock agents/sdk/pyproject.toml

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .ruff_cache .mypy_cache
