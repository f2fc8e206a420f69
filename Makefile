# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv lint test unit demo bench model clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check fraud tests scripts
	$(BIN)/mypy fraud

test: lint
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

demo: venv
	$(BIN)/fraud demo

bench: venv
	$(BIN)/python scripts/run_benchmarks.py

clean:
	rm -rf $(VENV) .local .mypy_cache .pytest_cache .ruff_cache build *.egg-info
