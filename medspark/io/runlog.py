"""``ops/run_log``: one row per (run, table) and one per run, so every run's accounting can be audited.

Each job reports, per table, rows read, rows written and rows quarantined; ``rows_read = rows_written +
rows_quarantined`` is checked before the run is marked successful. Only counts, names and ids are logged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from medspark.config.model import MedsparkConfig

RUN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("table_name", T.StringType(), True),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), True),
        T.StructField("status", T.StringType(), False),
        T.StructField("batch_id", T.LongType(), True),
        T.StructField("rows_read", T.LongType(), True),
        T.StructField("rows_written", T.LongType(), True),
        T.StructField("rows_quarantined", T.LongType(), True),
        T.StructField("table_version", T.LongType(), True),
        T.StructField("message", T.StringType(), True),
    ]
)


def new_run_id(job: str) -> str:
    """A unique, sortable run id: ``<job>-<UTC timestamp>-<random>``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{job}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class TableCounts:
    """Per-table accounting of one run."""

    table: str
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    batch_id: int | None = None
    table_version: int | None = None

    @property
    def balanced(self) -> bool:
        """Rows read equal rows written plus rows quarantined."""
        return self.rows_read == self.rows_written + self.rows_quarantined


@dataclass
class RunRecord:
    """What one run did, written to ``ops/run_log`` when it ends."""

    run_id: str
    job: str
    started_at: dt.datetime
    tables: list[TableCounts] = field(default_factory=list)
    status: str = "running"
    message: str | None = None
    ended_at: dt.datetime | None = None

    def rows(self) -> list[tuple[object, ...]]:
        """Run-log rows: one per table and one for the run (``table_name`` null)."""
        out: list[tuple[object, ...]] = []
        for t in self.tables:
            out.append(
                (self.run_id, self.job, t.table, self.started_at, self.ended_at, self.status, t.batch_id,
                 t.rows_read, t.rows_written, t.rows_quarantined, t.table_version, None)
            )
        out.append(
            (self.run_id, self.job, None, self.started_at, self.ended_at, self.status, None,
             sum(t.rows_read for t in self.tables), sum(t.rows_written for t in self.tables),
             sum(t.rows_quarantined for t in self.tables), None, self.message)
        )
        return out


def run_log_path(config: MedsparkConfig) -> str:
    """Location of the run log table."""
    return config.table_path("ops", "run_log")


def write_run(spark: SparkSession, config: MedsparkConfig, record: RunRecord) -> None:
    """Append the run's rows to ``ops/run_log`` (the run's end time is set here if missing)."""
    if record.ended_at is None:
        record.ended_at = dt.datetime.now(dt.UTC)
    frame = spark.createDataFrame(record.rows(), RUN_LOG_SCHEMA)
    frame.write.format("delta").mode("append").save(run_log_path(config))


def write_stage(spark: SparkSession, config: MedsparkConfig, *, run_id: str, job: str, stage: str,
                started_at: dt.datetime, ended_at: dt.datetime, status: str, message: str | None) -> None:
    """Append one row for a stage of an orchestrated run (``table_name`` = ``stage:<name>``, no counts)."""
    row = (run_id, job, f"stage:{stage}", started_at, ended_at, status, None, None, None, None, None, message or None)
    spark.createDataFrame([row], RUN_LOG_SCHEMA).write.format("delta").mode("append").save(run_log_path(config))
