"""Generator -> bronze: every generated record lands in bronze or quarantine, and the quarantine holds exactly the
defects the generator's manifest says it injected, each with the reason it names."""

from __future__ import annotations

import json
from collections import Counter
from functools import reduce
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.config import load_config
from medspark.ingestion.job import ingest
from medspark.synthetic import generate

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("compiled_codegen")]


def _tables(spark: SparkSession, lakehouse: Path, layer: str) -> DataFrame:
    frames = [
        spark.read.format("delta").load(str(path)).select(
            sf.lit(path.name).alias("table"), "_source_file", "_record_position", "_source_format",
            (sf.col("_quarantine_reason") if layer == "quarantine" else sf.lit(None).cast("string")).alias("reason"),
        )
        for path in sorted((lakehouse / layer).iterdir())
    ]
    return reduce(DataFrame.unionByName, frames)


def test_generated_population_round_trips_through_bronze(spark: SparkSession, tmp_path: Path, viewfs: str) -> None:
    # Source and lakehouse are both read and written through viewfs://, a Hadoop filesystem standing in for s3a://
    # or hdfs://; the checks read what landed on the local disk behind the mount.
    src = tmp_path / "viewfs" / "src"
    generate(src, patients=200, seed=11, defect_rate=0.03, chunk_patients=100, workers=1)
    config = load_config("test", environ={}, lakehouse=f"{viewfs}/lh")
    result = ingest(spark, config, f"{viewfs}/src")
    assert all(t.balanced for t in result.tables)

    manifest = [json.loads(line) for path in sorted((src / "_manifest").glob("defects-*.jsonl"))
                for line in path.read_text().splitlines()]
    generated: Counter[str] = Counter()
    for path in sorted((src / "_manifest").glob("records-*.json")):
        for fmt, entities in json.loads(path.read_text())["by_entity"].items():
            generated[fmt] += sum(entities.values())

    bronze = _tables(spark, tmp_path / "viewfs" / "lh", "bronze")
    quarantine = _tables(spark, tmp_path / "viewfs" / "lh", "quarantine")
    landed = Counter({r["_source_format"]: int(r["count"]) for r in
                      bronze.unionByName(quarantine).groupBy("_source_format").count().collect()})
    assert landed == generated  # nothing lost, nothing invented

    prefix = f"{viewfs}/src/"
    expected = {(prefix + d["file"], d["position"]): d["expected_reason"] for d in manifest if d["layer"] == "bronze"}
    got = {(r["_source_file"], r["_record_position"]): r["reason"] for r in quarantine.collect()}
    assert len(expected) > 50  # the rate produced a meaningful sample of every kind
    assert Counter(d["kind"] for d in manifest if d["layer"] == "bronze").keys() >= {
        "invalid_json", "hl7_truncated", "invalid_date", "missing_identifier", "duplicate_record",
        "invalid_encoding", "x12_bad_claim"}
    missing = {k: v for k, v in expected.items() if got.get(k) != v}
    unexpected = {k: v for k, v in got.items() if k not in expected}
    assert missing == {} and unexpected == {}

    silver_defects = {(prefix + d["file"], d["position"]) for d in manifest if d["layer"] == "silver"}
    assert silver_defects, "the generator injects codes only silver can catch"
    in_bronze = {(r["_source_file"], r["_record_position"]) for r in bronze.collect()}
    assert silver_defects <= in_bronze
