"""FHIR NDJSON: literal lines -> expected typed rows per entity, every quarantine reason, dates, extensions, _raw.

The lines are parsed once per module and each entity is collected once; tests compare collected rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import DataType, StructType
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from medspark.ingestion.fhir.parse import FORMAT_NDJSON

FILE = "file:/in/fhir-ndjson/mixed.000.ndjson"
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
UTC = dt.UTC


def _ts(text: str) -> dt.datetime:
    """Expected UTC instant, naive as Spark returns it with a UTC session."""
    return dt.datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


PATIENT = (
    '{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2021-01-02T03:04:05.123+02:00"},'
    '"extension":[{"url":"' + RACE + '","extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.'
    '1.113883.6.238","code":"2106-3","display":"White"}},{"url":"detailed","valueCoding":{"code":"2108-9"}},'
    '{"url":"text","valueString":"White"}]},{"url":"' + ETHNICITY + '","extension":[{"url":"ombCategory",'
    '"valueCoding":{"code":"2186-5"}}]},{"url":"' + BIRTHSEX + '","valueCode":"F"},'
    '{"url":"http://x/ext","valueDecimal":0.1000},{"url":"http://x/ext","valueString":"b"}],'
    '"identifier":[{"system":"https://github.com/synthetichealth/synthea","value":"p1"},{"type":{"coding":[{"system":'
    '"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:oid:2.16.840.1.113883.3.4242.1",'
    '"value":"MRN-1"}],"name":[{"use":"maiden","family":"Old","given":["Ann"]},{"use":"official","family":"Smith",'
    '"given":["Ann","B"]}],"telecom":[{"system":"phone","value":"555-1","use":"home"}],"gender":"female",'
    '"birthDate":"1980-05-06","deceasedDateTime":"2020-03-04T10:11:12-05:00","address":[{"line":["1 Main St"],'
    '"city":"Boston","state":"MA","postalCode":"02101","country":"US"}],"maritalStatus":{"coding":[{"code":"M"}]},'
    '"unknownElement":{"kept":"in _raw"}}'
)
ENCOUNTER = (
    '{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSyst'
    'em/v3-ActCode","code":"AMB"},"type":[{"coding":[{"system":"http://snomed.info/sct","code":"185349003",'
    '"display":"check up"}]}],"subject":{"reference":"Patient/p1"},"participant":[{"type":[{"text":"x"}]},'
    '{"individual":{"reference":"Practitioner/dr1"}}],"period":{"start":"2020-01-01T08:00:00+01:00",'
    '"end":"2020-01-01T09:30:00Z"},"reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"1"}]},'
    '{"coding":[{"system":"http://snomed.info/sct","code":"2"}]}],"hospitalization":{"dischargeDisposition":'
    '{"coding":[{"code":"home"}]}},"location":[{"location":{"reference":"Location/l1"}}],'
    '"serviceProvider":{"reference":"Organization/o1"}}'
)
CONDITION = (
    '{"resourceType":"Condition","id":"c1","clinicalStatus":{"coding":[{"code":"active"}]},"verificationStatus":'
    '{"coding":[{"code":"confirmed"}]},"category":[{"coding":[{"code":"encounter-diagnosis"}]}],"code":{"coding":'
    '[{"system":"http://snomed.info/sct","code":"44054006","display":"Diabetes"}]},"subject":{"reference":'
    '"urn:uuid:p1"},"encounter":{"reference":"Encounter/e1"},"onsetDateTime":"2019","abatementDateTime":"2020-06",'
    '"recordedDate":"2019-02-03"}'
)
MEDICATION_REQUEST = (
    '{"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order","medicationCodeableConcept":'
    '{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"314076","display":"lisinopril"}]},'
    '"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},"authoredOn":'
    '"2020-01-01T08:30:00+00:00","requester":{"reference":"Practitioner/dr1"},"dosageInstruction":[{"text":'
    '"1 daily","timing":{"repeat":{"frequency":1,"period":1.0,"periodUnit":"d"}},"doseAndRate":[{"type":{}},'
    '{"doseQuantity":{"value":10,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}]}]}'
)
PROCEDURE = (
    '{"resourceType":"Procedure","id":"pr1","status":"completed","code":{"coding":[{"system":"http://snomed.info/sct",'
    '"code":"73761001"}]},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},'
    '"performedPeriod":{"start":"2020-01-01T08:00:00Z","end":"2020-01-01T08:45:00Z"}}'
)
OBSERVATION_BP = (
    '{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"code":"vital-signs"}]}],'
    '"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/p1"},'
    '"encounter":{"reference":"Encounter/e1"},"effectiveDateTime":"2020-01-01T08:05:00Z","issued":'
    '"2020-01-01T08:05:00.530+00:00","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},'
    '"valueQuantity":{"value":120,"unit":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},'
    '"valueQuantity":{"value":80.5,"unit":"mm[Hg]"}}]}'
)
OBSERVATION_CODED = (
    '{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"code":"72166-2"}]},'
    '"subject":{"identifier":{"system":"urn:mrn","value":"MRN-1"}},"effectivePeriod":{"start":"2020-02"},'
    '"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"266919005"}]}}'
)
OBSERVATION_QUANTITY = (
    '{"resourceType":"Observation","id":"o3","status":"final","code":{"coding":[{"code":"8302-2"}]},'
    '"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-02-03T04:05:06","valueQuantity":'
    '{"value":176.35499866729558,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}'
)
OBSERVATION_SCALARS = [
    '{"resourceType":"Observation","id":"o4","subject":{"reference":"Patient/p1"},"valueString":"positive"}',
    '{"resourceType":"Observation","id":"o5","subject":{"reference":"Patient/p1"},"valueBoolean":true}',
    '{"resourceType":"Observation","id":"o6","subject":{"reference":"Patient/p1"},"valueInteger":7}',
]
OTHERS = [
    '{"resourceType":"Claim","id":"cl1","patient":{"reference":"Patient/p1"},"identifier":{"value":"one"}}',
    '{"resourceType":"Account","id":"a1","subject":[{"reference":"Patient/p1"},{"reference":"Group/g"}]}',
    '\ufeff{"resourceType":"Organization","id":"org1","name":"Acme"}',
    # resourceType not first: routed by the parsed type, still a typed entity
    '{"id":"p9","resourceType":"Patient","birthDate":"2001"}',
    '{ "resourceType" : "Condition", "id":"c9", "subject": {"reference": "Patient/p9"}, "onsetDateTime": "2010-04"}',
]
QUARANTINED: list[tuple[str | bytes, str, str]] = [
    # (line, entity, reason)
    (b'{"resourceType":"Patient","id":"bad1","name":[{"family":"M\xfcller"}]}', "fhir_patient", "invalid_encoding"),
    ('{"resourceType":"Patient","id":"bad2","birthDate":"1980-13-40"}', "fhir_patient", "invalid_date:birthDate"),
    ('{"resourceType":"Patient","id":"bad3","birthDate":"1980-02-30"}', "fhir_patient", "invalid_date:birthDate"),
    ('{"resourceType":"Patient","gender":"male","name":[{"family":"X"}]}', "fhir_patient", "missing_identifier"),
    ('{"resourceType":"Patient","id":"bad5","gender":"female"', "fhir_patient", "invalid_json"),
    ('{"resourceType":"Patient","id":"bad6"} trailing', "fhir_patient", "invalid_json"),
    ('{"resourceType":"Patient","id":"bad7"}{"resourceType":"Patient","id":"x"}', "fhir_patient", "invalid_json"),
    ('"resourceType":"Patient","id":"bad8"}', "fhir_patient", "invalid_json"),
    ('{"resourceType":"Patient","id":"bad9","name":{"family":"not an array"}}', "fhir_patient", "invalid_json:schema"),
    ('{"resourceType":"Condition","id":"bad10","code":{"coding":[]}}', "fhir_condition", "missing_identifier"),
    (
        '{"resourceType":"Condition","id":"bad11","subject":{"reference":"Patient/p1"},"onsetDateTime":"2020-1-5"}',
        "fhir_condition",
        "invalid_date:onsetDateTime",
    ),
    (
        '{"resourceType":"Encounter","id":"bad12","subject":{"reference":"Patient/p1"},"period":{"start":"2020-01-01'
        'T25:00:00Z"}}',
        "fhir_encounter",
        "invalid_date:period.start",
    ),
    (
        '{"resourceType":"Procedure","id":"bad13","subject":{"display":"Jane Doe"},"status":"completed"}',
        "fhir_procedure",
        "missing_identifier",
    ),
    (
        '{"resourceType":"Observation","id":"bad14","subject":{"reference":"Patient/p1"},"valueQuantity":'
        '{"value":"12,5"}}',
        "fhir_observation",
        "invalid_number:valueQuantity.value",
    ),
    (
        '{"resourceType":"MedicationRequest","id":"bad15","subject":{"reference":"Patient/p1"},"authoredOn":"2020",'
        '"dosageInstruction":[{"timing":{"repeat":{"frequency":"daily"}}}]}',
        "fhir_medicationrequest",
        "invalid_number:dosageInstruction.timing.repeat.frequency",
    ),
    (
        '{"resourceType":"Observation","id":"bad16","subject":{"reference":"Patient/p1"}',
        "fhir_observation",
        "invalid_json",
    ),
    ('{"id":"bad17","status":"final"}', "fhir_other", "unknown_resource_type"),
    ('{"resourceType":5,"id":"bad18"}', "fhir_other", "unknown_resource_type"),
    ("[1,2,3]", "fhir_other", "invalid_json"),
    ("{'resourceType':'Patient','id':'bad20'}", "fhir_other", "invalid_json"),
    ('{"resourceType":"Basic","id":"bad21","value":NaN}', "fhir_other", "invalid_json"),
    ('{"resourceType":"Basic","id":"bad22","meta":"not an object"}', "fhir_other", "invalid_json:meta"),
    (
        '{"resourceType":"Basic","id":"bad23","meta":{"lastUpdated":"yesterday"}}',
        "fhir_other",
        "invalid_date:meta.lastUpdated",
    ),
]
VALID_LINES: list[str] = [
    PATIENT,
    ENCOUNTER,
    CONDITION,
    MEDICATION_REQUEST,
    PROCEDURE,
    OBSERVATION_BP,
    OBSERVATION_CODED,
    OBSERVATION_QUANTITY,
    *OBSERVATION_SCALARS,
    *OTHERS,
]
LINES: list[str | bytes] = [*VALID_LINES, *(line for line, _, _ in QUARANTINED)]
# The bronze contract, written out: lineage and common columns of every entity, two entities in full.
CODING = "struct<system: string, code: string, display: string>"
QUANTITY = "struct<value: double, unit: string, system: string, code: string>"
COMMON_DDL = (
    "_source_file string, _record_position bigint, _raw string, resource_type string, resource_id string, "
    "version_id string, last_updated timestamp, full_url string, "
    "identifiers array<struct<system: string, value: string, type_code: string>>, extensions map<string, string>, "
    "patient_reference string, patient_id string"
)
ENTITY_DDL = {
    "fhir_patient": (
        ", birth_date date, gender string, deceased_datetime timestamp, deceased_boolean boolean, name_family string,"
        " name_given array<string>, address_line array<string>, address_city string, address_state string,"
        " address_postal_code string, address_country string,"
        " telecom array<struct<system: string, value: string, use: string>>, marital_status_code string,"
        " race_codes array<string>, ethnicity_codes array<string>, birth_sex string"
    ),
    "fhir_observation": (
        f", status string, category_codes array<string>, code_codings array<{CODING}>, effective_datetime timestamp,"
        f" issued timestamp, value_quantity {QUANTITY}, value_codeable_concept array<{CODING}>, value_string string,"
        " value_boolean boolean, value_integer int,"
        f" components array<struct<code_codings: array<{CODING}>, value_quantity: {QUANTITY}>>,"
        " encounter_reference string"
    ),
}
ENTITIES = (
    "fhir_patient",
    "fhir_encounter",
    "fhir_condition",
    "fhir_medicationrequest",
    "fhir_procedure",
    "fhir_observation",
    "fhir_other",
)


def _names(text: str) -> list[str]:
    return text.split()


def _position(line: str | bytes) -> int:
    return LINES.index(line) + 1


@pytest.fixture(scope="module")
def parsed(spark: SparkSession) -> dict[str, list[Row]]:
    """Every entity of the literal file, collected once (lines as bytes: one holds invalid UTF-8)."""
    rows = [(FILE, n, bytearray(line if isinstance(line, bytes) else line.encode())) for n, line in enumerate(LINES, 1)]
    frame = spark.createDataFrame(rows, "_source_file string, _record_position long, _bytes binary")
    lines = frame.select("_source_file", "_record_position", sf.col("_bytes").cast("string").alias("_raw"))
    outputs = FORMAT_NDJSON.parse(lines, [])
    assert set(outputs) == set(ENTITIES)
    for entity, output in outputs.items():
        ddl = COMMON_DDL + ENTITY_DDL.get(entity, "") + ", _quarantine_reason string"
        if entity in ENTITY_DDL or entity == "fhir_other":
            expected = DataType.fromDDL(ddl)
            assert isinstance(expected, StructType)
            assertSchemaEqual(output.schema, expected)
        else:
            common = DataType.fromDDL(COMMON_DDL)
            assert isinstance(common, StructType)
            assertSchemaEqual(StructType(output.schema.fields[: len(common.fields)]), common)
    return {entity: output.collect() for entity, output in outputs.items()}


def _select(rows: Sequence[Row], *columns: str, where: int | None = None) -> list[Row]:
    picked = [r for r in rows if where is None or r["_record_position"] == where]
    return [Row(**{c: r[c] for c in columns}) for r in picked]


def test_every_line_exactly_once(parsed: dict[str, list[Row]]) -> None:
    positions = sorted(r["_record_position"] for rows in parsed.values() for r in rows)
    assert positions == list(range(1, len(LINES) + 1))
    for rows in parsed.values():
        for row in rows:
            assert row["_source_file"] == FILE
            expected = LINES[row["_record_position"] - 1]
            # _raw is the line as it was (invalid bytes come back replaced only by Python's decoding)
            if isinstance(expected, str):
                assert row["_raw"] == expected


def test_valid_lines_are_not_quarantined(parsed: dict[str, list[Row]]) -> None:
    valid = {_position(line) for line in VALID_LINES}
    reasons = {r["_record_position"]: r["_quarantine_reason"] for rows in parsed.values() for r in rows}
    assert {p: reasons[p] for p in valid} == dict.fromkeys(valid)


@pytest.mark.parametrize(("line", "entity", "reason"), QUARANTINED, ids=[q[2] + ":" + q[1] for q in QUARANTINED])
def test_quarantine_reason(parsed: dict[str, list[Row]], line: str | bytes, entity: str, reason: str) -> None:
    assert _select(parsed[entity], "_quarantine_reason", where=_position(line)) == [Row(_quarantine_reason=reason)]


def test_patient_typed_row(parsed: dict[str, list[Row]]) -> None:
    columns = _names(
        "resource_type resource_id version_id last_updated full_url identifiers patient_reference patient_id "
        "birth_date gender deceased_datetime deceased_boolean name_family name_given address_line address_city "
        "address_state address_postal_code address_country telecom marital_status_code race_codes ethnicity_codes "
        "birth_sex"
    )
    expected = Row(
        resource_type="Patient",
        resource_id="p1",
        version_id="3",
        last_updated=dt.datetime(2021, 1, 2, 1, 4, 5, 123000),
        full_url=None,
        identifiers=[
            Row(system="https://github.com/synthetichealth/synthea", value="p1", type_code=None),
            Row(system="urn:oid:2.16.840.1.113883.3.4242.1", value="MRN-1", type_code="MR"),
        ],
        patient_reference=None,
        patient_id=None,
        birth_date=dt.date(1980, 5, 6),
        gender="female",
        deceased_datetime=dt.datetime(2020, 3, 4, 15, 11, 12),
        deceased_boolean=None,
        name_family="Smith",
        name_given=["Ann", "B"],
        address_line=["1 Main St"],
        address_city="Boston",
        address_state="MA",
        address_postal_code="02101",
        address_country="US",
        telecom=[Row(system="phone", value="555-1", use="home")],
        marital_status_code="M",
        race_codes=["2106-3", "2108-9"],
        ethnicity_codes=["2186-5"],
        birth_sex="F",
    )
    assertDataFrameEqual(_select(parsed["fhir_patient"], *columns, where=_position(PATIENT)), [expected])


def test_extensions_map_keeps_json_and_groups_repeated_urls(parsed: dict[str, list[Row]]) -> None:
    (row,) = [r for r in parsed["fhir_patient"] if r["_record_position"] == _position(PATIENT)]
    extensions = row["extensions"]
    assert sorted(extensions) == sorted([RACE, ETHNICITY, BIRTHSEX, "http://x/ext"])
    assert json.loads(extensions[BIRTHSEX]) == {"url": BIRTHSEX, "valueCode": "F"}
    # two extensions with one url: one JSON array text, in document order (decimal printed back from a double)
    assert (
        extensions["http://x/ext"]
        == '[{"url":"http://x/ext","valueDecimal":0.1},{"url":"http://x/ext","valueString":"b"}]'
    )
    assert json.loads(extensions[RACE])["extension"][1] == {"url": "detailed", "valueCoding": {"code": "2108-9"}}
    # the raw line keeps everything, unknown elements and the decimal's precision included
    assert row["_raw"] == PATIENT
    assert '"valueDecimal":0.1000' in row["_raw"] and '"unknownElement"' in row["_raw"]


def test_encounter_typed_row(parsed: dict[str, list[Row]]) -> None:
    columns = _names(
        "resource_id patient_reference patient_id status class_system class_code type_codings period_start "
        "period_end service_provider_reference practitioner_reference reason_codings discharge_disposition_code "
        "location_reference"
    )
    expected = Row(
        resource_id="e1",
        patient_reference="Patient/p1",
        patient_id="p1",
        status="finished",
        class_system="http://terminology.hl7.org/CodeSystem/v3-ActCode",
        class_code="AMB",
        type_codings=[Row(system="http://snomed.info/sct", code="185349003", display="check up")],
        period_start=dt.datetime(2020, 1, 1, 7, 0),
        period_end=dt.datetime(2020, 1, 1, 9, 30),
        service_provider_reference="Organization/o1",
        practitioner_reference="Practitioner/dr1",
        reason_codings=[
            Row(system="http://snomed.info/sct", code="1", display=None),
            Row(system="http://snomed.info/sct", code="2", display=None),
        ],
        discharge_disposition_code="home",
        location_reference="Location/l1",
    )
    assertDataFrameEqual(_select(parsed["fhir_encounter"], *columns, where=_position(ENCOUNTER)), [expected])


def test_condition_rows_and_partial_dates(parsed: dict[str, list[Row]]) -> None:
    columns = _names(
        "resource_id patient_reference patient_id clinical_status verification_status category_codes code_codings "
        "onset_datetime abatement_datetime recorded_datetime encounter_reference"
    )
    expected = [
        Row(
            resource_id="c1",
            patient_reference="urn:uuid:p1",
            patient_id="p1",
            clinical_status="active",
            verification_status="confirmed",
            category_codes=["encounter-diagnosis"],
            code_codings=[Row(system="http://snomed.info/sct", code="44054006", display="Diabetes")],
            onset_datetime=dt.datetime(2019, 1, 1),  # "2019": start of the year
            abatement_datetime=dt.datetime(2020, 6, 1),  # "2020-06": start of the month
            recorded_datetime=dt.datetime(2019, 2, 3),
            encounter_reference="Encounter/e1",
        ),
        Row(
            resource_id="c9",
            patient_reference="Patient/p9",
            patient_id="p9",
            clinical_status=None,
            verification_status=None,
            category_codes=None,
            code_codings=None,
            onset_datetime=dt.datetime(2010, 4, 1),
            abatement_datetime=None,
            recorded_datetime=None,
            encounter_reference=None,
        ),
    ]
    actual = [r for r in parsed["fhir_condition"] if r["_quarantine_reason"] is None]
    assertDataFrameEqual(_select(actual, *columns), expected)


def test_medication_request_typed_row(parsed: dict[str, list[Row]]) -> None:
    columns = _names(
        "resource_id patient_id status intent medication_codings medication_reference authored_on "
        "encounter_reference requester_reference dosage_text dosage_frequency dosage_period dosage_period_unit "
        "dose_quantity"
    )
    expected = Row(
        resource_id="m1",
        patient_id="p1",
        status="active",
        intent="order",
        medication_codings=[
            Row(system="http://www.nlm.nih.gov/research/umls/rxnorm", code="314076", display="lisinopril")
        ],
        medication_reference=None,
        authored_on=dt.datetime(2020, 1, 1, 8, 30),
        encounter_reference="Encounter/e1",
        requester_reference="Practitioner/dr1",
        dosage_text="1 daily",
        dosage_frequency=1,
        dosage_period=1.0,
        dosage_period_unit="d",
        dose_quantity=Row(value=10.0, unit="mg", system="http://unitsofmeasure.org", code="mg"),
    )
    assertDataFrameEqual(
        _select(parsed["fhir_medicationrequest"], *columns, where=_position(MEDICATION_REQUEST)), [expected]
    )


def test_procedure_typed_row(parsed: dict[str, list[Row]]) -> None:
    columns = _names("resource_id patient_id status code_codings performed_start performed_end encounter_reference")
    expected = Row(
        resource_id="pr1",
        patient_id="p1",
        status="completed",
        code_codings=[Row(system="http://snomed.info/sct", code="73761001", display=None)],
        performed_start=dt.datetime(2020, 1, 1, 8, 0),
        performed_end=dt.datetime(2020, 1, 1, 8, 45),
        encounter_reference="Encounter/e1",
    )
    assertDataFrameEqual(_select(parsed["fhir_procedure"], *columns, where=_position(PROCEDURE)), [expected])


def test_observation_value_types(parsed: dict[str, list[Row]]) -> None:
    columns = _names(
        "resource_id patient_reference patient_id status category_codes effective_datetime issued value_quantity "
        "value_codeable_concept value_string value_boolean value_integer components encounter_reference"
    )
    blank = dict.fromkeys(columns)
    loinc = "http://loinc.org"
    expected = [
        Row(
            **{
                **blank,
                "resource_id": "o1",
                "patient_reference": "Patient/p1",
                "patient_id": "p1",
                "status": "final",
                "category_codes": ["vital-signs"],
                "effective_datetime": dt.datetime(2020, 1, 1, 8, 5),
                "issued": dt.datetime(2020, 1, 1, 8, 5, 0, 530000),
                "components": [
                    Row(
                        code_codings=[Row(system=loinc, code="8480-6", display=None)],
                        value_quantity=Row(value=120.0, unit="mm[Hg]", system=None, code=None),
                    ),
                    Row(
                        code_codings=[Row(system=loinc, code="8462-4", display=None)],
                        value_quantity=Row(value=80.5, unit="mm[Hg]", system=None, code=None),
                    ),
                ],
                "encounter_reference": "Encounter/e1",
            }
        ),
        Row(
            **{
                **blank,
                "resource_id": "o2",
                "status": "final",
                "effective_datetime": dt.datetime(2020, 2, 1),
                "value_codeable_concept": [Row(system="http://snomed.info/sct", code="266919005", display=None)],
            }
        ),
        Row(
            **{
                **blank,
                "resource_id": "o3",
                "patient_reference": "Patient/p1",
                "patient_id": "p1",
                "status": "final",
                "effective_datetime": dt.datetime(2020, 2, 3, 4, 5, 6),  # no offset: read as UTC
                "value_quantity": Row(
                    value=176.35499866729558, unit="cm", system="http://unitsofmeasure.org", code="cm"
                ),
            }
        ),
        Row(
            **{
                **blank,
                "resource_id": "o4",
                "patient_reference": "Patient/p1",
                "patient_id": "p1",
                "value_string": "positive",
            }
        ),
        Row(
            **{
                **blank,
                "resource_id": "o5",
                "patient_reference": "Patient/p1",
                "patient_id": "p1",
                "value_boolean": True,
            }
        ),
        Row(
            **{**blank, "resource_id": "o6", "patient_reference": "Patient/p1", "patient_id": "p1", "value_integer": 7}
        ),
    ]
    actual = [r for r in parsed["fhir_observation"] if r["_quarantine_reason"] is None]
    assertDataFrameEqual(_select(actual, *columns), expected)


def test_other_resources_keep_common_columns(parsed: dict[str, list[Row]]) -> None:
    columns = _names("resource_type resource_id identifiers patient_reference patient_id _quarantine_reason")
    expected = [
        Row(
            resource_type="Claim",
            resource_id="cl1",
            identifiers=[Row(system=None, value="one", type_code=None)],
            patient_reference="Patient/p1",
            patient_id="p1",
            _quarantine_reason=None,
        ),
        # Account.subject is an array: its first reference is the patient link
        Row(
            resource_type="Account",
            resource_id="a1",
            identifiers=None,
            patient_reference="Patient/p1",
            patient_id="p1",
            _quarantine_reason=None,
        ),
        Row(
            resource_type="Organization",
            resource_id="org1",
            identifiers=None,
            patient_reference=None,
            patient_id=None,
            _quarantine_reason=None,
        ),
    ]
    actual = [r for r in parsed["fhir_other"] if r["_record_position"] in {_position(line) for line in OTHERS}]
    assertDataFrameEqual(_select(actual, *columns), expected)


def test_patient_with_resource_type_not_first(parsed: dict[str, list[Row]]) -> None:
    assert _select(
        parsed["fhir_patient"], "resource_id", "birth_date", "_quarantine_reason", where=_position(OTHERS[3])
    ) == [Row(resource_id="p9", birth_date=dt.date(2001, 1, 1), _quarantine_reason=None)]
