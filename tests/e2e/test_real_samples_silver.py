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


# Each source table of the export, the vocabulary of its CODE column and its time column.
SOURCES = (("conditions", "SNOMED", "START"), ("medications", "RxNorm", "START"), ("procedures", "SNOMED", "START"),
           ("observations", "LOINC", "DATE"))


def _recount(sample: Path, domain: str, *, by_day: bool) -> int:
    """Distinct (patient, standard concept, time, encounter) over every source row whose code maps to ``domain``.

    The mapping is done in SQL from the shipped concept / concept_relationship CSVs: a standard concept maps to
    itself, a non-standard one through 'Maps to' (the smallest standard target). Time is the day for conditions,
    drugs and procedures, the timestamp for measurements and observations (the CDM's own granularity).
    """
    vocab = resources.files("medspark") / "resources" / "vocabulary"
    con = duckdb.connect()
    for name, file in (("concept", "concept.csv"), ("rel", "concept_relationship.csv")):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv('{vocab / file}', header=true, all_varchar=true)")
    rows = " UNION ALL ".join(
        f"SELECT PATIENT, ENCOUNTER, CODE, '{vocabulary}' AS vocabulary_id, "
        f"{'substr(' + column + ', 1, 10)' if by_day else column} AS t "
        f"FROM read_csv('{sample / (table + '.csv')}', header=true, all_varchar=true)"
        for table, vocabulary, column in SOURCES)
    return con.execute(f"""
        WITH src AS ({rows}),
        standard AS (
            SELECT s.concept_id AS source_id, s.vocabulary_id, s.concept_code,
                   CASE WHEN s.standard_concept = 'S' THEN s.concept_id ELSE min(t.concept_id) END AS target_id
            FROM concept s
            LEFT JOIN rel r ON r.concept_id_1 = s.concept_id AND r.relationship_id = 'Maps to'
                               AND r.invalid_reason IS NULL
            LEFT JOIN concept t ON t.concept_id = r.concept_id_2 AND t.standard_concept = 'S'
            WHERE s.invalid_reason IS NULL
            GROUP BY s.concept_id, s.vocabulary_id, s.concept_code, s.standard_concept
        ), coded AS (
            SELECT src.PATIENT, src.ENCOUNTER, src.t, st.target_id
            FROM src
            JOIN standard st ON st.concept_code = src.CODE AND st.vocabulary_id = src.vocabulary_id
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


@pytest.mark.parametrize(("silver_table", "concept", "domain", "by_day"), [
    ("condition_occurrence", "condition_concept_id", "Condition", True),
    ("drug_exposure", "drug_concept_id", "Drug", True),
    ("measurement", "measurement_concept_id", "Measurement", False),
])
def test_event_rows_equal_the_source_rows_that_map_to_the_domain(
        spark: SparkSession, shared_data: Path, silver_lakehouse: Path, silver_table: str, concept: str,
        domain: str, by_day: bool) -> None:
    expected = _recount(shared_data / "synthea-csv-ma27", domain, by_day=by_day)
    assert expected > 0
    path = str(silver_lakehouse / "lh" / "silver" / silver_table)
    # rows with a standard concept; unmapped codes (concept 0) are kept too, but belong to no domain
    mapped = spark.read.format("delta").load(path).where(f"{concept} <> 0").count()
    quarantined = _count(spark, silver_lakehouse, "quarantine", f"silver_{silver_table}")
    assert (mapped, quarantined) == (expected, 0)
