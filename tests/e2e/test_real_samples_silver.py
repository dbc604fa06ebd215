"""Silver on a real Synthea CSV export (../shared/data/synthea-csv-ma27): persons = patients, visits = encounters,
and condition / drug / measurement rows equal to the source rows that map to those domains, recounted
independently with DuckDB straight from the CSV files and the shipped vocabulary."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import duckdb
import pytest
from pyspark.sql import SparkSession

from medspark.config import load_config
from medspark.ingestion.job import ingest
from medspark.silver.job import build_silver

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

TABLES = ("patients", "encounters", "conditions", "medications", "procedures", "observations")


def _recount(sample: Path, table: str, domain: str, vocabularies: str, day_column: str) -> int:
    """Distinct (patient, standard concept, day or time, encounter) of the source rows whose code maps to ``domain``.

    The mapping is done in SQL from the shipped concept / concept_relationship CSVs: a standard concept maps to
    itself, a non-standard one through 'Maps to' (the smallest standard target).
    """
    vocab = resources.files("medspark") / "resources" / "vocabulary"
    con = duckdb.connect()
    con.execute(f"CREATE VIEW concept AS SELECT * FROM read_csv('{vocab / 'concept.csv'}', header=true, "
                "all_varchar=true)")
    con.execute(f"CREATE VIEW rel AS SELECT * FROM read_csv('{vocab / 'concept_relationship.csv'}', header=true, "
                "all_varchar=true)")
    con.execute(f"CREATE VIEW src AS SELECT * FROM read_csv('{sample / (table + '.csv')}', header=true, "
                "all_varchar=true)")
    return con.execute(f"""
        WITH source AS (
            SELECT c.concept_id, c.standard_concept, c.domain_id FROM concept c
            WHERE c.vocabulary_id IN ({vocabularies}) AND c.invalid_reason IS NULL
        ), standard AS (
            SELECT s.concept_id AS source_id,
                   CASE WHEN s.standard_concept = 'S' THEN s.concept_id ELSE min(t.concept_id) END AS target_id
            FROM source s
            LEFT JOIN rel r ON r.concept_id_1 = s.concept_id AND r.relationship_id = 'Maps to'
                               AND r.invalid_reason IS NULL
            LEFT JOIN concept t ON t.concept_id = r.concept_id_2 AND t.standard_concept = 'S'
            GROUP BY s.concept_id, s.standard_concept
        ), coded AS (
            SELECT src.PATIENT, src.ENCOUNTER, {day_column} AS t, st.target_id
            FROM src
            JOIN concept c ON c.concept_code = src.CODE AND c.vocabulary_id IN ({vocabularies})
            JOIN standard st ON st.source_id = c.concept_id
            JOIN concept d ON d.concept_id = st.target_id
            WHERE d.domain_id = '{domain}'
        )
        SELECT count(*) FROM (SELECT DISTINCT PATIENT, ENCOUNTER, t, target_id FROM coded)
    """).fetchone()[0]


@pytest.fixture(scope="module")
def silver_lakehouse(spark: SparkSession, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real-silver")
    sample = root / "synthea"
    sample.mkdir()
    for table in TABLES:
        shutil.copy(shared_data / "synthea-csv-ma27" / f"{table}.csv", sample / f"{table}.csv")
    config = load_config("test", environ={}, lakehouse=str(root / "lh"), overrides=["silver.run_date=2026-01-15"])
    ingest(spark, config, str(sample))
    result = build_silver(spark, config)
    assert all(t.balanced for t in result.tables)
    return root


def _count(spark: SparkSession, root: Path, layer: str, table: str) -> int:
    path = root / "lh" / layer / table
    return spark.read.format("delta").load(str(path)).count() if path.exists() else 0


def test_persons_and_visits_equal_the_source(spark: SparkSession, shared_data: Path, silver_lakehouse: Path) -> None:
    sample = shared_data / "synthea-csv-ma27"
    con = duckdb.connect()
    patients = con.execute(f"SELECT count(DISTINCT Id) FROM read_csv('{sample / 'patients.csv'}')").fetchone()[0]
    encounters = con.execute(f"SELECT count(DISTINCT Id) FROM read_csv('{sample / 'encounters.csv'}')").fetchone()[0]
    assert _count(spark, silver_lakehouse, "silver", "person") == patients
    assert _count(spark, silver_lakehouse, "silver", "visit_occurrence") == encounters


@pytest.mark.parametrize(("table", "silver_table", "domain", "vocabularies", "day"), [
    ("conditions", "condition_occurrence", "Condition", "'SNOMED'", "substr(src.START, 1, 10)"),
    ("medications", "drug_exposure", "Drug", "'RxNorm'", "substr(src.START, 1, 10)"),
    ("observations", "measurement", "Measurement", "'LOINC'", "src.DATE"),
])
def test_event_rows_equal_the_source_rows_that_map_to_the_domain(
        spark: SparkSession, shared_data: Path, silver_lakehouse: Path, table: str, silver_table: str, domain: str,
        vocabularies: str, day: str) -> None:
    expected = _recount(shared_data / "synthea-csv-ma27", table, domain, vocabularies, day)
    assert expected > 0
    written = _count(spark, silver_lakehouse, "silver", silver_table)
    quarantined = _count(spark, silver_lakehouse, "quarantine", f"silver_{silver_table}")
    assert (written, quarantined) == (expected, 0)
