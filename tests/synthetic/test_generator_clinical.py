"""The clinical structure documented in ``medspark.synthetic.population`` is visible in the written data.

Statistics are computed from the files (CSV, FHIR, truth) of a 3,000-patient population with a fixed seed; the
thresholds are far from the model's values so a tweak of a parameter does not break them.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from synthetic_readers import csv_rows, json_objects, truth

T2D, HF, CKD = "44054006", "88805009", "433144002"
METFORMIN, INSULIN, FUROSEMIDE = "860975", "106892", "313988"
HBA1C, GLUCOSE_MG, GLUCOSE_MMOL = "4548-4", "2339-0", "15074-8"


class Cohort:
    """The cohort's tables, read from files."""

    def __init__(self, out: Path) -> None:
        def table(name: str) -> list[dict[str, str]]:
            return [r for p in sorted(out.glob(f"synthea-csv/{name}-*.csv")) for r in csv_rows(p)[1]]

        self.patients = {r["Id"]: r for r in table("patients")}
        self.conditions = table("conditions")
        self.medications = table("medications")
        self.observations = table("observations")
        self.encounters = table("encounters")
        self.truth = {r["patient_uuid"]: r for r in truth(out)}
        self.admissions = truth(out, "truth-admissions")
        self.codes: dict[str, set[str]] = defaultdict(set)
        for c in self.conditions:
            self.codes[c["PATIENT"]].add(c["CODE"])

    def age(self, patient: str) -> float:
        birth = dt.date.fromisoformat(self.patients[patient]["BIRTHDATE"])
        return (dt.date(2025, 12, 31) - birth).days / 365.25


@pytest.fixture(scope="module")
def cohort_data(cohort: Path) -> Cohort:
    return Cohort(cohort)


def test_age_sex_and_race_look_like_the_us(cohort_data: Cohort) -> None:
    ages = [cohort_data.age(p) for p in cohort_data.patients]
    assert 0.10 < sum(a >= 65 for a in ages) / len(ages) < 0.25
    assert 0.15 < sum(a < 18 for a in ages) / len(ages) < 0.30
    female = sum(p["GENDER"] == "F" for p in cohort_data.patients.values()) / len(ages)
    assert 0.46 < female < 0.56
    white = sum(p["RACE"] == "white" for p in cohort_data.patients.values()) / len(ages)
    assert 0.6 < white < 0.8


def test_diabetes_is_far_more_prevalent_in_older_patients(cohort_data: Cohort) -> None:
    old = [p for p in cohort_data.patients if cohort_data.age(p) >= 60]
    young = [p for p in cohort_data.patients if cohort_data.age(p) < 40]
    prevalence_old = sum(T2D in cohort_data.codes[p] for p in old) / len(old)
    prevalence_young = sum(T2D in cohort_data.codes[p] for p in young) / len(young)
    assert prevalence_old > 0.12 and prevalence_old > 5 * prevalence_young


def test_drugs_follow_their_indications(cohort_data: Cohort) -> None:
    by_drug: dict[str, set[str]] = defaultdict(set)
    for m in cohort_data.medications:
        by_drug[m["CODE"]].add(m["PATIENT"])
    assert len(by_drug[METFORMIN]) > 50
    assert all(T2D in cohort_data.codes[p] for p in by_drug[METFORMIN] | by_drug[INSULIN])
    assert all(HF in cohort_data.codes[p] for p in by_drug[FUROSEMIDE])
    for m in cohort_data.medications:
        if m["CODE"] == METFORMIN:
            assert m["REASONCODE"] == T2D


def test_diabetics_have_higher_hba1c(cohort_data: Cohort) -> None:
    values: dict[bool, list[float]] = {True: [], False: []}
    for o in cohort_data.observations:
        if o["CODE"] == HBA1C:
            values[T2D in cohort_data.codes[o["PATIENT"]]].append(float(o["VALUE"]))
    assert statistics.mean(values[True]) > statistics.mean(values[False]) + 1.5


