# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv kcl kinesis-local lint test unit demo bench model clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The KCL MultiLangDaemon jars (Maven Central, cached in .local/kcl-jars) and amazon-kclpy.
kcl: venv
	$(BIN)/python scripts/fetch_kcl_jars.py --install-kclpy

# The Kinesis emulator (npm kinesis-local), pinned in tools/kinesis.
kinesis-local: tools/kinesis/node_modules/.package-lock.json

tools/kinesis/node_modules/.package-lock.json: tools/kinesis/package-lock.json
	npm ci --no-audit --no-fund --prefix tools/kinesis

lint: venv
	$(BIN)/ruff check fraud tests scripts
	$(BIN)/mypy fraud

# Two pytest workers: the e2e tests mostly wait (JVM start, lease timers), so two of them
# side by side, or one beside the unit tests, finish sooner; each has its own streams and
# lease tables, and their timeouts only guard against a hang.
test: lint kcl kinesis-local
	$(BIN)/pytest -n 2 --dist worksteal --durations=15

unit: venv
	$(BIN)/pytest tests/unit

demo: venv kcl kinesis-local
	$(BIN)/fraud demo

# Every benchmark, one after the other; figures in .local/bench/results.json.
# `make bench BENCH_ARGS=--quick` is a one-minute smoke run; BENCH_ARGS=--record updates
# docs/BENCHMARKS.md.
bench: venv
	$(BIN)/python scripts/run_benchmarks.py $(BENCH_ARGS)

# The shipped default model: generated data (fixed seed), then training (same seed, same metrics).
model: venv
	$(BIN)/fraud generate --out .local/model-data/tx.parquet --users 3000 --terminals 800 --days 90 --seed 42
	$(BIN)/fraud train --input .local/model-data/tx.parquet --train-start 2024-02-01 --train-end 2024-03-10 --test-start 2024-03-17 --test-end 2024-03-31 --seed 0 --out models/default

clean:
	rm -rf $(VENV) .local .mypy_cache .pytest_cache .ruff_cache build *.egg-info
