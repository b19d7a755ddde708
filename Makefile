# Two commands do all set-up on a fresh machine:
#   make run    set up, then bring the study server up on the embedded default
#   make test   set up, then run lint and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/normlime up

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache
