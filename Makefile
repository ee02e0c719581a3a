# Puppet Engine — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
AGENTS ?= agents

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint bench sandbox install browser-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the CPU build on purpose: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,postgres,local-embeddings]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/puppet-engine run --agents $(AGENTS) --host $(HOST) --port $(PORT)

sandbox: $(STAMP)
	$(BIN)/puppet-engine sandbox

# Headless Chromium for the dashboard test comes from Debian, never from a browser download.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "warning: chromium is not installed; the browser test will be skipped"; fi; }

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest -q

# lint-imports checks the import contracts in pyproject.toml (layers, sandbox, no cycles).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
