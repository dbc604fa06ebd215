"""FHIR JSON documents: Bundle unpacking keeps each entry's exact text; files -> expected rows, gzip included."""

from __future__ import annotations

import gzip
import json
import os
import sys

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.ingestion.fhir.bundle import SplitRecord, split_document
from medspark.ingestion.fhir.parse import FORMAT_BUNDLE

# The unpacking runs in pandas workers: they must be this interpreter (it has pandas/pyarrow), not `python3`.
# Read when the session starts, i.e. after collection, so setting it here is early enough.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

PRETTY_BUNDLE = b"""\xef\xbb\xbf{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {
      "fullUrl": "urn:uuid:11111111-2222",
      "resource": {
        "resourceType": "Patient",
        "id": "11111111-2222",
        "birthDate": "1970",
        "extension": [ { "url": "http://x", "valueDecimal": 1.500 } ]
      },
      "request": { "method": "POST", "url": "Patient" }
    },
    {
      "request": { "method": "DELETE", "url": "Patient/gone" }
    },
    {
      "fullUrl": "urn:uuid:obs-1",
      "resource": {"resourceType": "Observation", "id": "obs-1", "subject": {"reference": "urn:uuid:11111111-2222"},
                   "valueQuantity": {"value": 1e2, "unit": "mg"}}
    },
    {
      "resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient"}}]}
    }
  ]
}
"""
PATIENT_ENTRY = b"""{
        "resourceType": "Patient",
        "id": "11111111-2222",
        "birthDate": "1970",
        "extension": [ { "url": "http://x", "valueDecimal": 1.500 } ]
      }"""
DELETE_ENTRY = b"""{
      "request": { "method": "DELETE", "url": "Patient/gone" }
    }"""
OBSERVATION_ENTRY = (
    b'{"resourceType": "Observation", "id": "obs-1", "subject": {"reference": "urn:uuid:11111111-2222"},\n'
    b'                   "valueQuantity": {"value": 1e2, "unit": "mg"}}'
)
NESTED_ENTRY = (
    b"""{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient"}}]}"""
)


def test_split_keeps_each_entry_resource_text_exactly() -> None:
    assert split_document(PRETTY_BUNDLE) == [
        SplitRecord(1, PATIENT_ENTRY, "urn:uuid:11111111-2222", None),
        SplitRecord(2, DELETE_ENTRY, None, "missing_field:resource"),
        SplitRecord(3, OBSERVATION_ENTRY, "urn:uuid:obs-1", None),
        SplitRecord(4, NESTED_ENTRY, None, None),  # nested Bundle: one record, not recursed into
    ]
    assert split_document(gzip.compress(PRETTY_BUNDLE)) == split_document(PRETTY_BUNDLE)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'  {"resourceType": "Patient", "id": "x"}\n',
            [SplitRecord(1, b'{"resourceType": "Patient", "id": "x"}', None, None)],
        ),
        (
            b'{"resourceType":"List","entry":[{"item":{"reference":"Patient/x"}}]}',
            [SplitRecord(1, b'{"resourceType":"List","entry":[{"item":{"reference":"Patient/x"}}]}', None, None)],
        ),
        (
            b'{"resourceType":"Bundle","type":"searchset","total":0}',
            [SplitRecord(0, b'{"resourceType":"Bundle","type":"searchset","total":0}', None, "empty_file")],
        ),
        (
            b'{"resourceType":"Bundle","entry":[]}',
            [SplitRecord(0, b'{"resourceType":"Bundle","entry":[]}', None, "empty_file")],
        ),
        (b"", [SplitRecord(0, b"", None, "empty_file")]),
        (
            b'{"resourceType":"Bundle","entry":[{"resource":null}]}',
            [SplitRecord(1, b'{"resource":null}', None, "missing_field:resource")],
        ),
        (
            b'{"resourceType":"Patient","id":"x"} {"x":1}',
            [SplitRecord(0, b'{"resourceType":"Patient","id":"x"} {"x":1}', None, "bundle_invalid")],
        ),
        (
            b'{"resourceType":"Patient","id":"x"',
            [SplitRecord(0, b'{"resourceType":"Patient","id":"x"', None, "bundle_invalid")],
        ),
        (b'{"id":"no type"}', [SplitRecord(0, b'{"id":"no type"}', None, "bundle_invalid")]),
        (
            b'{"resourceType":"Bundle","entry":{"resource":{}}}',
            [SplitRecord(0, b'{"resourceType":"Bundle","entry":{"resource":{}}}', None, "bundle_invalid")],
        ),
        (
            b'{"resourceType":"Patient","x":NaN}',
            [SplitRecord(0, b'{"resourceType":"Patient","x":NaN}', None, "bundle_invalid")],
        ),
        (b"\x1f\x8b\x08\x00not gzip", [SplitRecord(0, b"", None, "bundle_invalid:gzip")]),
        # invalid UTF-8 survives byte for byte (the Spark side flags it)
        (
            b'{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"\xff"}}]}',
            [SplitRecord(1, b'{"resourceType":"Patient","id":"\xff"}', None, None)],
        ),
    ],
)
def test_split_edge_cases(content: bytes, expected: list[SplitRecord]) -> None:
    assert split_document(content) == expected


