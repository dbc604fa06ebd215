"""X12 005010 837 claims of the population: 837P for visits, 837I for inpatient stays.

One interchange per file (``x12-837/837p-<chunk>.x12`` and ``837i-<chunk>.x12``): ISA/GS, then one ST..SE
transaction per 100 claims (SE01 counts the segments from ST to SE), GE/IEA. Separators: element ``*``,
component ``:``, repetition ``^`` (ISA11), segment ``~`` (no line breaks). Loops: 1000A submitter, 1000B receiver,
2000A/2010AA billing provider, 2000B/2010BA subscriber (NM1*IL member id, N3/N4, DMG birth date and sex,
REF*SY SSN as nine digits), 2010BB payer, 2300 claim (CLM01 = the visit number, CLM02 = total charge, DTP, HI with
ICD-10-CM codes without the dot: ABK principal, ABF others), 2400 service lines (LX + SV1 ``HC:<CPT>`` or
SV2 revenue code + ``HC:<CPT/HCPCS>``). Only insured patients' encounters are billed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from medspark.synthetic import codes as C
from medspark.synthetic import defects as D
from medspark.synthetic import textfmt as T
from medspark.synthetic.population import Population, diagnosis_times
from medspark.synthetic.sink import ChunkContext, Strings, blocks, temp_path

FORMAT = "x12-837"
ENTITY = "x12_837_claims"
PROFILES = {"claim": D.Profile(ENTITY, (D.MISSING_IDENTIFIER, D.X12_BAD_CLAIM, D.UNKNOWN_CODE))}
CLAIMS_PER_TRANSACTION = 100
CREATED_DATE, CREATED_TIME = "20260101", "0200"  # fixed: the files are byte-identical across runs


def _icd(code: str) -> str:
    return code.replace(".", "")


class X12File:
    """One 837 interchange written atomically; claims are grouped into transactions of 100."""

    def __init__(self, ctx: ChunkContext, rel_path: str, institutional: bool) -> None:
        self.ctx = ctx
        self.rel_path = rel_path
        self.path = ctx.out_dir / rel_path
        self.tmp = temp_path(self.path)
        self.institutional = institutional
        self.version = "005010X223A2" if institutional else "005010X222A1"
        self.billing = C.X12_BILLING_INSTITUTIONAL if institutional else C.X12_BILLING_PROFESSIONAL
        self.control = ctx.chunk * 2 + (1 if institutional else 0) + 1
        self.injector = ctx.injector(FORMAT, rel_path, PROFILES, D.damage_x12)
        self.pending: list[list[str]] = []
        self.transactions = 0
        self.claims = 0
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()
        sender, receiver = C.X12_SUBMITTER[1], C.X12_RECEIVER[1]
        header = [
            f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{receiver:<15}*{CREATED_DATE[2:]}*{CREATED_TIME}*^*00501*"
            f"{self.control:09d}*0*P*:",
            f"GS*HC*{sender}*{receiver}*{CREATED_DATE}*{CREATED_TIME}*{self.control}*X*{self.version}",
        ]
        self._emit(header)

    def _emit(self, segments: Sequence[str]) -> None:
        self.handle.write(("~".join(segments) + "~").encode(D.ENCODING, D.ERRORS))

    def add(self, claims: list[list[str]]) -> None:
        """Queue claims (lists of segments of loop 2000B onwards, without the HL segment)."""
        out, _ = self.injector.process(claims, ["claim"] * len(claims))
        self.pending.extend(out)
        while len(self.pending) >= CLAIMS_PER_TRANSACTION:
            self._transaction(self.pending[:CLAIMS_PER_TRANSACTION])
            self.pending = self.pending[CLAIMS_PER_TRANSACTION:]

    def _transaction(self, claims: list[list[str]]) -> None:
        self.transactions += 1
        st = f"{self.transactions:04d}"
        name, npi, taxonomy, ein, street, city, zip_ = self.billing
        segs = [
            f"ST*837*{st}*{self.version}",
            f"BHT*0019*00*{self.control}{st}*{CREATED_DATE}*{CREATED_TIME}*CH",
            f"NM1*41*2*{C.X12_SUBMITTER[0]}*****46*{C.X12_SUBMITTER[1]}",
            "PER*IC*EDI SUPPORT*TE*6175550100",
            f"NM1*40*2*{C.X12_RECEIVER[0]}*****46*{C.X12_RECEIVER[1]}",
            "HL*1**20*1",
            f"PRV*BI*PXC*{taxonomy}",
            f"NM1*85*2*{name}*****XX*{npi}",
            f"N3*{street}",
            f"N4*{city.upper()}*MA*{zip_}",
            f"REF*EI*{ein}",
        ]
        for hl, claim in enumerate(claims, start=2):
            segs.append(f"HL*{hl}*1*22*0")
            segs.extend(claim)
        segs.append(f"SE*{len(segs) + 1}*{st}")
        self._emit(segs)
        self.claims += len(claims)

    def close(self) -> bool:
        """Flush the last transaction and the trailers; rename into place (or drop the file when empty)."""
        tail, _ = self.injector.finish()  # no end-of-file copies for claims today; kept for completeness
        self.pending.extend(tail)
        if self.pending:
            self._transaction(self.pending)
            self.pending = []
        if self.claims == 0:
            self.handle.close()
            self.tmp.unlink()
            return False
        self._emit([f"GE*{self.transactions}*{self.control}", f"IEA*1*{self.control:09d}"])
        self.handle.close()
        os.replace(self.tmp, self.path)
        self.ctx.count(FORMAT, self.rel_path, [ENTITY] * self.claims)
        self.ctx.add_events(self.injector)
        return True


def write(pop: Population, ctx: ChunkContext, strings: Strings) -> None:
    """Write the 837P and 837I files of one chunk."""
    p, e, r = pop.patients, pop.encounters, pop.procedures
    diag_time = diagnosis_times(pop)
    dob = T.compact_date(p.birth_day)
    insured = p.payer != C.PAYER_NONE
    subscribers: dict[tuple[int, bool], list[str]] = {}
    icd = [_icd(c.icd10) for c in C.CONDITIONS]
    prof = X12File(ctx, f"x12-837/837p-{pop.chunk:05d}.x12", institutional=False)
    inst = X12File(ctx, f"x12-837/837i-{pop.chunk:05d}.x12", institutional=True)
    try:
        for a, b in blocks(pop.n):
            rows = np.arange(e.offsets[a], e.offsets[b])
            rows = rows[insured[e.pat[rows]]]
            if not len(rows):
                continue
            proc_rows = np.arange(r.offsets[a], r.offsets[b])
            procs: dict[int, list[int]] = {}
            for pr, enc in zip(proc_rows.tolist(), r.enc[proc_rows].tolist(), strict=True):
                procs.setdefault(enc, []).append(pr)
            date, time = T.local_parts(e.start[rows])
            end_date, end_time = T.local_parts(e.stop[rows])
            visit = strings.enc_visit[rows].tolist()
            pats = e.pat[rows]
            known = (diag_time[pats] <= e.start[rows][:, None]).tolist()
            age = (e.start[rows] // T.DAY - p.birth_day[pats]) / 365.2425
            routine = np.where(age < 18, _icd(C.ICD_ROUTINE_CHILD), _icd(C.ICD_ROUTINE_ADULT)).tolist()
            p_claims: list[list[str]] = []
            i_claims: list[list[str]] = []
            for j, (row, i, reason, inpatient) in enumerate(zip(
                    rows.tolist(), pats.tolist(), e.reason[rows].tolist(),
                    (e.cls[rows] == C.CLASS_INPATIENT).tolist(), strict=True)):
                sub = subscribers.get((i, inpatient))
                if sub is None:
                    sub = subscribers[(i, inpatient)] = _subscriber(pop, i, dob[i], inpatient)
                dx = [icd[reason] if reason >= 0 else routine[j]]
                dx += [icd[k] for k, flag in enumerate(known[j]) if flag and k != reason][:7]
                if inpatient:
                    i_claims.append(sub + _institutional(pop, row, visit[j], date[j], time[j], end_date[j],
                                                         end_time[j], dx, procs.get(row, [])))
                else:
                    p_claims.append(sub + _professional(pop, row, visit[j], date[j], dx, procs.get(row, [])))
            prof.add(p_claims)
            inst.add(i_claims)
    finally:
        prof.close()
        inst.close()


def _subscriber(pop: Population, i: int, dob: str, institutional: bool) -> list[str]:
    p = pop.patients
    payer = C.PAYERS[p.payer[i]]
    city = C.CITIES[p.city[i]]
    filing = payer.filing_837i if institutional else payer.filing_837p
    return [
        f"SBR*P*18*******{filing}",
        f"NM1*IL*1*{_ascii(p.last[i])}*{_ascii(p.first[i])}****MI*{p.member_id[i]}",
        f"N3*{_ascii(p.street[i])}",
        f"N4*{city[0].upper()}*MA*{city[2]}",
        f"DMG*D8*{dob}*{'M' if p.male[i] else 'F'}",
        f"REF*SY*{p.ssn[i].replace('-', '')}",
        f"NM1*PR*2*{payer.name.upper()}*****PI*{payer.payer_id}",
    ]


_ASCII = str.maketrans("ÁÉÍÓÚÑÜËÏÖÀÈÂÊÎÔÛÇ", "AEIOUNUEIOAEAEIOUC")


def _ascii(text: str) -> str:
    """X12 basic character set: upper case, accents removed."""
    return text.upper().translate(_ASCII)


_RENDERING = [f"NM1*82*1*{_ascii(pr.last)}*{_ascii(pr.first)}****XX*{pr.npi}" for pr in C.PROVIDERS]
_ATTENDING = [f"NM1*71*1*{_ascii(pr.last)}*{_ascii(pr.first)}****XX*{pr.npi}" for pr in C.PROVIDERS]


def _sv1(cpt: str, charge: float) -> str:
    return f"SV1*HC:{cpt}*{charge:.2f}*UN*1***1"


_SV1_EM = [_sv1(code, charge) for code, charge in C.EM_CODES]
_SV1_PROC = [_sv1(pr.cpt, pr.charge) for pr in C.PROCEDURES]
_SV1_LAB = {name: _sv1(cpt, charge) for name, (_, _, cpt, charge) in C.LAB_PANELS.items()}
_SV1_VENIPUNCTURE = _sv1(*C.VENIPUNCTURE)
_SV2_PROC = [f"SV2*{pr.revenue}*HC:{pr.cpt}*{pr.charge:.2f}*UN*1" for pr in C.PROCEDURES]
_SV2_LAB = {name: f"SV2*{C.LAB_REVENUE}*HC:{cpt}*{charge:.2f}*UN*1"
            for name, (_, _, cpt, charge) in C.LAB_PANELS.items()}
_SV2_ED = f"SV2*{C.ED_FACILITY[0]}*HC:{C.ED_FACILITY[1]}*{C.ED_FACILITY[2]:.2f}*UN*1"


def _labs(pop: Population, row: int) -> list[str]:
    e = pop.encounters
    return [name for name, ordered in (("bmp", e.bmp[row]), ("hba1c", e.hba1c[row]), ("lipid", e.lipid[row]))
            if ordered]


def _professional(pop: Population, row: int, visit: str, date: str, dx: list[str], procs: list[int]) -> list[str]:
    e, r = pop.encounters, pop.procedures
    etype = C.ENCOUNTER_TYPES[e.etype[row]]
    lines = [_SV1_EM[e.em[row]]]
    lines += [_SV1_PROC[r.code[pr]] for pr in procs]
    labs = _labs(pop, row)
    if labs:
        lines += [_SV1_LAB[name] for name in labs]
        lines.append(_SV1_VENIPUNCTURE)
    segs = [
        f"CLM*{visit}*{e.total[row]:.2f}***{etype.place_of_service}:B:1*Y*A*Y*Y",
        f"DTP*431*D8*{date}",
        "HI*ABK:" + "*ABF:".join(dx),
        _RENDERING[e.provider[row]],
    ]
    service_date = f"DTP*472*D8*{date}"
    for n, line in enumerate(lines, start=1):
        segs += [f"LX*{n}", line, service_date]
    return segs


def _institutional(pop: Population, row: int, visit: str, date: str, time: str, end_date: str, end_time: str,
                   dx: list[str], procs: list[int]) -> list[str]:
    e, r, s = pop.encounters, pop.procedures, pop.stays
    k = int(e.stay[row])
    days = max(1, round(float(s.los_days[k])))
    lines = [
        f"SV2*{C.ROOM_AND_BOARD[0]}**{days * C.ROOM_AND_BOARD[1]:.2f}*DA*{days}",
        f"SV2*{C.PHARMACY[0]}**{days * C.PHARMACY[1]:.2f}*UN*{days}",
    ]
    if s.via_ed[k]:
        lines.append(_SV2_ED)
    lines += [_SV2_LAB[name] for name in _labs(pop, row)]
    lines += [_SV2_PROC[r.code[pr]] for pr in procs]
    status = ("01", "06", "03")[s.disposition[k]]
    segs = [
        f"CLM*{visit}*{e.total[row]:.2f}***11:A:1**A*Y*Y",
        f"DTP*096*TM*{end_time}",
        f"DTP*434*RD8*{date}-{end_date}",
        f"DTP*435*DT*{date}{time}",
        f"CL1*{'1' if s.via_ed[k] else '3'}*{'7' if s.via_ed[k] else '1'}*{status}",
        f"HI*ABK:{dx[0]}",
    ]
    if len(dx) > 1:
        segs.append("HI*ABF:" + "*ABF:".join(dx[1:]))
    segs.append(_ATTENDING[e.provider[row]])
    for n, line in enumerate(lines, start=1):
        segs += [f"LX*{n}", line]
    return segs
