# Two commands do all the set-up on a machine with only Python 3 and pip:
#   make train ARGS="loss=hinge reg=l1"     make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: train test venv clean bench study

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python scripts/train.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# Speed against PyTorch's own paths; writes benchmarks/RESULTS.md (about 5-10 min on 2 cores).
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

# The lecture study: trains through lregloss.train, writes results/*.md and *.png (about 9 min on 2 cores).
study: $(STAMP)
	$(BIN)/python scripts/study.py $(ARGS)

clean:
	rm -rf $(VENV) logs *.egg-info
