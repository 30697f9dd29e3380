# The README's two set-up commands are `make demo` and `make test`. Each creates (or reuses)
# .venv in the checkout and installs the project into it first.
#
# torch: TORCH_SPEC defaults to the CPU wheel that pip finds on this machine's disk
# (torch==2.13.0). On a GPU machine run e.g. `make demo TORCH_SPEC=torch` to get the CUDA
# build from PyPI; the project itself only asks for torch>=2.2.

PYTHON ?= python3.11
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test-deps lint demo test test-unit test-integration test-e2e bench up status down clean help

help:
	@echo "make demo    run the main job (raymlops demo) on the local embedded platform"
	@echo "make test    run the whole test suite (unit, integration, e2e)"
	@echo "make lint    ruff over the code and the tests"
	@echo "make bench   run the benchmarks and rewrite benchmarks/RESULTS.md"

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	@touch $(STAMP)

venv: $(STAMP)

# Services and system packages the tests use (Chromium, Prometheus): see the script.
test-deps:
	@scripts/test-deps.sh

demo: $(STAMP)
	$(BIN)/raymlops demo

# ruff with the rule set in pyproject.toml ([tool.ruff]); CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check raymlops tests benchmarks jobs examples

test: $(STAMP) test-deps
	$(BIN)/python -m pytest tests/unit tests/integration tests/e2e $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP) test-deps
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

up: $(STAMP)
	$(BIN)/raymlops up
status: $(STAMP)
	$(BIN)/raymlops status
down: $(STAMP)
	$(BIN)/raymlops down

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
