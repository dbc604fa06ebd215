# Two entry points for a newcomer (Python 3.11+ and Java 17): `make sample` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PATIENTS ?= 1000

.PHONY: install sample test lint bench clean

$(BIN)/medspark: pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "medspark: error: Java not found: install Java 17 and put java on PATH" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/medspark

sample: install
	$(BIN)/medspark generate --patients $(PATIENTS) --seed 42 --out sample-data
	$(BIN)/medspark --lakehouse lakehouse pipeline --source sample-data

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check medspark jobs tests bench
	$(BIN)/mypy medspark

clean:
	rm -rf sample-data lakehouse .pytest-lakehouse
