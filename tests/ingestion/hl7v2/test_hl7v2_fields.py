"""HL7 field paths and DTM conversion on literal segment trees (independent of the message parser)."""

from __future__ import annotations

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.ingestion.hl7v2.fields import (
    FieldPath,
    first_segment,
    hl7_date,
    hl7_dtm_is_valid,
    hl7_field,
    hl7_timestamp,
    parse_field_path,
    repetition_component,
    segment_field,
)

SEGMENTS_DDL = "id int, segments array<struct<seg_id: string, fields: array<array<array<string>>>>>"

# Row 1: default delimiters. Row 2: sub-component character '%' declared in MSH-2 ("$*@%").
DEFAULT_TREE = [
    ("MSH", [[["|"]], [["^~\\&"]], [["APP", "1.2.3", "ISO"]]]),
    ("PID", [[["1"]], [[""]],
             [["MRN1", "", "", "HOSP&1.2.3&ISO", "MR"], ["999", "", "", "&2.16.840&ISO", "SS"]],
             [[""]],
             [["Doe&&Van", "John"]]]),
    ("OBX", [[["1"]], [["NM"]], [["8867-4", "Heart rate", "LN"]], [[""]], [["72"]]]),
    ("OBX", [[["2"]], [["ST"]], [["X1", "Note", "L"]], [[""]], [["free text"]]]),
]
CUSTOM_TREE = [
    ("MSH", [[["#"]], [["$*@%"]], [["APP2"]]]),
    ("PID", [[["1"]], [[""]], [["M2"]], [[""]], [["Roe%x%Lee", "Ann"]]]),
]


@pytest.fixture(scope="module")
def trees(spark):
    return spark.createDataFrame([(1, DEFAULT_TREE), (2, CUSTOM_TREE)], SEGMENTS_DDL)


def test_paths_select_segments_repetitions_components_and_subcomponents(trees) -> None:
    paths = {
        "msh1": "MSH-1", "msh2": "MSH-2", "app": "MSH-3", "app_oid": "MSH-3.2",
        "pid3": "PID-3", "pid3_1": "PID-3.1", "pid3_2_5": "PID-3[2].5", "pid3_3": "PID-3[3].1",
        "pid2": "PID-2", "pid40": "PID-40", "family": "PID-5.1.1", "family3": "PID-5.1.3",
        "obx5": "OBX-5", "obx2_3_2": "OBX[2]-3.2", "obx3_5": "OBX[3]-5", "nte1": "NTE-1",
        "ids": "PID-3[*].1", "namespaces": "PID-3[*].4.1", "oids": "PID-3[*].4.2",
        "obx_values": "OBX[*]-5", "obx9": "OBX[*]-9", "ntes": "NTE[*]-1",
    }
    pid = first_segment("segments", "PID")
    staged = {  # the staged-segment helpers read the same values
        "staged_ids": segment_field(pid, "3[*].1"),
        "staged_oids": sf.transform(sf.try_element_at(pid["fields"], sf.lit(3)),
                                    lambda rep: repetition_component(rep, "4.2")),
        "staged_nte": segment_field(first_segment("segments", "NTE"), "1"),
    }
    rows = trees.select("id", *[hl7_field("segments", p).alias(name) for name, p in paths.items()],
                        *[column.alias(name) for name, column in staged.items()]).orderBy("id").collect()
    expected = [
        Row(id=1, msh1="|", msh2="^~\\&", app="APP", app_oid="1.2.3",
            pid3="MRN1", pid3_1="MRN1", pid3_2_5="SS", pid3_3=None, pid2=None, pid40=None,
            family="Doe", family3="Van", obx5="72", obx2_3_2="Note", obx3_5=None, nte1=None,
            ids=["MRN1", "999"], namespaces=["HOSP", None], oids=["1.2.3", "2.16.840"],
            obx_values=["72", "free text"], obx9=[None, None], ntes=[],
            staged_ids=["MRN1", "999"], staged_oids=["1.2.3", "2.16.840"], staged_nte=None),
        Row(id=2, msh1="#", msh2="$*@%", app="APP2", app_oid=None,
            pid3="M2", pid3_1="M2", pid3_2_5=None, pid3_3=None, pid2=None, pid40=None,
            family="Roe", family3="Lee", obx5=None, obx2_3_2=None, obx3_5=None, nte1=None,
            ids=["M2"], namespaces=[None], oids=[None],
            obx_values=[], obx9=[], ntes=[],
            staged_ids=["M2"], staged_oids=[None], staged_nte=None),
    ]
    assertDataFrameEqual(rows, expected)


