"""HL7 v2.5 feeds of the population: ADT for inpatient stays and ORU^R01 for lab results.

``hl7v2/adt-<chunk>.hl7`` holds ADT^A01 (admit), ADT^A03 (discharge) and, for about a quarter of stays, an
ADT^A08 (demographic update: new address/phone while in hospital), one message per line with ``\\r`` between
segments, in event-time order. ``hl7v2/oru-<chunk>.mllp`` holds one ORU^R01 per encounter with lab results,
MLLP framed (``\\x0b`` message ``\\x1c\\r``). Times are Eastern with offsets (``20210304101500-0500``).

Identifiers: PID-3 ``MRN^^^MEDSPARK^MR~SSN^^^SSA^SS``, PID-19 SSN, PV1-19 the visit number (also FHIR
Encounter.identifier and X12 CLM01), IN1-36 the payer member id. Diagnoses (DG1) in ICD-10-CM, results (OBX)
in LOINC with UCUM units (glucose in mmol/L for the patients whose labs report SI units).
"""

from __future__ import annotations

import numpy as np

from medspark.synthetic import codes as C
from medspark.synthetic import defects as D
from medspark.synthetic import textfmt as T
from medspark.synthetic.population import Population, diagnosis_times
from medspark.synthetic.sink import ChunkContext, RecordFile, Strings

FORMAT = "hl7v2"
ENTITY = "hl7v2_messages"
_PID_KINDS = (D.HL7_TRUNCATED, D.INVALID_DATE, D.MISSING_IDENTIFIER, D.DUPLICATE, D.INVALID_ENCODING)
PROFILES: dict[str, D.Profile] = {
    "adt_dx": D.Profile(ENTITY, (*_PID_KINDS, D.UNKNOWN_CODE)),  # A01/A03 carry DG1 segments
    "adt": D.Profile(ENTITY, _PID_KINDS),
    "oru": D.Profile(ENTITY, _PID_KINDS),
}
FACILITY = "MEDSPARK GENERAL^2.16.840.1.113883.3.4242^ISO"
LAB_FACILITY = "MEDSPARK GENERAL LAB^2.16.840.1.113883.3.4242.9^ISO"
_RACE = [f"{code}^{disp}^CDCREC" for _, code, disp, _ in C.RACES]
_ETH = [f"{code}^{disp}^CDCREC" for _, code, disp, _ in C.ETHNICITIES]
_DISPOSITION = ("01", "06", "03")  # home, home health, skilled nursing facility (HL7 table 0112)
_IN1_PLAN_TYPE = ("MC", "MD", "MC", "PPO", "HMO", "PPO", "HMO", "")


def segment(name: str, fields: dict[int, str]) -> str:
    """An HL7 segment from 1-based field values (MSH fields are numbered from MSH-3; MSH-1/2 are implicit)."""
    last = max(fields)
    values = [fields.get(i, "") for i in range(1, last + 1)]
    return name + "|" + "|".join(values)


def _msh(app: str, facility: str, ts: str, msg_type: str, control: str) -> str:
    return f"MSH|^~\\&|{app}|{facility}|MEDSPARK-LAKE|MEDSPARK|{ts}||{msg_type}|{control}|P|2.5"


class _Demographics:
    """PID and IN1 segments per patient, built once and reused by every message of the patient."""

    def __init__(self, pop: Population, strings: Strings) -> None:
        self.pop = pop
        self.dob = T.compact_date(pop.patients.birth_day)
        self._pid: dict[int, tuple[str, str]] = {}
        self._in1: dict[int, str | None] = {}

    def pid(self, i: int, account: str, street: str | None = None, phone: str | None = None) -> str:
        """PID with PID-18 (account) set to the visit; ``street``/``phone`` override the registered ones (A08)."""
        if street is not None or phone is not None:
            head, tail = self._pid_parts(i, street, phone)
        else:
            if i not in self._pid:
                self._pid[i] = self._pid_parts(i, None, None)
            head, tail = self._pid[i]
        return f"{head}{account}^^^MEDSPARK^AN{tail}"

    def _pid_parts(self, i: int, street: str | None, phone: str | None) -> tuple[str, str]:
        p = self.pop.patients
        street = street if street is not None else p.street[i]
        phone = phone if phone is not None else p.phone[i]
        city = C.CITIES[p.city[i]]
        text = segment("PID", {
            1: "1",
            3: f"{p.mrn[i]}^^^MEDSPARK^MR~{p.ssn[i]}^^^SSA^SS",
            5: f"{p.last[i].upper()}^{p.first[i].upper()}^^^{p.prefix[i]}^^L",
            7: self.dob[i],
            8: "M" if p.male[i] else "F",
            10: _RACE[p.race[i]],
            11: f"{street}^^{city[0]}^MA^{city[2]}^USA^H",
            13: f"{phone}^PRN^PH",
            16: p.marital[i],
            18: "\x00",
            19: p.ssn[i],
            22: _ETH[p.ethnicity[i]],
        })
        head, tail = text.split("\x00")
        return head, tail

    def in1(self, i: int) -> str | None:
        if i in self._in1:
            return self._in1[i]
        p = self.pop.patients
        payer = int(p.payer[i])
        seg = None
        if payer != C.PAYER_NONE:
            py = C.PAYERS[payer]
            seg = segment("IN1", {
                1: "1", 2: f"{py.payer_id}^{py.name}", 3: py.payer_id, 4: py.name, 15: _IN1_PLAN_TYPE[payer],
                16: f"{p.last[i].upper()}^{p.first[i].upper()}", 17: "SEL^Self", 18: self.dob[i],
                36: p.member_id[i],
            })
        self._in1[i] = seg
        return seg


