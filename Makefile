# The two commands a new user needs: `make search` and `make test`.
# `make test-fast` is the edit loop: no slow, Ray or PostgreSQL tests.
# Both create (once) and reuse a virtual environment in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup search test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned, so no resolver step can pull a CUDA build on a CPU machine.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

search: $(STAMP)
	$(BIN)/srnas search $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q --durations=5 -m "not slow and not ray and not postgres" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .


clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
