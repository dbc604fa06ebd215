"""HL7 v2 parser on tiny literal files: splitting, delimiters, escapes, typed columns, quarantine reasons.

All literal files are parsed in ONE Spark job (module fixture); each test checks its own files' rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.ingestion.contract import REASONS
from medspark.ingestion.hl7v2.parse import FORMAT, parse

FILES_DDL = "_source_file string, _content binary"
TS = "yyyy-MM-dd HH:mm:ss"


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment from 1-based field values (for MSH, numbering starts at MSH-3 as in the standard)."""
    last = max(fields)
    return name + "|" + "|".join(fields.get(i, "") for i in range(1, last + 1))


def msh(control: str, when: str = "20240102030405+0100", kind: str = "ADT^A01^ADT_A01", extra: str = "") -> str:
    return f"MSH|^~\\&|SEND^1.2.3^ISO|SFAC|RECV|RFAC|{when}|SEC|{kind}|{control}|P|2.5.1{extra}"


def pid(mrn: str = "MRN1", dob: str = "19800101", name: str = "DOE^JOHN") -> str:
    return f"PID|1||{mrn}^^^HOSP^MR||{name}||{dob}|M"


def msg(*segments: str) -> str:
    return "\r".join(segments)


RICH = msg(
    msh("RICH1"),
    "EVN||20240102030000",
    seg("PID", {1: "1", 3: "MRN1^^^HOSP&1.2.3&ISO^MR~123456789^^^&2.16.840.1.113883.4.1&ISO^SS",
                5: "DOE&&VAN^JOHN^Q~ALIAS^JJ", 7: "19800101", 8: "M",
                11: "12&Main St^Apt 2^Boston^MA^02110^USA^H~9 Other Rd^^Salem^MA", 19: "123-45-6789"}),
    seg("PV1", {1: "1", 2: "I", 19: "V100^^^HOSP^VN", 44: "20240101120000-0500", 45: "20240103090000"}),
    "OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|60-100|H~A|||F|||20240101130000-0500",
    "OBX|2|SN|2345-7^Glucose^LN||>^100|mg/dL|||||F",
    "OBX|3|ST|X1^Note^L||A\\T\\E \\H\\bold\\N\\ \\Zab\\ x\\y~second||||||F",
    "DG1|1||E11.9^Type 2 diabetes^I10||20240101|A",
    seg("IN1", {1: "1", 2: "PLAN1^Plan One", 3: "PAYER1", 4: "Acme Health^X", 8: "GRP9", 36: "MEM1"}),
)

# Non-default delimiters: field '#', component '$', repetition '*', escape '@', sub-component '%'.
CUSTOM = msg(
    "MSH#$*@%#SEND$1.2#SFAC#RECV#RFAC#20240102030405#SEC#ORU$R01$ORU_R01#C20#P#2.5.1",
    "PID#1##MRN7$$$HOSP%1.2.3%ISO$MR*SSN7$$$SSA$SS##ROE%x$ANN##19700202#F",
    "OBX#1#ST#X1$Text$L##a@F@b@S@c@T@d@R@e@E@f@X41@g@.br@h*rep2#",
)

CASES = [  # (message, expected reason) in file order; file "cases.hl7", newline between messages
    (msg(msh("OK1"), pid()), None),
    (msg(msh("OK2"), "EVN|A04"), None),  # no PID: PID rules do not apply
    (msg(msh("OK3"), "PID|1||M3||D^J", "ZPI|1|x"), None),  # exactly 5 PID fields; Z-segment
    (msg("MSH|^~\\&|S|F|R|RF|20240101||ADT^A01"), "hl7_truncated:MSH"),  # no MSH-10
    (msg("MSH|^~\\&|S|F|R|RF|20240101||ADT^A01|C5|P"), "hl7_truncated:MSH"),  # no MSH-12
    (msg("MSH|^~\\&|S|F|R|RF|20240101|||C6|P|2.5", pid()), "hl7_truncated:MSH"),  # MSH-9 empty
    (msg(msh("T7"), "PID|1||MRN7"), "hl7_truncated:PID"),
    (msg(msh("T8"), "PID|1||||DOE^J"), "missing_identifier"),
    (msg(msh("T9"), "PID|1||^^^HOSP^MR||DOE^J"), "missing_identifier"),
    (msg(msh("T10"), pid(dob="19801340")), "invalid_date:PID-7"),
    (msg(msh("T11", when="20241301"), pid()), "invalid_date:MSH-7"),
    (msg(msh("T12"), pid(), "Pv1|1|I"), "hl7_bad_segment"),
    (msg(msh("T13"), pid(), "ZZ|1"), "hl7_bad_segment"),
    # precedence: first matching rule wins
    (msg(msh("T14"), "PID|1||||DOE^J||19801340"), "missing_identifier"),
    (msg(msh("T15", when="2024"), pid(dob="1980-01-01")), "invalid_date:PID-7"),
    (msg(msh("T16", when="x"), pid(), "bad|1"), "invalid_date:MSH-7"),
]
CASE_BYTES = "\n".join(m for m, _ in CASES).encode()

