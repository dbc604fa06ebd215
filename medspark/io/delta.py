"""Delta table helpers: idempotent appends, existence checks, history.

Idempotence uses Delta's transaction identifiers (``txnAppId``/``txnVersion``): a write whose version is not
newer than the last one committed for the same application id is skipped by Delta itself, atomically with the
commit. Replaying a batch after a crash therefore cannot duplicate rows -- the mechanism Structured Streaming's
Delta sink relies on, applied to planned batches (see ``medspark.ingestion.job``).
"""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.errors import UsageError

log = logging.getLogger(__name__)


def table_exists(spark: SparkSession, path: str) -> bool:
    """True when ``path`` holds a Delta table."""
    return bool(DeltaTable.isDeltaTable(spark, path))


def txn_marker(app_id: str, version: int) -> str:
    """The ``userMetadata`` an idempotent append stamps on its commit, so the commit can be found again."""
    return f"{app_id}:{version}"


def append_idempotent(frame: DataFrame, path: str, *, app_id: str, version: int) -> None:
    """Append ``frame`` to the Delta table at ``path`` once per ``(app_id, version)``; creates the table."""
    (
        frame.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
        .option("userMetadata", txn_marker(app_id, version))
        .option("mergeSchema", "true")
        .save(path)
    )


def _commit_rows(history: DataFrame) -> list[int | None]:
    rows = history.select(sf.col("operationMetrics").getItem("numOutputRows").alias("rows")).collect()
    return [None if r["rows"] is None else int(r["rows"]) for r in rows]


def latest_commit_rows(spark: SparkSession, path: str) -> int:
    """Rows written by the table's newest commit (e.g. an overwrite just made), from Delta's commit metrics; the
    table is counted when the commit carries none."""
    found = _commit_rows(DeltaTable.forPath(spark, path).history(1))
    if found and found[0] is not None:
        return found[0]
    return spark.read.format("delta").load(path).count()


def committed_rows(spark: SparkSession, path: str, *, app_id: str, version: int, search: int = 20) -> int | None:
    """Rows the commit of ``append_idempotent(..., app_id, version)`` added, from Delta's own commit metrics.

    Reads only the newest ``search`` entries of the transaction log (no data files), so checking a batch costs
    milliseconds instead of a scan of the table. A replayed write that Delta skipped finds the original commit.
    Returns None when no such commit is among them (the caller then counts the rows itself).
    """
    history = DeltaTable.forPath(spark, path).history(search)  # at most ``search`` rows
    entries = _commit_rows(history.where(sf.col("userMetadata") == txn_marker(app_id, version)))
    return entries[0] if len(entries) == 1 else None


def history(spark: SparkSession, path: str, limit: int | None = None) -> DataFrame:
    """Delta history of a table (newest first), with the columns an operator reads."""
    if not table_exists(spark, path):
        raise UsageError(f"no Delta table at {path}")
    table = DeltaTable.forPath(spark, path)
    frame = table.history(limit) if limit else table.history()
    return frame.select(
        "version",
        "timestamp",
        "operation",
        sf.to_json("operationParameters").alias("parameters"),
        sf.col("operationMetrics").getItem("numOutputRows").alias("rows_written"),
        sf.col("operationMetrics").getItem("numFiles").alias("files"),
        "userMetadata",
    )
