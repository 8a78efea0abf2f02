# imstream: `make demo` runs the main job, `make test` the test suite.
# Both set up everything on a fresh machine: a virtualenv with the Python
# packages, the Kafka jars (Maven, cached in ~/.cache/imstream), ClickHouse
# (Debian's package), then start the local stack.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint bench up down status logs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)  ## start the stack and show the pipeline working
	$(BIN)/imstream demo

test: $(STAMP)  ## start the stack (or reuse it) and run every test
	$(BIN)/pytest

bench: $(STAMP)  ## throughput, latency, fan-out and reads against the raw broker
	$(BIN)/imstream up
	$(BIN)/python -m bench --profile full

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

up down status logs: $(STAMP)
	$(BIN)/imstream $@

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