BAD_UTF8 = b"\n".join([
    msg(msh("E1"), pid()).encode(),
    msg(msh("E2"), "PID|1||MRN2||DO").encode() + b"\xff\xfe" + b"E^J||19801340",  # encoding wins
    msg(msh("E3"), pid()).encode(),
])
LATIN1 = msg(msh("L1", extra="||||||8859/1"), pid(name="M\xe9NARD^LOU")).encode("iso-8859-1")

FILES: dict[str, bytes] = {
    # splitting: LF segments + blank lines + BOM; CRLF; CR only; MLLP frames (one with a BOM)
    "lf.hl7": b"\xef\xbb\xbf" + f"{msh('C1')}\n{pid('A1')}\n\n \n{msh('C2')}\n{pid('A2')}\n".encode(),
    "crlf.hl7": f"{msh('C3')}\r\nEVN|A01\r\n\r\n{msh('C4')}\r\nEVN|A04\r\n".encode(),
    "cr.hl7": f"{msh('C5')}\r{pid('A5')}\r{msh('C6')}\r{pid('A6')}\r".encode(),
    "frames.mllp": f"\x0b{msh('C7')}\r{pid('A7')}\x1c\r\x0b{msh('C8')}\r{pid('A8')}\x1c\r\x0b{msh('C9')}\x1c\r"
    .encode(),
    "bom.mllp": b"\xef\xbb\xbf\x0b" + msh("C10").encode() + b"\r\x1c\r",
    "nomsh.hl7": f"PID|1||X||A^B\rPV1|1|I\n{msh('C11')}\r{pid()}\n".encode(),
    "rich.hl7": RICH.encode(),
    "custom.hl7": CUSTOM.encode(),
    "cases.hl7": CASE_BYTES,
    "bad_utf8.hl7": BAD_UTF8,
    "latin1.hl7": LATIN1,
    "empty.hl7": b"\r\n \n",
}


@pytest.fixture(scope="module")
def parsed(spark) -> dict[tuple[str, int], Row]:
    """All literal files parsed once: ``{(file, position): row}`` with timestamps as UTC text."""
    files = spark.createDataFrame([(name, bytearray(data)) for name, data in FILES.items()], FILES_DDL)
    out = FORMAT.parse(files, [])["hl7v2_messages"]
    rows = out.select(
        "*",
        sf.date_format("message_datetime", TS).alias("message_ts"),
        sf.date_format("admit_datetime", TS).alias("admit_ts"),
        sf.date_format("discharge_datetime", TS).alias("discharge_ts"),
        sf.transform("observations", lambda o: sf.date_format(o["observed_at"], TS)).alias("observed_ts"),
        sf.is_valid_utf8("_raw").alias("raw_is_utf8"),
    ).collect()
    result = {(r["_source_file"], r["_record_position"]): r for r in rows}
    assert len(result) == len(rows)
    return result


def pick(parsed: dict[tuple[str, int], Row], file: str, *columns: str) -> list[Row]:
    rows = sorted((r for (f, _), r in parsed.items() if f == file), key=lambda r: r["_record_position"])
    return [Row(**{c: r[c] for c in ("_record_position", *columns)}) for r in rows]


def test_contract_shape(parsed, spark) -> None:
    files = spark.createDataFrame([], FILES_DDL)
    out = parse(files, [])
    assert list(out) == ["hl7v2_messages"] == list(FORMAT.entities)
    columns = out["hl7v2_messages"].columns
    assert columns[:3] == ["_source_file", "_record_position", "_raw"] and columns[-1] == "_quarantine_reason"
    assert dict(out["hl7v2_messages"].dtypes)["_record_position"] == "bigint"
    assert FORMAT.name == "hl7v2" and FORMAT.read_mode == "files"
    for row in parsed.values():
        reason = row["_quarantine_reason"]
        assert reason is None or reason.split(":")[0] in REASONS


