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
# pip byte-compiles what it installs one file at a time, about half of the install (measured: 108 s
# with, 54 s without on 2 cores); compileall does the same on every core (28 s there). Like pip, it
# goes on past a file this Python cannot parse (torch ships one for Python 3.12 only).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile -e '.[dev,bench,sweep]'
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
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
