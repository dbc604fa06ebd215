"""Safe-Harbour research views: person ages, ZIP3, per-patient date shifts, free-text and system columns."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.privacy.research import (
    RESEARCH_TABLES,
    build_research_view,
    deidentify_events,
    deidentify_location,
    deidentify_person,
    shift_days,
)

KEY = bytes(range(100, 132))
AS_OF = dt.date(2024, 6, 30)


def _offset(person_id: int, max_days: int = 365) -> int:
    """Independent statement of the documented rule, with Python's hmac."""
    digest = hmac.new(KEY, f"date-shift:{person_id}".encode(), hashlib.sha256).hexdigest()
    residue = int(digest[:8], 16) % (2 * max_days)
    return residue - max_days if residue < max_days else residue - max_days + 1


def _research_id(person_id: int) -> int:
    return int(hmac.new(KEY, f"research-person:{person_id}".encode(), hashlib.sha256).hexdigest()[:15], 16)


def test_shift_is_per_patient_consistent_in_range_and_never_zero(spark) -> None:
    people = spark.range(1, 301).select(sf.col("id").alias("person_id"))
    rows = people.unionAll(people).select("person_id", shift_days(sf.col("person_id"), KEY).alias("days"))
    per_patient = rows.groupBy("person_id").agg(sf.count_distinct("days").alias("n"), sf.min("days").alias("days"))
    stats = per_patient.agg(
        sf.max("n").alias("max_distinct"),
        sf.min("days").alias("low"),
        sf.max("days").alias("high"),
        sf.sum(sf.when(sf.col("days") == 0, 1).otherwise(0)).alias("zeros"),
        sf.count_distinct("days").alias("distinct_offsets"),
    ).first()
    assert stats["max_distinct"] == 1
    assert -365 <= stats["low"] < 0 < stats["high"] <= 365
    assert stats["zeros"] == 0
    assert stats["distinct_offsets"] > 150  # spread, not a constant
    sample = {row["person_id"]: row["days"] for row in per_patient.where("person_id <= 5").collect()}
    assert sample == {pid: _offset(pid) for pid in range(1, 6)}


def test_shift_of_one_day_is_plus_or_minus_one(spark) -> None:
    offsets = {
        row["days"]
        for row in spark.range(1, 41).select(shift_days(sf.col("id"), KEY, max_days=1).alias("days")).collect()
    }
    assert offsets == {-1, 1}
    with pytest.raises(ValueError, match="max_days must be a positive integer"):
        shift_days(sf.col("id"), KEY, max_days=0)


PERSON_DDL = (
    "person_id long, gender_concept_id int, year_of_birth int, month_of_birth int, day_of_birth int, "
    "birth_datetime timestamp, race_concept_id int, location_id long, person_source_value string, "
    "gender_source_value string, race_source_value string, gender_source_concept_id int, _source_record_hash string"
)
PERSON_VIEW_DDL = (
    "person_id long, gender_concept_id int, year_of_birth int, month_of_birth int, day_of_birth int, "
    "birth_datetime timestamp, race_concept_id int, location_id long, gender_source_concept_id int, "
    "age_over_89 boolean"
)


def _person(pid: int, year: int | None, month: int | None, day: int | None, birth: dt.datetime | None) -> tuple:
    return (pid, 8507, year, month, day, birth, 8527, 10 + pid, f"MRN-{pid}", "M", "white", 0, "h" * 8)


@pytest.fixture
def persons(spark):
    return spark.createDataFrame(
        [
            _person(1, 1980, 3, 4, dt.datetime(1980, 3, 4, 7, 30)),  # 44
            _person(2, 1934, 6, 30, None),  # 90 on the reference day
            _person(3, 1934, 7, 1, None),  # 89, birthday tomorrow
            _person(4, 1920, 1, 1, None),  # 104
            _person(5, 1934, None, None, None),  # year only: taken as 1 January, 90
            _person(6, 1935, 1, None, None),  # 89
            _person(7, 1934, None, None, dt.datetime(1934, 12, 31, 23, 0)),  # month from birth_datetime: 89
            _person(8, None, None, None, None),
        ],
        PERSON_DDL,
    )


