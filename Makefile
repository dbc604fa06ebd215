# Two entry points for a newcomer (Python 3.11+ and Java 17): `make sample` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PATIENTS ?= 1000

.PHONY: install sample test test-cluster lint bench clean

$(BIN)/medspark: pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "medspark: error: Java not found: install Java 17 and put java on PATH" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/medspark

# The sample run needs a pseudonym key: a random one is made once for this checkout (never committed). On real
# data, set MEDSPARK_PSEUDONYM_KEY from your secret store instead.
.sample-pseudonym-key:
	@umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_hex(32))" > $@

sample: install .sample-pseudonym-key
	$(BIN)/medspark generate --patients $(PATIENTS) --seed 42 --out sample-data
	MEDSPARK_PSEUDONYM_KEY=$${MEDSPARK_PSEUDONYM_KEY:-$$(cat .sample-pseudonym-key)} \
	  $(BIN)/medspark --lakehouse lakehouse pipeline --source sample-data

# Two pytest workers, each with its own SparkSession (local[2]); a test file stays on one worker, so module
# fixtures (a generated population, a built lakehouse) are built once. MEDSPARK_REQUIRE_AIRFLOW: the Airflow DAG
# test fails instead of skipping when Airflow is missing. The standalone-cluster test
# (tests/e2e/test_cluster.py) is NOT part of it: with it, a CI rehearsal took 1,919 s (limit 1,800); run
# `make test-cluster`. --durations: the slowest tests in the CI log.
test: install
	MEDSPARK_REQUIRE_AIRFLOW=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

# Only the standalone-cluster test (a master and two workers on 127.0.0.1) against local mode.
test-cluster: install
	MEDSPARK_CLUSTER_TEST=1 $(BIN)/python -m pytest -q tests/e2e/test_cluster.py

lint: install
	$(BIN)/ruff check medspark jobs tests bench dags
	$(BIN)/mypy medspark

clean:
	rm -rf sample-data lakehouse .pytest-lakehouse
