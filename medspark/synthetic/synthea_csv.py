"""Synthea v3.0.0 CSV export of the population: the six clinical tables, with Synthea's exact columns.

Synthea writes unquoted CSV (descriptions have their commas removed), UTC timestamps with ``Z``, dates as
``YYYY-MM-DD`` and SNOMED CT / RxNorm / LOINC codes; the header lines below are copied from Synthea v3.0.0 output
(``../shared/data/synthea-csv-ma27``). One file per table and chunk: ``synthea-csv/<table>-<chunk:05d>.csv``.
"""

from __future__ import annotations

import numpy as np

from medspark.synthetic import codes as C
from medspark.synthetic import defects as D
from medspark.synthetic import textfmt as T
from medspark.synthetic.population import Population, Records
from medspark.synthetic.sink import ChunkContext, RecordFile, Strings, blocks

FORMAT = "synthea-csv"

HEADERS: dict[str, str] = {
    "patients": "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,"
    "ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE",
    "encounters": "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,"
    "BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION",
    "conditions": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
    "medications": "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,"
    "TOTALCOST,REASONCODE,REASONDESCRIPTION",
    "procedures": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
    "observations": "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
}
PROFILES: dict[str, D.Profile] = {
    "patients": D.Profile("synthea_patients",
                          (D.INVALID_DATE, D.MISSING_IDENTIFIER, D.DUPLICATE, D.INVALID_ENCODING)),
    "encounters": D.Profile("synthea_encounters", (D.DUPLICATE,)),
    "conditions": D.Profile("synthea_conditions", (D.DUPLICATE, D.UNKNOWN_CODE)),
    "medications": D.Profile("synthea_medications", (D.DUPLICATE,)),
    "procedures": D.Profile("synthea_procedures", (D.DUPLICATE,)),
    "observations": D.Profile("synthea_observations", (D.DUPLICATE,)),
}


def _with_blank(values: list[str]) -> np.ndarray:
    """Lookup array whose index -1 yields an empty string (for optional codes)."""
    return np.array([*values, ""], dtype=object)


_REASON_CODE = _with_blank([c.snomed for c in C.CONDITIONS])
_REASON_DESC = _with_blank([c.snomed_display for c in C.CONDITIONS])
_ENC_CLASS = np.array([e.encounter_class for e in C.ENCOUNTER_TYPES], dtype=object)
_ENC_CODE = np.array([e.snomed for e in C.ENCOUNTER_TYPES], dtype=object)
_ENC_DESC = np.array([e.display for e in C.ENCOUNTER_TYPES], dtype=object)
_ENC_BASE = np.array([f"{e.base_cost:.2f}" for e in C.ENCOUNTER_TYPES], dtype=object)
_ORG_UUID = np.array([o.uuid for o in C.ORGANIZATIONS], dtype=object)
_PROV_UUID = np.array([p.uuid for p in C.PROVIDERS], dtype=object)
_PAYER_UUID = np.array(C.PAYER_UUIDS, dtype=object)
_MED_CODE = np.array([m.rxnorm for m in C.MEDICATIONS], dtype=object)
_MED_DESC = np.array([m.display for m in C.MEDICATIONS], dtype=object)
_PROC_CODE = np.array([p.snomed for p in C.PROCEDURES], dtype=object)
_PROC_DESC = np.array([p.display for p in C.PROCEDURES], dtype=object)
_OBS_CAT = np.array([o.category for o in C.OBSERVATIONS], dtype=object)
_OBS_CODE = np.array([o.loinc for o in C.OBSERVATIONS], dtype=object)
_OBS_DESC = np.array([o.display for o in C.OBSERVATIONS], dtype=object)
_OBS_UNIT = np.array([o.unit for o in C.OBSERVATIONS], dtype=object)
_RACE = np.array([r[0] for r in C.RACES], dtype=object)
_ETH = np.array([e[0] for e in C.ETHNICITIES], dtype=object)
_CITY = np.array([c[0] for c in C.CITIES], dtype=object)
_COUNTY = np.array([c[1] for c in C.CITIES], dtype=object)
_ZIP = np.array([c[2] for c in C.CITIES], dtype=object)