def write(pop: Population, ctx: ChunkContext, strings: Strings) -> None:
    """Write the ADT and ORU files of one chunk."""
    demo = _Demographics(pop, strings)
    _write_adt(pop, ctx, strings, demo)
    _write_oru(pop, ctx, strings, demo)


def _write_adt(pop: Population, ctx: ChunkContext, strings: Strings, demo: _Demographics) -> None:
    s, e = pop.stays, pop.encounters
    rng = ctx.rng(1)
    n_stays = len(s.enc)
    a08 = rng.random(n_stays) < 0.25
    a08_time = s.admit + (rng.uniform(0.2, 0.8, n_stays) * (s.discharge - s.admit)).astype(np.int64)
    new_street = [f"{num} {C.STREET_NAMES[st]}" for num, st in zip(
        rng.integers(1, 1000, n_stays).tolist(), rng.integers(len(C.STREET_NAMES), size=n_stays).tolist(), strict=True)]
    new_phone = [f"555-{a:03d}-{b:04d}" for a, b in zip(
        rng.integers(200, 1000, n_stays).tolist(), rng.integers(0, 10000, n_stays).tolist(), strict=True)]
    # Events: (time, stay, order) with order 0 = A01, 1 = A08, 2 = A03.
    ev_stay = np.concatenate([np.arange(n_stays), np.flatnonzero(a08), np.arange(n_stays)])
    ev_kind = np.concatenate([np.zeros(n_stays, int), np.ones(a08.sum(), int), np.full(n_stays, 2)])
    ev_time = np.concatenate([s.admit, a08_time[a08], s.discharge])
    order = np.lexsort((ev_kind, ev_stay, ev_time))
    ev_stay, ev_kind, ev_time = ev_stay[order], ev_kind[order], ev_time[order]
    ts = T.hl7_local(ev_time)
    admit_ts, disch_ts = T.hl7_local(s.admit), T.hl7_local(s.discharge)
    visit = strings.enc_visit[s.enc].tolist()
    diag_time = diagnosis_times(pop)

    messages: list[str] = []
    keys: list[str] = []
    for m, (k, kind, t) in enumerate(zip(ev_stay.tolist(), ev_kind.tolist(), ts, strict=True)):
        i = int(s.pat[k])
        row = int(s.enc[k])
        trigger = ("A01", "A08", "A03")[kind]
        structure = "ADT_A03" if kind == 2 else "ADT_A01"
        control = f"A{pop.chunk:06d}{m:07d}"
        prov = C.PROVIDERS[e.provider[row]]
        hosp = C.ORGANIZATIONS[e.org[row]]
        segs = [
            _msh("MEDSPARK-ADT", FACILITY, t, f"ADT^{trigger}^{structure}", control),
            f"EVN|{trigger}|{t}",
            demo.pid(i, visit[k], new_street[k] if kind >= 1 and a08[k] else None,
                     new_phone[k] if kind >= 1 and a08[k] else None),
        ]
        pv1 = {
            1: "1", 2: "I", 3: f"MED^{100 + k % 300}^{'AB'[k % 2]}^{hosp.name}", 4: "E" if s.via_ed[k] else "R",
            7: f"{prov.npi}^{prov.last.upper()}^{prov.first.upper()}^^^^MD", 10: "MED",
            14: "7" if s.via_ed[k] else "1", 19: f"{visit[k]}^^^MEDSPARK^VN", 44: admit_ts[k],
        }
        if kind == 2:
            pv1[36] = _DISPOSITION[s.disposition[k]]
            pv1[45] = disch_ts[k]
        segs.append(segment("PV1", pv1))
        if kind != 1:
            principal = C.CONDITIONS[s.reason[k]]
            segs.append(f"DG1|1||{principal.icd10}^{principal.icd10_display}^I10||{admit_ts[k]}|{'AF'[kind // 2]}")
            if kind == 2:
                others = [j for j in np.flatnonzero(diag_time[i] <= s.admit[k]).tolist() if j != s.reason[k]]
                for n_dx, j in enumerate(others, start=2):
                    c = C.CONDITIONS[j]
                    segs.append(f"DG1|{n_dx}||{c.icd10}^{c.icd10_display}^I10||{admit_ts[k]}|F")
        in1 = demo.in1(i)
        if in1:
            segs.append(in1)
        messages.append("\r".join(segs))
        keys.append("adt" if kind == 1 else "adt_dx")
    with RecordFile(ctx, f"hl7v2/adt-{pop.chunk:05d}.hl7", FORMAT, PROFILES, D.damage_hl7) as out:
        out.add(messages, keys)


