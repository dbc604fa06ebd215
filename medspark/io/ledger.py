"""``ops/ingest_batches``: the plan-then-commit log that makes bronze ingestion exactly once.

A batch is planned (its file list appended with state ``planned``) before any bronze write, and committed
after all of its tables are written. Bronze writes carry ``txnVersion = batch_id``, so replaying a planned but
uncommitted batch after a crash re-runs the same files and Delta skips every write that already landed. A file
is identified by (path, size, modification time): a file rewritten in place is a new version and is ingested
again (its rows carry the new modification time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql import types as T

from medspark.config.model import MedsparkConfig
from medspark.errors import ConcurrentRunError
from medspark.ingestion.contract import SourceFile
from medspark.io.delta import table_exists

FILE_TYPE = T.StructType(
    [
        T.StructField("path", T.StringType(), False),
        T.StructField("size", T.LongType(), False),
        T.StructField("modification_time", T.LongType(), False),
        T.StructField("format", T.StringType(), False),
    ]
)
LEDGER_SCHEMA = T.StructType(
    [
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("state", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("at", T.TimestampType(), False),
        T.StructField("files", T.ArrayType(FILE_TYPE), True),
    ]
)
APP_ID = "medspark.ingest"


@dataclass(frozen=True)
class PlannedBatch:
    """A batch of files with the id its writes are stamped with."""

    batch_id: int
    files: tuple[SourceFile, ...]


class IngestLedger:
    """The batch log of one lakehouse."""

    def __init__(self, spark: SparkSession, config: MedsparkConfig) -> None:
        self.spark = spark
        self.path = config.table_path("ops", "ingest_batches")

    def _entries(self) -> DataFrame | None:
        if not table_exists(self.spark, self.path):
            return None
        return self.spark.read.format("delta").load(self.path)

    def known_files(self) -> set[tuple[str, int, int]]:
        """(path, size, modification time) of every file in a planned or committed batch."""
        entries = self._entries()
        if entries is None:
            return set()
        files = entries.where("state = 'planned'").select(sf.explode("files").alias("f")).select("f.*")
        # Bounded by the number of files ever ingested (metadata, not records).
        return {(r["path"], int(r["size"]), int(r["modification_time"])) for r in files.collect()}

    def pending(self) -> list[PlannedBatch]:
        """Planned batches that never committed (a crashed or killed run), oldest first."""
        entries = self._entries()
        if entries is None:
            return []
        committed = entries.where("state = 'committed'").select("batch_id")
        planned = entries.where("state = 'planned'").join(committed, "batch_id", "left_anti")
        out = []
        for row in planned.orderBy("batch_id").collect():
            files = tuple(
                SourceFile(f["path"], int(f["size"]), int(f["modification_time"]), f["format"])
                for f in row["files"]
            )
            out.append(PlannedBatch(int(row["batch_id"]), files))
        return out

    def next_batch_id(self) -> int:
        """One more than the highest batch id ever planned."""
        entries = self._entries()
        if entries is None:
            return 1
        top = entries.agg(sf.max("batch_id")).first()
        return int(top[0]) + 1 if top and top[0] is not None else 1

    def _append(self, batch_id: int, state: str, run_id: str, files: Sequence[SourceFile] | None) -> None:
        rows = [
            (
                batch_id,
                state,
                run_id,
                dt.datetime.now(dt.UTC),
                None if files is None else [(f.path, f.size, f.modification_time, f.format) for f in files],
            )
        ]
        frame = self.spark.createDataFrame(rows, LEDGER_SCHEMA)
        # The ledger is itself written idempotently: re-planning or re-committing a batch is a no-op.
        app = f"{APP_ID}.{state}"
        frame.write.format("delta").mode("append").option("txnAppId", app).option(
            "txnVersion", batch_id
        ).save(self.path)

    def plan(self, batch_id: int, run_id: str, files: Sequence[SourceFile]) -> PlannedBatch:
        """Record a batch's files before anything is written.

        Raises:
            ConcurrentRunError: another run planned the same batch id first (two ingests at once). Delta
                skipped this run's plan as a replay of that version, so the row read back names the other run.
        """
        self._append(batch_id, "planned", run_id, files)
        entries = self._entries()
        owner = (
            entries.where((sf.col("batch_id") == batch_id) & (sf.col("state") == "planned")).select("run_id").first()
            if entries is not None
            else None
        )
        if owner is None or owner["run_id"] != run_id:
            raise ConcurrentRunError(
                f"batch {batch_id} was planned by another ingest run at the same time; "
                "run one ingest per lakehouse at a time (this run wrote nothing)"
            )
        return PlannedBatch(batch_id, tuple(files))

    def commit(self, batch_id: int, run_id: str) -> None:
        """Mark a batch as fully written."""
        self._append(batch_id, "committed", run_id, None)
