# The two commands of the README: `make demo` and `make test`, each from nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test lint bench clean install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/amtsbote demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check xoev connectors flows tests bench
	$(BIN)/ruff format --check xoev connectors flows tests bench
	$(BIN)/mypy xoev connectors flows

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