def test_glucose_units_depend_on_the_reporting_lab(cohort_data: Cohort, cohort: Path) -> None:
    si_patients = {p for p, row in cohort_data.truth.items() if row["lab_si_units"] == "1"}
    units = {(o["CODE"], o["UNITS"], o["PATIENT"] in si_patients) for o in cohort_data.observations
             if o["CODE"] in (GLUCOSE_MG, GLUCOSE_MMOL)}
    assert units == {(GLUCOSE_MG, "mg/dL", False), (GLUCOSE_MMOL, "mmol/L", True)}
    fhir_units = {o["valueQuantity"]["unit"] for o in json_objects(cohort / "fhir-ndjson/Observation.00000.ndjson")
                  if o["code"]["coding"][0]["code"] == GLUCOSE_MMOL}
    assert fhir_units == {"mmol/L"}


def test_truth_flags_match_recorded_chronic_conditions(cohort_data: Cohort) -> None:
    flags = {"type2_diabetes": T2D, "heart_failure": HF, "ckd": CKD, "hypertension": "59621000"}
    for patient, row in cohort_data.truth.items():
        for column, code in flags.items():
            assert (row[column] == "1") == (code in cohort_data.codes[patient])


def test_utilisation_groups_differ_in_visits_and_cost(cohort_data: Cohort) -> None:
    visits: dict[str, list[int]] = defaultdict(list)
    cost: dict[str, float] = defaultdict(float)
    members: dict[str, int] = defaultdict(int)
    group_of = {p: row["utilisation_group"] for p, row in cohort_data.truth.items()}
    for row in cohort_data.truth.values():
        visits[row["utilisation_group"]].append(int(row["n_encounters"]))
        members[row["utilisation_group"]] += 1
    for e in cohort_data.encounters:
        cost[group_of[e["PATIENT"]]] += float(e["TOTAL_CLAIM_COST"])
    mean = {g: statistics.mean(v) for g, v in visits.items()}
    assert mean["healthy"] < mean["chronic"] < mean["complex"]
    per_head = {g: cost[g] / members[g] for g in members}
    assert per_head["healthy"] < per_head["chronic"] < per_head["complex"]
    assert set(mean) == {"healthy", "chronic", "complex"}
    overall = statistics.mean(int(r["n_encounters"]) for r in cohort_data.truth.values())
    assert 4 <= overall <= 9


def test_readmissions_are_more_frequent_with_heart_failure(cohort_data: Cohort) -> None:
    stays = cohort_data.admissions
    hf = [int(s["readmitted_30d"]) for s in stays if s["heart_failure"] == "1"]
    other = [int(s["readmitted_30d"]) for s in stays if s["heart_failure"] == "0"]
    assert len(hf) > 30 and len(other) > 200
    assert statistics.mean(hf) > 1.5 * statistics.mean(other)
    assert 0.05 < statistics.mean(int(s["readmitted_30d"]) for s in stays) < 0.30
    high = [int(s["readmitted_30d"]) for s in stays if float(s["readmit_prob"]) >= 0.25]
    low = [int(s["readmitted_30d"]) for s in stays if float(s["readmit_prob"]) < 0.08]
    assert statistics.mean(high) > 2 * statistics.mean(low)


def test_readmission_truth_agrees_with_the_encounters_written(cohort_data: Cohort) -> None:
    """Recompute 30-day readmissions from the CSV inpatient encounters and compare with the truth file."""
    stays: dict[str, list[tuple[dt.datetime, dt.datetime, str]]] = defaultdict(list)
    for e in cohort_data.encounters:
        if e["ENCOUNTERCLASS"] == "inpatient":
            start = dt.datetime.fromisoformat(e["START"].replace("Z", "+00:00"))
            stop = dt.datetime.fromisoformat(e["STOP"].replace("Z", "+00:00"))
            stays[e["PATIENT"]].append((start, stop, e["Id"]))
    recomputed = {}
    for items in stays.values():
        items.sort()
        for (_, stop, stay_id), nxt in zip(items, [*items[1:], None], strict=True):
            recomputed[stay_id] = nxt is not None and (nxt[0] - stop) <= dt.timedelta(days=30)
    truth_flags = {s["stay_id"]: s["readmitted_30d"] == "1" for s in cohort_data.admissions}
    assert recomputed == truth_flags
    los = [float(s["los_days"]) for s in cohort_data.admissions]
    assert 2 < statistics.median(los) < 8 and min(los) > 0.5