def test_spark_from_json_string_field_reserialises(spark: SparkSession) -> None:
    """Why the unpacking is not ``from_json(entry: array<struct<resource: string>>)``: Spark keeps unknown fields
    but re-prints the object (decimal precision and number spelling lost), so it is not the record's own text."""
    bundle = (
        '{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient", "x":0.1000,"y":1e2,"z":"\\u00e9"}}]}'
    )
    frame = spark.createDataFrame([(bundle,)], "text string")
    schema = "struct<entry: array<struct<resource: string>>>"
    (row,) = frame.select(sf.from_json("text", schema)["entry"][0]["resource"].alias("resource")).collect()
    assert row.resource == '{"resourceType":"Patient","x":0.1,"y":100.0,"z":"é"}'
    assert json.loads(row.resource)["resourceType"] == "Patient"


def test_parse_bundle_files(spark: SparkSession) -> None:
    files = [
        ("file:/b/transaction.json", PRETTY_BUNDLE),
        ("file:/b/transaction.json.gz", gzip.compress(PRETTY_BUNDLE)),
        ("file:/b/condition.json", b'{"resourceType":"Condition","id":"c1","onsetDateTime":"2001-02-03"}'),
        ("file:/b/broken.json", b'{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"'),
        (
            "file:/b/bad-bytes.json",
            b'{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"m\xfc"}},'
            b'{"resource":{"resourceType":"Patient","id":"ok","birthDate":"1980-13-40"}}]}',
        ),
    ]
    content = spark.createDataFrame([(p, bytearray(c)) for p, c in files], "_source_file string, _content binary")
    outputs = FORMAT_BUNDLE.parse(content, [])
    columns = [
        "_source_file",
        "_record_position",
        "resource_type",
        "resource_id",
        "full_url",
        "patient_id",
        "_quarantine_reason",
    ]
    actual = {entity: frame.select(*columns).collect() for entity, frame in outputs.items()}

    def row(
        path: str,
        position: int,
        rtype: str | None,
        rid: str | None,
        url: str | None,
        pid: str | None,
        reason: str | None,
    ) -> Row:
        return Row(
            _source_file=path,
            _record_position=position,
            resource_type=rtype,
            resource_id=rid,
            full_url=url,
            patient_id=pid,
            _quarantine_reason=reason,
        )

    patients, observations, others = [], [], []
    for path in ("file:/b/transaction.json", "file:/b/transaction.json.gz"):
        patients.append(row(path, 1, "Patient", "11111111-2222", "urn:uuid:11111111-2222", None, None))
        others.append(row(path, 2, None, None, None, None, "missing_field:resource"))
        observations.append(row(path, 3, "Observation", "obs-1", "urn:uuid:obs-1", "11111111-2222", None))
        others.append(row(path, 4, "Bundle", None, None, None, None))
    # quarantined rows keep what could be read (the JSON reader decodes the bad byte as U+FFFD)
    patients.append(row("file:/b/bad-bytes.json", 1, "Patient", "m\ufffd", None, None, "invalid_encoding"))
    patients.append(row("file:/b/bad-bytes.json", 2, "Patient", "ok", None, None, "invalid_date:birthDate"))
    others.append(row("file:/b/broken.json", 0, None, None, None, None, "bundle_invalid"))
    conditions = [row("file:/b/condition.json", 1, "Condition", "c1", None, None, "missing_identifier")]

    assertDataFrameEqual(actual["fhir_patient"], patients, ignoreColumnOrder=False)
    assertDataFrameEqual(actual["fhir_observation"], observations)
    assertDataFrameEqual(actual["fhir_condition"], conditions)
    assertDataFrameEqual(actual["fhir_other"], others)
    for entity in ("fhir_encounter", "fhir_medicationrequest", "fhir_procedure"):
        assert actual[entity] == []

    # _raw is the entry's own text; typed values come from it (1970 -> 1970-01-01)
    raws = (
        outputs["fhir_patient"]
        .where("_source_file like '%transaction%' and _record_position = 1")
        .select("_raw", "birth_date", "extensions")
        .collect()
    )
    assert [r._raw for r in raws] == [PATIENT_ENTRY.decode()] * 2
    assert {str(r.birth_date) for r in raws} == {"1970-01-01"}
    assert {json.dumps(json.loads(r.extensions["http://x"])) for r in raws} == {
        '{"url": "http://x", "valueDecimal": 1.5}'
    }
