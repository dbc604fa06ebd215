"""Bronze table schemas (as ingest writes them) and a literal-row builder for the staging tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession

BRONZE: dict[str, str] = {
    "device_vitals": (
        "_source_file string, _record_position bigint, _raw string, layout string, device_id string, "
        "patient_identifier string, record_id string, observed_at timestamp, elapsed_minutes int, "
        "parameter string, value double, is_missing boolean, unit string, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "fhir_condition": (
        "_source_file string, _record_position bigint, _raw string, resource_type string, "
        "resource_id string, version_id string, last_updated timestamp, full_url string, "
        "identifiers array<struct<system:string,value:string,type_code:string>>, "
        "extensions map<string,string>, patient_reference string, patient_id string, clinical_status string, "
        "verification_status string, category_codes array<string>, "
        "code_codings array<struct<system:string,code:string,display:string>>, onset_datetime timestamp, "
        "abatement_datetime timestamp, recorded_datetime timestamp, encounter_reference string, "
        "_source_format string, _file_modified_at timestamp, _batch_id bigint, _run_id string, "
        "_ingested_at timestamp, _record_hash string"
    ),
    "fhir_encounter": (
        "_source_file string, _record_position bigint, _raw string, resource_type string, "
        "resource_id string, version_id string, last_updated timestamp, full_url string, "
        "identifiers array<struct<system:string,value:string,type_code:string>>, "
        "extensions map<string,string>, patient_reference string, patient_id string, status string, "
        "class_system string, class_code string, "
        "type_codings array<struct<system:string,code:string,display:string>>, period_start timestamp, "
        "period_end timestamp, service_provider_reference string, practitioner_reference string, "
        "reason_codings array<struct<system:string,code:string,display:string>>, "
        "discharge_disposition_code string, location_reference string, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "fhir_medicationrequest": (
        "_source_file string, _record_position bigint, _raw string, resource_type string, "
        "resource_id string, version_id string, last_updated timestamp, full_url string, "
        "identifiers array<struct<system:string,value:string,type_code:string>>, "
        "extensions map<string,string>, patient_reference string, patient_id string, status string, "
        "intent string, medication_codings array<struct<system:string,code:string,display:string>>, "
        "medication_reference string, authored_on timestamp, encounter_reference string, "
        "requester_reference string, dosage_text string, dosage_frequency int, dosage_period double, "
        "dosage_period_unit string, "
        "dose_quantity struct<value:double,unit:string,system:string,code:string>, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "fhir_observation": (
        "_source_file string, _record_position bigint, _raw string, resource_type string, "
        "resource_id string, version_id string, last_updated timestamp, full_url string, "
        "identifiers array<struct<system:string,value:string,type_code:string>>, "
        "extensions map<string,string>, patient_reference string, patient_id string, status string, "
        "category_codes array<string>, code_codings array<struct<system:string,code:string,display:string>>, "
        "effective_datetime timestamp, issued timestamp, "
        "value_quantity struct<value:double,unit:string,system:string,code:string>, "
        "value_codeable_concept array<struct<system:string,code:string,display:string>>, "
        "value_string string, value_boolean boolean, value_integer int, "
        "components array<struct<code_codings:array<struct<system:string,code:string,display:string>>,"
        "value_quantity:struct<value:double,unit:string,system:string,code:string>>>, "
        "encounter_reference string, _source_format string, _file_modified_at timestamp, _batch_id bigint, "
        "_run_id string, _ingested_at timestamp, _record_hash string"
    ),
    "fhir_patient": (
        "_source_file string, _record_position bigint, _raw string, resource_type string, "
        "resource_id string, version_id string, last_updated timestamp, full_url string, "
        "identifiers array<struct<system:string,value:string,type_code:string>>, "
        "extensions map<string,string>, patient_reference string, patient_id string, birth_date date, "
        "gender string, deceased_datetime timestamp, deceased_boolean boolean, name_family string, "
        "name_given array<string>, address_line array<string>, address_city string, address_state string, "
        "address_postal_code string, address_country string, "
        "telecom array<struct<system:string,value:string,use:string>>, marital_status_code string, "
        "race_codes array<string>, ethnicity_codes array<string>, birth_sex string, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "fhir_procedure": (
        "_source_file string, _record_position bigint, _raw string, resource_type string, "
        "resource_id string, version_id string, last_updated timestamp, full_url string, "
        "identifiers array<struct<system:string,value:string,type_code:string>>, "
        "extensions map<string,string>, patient_reference string, patient_id string, status string, "
        "code_codings array<struct<system:string,code:string,display:string>>, performed_start timestamp, "
        "performed_end timestamp, encounter_reference string, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "hl7v2_messages": (
        "_source_file string, _record_position bigint, _raw string, message_type string, "
        "trigger_event string, message_structure string, message_control_id string, processing_id string, "
        "version_id string, sending_application string, sending_facility string, "
        "receiving_application string, receiving_facility string, message_datetime timestamp, "
        "event_type string, "
        "patient_identifiers array<struct<id:string,assigning_authority:string,identifier_type:string>>, "
        "patient_family_name string, patient_given_name string, birth_date date, administrative_sex string, "
        "patient_ssn string, "
        "patient_address struct<street:string,other_designation:string,city:string,state:string,postal_code:string,"
        "country:string,address_type:string>, "
        "patient_class string, visit_number string, admit_datetime timestamp, discharge_datetime timestamp, "
        "observations array<struct<set_id:string,value_type:string,code:string,code_text:string,"
        "coding_system:string,value:string,units:string,reference_range:string,abnormal_flags:array<string>,"
        "result_status:string,observed_at:timestamp>>, "
        "diagnoses array<struct<set_id:string,code:string,code_text:string,coding_system:string,"
        "diagnosis_type:string>>, "
        "insurance array<struct<plan_id:string,company_name:string,member_id:string,group_number:string>>, "
        "segment_ids array<string>, "
        "segments array<struct<seg_id:string,fields:array<array<array<string>>>>>, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "synthea_conditions": (
        "_source_file string, _record_position bigint, _raw string, START date, STOP date, PATIENT string, "
        "ENCOUNTER string, SYSTEM string, CODE string, DESCRIPTION string, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "synthea_encounters": (
        "_source_file string, _record_position bigint, _raw string, Id string, START timestamp, "
        "STOP timestamp, PATIENT string, ORGANIZATION string, PROVIDER string, PAYER string, "
        "ENCOUNTERCLASS string, CODE string, DESCRIPTION string, BASE_ENCOUNTER_COST decimal(18,2), "
        "TOTAL_CLAIM_COST decimal(18,2), PAYER_COVERAGE decimal(18,2), REASONCODE string, "
        "REASONDESCRIPTION string, _source_format string, _file_modified_at timestamp, _batch_id bigint, "
        "_run_id string, _ingested_at timestamp, _record_hash string"
    ),
    "synthea_medications": (
        "_source_file string, _record_position bigint, _raw string, START timestamp, STOP timestamp, "
        "PATIENT string, PAYER string, ENCOUNTER string, CODE string, DESCRIPTION string, "
        "BASE_COST decimal(18,2), PAYER_COVERAGE decimal(18,2), DISPENSES int, TOTALCOST decimal(18,2), "
        "REASONCODE string, REASONDESCRIPTION string, _source_format string, _file_modified_at timestamp, "
        "_batch_id bigint, _run_id string, _ingested_at timestamp, _record_hash string"
    ),
    "synthea_observations": (
        "_source_file string, _record_position bigint, _raw string, DATE timestamp, PATIENT string, "
        "ENCOUNTER string, CATEGORY string, CODE string, DESCRIPTION string, VALUE string, UNITS string, "
        "TYPE string, VALUE_NUMERIC double, _source_format string, _file_modified_at timestamp, "
        "_batch_id bigint, _run_id string, _ingested_at timestamp, _record_hash string"
    ),
    "synthea_patients": (
        "_source_file string, _record_position bigint, _raw string, Id string, BIRTHDATE date, "
        "DEATHDATE date, SSN string, DRIVERS string, PASSPORT string, PREFIX string, FIRST string, "
        "MIDDLE string, LAST string, SUFFIX string, MAIDEN string, MARITAL string, RACE string, "
        "ETHNICITY string, GENDER string, BIRTHPLACE string, ADDRESS string, CITY string, STATE string, "
        "COUNTY string, FIPS string, ZIP string, LAT double, LON double, HEALTHCARE_EXPENSES decimal(18,2), "
        "HEALTHCARE_COVERAGE decimal(18,2), INCOME bigint, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "synthea_procedures": (
        "_source_file string, _record_position bigint, _raw string, START timestamp, STOP timestamp, "
        "PATIENT string, ENCOUNTER string, SYSTEM string, CODE string, DESCRIPTION string, "
        "BASE_COST decimal(18,2), REASONCODE string, REASONDESCRIPTION string, _source_format string, "
        "_file_modified_at timestamp, _batch_id bigint, _run_id string, _ingested_at timestamp, "
        "_record_hash string"
    ),
    "x12_837_claims": (
        "_source_file string, _record_position bigint, _raw string, transaction_type string, "
        "interchange_control_number string, group_control_number string, "
        "transaction_set_control_number string, billing_provider_npi string, billing_provider_name string, "
        "subscriber_member_id string, subscriber_last_name string, subscriber_first_name string, "
        "subscriber_birth_date date, subscriber_sex string, subscriber_ssn string, payer_name string, "
        "payer_id string, patient_relationship_code string, patient_last_name string, "
        "patient_first_name string, patient_birth_date date, patient_sex string, claim_id string, "
        "total_charge decimal(18,2), place_of_service string, facility_type_code string, "
        "claim_frequency string, service_date_from date, service_date_to date, admission_date date, "
        "diagnoses array<struct<qualifier:string,code:string>>, principal_diagnosis string, "
        "service_lines array<struct<line_number:int,procedure_qualifier:string,procedure_code:string,"
        "modifiers:array<string>,revenue_code:string,charge:decimal(18,2),unit_type:string,units:double,"
        "service_date:date>>, "
        "_source_format string, _file_modified_at timestamp, _batch_id bigint, _run_id string, "
        "_ingested_at timestamp, _record_hash string"
    ),
    "synthea_other": (
        "_source_file string, _record_position bigint, _raw string, synthea_table string, "
        "fields map<string,string>, _source_format string, _file_modified_at timestamp, _batch_id bigint, "
        "_run_id string, _ingested_at timestamp, _record_hash string"
    ),
}

UTC = dt.UTC
MODIFIED = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # every test row's _file_modified_at
_DEFAULTS: Mapping[str, Any] = {
    "_source_file": "file:/src/x",
    "_batch_id": 1,
    "_file_modified_at": MODIFIED,
    "_run_id": "ingest-test",
    "_ingested_at": MODIFIED,
}


def bronze(spark: SparkSession, entity: str, rows: Sequence[Mapping[str, Any]]) -> DataFrame:
    """A bronze frame of ``entity`` from partial rows: absent columns null, lineage defaulted, ``_record_hash``
    ``h1``, ``h2``... by position unless given."""
    schema = spark.createDataFrame([], BRONZE[entity]).schema
    values = []
    for n, row in enumerate(rows, start=1):
        unknown = set(row) - set(schema.names)
        assert not unknown, f"not columns of {entity}: {sorted(unknown)}"
        full = {**_DEFAULTS, "_record_position": n, "_record_hash": f"h{n}", **row}
        values.append(tuple(full.get(name) for name in schema.names))
    return spark.createDataFrame(values, schema)


def expected(spark: SparkSession, ddl: str, source: str, rows: Sequence[Mapping[str, Any]]) -> DataFrame:
    """Expected staged records: ``_h`` is the bronze ``_record_hash``; lineage defaults to ``source``, batch 1 and
    ``MODIFIED``; absent columns are null."""
    schema = spark.createDataFrame([], ddl).schema
    values = []
    for row in rows:
        full = {"_source": source, "_batch_id": 1, "_source_version": MODIFIED, **row}
        full["_source_record_hash"] = full.pop("_h")
        unknown = set(full) - set(schema.names)
        assert not unknown, f"not record columns: {sorted(unknown)}"
        values.append(tuple(full.get(name) for name in schema.names))
    return spark.createDataFrame(values, schema)


def ids(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    """An identifier array literal: ``ids(("mrn", "M1"), ("ssn", "123"))``."""
    return list(pairs)


def ts(text: str) -> dt.datetime:
    """A UTC timestamp literal from ``YYYY-MM-DD HH:MM:SS``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
