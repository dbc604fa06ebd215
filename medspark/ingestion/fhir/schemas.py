"""Explicit Spark schemas for FHIR R4 JSON: what medspark reads from a resource, and the bronze tables it writes.

Two kinds of schema live here:

- *read* schemas (``*_JSON``) describe the JSON shape of the elements the parser types, for ``from_json``.
  Every FHIR primitive (string, code, date, dateTime, decimal, integer, boolean) is read as ``string``: Spark then
  keeps the value whatever its JSON type, and the parser casts it itself, so a bad value becomes an
  ``invalid_date:<element>`` / ``invalid_number:<element>`` quarantine reason that names the element instead of a
  silent null. Only FHIR complex types (objects, arrays) have structure here, and an element of the wrong structure
  makes Spark set ``_corrupt_record`` (reason ``invalid_json:schema``).
- *bronze* schemas (:func:`bronze_schema`) are the output contract of both FHIR formats, one per entity table.

Schemas are DDL strings: they read like the FHIR JSON they describe and are parsed by Spark itself.
"""

from __future__ import annotations

from functools import cache

from pyspark.sql.types import DataType, StructType

# --- read schemas: FHIR complex types ---------------------------------------------------------------
CODING_JSON = "struct<system: string, code: string, display: string>"
CODEABLE_CONCEPT_JSON = f"struct<coding: array<{CODING_JSON}>, text: string>"
REFERENCE_JSON = "struct<reference: string, display: string>"
PERIOD_JSON = "struct<start: string, end: string>"
QUANTITY_JSON = "struct<value: string, unit: string, system: string, code: string>"
IDENTIFIER_JSON = "struct<system: string, value: string, type: struct<coding: array<struct<code: string>>>>"
META_JSON = "struct<versionId: string, lastUpdated: string>"
# subject / patient: a Reference, either literal (reference) or logical (identifier).
SUBJECT_JSON = "struct<reference: string, identifier: struct<system: string, value: string>>"

# Validity and type of a record of a typed entity: the whole text must be exactly one JSON object.
ENVELOPE_TYPE_JSON = "array<struct<resourceType: string>>"
# The envelope of every other record (fhir_other). Its elements are strings (raw JSON text for
# objects/arrays) because their shape differs between resource types: Bundle.identifier is one object,
# Account.subject an array, and a shape mismatch must not make a well-formed record look corrupt.
ENVELOPE_JSON = (
    "array<struct<resourceType: string, id: string, meta: string, identifier: string, extension: string,"
    " subject: string, patient: string>>"
)

# --- read schemas: per resource type (only elements medspark types; unknown elements are skipped) -----
_CORRUPT = "_corrupt_record: string"
# The shared elements as the six typed resource types always have them in R4 (for other types they vary).
_COMMON_TYPED = [
    "id: string",
    f"meta: {META_JSON}",
    f"identifier: array<{IDENTIFIER_JSON}>",
    "extension: array<string>",
    f"subject: {SUBJECT_JSON}",
]


def _struct(fields: list[str]) -> str:
    return f"struct<{', '.join(_COMMON_TYPED + fields)}>"


PATIENT_JSON = _struct(
    [
        "birthDate: string",
        "gender: string",
        "deceasedDateTime: string",
        "deceasedBoolean: string",
        "name: array<struct<use: string, family: string, given: array<string>>>",
        "address: array<struct<line: array<string>, city: string, state: string, postalCode: string, country: string>>",
        "telecom: array<struct<system: string, value: string, use: string>>",
        f"maritalStatus: {CODEABLE_CONCEPT_JSON}",
        _CORRUPT,
    ]
)

ENCOUNTER_JSON = _struct(
    [
        "status: string",
        "class: struct<system: string, code: string>",
        f"type: array<{CODEABLE_CONCEPT_JSON}>",
        f"period: {PERIOD_JSON}",
        f"serviceProvider: {REFERENCE_JSON}",
        f"participant: array<struct<individual: {REFERENCE_JSON}>>",
        f"reasonCode: array<{CODEABLE_CONCEPT_JSON}>",
        f"hospitalization: struct<dischargeDisposition: {CODEABLE_CONCEPT_JSON}>",
        f"location: array<struct<location: {REFERENCE_JSON}>>",
        _CORRUPT,
    ]
)

CONDITION_JSON = _struct(
    [
        f"clinicalStatus: {CODEABLE_CONCEPT_JSON}",
        f"verificationStatus: {CODEABLE_CONCEPT_JSON}",
        f"category: array<{CODEABLE_CONCEPT_JSON}>",
        f"code: {CODEABLE_CONCEPT_JSON}",
        "onsetDateTime: string",
        f"onsetPeriod: {PERIOD_JSON}",
        "abatementDateTime: string",
        f"abatementPeriod: {PERIOD_JSON}",
        "recordedDate: string",
        f"encounter: {REFERENCE_JSON}",
        _CORRUPT,
    ]
)

