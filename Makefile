# The two commands of the README, `make train` and `make test`, set up what is missing first:
# the virtual environment (.venv), the packages, the data and the metric classifiers.
# Everything is safe to repeat.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup data train test test-slow lint results
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,cluster]'
	touch $@

data: setup
	$(PY) scripts/prepare_data.py

train: data
	$(PY) src/train.py $(ARGS)

test: data
	$(PY) -m pytest $(PYTEST_ARGS)

# Every table of docs/results.md (hours on a CPU; TABLE=<name> for one, see scripts/reproduce.py)
TABLE ?= all
results: data
	$(PY) scripts/reproduce.py $(TABLE) $(ARGS)

test-slow: data
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests scripts
