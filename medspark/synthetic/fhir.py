"""FHIR R4 renderings of the population: Bulk Data NDJSON for most patients, transaction Bundles for the rest.

NDJSON follows the Bulk Data export layout (one resource per line, one file per resource type and chunk:
``fhir-ndjson/<Type>.<chunk:05d>.ndjson``) with ``Patient/<id>`` references. About 2 % of patients
(``Patients.in_bundle``) are written only as one transaction Bundle each (``fhir-bundle/bundle-<chunk>-<n>.json``),
with ``urn:uuid:`` fullUrls/references and ``request.method = POST``, as Synthea's bundle exporter does.
JSON is compact (no spaces), UTF-8, keys in a fixed order; timestamps carry the US Eastern offset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medspark.synthetic import codes as C
from medspark.synthetic import defects as D
from medspark.synthetic import textfmt as T
from medspark.synthetic.population import Population, Records
from medspark.synthetic.sink import ChunkContext, RecordFile, Strings, blocks, write_atomic

NDJSON = "fhir-ndjson"
BUNDLE = "fhir-bundle"
TYPES = ("Patient", "Encounter", "Condition", "MedicationRequest", "Procedure", "Observation")
ENTITY = {t: f"fhir_{t.lower()}" for t in TYPES}


def _profiles(bundle: bool) -> dict[str, D.Profile]:
    json_kinds = () if bundle else (D.INVALID_JSON,)
    extra: dict[str, tuple[str, ...]] = {
        "Patient": (D.INVALID_DATE, *(() if bundle else (D.INVALID_ENCODING,))),
        "Condition": (D.UNKNOWN_CODE,),
    }
    return {
        t: D.Profile(ENTITY[t], (*json_kinds, D.MISSING_IDENTIFIER, D.DUPLICATE, *extra.get(t, ())))
        for t in TYPES
    }


NDJSON_PROFILES = _profiles(bundle=False)
BUNDLE_PROFILES = _profiles(bundle=True)

# ---------------------------------------------------------------------------------------- constant fragments

SNOMED = "http://snomed.info/sct"


def _coding(system: str, code: str, display: str) -> str:
    return f'{{"coding":[{{"system":"{system}","code":"{code}","display":"{display}"}}],"text":"{display}"}}'


def _obj(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object)


_RACE_EXT = _obj([
    '{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory",'
    f'"valueCoding":{{"system":"urn:oid:2.16.840.1.113883.6.238","code":"{code}","display":"{disp}"}}}},'
    f'{{"url":"text","valueString":"{disp}"}}]}}'
    for _, code, disp, _ in C.RACES
])
_ETH_EXT = _obj([
    '{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity","extension":[{"url":"ombCategory",'
    f'"valueCoding":{{"system":"urn:oid:2.16.840.1.113883.6.238","code":"{code}","display":"{disp}"}}}},'
    f'{{"url":"text","valueString":"{disp}"}}]}}'
    for _, code, disp, _ in C.ETHNICITIES
])
_SEX_EXT = _obj([
    f'{{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"{s}"}}'
    for s in ("F", "M")
])
_GENDER = _obj(["female", "male"])
_MR_TYPE = ('{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR",'
            '"display":"Medical Record Number"}],"text":"Medical Record Number"},'
            f'"system":"{C.MRN_SYSTEM}","value":"')
_SS_TYPE = ('{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS",'
            '"display":"Social Security Number"}],"text":"Social Security Number"},'
            f'"system":"{C.SSN_SYSTEM}","value":"')
_MARITAL = {
    "": "",
    **{code: (',"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",'
              f'"code":"{code}","display":"{disp}"}}],"text":"{disp}"}}')
       for code, disp in C.MARITAL.items()},
}
_COMMUNICATION = ('"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US",'
                  '"display":"English (United States)"}],"text":"English (United States)"}}]')
_CITY = _obj([c[0] for c in C.CITIES])
_ZIP = _obj([c[2] for c in C.CITIES])

_ENC_TYPE = _obj([
    f'"class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"{e.fhir_class}"}},'
    f'"type":[{_coding(SNOMED, e.snomed, e.display)}]'
    for e in C.ENCOUNTER_TYPES
])
_PRACTITIONER = _obj([
    f'{{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|{p.npi}",'
    f'"display":"Dr. {p.first} {p.last}"}}'
    for p in C.PROVIDERS
])
_ORG = _obj([
    f'"serviceProvider":{{"reference":"Organization?identifier={C.SYNTHEA_SYSTEM}|{o.uuid}","display":"{o.name}"}}'
    for o in C.ORGANIZATIONS
])
_REASON = _obj([
    *(f',"reasonCode":[{{"coding":[{{"system":"{SNOMED}","code":"{c.snomed}","display":"{c.snomed_display}"}}]}}]'
      for c in C.CONDITIONS),
    "",
])
_COND_CODE = _obj([_coding(SNOMED, c.snomed, c.snomed_display) for c in C.CONDITIONS])
_COND_HEAD = (
    '","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"'
)
_COND_MID = (
    '"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status",'
    '"code":"confirmed"}]},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/'
    'condition-category","code":"encounter-diagnosis","display":"Encounter Diagnosis"}]}],"code":'
)
_MED_CODE = _obj([_coding("http://www.nlm.nih.gov/research/umls/rxnorm", m.rxnorm, m.display) for m in C.MEDICATIONS])
_DOSAGE = ('"dosageInstruction":[{"sequence":1,"timing":{"repeat":{"frequency":1,"period":1.0,"periodUnit":"d"}},'
           '"asNeededBoolean":false}]')
_PROC_CODE = _obj([_coding(SNOMED, p.snomed, p.display) for p in C.PROCEDURES])
_OBS_HEAD = _obj([
    f'","status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/'
    f'observation-category","code":"{o.category}","display":"{o.category.replace("-", " ").capitalize()}"}}]}}],'
    f'"code":{_coding("http://loinc.org", o.loinc, o.display)},"subject":{{"reference":"'
    for o in C.OBSERVATIONS
])
_OBS_TAIL = _obj([
    f',"unit":"{o.unit}","system":"http://unitsofmeasure.org","code":"{o.unit}"}}}}' for o in C.OBSERVATIONS
])


# ------------------------------------------------------------------------------------------------- resources


class _Refs:
    """Reference prefixes: ``Patient/``/``Encounter/`` in NDJSON, ``urn:uuid:`` inside a transaction Bundle."""

    def __init__(self, bundle: bool) -> None:
        self.patient = "urn:uuid:" if bundle else "Patient/"
        self.encounter = "urn:uuid:" if bundle else "Encounter/"


def _patients(pop: Population, s: Strings, rows: np.ndarray, refs: _Refs) -> tuple[list[str], list[str]]:
    p = pop.patients
    ids = p.uuid[rows].tolist()
    male = p.male[rows].astype(np.int64)
    prefix = [f',"prefix":["{x}"]' if x else "" for x in p.prefix[rows].tolist()]
    marital = [_MARITAL[x] for x in p.marital[rows].tolist()]
    lines = [
        f'{{"resourceType":"Patient","id":"{uid}","extension":[{race},{eth},{sex}],"identifier":[{{"system":'
        f'"{C.SYNTHEA_SYSTEM}","value":"{uid}"}},{_MR_TYPE}{mrn}"}},{_SS_TYPE}{ssn}"}}],"name":[{{"use":"official",'
        f'"family":"{last}","given":["{first}"]{pre}}}],"telecom":[{{"system":"phone","value":"{phone}",'
        f'"use":"home"}}],"gender":"{gender}","birthDate":"{birth}","address":[{{"line":["{street}"],'
        f'"city":"{city}","state":"MA","postalCode":"{zip_}","country":"US"}}]{mar},{_COMMUNICATION}}}'
        for uid, race, eth, sex, mrn, ssn, last, first, pre, phone, gender, birth, street, city, zip_, mar in zip(
            ids, _RACE_EXT[p.race[rows]].tolist(), _ETH_EXT[p.ethnicity[rows]].tolist(), _SEX_EXT[male].tolist(),
            p.mrn[rows].tolist(), p.ssn[rows].tolist(), p.last[rows].tolist(), p.first[rows].tolist(), prefix,
            p.phone[rows].tolist(), _GENDER[male].tolist(), s.birth_date[rows].tolist(), p.street[rows].tolist(),
            _CITY[p.city[rows]].tolist(), _ZIP[p.city[rows]].tolist(), marital, strict=True
        )
    ]
    return ids, lines


def _encounters(pop: Population, s: Strings, rows: np.ndarray, refs: _Refs) -> tuple[list[str], list[str]]:
    e = pop.encounters
    ids = s.enc_uuid[rows].tolist()
    lines = [
        f'{{"resourceType":"Encounter","id":"{eid}","identifier":[{{"use":"official","system":"{C.VISIT_SYSTEM}",'
        f'"value":"{visit}"}}],"status":"finished",{etype},"subject":{{"reference":"{refs.patient}{pid}"}},'
        f'"participant":[{{"individual":{prac}}}],"period":{{"start":"{start}","end":"{stop}"}}{reason},{org}}}'
        for eid, visit, etype, pid, prac, start, stop, reason, org in zip(
            ids, s.enc_visit[rows].tolist(), _ENC_TYPE[e.etype[rows]].tolist(),
            pop.patients.uuid[e.pat[rows]].tolist(), _PRACTITIONER[e.provider[rows]].tolist(),
            s.enc_start_local[rows].tolist(), s.enc_stop_local[rows].tolist(), _REASON[e.reason[rows]].tolist(),
            _ORG[e.org[rows]].tolist(), strict=True
        )
    ]
    return ids, lines


def _conditions(pop: Population, s: Strings, rows: np.ndarray, refs: _Refs) -> tuple[list[str], list[str]]:
    c = pop.conditions
    ids = T.uuid_strings(c.uuid[rows])
    stop = c.stop[rows]
    abatement = [f',"abatementDateTime":"{x}"' if st >= 0 else ""
                 for x, st in zip(T.iso_local(np.maximum(stop, 0)), stop.tolist(), strict=True)]
    status = np.where(stop >= 0, "resolved", "active").tolist()
    lines = [
        f'{{"resourceType":"Condition","id":"{cid}{_COND_HEAD}{st}{_COND_MID}{code},"subject":{{"reference":'
        f'"{refs.patient}{pid}"}},"encounter":{{"reference":"{refs.encounter}{eid}"}},"onsetDateTime":"{onset}"'
        f'{abate},"recordedDate":"{onset}"}}'
        for cid, st, code, pid, eid, onset, abate in zip(
            ids, status, _COND_CODE[c.code[rows]].tolist(), pop.patients.uuid[c.pat[rows]].tolist(),
            s.enc_uuid[c.enc[rows]].tolist(), s.enc_start_local[c.enc[rows]].tolist(), abatement, strict=True
        )
    ]
    return ids, lines


def _medications(pop: Population, s: Strings, rows: np.ndarray, refs: _Refs) -> tuple[list[str], list[str]]:
    m = pop.medications
    ids = T.uuid_strings(m.uuid[rows])
    status = np.where(m.stop[rows] >= 0, "completed", "active").tolist()
    lines = [
        f'{{"resourceType":"MedicationRequest","id":"{mid}","status":"{st}","intent":"order",'
        f'"medicationCodeableConcept":{code},"subject":{{"reference":"{refs.patient}{pid}"}},"encounter":'
        f'{{"reference":"{refs.encounter}{eid}"}},"authoredOn":"{authored}","requester":{prac}{reason},{_DOSAGE}}}'
        for mid, st, code, pid, eid, authored, prac, reason in zip(
            ids, status, _MED_CODE[m.code[rows]].tolist(), pop.patients.uuid[m.pat[rows]].tolist(),
            s.enc_uuid[m.enc[rows]].tolist(), s.enc_start_local[m.enc[rows]].tolist(),
            _PRACTITIONER[pop.encounters.provider[m.enc[rows]]].tolist(), _REASON[m.reason[rows]].tolist(), strict=True
        )
    ]
    return ids, lines


def _procedures(pop: Population, s: Strings, rows: np.ndarray, refs: _Refs) -> tuple[list[str], list[str]]:
    r = pop.procedures
    ids = T.uuid_strings(r.uuid[rows])
    lines = [
        f'{{"resourceType":"Procedure","id":"{rid}","status":"completed","code":{code},"subject":{{"reference":'
        f'"{refs.patient}{pid}"}},"encounter":{{"reference":"{refs.encounter}{eid}"}},"performedPeriod":'
        f'{{"start":"{start}","end":"{stop}"}}{reason}}}'
        for rid, code, pid, eid, start, stop, reason in zip(
            ids, _PROC_CODE[r.code[rows]].tolist(), pop.patients.uuid[r.pat[rows]].tolist(),
            s.enc_uuid[r.enc[rows]].tolist(), T.iso_local(r.start[rows]), T.iso_local(r.stop[rows]),
            _REASON[r.reason[rows]].tolist(), strict=True
        )
    ]
    return ids, lines


def _observations(pop: Population, s: Strings, rows: np.ndarray, refs: _Refs) -> tuple[list[str], list[str]]:
    o = pop.observations
    ids = T.uuid_strings(o.uuid[rows])
    code = o.code[rows]
    lines = [
        f'{{"resourceType":"Observation","id":"{oid}{head}{refs.patient}{pid}"}},"encounter":{{"reference":'
        f'"{refs.encounter}{eid}"}},"effectiveDateTime":"{t}","issued":"{t}","valueQuantity":{{"value":{v}{tail}'
        for oid, head, pid, eid, t, v, tail in zip(
            ids, _OBS_HEAD[code].tolist(), pop.patients.uuid[o.pat[rows]].tolist(), s.enc_uuid[o.enc[rows]].tolist(),
            s.enc_start_local[o.enc[rows]].tolist(), list(map(str, o.value[rows].tolist())), _OBS_TAIL[code].tolist(),
            strict=True,
        )
    ]
    return ids, lines


Builder = Callable[[Population, Strings, np.ndarray, _Refs], tuple[list[str], list[str]]]
BUILDERS: dict[str, Builder] = {
    "Patient": _patients, "Encounter": _encounters, "Condition": _conditions, "MedicationRequest": _medications,
    "Procedure": _procedures, "Observation": _observations,
}


def _table(pop: Population, resource: str) -> Records | None:
    return {"Condition": pop.conditions, "MedicationRequest": pop.medications, "Procedure": pop.procedures,
            "Observation": pop.observations}.get(resource)


def _offsets(pop: Population, resource: str) -> np.ndarray:
    if resource == "Patient":
        return np.arange(pop.n + 1)
    if resource == "Encounter":
        return pop.encounters.offsets
    table = _table(pop, resource)
    assert table is not None
    return table.offsets


def _pats(pop: Population, resource: str) -> np.ndarray:
    if resource == "Patient":
        return np.arange(pop.n)
    if resource == "Encounter":
        return pop.encounters.pat
    table = _table(pop, resource)
    assert table is not None
    return table.pat


def write(pop: Population, ctx: ChunkContext, strings: Strings) -> None:
    """Write one NDJSON file per resource type (non-bundle patients) and one Bundle per bundle patient."""
    ndjson_refs = _Refs(bundle=False)
    in_bundle = pop.patients.in_bundle
    for resource in TYPES:
        offsets, pats = _offsets(pop, resource), _pats(pop, resource)
        rel = f"fhir-ndjson/{resource}.{pop.chunk:05d}.ndjson"
        with RecordFile(ctx, rel, NDJSON, NDJSON_PROFILES, D.damage_json) as out:
            for a, b in blocks(pop.n):
                rows = np.arange(offsets[a], offsets[b])
                rows = rows[~in_bundle[pats[rows]]]
                if len(rows):
                    out.add(BUILDERS[resource](pop, strings, rows, ndjson_refs)[1], resource)
    _write_bundles(pop, ctx, strings)


def _write_bundles(pop: Population, ctx: ChunkContext, strings: Strings) -> None:
    refs = _Refs(bundle=True)
    patients = np.flatnonzero(pop.patients.in_bundle)
    if not len(patients):
        return
    # Render every bundle patient's resources in one pass per type, then cut them per patient.
    per_patient: list[tuple[list[str], list[str], list[str]]] = [([], [], []) for _ in patients]
    for resource in TYPES:
        offsets = _offsets(pop, resource)
        counts = (offsets[patients + 1] - offsets[patients]).tolist()
        rows = np.concatenate([np.arange(offsets[q], offsets[q + 1]) for q in patients.tolist()])
        if not len(rows):
            continue
        ids, lines = BUILDERS[resource](pop, strings, rows, refs)
        start = 0
        for (p_ids, p_lines, p_keys), count in zip(per_patient, counts, strict=True):
            p_ids += ids[start : start + count]
            p_lines += lines[start : start + count]
            p_keys += [resource] * count
            start += count
    for number, (ids, resources, keys) in enumerate(per_patient):
        rel = f"fhir-bundle/bundle-{pop.chunk:05d}-{number:05d}.json"
        injector = ctx.injector(BUNDLE, rel, BUNDLE_PROFILES, _entry_damage)
        # Defects act on whole entries so a duplicate copies the entry (fullUrl, resource and request).
        entries = [f'{{"fullUrl":"urn:uuid:{i}","resource":{r},"request":{{"method":"POST","url":"{k}"}}}}'
                   for i, r, k in zip(ids, resources, keys, strict=True)]
        out, entities = injector.process(entries, keys)
        tail, tail_entities = injector.finish()
        out, entities = out + tail, entities + tail_entities
        text = '{"resourceType":"Bundle","type":"transaction","entry":[\n' + ",\n".join(out) + "\n]}\n"
        write_atomic(ctx.out_dir / rel, text.encode(D.ENCODING, D.ERRORS))
        ctx.count(BUNDLE, rel, entities)
        ctx.add_events(injector)


_ENTRY_HEAD = '"resource":'
_ENTRY_TAIL = ',"request":{"method":"POST","url":"'


def _entry_damage(kind: str, entry: str, key: str) -> str:
    """Damage the resource inside a Bundle entry, keeping the entry wrapper."""
    start = entry.index(_ENTRY_HEAD) + len(_ENTRY_HEAD)
    end = entry.rindex(_ENTRY_TAIL)
    return entry[:start] + D.damage_json(kind, entry[start:end], key) + entry[end:]
