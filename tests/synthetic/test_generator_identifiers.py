"""A patient is recognisable across sources only through the identifiers each pair of sources shares."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from synthetic_readers import (
    claim_segment,
    csv_rows,
    hl7_messages,
    hl7_segment,
    json_objects,
    truth,
    x12_parse,
)

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.1"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
VISIT_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.2"


class Sources:
    """The identifiers each source exposes, read from the files."""

    def __init__(self, out: Path) -> None:
        self.csv_patients = [r for p in sorted(out.glob("synthea-csv/patients-*.csv")) for r in csv_rows(p)[1]]
        self.csv_encounters = [r for p in sorted(out.glob("synthea-csv/encounters-*.csv")) for r in csv_rows(p)[1]]
        self.ndjson_patients = [o for p in sorted(out.glob("fhir-ndjson/Patient.*.ndjson")) for o in json_objects(p)]
        self.ndjson_encounters = [o for p in sorted(out.glob("fhir-ndjson/Encounter.*.ndjson"))
                                  for o in json_objects(p)]
        self.bundle_resources = [e["resource"] for p in sorted(out.glob("fhir-bundle/*.json"))
                                 for e in json.loads(p.read_bytes())["entry"]]
        self.adt = [m for p in sorted(out.glob("hl7v2/adt-*.hl7")) for m in hl7_messages(p)]
        self.oru = [m for p in sorted(out.glob("hl7v2/oru-*.mllp")) for m in hl7_messages(p)]
        self.claims = [c for p in sorted(out.glob("x12-837/*.x12")) for c in x12_parse(p).claims]
        self.vitals = [o for p in sorted(out.glob("vitals/*.jsonl")) for o in json_objects(p)]
        self.truth = truth(out)

    def fhir_patients(self) -> list[dict]:
        return self.ndjson_patients + [r for r in self.bundle_resources if r["resourceType"] == "Patient"]

    def fhir_encounters(self) -> list[dict]:
        return self.ndjson_encounters + [r for r in self.bundle_resources if r["resourceType"] == "Encounter"]


def _identifier(resource: dict, system: str) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == system)


@pytest.fixture(scope="module")
def sources(clean: Path) -> Sources:
    return Sources(clean)


def test_csv_and_fhir_share_the_synthea_uuid(sources: Sources) -> None:
    csv_ids = {r["Id"] for r in sources.csv_patients}
    ndjson_ids = {r["id"] for r in sources.ndjson_patients}
    bundle_ids = {r["id"] for r in sources.fhir_patients()} - ndjson_ids
    assert len(csv_ids) == len(sources.csv_patients) == 300
    assert ndjson_ids | bundle_ids == csv_ids
    assert bundle_ids and len(bundle_ids) < 0.1 * len(csv_ids)  # a disjoint minority as Bundles
    by_uuid = {r["Id"]: r for r in sources.csv_patients}
    for patient in sources.fhir_patients():
        assert _identifier(patient, SSN_SYSTEM) == by_uuid[patient["id"]]["SSN"]
        assert patient["birthDate"] == by_uuid[patient["id"]]["BIRTHDATE"]


def test_hl7_patients_are_found_in_fhir_by_mrn_with_the_same_ssn(sources: Sources) -> None:
    ssn_by_mrn = {_identifier(p, MRN_SYSTEM): _identifier(p, SSN_SYSTEM) for p in sources.fhir_patients()}
    assert len(ssn_by_mrn) == 300
    seen = set()
    for message in sources.adt + sources.oru:
        pid = hl7_segment(message, "PID")
        mrn_rep, ssn_rep = pid[3].split("~")
        mrn = mrn_rep.split("^")[0]
        assert ssn_by_mrn[mrn] == ssn_rep.split("^")[0] == pid[19]
        seen.add(mrn)
    assert len(seen) > 100


def test_vitals_mrns_belong_to_patients_with_inpatient_stays(sources: Sources) -> None:
    inpatient_mrns = {row["mrn"] for row in sources.truth if int(row["n_inpatient_stays"]) > 0}
    vitals_mrns = {o["patient_mrn"] for o in sources.vitals}
    assert vitals_mrns == inpatient_mrns


def test_member_ids_link_hl7_insurance_to_x12_subscribers_and_ssn(sources: Sources) -> None:
    ssn_by_member = {r["member_id"]: r["ssn"] for r in sources.truth if r["member_id"]}
    x12_members = set()
    for claim in sources.claims:
        member = claim_segment(claim, "NM1", "IL")[9]
        ssn = claim_segment(claim, "REF", "SY")[2]
        assert ssn_by_member[member].replace("-", "") == ssn
        x12_members.add(member)
    in1_members = set()
    for message in sources.adt:
        in1 = hl7_segment(message, "IN1") if b"\rIN1|" in message else None
        if in1:
            in1_members.add(in1[36])
    assert in1_members and in1_members <= x12_members
    uninsured = {r["member_id"] for r in sources.truth if r["payer"] == "NO_INSURANCE"}
    assert uninsured == {""}


def test_visit_numbers_link_fhir_encounters_hl7_visits_and_claims(sources: Sources) -> None:
    visit_by_id = {e["id"]: _identifier(e, VISIT_SYSTEM) for e in sources.fhir_encounters()}
    assert len(set(visit_by_id.values())) == len(visit_by_id)
    visits = set(visit_by_id.values())
    for message in sources.adt + sources.oru:
        assert hl7_segment(message, "PV1")[19].split("^")[0] in visits
    cost_by_visit = {visit_by_id[e["Id"]]: Decimal(e["TOTAL_CLAIM_COST"]) for e in sources.csv_encounters}
    for claim in sources.claims:
        clm = claim_segment(claim, "CLM")
        assert cost_by_visit[clm[1]] == Decimal(clm[2])  # CSV TOTAL_CLAIM_COST == X12 CLM02


def test_each_identifier_is_unique_per_patient(sources: Sources) -> None:
    for column in ("patient_uuid", "mrn", "ssn"):
        values = [row[column] for row in sources.truth]
        assert len(set(values)) == len(values)
    members = [row["member_id"] for row in sources.truth if row["member_id"]]
    assert len(set(members)) == len(members)
