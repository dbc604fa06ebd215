"""``ops/silver_runs``: the plan-then-commit log that makes the silver build incremental and restartable.

A silver run consumes a contiguous range of bronze batch ids ``(from_batch, to_batch]`` — only batches the ingest
ledger has committed, so a silver run never sees half of an ingest batch. The range is planned before anything is
written, under a run sequence number that stamps every silver write (``txnAppId``/``txnVersion`` for appends;
MERGEs are idempotent by their keys). A run that dies is followed by one that replays the same range and sequence
number, so the tables end as after one clean run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql import types as T

from medspark.config.model import MedsparkConfig
from medspark.errors import ConcurrentRunError
from medspark.io.delta import table_exists

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_seq", T.LongType(), False),
        T.StructField("state", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("at", T.TimestampType(), False),
        T.StructField("from_batch", T.LongType(), False),
        T.StructField("to_batch", T.LongType(), False),
    ]
)
APP_ID = "medspark.silver.runs"


@dataclass(frozen=True)
class SilverPlan:
    """The bronze batch range one silver run consumes."""

    run_seq: int
    from_batch: int  # exclusive
    to_batch: int  # inclusive
    run_id: str
    replay: bool = False
    planned_at: dt.datetime | None = None  # when the range was planned: the run's logical time (history rows)


def committed_bronze_batch(spark: SparkSession, config: MedsparkConfig) -> int:
    """The highest bronze batch id below which every planned ingest batch has committed (0 when none)."""
    path = config.table_path("ops", "ingest_batches")
    if not table_exists(spark, path):
        return 0
    entries = spark.read.format("delta").load(path)
    row = entries.groupBy("batch_id").agg(sf.max(sf.col("state") == "committed").alias("done")).agg(
        sf.min(sf.when(~sf.col("done"), sf.col("batch_id"))).alias("first_open"),
        sf.max(sf.when(sf.col("done"), sf.col("batch_id"))).alias("last_done"),
    ).first()
    if row is None or row["last_done"] is None:
        return 0
    if row["first_open"] is not None:
        return int(row["first_open"]) - 1
    return int(row["last_done"])


class SilverRuns:
    """The silver run log of one lakehouse."""

    def __init__(self, spark: SparkSession, config: MedsparkConfig) -> None:
        self.spark = spark
        self.path = config.table_path("ops", "silver_runs")

    def _entries(self) -> DataFrame | None:
        if not table_exists(self.spark, self.path):
            return None
        return self.spark.read.format("delta").load(self.path)

    def next_plan(self, run_id: str, upto: int) -> SilverPlan | None:
        """The uncommitted run to replay, else a new run over the batches after the last committed one; None when
        there is nothing new."""
        entries = self._entries()
        if entries is not None:
            committed = entries.where("state = 'committed'").select("run_seq")
            open_runs = entries.where("state = 'planned'").join(committed, "run_seq", "left_anti") \
                .orderBy("run_seq").limit(1).collect()
            if open_runs:
                row = open_runs[0]
                return SilverPlan(int(row["run_seq"]), int(row["from_batch"]), int(row["to_batch"]), row["run_id"],
                                  replay=True, planned_at=row["at"])
            top = entries.where("state = 'committed'").agg(sf.max("run_seq"), sf.max("to_batch")).first()
            last_seq = int(top[0]) if top and top[0] is not None else 0
            last_batch = int(top[1]) if top and top[1] is not None else 0
        else:
            last_seq, last_batch = 0, 0
        if upto <= last_batch:
            return None
        plan = SilverPlan(last_seq + 1, last_batch, upto, run_id)
        self._append(plan, "planned")
        entries = self._entries()
        assert entries is not None  # just written
        owner = entries.where(
            (sf.col("run_seq") == plan.run_seq) & (sf.col("state") == "planned")).select("run_id", "at").first()
        if owner is None or owner["run_id"] != run_id:
            raise ConcurrentRunError(
                f"silver run {plan.run_seq} was planned by another silver run at the same time; "
                "run one silver build per lakehouse at a time (this run wrote nothing)")
        return SilverPlan(plan.run_seq, plan.from_batch, plan.to_batch, run_id, planned_at=owner["at"])

    def _append(self, plan: SilverPlan, state: str) -> None:
        frame = self.spark.createDataFrame(
            [(plan.run_seq, state, plan.run_id, dt.datetime.now(dt.UTC), plan.from_batch, plan.to_batch)],
            RUNS_SCHEMA)
        frame.write.format("delta").mode("append").option("txnAppId", f"{APP_ID}.{state}") \
            .option("txnVersion", plan.run_seq).save(self.path)

    def commit(self, plan: SilverPlan) -> None:
        """Mark the run's range as fully conformed."""
        self._append(plan, "committed")
