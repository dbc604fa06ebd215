"""The gate on Spark: compiled check columns agree with Great Expectations on planted failures of every kind,
quarantine split, thresholds, severities, results without sample values, idempotent result writes, Data Docs.

One suite and one GE validation (module fixture) serve most tests: GE costs seconds per run.
Expected counts and row ids below are worked out by hand from the literal rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.errors import ConfigError, DataQualityError
from medspark.quality.checks import split_by_checks, with_check_columns
from medspark.quality.gate import build_expectation_suite, enforce, validate_table
from medspark.quality.results import build_data_docs, build_result_rows, copy_to_hadoop, write_results
from medspark.quality.suite import Suite, load_suites
from medspark.silver import omop

RUN_DATE = dt.date(2024, 6, 30)
T = "measurement"


def _e(name: str, expectation: str, severity: str = "error", **kwargs: object) -> dict:
    return {"id": f"{T}.{name}", "category": "conformance", "severity": severity, "description": name,
            "expectation": expectation, "kwargs": kwargs}


def _x(name: str, sql: str, severity: str = "error") -> dict:
    return {"id": f"{T}.{name}", "category": "plausibility", "severity": severity, "description": name,
            "expression": {"sql": sql}}


CHECKS = [
    _e("measurement_id.unique", "expect_column_values_to_be_unique", column="measurement_id"),
    _e("person_id.not_null", "expect_column_values_to_not_be_null", column="person_id"),
    _e("value_as_number.range", "expect_column_values_to_be_between", column="value_as_number", min_value=0,
       max_value=500),
    _e("measurement_type_concept_id.in_set", "expect_column_values_to_be_in_set",
       column="measurement_type_concept_id", value_set=[32817, 32810]),
    _e("unit_source_value.format", "expect_column_values_to_match_regex", column="unit_source_value",
       regex="^[A-Za-z/%]+$"),
    _e("natural_key.unique", "expect_compound_columns_to_be_unique",
       column_list=["person_id", "measurement_concept_id", "measurement_date"]),
    _e("range_high.above_range_low", "expect_column_pair_values_a_to_be_greater_than_b", column_A="range_high",
       column_B="range_low", or_equal=True),
    {"id": f"{T}.person_id.in_person", "category": "conformance", "description": "fk",
     "in_reference": {"column": "person_id", "table": "person", "ref_column": "person_id"}},
    {"id": f"{T}.visit_occurrence_id.in_visit_occurrence", "category": "conformance", "description": "fk",
     "in_reference": {"column": "visit_occurrence_id", "table": "visit_occurrence",
                      "ref_column": "visit_occurrence_id"}},
    {"id": f"{T}.measurement_concept_id.domain", "category": "conformance", "description": "domain",
     "concept_domain": {"column": "measurement_concept_id", "domains": ["Measurement"], "standard": True,
                        "allow_zero": True}},
    _x("measurement_date.after_birth", "measurement_date >= to_date(_person_birth_datetime)"),
    _x("measurement_date.before_death", "measurement_date <= date_add(_person_death_date, 60)"),
    _x("measurement_date.not_future", "measurement_date <= :run_date"),
    _x("measurement_concept_id.mapped", "measurement_concept_id <> 0", severity="warn"),
    _e("row_count", "expect_table_row_count_to_be_between", severity="warn", max_value=3),
    _e("measurement_id.type", "expect_column_values_to_be_of_type", column="measurement_id", type_="LongType"),
]
SUITE = Suite.model_validate({"table": T, "threshold": 0.8, "checks": CHECKS})

ROWS_DDL = """measurement_id bigint, person_id bigint, visit_occurrence_id bigint, measurement_concept_id int,
    measurement_date date, measurement_type_concept_id int, value_as_number double, unit_source_value string,
    range_low double, range_high double"""
D = dt.date
ROWS = [
    (1, 1, 100, 3027018, D(2024, 1, 1), 32817, 70.0, "/min", 60.0, 100.0),
    (2, 1, 100, 3020891, D(2024, 1, 1), 32817, 37.0, "Cel", None, None),
    (3, None, None, 3027018, D(2024, 1, 2), 32817, 80.0, "/min", 100.0, 60.0),
    (3, 9, 300, 8507, D(2024, 1, 3), 99, 987654.0, "ZZ SECRET!", 1.0, 2.0),
    (5, 1, 100, 3027018, D(2024, 1, 1), 32810, 72.0, "/min", None, 5.0),
    (6, 1, None, 2000000201, D(1970, 1, 1), 32817, None, None, None, None),
    (7, 2, 200, 0, D(2020, 4, 1), 32817, -1.0, "kg", 5.0, 5.0),
    (8, 2, 200, 3027018, D(2025, 1, 1), None, 60.0, "/min", None, None),
    (9, 2, 200, 3027018, D(2019, 12, 31), 32817, 60.0, "%", 1.0, None),
]
# Rows (by position) failing each row-level check, worked out by hand.
EXPECTED_FAILURES = {
    "measurement_id.unique": {3, 4},  # id 3 twice
    "person_id.not_null": {3},
    "value_as_number.range": {4, 7},  # 987654 and -1; row 6 is NULL (passes)
    "measurement_type_concept_id.in_set": {4},  # 99; row 8 is NULL
    "unit_source_value.format": {4},  # space and '!'; row 6 is NULL
    "natural_key.unique": {1, 5},  # (1, 3027018, 2024-01-01) twice; row 3 has a NULL part (ignored)
    "range_high.above_range_low": {3},  # 60 < 100; rows with a NULL side are ignored, 5 >= 5 passes
    "person_id.in_person": {4},  # person 9 unknown; row 3 NULL passes
    "visit_occurrence_id.in_visit_occurrence": {4},  # visit 300 unknown
    "measurement_concept_id.domain": {4, 6},  # 8507 is Gender; 2000000201 is not standard; 0 is allowed
    "measurement_date.after_birth": {6},  # 1970 before the 1980 birth
    "measurement_date.before_death": {7, 8},  # person 2 died 2020-01-01: grace ends 2020-03-01
    "measurement_date.not_future": {8},  # 2025 after the run date
    "measurement_concept_id.mapped": {7},  # warn only
}
FAILED_IDS = {  # _failed_checks per row position (error checks, suite order)
    1: ["natural_key.unique"],
    2: [],
    3: ["measurement_id.unique", "person_id.not_null", "range_high.above_range_low"],
    4: ["measurement_id.unique", "value_as_number.range", "measurement_type_concept_id.in_set",
        "unit_source_value.format", "person_id.in_person", "visit_occurrence_id.in_visit_occurrence",
        "measurement_concept_id.domain"],
    5: ["natural_key.unique"],
    6: ["measurement_concept_id.domain", "measurement_date.after_birth"],
    7: ["value_as_number.range", "measurement_date.before_death"],
    8: ["measurement_date.before_death", "measurement_date.not_future"],
    9: [],
}


def _context(spark: SparkSession) -> dict[str, DataFrame]:
    # Person 1 appears twice (a candidate and its silver version): the join must not duplicate rows.
    persons = spark.createDataFrame(
        [(1, 1980, dt.datetime(1980, 5, 1)), (1, 1980, dt.datetime(1980, 5, 1)), (2, 1990, dt.datetime(1990, 1, 1))],
        "person_id bigint, year_of_birth int, birth_datetime timestamp")
    return {
        "person": persons,
        "death": spark.createDataFrame([(2, D(2020, 1, 1))], "person_id bigint, death_date date"),
        "visit_occurrence": spark.createDataFrame([(100, 1), (200, 2), (200, 2)],
                                                  "visit_occurrence_id bigint, person_id bigint"),
        "concept": spark.createDataFrame(
            [(3027018, "Measurement", "S"), (3020891, "Measurement", "S"), (2000000201, "Measurement", None),
             (8507, "Gender", "S")],
            "concept_id int, domain_id string, standard_concept string"),
    }


@pytest.fixture(scope="module")
def gated(spark_session: SparkSession):
    rows = spark_session.createDataFrame(ROWS, ROWS_DDL)
    flagged = with_check_columns(rows, SUITE, _context(spark_session), run_date=RUN_DATE).cache()
    validation = validate_table(flagged, SUITE, run_id="run-1", run_date=RUN_DATE)
    yield flagged, validation
    flagged.unpersist()


def test_compiled_columns_and_great_expectations_count_the_planted_failures(gated) -> None:
    flagged, validation = gated
    by_id = {o.check_id: o for o in validation.outcomes}
    ok = flagged.orderBy("measurement_id", "measurement_date").collect()
    for name, positions in EXPECTED_FAILURES.items():
        check = SUITE.check(f"{T}.{name}")
        # GE's own count on the real columns (native) or on the compiled column (medspark kinds)...
        assert by_id[check.id].unexpected_count == len(positions), name
        assert by_id[check.id].element_count == len(ROWS), name
        # ...and the compiled column flags exactly the planted rows.
        assert {i + 1 for i, r in enumerate(ok) if not r[check.ok_column]} == positions, name
    assert validation.row_count == 9
    assert validation.failed_rows == 7


def test_failed_checks_list_error_checks_in_suite_order_and_warnings_do_not_quarantine(gated) -> None:
    flagged, _ = gated
    got = flagged.orderBy("measurement_id", "measurement_date").select("_failed_checks").collect()
    assert [r["_failed_checks"] for r in got] == [[f"{T}.{n}" for n in FAILED_IDS[i]] for i in range(1, 10)]
    # Row 7 fails the warn check "mapped" as well; it is not among its failed checks.
    assert not flagged.where("measurement_id = 7 AND NOT _ok__measurement__measurement_concept_id__mapped").isEmpty()


def test_split_by_checks_quarantines_with_reasons_and_drops_check_columns(gated, spark_session) -> None:
    flagged, _ = gated
    passed, failed = split_by_checks(flagged)
    assert passed.columns == [c.split()[0] for c in ROWS_DDL.replace("\n", " ").split(", ")]
    assertDataFrameEqual(passed, spark_session.createDataFrame([ROWS[1], ROWS[8]], ROWS_DDL))
    assert failed.columns == [*passed.columns, "_failed_checks", "_quarantine_reason"]
    reasons = {(r["measurement_id"], r["measurement_date"]): r["_quarantine_reason"]
               for r in failed.select("measurement_id", "measurement_date", "_quarantine_reason").collect()}
    assert reasons[(8, D(2025, 1, 1))] == (
        "dq:measurement.measurement_date.before_death,measurement.measurement_date.not_future")
    assert reasons[(1, D(2024, 1, 1))] == "dq:measurement.natural_key.unique"
    assert len(reasons) == 7


def test_threshold_and_table_level_severity_decide_the_gate(gated, spark_session) -> None:
    _, validation = gated
    # 7 of 9 rows fail: within 0.8; the failing row-count check is only a warning.
    assert validation.passed
    assert [o.success for o in validation.outcomes if o.check_id == f"{T}.row_count"] == [False]
    enforce([validation])
    stricter = dataclasses.replace(validation, suite=SUITE.model_copy(update={"threshold": 0.5}))
    with pytest.raises(DataQualityError, match=r"measurement: 7 of 9 rows \(77\.78%\) fail error checks, "
                                               r"threshold 50\.00%") as caught:
        enforce([stricter])
    assert "987654" not in str(caught.value)
    # An error-severity table-level check fails the table whatever the rows.
    typed = Suite.model_validate({"table": T, "threshold": 1.0, "checks": [
        _e("measurement_id.type", "expect_column_values_to_be_of_type", column="measurement_id", type_="StringType"),
        _e("person_id.not_null", "expect_column_values_to_not_be_null", column="person_id")]})
    rows = spark_session.createDataFrame(ROWS[:2], ROWS_DDL)
    flagged = with_check_columns(rows, typed, {}, run_date=RUN_DATE)
    result = validate_table(flagged, typed, run_id="run-2", run_date=RUN_DATE)
    assert result.failure_rate == 0.0
    with pytest.raises(DataQualityError, match=r"failed table checks: measurement\.measurement_id\.type"):
        enforce([result])


def test_great_expectations_results_carry_no_sample_values(gated) -> None:
    _, validation = gated
    text = json.dumps(validation.ge_result.to_json_dict(), default=str)
    for key in ("partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list",
                "unexpected_list", "unexpected_rows", "unexpected_index_list", "unexpected_index_query"):
        assert key not in text
    for planted in ("987654", "ZZ SECRET", "2000000201", "2025-01-01"):
        assert planted not in text
    unique = next(r for r in validation.ge_result.results
                  if r.expectation_config.meta["check_id"] == f"{T}.measurement_id.unique")
    assert set(unique.result) == {"element_count", "unexpected_count", "unexpected_percent", "missing_count",
                                  "missing_percent", "unexpected_percent_total", "unexpected_percent_nonmissing"}


def test_result_rows_are_deterministic_and_writes_are_idempotent_per_run(gated, spark_session, tmp_path) -> None:
    _, validation = gated
    rows = build_result_rows(spark_session, [validation])
    assertDataFrameEqual(rows, build_result_rows(spark_session, [validation]))
    picked = rows.where(f"check_id IN ('{T}.natural_key.unique', '{T}.row_count', '{T}.quarantine_rate')")
    expected = spark_session.createDataFrame([
        ("run-1", RUN_DATE, T, f"{T}.natural_key.unique", "expect_compound_columns_to_be_unique", "conformance",
         9, 2, 2 / 9, 0.8, True),
        ("run-1", RUN_DATE, T, f"{T}.row_count", "expect_table_row_count_to_be_between", "conformance",
         9, None, None, None, False),
        ("run-1", RUN_DATE, T, f"{T}.quarantine_rate", "medspark_quarantine_rate", "gate", 9, 7, 7 / 9, 0.8, True),
    ], rows.schema)
    assertDataFrameEqual(picked, expected)
    path = str(tmp_path / "ops" / "dq_results")
    write_results(spark_session, rows, path)
    # A replay of run-1 (replaces its rows, never duplicates them) together with a new run (appended).
    again = build_result_rows(spark_session, [dataclasses.replace(validation, run_id="run-9")])
    write_results(spark_session, rows.unionByName(again), path)
    written = spark_session.read.format("delta").load(path)
    counts = {r["run_id"]: r["count"] for r in written.groupBy("run_id").count().collect()}
    assert counts == {"run-1": len(CHECKS) + 1, "run-9": len(CHECKS) + 1}


def test_data_docs_site_is_built_without_values(gated, spark_session, tmp_path: Path) -> None:
    _, validation = gated
    index = build_data_docs([validation], str(tmp_path / "ops" / "data_docs"))
    assert index == str(tmp_path / "ops" / "data_docs" / "index.html")
    assert Path(index).is_file()
    pages = [p for p in (tmp_path / "ops" / "data_docs").rglob("*.html")]
    assert len(pages) >= 3  # index, the suite, the validation
    for page in pages:
        html = page.read_text()
        assert "987654" not in html and "ZZ SECRET" not in html
    # Non-local lakehouses: files are copied through the Hadoop FileSystem (here its file: implementation).
    target = (tmp_path / "copied").as_uri()
    copied = copy_to_hadoop(spark_session, tmp_path / "ops" / "data_docs", target)
    assert copied == sum(1 for p in (tmp_path / "ops" / "data_docs").rglob("*") if p.is_file())
    assert (tmp_path / "copied" / "index.html").is_file()
    assert build_data_docs([validation], "s3a://bucket/lh/ops/data_docs") is None  # no session: skipped


def test_expression_errors_name_the_check(spark_session) -> None:
    rows = spark_session.createDataFrame(ROWS[:1], ROWS_DDL)
    bad_sql = Suite.model_validate({"table": T, "checks": [_x("broken", "measurement_date <=")]})
    with pytest.raises(ConfigError, match=r"check 'measurement\.broken': expression is not valid SQL"):
        with_check_columns(rows, bad_sql, {}, run_date=RUN_DATE)
    unknown = Suite.model_validate({"table": T, "checks": [
        _x("fine", "measurement_id > 0"), _x("typo", "measurment_date <= :run_date")]})
    with pytest.raises(ConfigError, match=r"check 'measurement\.typo' does not resolve"):
        with_check_columns(rows, unknown, {}, run_date=RUN_DATE)


def test_every_shipped_suite_compiles_against_the_silver_schema(spark_session) -> None:
    """Analysis only (no Spark job): every expression resolves, every expectation builds."""
    empty = {t: spark_session.createDataFrame([], omop.schema(t)) for t in ("person", "death", "visit_occurrence")}
    context = {**empty, "concept": spark_session.createDataFrame(
        [], "concept_id int, domain_id string, standard_concept string")}
    for table, suite in load_suites().items():
        rows = spark_session.createDataFrame([], omop.schema(table))
        flagged = with_check_columns(rows, suite, context, run_date=RUN_DATE)
        assert flagged.columns == [*omop.columns(table), *[c.ok_column for c in suite.row_checks], "_failed_checks"]
        assert len(build_expectation_suite(suite).expectations) == len(suite.checks)
