"""The 72 real HL7 v2 sample messages (../shared/data/hl7v2-messages): all parse, none quarantined, and the key
values match an independent plain-Python reading of the files."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.ingestion.hl7v2.parse import FORMAT, parse_hl7v2_messages

FOLDER = "hl7v2-messages"
TOTAL_SEGMENTS = 1289  # from the folder's SOURCE.md


def read_independently(path: Path) -> Row:
    """MSH-9, MSH-10 and PID-3 IDs by plain splitting (these samples all use the default ``|^~\\&``)."""
    text = path.read_bytes().decode("utf-8-sig")
    segments = [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]
    assert segments[0].startswith("MSH|^~\\&|"), path.name
    msh = segments[0].split("|")  # msh[0] = "MSH", msh[1] = MSH-2, so MSH-n is msh[n - 1]
    pid = next((s.split("|") for s in segments if s.startswith("PID|")), None)
    ids = None if pid is None else [rep.split("^")[0] for rep in pid[3].split("~") if rep.split("^")[0]]
    return Row(file=path.name, msh9=msh[8], control_id=msh[9], pid3_ids=ids, segments=len(segments))


@pytest.mark.shared_data
def test_all_real_messages_parse_and_match_an_independent_reading(spark, shared_data: Path) -> None:
    folder = shared_data / FOLDER
    paths = sorted(folder.glob("*.hl7"))
    assert len(paths) == 72
    assert all(FORMAT.sniff(p.read_bytes()[:65536], p.name) for p in paths)

    files = spark.read.format("binaryFile").load(str(folder / "*.hl7")).select(
        sf.col("path").alias("_source_file"), sf.col("content").alias("_content"))
    messages = parse_hl7v2_messages(files)
    rows = messages.select(
        sf.regexp_extract("_source_file", r"([^/]+)$", 1).alias("file"),
        "_record_position",
        sf.concat_ws("^", sf.array_compact(sf.array("message_type", "trigger_event", "message_structure")))
        .alias("msh9"),
        sf.col("message_control_id").alias("control_id"),
        sf.col("patient_identifiers.id").alias("pid3_ids"),
        sf.size("segments").alias("segments"),
        "_quarantine_reason",
        # one message checked column by column against values read by eye from ADT-A01-01.hl7
        sf.when(sf.col("_source_file").endswith("/ADT-A01-01.hl7"), sf.struct(
            sf.date_format("message_datetime", "yyyy-MM-dd HH:mm:ss").alias("message_datetime"),
            "event_type", "patient_identifiers", "patient_family_name", "patient_given_name", "birth_date",
            "administrative_sex", "patient_ssn", "patient_address.street", "patient_address.city",
            "patient_class", "visit_number",
            sf.date_format("admit_datetime", "yyyy-MM-dd HH:mm:ss").alias("admit_datetime"),
            "discharge_datetime",
            sf.transform("observations", lambda o: o.withField(
                "observed_at", sf.date_format(o["observed_at"], "yyyy-MM-dd HH:mm:ss"))).alias("observations"),
            "diagnoses", "insurance",
        )).alias("detail"),
    ).collect()

    assert len(rows) == 72
    assert {(r["_record_position"], r["_quarantine_reason"]) for r in rows} == {(1, None)}
    assert sum(r["segments"] for r in rows) == TOTAL_SEGMENTS
    actual = [Row(file=r["file"], msh9=r["msh9"], control_id=r["control_id"], pid3_ids=r["pid3_ids"],
                  segments=r["segments"]) for r in rows]
    assertDataFrameEqual(actual, [read_independently(p) for p in paths])

    detail = next(r["detail"] for r in rows if r["detail"] is not None)
    assert detail.asDict(recursive=False) == dict(
        message_datetime="1989-08-18 09:11:00",  # 198908181126+0215
        event_type="A01",
        patient_identifiers=[Row(id="PATID1234", assigning_authority="test1", identifier_type="MR"),
                             Row(id="123456789", assigning_authority="USSSA", identifier_type="SS")],
        patient_family_name="EVERYMAN", patient_given_name="ADAM", birth_date=dt.date(1988, 8, 18),
        administrative_sex="M", patient_ssn="PSSN123121234", street="1000 Hospital Lane", city="Ann Arbor ",
        patient_class="P", visit_number="40007716",
        admit_datetime="2015-02-08 10:24:19",  # 20150208113419+0110
        discharge_datetime=None,
        observations=[Row(set_id="27", value_type="NM", code="8867-4", code_text="heartrate", coding_system="LN",
                          value="60", units="beats/min", reference_range="70-80", abnormal_flags=["A", "B"],
                          result_status="S", observed_at="1999-07-02 00:00:00")],
        diagnoses=[Row(set_id="1", code="422504002", code_text="Ischemic stroke(disorder)", coding_system="SCT",
                       diagnosis_type="A")],
        insurance=[Row(plan_id="BAV", company_name="Blue Cross Blue Shield of Texas", member_id="PN-145",
                       group_number="PUBSUMB")],
    )
