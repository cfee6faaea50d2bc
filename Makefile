# One command each on a fresh machine: every target below creates the virtual env first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
# pytest-xdist workers; CI machines have 2 cores.
WORKERS ?= 2

.PHONY: setup train test test-fast test-random lint tensorboard bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. The bench extra (Stable-Baselines3) is included so
# `make bench` works and the benchmark's helpers are tested.
# Nothing is byte-compiled at install: Python compiles a module the first time it is imported and
# keeps the .pyc. A run imports about 1,400 of the venv's 20,900 files, so compiling all of them
# (pip's default, one file at a time, or compileall on every core) cost more than it saved: on an
# AVX2-only 2-core VM, compileall took 45 s of a 150 s `make setup`, while the first run after an
# install without it starts 3-5 s slower, once (docs/benchmarks.md, "Before the first command").
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile -e '.[dev,bench,sweep]'
	touch $(STAMP)

train: setup
	$(BIN)/train $(ARGS)

test: setup
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup --durations=15 $(ARGS)

# Everything but the learning tests.
test-fast: setup
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -m "not learning" $(ARGS)

# The whole suite in a random order (pytest-random-order), to catch tests that depend on another's
# leftovers; SEED=N repeats an order.
test-random: setup
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -p random_order --random-order-bucket=global \
		$(if $(SEED),--random-order-seed=$(SEED)) $(ARGS)

lint: setup
	$(BIN)/ruff check src tests scripts

tensorboard: setup
	$(BIN)/tensorboard --logdir outputs --bind_all

bench: setup
	$(BIN)/python scripts/benchmark.py $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
