"""FHIR staging: literal bronze rows -> expected person, visit, event, provider, care-site records."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from staging_bronze import MODIFIED, bronze, expected, ids, ts

from medspark.silver.sources import (
    CARE_SITE_RECORD,
    EVENT_RECORD,
    PERSON_RECORD,
    PROVIDER_RECORD,
    UNSTAGED_RECORD,
    VISIT_RECORD,
)
from medspark.silver.sources.fhir import STAGERS

PID, EID = "708a2798-6bd8", "e158ef2f-f680"
SNOMED, LOINC = "http://snomed.info/sct", "http://loinc.org"
UPDATED = ts("2024-05-01 10:00:00")


def test_patient_identifiers_are_normalised(spark: SparkSession) -> None:
    patients = bronze(spark, "fhir_patient", [
        {"resource_id": PID, "last_updated": UPDATED,
         "identifiers": [("https://github.com/synthetichealth/synthea", PID, None),
                         ("urn:oid:2.16.840.1.113883.3.4242.1", "M02400233", "MR"),
                         ("http://hl7.org/fhir/sid/us-ssn", "907-88-4387", "SS"),
                         ("http://hospital.example.org", "H-1", "MR"),
                         ("urn:oid:2.16.840.1.113883.4.3.25", "S999", "DL"),
                         ("http://example.org/empty", " ", None)],
         "birth_date": dt.date(2011, 3, 11), "gender": "female", "deceased_datetime": ts("2030-01-01 08:00:00"),
         "name_family": "Ondricka712", "name_given": ["Patricia390", "Ann"],
         "address_line": ["347 Main Street", "Suite 85"], "address_city": "Boston", "address_state": "MA",
         "address_postal_code": "02110", "race_codes": ["2106-3"], "ethnicity_codes": ["2186-5"]},
        {"resource_id": "p2", "gender": "male"},
    ])  # fmt: skip
    staged = STAGERS["fhir_patient"](patients)
    assertDataFrameEqual(staged["person"], expected(spark, PERSON_RECORD, "fhir_patient", [
        {"_h": "h1", "_source_version": UPDATED,
         "identifiers": ids(("fhir-patient", PID), ("synthea", PID), ("mrn", "M02400233"), ("ssn", "907884387"),
                            ("mrn", "H-1"), ("other:urn:oid:2.16.840.1.113883.4.3.25", "S999")),
         "birth_date": dt.date(2011, 3, 11), "gender_source": "female", "race_source": "2106-3",
         "ethnicity_source": "2186-5", "death_datetime": ts("2030-01-01 08:00:00"), "given_name": "Patricia390",
         "family_name": "Ondricka712", "street": "347 Main Street Suite 85", "city": "Boston", "state": "MA",
         "zip": "02110"},
        {"_h": "h2", "identifiers": ids(("fhir-patient", "p2")), "gender_source": "male"},
    ]))  # fmt: skip


def test_encounter_visit_provider_and_care_site(spark: SparkSession) -> None:
    encounters = bronze(spark, "fhir_encounter", [
        {"resource_id": EID, "identifiers": [("urn:oid:2.16.840.1.113883.3.4242.2", "10000127", None),
                                             ("https://github.com/synthetichealth/synthea", "enc-9", None)],
         "patient_reference": f"Patient/{PID}", "patient_id": PID, "class_code": "AMB",
         "period_start": ts("2019-03-02 16:20:34"), "period_end": ts("2019-03-02 16:35:34"),
         "service_provider_reference": "Organization?identifier=https://github.com/synthetichealth/synthea|org-1",
         "practitioner_reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|2028276832"},
        {"resource_id": "e2", "patient_reference": "Patient?identifier=urn:oid:2.16.840.1.113883.3.4242.1|M1",
         "class_code": "IMP", "practitioner_reference": "Practitioner/pr-7", "location_reference": "Location/loc-1"},
    ])  # fmt: skip
    staged = STAGERS["fhir_encounter"](encounters)
    npi = "2028276832"
    assertDataFrameEqual(staged["visit"], expected(spark, VISIT_RECORD, "fhir_encounter", [
        {"_h": "h1", "person_identifiers": ids(("fhir-patient", PID)),
         "visit_identifiers": ids(("fhir-encounter", EID), ("visit", "10000127"), ("synthea-encounter", "enc-9")),
         "visit_class_source": "AMB", "visit_start": ts("2019-03-02 16:20:34"), "visit_end": ts("2019-03-02 16:35:34"),
         "provider_source": npi, "care_site_source": "org-1"},
        {"_h": "h2", "person_identifiers": ids(("mrn", "M1")), "visit_identifiers": ids(("fhir-encounter", "e2")),
         "visit_class_source": "IMP", "provider_source": "pr-7", "care_site_source": "loc-1"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["provider"], expected(spark, PROVIDER_RECORD, "fhir_encounter", [
        {"_h": "h1", "provider_source_value": npi, "npi": npi, "care_site_source_value": "org-1"},
        {"_h": "h2", "provider_source_value": "pr-7", "care_site_source_value": "loc-1"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["care_site"], expected(spark, CARE_SITE_RECORD, "fhir_encounter", [
        {"_h": "h1", "care_site_source_value": "org-1"},
        {"_h": "h2", "care_site_source_value": "loc-1"},
    ]))  # fmt: skip


def test_condition_medication_procedure(spark: SparkSession) -> None:
    link = {"patient_reference": f"Patient/{PID}", "patient_id": PID, "encounter_reference": f"Encounter/{EID}"}
    conditions = bronze(spark, "fhir_condition", [
        {**link, "code_codings": [("http://example.org/local", "X1", None), (SNOMED, "162864005", "Obesity")],
         "onset_datetime": ts("2024-06-30 16:16:45"), "abatement_datetime": ts("2024-07-30 00:00:00")},
        {**link, "code_codings": [("http://example.org/local", "X1", None)],
         "recorded_datetime": ts("2024-06-30 16:16:45")},
        {**link, "code_codings": []},
    ])  # fmt: skip
    requests = bronze(spark, "fhir_medicationrequest", [
        {"patient_reference": f"urn:uuid:{PID}", "patient_id": PID, "authored_on": ts("2025-04-04 16:58:49"),
         "medication_codings": [("http://www.nlm.nih.gov/research/umls/rxnorm", "562251", None)]},
        {**link, "medication_reference": "Medication/m1"},
    ])  # fmt: skip
    procedures = bronze(spark, "fhir_procedure", [
        {**link, "code_codings": [(SNOMED, "80146002", None)], "performed_start": ts("2021-01-18 13:28:38"),
         "performed_end": ts("2021-01-18 14:58:38")},
    ])  # fmt: skip
    common = {"person_identifiers": ids(("fhir-patient", PID)), "visit_identifiers": ids(("fhir-encounter", EID)),
              "type_source": "EHR"}  # fmt: skip

    staged = STAGERS["fhir_condition"](conditions)
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, "fhir_condition", [
        {"_h": "h1", **common, "vocabulary_id": "SNOMED", "code": "162864005", "event_kind": "condition",
         "event_start": ts("2024-06-30 16:16:45"), "event_end": ts("2024-07-30 00:00:00")},
        {"_h": "h2", **common, "vocabulary_id": "other:http://example.org/local", "code": "X1",
         "event_kind": "condition", "event_start": ts("2024-06-30 16:16:45")},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, "fhir_condition", [
        {"_h": "h3", "reason": "no_code"},
    ]))  # fmt: skip

    staged = STAGERS["fhir_medicationrequest"](requests)
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, "fhir_medicationrequest", [
        {"_h": "h1", "person_identifiers": ids(("fhir-patient", PID)), "visit_identifiers": [],
         "type_source": "EHR", "vocabulary_id": "RxNorm", "code": "562251", "event_kind": "drug",
         "event_start": ts("2025-04-04 16:58:49")},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, "fhir_medicationrequest", [
        {"_h": "h2", "reason": "no_code"},
    ]))  # fmt: skip

    assertDataFrameEqual(STAGERS["fhir_procedure"](procedures)["event"], expected(
        spark, EVENT_RECORD, "fhir_procedure", [
            {"_h": "h1", **common, "vocabulary_id": "SNOMED", "code": "80146002", "event_kind": "procedure",
             "event_start": ts("2021-01-18 13:28:38"), "event_end": ts("2021-01-18 14:58:38")},
        ]))  # fmt: skip


def test_observations_values_and_components(spark: SparkSession) -> None:
    link = {"patient_reference": f"Patient/{PID}", "patient_id": PID}
    observations = bronze(spark, "fhir_observation", [
        {**link, "last_updated": UPDATED, "code_codings": [(LOINC, "8480-6", None)],
         "effective_datetime": ts("2018-03-29 16:00:45"), "value_quantity": (104.0, "mm[Hg]", None, None)},
        {**link, "code_codings": [(LOINC, "85354-9", None)], "issued": ts("2018-03-29 16:00:45"),
         "components": [([(LOINC, "8480-6", None)], (120.0, "mm[Hg]", None, None)),
                        ([(LOINC, "8462-4", None)], (80.0, "mm[Hg]", None, None)),
                        ([], (1.0, None, None, None))]},
        {**link, "code_codings": [(LOINC, "72166-2", None)], "effective_datetime": ts("2018-03-29 16:00:45"),
         "value_codeable_concept": [(SNOMED, "266919005", "Never smoker")]},
        {**link, "code_codings": [(LOINC, "1-8", None)], "effective_datetime": ts("2018-03-29 16:00:45"),
         "value_integer": 3},
        {**link, "code_codings": None, "value_string": "text only"},
    ])  # fmt: skip
    staged = STAGERS["fhir_observation"](observations)
    common = {"person_identifiers": ids(("fhir-patient", PID)), "visit_identifiers": [], "type_source": "EHR",
              "event_kind": "observation", "vocabulary_id": "LOINC"}  # fmt: skip
    at = ts("2018-03-29 16:00:45")
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, "fhir_observation", [
        {"_h": "h1", "_source_version": UPDATED, **common, "code": "8480-6", "event_start": at,
         "value_as_number": 104.0, "unit_source_value": "mm[Hg]"},
        {"_h": "h2", **common, "code": "8480-6", "event_start": at, "value_as_number": 120.0,
         "unit_source_value": "mm[Hg]"},
        {"_h": "h2", **common, "code": "8462-4", "event_start": at, "value_as_number": 80.0,
         "unit_source_value": "mm[Hg]"},
        {"_h": "h3", **common, "code": "72166-2", "event_start": at, "value_source_value": "266919005"},
        {"_h": "h4", **common, "code": "1-8", "event_start": at, "value_as_number": 3.0},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, "fhir_observation", [
        {"_h": "h5", "reason": "no_code"},
    ]))  # fmt: skip
    assert MODIFIED != UPDATED  # the version of h1 really comes from last_updated
