"""Regenerate the OMOP vocabulary subset medspark ships (``medspark/resources/vocabulary/*.csv``).

The committed CSVs are the product; this script is how they were made, so a reviewer can re-run it and diff.
Concept rows come from the real OMOP vocabulary extract inside the Eunomia ``Synthea27Nj_5.4.zip`` whenever the
code is there (real Athena concept ids); every other code the generator or the shared real samples use gets a
*local* concept (id >= 2,000,000,000, the OMOP convention), and local ids already present in the committed
``concept.csv`` keep their number, so re-running only appends. See docs/vocabulary.md for the rules.

Usage (from the repository root, plain Python, no Spark)::

    python tools/build_vocabulary.py [--zip PATH] [--shared-data DIR]
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import io
import json
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medspark.synthetic import codes as C  # noqa: E402

OUT = REPO / "medspark" / "resources" / "vocabulary"
LOCAL_BASE = 2_000_000_000
VALID_START, VALID_END = "1970-01-01", "2099-12-31"
CONCEPT_COLUMNS = ("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
                   "standard_concept", "concept_code", "valid_start_date", "valid_end_date", "invalid_reason")
REL_COLUMNS = ("concept_id_1", "concept_id_2", "relationship_id", "valid_start_date", "valid_end_date",
               "invalid_reason")
STCM_COLUMNS = ("source_code", "source_concept_id", "source_vocabulary_id", "source_code_description",
                "target_concept_id", "target_vocabulary_id", "valid_start_date", "valid_end_date", "invalid_reason")

FHIR_SYSTEMS = {
    "http://snomed.info/sct": "SNOMED",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "http://hl7.org/fhir/sid/cvx": "CVX",
}
HL7_SYSTEMS = {"SCT": "SNOMED", "I10": "ICD10CM", "LN": "LOINC", "C4": "CPT4", "RXNORM": "RxNorm", "CVX": "CVX"}

# Real OMOP concepts that are not rows of the Eunomia extract but whose ids the extract itself uses (PERSON,
# VISIT_OCCURRENCE) or that OMOP CDM v5.4 conventions fix (type concepts). Rows are written from the public
# Athena definitions; docs/vocabulary.md lists them.
EXTRA_REAL: tuple[tuple[str, ...], ...] = (
    ("8507", "MALE", "Gender", "Gender", "Gender", "S", "M"),
    ("8532", "FEMALE", "Gender", "Gender", "Gender", "S", "F"),
    ("8527", "White", "Race", "Race", "Race", "S", "5"),
    ("8516", "Black or African American", "Race", "Race", "Race", "S", "3"),
    ("8515", "Asian", "Race", "Race", "Race", "S", "2"),
    ("8657", "American Indian or Alaska Native", "Race", "Race", "Race", "S", "1"),
    ("8557", "Native Hawaiian or Other Pacific Islander", "Race", "Race", "Race", "S", "4"),
    ("32817", "EHR", "Type Concept", "Type Concept", "Type Concept", "S", "EHR"),
    ("32810", "Claim", "Type Concept", "Type Concept", "Type Concept", "S", "Claim"),
    ("35207668", "Essential (primary) hypertension", "Condition", "ICD10CM", "3-char billing code", "", "I10"),
)
# I10's real id is also the only 'Maps to' source of SNOMED 59621000 in the extract that is an ICD-10-CM code.
EXTRA_REAL_MAPS = (("35207668", "320128"),)

# Unit spellings seen in the generator and the samples that are not UCUM codes -> the UCUM code they mean.
UNIT_ALIASES: dict[str, str] = {
    "bpm": "/min", "beats/min": "/min", "breaths/min": "/min", "/min": "/min",
    "mmHg": "mm[Hg]", "mm Hg": "mm[Hg]",
    "degC": "Cel", "°C": "Cel", "[degC]": "Cel",
    "degF": "[degF]", "°F": "[degF]",
    "lb": "[lb_av]", "lbs": "[lb_av]", "[lb_us]": "[lb_av]",
    "in": "[in_i]", "inch": "[in_i]",
    "IU/L": "[iU]/L", "K/uL": "10*3/uL", "M/uL": "10*6/uL", "tera.l-1": "10*12/L", "giga.l-1": "10*9/L",
    "(score)": "{score}", "percent": "%",
}
UNIT_ALIASES = {k: v for k, v in UNIT_ALIASES.items() if k != v}
# UCUM units used but absent from the extract: local concepts.
LOCAL_UNITS: dict[str, str] = {
    "[lb_av]": "pound (avoirdupois)", "U/L": "unit per liter", "kU/L": "kilounit per liter", "{#}": "number",
    "/a": "per year", "{score}": "score", "{count}": "count", "{T-score}": "T-score", "{nominal}": "nominal",
    "mL/min/{1.73_m2}": "milliliter per minute per 1.73 square meter",
}

# Device vitals parameters (medspark/synthetic/vitals.py) -> LOINC code they measure.
VITALS = {
    "heart_rate": ("Heart rate (device)", "8867-4"),
    "spo2": ("Oxygen saturation by pulse oximetry (device)", "59408-5"),
    "bp_systolic": ("Systolic blood pressure (device)", "8480-6"),
    "bp_diastolic": ("Diastolic blood pressure (device)", "8462-4"),
    "resp_rate": ("Respiratory rate (device)", "9279-1"),
    "temperature": ("Body temperature (device)", "8310-5"),
}

# Domain of generator-only local concepts (the real OMOP domain where it is known for the code's kind).
CPT_LAB = {"80048", "83036", "82465", "87086", "87081"}
CPT_NAMES = {
    "99391": "Preventive visit new patient infant", "99392": "Preventive visit age 1-4",
    "99393": "Preventive visit age 5-11", "99394": "Preventive visit age 12-17",
    "99395": "Preventive visit age 18-39", "99396": "Preventive visit age 40-64",
    "99397": "Preventive visit age 65+", "99213": "Office visit established patient low complexity",
    "99214": "Office visit established patient moderate complexity",
    "99215": "Office visit established patient high complexity",
    "99283": "Emergency department visit moderate severity", "99284": "Emergency department visit high severity",
    "99285": "Emergency department visit highest severity", "36415": "Collection of venous blood by venipuncture",
    "80048": "Basic metabolic panel", "83036": "Hemoglobin glycosylated (A1C)", "82465": "Cholesterol serum total",
    "71045": "Radiologic examination chest single view", "92002": "Ophthalmological services new patient",
}
REVENUE_NAMES = {
    "0120": "Room and board semi-private", "0250": "Pharmacy general", "0301": "Laboratory chemistry",
    "0306": "Laboratory bacteriology and microbiology", "0324": "Diagnostic radiology chest X-ray",
    "0360": "Operating room services", "0450": "Emergency room", "0460": "Pulmonary function",
    "0481": "Cardiology cardiac catheterization laboratory", "0483": "Cardiology echocardiology",
    "0510": "Clinic general", "0730": "EKG/ECG",
}

# source_to_concept_map rows: (source_vocabulary_id, source codes, target concept id, description)
STCM: tuple[tuple[str, tuple[str, ...], int, str], ...] = (
    ("MedsparkGender", ("m", "male", "1"), 8507, "male"),
    ("MedsparkGender", ("f", "female", "2"), 8532, "female"),
    ("MedsparkRace", ("white", "2106-3"), 8527, "White"),
    ("MedsparkRace", ("black", "2054-5"), 8516, "Black or African American"),
    ("MedsparkRace", ("asian", "2028-9"), 8515, "Asian"),
    ("MedsparkRace", ("native", "1002-5"), 8657, "American Indian or Alaska Native"),
    ("MedsparkRace", ("hawaiian", "2076-8"), 8557, "Native Hawaiian or Other Pacific Islander"),
    ("MedsparkEthnicity", ("hispanic", "2135-2", "h"), 38003563, "Hispanic or Latino"),
    ("MedsparkEthnicity", ("nonhispanic", "2186-5", "n"), 38003564, "Not Hispanic or Latino"),
    # Synthea ENCOUNTERCLASS (as OHDSI ETL-Synthea maps it), FHIR v3-ActCode class, HL7 PV1-2, X12 claim kind.
    ("MedsparkVisit", ("inpatient", "imp", "acute", "nonac", "i", "institutional-inpatient"), 9201, "Inpatient Visit"),
    ("MedsparkVisit", ("ambulatory", "outpatient", "wellness", "amb", "o", "professional",
                       "institutional-outpatient"), 9202, "Outpatient Visit"),
    ("MedsparkVisit", ("emergency", "urgentcare", "emer", "e"), 9203, "Emergency Room Visit"),
    # X12 837 place of service (CLM05-1 on 837P) -> visit class
    ("MedsparkVisit", ("pos:21", "pos:51", "pos:61"), 9201, "Inpatient Visit"),
    ("MedsparkVisit", ("pos:11", "pos:19", "pos:22", "pos:49", "pos:50", "pos:71", "pos:72"), 9202,
     "Outpatient Visit"),
    ("MedsparkVisit", ("pos:20", "pos:23"), 9203, "Emergency Room Visit"),
    # X12 837I facility type code (CLM05-1 = type of bill's first two digits)
    ("MedsparkVisit", ("tob:11", "tob:12", "tob:18", "tob:21", "tob:41"), 9201, "Inpatient Visit"),
    ("MedsparkVisit", ("tob:13", "tob:14", "tob:71", "tob:73", "tob:83", "tob:85"), 9202, "Outpatient Visit"),
    ("MedsparkType", ("ehr",), 32817, "EHR"),
    ("MedsparkType", ("claim",), 32810, "Claim"),
)

# Measurement-unit conversions to each concept's canonical unit: value_out = value * factor + offset.
# (measurement LOINC or "" for any, from UCUM, to UCUM, factor, offset, LOINC the concept becomes or "", note)
CONVERSIONS: tuple[tuple[str, str, str, float, float, str, str], ...] = (
    ("2339-0", "mmol/L", "mg/dL", 18.016, 0.0, "", "glucose: 1 mmol/L = 18.016 mg/dL"),
    ("2345-7", "mmol/L", "mg/dL", 18.016, 0.0, "", "glucose: 1 mmol/L = 18.016 mg/dL"),
    ("15074-8", "mmol/L", "mg/dL", 18.016, 0.0, "2339-0",
     "glucose reported in SI: harmonised to the mass concept 2339-0"),
    ("2093-3", "mmol/L", "mg/dL", 38.67, 0.0, "", "total cholesterol: 1 mmol/L = 38.67 mg/dL"),
    ("2085-9", "mmol/L", "mg/dL", 38.67, 0.0, "", "HDL cholesterol: 1 mmol/L = 38.67 mg/dL"),
    ("18262-6", "mmol/L", "mg/dL", 38.67, 0.0, "", "LDL cholesterol: 1 mmol/L = 38.67 mg/dL"),
    ("2571-8", "mmol/L", "mg/dL", 88.57, 0.0, "", "triglycerides: 1 mmol/L = 88.57 mg/dL"),
    ("2160-0", "umol/L", "mg/dL", 1 / 88.42, 0.0, "", "creatinine: 88.42 umol/L = 1 mg/dL"),
    ("718-7", "g/L", "g/dL", 0.1, 0.0, "", "hemoglobin: 10 g/L = 1 g/dL"),
    ("", "[degF]", "Cel", 5 / 9, -32 * 5 / 9, "", "temperature: C = (F - 32) * 5/9"),
    ("", "[lb_av]", "kg", 0.45359237, 0.0, "", "mass: 1 lb = 0.45359237 kg"),
    ("", "[in_i]", "cm", 2.54, 0.0, "", "length: 1 in = 2.54 cm"),
)


def _read_zip_csv(archive: zipfile.ZipFile, name: str) -> Iterator[dict[str, str]]:
    member = next(n for n in archive.namelist() if n.endswith("/" + name) or n == name)
    with archive.open(member) as raw:
        yield from csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))


def _semantic_domain(name: str, vocabulary: str) -> str:
    """Domain of a local concept from its kind (SNOMED semantic tag, vocabulary)."""
    if vocabulary == "RxNorm" or vocabulary == "CVX":
        return "Drug"
    if vocabulary == "LOINC":
        return "Measurement"
    if vocabulary in ("CPT4", "HCPCS"):
        return "Procedure"
    tag = re.search(r"\(([a-z /]+)\)\s*$", name or "")
    kind = tag.group(1) if tag else ""
    return {"disorder": "Condition", "finding": "Condition", "procedure": "Procedure",
            "regime/therapy": "Procedure", "situation": "Observation", "observable entity": "Observation",
            "physical object": "Device", "substance": "Observation"}.get(kind, "Condition")


def generator_codes() -> list[tuple[str, str, str, str]]:
    """(vocabulary, code, name, domain) of every code the synthetic generator writes (defect codes excluded)."""
    out: list[tuple[str, str, str, str]] = []
    for c in C.CONDITIONS:
        out += [("SNOMED", c.snomed, c.snomed_display, "Condition"), ("ICD10CM", c.icd10, c.icd10_display, "")]
    out += [("ICD10CM", C.ICD_ROUTINE_ADULT, "Encounter for general adult medical examination without abnormal "
             "findings", ""),
            ("ICD10CM", C.ICD_ROUTINE_CHILD, "Encounter for routine child health examination without abnormal "
             "findings", "")]
    out += [("RxNorm", m.rxnorm, m.display, "Drug") for m in C.MEDICATIONS]
    for p in C.PROCEDURES:
        out += [("SNOMED", p.snomed, p.display, "Procedure"),
                ("CPT4", p.cpt, p.display, "Measurement" if p.cpt in CPT_LAB else "Procedure"),
                ("Revenue Code", p.revenue, REVENUE_NAMES[p.revenue], "Revenue Code")]
    out += [("LOINC", o.loinc, o.display, "Measurement") for o in C.OBSERVATIONS]
    for loinc, name, cpt, _ in C.LAB_PANELS.values():
        out += [("LOINC", loinc, name, "Measurement"), ("CPT4", cpt, CPT_NAMES[cpt], "Measurement")]
    out.append(("CPT4", C.VENIPUNCTURE[0], CPT_NAMES[C.VENIPUNCTURE[0]], "Procedure"))
    out += [("CPT4", code, CPT_NAMES[code], "Procedure") for code, _ in C.EM_CODES]
    out += [("SNOMED", e.snomed, e.display, "Observation") for e in C.ENCOUNTER_TYPES]
    for code in (C.ROOM_AND_BOARD[0], C.PHARMACY[0], C.ED_FACILITY[0], C.LAB_REVENUE):
        out.append(("Revenue Code", code, REVENUE_NAMES[code], "Revenue Code"))
    out += [("LOINC", loinc, name, "Measurement") for name, loinc in VITALS.values()]
    return out


def _codings(concept: dict | None) -> list[dict]:
    return (concept or {}).get("coding", []) or []


def sample_codes(shared: Path) -> list[tuple[str, str, str, str]]:
    """(vocabulary, code, name, domain hint) used by the shared real samples (clinical event codes only)."""
    out: list[tuple[str, str, str, str]] = []
    ma27 = shared / "synthea-csv-ma27"
    for table, vocab in (("conditions", "SNOMED"), ("medications", "RxNorm"), ("procedures", "SNOMED"),
                         ("observations", "LOINC"), ("encounters", "SNOMED"), ("immunizations", "CVX")):
        with open(ma27 / f"{table}.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                out.append((vocab, row["CODE"], row["DESCRIPTION"], ""))
                if row.get("REASONCODE"):
                    out.append(("SNOMED", row["REASONCODE"], row.get("REASONDESCRIPTION", ""), ""))

    def resource_codes(res: dict) -> Iterable[dict]:
        kind = res.get("resourceType")
        if kind in ("Condition", "Procedure", "Observation"):
            yield from _codings(res.get("code"))
            for comp in res.get("component", []) or []:
                yield from _codings(comp.get("code"))
        elif kind == "MedicationRequest":
            yield from _codings(res.get("medicationCodeableConcept"))
        elif kind == "Immunization":
            yield from _codings(res.get("vaccineCode"))
        elif kind == "Encounter":
            for t in res.get("type", []) or []:
                yield from _codings(t)

    def from_resources(resources: Iterable[dict]) -> None:
        for res in resources:
            for coding in resource_codes(res):
                vocab = FHIR_SYSTEMS.get(coding.get("system", ""))
                if vocab and coding.get("code"):
                    out.append((vocab, coding["code"], coding.get("display", ""), ""))

    for path in sorted(glob.glob(str(shared / "synthea-fhir-r4-bundles" / "*.json.gz"))):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            from_resources(e["resource"] for e in json.load(handle).get("entry", []))
    for path in sorted(glob.glob(str(shared / "fhir-bulk-ndjson" / "*.ndjson.gz"))):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            from_resources(json.loads(line) for line in handle if line.strip())
    for path in sorted(glob.glob(str(shared / "hl7v2-messages" / "*.hl7"))):
        text = Path(path).read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
        for segment in text.split("\n"):
            fields = segment.split("|")
            slot = {"DG1": 3, "OBX": 3, "PR1": 3, "OBR": 4}.get(fields[0])
            if slot is None or len(fields) <= slot:
                continue
            parts = fields[slot].split("^")
            hl7_vocab = HL7_SYSTEMS.get(parts[2]) if len(parts) > 2 else None
            if hl7_vocab and parts[0]:
                out.append((hl7_vocab, parts[0], parts[1], ""))
    return out


def build(zip_path: Path, shared: Path) -> None:
    archive = zipfile.ZipFile(zip_path)
    extract = {r["concept_id"]: r for r in _read_zip_csv(archive, "CONCEPT.csv")}
    by_code = {(r["vocabulary_id"], r["concept_code"]): r for r in extract.values()}
    maps_to: dict[str, list[dict[str, str]]] = {}
    for r in _read_zip_csv(archive, "CONCEPT_RELATIONSHIP.csv"):
        if r["relationship_id"] == "Maps to":
            maps_to.setdefault(r["concept_id_1"], []).append(r)

    previous: dict[tuple[str, str], int] = {}
    if (OUT / "concept.csv").exists():
        with open(OUT / "concept.csv", newline="", encoding="utf-8") as handle:
            for r in csv.DictReader(handle):
                if int(r["concept_id"]) >= LOCAL_BASE:
                    previous[(r["vocabulary_id"], r["concept_code"])] = int(r["concept_id"])
    next_local = max(previous.values(), default=LOCAL_BASE - 1) + 1

    concepts: dict[str, dict[str, str]] = {}
    relationships: set[tuple[str, str, str, str, str, str]] = set()
    local_keys: dict[tuple[str, str], str] = {}

    def local(vocab: str, code: str, name: str, domain: str, cls: str, standard: str) -> str:
        nonlocal next_local
        key = (vocab, code)
        if key in local_keys:
            return local_keys[key]
        if key in previous:
            cid = previous[key]
        else:
            cid, next_local = next_local, next_local + 1
        concepts[str(cid)] = dict(zip(CONCEPT_COLUMNS, (str(cid), name[:255], domain, vocab, cls, standard, code,
                                                         VALID_START, VALID_END, ""), strict=True))
        local_keys[key] = str(cid)
        return str(cid)

    def add_real(row: dict[str, str]) -> str:
        concepts[row["concept_id"]] = {k: row[k] for k in CONCEPT_COLUMNS}
        for rel in maps_to.get(row["concept_id"], []):
            target = extract.get(rel["concept_id_2"])
            if target is None:
                continue
            concepts[target["concept_id"]] = {k: target[k] for k in CONCEPT_COLUMNS}
            if rel["concept_id_1"] != rel["concept_id_2"]:
                relationships.add(tuple(rel[k] for k in REL_COLUMNS))  # type: ignore[arg-type]
                relationships.add((rel["concept_id_2"], rel["concept_id_1"], "Mapped from", rel["valid_start_date"],
                                   rel["valid_end_date"], rel["invalid_reason"]))
        return row["concept_id"]

    def add_maps_to(source: str, target: str) -> None:
        relationships.add((source, target, "Maps to", VALID_START, VALID_END, ""))
        relationships.add((target, source, "Mapped from", VALID_START, VALID_END, ""))

    for cid, name, domain, vocab, cls, standard, code in EXTRA_REAL:
        concepts[cid] = dict(zip(CONCEPT_COLUMNS, (cid, name, domain, vocab, cls, standard, code, VALID_START,
                                                    VALID_END, ""), strict=True))
        by_code[(vocab, code)] = concepts[cid]
    for source, target in EXTRA_REAL_MAPS:
        add_maps_to(source, target)

    wanted = generator_codes() + sample_codes(shared)
    seen: set[tuple[str, str]] = set()
    for vocab, code, name, domain in wanted:
        if (vocab, code) in seen:
            continue
        seen.add((vocab, code))
        row = by_code.get((vocab, code))
        if row is not None:
            add_real(row)
        elif vocab == "ICD10CM":
            local(vocab, code, name, "Condition", "ICD10CM code", "")
        elif vocab == "Revenue Code":
            local(vocab, code, name, "Revenue Code", "Revenue Code", "S")
        else:
            local(vocab, code, name, domain or _semantic_domain(name, vocab),
                  {"SNOMED": "Clinical Finding", "RxNorm": "Clinical Drug", "LOINC": "Lab Test", "CPT4": "CPT4",
                   "CVX": "CVX"}.get(vocab, vocab), "S")

    # ICD-10-CM -> SNOMED 'Maps to' for the generator's conditions (the generator pairs them one to one).
    for cond in C.CONDITIONS:
        source = local_keys.get(("ICD10CM", cond.icd10)) or by_code[("ICD10CM", cond.icd10)]["concept_id"]
        snomed = local_keys.get(("SNOMED", cond.snomed)) or by_code[("SNOMED", cond.snomed)]["concept_id"]
        if source != "35207668":
            add_maps_to(source, snomed)
    # Routine examinations: SNOMED 'General examination of patient' (real, in the extract), as Athena maps Z00.*.
    for icd in (C.ICD_ROUTINE_ADULT, C.ICD_ROUTINE_CHILD):
        add_maps_to(local_keys[("ICD10CM", icd)], by_code[("SNOMED", "162673000")]["concept_id"])

    # Device vitals: a local, non-standard vocabulary whose codes are the monitor's parameter names.
    for parameter, (name, loinc) in VITALS.items():
        source = local("MedsparkVitals", parameter, name, "Measurement", "Vital parameter", "")
        add_maps_to(source, by_code[("LOINC", loinc)]["concept_id"])

    # Units: every UCUM code used (directly or through an alias) must resolve.
    units_used = {o.unit for o in C.OBSERVATIONS} | set(UNIT_ALIASES.values()) | set(LOCAL_UNITS)
    units_used |= {"mL/min/{1.73_m2}", "mg/g", "pg/mL", "ng/mL", "pH", "fL", "pg", "mm", "a", "g/L", "g/dL",
                   "10*3/uL", "10*6/uL", "mL/min", "umol/L", "{cells}/uL", "g/mL", "pg/{cell}", "mL"}
    unit_ids: dict[str, str] = {}
    for code in sorted(units_used):
        row = by_code.get(("UCUM", code))
        if row is not None and row["standard_concept"] == "S":
            unit_ids[code] = add_real(row)
        else:
            unit_ids[code] = local("UCUM", code, LOCAL_UNITS.get(code, code), "Unit", "Unit", "S")

    _write(OUT / "concept.csv", CONCEPT_COLUMNS,
           sorted((tuple(c[k] for k in CONCEPT_COLUMNS) for c in concepts.values()), key=lambda r: int(r[0])))
    _write(OUT / "concept_relationship.csv", REL_COLUMNS,
           sorted(relationships, key=lambda r: (int(r[0]), int(r[1]), r[2])))

    stcm_rows = []
    for source_vocabulary, codes, target_id, description in STCM:
        if str(target_id) not in concepts:
            add_real(extract[str(target_id)])
        target_vocab = concepts[str(target_id)]["vocabulary_id"]
        stcm_rows += [(code, "0", source_vocabulary, description, str(target_id), target_vocab, VALID_START,
                       VALID_END, "") for code in codes]
    _write(OUT / "source_to_concept_map.csv", STCM_COLUMNS, stcm_rows)

    conv_rows = [("LOINC" if loinc else "", loinc, src, dst, repr(float(factor)), repr(float(offset)),
                  "LOINC" if new_loinc else "", new_loinc, note)
                 for loinc, src, dst, factor, offset, new_loinc, note in CONVERSIONS]
    for loinc, src, dst, *_rest in CONVERSIONS:
        assert not loinc or ("LOINC", loinc) in local_keys or ("LOINC", loinc) in by_code, loinc
        if loinc and ("LOINC", loinc) not in local_keys and by_code[("LOINC", loinc)]["concept_id"] not in concepts:
            add_real(by_code[("LOINC", loinc)])
        assert src in unit_ids and dst in unit_ids, (src, dst)
    _write(OUT / "unit_conversion.csv",
           ("measurement_vocabulary_id", "measurement_concept_code", "from_unit_code", "to_unit_code", "factor",
            "offset", "to_measurement_vocabulary_id", "to_measurement_concept_code", "note"), conv_rows)
    _write(OUT / "unit_alias.csv", ("unit_source_value", "unit_code"), sorted(UNIT_ALIASES.items()))
    # concept.csv again: conversions may have added LOINC rows.
    _write(OUT / "concept.csv", CONCEPT_COLUMNS,
           sorted((tuple(c[k] for k in CONCEPT_COLUMNS) for c in concepts.values()), key=lambda r: int(r[0])))

    real = sum(1 for cid in concepts if int(cid) < LOCAL_BASE)
    print(f"concepts: {len(concepts)} ({real} real, {len(concepts) - real} local); "
          f"relationships: {len(relationships)}; source_to_concept_map: {len(stcm_rows)}; "
          f"conversions: {len(conv_rows)}")


def _write(path: Path, header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = REPO.parent / "shared" / "data"
    parser.add_argument("--zip", type=Path, default=shared / "omop-cdm54-synthea27nj" / "Synthea27Nj_5.4.zip")
    parser.add_argument("--shared-data", type=Path, default=shared)
    args = parser.parse_args(argv)
    build(args.zip, args.shared_data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
