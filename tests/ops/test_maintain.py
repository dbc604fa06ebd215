"""``medspark maintain`` on tiny path-based lakehouses: compaction, Z-order, properties, VACUUM and its guard."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.cli.main import main
from medspark.config import load_config
from medspark.errors import UsageError
from medspark.ops.maintain import RETENTION_CHECK, maintain
from medspark.ops.timetravel import restore

CONDITIONS = "person_id bigint, condition_concept_id int, condition_start_date date"
CONDITION_ROWS = [
    (1, 201826, dt.date(2020, 1, 5)),
    (2, 320128, dt.date(2021, 3, 1)),
    (3, 201826, dt.date(2019, 7, 9)),
    (1, 4329847, dt.date(2022, 2, 2)),
    (4, 0, None),
    (2, 201826, dt.date(2020, 12, 31)),
]
VITALS = "_batch_id long, metric string, value double"
VITAL_ROWS = [(1, "spo2", 97.0), (1, "hr", 61.0), (2, "spo2", 95.0), (2, "hr", 70.0), (3, "hr", 88.0), (3, "rr", 14.0)]


def _append_in_pieces(spark: SparkSession, path: str, rows: list[tuple[object, ...]], ddl: str) -> None:
    for start in range(0, len(rows), 2):  # three small appends: several small files to compact
        spark.createDataFrame(rows[start : start + 2], ddl).write.format("delta").mode("append").save(path)


def _files(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).detail().first()["numFiles"])


def _properties(spark: SparkSession, path: str) -> dict[str, str]:
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}


def _last_optimize(spark: SparkSession, path: str) -> dict[str, str]:
    rows = DeltaTable.forPath(spark, path).history().where("operation = 'OPTIMIZE'").orderBy("version").collect()
    assert rows, "no OPTIMIZE in the history"
    return dict(rows[-1]["operationParameters"])


def _parquet_on_disk(path: str) -> set[str]:
    return {
        os.path.join(root, name)
        for root, dirs, names in os.walk(path)
        if "_delta_log" not in root
        for name in names
        if name.endswith(".parquet") and not name.startswith(".")
    }


def test_optimize_compacts_zorders_sets_properties_and_keeps_rows(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lakehouse = tmp_path / "lh"
    config = load_config("test", lakehouse=str(lakehouse), overrides=[
        "maintain.zorder.research/condition_occurrence=[person_id, no_such_column, condition_start_date]",
        "maintain.change_data_feed=[bronze/device_vitals]",
    ])
    conditions = config.table_path("research", "condition_occurrence")
    vitals = config.table_path("bronze", "device_vitals")
    _append_in_pieces(spark, conditions, CONDITION_ROWS, CONDITIONS)
    _append_in_pieces(spark, vitals, VITAL_ROWS, VITALS)
    (lakehouse / "gold" / "_models" / "m" / "v1").mkdir(parents=True)  # not Delta: must be left alone
    (lakehouse / "gold" / "_models" / "m" / "v1" / "metadata.json").write_text("{}")
    files_before = {conditions: _files(spark, conditions), vitals: _files(spark, vitals)}
    assert min(files_before.values()) >= 3

    with caplog.at_level(logging.WARNING, logger="medspark.ops.maintain"):
        result = maintain(spark, config, vacuum=False)

    assert [t.table for t in result.tables] == ["bronze/device_vitals", "research/condition_occurrence"]
    for path in (conditions, vitals):
        assert _files(spark, path) == 1
    by_name = {t.table: t for t in result.tables}
    assert by_name["research/condition_occurrence"].files_before == files_before[conditions]
    assert by_name["research/condition_occurrence"].files_after == 1
    assert by_name["research/condition_occurrence"].rows == 6
    assertDataFrameEqual(spark.read.format("delta").load(conditions), spark.createDataFrame(CONDITION_ROWS, CONDITIONS))
    assertDataFrameEqual(spark.read.format("delta").load(vitals), spark.createDataFrame(VITAL_ROWS, VITALS))

    assert json.loads(_last_optimize(spark, conditions)["zOrderBy"]) == ["person_id", "condition_start_date"]
    assert json.loads(_last_optimize(spark, vitals)["zOrderBy"]) == []
    assert any("no_such_column" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    expected = {"delta.checkpointInterval": "10", "delta.logRetentionDuration": "interval 30 days",
                "delta.deletedFileRetentionDuration": "interval 168 hours"}
    research_props, bronze_props = _properties(spark, conditions), _properties(spark, vitals)
    assert {k: research_props.get(k) for k in expected} == expected
    assert {k: bronze_props.get(k) for k in expected} == expected
    assert bronze_props.get("delta.enableChangeDataFeed") == "true"
    assert "delta.enableChangeDataFeed" not in research_props

    log_rows = spark.read.format("delta").load(config.table_path("ops", "run_log")).where("job = 'maintain'")
    assert {(r["table_name"], r["rows_read"], r["rows_written"], r["status"]) for r in log_rows.collect()} == {
        ("bronze/device_vitals", 6, 6, "succeeded"),
        ("research/condition_occurrence", 6, 6, "succeeded"),
        (None, 12, 12, "succeeded"),
    }
    assert len(result.summary().splitlines()) == 2 + 2

    version = DeltaTable.forPath(spark, conditions).history(1).first()["version"]
    maintain(spark, config, vacuum=False, optimize=False, tables=["research/condition_occurrence"])
    # properties already set and nothing to optimize: a second run adds no commit
    assert DeltaTable.forPath(spark, conditions).history(1).first()["version"] == version


def test_short_retention_is_refused_without_the_flag(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lakehouse = tmp_path / "lh"
    path = str(lakehouse / "research" / "t")
    _append_in_pieces(spark, path, VITAL_ROWS, VITALS)
    versions = DeltaTable.forPath(spark, path).history().count()

    code = main(["--config", "test", "--lakehouse", str(lakehouse), "--set", "maintain.vacuum_retention_hours=0",
                 "maintain"])

    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medspark: error:") and "--allow-short-retention" in err[0]
    assert DeltaTable.forPath(spark, path).history().count() == versions
    assert not (lakehouse / "ops").exists()  # refused before the lock or the run log were touched


def test_dry_run_deletes_nothing_and_short_vacuum_ends_time_travel(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lakehouse = tmp_path / "lh"
    path = str(lakehouse / "research" / "t")
    old_rows, new_rows = VITAL_ROWS[:3], VITAL_ROWS[3:]
    spark.createDataFrame(old_rows, VITALS).write.format("delta").save(path)
    spark.createDataFrame(new_rows, VITALS).write.format("delta").mode("overwrite").save(path)
    assertDataFrameEqual(spark.read.format("delta").option("versionAsOf", 0).load(path),
                         spark.createDataFrame(old_rows, VITALS))
    on_disk = _parquet_on_disk(path)
    removable = len(on_disk) - _files(spark, path)
    assert removable > 0
    check_before = spark.conf.get(RETENTION_CHECK, None)
    args = ["--config", "test", "--lakehouse", str(lakehouse), "--set", "maintain.vacuum_retention_hours=0",
            "maintain", "--table", "research/t", "--allow-short-retention", "--no-optimize"]
    versions = DeltaTable.forPath(spark, path).history().count()

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    line = next(x for x in out if x.startswith("research/t "))
    assert line.split()[3] == str(removable)  # table, files, bytes, would remove
    assert _parquet_on_disk(path) == on_disk
    assert DeltaTable.forPath(spark, path).history().count() == versions
    assert not (lakehouse / "ops" / "run_log").exists()

    assert main(args) == 0
    capsys.readouterr()
    assert len(_parquet_on_disk(path)) == len(on_disk) - removable == _files(spark, path)
    with pytest.raises(Exception):  # noqa: B017 - the JVM error type varies; the old files are gone
        spark.read.format("delta").option("versionAsOf", 0).load(path).collect()
    assertDataFrameEqual(spark.read.format("delta").load(path), spark.createDataFrame(new_rows, VITALS))
    assert spark.conf.get(RETENTION_CHECK, None) == check_before
    config = load_config("test", lakehouse=str(lakehouse))
    with pytest.raises(UsageError, match="data files are gone"):
        restore(spark, config, "research/t", version=0)
    run = spark.read.format("delta").load(str(lakehouse / "ops" / "run_log")).where(
        "job = 'maintain' AND table_name IS NULL").collect()
    assert len(run) == 1 and f"{removable} files removed" in run[0]["message"]
