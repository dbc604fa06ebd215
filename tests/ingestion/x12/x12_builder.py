"""Builds small X12 837 texts for the x12 tests.

Segments are written with the default separators (element ``*``, component ``:``, repetition ``^``) and
:func:`render` translates them to the separators a test asks for. The envelope helpers count segments, sets and
groups themselves, so a test only breaks what it means to break (by editing the segment list before rendering).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PROFESSIONAL = "005010X222A1"
INSTITUTIONAL = "005010X223A2"


def isa(control: str = "000000001") -> str:
    """A fixed-width ISA segment (106 characters once terminated) with ISA-11 ``^`` and ISA-16 ``:``."""
    return "*".join(
        ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SUBMITTER01".ljust(15), "ZZ", "RECEIVER01".ljust(15),
         "240115", "0930", "^", "00501", control, "0", "T", ":"]
    )


def transaction_set(body: Sequence[str], *, control: str = "0001", convention: str = PROFESSIONAL) -> list[str]:
    """ST .. SE around ``body``, SE-01 counting ST and SE."""
    return [f"ST*837*{control}*{convention}", *body, f"SE*{len(body) + 2}*{control}"]


def functional_group(
    sets: Sequence[Sequence[str]], *, control: str = "1", convention: str = PROFESSIONAL
) -> list[str]:
    """GS .. GE around transaction sets."""
    return [
        f"GS*HC*SENDER01*RECEIVER01*20240115*0930*{control}*X*{convention}",
        *(segment for set_segments in sets for segment in set_segments),
        f"GE*{len(sets)}*{control}",
    ]


def interchange(groups: Sequence[Sequence[str]], *, control: str = "000000001") -> list[str]:
    """ISA .. IEA around functional groups."""
    return [isa(control), *(segment for group in groups for segment in group), f"IEA*{len(groups)}*{control}"]


def render(
    segments: Iterable[str],
    *,
    element: str = "*",
    component: str = ":",
    repetition: str = "^",
    terminator: str = "~",
    line_break: str = "",
) -> str:
    """The text of ``segments`` with the given separators; ``line_break`` is written after each terminator."""
    table = str.maketrans({"*": element, ":": component, "^": repetition})
    return "".join(segment.translate(table) + terminator + line_break for segment in segments)


def header() -> list[str]:
    """BHT and the submitter (1000A) and receiver (1000B) loops."""
    return [
        "BHT*0019*00*BATCH0001*20240115*0930*CH",
        "NM1*41*2*NORTHWIND CLEARING*****46*S123456",
        "PER*IC*EDI DESK*TE*5555550100",
        "NM1*40*2*ACME HEALTH PLAN*****46*R654321",
    ]


def billing_provider(hl: str = "1", *, npi: str = "1245319599", name: str = "VALLEY FAMILY CLINIC") -> list[str]:
    """Loop 2000A with 2010AA."""
    return [
        f"HL*{hl}**20*1",
        "PRV*BI*PXC*207Q00000X",
        f"NM1*85*2*{name}*****XX*{npi}",
        "N3*100 MAIN ST",
        "N4*SPRINGFIELD*MA*01103",
        "REF*EI*123456789",
    ]


def subscriber(
    hl: str = "2",
    parent: str = "1",
    *,
    member_id: str = "MBR1001",
    last: str = "DOE",
    first: str = "JANE",
    birth: str = "19800115",
    sex: str = "F",
    ssn: str | None = None,
    payer: str = "ACME HEALTH PLAN",
    payer_id: str = "ACME01",
    has_patient: bool = False,
) -> list[str]:
    """Loop 2000B with 2010BA (subscriber) and 2010BB (payer); ``member_id=""`` leaves NM109 out."""
    name = f"NM1*IL*1*{last}*{first}****MI*{member_id}" if member_id else f"NM1*IL*1*{last}*{first}"
    return [
        f"HL*{hl}*{parent}*22*{1 if has_patient else 0}",
        f"SBR*P*{'' if has_patient else '18'}*GRP100******CI",
        name,
        "N3*12 ELM ST",
        "N4*SPRINGFIELD*MA*01104",
        f"DMG*D8*{birth}*{sex}",
        *([f"REF*SY*{ssn}"] if ssn else []),
        f"NM1*PR*2*{payer}*****PI*{payer_id}",
    ]


def patient(
    hl: str = "3",
    parent: str = "2",
    *,
    last: str = "DOE",
    first: str = "TIM",
    birth: str = "20150310",
    sex: str = "M",
    relationship: str = "19",
) -> list[str]:
    """Loop 2000C with 2010CA."""
    return [
        f"HL*{hl}*{parent}*23*0",
        f"PAT*{relationship}",
        f"NM1*QC*1*{last}*{first}",
        "N3*12 ELM ST",
        "N4*SPRINGFIELD*MA*01104",
        f"DMG*D8*{birth}*{sex}",
    ]


def professional_claim(
    claim_id: str = "PC1",
    charge: str = "100",
    *,
    place: str = "11",
    frequency: str = "1",
    diagnoses: Sequence[str] = ("J020",),
    lines: Sequence[tuple[str, str, str, str]] = (("99213", "100", "1", "20240110"),),
) -> list[str]:
    """Loop 2300 (CLM, HI) and one 2400 per ``(procedure, charge, units, date)`` line."""
    segments = [f"CLM*{claim_id}*{charge}***{place}:B:{frequency}*Y*A*Y*Y", "REF*D9*TRACE" + claim_id]
    if diagnoses:
        codes = [("ABK:" if index == 0 else "ABF:") + code for index, code in enumerate(diagnoses)]
        segments.append("HI*" + "*".join(codes))
    for number, (procedure, amount, units, day) in enumerate(lines, start=1):
        segments += [f"LX*{number}", f"SV1*HC:{procedure}*{amount}*UN*{units}***1", f"DTP*472*D8*{day}"]
    return segments


def institutional_claim(
    claim_id: str = "IC1",
    charge: str = "1500",
    *,
    bill_type: str = "13",
    frequency: str = "1",
    statement: str = "20240105-20240107",
    admission: str = "202401050830",
    diagnoses: Sequence[str] = ("ABK:I10", "ABJ:R079", "ABF:E119"),
    lines: Sequence[tuple[str, str, str, str, str]] = (("0450", "HC:99284", "1500", "1", "20240105"),),
) -> list[str]:
    """Loop 2300 (CLM, DTP 434/435, CL1, HI) and one 2400 per ``(revenue, procedure, charge, units, date)``."""
    segments = [
        f"CLM*{claim_id}*{charge}***{bill_type}:A:{frequency}**A*Y*Y",
        f"DTP*434*RD8*{statement}",
        f"DTP*435*DT*{admission}",
        "CL1*1*7*01",
        "HI*" + "*".join(diagnoses),
    ]
    for number, (revenue, procedure, amount, units, day) in enumerate(lines, start=1):
        segments += [f"LX*{number}", f"SV2*{revenue}*{procedure}*{amount}*UN*{units}", f"DTP*472*D8*{day}"]
    return segments


def professional_file(*claim_loops: Sequence[str], control: str = "000000001") -> list[str]:
    """One interchange, group and 837P transaction set: header, billing provider, subscriber, then ``claim_loops``
    (each already holding its HL segments if it needs others than the default subscriber)."""
    body = header() + billing_provider() + subscriber()
    for loop in claim_loops:
        body += list(loop)
    return interchange([functional_group([transaction_set(body)])], control=control)
