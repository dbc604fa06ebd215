"""Every code the synthetic generator writes maps to a standard concept of the expected domain (defect codes stay
unmapped), and the shared Synthea sample's event codes are covered."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medspark.silver.vocab import load_vocabulary, map_codes
from medspark.synthetic import codes as C
from medspark.synthetic import vitals

# Codes whose OMOP standard concept lies in another domain than the kind of the table they come from.
DOMAIN_EXCEPTIONS = {
    ("SNOMED", "162864005"): "Observation",  # obesity BMI 30+ finding
    ("ICD10CM", "E66.9"): "Observation",
    ("SNOMED", "171207006"): "Measurement",  # depression screening
    ("SNOMED", "127783003"): "Measurement",  # spirometry
    ("SNOMED", "117010004"): "Measurement",  # urine culture
    ("SNOMED", "117015009"): "Measurement",  # throat culture
    ("CPT4", "87086"): "Measurement",
    ("CPT4", "87081"): "Measurement",
    ("CPT4", "80048"): "Measurement",
    ("CPT4", "83036"): "Measurement",
    ("CPT4", "82465"): "Measurement",
    ("ICD10CM", "Z00.00"): "Procedure",  # mapped to 'General examination of patient'
    ("ICD10CM", "Z00.129"): "Procedure",
    ("SNOMED", "162673000"): "Procedure",
    ("SNOMED", "410620009"): "Procedure",
}


def _generator_codes() -> list[tuple[str, str, str]]:
    """(vocabulary, code, domain by kind) of every code written by medspark/synthetic."""
    rows: list[tuple[str, str, str]] = []
    for c in C.CONDITIONS:
        rows += [("SNOMED", c.snomed, "Condition"), ("ICD10CM", c.icd10, "Condition")]
    rows += [("ICD10CM", C.ICD_ROUTINE_ADULT, "?"), ("ICD10CM", C.ICD_ROUTINE_CHILD, "?")]
    rows += [("RxNorm", m.rxnorm, "Drug") for m in C.MEDICATIONS]
    for p in C.PROCEDURES:
        rows += [("SNOMED", p.snomed, "Procedure"), ("CPT4", p.cpt, "Procedure"),
                 ("Revenue Code", p.revenue, "Revenue Code")]
    rows += [("LOINC", o.loinc, "Measurement") for o in C.OBSERVATIONS]
    for loinc, _, cpt, _ in C.LAB_PANELS.values():
        rows += [("LOINC", loinc, "Measurement"), ("CPT4", cpt, "Procedure")]
    rows += [("CPT4", C.VENIPUNCTURE[0], "Procedure")] + [("CPT4", code, "Procedure") for code, _ in C.EM_CODES]
    rows += [("SNOMED", e.snomed, "Observation") for e in C.ENCOUNTER_TYPES]
    rows += [("Revenue Code", code, "Revenue Code")
             for code in (C.ROOM_AND_BOARD[0], C.PHARMACY[0], C.ED_FACILITY[0], C.LAB_REVENUE)]
    rows += [("MedsparkVitals", metric, "Measurement") for metric in vitals.METRICS]
    return [(v, code, DOMAIN_EXCEPTIONS.get((v, code), domain)) for v, code, domain in dict.fromkeys(rows)]


def test_every_generator_code_maps(spark: SparkSession) -> None:
    wanted = _generator_codes()
    events = spark.createDataFrame([*wanted, ("SNOMED", C.UNKNOWN_SNOMED, "-"), ("ICD10CM", C.UNKNOWN_ICD10, "-")],
                                   "vocabulary_id string, code string, expected_domain string")
    mapped = map_codes(events, load_vocabulary(spark), prefix="c").collect()  # ~130 literal rows
    assert len(mapped) == len(wanted) + 2
    got = {(r["vocabulary_id"], r["code"]): (r["c_concept_id"], r["c_domain_id"], r["expected_domain"])
           for r in mapped}
    wrong = {k: v for k, v in got.items() if v[2] != "-" and (v[0] == 0 or v[1] != v[2])}
    assert wrong == {}
    assert got[("SNOMED", C.UNKNOWN_SNOMED)][:2] == (0, None)
    assert got[("ICD10CM", C.UNKNOWN_ICD10)][:2] == (0, None)


@pytest.mark.shared_data
def test_synthea_sample_coverage(spark: SparkSession, shared_data: Path) -> None:
    """Share of the ma27 sample's condition/medication/procedure/observation rows with a standard concept."""
    rows: list[tuple[str, str, str]] = []
    for table, vocabulary_id in (("conditions", "SNOMED"), ("medications", "RxNorm"), ("procedures", "SNOMED"),
                                 ("observations", "LOINC")):
        with open(shared_data / "synthea-csv-ma27" / f"{table}.csv", newline="", encoding="utf-8") as handle:
            rows += [(table, vocabulary_id, r["CODE"]) for r in csv.DictReader(handle)]
    events = spark.createDataFrame(rows, "source string, vocabulary_id string, code string")
    mapped = map_codes(events, load_vocabulary(spark), prefix="c")
    counts = {(r["source"], r["ok"]): r["n"] for r in mapped.groupBy(
        "source", (mapped["c_concept_id"] != 0).alias("ok")).count().withColumnRenamed("count", "n").collect()}
    total = len(rows)
    covered = sum(n for (_, ok), n in counts.items() if ok)
    print(f"ma27 coverage: {covered}/{total} rows")  # counts only
    assert sum(counts.values()) == total  # no row lost or duplicated
    assert covered / total >= 0.99
    for table in ("conditions", "medications", "procedures", "observations"):
        assert counts.get((table, True), 0) / sum(n for (t, _), n in counts.items() if t == table) >= 0.97
