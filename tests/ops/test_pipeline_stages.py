"""Stage fingerprints and skipping, with stand-in stage bodies on a tiny lakehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from medspark.config import load_config
from medspark.pipeline import PipelineStageError, _run_stage, fingerprint, layer_versions


def test_layer_versions_read_the_transaction_log(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config("test", lakehouse=str(tmp_path / "lh"))
    assert layer_versions(spark, config, "research") == {}
    for _ in range(3):
        spark.range(2).write.format("delta").mode("append").save(config.table_path("research", "person"))
    spark.range(1).write.format("delta").save(config.table_path("research", "death"))
    (tmp_path / "lh" / "research" / "_models").mkdir()  # not a Delta table: ignored
    assert layer_versions(spark, config, "research") == {"research/person": 2, "research/death": 0}


def test_a_stage_runs_again_only_when_what_it_reads_writes_or_is_configured_with_changes(
    spark: SparkSession, tmp_path: Path
) -> None:
    config = load_config("test", lakehouse=str(tmp_path / "lh"))
    calls: list[str] = []

    def body() -> str:
        calls.append("gold")
        spark.range(1).write.format("delta").mode("append").save(config.table_path("gold", "person_counts"))
        return "gold written"

    def run(cfg=config, force: bool = False) -> str:  # type: ignore[no-untyped-def]
        return _run_stage(spark, cfg, "run-x", "gold", body, source="", source_format="auto", force=force).status

    spark.range(3).write.format("delta").save(config.table_path("research", "person"))
    assert run() == "succeeded" and len(calls) == 1
    assert run() == "skipped" and len(calls) == 1  # its own write is part of the recorded fingerprint
    assert run(force=True) == "succeeded" and len(calls) == 2
    spark.range(1).write.format("delta").mode("append").save(config.table_path("research", "person"))
    assert run() == "succeeded" and len(calls) == 3  # an input changed
    spark.range(1).write.format("delta").mode("append").save(config.table_path("gold", "person_counts"))
    assert run() == "succeeded" and len(calls) == 4  # an output changed under it (e.g. a restore)
    DeltaTable.forPath(spark, config.table_path("gold", "person_counts")).optimize().executeCompaction()
    DeltaTable.forPath(spark, config.table_path("research", "person")).optimize().executeCompaction()
    assert DeltaTable.forPath(spark, config.table_path("gold", "person_counts")).history(1).first()["operation"] == (
        "OPTIMIZE")
    assert run() == "skipped" and len(calls) == 4  # compaction (medspark maintain) changes no data
    spark.range(1).write.format("delta").save(config.table_path("quarantine", "x"))
    assert run() == "skipped" and len(calls) == 4  # another layer is not its business
    changed = load_config("test", lakehouse=config.lakehouse, overrides=["gold.min_cell_count=20"])
    assert run(changed) == "succeeded" and len(calls) == 5  # its configuration changed


def test_the_bronze_fingerprint_follows_the_source_listing(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config("test", lakehouse=str(tmp_path / "lh"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("{}\n")
    first, facts = fingerprint(spark, config, "bronze", source=str(src))
    assert facts["source"]["files"] == 1  # type: ignore[index]
    assert fingerprint(spark, config, "bronze", source=str(src))[0] == first
    (src / "_hidden").write_text("ignored like the ingest ignores it\n")
    assert fingerprint(spark, config, "bronze", source=str(src))[0] == first
    (src / "b.jsonl").write_text("{}\n")
    assert fingerprint(spark, config, "bronze", source=str(src))[0] != first


def test_a_failing_stage_is_recorded_and_reported_with_its_exit_code(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config("test", lakehouse=str(tmp_path / "lh"))

    def body() -> str:
        raise KeyError("MRN-VALUE-1")

    with pytest.raises(PipelineStageError) as caught:
        _run_stage(spark, config, "run-y", "research", body, source="", source_format="auto", force=False)
    assert caught.value.exit_code == 1 and "stage 'research' failed" in str(caught.value)
    state = spark.read.format("delta").load(config.table_path("ops", "pipeline_state")).collect()
    assert [(r["stage"], r["status"], r["message"]) for r in state] == [("research", "failed", "failed: KeyError")]
    # The run log carries the error type only, never the message (it may quote a value).
    logged = spark.read.format("delta").load(config.table_path("ops", "run_log")).collect()
    assert [r["message"] for r in logged] == ["failed: KeyError"]