_PANELS = ("bmp", "hba1c", "lipid")
_OBS_PANEL = np.array([_PANELS.index(C.OBS_PANEL[o.key]) if o.key in C.OBS_PANEL else -1 for o in C.OBSERVATIONS])
_RANGES = {
    "glucose": (70.0, 99.0), "glucose_si": (3.9, 5.5), "hba1c": (4.0, 5.6), "cholesterol": (0.0, 199.0),
}


def _write_oru(pop: Population, ctx: ChunkContext, strings: Strings, demo: _Demographics) -> None:
    e, o, p = pop.encounters, pop.observations, pop.patients
    rng = ctx.rng(2)
    lab = np.flatnonzero(_OBS_PANEL[o.code] >= 0)
    panel = _OBS_PANEL[o.code[lab]]
    order = np.lexsort((o.code[lab], panel, o.enc[lab]))
    lab, panel = lab[order], panel[order]
    encs, first, count = np.unique(o.enc[lab], return_index=True, return_counts=True)
    bounds = np.append(first, len(lab)).tolist()
    inpatient = e.cls[encs] == C.CLASS_INPATIENT
    collected = e.start[encs] + np.where(inpatient, 1800, 600)
    resulted = collected + np.where(inpatient, 3600, 1800) + rng.integers(0, 3 * 3600, len(encs))
    collect_ts, result_ts, start_ts = T.hl7_local(collected), T.hl7_local(resulted), T.hl7_local(e.start[encs])

    # OBX text after the set id, per lab result: value, units, reference range, flag, observation time.
    code = o.code[lab]
    value = o.value[lab]
    male = p.male[o.pat[lab]]
    low = np.array([_RANGES.get(ob.key, (0.0, 0.0))[0] for ob in C.OBSERVATIONS])[code]
    high = np.array([_RANGES.get(ob.key, (0.0, 0.0))[1] for ob in C.OBSERVATIONS])[code]
    creat = code == C.OBS["creatinine"]
    low = np.where(creat, np.where(male, 0.74, 0.59), low)
    high = np.where(creat, np.where(male, 1.35, 1.04), high)
    flag = np.where(value > high, "H", np.where(value < low, "L", "N")).tolist()
    ident = [f"|NM|{ob.loinc}^{ob.display}^LN||" for ob in C.OBSERVATIONS]
    unit = [f"|{ob.unit}^^UCUM|" for ob in C.OBSERVATIONS]
    obx_ts = np.repeat(np.array(collect_ts, dtype=object), count).tolist()
    obx = [
        f"{ident[c]}{v}{unit[c]}{lo:g}-{hi:g}|{f}|||F|||{t}"
        for c, v, lo, hi, f, t in zip(code.tolist(), map(str, value.tolist()), low.tolist(), high.tolist(), flag,
                                      obx_ts, strict=True)
    ]
    panel_list = panel.tolist()
    panel_text = [f"{C.LAB_PANELS[name][0]}^{C.LAB_PANELS[name][1]}^LN" for name in _PANELS]
    visits = strings.enc_visit[encs].tolist()
    pats = e.pat[encs].tolist()
    classes = [C.ENCOUNTER_TYPES[t].hl7_class for t in e.etype[encs].tolist()]
    ordering = [f"{pr.npi}^{pr.last.upper()}^{pr.first.upper()}" for pr in C.PROVIDERS]
    providers = e.provider[encs].tolist()

    messages: list[str] = []
    for m, j in enumerate(np.argsort(resulted, kind="stable").tolist()):
        visit, cts, rts = visits[j], collect_ts[j], result_ts[j]
        segs = [
            _msh("MEDSPARK-LAB", LAB_FACILITY, rts, "ORU^R01^ORU_R01", f"L{pop.chunk:06d}{m:07d}"),
            demo.pid(pats[j], visit),
            f"PV1|1|{classes[j]}|||||||||||||||||{visit}^^^MEDSPARK^VN{'|' * 25}{start_ts[j]}",
        ]
        n_panel = 0
        current = -1
        n_obs = 0
        for r in range(bounds[j], bounds[j + 1]):
            if panel_list[r] != current:
                current = panel_list[r]
                n_panel += 1
                n_obs = 0
                order_no = f"{visit}{n_panel:02d}"
                segs.append(f"ORC|RE|{order_no}^MEDSPARK-EHR|{order_no}^MEDSPARK-LAB||CM")
                segs.append(f"OBR|{n_panel}|{order_no}^MEDSPARK-EHR|{order_no}^MEDSPARK-LAB|{panel_text[current]}"
                            f"|||{cts}|||||||||{ordering[providers[j]]}||||||{rts}|||F")
            n_obs += 1
            segs.append(f"OBX|{n_obs}{obx[r]}")
        messages.append("\r".join(segs))
    with RecordFile(ctx, f"hl7v2/oru-{pop.chunk:05d}.mllp", FORMAT, PROFILES, D.damage_hl7,
                    prefix="\x0b", suffix="\x1c\r") as out:
        out.add(messages, "oru")
