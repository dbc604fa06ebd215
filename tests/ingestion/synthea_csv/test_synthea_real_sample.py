"""Synthea CSV parser on the real 27-patient Synthea v3.0 export (all 18 tables) in ../shared/data."""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal
from functools import reduce
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.ingestion.contract import SourceFile
from medspark.ingestion.synthea_csv.parse import parse_synthea_csv, sniff

# Data rows per file, from ../shared/data/synthea-csv-ma27/SOURCE.md.
SOURCE_ROWS = {
    "allergies": 40,
    "careplans": 49,
    "claims": 1267,
    "claims_transactions": 5228,
    "conditions": 438,
    "devices": 3,
    "encounters": 604,
    "imaging_studies": 1,
    "immunizations": 29,
    "medications": 663,
    "observations": 990,
    "organizations": 63,
    "patients": 27,
    "payer_transitions": 1051,
    "payers": 10,
    "procedures": 249,
    "providers": 166,
    "supplies": 72,
}
TYPED = {"patients", "encounters", "conditions", "medications", "procedures", "observations"}


def _read_lines(spark: SparkSession, paths: list[Path]) -> tuple[DataFrame, list[SourceFile]]:
    """What the ingest reader gives for small files: non-blank physical lines with 1-based numbers."""
    rows, files = [], []
    for path in paths:
        data = path.read_bytes()
        name = f"file:{path}"
        lines = re.split(rb"\r\n|\r|\n", data.removesuffix(b"\n"))
        rows += [(name, n, line.decode("utf-8")) for n, line in enumerate(lines, start=1) if line.strip(b" ")]
        files.append(SourceFile(name, len(data), 0, "synthea-csv", data[: 64 * 1024]))
    return spark.createDataFrame(rows, "_source_file string, _record_position long, _raw string"), files


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.shared_data
def test_every_table_of_the_real_export(spark: SparkSession, shared_data: Path) -> None:
    folder = shared_data / "synthea-csv-ma27"
    paths = sorted(folder.glob("*.csv"))
    assert {p.stem for p in paths} == set(SOURCE_ROWS)
    assert all(sniff(p.read_bytes()[: 64 * 1024], p.name) for p in paths)
    inputs, files = _read_lines(spark, paths)
    out = parse_synthea_csv(inputs, files)
    assert sorted(out) == sorted({f"synthea_{t}" for t in TYPED} | {"synthea_other"})

    # One collect: rows per (file, entity, table, reason).
    summaries = []
    for entity, rows in out.items():
        table = sf.col("synthea_table") if entity == "synthea_other" else sf.lit(entity.removeprefix("synthea_"))
        summaries.append(
            rows.select("_source_file", sf.lit(entity).alias("entity"), table.alias("table"), "_quarantine_reason")
        )
    summary = reduce(DataFrame.unionByName, summaries).groupBy(*summaries[0].columns).count().collect()
    assert {Path(r["_source_file"]).stem for r in summary if Path(r["_source_file"]).stem != r["table"]} == set()
    assert {r["_quarantine_reason"] for r in summary} == {None}
    counts = {(Path(r["_source_file"]).stem, r["entity"]): r["count"] for r in summary}
    expected = {(t, f"synthea_{t}" if t in TYPED else "synthea_other"): n for t, n in SOURCE_ROWS.items()}
    assert counts == expected


@pytest.mark.shared_data
def test_key_fields_equal_an_independent_csv_read(spark: SparkSession, shared_data: Path) -> None:
    folder = shared_data / "synthea-csv-ma27"
    paths = [folder / f"{t}.csv" for t in ("patients", "observations", "payers")]
    inputs, files = _read_lines(spark, paths)
    out = parse_synthea_csv(inputs, files)

    patients = {r["Id"]: r for r in out["synthea_patients"].collect()}
    reference = _csv_rows(folder / "patients.csv")
    assert len(patients) == len(reference)
    for ref in reference:
        got = patients[ref["Id"]]
        assert got["BIRTHDATE"] == dt.date.fromisoformat(ref["BIRTHDATE"])
        assert got["DEATHDATE"] == (dt.date.fromisoformat(ref["DEATHDATE"]) if ref["DEATHDATE"] else None)
        assert (got["FIRST"], got["LAST"], got["SSN"], got["ZIP"]) == (
            ref["FIRST"],
            ref["LAST"],
            ref["SSN"],
            ref["ZIP"] or None,
        )
        assert got["LAT"] == float(ref["LAT"])
        assert got["HEALTHCARE_EXPENSES"] == Decimal(ref["HEALTHCARE_EXPENSES"]).quantize(Decimal("0.01"))
        assert got["MIDDLE"] is None and got["INCOME"] is None  # v3.0 has no such columns

    observations = (
        out["synthea_observations"]
        .select(
            "_record_position",
            sf.unix_seconds("DATE").alias("epoch"),
            "PATIENT",
            "CODE",
            "VALUE",
            "VALUE_NUMERIC",
            "TYPE",
        )
        .collect()
    )
    by_line = {r["_record_position"]: r for r in observations}
    for line, ref in enumerate(_csv_rows(folder / "observations.csv"), start=2):
        got = by_line[line]
        assert got["epoch"] == dt.datetime.strptime(ref["DATE"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        assert (got["PATIENT"], got["CODE"], got["VALUE"], got["TYPE"]) == (
            ref["PATIENT"],
            ref["CODE"],
            ref["VALUE"],
            ref["TYPE"],
        )
        assert got["VALUE_NUMERIC"] == (float(ref["VALUE"]) if ref["TYPE"] == "numeric" else None)

    payers = {r["_record_position"]: r["fields"] for r in out["synthea_other"].collect()}
    for line, ref in enumerate(_csv_rows(folder / "payers.csv"), start=2):
        assert payers[line] == {k: (v if v != "" else None) for k, v in ref.items()}
