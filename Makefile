# hdc — two commands: `make run` and `make test` (both set everything up first).
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
HDC   := $(VENV)/bin/hdc

.PHONY: setup run test lint typecheck pytest bench-catalog bench-monitor bench-archive bench clean

setup:
	@bash scripts/setup.sh

run: setup
	$(HDC) run

test: setup lint typecheck pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(VENV)/bin/pytest -q -ra --durations=15

bench-monitor: setup
	$(PY) -m bench.monitor

bench-archive: setup
	$(PY) -m bench.archive

bench: bench-catalog bench-monitor bench-archive

clean:
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache

bench-catalog: setup
	$(PY) -m bench.catalog
