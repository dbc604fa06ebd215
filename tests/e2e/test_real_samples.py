"""The bronze job on real public samples written by other systems (../shared/data, read in place).

For every source file: rows in bronze + quarantine == records counted independently with Python's own csv, gzip,
json readers; key fields equal the source values.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from functools import reduce
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.config import load_config
from medspark.ingestion.job import ingest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def _all_rows(spark: SparkSession, lakehouse: Path) -> DataFrame:
    frames = []
    for layer in ("bronze", "quarantine"):
        for table in sorted((lakehouse / layer).iterdir()) if (lakehouse / layer).exists() else []:
            frames.append(
                spark.read.format("delta").load(str(table)).select(
                    sf.lit(f"{layer}/{table.name}").alias("table"), "_source_file", "_record_position",
                    "_quarantine_reason" if layer == "quarantine" else sf.lit(None).cast("string").alias(
                        "_quarantine_reason")
                )
            )
    return reduce(DataFrame.unionByName, frames)


def _per_file(rows: DataFrame) -> Counter[str]:
    counted = rows.groupBy("_source_file").count().collect()  # one row per source file
    return Counter({"/".join(r["_source_file"].rsplit("/", 2)[-2:]): int(r["count"]) for r in counted})


def test_synthea_csv_fhir_ndjson_and_hl7_samples(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    config = load_config("test", environ={}, lakehouse=str(tmp_path / "lh"))
    for folder in ("synthea-csv-ma27", "fhir-bulk-ndjson", "hl7v2-messages"):
        ingest(spark, config, str(shared_data / folder))
    rows = _all_rows(spark, tmp_path / "lh")
    per_file = _per_file(rows)

    expected: Counter[str] = Counter()
    for path in sorted((shared_data / "synthea-csv-ma27").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            expected[f"{path.parent.name}/{path.name}"] = sum(1 for _ in csv.reader(handle)) - 1
    for path in sorted((shared_data / "fhir-bulk-ndjson").glob("*.ndjson*")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
            expected[f"{path.parent.name}/{path.name}"] = sum(1 for line in handle if line.strip())
    hl7_files = sorted((shared_data / "hl7v2-messages").glob("*.hl7"))
    for path in hl7_files:
        expected[f"{path.parent.name}/{path.name}"] = 1  # one message per file (SOURCE.md)
    for folder in ("synthea-csv-ma27", "fhir-bulk-ndjson", "hl7v2-messages"):
        expected[f"{folder}/SOURCE.md"] = 1  # documentation files: quarantined as unknown_format, not lost
    expected["fhir-bulk-ndjson/log.ndjson"] = 1  # the bulk export's log is not FHIR: one unknown_format row
    assert per_file == expected

    reasons = Counter(
        (r["table"], r["_quarantine_reason"]) for r in rows.where("_quarantine_reason is not null").collect()
    )
    assert reasons == Counter({("quarantine/unrecognised_files", "unknown_format"): 4})

    # key fields equal the source values
    with open(shared_data / "synthea-csv-ma27" / "patients.csv", newline="", encoding="utf-8") as handle:
        source_patients = {(r["Id"], r["BIRTHDATE"], r["GENDER"]) for r in csv.DictReader(handle)}
    bronze_patients = spark.read.format("delta").load(config.table_path("bronze", "synthea_patients"))
    got = {(r["Id"], str(r["BIRTHDATE"]), r["GENDER"]) for r in bronze_patients.collect()}
    assert got == source_patients
    with gzip.open(shared_data / "fhir-bulk-ndjson" / "Patient.000.ndjson.gz", "rt", encoding="utf-8") as handle:
        fhir_source = {(p["id"], p["birthDate"], p["gender"]) for p in map(json.loads, handle)}
    fhir_patients = spark.read.format("delta").load(config.table_path("bronze", "fhir_patient"))
    assert {(r["resource_id"], str(r["birth_date"]), r["gender"]) for r in fhir_patients.collect()} == fhir_source
    control_ids = set()
    for path in hl7_files:
        text = path.read_bytes().decode("utf-8-sig")
        msh = next(seg for seg in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if seg.startswith("MSH"))
        control_ids.add(msh.split(msh[3])[9])
    messages = spark.read.format("delta").load(config.table_path("bronze", "hl7v2_messages"))
    assert {r["message_control_id"] for r in messages.collect()} == control_ids


def test_physionet_long_format_records(spark: SparkSession, shared_data: Path, tmp_path: Path) -> None:
    import tarfile

    src = tmp_path / "physionet"
    src.mkdir()
    expected: Counter[str] = Counter()
    with tarfile.open(shared_data / "physionet-challenge-2012-set-a" / "set-a.tar.gz") as archive:
        members = sorted((m for m in archive.getmembers() if m.isfile() and m.name.endswith(".txt")),
                         key=lambda m: m.name)[:25]
        for member in members:
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
            name = member.name.rsplit("/", 1)[-1]
            (src / name).write_bytes(data)
            expected[f"physionet/{name}"] = sum(1 for line in data.decode().splitlines() if line.strip()) - 1
    config = load_config("test", environ={}, lakehouse=str(tmp_path / "lh"))
    result = ingest(spark, config, str(src))
    assert [(t.table, t.rows_quarantined) for t in result.tables] == [("device_vitals", 0)]
    rows = _all_rows(spark, tmp_path / "lh")
    assert _per_file(rows) == expected
    vitals = spark.read.format("delta").load(config.table_path("bronze", "device_vitals"))
    ids = {r["record_id"] for r in vitals.select("record_id").distinct().collect()}
    assert ids == {key.split("/")[-1].removesuffix(".txt") for key in expected}
