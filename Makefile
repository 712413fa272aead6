# tradepipe: every target creates or refreshes the virtual environment it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast test-slow bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the most complete main job the project has, on embedded defaults (1 M synthetic orders
## through the five pinned stage processes, fsync per batch), ending with a summary.
run: $(STAMP)
	$(BIN)/tradepipe run --fresh

## test: lint, then the fast suite, then the slow (multiprocess, fault, long property) suite.
test: lint test-fast test-slow

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: every benchmark in quick mode (drop --quick for full runs; see perf/README.md).
BENCHES := ring matching risk journal feeds pipeline recovery market_data gateway gateway_core
bench: $(STAMP)
	mkdir -p perf/results
	for b in $(BENCHES); do $(BIN)/python perf/bench_$$b.py --quick --json perf/results/$$b.json || exit 1; done

## clean: stale shared memory, tool caches, and numba's compiled kernels (stale after a record layout change).
clean:
	-$(BIN)/tradepipe clean
	rm -rf .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find ringbuffer stages pipeline perf tests -name '*.nb[ic]' -delete