def _optional_utc(values: np.ndarray) -> list[str]:
    text = np.array(T.iso_utc(np.maximum(values, 0)), dtype=object)
    text[values < 0] = ""
    return text.tolist()


def write(pop: Population, ctx: ChunkContext, strings: Strings) -> None:
    """Write the six tables of one chunk."""
    builders = {
        "patients": _patients, "encounters": _encounters, "conditions": _conditions,
        "medications": _medications, "procedures": _procedures, "observations": _observations,
    }
    for table, build in builders.items():
        rel = f"synthea-csv/{table}-{pop.chunk:05d}.csv"
        with RecordFile(ctx, rel, FORMAT, PROFILES, D.damage_csv, header=HEADERS[table]) as out:
            for a, b in blocks(pop.n):
                out.add(build(pop, strings, a, b), table)


def _patients(pop: Population, s: Strings, a: int, b: int) -> list[str]:
    p = pop.patients
    sl = slice(a, b)
    gender = np.where(p.male[sl], "M", "F").tolist()
    return [
        f"{uid},{birth},,{ssn},{dl},{pp},{pre},{first},{last},,{maiden},{mar},{race},{eth},{sex},{bp},{street},"
        f"{city},Massachusetts,{county},{zip_},{lat},{lon},{exp},{cov}"
        for uid, birth, ssn, dl, pp, pre, first, last, maiden, mar, race, eth, sex, bp, street, city, county, zip_,
        lat, lon, exp, cov in zip(
            p.uuid[sl].tolist(), s.birth_date[sl].tolist(), p.ssn[sl].tolist(), p.drivers[sl].tolist(),
            p.passport[sl].tolist(), p.prefix[sl].tolist(), p.first[sl].tolist(), p.last[sl].tolist(),
            p.maiden[sl].tolist(), p.marital[sl].tolist(), _RACE[p.race[sl]].tolist(), _ETH[p.ethnicity[sl]].tolist(),
            gender, p.birthplace[sl].tolist(), p.street[sl].tolist(), _CITY[p.city[sl]].tolist(),
            _COUNTY[p.city[sl]].tolist(), _ZIP[p.city[sl]].tolist(), T.fixed(p.lat[sl], 6), T.fixed(p.lon[sl], 6),
            T.fixed(p.expenses[sl], 2), T.fixed(p.coverage[sl], 2), strict=True
        )
    ]


def _encounters(pop: Population, s: Strings, a: int, b: int) -> list[str]:
    e = pop.encounters
    sl = slice(int(e.offsets[a]), int(e.offsets[b]))
    pat = e.pat[sl]
    return [
        f"{eid},{start},{stop},{pid},{org},{prov},{payer},{cls},{code},{desc},{base},{total},{cov},{rc},{rd}"
        for eid, start, stop, pid, org, prov, payer, cls, code, desc, base, total, cov, rc, rd in zip(
            s.enc_uuid[sl].tolist(), s.enc_start_utc[sl].tolist(), s.enc_stop_utc[sl].tolist(),
            pop.patients.uuid[pat].tolist(), _ORG_UUID[e.org[sl]].tolist(), _PROV_UUID[e.provider[sl]].tolist(),
            _PAYER_UUID[pop.patients.payer[pat]].tolist(), _ENC_CLASS[e.etype[sl]].tolist(),
            _ENC_CODE[e.etype[sl]].tolist(), _ENC_DESC[e.etype[sl]].tolist(), _ENC_BASE[e.etype[sl]].tolist(),
            T.fixed(e.total[sl], 2), T.fixed(e.coverage[sl], 2), _REASON_CODE[e.reason[sl]].tolist(),
            _REASON_DESC[e.reason[sl]].tolist(), strict=True
        )
    ]


