# `make demo`: set everything up and run the main job; `make test`: set up and run all tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CNNLAB_DATA ?= $(abspath ../shared/data)

.PHONY: setup demo lint format test test-fast test-gpu

$(BIN)/cnnlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

setup: $(BIN)/cnnlab

demo: setup
	$(BIN)/cnnlab train lenet5 --dataset mnist --out runs/lenet5-mnist --overwrite

# style and lint (ruff), and the package's layers (import-linter's contract in pyproject.toml)
lint: setup
	$(BIN)/ruff check cnnlab tests bench
	$(BIN)/ruff format --check cnnlab tests bench
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format cnnlab tests bench
	$(BIN)/ruff check --fix cnnlab tests bench

# two test processes of one thread each: most tests are small steps that one core runs as fast as two;
# an idle process takes tests queued for the other (worksteal: 613 s against 650 s in whole chunks)
test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=10

test-fast: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not slow"

test-gpu: setup
	$(BIN)/python -m pytest -q -m gpu
