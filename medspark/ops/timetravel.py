"""``medspark restore``: put a Delta table back to an earlier version (time travel), as a new, audited commit.

Delta's RESTORE does not rewrite history: it commits a new version whose files are those of the chosen version, so
the restore itself can be undone by another restore. It needs the chosen version's data files, which VACUUM deletes
once they are older than the retention (``maintain.vacuum_retention_hours``); such a version is refused with one
line. Each restore is recorded in ``ops/run_log`` (job ``restore``; versions only, no values).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException, IllegalArgumentException
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medspark.config.model import MedsparkConfig
from medspark.errors import UsageError
from medspark.io.runlog import RunRecord, TableCounts, new_run_id, write_run
from medspark.ops.tables import TableRef, resolve_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    """One restore."""

    run_id: str
    table: str
    from_version: int
    to_version: int
    new_version: int
    rows: int

    def summary(self) -> str:
        """One line for the CLI."""
        return (f"restore run {self.run_id}: {self.table} restored to version {self.to_version} (was version "
                f"{self.from_version}; the restore is version {self.new_version}, {self.rows:,} rows)")


def _version_range(table: DeltaTable) -> tuple[int, int, dt.datetime, dt.datetime]:
    row = table.history().agg(sf.min("version"), sf.max("version"), sf.min("timestamp"), sf.max("timestamp")).first()
    assert row is not None
    return int(row[0]), int(row[1]), row[2], row[3]


def _parse_timestamp(text: str) -> str:
    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--timestamp expects an ISO date or time such as 2024-05-01 or 2024-05-01T12:00:00, "
                         f"got '{text}'") from None
    return text.strip()


def check_restore(spark: SparkSession, config: MedsparkConfig, table: str, *, version: int | None = None,
                  timestamp: str | None = None) -> tuple[TableRef, int, int]:
    """Validate a restore request without changing anything; returns the table and its first and last version.

    Raises:
        UsageError: as ``restore``, except for a time outside the history or vacuumed files (Delta decides those).
    """
    if (version is None) == (timestamp is None):
        raise UsageError("restore needs exactly one of --version or --timestamp")
    if timestamp is not None:
        _parse_timestamp(timestamp)
    ref = resolve_table(spark, config, table, unique=True)
    first, last, _, _ = _version_range(DeltaTable.forPath(spark, ref.path))
    if version is not None and not first <= version <= last:
        raise UsageError(f"{ref.key} has no version {version}; valid versions: {first}..{last}")
    return ref, first, last


def restore(
    spark: SparkSession,
    config: MedsparkConfig,
    table: str,
    *,
    version: int | None = None,
    timestamp: str | None = None,
) -> RestoreResult:
    """Restore ``table`` to ``version`` or to the latest version committed at or before ``timestamp``.

    Args:
        spark: the session.
        config: the run's configuration.
        table: ``<layer>/<table>`` or a bare name found in exactly one layer (as ``medspark history`` takes it).
        version: the version to restore.
        timestamp: an ISO date/time (session time zone when it has none), instead of ``version``.

    Raises:
        UsageError: not exactly one of version/timestamp, no such table, a version or time outside the table's
            history (the message lists the valid range), or a version whose files VACUUM removed.
    """
    ref, first, last = check_restore(spark, config, table, version=version, timestamp=timestamp)
    when = _parse_timestamp(timestamp) if timestamp is not None else None
    delta_table = DeltaTable.forPath(spark, ref.path)
    run_id = new_run_id("restore")
    started = dt.datetime.now(dt.UTC)
    target = f"version {version}" if version is not None else f"timestamp {when}"
    try:
        if version is not None:
            delta_table.restoreToVersion(version)
        elif when is not None:
            delta_table.restoreToTimestamp(when)
    except AnalysisException as exc:
        if not (exc.getCondition() or "").startswith("DELTA_CANNOT_RESTORE"):
            raise
        _, _, first_at, last_at = _version_range(delta_table)
        raise UsageError(f"cannot restore {ref.key} to {target}: outside its history; valid versions: "
                         f"{first}..{last}, committed {first_at:%Y-%m-%d %H:%M:%S} .. {last_at:%Y-%m-%d %H:%M:%S}"
                         ) from exc
    except IllegalArgumentException as exc:
        if "Not all files" not in str(exc):  # "Not all files from version N are available in file system."
            raise
        raise UsageError(f"cannot restore {ref.key} to {target}: its data files are gone (removed by VACUUM "
                         "after the retention period)") from exc
    entry = delta_table.history(1).select("version").first()
    assert entry is not None
    new_version = int(entry["version"])
    if version is not None:
        restored = version
    else:  # the version Delta picked: the newest committed at or before the time (its RESTORE entry omits it)
        picked = delta_table.history().where(
            (sf.col("version") < new_version) & (sf.col("timestamp") <= sf.lit(when).cast("timestamp"))
        ).agg(sf.max("version")).first()
        restored = int(picked[0]) if picked is not None and picked[0] is not None else -1
    rows = spark.read.format("delta").load(ref.path).count()
    record = RunRecord(run_id=run_id, job="restore", started_at=started, status="succeeded",
                       tables=[TableCounts(table=ref.key, rows_read=rows, rows_written=rows,
                                           table_version=new_version)],
                       message=f"{ref.key} restored from version {last} to version {restored} "
                               f"(new version {new_version})")
    write_run(spark, config, record)
    log.info("restore %s: version %d -> %d (new version %d)", ref.key, last, restored, new_version)
    return RestoreResult(run_id, ref.key, last, restored, new_version, rows)