@pytest.mark.parametrize(("file", "expected"), [
    ("lf.hl7", [(1, "C1", ["MSH", "PID"]), (2, "C2", ["MSH", "PID"])]),
    ("crlf.hl7", [(1, "C3", ["MSH", "EVN"]), (2, "C4", ["MSH", "EVN"])]),
    ("cr.hl7", [(1, "C5", ["MSH", "PID"]), (2, "C6", ["MSH", "PID"])]),
    ("frames.mllp", [(1, "C7", ["MSH", "PID"]), (2, "C8", ["MSH", "PID"]), (3, "C9", ["MSH"])]),
    ("bom.mllp", [(1, "C10", ["MSH"])]),
])
def test_splitting_files_into_messages(parsed, file: str, expected: list[tuple[Any, ...]]) -> None:
    rows = pick(parsed, file, "message_control_id", "segment_ids", "_quarantine_reason")
    assertDataFrameEqual(rows, [Row(_record_position=p, message_control_id=c, segment_ids=s,
                                    _quarantine_reason=None) for p, c, s in expected])


def test_raw_is_the_message_with_cr_between_segments_without_bom_or_framing(parsed) -> None:
    assert parsed[("lf.hl7", 1)]["_raw"] == msh("C1") + "\r" + pid("A1")
    assert parsed[("crlf.hl7", 2)]["_raw"] == msh("C4") + "\rEVN|A04"
    assert parsed[("frames.mllp", 3)]["_raw"] == msh("C9")
    assert parsed[("bom.mllp", 1)]["_raw"] == msh("C10")


def test_text_before_the_first_msh_is_its_own_quarantined_record(parsed) -> None:
    assertDataFrameEqual(pick(parsed, "nomsh.hl7", "_raw", "message_control_id", "_quarantine_reason"), [
        Row(_record_position=1, _raw="PID|1||X||A^B\rPV1|1|I", message_control_id=None,
            _quarantine_reason="hl7_no_msh"),
        Row(_record_position=2, _raw=f"{msh('C11')}\r{pid()}", message_control_id="C11", _quarantine_reason=None),
    ])


def test_empty_file_is_one_row_at_position_zero(parsed) -> None:
    assertDataFrameEqual(pick(parsed, "empty.hl7", "_raw", "segments", "_quarantine_reason"), [
        Row(_record_position=0, _raw="\r\n \n", segments=None, _quarantine_reason="empty_file")])


def test_typed_columns_of_a_rich_message(parsed) -> None:
    columns = ("message_type", "trigger_event", "message_structure", "message_control_id", "processing_id",
               "version_id", "sending_application", "sending_facility", "receiving_application",
               "receiving_facility", "message_ts", "event_type", "patient_identifiers", "patient_family_name",
               "patient_given_name", "birth_date", "administrative_sex", "patient_ssn", "patient_address",
               "patient_class", "visit_number", "admit_ts", "discharge_ts", "diagnoses", "insurance",
               "segment_ids", "_quarantine_reason")
    expected = Row(
        _record_position=1, message_type="ADT", trigger_event="A01", message_structure="ADT_A01",
        message_control_id="RICH1", processing_id="P", version_id="2.5.1", sending_application="SEND",
        sending_facility="SFAC", receiving_application="RECV", receiving_facility="RFAC",
        message_ts="2024-01-02 02:04:05", event_type="A01",
        patient_identifiers=[Row(id="MRN1", assigning_authority="HOSP", identifier_type="MR"),
                             Row(id="123456789", assigning_authority="2.16.840.1.113883.4.1",
                                 identifier_type="SS")],
        patient_family_name="DOE", patient_given_name="JOHN", birth_date=dt.date(1980, 1, 1),
        administrative_sex="M", patient_ssn="123-45-6789",
        patient_address=Row(street="12 Main St", other_designation="Apt 2", city="Boston", state="MA",
                            postal_code="02110", country="USA", address_type="H"),
        patient_class="I", visit_number="V100", admit_ts="2024-01-01 17:00:00", discharge_ts="2024-01-03 09:00:00",
        diagnoses=[Row(set_id="1", code="E11.9", code_text="Type 2 diabetes", coding_system="I10",
                       diagnosis_type="A")],
        insurance=[Row(plan_id="PLAN1", company_name="Acme Health", member_id="MEM1", group_number="GRP9")],
        segment_ids=["MSH", "EVN", "PID", "PV1", "OBX", "OBX", "OBX", "DG1", "IN1"],
        _quarantine_reason=None,
    )
    assertDataFrameEqual(pick(parsed, "rich.hl7", *columns), [expected])


