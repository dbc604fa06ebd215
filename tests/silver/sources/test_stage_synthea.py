"""Synthea CSV staging: literal bronze rows -> expected person, visit, event, provider, care-site records."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from staging_bronze import bronze, expected, ids, ts

from medspark.silver.sources import (
    CARE_SITE_RECORD,
    EVENT_RECORD,
    PERSON_RECORD,
    PROVIDER_RECORD,
    UNSTAGED_RECORD,
    VISIT_RECORD,
)
from medspark.silver.sources.synthea import STAGERS

P1, E1 = "p-1", "e-1"


def test_patients(spark: SparkSession) -> None:
    patients = bronze(spark, "synthea_patients", [
        {"Id": P1, "BIRTHDATE": dt.date(1990, 5, 6), "DEATHDATE": dt.date(2020, 1, 2), "SSN": "999-12-3456",
         "DRIVERS": "S1", "FIRST": "Ann1", "LAST": "Lee2", "RACE": "white", "ETHNICITY": "nonhispanic",
         "GENDER": "F", "ADDRESS": "1 Main St", "CITY": "Boston", "STATE": "Massachusetts",
         "COUNTY": "Suffolk County", "ZIP": "02110"},
        {"Id": "p-2", "BIRTHDATE": dt.date(2001, 1, 1), "SSN": " ", "GENDER": "M"},
    ])  # fmt: skip
    staged = STAGERS["synthea_patients"](patients)
    assertDataFrameEqual(staged["person"], expected(spark, PERSON_RECORD, "synthea_patients", [
        {"_h": "h1", "identifiers": ids(("synthea", P1), ("ssn", "999123456")), "birth_date": dt.date(1990, 5, 6),
         "gender_source": "F", "race_source": "white", "ethnicity_source": "nonhispanic",
         "death_datetime": ts("2020-01-02 00:00:00"), "given_name": "Ann1", "family_name": "Lee2",
         "street": "1 Main St", "city": "Boston", "state": "Massachusetts", "zip": "02110",
         "county": "Suffolk County"},
        {"_h": "h2", "identifiers": ids(("synthea", "p-2")), "birth_date": dt.date(2001, 1, 1),
         "gender_source": "M"},
    ]))  # fmt: skip
    assert staged["_unstaged"].count() == 0


def test_encounters(spark: SparkSession) -> None:
    encounters = bronze(spark, "synthea_encounters", [
        {"Id": E1, "START": ts("2023-06-02 12:37:01"), "STOP": ts("2023-06-02 13:07:01"), "PATIENT": P1,
         "ORGANIZATION": "org-1", "PROVIDER": "prov-1", "ENCOUNTERCLASS": "wellness", "CODE": "162673000"},
        {"Id": "e-2", "START": ts("2023-07-01 00:00:00"), "PATIENT": P1, "ENCOUNTERCLASS": "inpatient"},
    ])  # fmt: skip
    staged = STAGERS["synthea_encounters"](encounters)
    assertDataFrameEqual(staged["visit"], expected(spark, VISIT_RECORD, "synthea_encounters", [
        {"_h": "h1", "person_identifiers": ids(("synthea", P1)), "visit_identifiers": ids(("synthea-encounter", E1)),
         "visit_class_source": "wellness", "visit_start": ts("2023-06-02 12:37:01"),
         "visit_end": ts("2023-06-02 13:07:01"), "provider_source": "prov-1", "care_site_source": "org-1"},
        {"_h": "h2", "person_identifiers": ids(("synthea", P1)), "visit_identifiers": ids(("synthea-encounter", "e-2")),
         "visit_class_source": "inpatient", "visit_start": ts("2023-07-01 00:00:00")},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["provider"], expected(spark, PROVIDER_RECORD, "synthea_encounters", [
        {"_h": "h1", "provider_source_value": "prov-1", "care_site_source_value": "org-1"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["care_site"], expected(spark, CARE_SITE_RECORD, "synthea_encounters", [
        {"_h": "h1", "care_site_source_value": "org-1"},
    ]))  # fmt: skip


def test_clinical_tables(spark: SparkSession) -> None:
    conditions = bronze(spark, "synthea_conditions", [
        {"START": dt.date(2017, 10, 28), "STOP": dt.date(2017, 11, 19), "PATIENT": P1, "ENCOUNTER": E1,
         "CODE": "91302008"},
        {"START": dt.date(2018, 1, 1), "PATIENT": P1, "ENCOUNTER": E1, "SYSTEM": "ICD10", "CODE": "E11.9"},
        {"START": dt.date(2018, 1, 1), "PATIENT": P1, "ENCOUNTER": E1, "CODE": " "},
    ])  # fmt: skip
    medications = bronze(spark, "synthea_medications", [
        {"START": ts("2015-08-27 15:06:23"), "STOP": ts("2015-09-05 15:06:23"), "PATIENT": P1, "ENCOUNTER": E1,
         "CODE": "198405", "DISPENSES": 2},
    ])  # fmt: skip
    procedures = bronze(spark, "synthea_procedures", [
        {"START": ts("2016-03-10 19:18:49"), "STOP": ts("2016-03-10 19:28:49"), "PATIENT": P1, "ENCOUNTER": E1,
         "CODE": "171207006"},
    ])  # fmt: skip
    observations = bronze(spark, "synthea_observations", [
        {"DATE": ts("2016-04-12 15:56:43"), "PATIENT": P1, "ENCOUNTER": E1, "CATEGORY": "vital-signs",
         "CODE": "29463-7", "VALUE": "53.6", "UNITS": "kg", "TYPE": "numeric", "VALUE_NUMERIC": 53.6},
        {"DATE": ts("2016-04-12 15:56:43"), "PATIENT": P1, "ENCOUNTER": E1, "CATEGORY": "survey",
         "CODE": "72166-2", "VALUE": "Never smoked tobacco (finding)", "TYPE": "text"},
    ])  # fmt: skip
    person, visit = ids(("synthea", P1)), ids(("synthea-encounter", E1))
    common = {"person_identifiers": person, "visit_identifiers": visit, "type_source": "EHR"}

    staged = STAGERS["synthea_conditions"](conditions)
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, "synthea_conditions", [
        {"_h": "h1", **common, "vocabulary_id": "SNOMED", "code": "91302008", "event_kind": "condition",
         "event_start": ts("2017-10-28 00:00:00"), "event_end": ts("2017-11-19 00:00:00")},
        {"_h": "h2", **common, "vocabulary_id": "ICD10CM", "code": "E11.9", "event_kind": "condition",
         "event_start": ts("2018-01-01 00:00:00")},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, "synthea_conditions", [
        {"_h": "h3", "reason": "no_code"},
    ]))  # fmt: skip

    assertDataFrameEqual(STAGERS["synthea_medications"](medications)["event"], expected(
        spark, EVENT_RECORD, "synthea_medications", [
            {"_h": "h1", **common, "vocabulary_id": "RxNorm", "code": "198405", "event_kind": "drug",
             "event_start": ts("2015-08-27 15:06:23"), "event_end": ts("2015-09-05 15:06:23"), "quantity": 2.0},
        ]))  # fmt: skip
    assertDataFrameEqual(STAGERS["synthea_procedures"](procedures)["event"], expected(
        spark, EVENT_RECORD, "synthea_procedures", [
            {"_h": "h1", **common, "vocabulary_id": "SNOMED", "code": "171207006", "event_kind": "procedure",
             "event_start": ts("2016-03-10 19:18:49"), "event_end": ts("2016-03-10 19:28:49")},
        ]))  # fmt: skip
    assertDataFrameEqual(STAGERS["synthea_observations"](observations)["event"], expected(
        spark, EVENT_RECORD, "synthea_observations", [
            {"_h": "h1", **common, "vocabulary_id": "LOINC", "code": "29463-7", "event_kind": "observation",
             "event_start": ts("2016-04-12 15:56:43"), "value_as_number": 53.6, "value_source_value": "53.6",
             "unit_source_value": "kg"},
            {"_h": "h2", **common, "vocabulary_id": "LOINC", "code": "72166-2", "event_kind": "observation",
             "event_start": ts("2016-04-12 15:56:43"), "value_source_value": "Never smoked tobacco (finding)"},
        ]))  # fmt: skip


def test_other_tables(spark: SparkSession) -> None:
    others = bronze(spark, "synthea_other", [
        {"synthea_table": "organizations", "fields": {"Id": "org-1", "NAME": "STURDY MEMORIAL HOSPITAL",
         "ADDRESS": "211 PARK STREET", "CITY": "ATTLEBORO", "STATE": "MA", "ZIP": "02703", "PHONE": "5"}},
        {"synthea_table": "providers", "fields": {"Id": "prov-1", "ORGANIZATION": "org-1", "NAME": "Ludivina884 S",
         "GENDER": "F", "SPECIALITY": "GENERAL PRACTICE"}},
        {"synthea_table": "immunizations", "fields": {"DATE": "2023-10-10T04:17:47Z", "PATIENT": P1,
         "ENCOUNTER": E1, "CODE": "140"}},
        {"synthea_table": "allergies", "fields": {"START": "2009-09-27", "STOP": "", "PATIENT": P1, "ENCOUNTER": E1,
         "CODE": "111088007", "SYSTEM": "SNOMED-CT"}},
        {"synthea_table": "supplies", "fields": {"DATE": "2020-10-07", "PATIENT": P1, "ENCOUNTER": E1,
         "CODE": "409534002", "QUANTITY": "2"}},
        {"synthea_table": "payers", "fields": {"Id": "pay-1", "NAME": "Medicaid"}},
        {"synthea_table": "providers", "fields": {"Id": "", "NAME": "x"}},
    ])  # fmt: skip
    staged = STAGERS["synthea_other"](others)
    assertDataFrameEqual(staged["care_site"], expected(spark, CARE_SITE_RECORD, "synthea_other", [
        {"_h": "h1", "care_site_source_value": "org-1", "care_site_name": "STURDY MEMORIAL HOSPITAL",
         "street": "211 PARK STREET", "city": "ATTLEBORO", "state": "MA", "zip": "02703"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["provider"], expected(spark, PROVIDER_RECORD, "synthea_other", [
        {"_h": "h2", "provider_source_value": "prov-1", "provider_name": "Ludivina884 S",
         "specialty_source_value": "GENERAL PRACTICE", "care_site_source_value": "org-1", "gender_source_value": "F"},
    ]))  # fmt: skip
    common = {"person_identifiers": ids(("synthea", P1)), "visit_identifiers": ids(("synthea-encounter", E1)),
              "type_source": "EHR"}  # fmt: skip
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, "synthea_other", [
        {"_h": "h3", **common, "vocabulary_id": "CVX", "code": "140", "event_kind": "immunization",
         "event_start": ts("2023-10-10 04:17:47")},
        {"_h": "h4", **common, "vocabulary_id": "SNOMED", "code": "111088007", "event_kind": "allergy",
         "event_start": ts("2009-09-27 00:00:00")},
        {"_h": "h5", **common, "vocabulary_id": "SNOMED", "code": "409534002", "event_kind": "supply",
         "event_start": ts("2020-10-07 00:00:00"), "quantity": 2.0},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, "synthea_other", [
        {"_h": "h6", "reason": "not_staged:payers"},
        {"_h": "h7", "reason": "missing_identifier"},
    ]))  # fmt: skip
