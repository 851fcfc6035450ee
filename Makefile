# Parley: `make run` serves the chat, `make test` runs everything CI runs.
# The interpreter the venv is made from: the system's CPython when it is 3.11 or newer and
# can make a venv (Debian builds it with profile-guided and link-time optimization, linked
# statically: 5% less CPU per ingested message than a plain build such as pyenv's;
# docs/performance.md, "Durable ingest, round 8"), else the first python3 on PATH.
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
	$$p -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; exit 0; }; done; echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
DATA   ?= ./data

.PHONY: run test lint typecheck unit integration e2e fault bench bench-smoke system-deps autobahn conformance clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Runtime install: only what `parley serve` needs.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Everything the tests need on top, and the load generator (bench/, a distribution of its own).
$(VENV)/.dev-installed: pyproject.toml bench/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]' -e ./bench
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	mkdir -p $(DATA)
	$(BIN)/parley serve --host $(HOST) --port $(PORT) --data $(DATA)

# Autobahn|Testsuite, the WebSocket conformance suite tests/conformance runs: Python 2.7
# (through pyenv), every package pinned with its hash. A --target install has no .pth
# to make `zope` a namespace package: Twisted's `import zope.interface` needs the file.
# `python` in there names the interpreter the test runs it with.
PYTHON2  ?= env PYENV_VERSION=2.7.18 python2
AUTOBAHN := $(VENV)/autobahn
$(AUTOBAHN)/.installed: scripts/autobahn-requirements.txt
	rm -rf $(AUTOBAHN)
	$(PYTHON2) -m pip install -q --no-deps --require-hashes --target $(AUTOBAHN) -r $<
	touch $(AUTOBAHN)/zope/__init__.py
	$(PYTHON2) -c 'import sys; print(sys.executable)' > $(AUTOBAHN)/python
	touch $@

autobahn: $(AUTOBAHN)/.installed

# Debian packages the tests drive: Chromium, redis-server, PostgreSQL (installed only when missing).
system-deps:
	bash scripts/system-deps.sh

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy --strict src/parley bench/parley_bench

# The browser client's DOM-free modules (src/parley/web/*.mjs) under Node's own test runner.
.PHONY: web-unit
web-unit:
	node --test tests/web/*.test.mjs

# The suite runs on PYTEST_WORKERS processes (pytest-xdist), a test file per worker at a
# time: most tests wait on a server process or a socket, so more workers than cores pay.
# Files go out in the order of the collection, the slowest first (tests/conftest.py).
# The conformance suite runs alone after, so that its summary shows in the output.
# Both run under coverage.py, the servers they start included ([tool.coverage] in
# pyproject.toml); the report lists the lines and branches of src/parley left uncovered.
PYTEST_WORKERS ?= 4
COVERAGE := $(BIN)/coverage
test:
	$(MAKE) --no-print-directory -j3 $(VENV)/.dev-installed system-deps autobahn
	$(MAKE) --no-print-directory lint typecheck web-unit
	$(COVERAGE) erase
	$(COVERAGE) run -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--ignore=tests/conformance
	PARLEY_AUTOBAHN=$(AUTOBAHN) $(COVERAGE) run -m pytest tests/conformance
	$(COVERAGE) combine -q
	$(COVERAGE) report
	$(MAKE) --no-print-directory bench-smoke

unit integration e2e fault: $(VENV)/.dev-installed
	$(BIN)/pytest tests/$@

conformance: $(VENV)/.dev-installed autobahn
	PARLEY_AUTOBAHN=$(AUTOBAHN) $(BIN)/pytest tests/conformance

bench: $(VENV)/.dev-installed system-deps
	bash bench/run.sh

bench-smoke: $(VENV)/.dev-installed
	BENCH_SMOKE=1 bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