def test_observations_repetitions_structured_numeric_and_escapes(parsed) -> None:
    row = parsed[("rich.hl7", 1)]
    observations = [{k: v for k, v in o.asDict().items() if k != "observed_at"} for o in row["observations"]]
    assert observations == [
        dict(set_id="1", value_type="NM", code="8867-4", code_text="Heart rate", coding_system="LN", value="72",
             units="/min", reference_range="60-100", abnormal_flags=["H", "A"], result_status="F"),
        dict(set_id="2", value_type="SN", code="2345-7", code_text="Glucose", coding_system="LN", value=">100",
             units="mg/dL", reference_range=None, abnormal_flags=[], result_status="F"),
        # \T\ decoded, highlighting \H\ \N\ dropped, unknown \Zab\ kept, unterminated "\y" kept as text;
        # the value is the first repetition
        dict(set_id="3", value_type="ST", code="X1", code_text="Note", coding_system="L",
             value="A&E bold \\Zab\\ x\\y", units=None, reference_range=None, abnormal_flags=[], result_status="F"),
    ]
    assert row["observed_ts"] == ["2024-01-01 18:00:00", None, None]
    pid5 = next(s for s in row["segments"] if s["seg_id"] == "PID")["fields"][4]
    assert pid5 == [["DOE&&VAN", "JOHN", "Q"], ["ALIAS", "JJ"]]


def test_custom_delimiters_are_read_from_msh_per_message(parsed) -> None:
    row = parsed[("custom.hl7", 1)]
    assert row["segments"] == [
        Row(seg_id="MSH", fields=[[["#"]], [["$*@%"]], [["SEND", "1.2"]], [["SFAC"]], [["RECV"]], [["RFAC"]],
                                  [["20240102030405"]], [["SEC"]], [["ORU", "R01", "ORU_R01"]], [["C20"]],
                                  [["P"]], [["2.5.1"]]]),
        Row(seg_id="PID", fields=[[["1"]], [[""]], [["MRN7", "", "", "HOSP%1.2.3%ISO", "MR"],
                                                  ["SSN7", "", "", "SSA", "SS"]],
                                  [[""]], [["ROE%x", "ANN"]], [[""]], [["19700202"]], [["F"]]]),
        Row(seg_id="OBX", fields=[[["1"]], [["ST"]], [["X1", "Text", "L"]], [[""]],
                                  [["a#b$c%d*e@fAg\nh"], ["rep2"]], [[""]]]),
    ]
    got = Row(**{c: row[c] for c in ("message_type", "trigger_event", "message_structure", "message_control_id",
                                     "sending_application", "message_ts", "patient_identifiers",
                                     "patient_family_name", "patient_given_name", "_quarantine_reason")})
    assert got == Row(message_type="ORU", trigger_event="R01", message_structure="ORU_R01",
                      message_control_id="C20", sending_application="SEND", message_ts="2024-01-02 03:04:05",
                      patient_identifiers=[Row(id="MRN7", assigning_authority="HOSP", identifier_type="MR"),
                                           Row(id="SSN7", assigning_authority="SSA", identifier_type="SS")],
                      patient_family_name="ROE", patient_given_name="ANN", _quarantine_reason=None)
    assert row["observations"][0]["value"] == "a#b$c%d*e@fAg\nh"


def test_quarantine_reasons_and_precedence(parsed) -> None:
    assertDataFrameEqual(pick(parsed, "cases.hl7", "_quarantine_reason"),
                         [Row(_record_position=i, _quarantine_reason=reason)
                          for i, (_, reason) in enumerate(CASES, start=1)])


def test_invalid_utf8_quarantines_only_the_damaged_message_and_keeps_its_bytes(parsed) -> None:
    assertDataFrameEqual(pick(parsed, "bad_utf8.hl7", "message_control_id", "raw_is_utf8", "_quarantine_reason"), [
        Row(_record_position=1, message_control_id="E1", raw_is_utf8=True, _quarantine_reason=None),
        Row(_record_position=2, message_control_id="E2", raw_is_utf8=False, _quarantine_reason="invalid_encoding"),
        Row(_record_position=3, message_control_id="E3", raw_is_utf8=True, _quarantine_reason=None),
    ])


def test_msh18_iso_8859_1_is_decoded_not_quarantined(parsed) -> None:
    row = parsed[("latin1.hl7", 1)]
    assert (row["patient_family_name"], row["_quarantine_reason"]) == ("MéNARD", None)


@pytest.mark.parametrize(("head", "expected"), [
    (b"MSH|^~\\&|A", True),
    (b"\xef\xbb\xbfMSH|^~\\&|A", True),
    (b"\x0bMSH|^~\\&|A", True),
    (b"\xef\xbb\xbf\x0bMSH#$*@%#A", True),
    (b"\r\n\x0bMSH|^~\\&", True),
    (b"MSHA|^~\\&", False),
    (b"MSH", False),
    (b"PID|1||X", False),
    (b"ISA*00*          *00*", False),
    (b'{"resourceType":"Patient"}', False),
    (b"Id,BIRTHDATE,DEATHDATE", False),
    (b"", False),
])
def test_sniff_by_content(head: bytes, expected: bool) -> None:
    assert FORMAT.sniff(head, "whatever.txt") is expected
