"""Every manifest row points at a record damaged exactly as claimed, and every other record is clean."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from synthetic_readers import DEFECT_RATE, csv_lines, defects, hl7_messages, jsonl_lines, records_manifests, x12_parse

EXPECTED_REASON = {
    ("synthea-csv", "invalid_date"): "invalid_date:BIRTHDATE",
    ("fhir-ndjson", "invalid_date"): "invalid_date:birthDate",
    ("fhir-bundle", "invalid_date"): "invalid_date:birthDate",
    ("hl7v2", "invalid_date"): "invalid_date:PID-7",
    ("hl7v2", "hl7_truncated"): "hl7_truncated:PID",
}


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        return None


def _valid_date(text: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def _records(out: Path, rel: str) -> list[Any]:
    """The records of a file, in position order (CSV: physical lines, header included)."""
    path = out / rel
    if rel.startswith("synthea-csv/"):
        return csv_lines(path)
    if rel.startswith(("fhir-ndjson/", "vitals/")):
        return jsonl_lines(path)
    if rel.startswith("fhir-bundle/"):
        return [json.dumps(e, ensure_ascii=False).encode("utf-8", "surrogateescape")
                for e in json.loads(path.read_bytes().decode("utf-8", "surrogateescape"))["entry"]]
    if rel.startswith("hl7v2/"):
        return hl7_messages(path)
    return ["~".join("*".join(seg) for seg in claim).encode() for claim in x12_parse(path).claims]


def _damage(fmt: str, rel: str, record: bytes) -> set[str]:
    """Which defect kinds a record shows, judged independently of the generator."""
    found: set[str] = set()
    if not _decodes(record):
        return {"invalid_encoding"}
    text = record.decode("utf-8")
    if fmt == "synthea-csv":
        fields = text.split(",")
        if rel.startswith("synthea-csv/patients-"):
            if fields[0] == "":
                found.add("missing_identifier")
            if not _valid_date(fields[1], "%Y-%m-%d"):
                found.add("invalid_date")
        if rel.startswith("synthea-csv/conditions-") and fields[4] == "999999999":
            found.add("unknown_code")
        return found
    if fmt in ("fhir-ndjson", "fhir-bundle", "vitals-jsonl"):
        obj = _json(record)
        if obj is None:
            return {"invalid_json"}
        resource = obj.get("resource", obj)
        kind = resource.get("resourceType")
        if kind == "Patient":
            if "id" not in resource and "identifier" not in resource:
                found.add("missing_identifier")
            if not _valid_date(resource["birthDate"], "%Y-%m-%d"):
                found.add("invalid_date")
        elif (kind is not None and "subject" not in resource) or (kind is None and "patient_mrn" not in resource):
            found.add("missing_identifier")
        if kind == "Condition" and resource["code"]["coding"][0]["code"] == "999999999":
            found.add("unknown_code")
        return found
    if fmt == "hl7v2":
        segments = [s.split("|") for s in text.split("\r")]
        pid = next(s for s in segments if s[0] == "PID")
        if len(pid) < 5:
            return {"hl7_truncated"}
        if pid[3] == "":
            found.add("missing_identifier")
        if not _valid_date(pid[7], "%Y%m%d"):
            found.add("invalid_date")
        dg1 = [s for s in segments if s[0] == "DG1"]
        if dg1 and dg1[0][3].startswith("Z99.99X^"):
            found.add("unknown_code")
        return found
    segments = [s.split("*") for s in text.split("~")]
    nm1 = next(s for s in segments if s[:2] == ["NM1", "IL"])
    clm = next(s for s in segments if s[0] == "CLM")
    hi = next(s for s in segments if s[0] == "HI")
    if len(nm1) < 10 or not nm1[9]:
        found.add("missing_identifier")
    if clm[2] == "":
        found.add("x12_bad_claim")
    if hi[1] == "ABK:Z9999X":
        found.add("unknown_code")
    return found


@pytest.fixture(scope="module")
def manifest(defective: Path) -> list[dict[str, Any]]:
    return defects(defective)


def test_manifest_rows_are_complete_and_reasons_match_the_contract(manifest: list[dict[str, Any]]) -> None:
    assert len({row["defect_id"] for row in manifest}) == len(manifest)
    kinds = Counter((row["format"], row["kind"]) for row in manifest)
    for fmt, kind in [("synthea-csv", "invalid_date"), ("synthea-csv", "duplicate_record"),
                      ("fhir-ndjson", "invalid_json"), ("fhir-ndjson", "missing_identifier"),
                      ("hl7v2", "hl7_truncated"), ("x12-837", "x12_bad_claim"), ("vitals-jsonl", "invalid_json")]:
        assert kinds[(fmt, kind)] > 0, (fmt, kind)
    for row in manifest:
        reason = EXPECTED_REASON.get((row["format"], row["kind"]), row["kind"])
        assert row["expected_reason"] == reason
        assert row["layer"] == ("silver" if row["kind"] == "unknown_code" else "bronze")
        assert row["entity"].split("_")[0] in {"synthea", "fhir", "hl7v2", "x12", "device"}
        if row["format"] == "fhir-ndjson":
            resource_type = row["file"].split("/")[1].split(".")[0]
            assert row["entity"] == f"fhir_{resource_type.lower()}"


def test_each_manifest_position_holds_the_claimed_damage(defective: Path, manifest: list[dict[str, Any]]) -> None:
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in manifest:
        by_file[row["file"]].append(row)
    for rel, rows in by_file.items():
        records = _records(defective, rel)
        for row in rows:
            record = records[row["position"] - 1]
            if row["kind"] == "duplicate_record":
                assert record in records[: row["position"] - 1], row
            else:
                assert row["kind"] in _damage(row["format"], rel, record), row


def test_records_outside_the_manifest_are_clean(defective: Path, manifest: list[dict[str, Any]]) -> None:
    listed: dict[str, dict[int, str]] = defaultdict(dict)
    for row in manifest:
        listed[row["file"]][row["position"]] = row["kind"]
    fmt_of = {"synthea-csv": "synthea-csv", "fhir-ndjson": "fhir-ndjson", "fhir-bundle": "fhir-bundle",
              "hl7v2": "hl7v2", "x12-837": "x12-837", "vitals": "vitals-jsonl"}
    for records_manifest in records_manifests(defective):
        for rel in records_manifest["by_file"]:
            fmt = fmt_of[rel.split("/")[0]]
            records = _records(defective, rel)
            first = 1 if fmt == "synthea-csv" else 0  # skip the CSV header
            seen: set[Any] = set()
            for position, record in enumerate(records[first:], start=first + 1):
                kind = listed[rel].get(position)
                if record in seen:
                    assert kind == "duplicate_record", (rel, position)
                elif kind is None:
                    assert _damage(fmt, rel, record) == set(), (rel, position)
                seen.add(record)


def test_broken_json_keeps_its_resource_type_prefix(defective: Path, manifest: list[dict[str, Any]]) -> None:
    """Bronze routes a broken line by its leading ``{"resourceType":"<T>"``: the prefix must survive."""
    for row in manifest:
        if row["format"] == "fhir-ndjson" and row["kind"] == "invalid_json":
            line = _records(defective, row["file"])[row["position"] - 1]
            resource_type = row["file"].split("/")[1].split(".")[0]
            assert line.startswith(b'{"resourceType":"' + resource_type.encode() + b'"')


def test_defect_rate_is_close_to_the_requested_rate(defective: Path, manifest: list[dict[str, Any]]) -> None:
    total = sum(sum(m["by_file"].values()) for m in records_manifests(defective))
    assert 0.6 * DEFECT_RATE < len(manifest) / total < 1.4 * DEFECT_RATE


def test_undamaged_records_are_the_clean_population(clean: Path, defective: Path,
                                                    manifest: list[dict[str, Any]]) -> None:
    """Damage does not change the population: every unlisted record also appears in the clean run."""
    listed: dict[str, set[int]] = defaultdict(set)
    for row in manifest:
        listed[row["file"]].add(row["position"])
    for rel in ("synthea-csv/patients-00001.csv", "fhir-ndjson/Observation.00002.ndjson", "hl7v2/adt-00000.hl7",
                "vitals/vitals-00001.jsonl"):
        clean_records = set(_records(clean, rel))
        for position, record in enumerate(_records(defective, rel), start=1):
            if position not in listed[rel]:
                assert record in clean_records, (rel, position)
