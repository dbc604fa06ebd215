"""The pure-Python 837 reader: loops, envelopes, separators, dates and quarantine reasons, without Spark."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from x12_builder import (
    INSTITUTIONAL,
    billing_provider,
    functional_group,
    header,
    institutional_claim,
    interchange,
    patient,
    professional_claim,
    professional_file,
    render,
    subscriber,
    transaction_set,
)

from medspark.ingestion.x12 import claims as claims_module
from medspark.ingestion.x12.claims import (
    Diagnosis,
    Separators,
    ServiceLine,
    X12Claim,
    iter_claims,
    parse_claims,
    read_separators,
    settled_reason,
)

DATA = Path(__file__).parent / "data"

SUMMARY = ("position", "reason", "claim_id", "subscriber_member_id")


def summary(claims: list[X12Claim], names: tuple[str, ...] = SUMMARY) -> list[tuple[object, ...]]:
    return [tuple(getattr(claim, name) for name in names) for claim in claims]


def read(segments: list[str], **separators: str) -> list[X12Claim]:
    return parse_claims(render(segments, **separators).encode())


# -- the hand-written samples ----------------------------------------------------------------------------------


def test_professional_sample_reads_subscriber_dependent_and_lines() -> None:
    claims = parse_claims((DATA / "837p-riverside.x12").read_bytes())

    assert summary(claims, ("position", "reason", "transaction_type", "claim_id", "total_charge")) == [
        (1, None, "837P", "RFM24031501", Decimal("185.00")),
        (2, None, "837P", "RFM24031802", Decimal("260.00")),
    ]
    first, second = claims
    assert (first.interchange_control_number, first.group_control_number, first.transaction_set_control_number) == (
        "000004711", "4711", "0021")
    assert (first.billing_provider_npi, first.billing_provider_name) == ("1437156722", "RIVERSIDE FAMILY MEDICINE")
    assert (first.subscriber_member_id, first.subscriber_last_name, first.subscriber_first_name,
            first.subscriber_birth_date, first.subscriber_sex, first.subscriber_ssn) == (
        "BHP778812301", "GARCIA", "ELENA", date(1977, 4, 12), "F", "900112222")
    assert (first.payer_name, first.payer_id) == ("BAYSTATE HEALTH PLAN", "BHP01")
    assert (first.patient_last_name, first.patient_birth_date) == (None, None)
    assert (first.place_of_service, first.facility_type_code, first.claim_frequency) == ("11", None, "1")
    assert first.diagnoses == [Diagnosis("ABK", "J0190"), Diagnosis("ABF", "R509")]
    assert first.principal_diagnosis == "J0190"
    assert first.service_lines == [
        ServiceLine(1, "HC", "99213", ["25"], None, Decimal("135.00"), "UN", 1.0, date(2024, 3, 15)),
        ServiceLine(2, "HC", "87880", ["QW"], None, Decimal("50.00"), "UN", 1.0, date(2024, 3, 15)),
    ]
    assert (first.service_date_from, first.service_date_to) == (date(2024, 3, 15), date(2024, 3, 15))
    # The second claim is a dependent's (2000C); the NM1*IL of its 2330A other-subscriber loop is not the subscriber.
    assert (second.subscriber_member_id, second.subscriber_first_name, second.subscriber_ssn) == (
        "BHP554400102", "DANIEL", None)
    assert (second.patient_relationship_code, second.patient_last_name, second.patient_first_name,
            second.patient_birth_date, second.patient_sex) == ("19", "OKAFOR", "AMARA", date(2016, 7, 4), "F")
    assert second.payer_id == "BHP01"


def test_institutional_sample_reads_statement_admission_and_revenue_lines() -> None:
    claims = parse_claims((DATA / "837i-mercy.x12").read_bytes())

    assert summary(claims, ("position", "reason", "transaction_type", "claim_id", "facility_type_code")) == [
        (1, None, "837I", "MGH2403020117", "11"),
        (2, None, "837I", "MGH2403100442", "13"),
    ]
    inpatient, outpatient = claims
    assert inpatient.total_charge == Decimal("8450.75")
    assert inpatient.place_of_service is None
    assert (inpatient.service_date_from, inpatient.service_date_to, inpatient.admission_date) == (
        date(2024, 3, 2), date(2024, 3, 5), date(2024, 3, 2))
    # Occurrence (BH) and value (BE) codes share HI but are not diagnoses.
    assert inpatient.diagnoses == [
        Diagnosis("ABK", "J189"), Diagnosis("ABJ", "R0602"), Diagnosis("ABF", "E119"), Diagnosis("ABF", "I10"),
        Diagnosis("ABF", "Z7984"),
    ]
    assert inpatient.service_lines == [
        ServiceLine(1, None, None, [], "0120", Decimal("3600.00"), "DA", 3.0, date(2024, 3, 2)),
        ServiceLine(2, None, None, [], "0250", Decimal("450.75"), "UN", 12.0, date(2024, 3, 2)),
        ServiceLine(3, "HC", "85025", [], "0300", Decimal("120.00"), "UN", 1.0, date(2024, 3, 3)),
        ServiceLine(4, "HC", "99285", ["25"], "0450", Decimal("4280.00"), "UN", 1.0, date(2024, 3, 2)),
    ]
    assert (outpatient.subscriber_member_id, outpatient.patient_first_name, outpatient.patient_relationship_code) == (
        "XQB901223344", "GIULIA", "01")
    assert (outpatient.service_date_from, outpatient.service_date_to, outpatient.admission_date) == (
        date(2024, 3, 10), date(2024, 3, 10), None)
    assert outpatient.principal_diagnosis == "S52501A"


# -- raw text --------------------------------------------------------------------------------------------------


def test_raw_holds_the_enclosing_hl_loops_then_the_claim_segments() -> None:
    segments = professional_file(
        professional_claim("PC1", "100", lines=[("99213", "100", "1", "20240110")]),
        professional_claim("PC2", "40", diagnoses=(), lines=[("36415", "40", "1", "20240111")]),
    )

    claims = read(segments, line_break="\r\n")

    assert claims[1].raw == (
        "HL*1**20*1~PRV*BI*PXC*207Q00000X~NM1*85*2*VALLEY FAMILY CLINIC*****XX*1245319599~N3*100 MAIN ST~"
        "N4*SPRINGFIELD*MA*01103~REF*EI*123456789~"
        "HL*2*1*22*0~SBR*P*18*GRP100******CI~NM1*IL*1*DOE*JANE****MI*MBR1001~N3*12 ELM ST~"
        "N4*SPRINGFIELD*MA*01104~DMG*D8*19800115*F~NM1*PR*2*ACME HEALTH PLAN*****PI*ACME01~"
        "CLM*PC2*40***11:B:1*Y*A*Y*Y~REF*D9*TRACEPC2~LX*1~SV1*HC:36415*40*UN*1***1~DTP*472*D8*20240111~"
    )


def test_raw_of_a_claim_is_enough_to_read_it_alone() -> None:
    claims = read(professional_file(professional_claim("PC1"), professional_claim("PC2", "75")))

    body = claims[1].raw.rstrip("~").split("~")
    alone = read(interchange([functional_group([transaction_set(body)])]))

    assert summary(alone, ("position", "reason", "claim_id", "total_charge", "subscriber_member_id",
                           "billing_provider_npi")) == [(1, None, "PC2", Decimal("75.00"), "MBR1001", "1245319599")]


# -- separators and envelopes ----------------------------------------------------------------------------------


def test_read_separators_takes_them_from_the_isa_segment() -> None:
    text = render(professional_file(professional_claim()), element="|", component=">", repetition="}",
                  terminator="\n")

    assert read_separators(text) == Separators(element="|", repetition="}", component=">", segment="\n")


def test_read_separators_accepts_an_unpadded_isa_and_rejects_a_short_one() -> None:
    unpadded = "ISA*00**00**ZZ*S1*ZZ*R1*240115*0930*^*00501*000000007*0*T*:~GS*HC~"
    short = "ISA*00**00**ZZ*S1*ZZ*R1*240115*0930~GS*HC~"
    version_4010 = "ISA*00**00**ZZ*S1*ZZ*R1*240115*0930*U*00401*000000007*0*T*>~GS*HC~"

    assert read_separators(unpadded) == Separators("*", "^", ":", "~")
    assert read_separators(short) is None
    assert read_separators(version_4010) == Separators("*", None, ">", "~")


@pytest.mark.parametrize(
    "separators",
    [
        {"element": "|", "component": ">", "repetition": "}", "terminator": "\n"},
        {"element": "^", "component": "\\", "repetition": "{", "terminator": "'", "line_break": "\r\n"},
        {"element": "*", "component": ":", "repetition": "^", "terminator": "~", "line_break": "\n"},
    ],
    ids=["pipe-newline", "caret-quote-crlf", "default-with-newlines"],
)
def test_claims_read_the_same_with_any_separators(separators: dict[str, str]) -> None:
    segments = professional_file(
        professional_claim("PC1", "125.5", place="22", frequency="7", diagnoses=("J020", "R05"),
                           lines=[("99214:25:59", "125.5", "1", "20240110")]),
    )

    claims = read(segments, **separators)

    assert summary(claims, ("position", "reason", "claim_id", "total_charge", "place_of_service",
                            "claim_frequency", "principal_diagnosis", "interchange_control_number")) == [
        (1, None, "PC1", Decimal("125.50"), "22", "7", "J020", "000000001")
    ]
    assert claims[0].diagnoses == [Diagnosis("ABK", "J020"), Diagnosis("ABF", "R05")]
    assert claims[0].service_lines == [
        ServiceLine(1, "HC", "99214", ["25", "59"], None, Decimal("125.50"), "UN", 1.0, date(2024, 1, 10))
    ]


def test_several_transaction_sets_groups_and_interchanges_number_claims_in_file_order() -> None:
    def claim_set(control: str, *claim_ids: str) -> list[str]:
        body = header() + billing_provider() + subscriber()
        for claim_id in claim_ids:
            body += professional_claim(claim_id)
        return transaction_set(body, control=control)

    first = interchange(
        [functional_group([claim_set("0001", "A1", "A2"), claim_set("0002", "B1")], control="11"),
         functional_group([claim_set("0003", "C1")], control="12")],
        control="000000101",
    )
    second = interchange([functional_group([claim_set("0001", "D1")], control="21")], control="000000102")

    claims = parse_claims((render(first) + render(second, element="|", terminator="\n")).encode())

    assert summary(claims, ("position", "reason", "claim_id", "interchange_control_number",
                            "group_control_number", "transaction_set_control_number")) == [
        (1, None, "A1", "000000101", "11", "0001"),
        (2, None, "A2", "000000101", "11", "0001"),
        (3, None, "B1", "000000101", "11", "0002"),
        (4, None, "C1", "000000101", "12", "0003"),
        (5, None, "D1", "000000102", "21", "0001"),
    ]


@pytest.mark.parametrize("window", [1, 5, 64])
def test_segments_split_across_read_windows_read_the_same(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims_module, "_WINDOW", window)
    first = professional_file(professional_claim("A1"), professional_claim("A2"), control="000000201")
    second = professional_file(professional_claim("B1"), control="000000202")
    text = render(first, line_break="\r\n") + render(second, element="|", component=">", terminator="\n")

    claims = parse_claims(text.encode())

    assert summary(claims, ("position", "reason", "claim_id", "interchange_control_number", "total_charge")) == [
        (1, None, "A1", "000000201", Decimal("100.00")),
        (2, None, "A2", "000000201", Decimal("100.00")),
        (3, None, "B1", "000000202", Decimal("100.00")),
    ]
    assert claims[2].raw.startswith("HL|1||20|1\n")


def test_iter_claims_yields_own_reasons_that_settle_once_the_file_is_read() -> None:
    segments = professional_file(professional_claim("C1"), professional_claim("C2", "12X"))[:-1]  # no IEA

    claims = list(iter_claims(render(segments).encode()))

    assert [(claim.claim_id, claim.reason) for claim in claims] == [("C1", None), ("C2", "x12_bad_claim")]
    assert [settled_reason(claim) for claim in claims] == ["x12_bad_envelope:IEA", "x12_bad_envelope:IEA"]


def test_bom_and_leading_whitespace_before_isa_are_skipped() -> None:
    text = "\ufeff \r\n" + render(professional_file(professional_claim()), line_break="\n")

    assert summary(parse_claims(text.encode())) == [(1, None, "PC1", "MBR1001")]


# -- loops -----------------------------------------------------------------------------------------------------


def test_patient_loop_2000c_gives_patient_columns_and_subscriber_from_its_parent() -> None:
    body = (header() + billing_provider() + subscriber(member_id="MBR2002", first="ROSA", has_patient=True)
            + patient(first="LEO", birth="20170809", sex="M", relationship="19") + professional_claim("DEP1")
            + subscriber("4", "1", member_id="MBR3003", first="ANA") + professional_claim("SELF1"))

    claims = read(interchange([functional_group([transaction_set(body)])]))

    assert summary(claims, ("claim_id", "subscriber_member_id", "subscriber_first_name", "patient_relationship_code",
                            "patient_last_name", "patient_first_name", "patient_birth_date", "patient_sex")) == [
        ("DEP1", "MBR2002", "ROSA", "19", "DOE", "LEO", date(2017, 8, 9), "M"),
        ("SELF1", "MBR3003", "ANA", None, None, None, None, None),
    ]


def test_institutional_claim_from_the_builder() -> None:
    body = header() + billing_provider(name="CITY HOSPITAL") + subscriber() + institutional_claim(
        "IC9", "2000.10", bill_type="11", frequency="7", statement="20240105-20240109", admission="202401051730",
        diagnoses=("BK:4019", "BJ:7865", "BF:25000"),
        lines=[("0450", "HC:99284:25", "1500", "1", "20240105"), ("0250", "", "500.10", "4", "20240106")],
    )

    claims = read(interchange([functional_group([transaction_set(body, convention=INSTITUTIONAL)],
                                                convention=INSTITUTIONAL)]))

    (claim,) = claims
    assert (claim.reason, claim.transaction_type, claim.facility_type_code, claim.place_of_service,
            claim.claim_frequency, claim.total_charge) == (None, "837I", "11", None, "7", Decimal("2000.10"))
    assert (claim.service_date_from, claim.service_date_to, claim.admission_date) == (
        date(2024, 1, 5), date(2024, 1, 9), date(2024, 1, 5))
    # ICD-9 qualifiers (BK/BJ/BF) are diagnoses too.
    assert claim.diagnoses == [Diagnosis("BK", "4019"), Diagnosis("BJ", "7865"), Diagnosis("BF", "25000")]
    assert claim.principal_diagnosis == "4019"
    assert claim.service_lines == [
        ServiceLine(1, "HC", "99284", ["25"], "0450", Decimal("1500.00"), "UN", 1.0, date(2024, 1, 5)),
        ServiceLine(2, None, None, [], "0250", Decimal("500.10"), "UN", 4.0, date(2024, 1, 6)),
    ]


def test_claim_level_service_period_wins_over_line_dates() -> None:
    claim = professional_claim("PC1", lines=[("99213", "50", "1", "20240110"), ("99213", "50", "1", "20240112")])
    claim.insert(1, "DTP*472*RD8*20240101-20240131")

    (read_claim,) = read(professional_file(claim))

    assert (read_claim.service_date_from, read_claim.service_date_to) == (date(2024, 1, 1), date(2024, 1, 31))


# -- quarantine ------------------------------------------------------------------------------------------------


def test_se_count_mismatch_quarantines_every_claim_of_that_set_only() -> None:
    good = transaction_set(header() + billing_provider() + subscriber() + professional_claim("G1"), control="0001")
    bad = transaction_set(header() + billing_provider() + subscriber() + professional_claim("B1")
                          + professional_claim("B2"), control="0002")
    bad[-1] = "SE*99*0002"

    claims = read(interchange([functional_group([good, bad])]))

    assert summary(claims) == [
        (1, None, "G1", "MBR1001"),
        (2, "x12_bad_envelope:SE01", "B1", "MBR1001"),
        (3, "x12_bad_envelope:SE01", "B2", "MBR1001"),
    ]


def test_st_se_control_number_mismatch_is_a_bad_envelope() -> None:
    tset = transaction_set(header() + billing_provider() + subscriber() + professional_claim("C1"), control="0007")
    tset[-1] = tset[-1].replace("*0007", "*0008")

    assert summary(read(interchange([functional_group([tset])]))) == [(1, "x12_bad_envelope:SE02", "C1", "MBR1001")]


def test_group_and_interchange_trailer_errors_reach_their_claims() -> None:
    wrong_ge = professional_file(professional_claim("C1"))
    wrong_ge[-2] = "GE*5*1"
    truncated = professional_file(professional_claim("C2"))[:-1]  # no IEA

    assert summary(read(wrong_ge)) == [(1, "x12_bad_envelope:GE01", "C1", "MBR1001")]
    assert summary(read(truncated)) == [(1, "x12_bad_envelope:IEA", "C2", "MBR1001")]


def test_truncated_transaction_set_quarantines_its_open_claim() -> None:
    segments = professional_file(professional_claim("C1"))[:-4]  # cut inside the last service line

    assert summary(read(segments)) == [(1, "x12_bad_envelope:SE", "C1", "MBR1001")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("GS*HC*A*B*20240115*0930*1*X*005010X222A1~ST*837*0001~CLM*C1*10~SE*3*0001~", "x12_bad_envelope:ISA"),
        ("ISA*00*          *00*~GS*HC~", "x12_bad_envelope:ISA"),
        ("ISA*00**00**ZZ*S*ZZ*R*240115*0930*^*00501*000000001*0*T*:~GS*HC*A*B*20240115*0930*1*X*005010X222A1~"
         "ST*835*0001~BPR*I~SE*3*0001~GE*1*1~IEA*1*000000001~", "x12_bad_envelope:ST01"),
        ("ISA*00**00**ZZ*S*ZZ*R*240115*0930*^*00501*000000001*0*T*:~GS*HC*A*B*20240115*0930*1*X*005010X222A1~"
         "ST*837*0001~BHT*0019~SE*3*0001~GE*1*1~IEA*1*000000001~", "empty_file"),
        (" \r\n", "empty_file"),
    ],
    ids=["no-isa", "malformed-isa", "not-837", "valid-without-claims", "blank"],
)
def test_a_file_without_claims_is_one_position_zero_record(text: str, reason: str) -> None:
    (record,) = parse_claims(text.encode())

    assert (record.position, record.reason, record.raw, record.claim_id) == (0, reason, text, None)


def test_subscriber_without_member_id_is_missing_identifier() -> None:
    body = header() + billing_provider() + subscriber(member_id="") + professional_claim("C1")

    (claim,) = read(interchange([functional_group([transaction_set(body)])]))

    assert (claim.reason, claim.subscriber_member_id, claim.subscriber_last_name) == (
        "missing_identifier", None, "DOE")


@pytest.mark.parametrize(
    ("clm", "claim_id", "total_charge"),
    [
        ("CLM*C1****11:B:1*Y*A*Y*Y", "C1", None),
        ("CLM*C1*12O.00***11:B:1*Y*A*Y*Y", "C1", None),
        ("CLM**100***11:B:1*Y*A*Y*Y", None, Decimal("100.00")),
    ],
    ids=["no-charge", "charge-not-a-number", "no-claim-id"],
)
def test_clm_without_id_or_numeric_charge_is_a_bad_claim(
    clm: str, claim_id: str | None, total_charge: Decimal | None
) -> None:
    claim_loop = professional_claim("C1")
    claim_loop[0] = clm

    (claim,) = read(professional_file(claim_loop))

    assert (claim.reason, claim.claim_id, claim.total_charge) == ("x12_bad_claim", claim_id, total_charge)


def test_bad_claim_comes_before_missing_identifier() -> None:
    body = header() + billing_provider() + subscriber(member_id="") + professional_claim("C1", "")

    assert summary(read(interchange([functional_group([transaction_set(body)])]))) == [
        (1, "x12_bad_claim", "C1", None)
    ]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("DMG*D8*19800115*F", "DMG*D8*19800230*F"), "invalid_date:DMG"),
        (("DMG*D8*19800115*F", "DMG*D8*1980-01-15*F"), "invalid_date:DMG"),
        (("DTP*472*D8*20240110", "DTP*472*D8*20241310"), "invalid_date:DTP"),
        (("DTP*472*D8*20240110", "DTP*472*RD8*20240112-20240110"), "invalid_date:DTP"),
        (("REF*D9*TRACEC1", "DTP*435*DT*202401102561"), "invalid_date:DTP"),
        (("SV1*HC:99213*100*UN*1***1", "SV1*HC:99213*1OO*UN*1***1"), "invalid_number:SV1"),
        (("SV1*HC:99213*100*UN*1***1", "SV1*HC:99213*100*UN*one***1"), "invalid_number:SV1"),
    ],
    ids=["feb-30", "dashed-d8", "month-13", "range-backwards", "hour-25", "charge", "units"],
)
def test_impossible_dates_and_numbers_are_quarantined_with_their_segment(edit: tuple[str, str], reason: str) -> None:
    old, new = edit
    segments = [new if segment == old else segment for segment in professional_file(professional_claim("C1"))]
    assert segments != professional_file(professional_claim("C1"))

    (claim,) = read(segments)

    assert (claim.position, claim.reason, claim.claim_id) == (1, reason, "C1")


def test_other_dtp_qualifiers_are_not_read_or_checked() -> None:
    claim_loop = professional_claim("C1")
    claim_loop.insert(1, "DTP*431*D8*20240231")  # onset of illness: not a column, so not a reason either

    assert summary(read(professional_file(claim_loop))) == [(1, None, "C1", "MBR1001")]


def test_undecodable_bytes_stay_in_raw_and_are_replaced_in_typed_values() -> None:
    text = render(professional_file(professional_claim("C1"), professional_claim("C2")))
    content = text.replace("TRACEC2", "TRACE\x00").encode().replace(b"\x00", b"\xff")
    content = content.replace(b"NM1*IL*1*DOE*JANE", b"NM1*IL*1*DO\xc3*JANE")

    claims = parse_claims(content)

    assert [claim.subscriber_last_name for claim in claims] == ["DO\ufffd", "DO\ufffd"]
    assert b"NM1*IL*1*DO\xc3*JANE" in claims[0].raw.encode("utf-8", "surrogateescape")
    assert b"REF*D9*TRACE\xff~" in claims[1].raw.encode("utf-8", "surrogateescape")
    assert [claim.reason for claim in claims] == [None, None]  # invalid_encoding is decided by the Spark wrapper
