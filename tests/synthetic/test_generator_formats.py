"""Every generated file parses with an independent reader and has the structure its format prescribes."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from synthetic_readers import (
    claim_segment,
    csv_lines,
    csv_rows,
    hl7_messages,
    hl7_segment,
    hl7_segments,
    json_objects,
    jsonl_lines,
    records_manifests,
    x12_parse,
)

# Synthea v3.0.0 headers, written out literally (the contract bronze relies on).
SYNTHEA_HEADERS = {
    "patients": "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,"
    "GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE",
    "encounters": "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,"
    "BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION",
    "conditions": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
    "medications": "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,"
    "TOTALCOST,REASONCODE,REASONDESCRIPTION",
    "procedures": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
    "observations": "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
}
FHIR_TYPES = ("Patient", "Encounter", "Condition", "MedicationRequest", "Procedure", "Observation")
OFFSET_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})")
HL7_TS = re.compile(r"\d{14}[+-]\d{4}")


def _files(out: Path, pattern: str) -> list[Path]:
    files = sorted(out.glob(pattern))
    assert files, pattern
    return files


@pytest.mark.parametrize("table", sorted(SYNTHEA_HEADERS))
def test_synthea_csv_has_v3_columns_and_regular_rows(clean: Path, table: str) -> None:
    for path in _files(clean, f"synthea-csv/{table}-*.csv"):
        lines = csv_lines(path)
        assert lines[0].decode() == SYNTHEA_HEADERS[table]
        header, rows = csv_rows(path)
        assert all(None not in row and len(row) == len(header) for row in rows)
        assert not any(b'"' in line for line in lines)  # Synthea writes unquoted CSV


@pytest.mark.shared_data
def test_synthea_headers_match_the_real_synthea_export(shared_data: Path) -> None:
    for table, header in SYNTHEA_HEADERS.items():
        real = (shared_data / "synthea-csv-ma27" / f"{table}.csv").read_text().splitlines()[0]
        assert header == real


def test_synthea_csv_values_are_typed_like_synthea(clean: Path) -> None:
    _, encounters = csv_rows(clean / "synthea-csv/encounters-00000.csv")
    for row in encounters:
        start = dt.datetime.fromisoformat(row["START"].replace("Z", "+00:00"))
        stop = dt.datetime.fromisoformat(row["STOP"].replace("Z", "+00:00"))
        assert row["START"].endswith("Z") and start <= stop
        assert dt.datetime(2015, 1, 1, tzinfo=dt.UTC) <= start < dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
        assert row["ENCOUNTERCLASS"] in {"wellness", "ambulatory", "outpatient", "emergency", "inpatient"}
        assert Decimal(row["PAYER_COVERAGE"]) <= Decimal(row["TOTAL_CLAIM_COST"])
    _, patients = csv_rows(clean / "synthea-csv/patients-00000.csv")
    assert {p["GENDER"] for p in patients} == {"F", "M"}
    assert all(re.fullmatch(r"9\d{2}-\d{2}-\d{4}", p["SSN"]) for p in patients)
    _, observations = csv_rows(clean / "synthea-csv/observations-00000.csv")
    assert all(float(o["VALUE"]) > 0 and o["TYPE"] == "numeric" for o in observations)


def test_fhir_ndjson_lines_are_resources_of_their_file_type(clean: Path) -> None:
    for resource in FHIR_TYPES:
        for path in _files(clean, f"fhir-ndjson/{resource}.*.ndjson"):
            objects = json_objects(path)
            assert {o["resourceType"] for o in objects} == {resource}
            assert len({o["id"] for o in objects}) == len(objects)
            for o in objects:
                if resource != "Patient":
                    assert o["subject"]["reference"].startswith("Patient/")
                if resource not in ("Patient", "Encounter"):
                    assert o["encounter"]["reference"].startswith("Encounter/")


def test_fhir_timestamps_carry_eastern_offsets(clean: Path) -> None:
    offsets: Counter[str] = Counter()
    for o in json_objects(clean / "fhir-ndjson/Encounter.00000.ndjson"):
        for ts in (o["period"]["start"], o["period"]["end"]):
            assert OFFSET_TS.fullmatch(ts)
            offsets[ts[-6:]] += 1
    assert set(offsets) == {"-04:00", "-05:00"}


def test_fhir_bundles_are_transactions_with_urn_uuid_references(clean: Path) -> None:
    bundles = _files(clean, "fhir-bundle/bundle-*.json")
    for path in bundles:
        bundle = json.loads(path.read_bytes())
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert len(patients) == 1
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
            assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
            for field in ("subject", "encounter"):
                if field in resource:
                    assert resource[field]["reference"] in full_urls


def test_hl7_adt_messages_are_lines_of_cr_separated_segments(clean: Path) -> None:
    triggers: Counter[str] = Counter()
    for path in _files(clean, "hl7v2/adt-*.hl7"):
        data = path.read_bytes()
        assert data.startswith(b"MSH|^~\\&|") and b"\r\n" not in data
        for message in hl7_messages(path):
            segments = hl7_segments(message)
            msh = segments[0]
            assert msh[0] == "MSH" and msh[10] == "P" and msh[11] == "2.5"  # MSH-11, MSH-12
            trigger = msh[8].split("^")[1]
            triggers[trigger] += 1
            assert [s[0] for s in segments[1:4]] == ["EVN", "PID", "PV1"]
            pid = hl7_segment(message, "PID")
            mrn, ssn = pid[3].split("~")
            assert re.fullmatch(r"M\d{8}\^\^\^MEDSPARK\^MR", mrn)
            assert re.fullmatch(r"9\d{2}-\d{2}-\d{4}\^\^\^SSA\^SS", ssn)
            assert ssn.split("^")[0] == pid[19]
            assert pid[5].count("^") >= 1 and re.fullmatch(r"\d{8}", pid[7]) and pid[8] in {"M", "F"}
            pv1 = hl7_segment(message, "PV1")
            assert pv1[2] == "I" and pv1[19].endswith("^^^MEDSPARK^VN") and HL7_TS.fullmatch(pv1[44])
            if trigger == "A03":
                admit, discharge = (dt.datetime.strptime(t, "%Y%m%d%H%M%S%z") for t in (pv1[44], pv1[45]))
                assert admit < discharge
            if trigger in ("A01", "A03"):
                dg1 = hl7_segment(message, "DG1")
                assert dg1[3].endswith("^I10")
    assert set(triggers) == {"A01", "A03", "A08"}
    assert triggers["A01"] == triggers["A03"]


def test_hl7_oru_is_mllp_framed_with_loinc_results(clean: Path) -> None:
    units: Counter[str] = Counter()
    for path in _files(clean, "hl7v2/oru-*.mllp"):
        for message in hl7_messages(path):
            segments = hl7_segments(message)
            assert segments[0][8] == "ORU^R01^ORU_R01"
            names = [s[0] for s in segments]
            assert names[:3] == ["MSH", "PID", "PV1"] and "OBR" in names and "OBX" in names
            for seg in segments:
                if seg[0] == "OBX":
                    assert seg[2] == "NM" and seg[3].endswith("^LN") and seg[11] == "F"
                    float(seg[5])
                    units[seg[6].split("^")[0]] += 1
    assert {"mg/dL", "%"} <= set(units)


def test_x12_envelopes_and_claims(clean: Path) -> None:
    for kind, version, service in (("837p", "005010X222A1", "SV1"), ("837i", "005010X223A2", "SV2")):
        for path in _files(clean, f"x12-837/{kind}-*.x12"):
            assert len(path.read_text().split("~")[0]) == 105  # fixed-length ISA
            interchange = x12_parse(path)
            assert interchange.segments[1][8] == version
            assert interchange.transactions == -(-len(interchange.claims) // 100)
            for claim in interchange.claims:
                clm = claim_segment(claim, "CLM")
                nm1 = claim_segment(claim, "NM1", "IL")
                assert clm and nm1 and nm1[8] == "MI" and nm1[9]
                dmg = claim_segment(claim, "DMG")
                assert dmg and dmg[1] == "D8" and re.fullmatch(r"\d{8}", dmg[2]) and dmg[3] in {"M", "F"}
                ref = claim_segment(claim, "REF", "SY")
                assert ref and re.fullmatch(r"9\d{8}", ref[2])
                hi = claim_segment(claim, "HI")
                assert hi and hi[1].startswith("ABK:") and all(h.startswith("ABF:") for h in hi[2:])
                lines = [seg for seg in claim if seg[0] == service]
                assert lines and len(lines) == sum(1 for seg in claim if seg[0] == "LX")
                charge = 2 if service == "SV1" else 3
                assert sum(Decimal(seg[charge]) for seg in lines) == Decimal(clm[2])
                if service == "SV1":
                    assert all(seg[1].startswith("HC:") for seg in lines)
                else:
                    assert all(re.fullmatch(r"\d{4}", seg[1]) for seg in lines)
                    assert claim_segment(claim, "DTP", "434") and claim_segment(claim, "CL1")


def test_vitals_lines_have_exactly_the_contract_fields(clean: Path) -> None:
    metrics: Counter[tuple[str, str]] = Counter()
    for path in _files(clean, "vitals/vitals-*.jsonl"):
        for o in json_objects(path):
            assert list(o) == ["device_id", "patient_mrn", "timestamp", "metric", "value", "unit"]
            assert OFFSET_TS.fullmatch(o["timestamp"]) and isinstance(o["value"], int | float)
            metrics[(o["metric"], o["unit"])] += 1
    assert {m for m, _ in metrics} == {"heart_rate", "spo2", "bp_systolic", "bp_diastolic", "resp_rate",
                                       "temperature"}
    assert {u for m, u in metrics if m == "temperature"} == {"degC", "degF"}


def test_record_manifest_counts_equal_records_in_files(clean: Path) -> None:
    for manifest in records_manifests(clean):
        for rel, expected in manifest["by_file"].items():
            path = clean / rel
            if rel.startswith("synthea-csv/"):
                actual = len(csv_lines(path)) - 1
            elif rel.startswith(("fhir-ndjson/", "vitals/")):
                actual = len(jsonl_lines(path))
            elif rel.startswith("fhir-bundle/"):
                actual = len(json.loads(path.read_bytes())["entry"])
            elif rel.startswith("hl7v2/"):
                actual = len(hl7_messages(path))
            else:
                actual = len(x12_parse(path).claims)
            assert actual == expected, rel
        by_entity = sum(n for ents in manifest["by_entity"].values() for n in ents.values())
        assert by_entity == sum(manifest["by_file"].values())
