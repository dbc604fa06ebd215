"""Exactly-once mechanics of the bronze job: re-run, incremental batches, crash replay, duplicates, accounting."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.config import MedsparkConfig, load_config
from medspark.ingestion import job as ingest_job
from medspark.ingestion import registry
from medspark.ingestion.contract import SourceFile
from medspark.ingestion.job import AccountingError, ingest

VOLATILE = ["_run_id", "_ingested_at"]


def _patient(i: int) -> str:
    return json.dumps(
        {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "birthDate": f"19{50 + i}-01-02",
         "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.4242.1", "value": f"MRN{i}"}]}
    )


def _condition(i: int, patient: int) -> str:
    return json.dumps(
        {"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": f"Patient/p{patient}"},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
         "onsetDateTime": "2020-05-01T10:00:00-05:00"}
    )


def _write_first_batch(src: Path) -> None:
    (src / "fhir").mkdir(parents=True)
    (src / "fhir" / "Patient.000.ndjson").write_text(
        "\n".join([_patient(1), _patient(2), "{not json", _patient(1)]) + "\n"  # line 4 duplicates line 1
    )
    (src / "fhir" / "Condition.000.ndjson").write_text("\n".join([_condition(1, 1), _condition(2, 2)]) + "\n")
    (src / "csv").mkdir()
    (src / "csv" / "patients.csv").write_text(
        "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,"
        "BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE\n"
        "u1,1980-01-01,,999-11-1111,,,,Ann,Lee,,,M,white,nonhispanic,F,Boston,1 Main St,Boston,MA,Suffolk,02110,"
        "42.3,-71.0,100.0,50.0\n"
        "u2,1980-02-30,,999-22-2222,,,,Bob,Ray,,,S,white,nonhispanic,M,Boston,2 Main St,Boston,MA,Suffolk,02110,"
        "42.3,-71.0,100.0,50.0\n"
    )
    (src / "junk.bin").write_bytes(b"\x00\x01\x02 not a clinical format")
    (src / "empty.ndjson").write_bytes(b"")
    (src / "_manifest").mkdir()
    (src / "_manifest" / "ignored.jsonl").write_text('{"metric": "x", "value": 1}\n')


def _config(tmp_path: Path, name: str) -> MedsparkConfig:
    return load_config("test", environ={}, lakehouse=str(tmp_path / name))


def _table(spark: SparkSession, config: MedsparkConfig, layer: str, name: str) -> DataFrame:
    return spark.read.format("delta").load(config.table_path(layer, name))


def _snapshot(spark: SparkSession, config: MedsparkConfig) -> dict[str, DataFrame]:
    tables = {}
    for layer in ("bronze", "quarantine"):
        root = Path(config.lakehouse) / layer
        for path in sorted(root.iterdir()) if root.exists() else []:
            tables[f"{layer}/{path.name}"] = _table(spark, config, layer, path.name).drop(*VOLATILE)
    return tables


def _assert_same_tables(spark: SparkSession, left: MedsparkConfig, right: MedsparkConfig) -> None:
    a, b = _snapshot(spark, left), _snapshot(spark, right)
    assert sorted(a) == sorted(b)
    for name in a:
        assertDataFrameEqual(a[name], b[name].select(*a[name].columns))


def _reading(i: int) -> str:
    return json.dumps({"device_id": "mon-1", "patient_mrn": f"MRN{i % 2}", "timestamp": f"2024-01-01T10:0{i}:00-05:00",
                       "metric": "heart_rate", "value": 60 + i, "unit": "/min"})


@pytest.fixture
def first_batch(tmp_path: Path) -> Path:
    src = tmp_path / "landing"
    _write_first_batch(src)
    return src


@pytest.fixture
def light_batch(tmp_path: Path) -> Path:
    """One-entity source (vitals) plus an unrecognised file: the mechanics tests stay cheap."""
    src = tmp_path / "light"
    (src / "vitals").mkdir(parents=True)
    (src / "vitals" / "v-000.jsonl").write_text(
        "\n".join([_reading(1), _reading(2), '{"device_id": "mon-1", "metric"', _reading(3), _reading(1)]) + "\n"
    )
    (src / "junk.bin").write_bytes(b"\x00\x01 not clinical")
    return src


def test_first_run_routes_quarantines_and_accounts(spark: SparkSession, tmp_path: Path, first_batch: Path) -> None:
    config = _config(tmp_path, "lh")
    result = ingest(spark, config, str(first_batch))
    assert result.batches == [1]
    assert result.files_new == 5  # _manifest/ is skipped
    counts = {t.table: (t.rows_read, t.rows_written, t.rows_quarantined) for t in result.tables}
    assert counts["fhir_patient"] == (3, 2, 1)  # line 4 duplicates line 1
    assert counts["fhir_other"] == (1, 0, 1)  # invalid JSON: its resource type is unknowable
    assert counts["fhir_condition"] == (2, 2, 0)
    assert counts["synthea_patients"] == (2, 1, 1)
    assert counts["unrecognised_files"] == (2, 0, 2)
    reasons = (
        _table(spark, config, "quarantine", "fhir_patient")
        .unionByName(_table(spark, config, "quarantine", "fhir_other"))
        .select(sf.element_at(sf.split("_source_file", "/"), -1).alias("file"), "_record_position",
                "_quarantine_reason")
    )
    assertDataFrameEqual(
        reasons,
        spark.createDataFrame(
            [("Patient.000.ndjson", 3, "invalid_json"), ("Patient.000.ndjson", 4, "duplicate_record")],
            "file string, _record_position long, _quarantine_reason string",
        ),
    )
    csv_reason = _table(spark, config, "quarantine", "synthea_patients").select("_record_position",
                                                                               "_quarantine_reason")
    assertDataFrameEqual(csv_reason, spark.createDataFrame([(3, "invalid_date:BIRTHDATE")], csv_reason.schema))
    unknown = _table(spark, config, "quarantine", "unrecognised_files").select(
        sf.element_at(sf.split("_source_file", "/"), -1).alias("file"), "_quarantine_reason"
    )
    assertDataFrameEqual(
        unknown,
        spark.createDataFrame([("junk.bin", "unknown_format"), ("empty.ndjson", "empty_file")], unknown.schema),
    )
    lineage = _table(spark, config, "bronze", "fhir_patient").orderBy("_record_position").first()
    assert lineage is not None
    assert lineage["_source_file"] == "file:" + str(first_batch / "fhir" / "Patient.000.ndjson")
    assert lineage["_record_position"] == 1
    assert lineage["_raw"] == _patient(1)
    assert lineage["_batch_id"] == 1 and lineage["_run_id"] == result.run_id
    assert lineage["_source_format"] == "fhir-ndjson"
    import hashlib

    assert lineage["_record_hash"] == hashlib.sha256(_patient(1).encode()).hexdigest()
    log = _table(spark, config, "ops", "run_log").where(sf.col("run_id") == result.run_id)
    totals = log.where("table_name is null").first()
    assert totals is not None and totals["status"] == "succeeded"
    assert totals["rows_read"] == totals["rows_written"] + totals["rows_quarantined"] == 4 + 2 + 2 + 2


def test_rerun_adds_nothing_and_new_files_add_only_theirs(
    spark: SparkSession, tmp_path: Path, light_batch: Path
) -> None:
    config = _config(tmp_path, "lh")
    first = ingest(spark, config, str(light_batch))
    assert {t.table: (t.rows_read, t.rows_written, t.rows_quarantined) for t in first.tables} == {
        "device_vitals": (5, 3, 2), "unrecognised_files": (1, 0, 1)
    }
    before = {name: frame.count() for name, frame in _snapshot(spark, config).items()}
    again = ingest(spark, config, str(light_batch))
    assert again.batches == [] and again.files_new == 0 and again.tables == []
    assert {name: frame.count() for name, frame in _snapshot(spark, config).items()} == before
    # second delivery: one new reading and a re-delivery of an already ingested one
    (light_batch / "vitals" / "v-001.jsonl").write_text(_reading(4) + "\n" + _reading(2) + "\n")
    third = ingest(spark, config, str(light_batch))
    assert third.batches == [2] and third.files_new == 1
    vitals = _table(spark, config, "bronze", "device_vitals")
    assert vitals.where("_batch_id = 2").select("_raw").collect() == [(_reading(4),)]
    dup = _table(spark, config, "quarantine", "device_vitals").where("_batch_id = 2")
    assert [(r["_record_position"], r["_quarantine_reason"]) for r in dup.collect()] == [(2, "duplicate_record")]
    # a file appended to in place is read again in full: its old records are re-deliveries, only the new one lands
    appended = light_batch / "vitals" / "v-001.jsonl"
    appended.write_text(appended.read_text() + _reading(5) + "\n")
    os.utime(appended, (1_900_000_000, 1_900_000_000))  # a new modification time even on a coarse clock
    fourth = ingest(spark, config, str(light_batch))
    assert fourth.batches == [3] and fourth.files_new == 1
    assert vitals.where("_batch_id = 3").select("_raw").collect() == [(_reading(5),)]
    assert vitals.count() == 5  # readings 1, 2, 3, 4, 5: each once
    redelivered = _table(spark, config, "quarantine", "device_vitals").where("_batch_id = 3")
    assert sorted((r["_record_position"], r["_quarantine_reason"]) for r in redelivered.collect()) == [
        (1, "duplicate_record"), (2, "duplicate_record")
    ]


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("crash_after", [1, 2, 3])  # after bronze, after quarantine, after the last write
def test_crash_mid_batch_then_rerun_equals_clean_run(
    spark: SparkSession, tmp_path: Path, light_batch: Path, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    first_batch = light_batch
    clean = _config(tmp_path, "clean")
    ingest(spark, clean, str(first_batch))
    crashed = _config(tmp_path, "crashed")
    calls = {"n": 0}

    def crash() -> None:
        calls["n"] += 1
        if calls["n"] == crash_after:
            raise _Crash("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(ingest_job, "_after_write", crash)
        with pytest.raises(_Crash):
            ingest(spark, crashed, str(first_batch))
    result = ingest(spark, crashed, str(first_batch))
    assert result.recovered == [1] and result.batches == []
    _assert_same_tables(spark, clean, crashed)
    log = _table(spark, crashed, "ops", "run_log").where("table_name is null")
    assert sorted(r["status"] for r in log.collect()) == ["failed", "succeeded"]


@pytest.mark.slow
def test_sigkill_mid_batch_then_rerun_equals_clean_run(
    spark: SparkSession, tmp_path: Path, light_batch: Path
) -> None:
    first_batch = light_batch
    clean = _config(tmp_path, "clean")
    ingest(spark, clean, str(first_batch))
    killed = _config(tmp_path, "killed")
    env = {**os.environ, ingest_job.KILL_ENV: "write:2", "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "medspark.cli.main", "--config", "test", "--lakehouse", killed.lakehouse,
         "ingest", "--source", str(first_batch)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    result = ingest(spark, killed, str(first_batch))
    assert result.recovered == [1]
    _assert_same_tables(spark, clean, killed)


def test_csv_record_with_line_breaks_lands_whole_and_accounts(spark: SparkSession, tmp_path: Path) -> None:
    header = (
        "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,"
        "BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE"
    )

    def row(i: int, address: str) -> str:
        return (f"u{i},1980-01-0{i},,999-11-111{i},,,,Ann,Lee,,,M,white,nonhispanic,F,Boston,{address},Boston,MA,"
                "Suffolk,02110,42.3,-71.0,100.0,50.0")

    src = tmp_path / "csv"
    src.mkdir()
    multi = row(1, '"1 Main St\r\n\r\nApt 2"')  # CRLF line breaks inside the quoted field, and a blank line
    (src / "patients.csv").write_bytes(
        "\r\n".join([header, multi, row(2, '2 "Main St'), row(3, "3 Main St")]).encode() + b"\r\n"
    )
    config = _config(tmp_path, "lh")
    result = ingest(spark, config, str(src))
    counts = {t.table: (t.rows_read, t.rows_written, t.rows_quarantined) for t in result.tables}
    assert counts["synthea_patients"] == (3, 2, 1)  # 4 non-blank lines after the header: 3 records
    bronze = _table(spark, config, "bronze", "synthea_patients").orderBy("_record_position").collect()
    assert [(r["_record_position"], r["Id"], r["ADDRESS"]) for r in bronze] == [
        (2, "u1", "1 Main St\n\nApt 2"), (6, "u3", "3 Main St")
    ]
    assert bronze[0]["_raw"] == row(1, '"1 Main St\n\nApt 2"')
    assert "_record_lines" not in _table(spark, config, "bronze", "synthea_patients").columns
    rejected = _table(spark, config, "quarantine", "synthea_patients").first()
    assert rejected is not None and (rejected["_record_position"], rejected["_quarantine_reason"]) == (
        5, "csv_unbalanced_quotes")
    again = ingest(spark, config, str(src))
    assert again.batches == [] and _table(spark, config, "bronze", "synthea_patients").count() == 2


def test_parser_that_loses_a_record_fails_the_batch(
    spark: SparkSession, tmp_path: Path, light_batch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_batch = light_batch
    real = registry.get_format("vitals-jsonl")

    def lossy(inputs: DataFrame, files):  # type: ignore[no-untyped-def]
        return real.parse(inputs.where("_record_position <> 2"), files)

    broken = dataclasses.replace(real, parse=lossy)
    monkeypatch.setattr(ingest_job, "get_format", lambda name: broken if name == "vitals-jsonl" else
                        registry.get_format(name))
    config = _config(tmp_path, "lh")
    with pytest.raises(AccountingError, match="vitals-jsonl: 5 line"):
        ingest(spark, config, str(first_batch))
    assert not (Path(config.lakehouse) / "bronze").exists()
    status = _table(spark, config, "ops", "run_log").where("table_name is null").first()
    assert status is not None and status["status"] == "failed"


@pytest.mark.parametrize(
    ("sizes", "split_bytes", "cores", "expected"),
    [
        ([35_000] * 207, 32 << 20, 2, 2),  # many small Bundles: one partition per core, not one per file
        ([100 << 20] * 3, 32 << 20, 2, 3),  # large files: never more partitions than files
        ([10 << 20] * 20, 32 << 20, 2, 7),  # 200 MiB in 32 MiB portions
        ([0], 32 << 20, 8, 1),  # one empty file
    ],
)
def test_whole_file_formats_pack_files_into_partitions(
    sizes: list[int], split_bytes: int, cores: int, expected: int
) -> None:
    files = [SourceFile(f"file:/s/{i}.json", size, 0, "fhir-bundle", b"") for i, size in enumerate(sizes)]
    assert ingest_job.file_partitions(files, split_bytes, cores) == expected
