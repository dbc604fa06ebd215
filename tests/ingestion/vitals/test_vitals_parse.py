"""Vitals parser: JSON Lines and PhysioNet long CSV literal lines -> expected rows, sniffing, every reason."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from medspark.ingestion.contract import SourceFile
from medspark.ingestion.vitals.parse import FORMAT, header_lines, parse_vitals, sniff

UTC = dt.UTC
OUTPUT = (
    "_source_file string, _record_position long, _raw string, layout string, device_id string, "
    "patient_identifier string, record_id string, observed_at timestamp, elapsed_minutes int, parameter string, "
    "value double, is_missing boolean, unit string, _quarantine_reason string, _dedup_context string"
)
COMPARED = (
    "_record_position long, layout string, device_id string, patient_identifier string, record_id string, "
    "observed_at timestamp, elapsed_minutes int, parameter string, value double, is_missing boolean, "
    "unit string, _quarantine_reason string"
)


def _inputs(spark: SparkSession, files: Mapping[str, Sequence[str | bytes]]) -> tuple[DataFrame, list[SourceFile]]:
    """Lines of literal files as the ingest reader gives them (bytes lines may hold invalid UTF-8)."""
    rows, sources = [], []
    for path, lines in files.items():
        encoded = [line if isinstance(line, bytes) else line.encode() for line in lines]
        rows += [(path, n, bytearray(line)) for n, line in enumerate(encoded, start=1) if line.strip(b" ")]
        content = b"\n".join(encoded) + b"\n"
        sources.append(SourceFile(path, len(content), 0, "vitals-jsonl", content[: 64 * 1024]))
    frame = spark.createDataFrame(rows, "_source_file string, _record_position long, _bytes binary")
    return frame.select("_source_file", "_record_position", sf.col("_bytes").cast("string").alias("_raw")), sources


def _reading(**fields: object) -> str:
    base: dict[str, object] = {
        "device_id": "mon-1",
        "patient_mrn": "MRN1",
        "timestamp": "2024-03-01T10:15:00+01:00",
        "metric": "heart_rate",
        "value": 72,
        "unit": "bpm",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


def test_jsonl_readings(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/v/vitals-00000.jsonl": [
                _reading(),
                _reading(
                    patient_mrn=...,
                    patient_id="P9",
                    timestamp="2024-03-01T23:30:00.5-05:00",
                    value=98.6,
                    metric="temperature",
                    unit="degF",
                ),
                _reading(timestamp="2024-03-01T09:15:00Z", value="36.6", device_id=...),
                _reading(timestamp="2024-03-01T10:15:00+0100", value=-1),
            ]
        },
    )
    out = parse_vitals(inputs, files)
    assert list(out) == ["device_vitals"]
    assertSchemaEqual(out["device_vitals"].schema, StructType.fromDDL(OUTPUT))
    nine = dt.datetime(2024, 3, 1, 9, 15, tzinfo=UTC)
    expected = spark.createDataFrame(
        [
            (1, "jsonl", "mon-1", "MRN1", None, nine, None, "heart_rate", 72.0, False, "bpm", None),
            (
                2,
                "jsonl",
                "mon-1",
                "P9",
                None,
                dt.datetime(2024, 3, 2, 4, 30, 0, 500000, tzinfo=UTC),
                None,
                "temperature",
                98.6,
                False,
                "degF",
                None,
            ),
            (3, "jsonl", None, "MRN1", None, nine, None, "heart_rate", 36.6, False, "bpm", None),
            (4, "jsonl", "mon-1", "MRN1", None, nine, None, "heart_rate", -1.0, False, "bpm", None),
        ],
        COMPARED,
    )
    assertDataFrameEqual(out["device_vitals"].drop("_source_file", "_raw", "_dedup_context"), expected)


def test_physionet_long_csv(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/p/132539.txt": [
                "Time,Parameter,Value",
                "00:00,RecordID,132539",
                "00:00,Age,54",
                "00:00,Height,-1",
                "00:07,HR,73",
                "47:59,NIMAP,92.33",
            ],
            # No RecordID row in the head: the record id comes from the numeric file name.
            "file:/p/140001.txt": ["Time,Parameter,Value\r", "01:05,Temp,35.1\r"],
            # A RecordID row wins over the file name.
            "file:/p/renamed.txt": ["Time,Parameter,Value", "00:00,RecordID,7", "00:30,HR,80"],
        },
    )
    got = parse_vitals(inputs, files)["device_vitals"]
    expected = spark.createDataFrame(
        [
            ("132539.txt", 2, "RecordID", 0, 132539.0, False, "132539"),
            ("132539.txt", 3, "Age", 0, 54.0, False, "132539"),
            ("132539.txt", 4, "Height", 0, -1.0, True, "132539"),
            ("132539.txt", 5, "HR", 7, 73.0, False, "132539"),
            ("132539.txt", 6, "NIMAP", 47 * 60 + 59, 92.33, False, "132539"),
            ("140001.txt", 2, "Temp", 65, 35.1, False, "140001"),
            ("renamed.txt", 2, "RecordID", 0, 7.0, False, "7"),
            ("renamed.txt", 3, "HR", 30, 80.0, False, "7"),
        ],
        "file string, _record_position long, parameter string, elapsed_minutes int, value double, "
        "is_missing boolean, record_id string",
    )
    assertDataFrameEqual(
        got.select(
            sf.substring_index("_source_file", "/", -1).alias("file"),
            "_record_position",
            "parameter",
            "elapsed_minutes",
            "value",
            "is_missing",
            "record_id",
        ),
        expected,
    )
    # The columns only JSON Lines has are null; patient_identifier is the record id; nothing is quarantined.
    assert got.where(
        (sf.col("layout") != "long_csv")
        | sf.col("device_id").isNotNull()
        | sf.col("observed_at").isNotNull()
        | sf.col("unit").isNotNull()
        | (sf.col("patient_identifier") != sf.col("record_id"))
        | sf.col("_quarantine_reason").isNotNull()
    ).isEmpty()
    assert [header_lines(f) for f in files] == [1, 1, 1]


def test_each_quarantine_reason(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/q/vitals.jsonl": [
                _reading(),
                '{"device_id": "mon-1", "patient_mrn": "MRN1", "metric": "hr"',  # cut short
                "{'metric': 'hr', 'value': 1, 'patient_mrn': 'M'}",  # not JSON (single quotes)
                _reading() + " trailing",
                "[1, 2]",
                _reading(patient_mrn=...),
                _reading(patient_mrn="  "),
                _reading(metric=...),
                _reading(timestamp=...),
                _reading(value=None),
                _reading(timestamp="2024-02-30T10:00:00Z"),
                _reading(timestamp="2024-03-01T10:00:00"),  # no offset: which instant?
                _reading(value="high"),
                _reading(value={"v": 1}),
                _reading().encode().replace(b"heart_rate", b"heart\xff_rate"),
            ],
            "file:/q/150000.txt": [
                "Time,Parameter,Value",
                "00:00,RecordID,150000",
                "00:05,HR",
                "00:05,HR,1,2",
                "00:61,HR,80",
                "xx,HR,80",
                "00:05,,80",
                "00:05,HR,",
                "00:05,HR,n/a",
                ",HR,80",
            ],
            "file:/q/nameless.txt": ["Time,Parameter,Value", "00:05,HR,80"],  # no RecordID anywhere
        },
    )
    got = parse_vitals(inputs, files)["device_vitals"].select(
        sf.substring_index("_source_file", "/", -1).alias("file"), "_record_position", "_quarantine_reason"
    )
    expected = spark.createDataFrame(
        [
            ("vitals.jsonl", 1, None),
            ("vitals.jsonl", 2, "invalid_json"),
            ("vitals.jsonl", 3, "invalid_json"),
            ("vitals.jsonl", 4, "invalid_json"),
            ("vitals.jsonl", 5, "invalid_json"),
            ("vitals.jsonl", 6, "missing_identifier"),
            ("vitals.jsonl", 7, "missing_identifier"),
            ("vitals.jsonl", 8, "missing_field:metric"),
            ("vitals.jsonl", 9, "missing_field:timestamp"),
            ("vitals.jsonl", 10, "missing_field:value"),
            ("vitals.jsonl", 11, "invalid_date:timestamp"),
            ("vitals.jsonl", 12, "invalid_date:timestamp"),
            ("vitals.jsonl", 13, "invalid_number:value"),
            ("vitals.jsonl", 14, "invalid_number:value"),
            ("vitals.jsonl", 15, "invalid_encoding"),
            ("150000.txt", 2, None),
            ("150000.txt", 3, "csv_field_count"),
            ("150000.txt", 4, "csv_field_count"),
            ("150000.txt", 5, "invalid_date:Time"),
            ("150000.txt", 6, "invalid_date:Time"),
            ("150000.txt", 7, "missing_field:Parameter"),
            ("150000.txt", 8, "missing_field:Value"),
            ("150000.txt", 9, "invalid_number:Value"),
            ("150000.txt", 10, "missing_field:Time"),
            ("nameless.txt", 2, "missing_identifier"),
        ],
        "file string, _record_position long, _quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)


def test_sniff_and_format() -> None:
    assert FORMAT.name == "vitals-jsonl" and FORMAT.read_mode == "lines" and FORMAT.entities == ("device_vitals",)
    assert sniff(b"Time,Parameter,Value\n00:00,RecordID,1\n", "1.txt")
    assert sniff(b"\xef\xbb\xbfTime,Parameter,Value\r\n", "x")
    assert sniff((_reading() + "\n").encode(), "anything.log")
    assert sniff(("{broken\n" + _reading() + "\n").encode(), "v.jsonl")  # a malformed first line
    assert not sniff(b'{"resourceType": "Observation", "valueQuantity": {"value": 1}}\n', "Observation.ndjson")
    assert not sniff(b"Id,BIRTHDATE\nu1,2000-01-01\n", "patients.csv")
    assert not sniff(b"Time,Parameter,Value,Extra\n", "x.csv")
    assert not sniff(b"", "empty.jsonl")
    assert header_lines(SourceFile("f", 1, 0, "vitals-jsonl", (_reading() + "\n").encode())) == 0
