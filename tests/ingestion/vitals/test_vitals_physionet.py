"""Vitals parser on 20 real PhysioNet/CinC Challenge 2012 records (set A) from ../shared/data."""

from __future__ import annotations

import csv
import io
import re
import tarfile
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from medspark.ingestion.contract import SourceFile
from medspark.ingestion.vitals.parse import parse_vitals, sniff

RECORDS = 20


def _extract(archive: Path, target: Path, count: int) -> list[Path]:
    """The first ``count`` record files of the archive, written under ``target``."""
    paths = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and re.fullmatch(r"set-a/\d+\.txt", member.name):
                handle = tar.extractfile(member)
                assert handle is not None
                path = target / member.name.rsplit("/", 1)[-1]
                path.write_bytes(handle.read())
                paths.append(path)
                if len(paths) == count:
                    break
    return paths


def _read_lines(spark: SparkSession, paths: list[Path]) -> tuple[DataFrame, list[SourceFile]]:
    """What the ingest reader gives for small files: non-blank physical lines with 1-based numbers."""
    rows, files = [], []
    for path in paths:
        data = path.read_bytes()
        name = f"file:{path}"
        lines = re.split(rb"\r\n|\r|\n", data.removesuffix(b"\n"))
        rows += [(name, n, line.decode("utf-8")) for n, line in enumerate(lines, start=1) if line.strip(b" ")]
        files.append(SourceFile(name, len(data), 0, "vitals-jsonl", data[: 64 * 1024]))
    return spark.createDataFrame(rows, "_source_file string, _record_position long, _raw string"), files


@pytest.mark.shared_data
def test_physionet_records_match_an_independent_read(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    paths = _extract(shared_data / "physionet-challenge-2012-set-a" / "set-a.tar.gz", tmp_path, RECORDS)
    assert len(paths) == RECORDS
    assert all(sniff(p.read_bytes()[: 64 * 1024], p.name) for p in paths)

    # Independent reading with the csv module: (record id, line number) -> (minutes, parameter, value).
    reference: dict[tuple[str, int], tuple[int, str, float]] = {}
    for path in paths:
        rows = list(csv.reader(io.StringIO(path.read_text())))
        assert rows[0] == ["Time", "Parameter", "Value"]
        record_id = next(value for _, parameter, value in rows[1:] if parameter == "RecordID")
        assert record_id == path.stem
        for line, (time, parameter, value) in enumerate(rows[1:], start=2):
            hours, minutes = time.split(":")
            reference[(record_id, line)] = (int(hours) * 60 + int(minutes), parameter, float(value))

    inputs, files = _read_lines(spark, paths)
    got = (
        parse_vitals(inputs, files)["device_vitals"]
        .select(
            "record_id",
            "patient_identifier",
            "_record_position",
            "elapsed_minutes",
            "parameter",
            "value",
            "is_missing",
            "layout",
            "_quarantine_reason",
        )
        .collect()
    )
    assert len(got) == len(reference)
    assert {r["_quarantine_reason"] for r in got} == {None}
    assert {r["layout"] for r in got} == {"long_csv"}
    assert all(r["patient_identifier"] == r["record_id"] for r in got)
    parsed = {(r["record_id"], r["_record_position"]): (r["elapsed_minutes"], r["parameter"], r["value"]) for r in got}
    assert parsed == reference
    assert all(r["is_missing"] == (r["value"] == -1.0) for r in got)
    assert any(r["is_missing"] for r in got)  # set A marks unmeasured descriptors (Height, Weight) with -1
