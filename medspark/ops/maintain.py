"""``medspark maintain``: keep the lakehouse's Delta tables healthy -- compaction, Z-order, properties, VACUUM.

Every job appends small batches (an ingest batch, a silver MERGE, one run-log row), so tables collect many small
files and a long transaction log, and overwritten or merged files stay on disk until VACUUM. For each Delta table of
the lakehouse (``medspark.ops.tables``), in this order:

1. **Table properties** (``maintain.table_properties``): ``delta.checkpointInterval`` (a checkpoint every 10
   commits keeps snapshot reads of the many-commit tables -- bronze, ``ops/run_log`` -- short),
   ``delta.logRetentionDuration`` (how far back time travel reaches in the log) and
   ``delta.deletedFileRetentionDuration``, derived from ``maintain.vacuum_retention_hours`` and never below Delta's
   168 h default, so a later VACUUM without arguments keeps the same rule. Only properties whose value differs are
   set (``ALTER TABLE ... SET TBLPROPERTIES`` is a commit).
2. **OPTIMIZE**: bin-packing of small files, with ``ZORDER BY`` for the tables listed in ``maintain.zorder``. The
   defaults are the columns gold joins and filters the OMOP fact tables by (``medspark.gold``): ``person_id``
   (every gold analysis joins or groups on it) and each event's start date (``<= as_of`` filters, first events,
   monthly incidence), for the research views gold reads and for silver (``gold.read_layer: silver``). A configured
   column the table lacks, a partition column or a column without statistics is skipped with a warning. Honest
   limits: Delta's Z-order rewrites the whole table each time, and ``medspark research`` overwrites its views on
   every run, so the research layout lasts until the next refresh -- run maintain after research; at the sizes
   measured so far (small tables, 2 cores) the gain is file skipping for cohort and date-range queries, not speed
   of the full-table gold aggregations.
3. **VACUUM** with ``maintain.vacuum_retention_hours``. Below 168 h it is refused (``UsageError``, exit 2) unless
   the caller passes ``allow_short_retention``; then Delta's retention check is disabled for that call only and
   restored afterwards. A short retention breaks time travel to older versions and readers still running. VACUUM's
   file listing runs with ``maintain.vacuum_listing_parallelism`` tasks (default: the cluster's cores) instead of
   Spark's 10,000-task partition-discovery default, which made each VACUUM of a tiny table take minutes on 2 cores.

``dry_run`` changes nothing: it reports the properties that would change and what VACUUM would delete, and writes
no run-log row. Otherwise the run is recorded in ``ops/run_log`` (job ``maintain``, one row per table with its row
count as rows read and written, and its new version).

Change Data Feed is enabled only for the tables listed in ``maintain.change_data_feed``, and none are by default,
because no reader consumes a change feed: silver reads bronze increments by ``_batch_id`` range (bronze is
append-only and every row carries its batch id, so the predicate plus file statistics select the increment), and
the research views are a full, atomic overwrite from silver. CDF would only add change files to every silver MERGE.
If the research refresh becomes incremental, list the silver tables it reads here.

Partitioning: existing tables are not repartitioned (that rewrites every table and changes every writer). It would
pay where a table grows well beyond ~1 GB per partition value and queries prune on that value: bronze by ingestion
date (retention deletes, batch reads of very large histories) and the event fact tables by year of the start date.
At the sizes medspark runs at here (at most a few GB in total on 2 cores) partitions would be small files again;
file statistics of append-ordered bronze batches and Z-order give the same skipping without that cost. The lakehouse
lock table (``ops/lakehouse_lock``) is only vacuumed: changing its properties or files while a run takes the lock
would fail that run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medspark.config.model import SAFE_RETENTION_HOURS, MedsparkConfig
from medspark.errors import UsageError
from medspark.io.runlog import RunRecord, TableCounts, new_run_id, write_run
from medspark.ops.tables import TableRef, list_tables, resolve_table
from medspark.spark import session_conf

log = logging.getLogger(__name__)

RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# Delta's VACUUM lists the table with this many tasks (default 10,000); see maintain.vacuum_listing_parallelism.
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
VACUUM_ONLY = frozenset({"ops/lakehouse_lock"})


@dataclass
class TableMaintenance:
    """What maintenance did to one table (sizes from DESCRIBE DETAIL: the current snapshot, not the disk)."""

    table: str
    files_before: int
    bytes_before: int
    files_after: int = 0
    bytes_after: int = 0
    rows: int = 0
    version: int | None = None
    optimized: bool = False
    zorder: tuple[str, ...] = ()
    properties_set: tuple[str, ...] = ()
    vacuumed_files: int | None = None


@dataclass
class MaintainResult:
    """One maintain run."""

    run_id: str
    dry_run: bool
    retention_hours: int | None
    tables: list[TableMaintenance] = field(default_factory=list)

    def summary(self) -> str:
        """One line per table for the CLI."""
        vacuum = "no vacuum" if self.retention_hours is None else f"vacuum retention {self.retention_hours} h"
        head = f"maintain run {self.run_id}{' (dry run: nothing changed)' if self.dry_run else ''}: " \
               f"{len(self.tables)} tables, {vacuum}"
        removed = "would remove" if self.dry_run else "vacuumed"
        lines = [head, f"{'table':<36}{'files':>13}{'bytes':>25}{removed:>14}  optimize"]
        for t in self.tables:
            files = f"{t.files_before}->{t.files_after}"
            size = f"{t.bytes_before:,}->{t.bytes_after:,}"
            vacuumed = "-" if t.vacuumed_files is None else f"{t.vacuumed_files:,}"
            action = ("zorder " + ",".join(t.zorder)) if t.zorder else ("compact" if t.optimized else "-")
            props = f"; {len(t.properties_set)} properties {'to set' if self.dry_run else 'set'}" \
                if t.properties_set else ""
            lines.append(f"{t.table:<36}{files:>13}{size:>25}{vacuumed:>14}  {action}{props}")
        return "\n".join(lines)


def check_retention(hours: int, *, allow_short_retention: bool) -> None:
    """Refuse a VACUUM retention below Delta's safe default unless explicitly allowed.

    Raises:
        UsageError: ``hours < 168`` without ``allow_short_retention``.
    """
    if hours < SAFE_RETENTION_HOURS and not allow_short_retention:
        raise UsageError(f"maintain.vacuum_retention_hours={hours} is below Delta's safe {SAFE_RETENTION_HOURS} h "
                         "(breaks time travel and running readers); pass --allow-short-retention to do it anyway")


def _sql_path(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def _detail(spark: SparkSession, path: str) -> tuple[int, int, dict[str, str], list[str]]:
    row = DeltaTable.forPath(spark, path).detail().select(
        "numFiles", "sizeInBytes", "properties", "partitionColumns").first()
    assert row is not None
    return int(row["numFiles"] or 0), int(row["sizeInBytes"] or 0), dict(row["properties"] or {}), \
        list(row["partitionColumns"] or [])


def _version(spark: SparkSession, path: str) -> int | None:
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row[0])


def _zorder_columns(ref: TableRef, wanted: Sequence[str], columns: Sequence[str], partitions: Sequence[str]) -> \
        tuple[str, ...]:
    kept = []
    for column in wanted:
        if column not in columns:
            log.warning("maintain %s: no column %s, left out of ZORDER BY", ref.key, column)
        elif column in partitions:
            log.warning("maintain %s: %s is a partition column, left out of ZORDER BY", ref.key, column)
        else:
            kept.append(column)
    return tuple(kept)


def _optimize(spark: SparkSession, ref: TableRef, zorder: tuple[str, ...]) -> tuple[str, ...]:
    """OPTIMIZE, Z-ordered when columns are given; returns the Z-order columns actually used."""
    table = DeltaTable.forPath(spark, ref.path)
    if zorder:
        try:
            table.optimize().executeZOrderBy(*zorder)
            return zorder
        except AnalysisException as exc:
            if exc.getCondition() != "DELTA_ZORDERING_ON_COLUMN_WITHOUT_STATS":
                raise
            log.warning("maintain %s: Delta collects no statistics for %s; compacted without Z-order",
                        ref.key, ", ".join(zorder))
    table.optimize().executeCompaction()
    return ()


def _set_properties(spark: SparkSession, ref: TableRef, wanted: dict[str, str], current: dict[str, str], *,
                    dry_run: bool) -> tuple[str, ...]:
    changed = {key: value for key, value in sorted(wanted.items()) if current.get(key) != value}
    if changed and not dry_run:
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in changed.items())
        spark.sql(f"ALTER TABLE {_sql_path(ref.path)} SET TBLPROPERTIES ({assignments})")
    return tuple(changed)


def _vacuum(spark: SparkSession, ref: TableRef, hours: int, *, listing_parallelism: int | None,
            dry_run: bool) -> int | None:
    """Files VACUUM deleted (or would delete); None when Delta logged no count."""
    settings = {LISTING_PARALLELISM: str(listing_parallelism or spark.sparkContext.defaultParallelism)}
    if hours < SAFE_RETENTION_HOURS:  # allowed by the caller (check_retention): this call only
        settings[RETENTION_CHECK] = "false"
    with session_conf(spark, settings):
        if dry_run:
            # One row per file that would be deleted; only counted, never collected.
            return spark.sql(f"VACUUM {_sql_path(ref.path)} RETAIN {hours} HOURS DRY RUN").count()
        before = _version(spark, ref.path)
        DeltaTable.forPath(spark, ref.path).vacuum(float(hours))
    # Delta logs VACUUM START / VACUUM END commits with the number of deleted files.
    ends = DeltaTable.forPath(spark, ref.path).history(2).where(
        (sf.col("operation") == "VACUUM END") & (sf.col("version") > sf.lit(before if before is not None else -1))
    ).select(sf.col("operationMetrics").getItem("numDeletedFiles").alias("n")).collect()  # at most 2 rows
    return int(ends[0]["n"]) if ends and ends[0]["n"] is not None else None


def maintain(
    spark: SparkSession,
    config: MedsparkConfig,
    *,
    tables: Sequence[str] | None = None,
    vacuum: bool = True,
    optimize: bool = True,
    dry_run: bool = False,
    allow_short_retention: bool = False,
) -> MaintainResult:
    """Set properties, OPTIMIZE and VACUUM the lakehouse's Delta tables (see the module docstring).

    Args:
        spark: the session.
        config: the run's configuration (``config.maintain``).
        tables: names as ``medspark history`` takes them (``<layer>/<table>`` or an unambiguous bare name);
            default every Delta table of the lakehouse.
        vacuum: run VACUUM.
        optimize: run OPTIMIZE (and Z-order).
        dry_run: change nothing; report what VACUUM would delete and which properties would change.
        allow_short_retention: accept ``maintain.vacuum_retention_hours`` below 168.

    Raises:
        UsageError: a short retention without ``allow_short_retention``, or an unknown table name.
    """
    settings = config.maintain
    hours = settings.vacuum_retention_hours
    if vacuum:
        check_retention(hours, allow_short_retention=allow_short_retention)
    refs = [resolve_table(spark, config, name, unique=True) for name in tables] if tables else \
        list_tables(spark, config)
    run_id = new_run_id("maintain")
    record = RunRecord(run_id=run_id, job="maintain", started_at=dt.datetime.now(dt.UTC))
    result = MaintainResult(run_id, dry_run, hours if vacuum else None)
    try:
        for ref in refs:
            result.tables.append(_maintain_table(spark, config, ref, vacuum=vacuum, optimize=optimize,
                                                 dry_run=dry_run))
            done = result.tables[-1]
            record.tables.append(TableCounts(table=ref.key, rows_read=done.rows, rows_written=done.rows,
                                             table_version=done.version))
    except Exception as exc:
        if not dry_run:
            record.status, record.message = "failed", f"{type(exc).__name__} after {len(result.tables)} tables"
            write_run(spark, config, record)
        raise
    if not dry_run:
        record.status = "succeeded"
        vacuumed = sum(t.vacuumed_files or 0 for t in result.tables)
        record.message = (f"optimize={'on' if optimize else 'off'}, vacuum="
                          f"{f'{hours} h, {vacuumed} files removed' if vacuum else 'off'}")
        write_run(spark, config, record)
    return result


def _maintain_table(spark: SparkSession, config: MedsparkConfig, ref: TableRef, *, vacuum: bool, optimize: bool,
                    dry_run: bool) -> TableMaintenance:
    settings = config.maintain
    files, size, properties, partitions = _detail(spark, ref.path)
    done = TableMaintenance(ref.key, files_before=files, bytes_before=size)
    if ref.key not in VACUUM_ONLY:
        done.properties_set = _set_properties(spark, ref, settings.properties_for(ref.key), properties,
                                              dry_run=dry_run)
        if optimize and not dry_run:
            columns = DeltaTable.forPath(spark, ref.path).toDF().columns
            zorder = _zorder_columns(ref, settings.zorder.get(ref.key, ()), columns, partitions)
            done.zorder = _optimize(spark, ref, zorder)
            done.optimized = True
    if vacuum:
        done.vacuumed_files = _vacuum(spark, ref, settings.vacuum_retention_hours,
                                      listing_parallelism=settings.vacuum_listing_parallelism, dry_run=dry_run)
    done.files_after, done.bytes_after, _, _ = _detail(spark, ref.path)
    done.rows = spark.read.format("delta").load(ref.path).count()  # Delta answers a bare count from its log
    done.version = _version(spark, ref.path)
    log.info("maintain %s: files %d -> %d, vacuumed %s, version %s", ref.key, done.files_before, done.files_after,
             done.vacuumed_files, done.version)
    return done
