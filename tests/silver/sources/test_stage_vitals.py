"""Device vitals staging: JSON Lines and PhysioNet readings -> expected events and unstaged descriptors."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from staging_bronze import bronze, expected, ids, ts

from medspark.silver.sources import EVENT_RECORD, UNSTAGED_RECORD
from medspark.silver.sources.vitals import STAGERS


def test_readings(spark: SparkSession) -> None:
    readings = bronze(spark, "device_vitals", [
        {"layout": "jsonl", "device_id": "MON-1", "patient_identifier": "M01676168",
         "observed_at": ts("2022-07-02 13:54:09"), "parameter": "bp_systolic", "value": 118.0, "is_missing": False,
         "unit": "mmHg"},
        {"layout": "jsonl", "patient_identifier": "M01676168", "observed_at": ts("2022-07-02 13:54:09"),
         "parameter": "etco2", "value": 35.0, "is_missing": False, "unit": "mmHg"},
        {"layout": "long_csv", "patient_identifier": "132539", "record_id": "132539", "elapsed_minutes": 7,
         "parameter": "HR", "value": 73.0, "is_missing": False},
        {"layout": "long_csv", "patient_identifier": "132539", "record_id": "132539", "elapsed_minutes": 0,
         "parameter": "Weight", "value": -1.0, "is_missing": True},
        {"layout": "long_csv", "patient_identifier": "132539", "record_id": "132539", "elapsed_minutes": 0,
         "parameter": "Age", "value": 54.0, "is_missing": False},
    ])  # fmt: skip
    staged = STAGERS["device_vitals"](readings)
    mrn, record = ids(("mrn", "M01676168")), ids(("other:physionet-record", "132539"))
    common = {"visit_identifiers": [], "event_kind": "device_vital", "type_source": "EHR"}
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, "device_vitals", [
        {"_h": "h1", **common, "person_identifiers": mrn, "vocabulary_id": "LOINC", "code": "8480-6",
         "event_start": ts("2022-07-02 13:54:09"), "value_as_number": 118.0, "unit_source_value": "mmHg"},
        {"_h": "h2", **common, "person_identifiers": mrn, "vocabulary_id": "MedsparkVitals", "code": "etco2",
         "event_start": ts("2022-07-02 13:54:09"), "value_as_number": 35.0, "unit_source_value": "mmHg"},
        {"_h": "h3", **common, "person_identifiers": record, "vocabulary_id": "LOINC", "code": "8867-4",
         "value_as_number": 73.0, "unit_source_value": "/min"},
        {"_h": "h4", **common, "person_identifiers": record, "vocabulary_id": "LOINC", "code": "29463-7",
         "value_source_value": "-1", "unit_source_value": "kg"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, "device_vitals", [
        {"_h": "h5", "reason": "vitals_descriptor"},
    ]))  # fmt: skip