def test_deidentify_person(spark, persons) -> None:
    expected = spark.createDataFrame(
        [
            (1, 8507, 1980, None, None, None, 8527, 11, 0, False),
            (2, 8507, 1934, None, None, None, 8527, 12, 0, True),
            (3, 8507, 1934, None, None, None, 8527, 13, 0, False),
            (4, 8507, 1934, None, None, None, 8527, 14, 0, True),
            (5, 8507, 1934, None, None, None, 8527, 15, 0, True),
            (6, 8507, 1935, None, None, None, 8527, 16, 0, False),
            (7, 8507, 1934, None, None, None, 8527, 17, 0, False),
            (8, 8507, None, None, None, None, 8527, 18, 0, None),
        ],
        PERSON_VIEW_DDL,
    )
    assertDataFrameEqual(deidentify_person(persons, as_of=AS_OF), expected)


def test_person_as_of_must_be_a_date(persons) -> None:
    with pytest.raises(TypeError, match=r"as_of must be a datetime\.date"):
        deidentify_person(persons, as_of=dt.datetime(2024, 6, 30))


LOCATION_DDL = (
    "location_id long, address_1 string, address_2 string, city string, state string, zip string, county string, "
    "location_source_value string, country_concept_id int, country_source_value string, latitude double, "
    "longitude double"
)


def test_deidentify_location(spark) -> None:
    zips = ["02138", "03601", "89301-1234", "2138", "123456789", "10001", "10201", "ABC12", "1234567", None, " 55601 "]
    locations = spark.createDataFrame(
        [
            (
                i,
                "1 Main St",
                "Apt 2",
                "Springfield",
                "MA",
                z,
                "Middlesex",
                "1 Main St Springfield",
                42046193,
                "US",
                42.3,
                -71.1,
            )
            for i, z in enumerate(zips)
        ],
        LOCATION_DDL,
    )
    expected_zip3 = ["021", "000", "000", "021", "123", "100", "000", None, None, None, "000"]
    expected = spark.createDataFrame(
        [(i, "MA", z, 42046193, "US") for i, z in enumerate(expected_zip3)],
        "location_id long, state string, zip string, country_concept_id int, country_source_value string",
    )
    assertDataFrameEqual(deidentify_location(locations), expected)


CONDITION_DDL = (
    "condition_occurrence_id long, person_id long, condition_concept_id int, condition_start_date date, "
    "condition_start_datetime timestamp, condition_end_date date, condition_source_value string, "
    "stop_reason string, condition_status_source_value string, _source_record_hash string"
)


@pytest.fixture
def conditions(spark):
    return spark.createDataFrame(
        [
            (
                1,
                1,
                201826,
                dt.date(2020, 1, 15),
                dt.datetime(2020, 1, 15, 8, 45),
                dt.date(2020, 2, 1),
                "E11.9",
                "resolved after talking to Mr Smith",
                "primary",
                "abc",
            ),
            (
                2,
                1,
                320128,
                dt.date(2021, 12, 31),
                dt.datetime(2021, 12, 31, 23, 59, 59),
                None,
                "I10",
                None,
                None,
                "def",
            ),
            (3, 2, 201826, dt.date(2020, 1, 15), None, None, "E11.9", None, None, "ghi"),
        ],
        CONDITION_DDL,
    )


def _shifted(day: dt.date | dt.datetime | None, pid: int) -> dt.date | dt.datetime | None:
    return None if day is None else day + dt.timedelta(days=_offset(pid))


def test_deidentify_events(spark, conditions) -> None:
    actual = deidentify_events(
        conditions,
        key=KEY,
        date_columns=["condition_start_date", "condition_end_date"],
        datetime_columns=["condition_start_datetime"],
    )
    expected = spark.createDataFrame(
        [
            (
                1,
                1,
                201826,
                _shifted(dt.date(2020, 1, 15), 1),
                _shifted(dt.datetime(2020, 1, 15, 8, 45), 1),
                _shifted(dt.date(2020, 2, 1), 1),
                "E11.9",
                "primary",
            ),
            (
                2,
                1,
                320128,
                _shifted(dt.date(2021, 12, 31), 1),
                _shifted(dt.datetime(2021, 12, 31, 23, 59, 59), 1),
                None,
                "I10",
                None,
            ),
            (3, 2, 201826, _shifted(dt.date(2020, 1, 15), 2), None, None, "E11.9", None),
        ],
        "condition_occurrence_id long, person_id long, condition_concept_id int, condition_start_date date, "
        "condition_start_datetime timestamp, condition_end_date date, condition_source_value string, "
        "condition_status_source_value string",
    )
    assertDataFrameEqual(actual, expected)
    assert _offset(1) != _offset(2)  # the two patients' shared date moves differently