def _rows(table: Records, a: int, b: int) -> slice:
    return slice(int(table.offsets[a]), int(table.offsets[b]))


def _conditions(pop: Population, s: Strings, a: int, b: int) -> list[str]:
    c = pop.conditions
    sl = _rows(c, a, b)
    stop = np.array(T.iso_date(np.maximum(c.stop[sl], 0) // T.DAY), dtype=object)
    stop[c.stop[sl] < 0] = ""
    return [
        f"{start},{stop},{pid},{eid},{code},{desc}"
        for start, stop, pid, eid, code, desc in zip(
            s.enc_start_date[c.enc[sl]].tolist(), stop.tolist(), pop.patients.uuid[c.pat[sl]].tolist(),
            s.enc_uuid[c.enc[sl]].tolist(), _REASON_CODE[c.code[sl]].tolist(), _REASON_DESC[c.code[sl]].tolist(),
            strict=True,
        )
    ]


def _medications(pop: Population, s: Strings, a: int, b: int) -> list[str]:
    m = pop.medications
    sl = _rows(m, a, b)
    total = np.round(m.cost[sl] * m.value[sl], 2)
    share = np.array([py.coverage for py in C.PAYERS])[pop.patients.payer[m.pat[sl]]]
    return [
        f"{start},{stop},{pid},{payer},{eid},{code},{desc},{base},{cov},{disp},{tot},{rc},{rd}"
        for start, stop, pid, payer, eid, code, desc, base, cov, disp, tot, rc, rd in zip(
            s.enc_start_utc[m.enc[sl]].tolist(), _optional_utc(m.stop[sl]), pop.patients.uuid[m.pat[sl]].tolist(),
            _PAYER_UUID[pop.patients.payer[m.pat[sl]]].tolist(), s.enc_uuid[m.enc[sl]].tolist(),
            _MED_CODE[m.code[sl]].tolist(), _MED_DESC[m.code[sl]].tolist(), T.fixed(m.cost[sl], 2),
            T.fixed(np.round(total * share, 2), 2), m.value[sl].astype(np.int64).tolist(), T.fixed(total, 2),
            _REASON_CODE[m.reason[sl]].tolist(), _REASON_DESC[m.reason[sl]].tolist(), strict=True
        )
    ]


def _procedures(pop: Population, s: Strings, a: int, b: int) -> list[str]:
    r = pop.procedures
    sl = _rows(r, a, b)
    return [
        f"{start},{stop},{pid},{eid},{code},{desc},{cost},{rc},{rd}"
        for start, stop, pid, eid, code, desc, cost, rc, rd in zip(
            T.iso_utc(r.start[sl]), T.iso_utc(r.stop[sl]), pop.patients.uuid[r.pat[sl]].tolist(),
            s.enc_uuid[r.enc[sl]].tolist(), _PROC_CODE[r.code[sl]].tolist(), _PROC_DESC[r.code[sl]].tolist(),
            T.fixed(r.value[sl], 2), _REASON_CODE[r.reason[sl]].tolist(), _REASON_DESC[r.reason[sl]].tolist(),
            strict=True,
        )
    ]


def _observations(pop: Population, s: Strings, a: int, b: int) -> list[str]:
    o = pop.observations
    sl = _rows(o, a, b)
    code = o.code[sl]
    return [
        f"{date},{pid},{eid},{cat},{loinc},{desc},{value},{unit},numeric"
        for date, pid, eid, cat, loinc, desc, value, unit in zip(
            s.enc_start_utc[o.enc[sl]].tolist(), pop.patients.uuid[o.pat[sl]].tolist(),
            s.enc_uuid[o.enc[sl]].tolist(), _OBS_CAT[code].tolist(), _OBS_CODE[code].tolist(),
            _OBS_DESC[code].tolist(), list(map(str, o.value[sl].tolist())), _OBS_UNIT[code].tolist(), strict=True
        )
    ]
