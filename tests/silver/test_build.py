"""Pure conform steps: which record wins a collapse, person attributes from the latest delivery, domain routing."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.silver import build

T1 = dt.datetime(2024, 1, 1, 10, 0)
T2 = dt.datetime(2024, 6, 1, 10, 0)


def test_collapse_keeps_the_best_record_and_counts_all(spark: SparkSession) -> None:
    rows = spark.createDataFrame([
        ("k1", "hl7v2_messages", "h1", T2, "from hl7"),
        ("k1", "fhir_condition", "h2", T1, "from fhir"),      # better source wins over a newer version
        ("k1", "synthea_conditions", "h3", T2, "from csv"),
        ("k2", "fhir_condition", "h5", T1, "older"),
        ("k2", "fhir_condition", "h4", T2, "newer"),         # same source: the newer version wins
    ], "key string, _source string, _source_record_hash string, _source_version timestamp, value string")
    collapsed = build.collapse(build.with_priority(rows, ("fhir", "synthea", "hl7v2")), "key")
    assertDataFrameEqual(collapsed.select("key", "value", "_n_records"),
                         spark.createDataFrame([("k1", "from fhir", 3), ("k2", "newer", 2)],
                                               "key string, value string, _n_records long"))


def test_person_attributes_come_from_the_latest_delivery_that_has_them(spark: SparkSession) -> None:
    schema = ("person_id long, birth_date date, gender_source string, race_source string, ethnicity_source string,"
              " death_datetime timestamp, city string, state string, zip string, county string,"
              " gender_concept_id int, race_concept_id int, ethnicity_concept_id int, person_source_value string,"
              " _source string, _source_record_hash string, _source_version timestamp, _batch_id long,"
              " _priority int")
    records = spark.createDataFrame([
        (1, dt.date(1980, 5, 1), "F", "white", None, None, "Boston", "MA", "02118", None, 8532, 8527, None, "p1",
         "fhir_patient", "h1", T2, 1, 1),
        # a later HL7 A08 (batch 2, lower priority, older clock) moves the person; it has no race
        (1, None, "F", None, None, None, "Worcester", "MA", "01608", None, 8532, None, None, "p2",
         "hl7v2_messages", "h2", T1, 2, 3),
    ], schema)
    attributes = build.build_person_attributes(records)
    row = attributes.collect()[0]
    assert (row["city"], row["zip"], row["race_source"], row["birth_date"]) == (
        "Worcester", "01608", "white", dt.date(1980, 5, 1))
    assert (row["person_source_value"], row["_source"], row["_n_records"]) == ("p1", "hl7v2_messages", 2)


def test_events_go_to_the_table_of_their_standard_concept_domain(spark: SparkSession) -> None:
    events = spark.createDataFrame([
        ("Condition", "observation", None),      # the vocabulary decides, not the source's category
        ("Measurement", "observation", 5.0),
        (None, "condition", None),               # unmapped: the source's category
        (None, "observation", 7.5),              # unmapped numeric observation: a measurement
        (None, "observation", None),
        (None, "device_vital", None),
    ], "c_domain_id string, event_kind string, value_as_number double")
    routed = [r["_table"] for r in build.route_events(events).collect()]
    assert routed == ["condition_occurrence", "measurement", "condition_occurrence", "measurement", "observation",
                      "measurement"]