def test_deidentify_events_names_missing_columns(conditions) -> None:
    with pytest.raises(ValueError, match="date columns not in the frame: visit_start_date"):
        deidentify_events(conditions, key=KEY, date_columns=["visit_start_date"])


def test_research_view_of_observation_fails_closed(spark) -> None:
    observations = spark.createDataFrame(
        [(5, 1, dt.date(2022, 5, 5), "free text result", "call 555-0100", "LOINC:1234", dt.date(2022, 5, 6), "x")],
        "observation_id long, person_id long, observation_date date, value_as_string string, "
        "value_source_value string, observation_source_value string, undeclared_date date, _batch_note string",
    )
    persons = spark.createDataFrame([(1,), (3,)], "person_id long")
    actual = build_research_view("observation", observations, key=KEY, as_of=AS_OF, persons=persons)
    expected = spark.createDataFrame(
        [(5, _research_id(1), _shifted(dt.date(2022, 5, 5), 1), "LOINC:1234", _shifted(dt.date(2022, 5, 6), 1))],
        "observation_id long, person_id long, observation_date date, observation_source_value string, "
        "undeclared_date date",
    )
    assertDataFrameEqual(actual, expected)
    # persons restricts rows
    only_three = spark.createDataFrame([(3,)], "person_id long")
    assert build_research_view("observation", observations, key=KEY, as_of=AS_OF, persons=only_three).count() == 0


def test_research_view_of_person_and_location(spark, persons) -> None:
    view = build_research_view("person", persons.where("person_id = 2"), key=KEY, as_of=AS_OF)
    assert [(r["person_id"], r["year_of_birth"], r["age_over_89"]) for r in view.collect()] == [
        (_research_id(2), 1934, True)
    ]
    locations = spark.createDataFrame(
        [(1, "Boston", "MA", "02138")], "location_id long, city string, state string, zip string"
    )
    assertDataFrameEqual(
        build_research_view("location", locations, key=KEY, as_of=AS_OF),
        spark.createDataFrame([(1, "MA", "021")], "location_id long, state string, zip string"),
    )


def test_cost_view_drops_system_columns_and_keeps_codes(spark) -> None:
    costs = spark.createDataFrame(
        [(1, 77, "Visit", 120.5, "0450", "drg-x", "a note", "hash")],
        "cost_id long, cost_event_id long, cost_domain_id string, total_charge double, "
        "revenue_code_source_value string, drg_source_value string, stop_reason string, _source_record_hash string",
    )
    assertDataFrameEqual(
        build_research_view("cost", costs, key=KEY, as_of=AS_OF),
        spark.createDataFrame(
            [(1, 77, "Visit", 120.5, "0450", "drg-x")],
            "cost_id long, cost_event_id long, cost_domain_id string, total_charge double, "
            "revenue_code_source_value string, drg_source_value string",
        ),
    )


def test_research_tables_and_bad_arguments(spark) -> None:
    assert set(RESEARCH_TABLES) == {
        "person", "location", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
        "procedure_occurrence", "measurement", "observation", "death", "payer_plan_period", "cost",
    }  # fmt: skip
    assert RESEARCH_TABLES["drug_exposure"].date_columns == (
        "drug_exposure_start_date",
        "drug_exposure_end_date",
        "verbatim_end_date",
    )
    deaths = spark.createDataFrame([(1, "2020-01-01")], "person_id long, death_date string")
    with pytest.raises(ValueError, match=r"death\.death_date must be a date or timestamp column, not string"):
        build_research_view("death", deaths, key=KEY, as_of=AS_OF)
    with pytest.raises(ValueError, match="no research view for table 'note'"):
        build_research_view("note", deaths, key=KEY, as_of=AS_OF)
