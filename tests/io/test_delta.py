"""Idempotent appends and the commit metrics the ingest accounting reads back."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from medspark.io.delta import append_idempotent, committed_rows


def test_committed_rows_reads_the_commit_of_each_batch(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    append_idempotent(spark.range(3), path, app_id="test.app", version=1)
    append_idempotent(spark.range(5), path, app_id="test.app", version=2)
    # A replay of batch 1 is skipped by Delta; its rows are still those of the original commit.
    append_idempotent(spark.range(7), path, app_id="test.app", version=1)
    assert spark.read.format("delta").load(path).count() == 8
    assert committed_rows(spark, path, app_id="test.app", version=1) == 3
    assert committed_rows(spark, path, app_id="test.app", version=2) == 5
    assert committed_rows(spark, path, app_id="test.app", version=3) is None
    assert committed_rows(spark, path, app_id="other.app", version=1) is None