def test_parse_field_path_grammar() -> None:
    assert parse_field_path("PID-3[*].4.1") == FieldPath("PID", 1, 3, None, 4, 1)
    assert parse_field_path("OBX[*]-5") == FieldPath("OBX", None, 5, 1, 1, None)
    assert parse_field_path("ZX1[2]-10[3].2") == FieldPath("ZX1", 2, 10, 3, 2, None)
    assert parse_field_path("8[*].1", with_segment=False) == FieldPath(None, 1, 8, None, 1, None)
    assert parse_field_path("OBX[*]-5").is_array and not parse_field_path("PID-3.1").is_array


@pytest.mark.parametrize("bad", [
    "PID3", "pid-3", "PID-0", "PID-3.0", "PID-3[0]", "PID-3[]", "PID-3.1.2.3", "PI-3", "PID-3[*", "",
    "OBX[*]-5[*]", "PID-3..1", "PID-x",
])
def test_malformed_paths_raise_value_error_naming_the_path(bad: str) -> None:
    with pytest.raises(ValueError, match=r"invalid HL7 field path '.*'") as error:
        hl7_field("segments", bad)
    assert repr(bad) in str(error.value)


def test_other_helpers_reject_malformed_arguments_by_name(spark) -> None:
    with pytest.raises(ValueError, match="'pid'"):
        first_segment("segments", "pid")
    with pytest.raises(ValueError, match="'PID-3'"):
        segment_field(sf.col("s"), "PID-3")
    with pytest.raises(ValueError, match=r"'4\.x'"):
        repetition_component(sf.col("r"), "4.x")


def test_dtm_to_utc_timestamp_date_and_validity(spark) -> None:
    values = [
        ("19890818112600+0215", "1989-08-18 09:11:00.000000", "1989-08-18", True),
        ("198908181126+0215", "1989-08-18 09:11:00.000000", "1989-08-18", True),
        ("20150624084727.655-0500", "2015-06-24 13:47:27.655000", "2015-06-24", True),
        ("20200102030405.1234567+0530", "2020-01-01 21:34:05.123456", "2020-01-02", True),
        # no offset = UTC; partial values start the period; a date needs day precision
        ("20040629164652", "2004-06-29 16:46:52.000000", "2004-06-29", True),
        ("2021", "2021-01-01 00:00:00.000000", None, True),
        ("202103", "2021-03-01 00:00:00.000000", None, True),
        ("2021031014", "2021-03-10 14:00:00.000000", "2021-03-10", True),
        # calendar date of the sender, not shifted to UTC
        ("19800101003000+0200", "1979-12-31 22:30:00.000000", "1980-01-01", True),
        (" 19610615 ", "1961-06-15 00:00:00.000000", "1961-06-15", True),
        ("19801340", None, None, False),
        ("19800230", None, None, False),
        ("20200101250000", None, None, False),
        ("20200101+2500", None, None, False),
        ("2020-01-01", None, None, False),
        ("1980013", None, None, False),
        ("", None, None, True),
        (None, None, None, True),
    ]
    df = spark.createDataFrame([(v,) for v, *_ in values], "v string")
    rows = df.select(
        "v",
        sf.date_format(hl7_timestamp(sf.col("v")), "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("ts"),
        sf.date_format(hl7_date(sf.col("v")), "yyyy-MM-dd").alias("d"),
        hl7_dtm_is_valid(sf.col("v")).alias("ok"),
    ).collect()
    assertDataFrameEqual(rows, [Row(v=v, ts=ts, d=d, ok=ok) for v, ts, d, ok in values])
