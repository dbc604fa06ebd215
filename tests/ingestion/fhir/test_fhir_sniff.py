"""FHIR sniffing: NDJSON and JSON documents are told apart by content (names only break ties), nothing else matches."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from medspark.ingestion.fhir.parse import FORMAT_BUNDLE, FORMAT_NDJSON
from medspark.ingestion.fhir.sniff import HEAD_BYTES

PATIENT = '{"resourceType":"Patient","id":"p1","gender":"female"}'
CONDITION = '{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}'
BUNDLE_PRETTY = json.dumps(
    {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": json.loads(PATIENT)}]}, indent=2
)
BUNDLE_ONE_LINE = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []})


def _kinds(head: bytes, name: str) -> tuple[bool, bool]:
    return FORMAT_NDJSON.sniff(head, name), FORMAT_BUNDLE.sniff(head, name)


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        ((PATIENT + "\n" + PATIENT + "\n").encode(), "Patient.000.ndjson", (True, False)),
        ((PATIENT + "\n" + CONDITION + "\n").encode(), "export.txt", (True, False)),
        # a damaged first line does not make a bulk-export file a "document"
        ((PATIENT[:-5] + "\n" + CONDITION + "\n").encode(), "Condition.ndjson", (True, False)),
        (("\ufeff" + PATIENT + "\r\n" + PATIENT + "\r\n").encode(), "p.ndjson", (True, False)),
        (BUNDLE_PRETTY.encode(), "bundle.json", (False, True)),
        (("\ufeff\n  " + BUNDLE_PRETTY).encode(), "whatever.dat", (False, True)),
        (json.dumps(json.loads(PATIENT), indent=1).encode(), "Patient-example.json", (False, True)),
        # one-line documents: a Bundle or a .json name is a document, a .ndjson name or a lone resource NDJSON
        ((BUNDLE_ONE_LINE + "\n").encode(), "search.json", (False, True)),
        ((BUNDLE_ONE_LINE + "\n").encode(), "search", (False, True)),
        ((BUNDLE_ONE_LINE + "\n").encode(), "bundles.ndjson", (True, False)),
        (PATIENT.encode(), "Patient-1.json", (False, True)),
        ((PATIENT + "\n").encode(), "Patient.000.ndjson", (True, False)),
        # not FHIR
        (b'{"device_id":"m1","patient_mrn":"X","metric":"hr","value":70}\n', "vitals-00000.jsonl", (False, False)),
        (b'{"exportId":"e","eventId":"kickoff"}\n{"exportId":"e","eventId":"done"}\n', "log.ndjson", (False, False)),
        (b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r", "adt.hl7", (False, False)),
        (b"Id,BIRTHDATE\n1,2000-01-01\n", "patients.csv", (False, False)),
        (b'["resourceType"]', "x.json", (False, False)),
        (b"", "empty.json", (False, False)),
    ],
)
def test_sniff_by_content(head: bytes, name: str, expected: tuple[bool, bool]) -> None:
    assert _kinds(head, name) == expected


def test_sniff_gzip_heads() -> None:
    """Raw gzip bytes (a caller that does not inflate the head) are inflated partially and judged by content."""
    ndjson = gzip.compress(("\n".join([PATIENT] * 50) + "\n").encode())
    bundle = gzip.compress(BUNDLE_PRETTY.encode())
    assert _kinds(ndjson[:200], "Patient.000.ndjson.gz") == (True, False)
    assert _kinds(bundle, "Abdul_Koepp.json.gz") == (False, True)
    assert _kinds(b"\x1f\x8b\x08\x00broken", "x.json.gz") == (False, False)


def test_sniff_line_longer_than_head() -> None:
    """A first line cut by the 64 KiB head: the name decides, else a Bundle start."""
    long_line = ('{"resourceType":"DocumentReference","id":"d","content":"' + "A" * HEAD_BYTES)[:HEAD_BYTES]
    assert _kinds(long_line.encode(), "DocumentReference.000.ndjson") == (True, False)
    assert _kinds(long_line.encode(), "DocumentReference.json") == (False, True)
    long_bundle = ('{"resourceType":"Bundle","entry":[' + "1," * HEAD_BYTES)[:HEAD_BYTES]
    assert _kinds(long_bundle.encode(), "data") == (False, True)


@pytest.mark.shared_data
def test_sniff_shared_samples(shared_data: Path) -> None:
    """Every shared FHIR sample is recognised as its format, by the head the ingest job reads (inflated .gz)."""
    for path in sorted((shared_data / "fhir-bulk-ndjson").glob("*.ndjson.gz")):
        with gzip.open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        assert _kinds(head, path.name) == (True, False), path.name
    assert _kinds((shared_data / "fhir-bulk-ndjson" / "log.ndjson").read_bytes(), "log.ndjson") == (False, False)
    for path in sorted((shared_data / "synthea-fhir-r4-bundles").glob("*.json.gz")):
        with gzip.open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        assert _kinds(head, path.name) == (False, True), path.name
        assert _kinds(path.read_bytes()[:HEAD_BYTES], path.name) == (False, True), path.name
    examples = sorted((shared_data / "fhir-r4-official-examples").glob("*-*.json"))
    assert len(examples) == 286
    for path in examples:
        assert _kinds(path.read_bytes()[:HEAD_BYTES], path.name) == (False, True), path.name
    package = shared_data / "fhir-r4-official-examples" / "package.json"
    assert _kinds(package.read_bytes()[:HEAD_BYTES], "package.json") == (False, False)
