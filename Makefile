# The two commands a new user needs: `make search` and `make test`.
# `make test-fast` is the edit loop: no slow, Ray or PostgreSQL tests; `make test-e2e` the
# whole-deployment tests CI runs after `make test`.
# Both create (once) and reuse a virtual environment in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup search test test-e2e test-fast lint bench clean

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

# Two passes: the tests without Ray on JOBS processes (pytest-xdist), then the Ray tests one at
# a time (a Ray started without an address joins any cluster on the machine). Exit 5 is
# "nothing selected", e.g. ARGS naming a file of one kind only.
JOBS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=10 -n $(JOBS) -m "not ray and not e2e" $(ARGS) \
		|| [ $$? -eq 5 ]
	$(BIN)/python -m pytest -q --durations=10 -m "ray and not e2e" $(ARGS) || [ $$? -eq 5 ]

# The whole-deployment tests (a two-node cluster, a target node, killed drivers and workers, a
# database outage under a Ray search): minutes each, run by CI after `make test`.
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q --durations=10 -m e2e $(ARGS) || [ $$? -eq 5 ]

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q --durations=5 -n $(JOBS) -m "not slow and not ray and not postgres" \
		$(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .


clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