MEDICATION_REQUEST_JSON = _struct(
    [
        "status: string",
        "intent: string",
        f"medicationCodeableConcept: {CODEABLE_CONCEPT_JSON}",
        f"medicationReference: {REFERENCE_JSON}",
        "authoredOn: string",
        f"encounter: {REFERENCE_JSON}",
        f"requester: {REFERENCE_JSON}",
        "dosageInstruction: array<struct<text: string,"
        " timing: struct<repeat: struct<frequency: string, period: string, periodUnit: string>>,"
        f" doseAndRate: array<struct<doseQuantity: {QUANTITY_JSON}>>>>",
        _CORRUPT,
    ]
)

PROCEDURE_JSON = _struct(
    [
        "status: string",
        f"code: {CODEABLE_CONCEPT_JSON}",
        "performedDateTime: string",
        f"performedPeriod: {PERIOD_JSON}",
        f"encounter: {REFERENCE_JSON}",
        _CORRUPT,
    ]
)

OBSERVATION_JSON = _struct(
    [
        "status: string",
        f"category: array<{CODEABLE_CONCEPT_JSON}>",
        f"code: {CODEABLE_CONCEPT_JSON}",
        "effectiveDateTime: string",
        f"effectivePeriod: {PERIOD_JSON}",
        "effectiveInstant: string",
        "issued: string",
        f"valueQuantity: {QUANTITY_JSON}",
        f"valueCodeableConcept: {CODEABLE_CONCEPT_JSON}",
        "valueString: string",
        "valueBoolean: string",
        "valueInteger: string",
        f"component: array<struct<code: {CODEABLE_CONCEPT_JSON}, valueQuantity: {QUANTITY_JSON}>>",
        f"encounter: {REFERENCE_JSON}",
        _CORRUPT,
    ]
)

# --- bronze schemas (output contract) ---------------------------------------------------------------
CODING = "struct<system: string, code: string, display: string>"
QUANTITY = "struct<value: double, unit: string, system: string, code: string>"

LINEAGE_COLUMNS = "_source_file string, _record_position bigint, _raw string"
COMMON_COLUMNS = (
    "resource_type string, resource_id string, version_id string, last_updated timestamp, full_url string,"
    " identifiers array<struct<system: string, value: string, type_code: string>>,"
    " extensions map<string, string>, patient_reference string, patient_id string"
)
COMMON_COLUMN_NAMES = (
    "resource_type",
    "resource_id",
    "version_id",
    "last_updated",
    "full_url",
    "identifiers",
    "extensions",
    "patient_reference",
    "patient_id",
)
QUARANTINE_COLUMN = "_quarantine_reason string"

ENTITY_COLUMNS: dict[str, str] = {
    "fhir_patient": (
        "birth_date date, gender string, deceased_datetime timestamp, deceased_boolean boolean,"
        " name_family string, name_given array<string>, address_line array<string>, address_city string,"
        " address_state string, address_postal_code string, address_country string,"
        " telecom array<struct<system: string, value: string, use: string>>, marital_status_code string,"
        " race_codes array<string>, ethnicity_codes array<string>, birth_sex string"
    ),
    "fhir_encounter": (
        "status string, class_system string, class_code string,"
        f" type_codings array<{CODING}>, period_start timestamp, period_end timestamp,"
        " service_provider_reference string, practitioner_reference string,"
        f" reason_codings array<{CODING}>, discharge_disposition_code string, location_reference string"
    ),
    "fhir_condition": (
        "clinical_status string, verification_status string, category_codes array<string>,"
        f" code_codings array<{CODING}>, onset_datetime timestamp, abatement_datetime timestamp,"
        " recorded_datetime timestamp, encounter_reference string"
    ),
    "fhir_medicationrequest": (
        f"status string, intent string, medication_codings array<{CODING}>, medication_reference string,"
        " authored_on timestamp, encounter_reference string, requester_reference string, dosage_text string,"
        " dosage_frequency int, dosage_period double, dosage_period_unit string,"
        f" dose_quantity {QUANTITY}"
    ),
    "fhir_procedure": (
        f"status string, code_codings array<{CODING}>, performed_start timestamp, performed_end timestamp,"
        " encounter_reference string"
    ),
    "fhir_observation": (
        f"status string, category_codes array<string>, code_codings array<{CODING}>,"
        " effective_datetime timestamp, issued timestamp,"
        f" value_quantity {QUANTITY}, value_codeable_concept array<{CODING}>, value_string string,"
        " value_boolean boolean, value_integer int,"
        f" components array<struct<code_codings: array<{CODING}>, value_quantity: {QUANTITY}>>,"
        " encounter_reference string"
    ),
    "fhir_other": "",
}


def bronze_ddl(entity: str) -> str:
    """The full DDL of one bronze entity table: lineage, common, entity and quarantine columns, in order."""
    parts = [LINEAGE_COLUMNS, COMMON_COLUMNS, ENTITY_COLUMNS[entity], QUARANTINE_COLUMN]
    return ", ".join(part for part in parts if part)


@cache
def bronze_schema(entity: str) -> StructType:
    """The bronze schema of one entity (parsing DDL needs a running Spark driver, hence not at import)."""
    schema = DataType.fromDDL(bronze_ddl(entity))
    assert isinstance(schema, StructType)
    return schema
