"""``medspark restore`` and ``medspark history``: time travel on a tiny path-based lakehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.cli.main import main
from medspark.config import load_config
from medspark.ops.timetravel import restore

SCHEMA = "visit_occurrence_id bigint, person_id bigint, visit_concept_id int"
V0 = [(1, 10, 9201), (2, 11, 9202)]
V1_APPENDED = [(3, 12, 9203)]
V2 = [(4, 13, 9201)]


def _three_versions(spark: SparkSession, path: str) -> None:
    spark.createDataFrame(V0, SCHEMA).write.format("delta").save(path)
    spark.createDataFrame(V1_APPENDED, SCHEMA).write.format("delta").mode("append").save(path)
    spark.createDataFrame(V2, SCHEMA).write.format("delta").mode("overwrite").save(path)


def _rows(spark: SparkSession, path: str):  # type: ignore[no-untyped-def]
    return spark.read.format("delta").load(path)


def test_restore_to_version_zero_then_to_a_timestamp(spark: SparkSession, tmp_path: Path) -> None:
    lakehouse = str(tmp_path / "lh")
    path = f"{lakehouse}/research/visit_occurrence"
    _three_versions(spark, path)

    config = load_config("test", lakehouse=lakehouse)

    result = restore(spark, config, "research/visit_occurrence", version=0)

    assert (result.from_version, result.to_version, result.new_version) == (2, 0, 3)
    assert "restored to version 0" in result.summary()
    assertDataFrameEqual(_rows(spark, path), spark.createDataFrame(V0, SCHEMA))
    newest = DeltaTable.forPath(spark, path).history(1).first()
    assert (newest["version"], newest["operation"], newest["operationParameters"]["version"]) == (3, "RESTORE", "0")
    logged = _rows(spark, f"{lakehouse}/ops/run_log").where("job = 'restore' AND table_name IS NULL").collect()
    assert len(logged) == 1 and logged[0]["status"] == "succeeded"
    assert logged[0]["message"] == "research/visit_occurrence restored from version 2 to version 0 (new version 3)"

    # by time: the commit time of version 1 selects version 1 (v0 plus the appended row)
    at_v1 = DeltaTable.forPath(spark, path).history().where("version = 1").first()["timestamp"]
    result = restore(spark, config, "visit_occurrence", timestamp=at_v1.isoformat(sep=" "))
    assert (result.from_version, result.to_version, result.new_version) == (3, 1, 4)
    assertDataFrameEqual(_rows(spark, path), spark.createDataFrame(V0 + V1_APPENDED, SCHEMA))


def test_bad_version_unknown_or_ambiguous_table_exit_2(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lakehouse = str(tmp_path / "lh")
    path = f"{lakehouse}/research/person"
    _three_versions(spark, path)
    base = ["--config", "test", "--lakehouse", lakehouse]

    def one_error_line(args: list[str]) -> str:
        assert main([*base, *args]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medspark")]
        assert len(errors) == 1 and errors[0].startswith("medspark: error:")  # log lines aside, one error line
        return errors[0]

    assert "valid versions: 0..2" in one_error_line(["restore", "research/person", "--version", "7"])
    assert "no Delta table 'research/nobody'" in one_error_line(["restore", "research/nobody", "--version", "0"])
    assert "not allowed with argument" in one_error_line(
        ["restore", "research/person", "--version", "0", "--timestamp", "2024-01-01"])
    assert "outside its history; valid versions: 0..2" in one_error_line(
        ["restore", "research/person", "--timestamp", "2001-01-01"])
    spark.createDataFrame(V0, SCHEMA).write.format("delta").save(f"{lakehouse}/silver/person")
    assert "several layers" in one_error_line(["restore", "person", "--version", "0"])
    assert DeltaTable.forPath(spark, path).history(1).first()["version"] == 2  # nothing was restored


def test_history_prints_every_version(spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lakehouse = str(tmp_path / "lh")
    _three_versions(spark, f"{lakehouse}/gold/visit_stats")

    assert main(["--config", "test", "--lakehouse", lakehouse, "history", "visit_stats"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("history of gold/visit_stats")
    assert [(line.split()[0], line.split()[3]) for line in lines[2:]] == [("2", "WRITE"), ("1", "WRITE"),
                                                                          ("0", "WRITE")]
