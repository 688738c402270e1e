# cbcv: every target creates or reuses .venv and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
LAB_STAMP := $(VENV)/.installed-lab
CONFIG ?= configs/madrigal.yaml
OUT ?= reports

.PHONY: report test lint lab bench bench-scale clean-venv

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; cbcv needs Python 3.11 (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,analysis]"
	@touch $@

## make report: the full Madrigal valuation report (CONFIG=configs/cdnow.yaml for CDNOW, or any company's config)
report: $(STAMP)
	$(BIN)/cbcv report $(CONFIG) --out $(OUT)

## make test: lint and the test suite, on two workers (pytest-xdist; a test file stays on one worker,
## so its module fixtures are built once)
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

## make lab: JupyterLab on the notebooks
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks

## make bench: speed and memory benchmarks against named peers
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

## make bench-scale: 1M and 10M simulated customers end to end (stage times, peak memory)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

clean-venv:
	rm -rf $(VENV)
