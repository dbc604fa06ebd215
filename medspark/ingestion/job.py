"""The bronze ingestion job: every new source file exactly once into ``bronze/<entity>`` or ``quarantine/<entity>``.

One run:
1. replays any batch a crashed run planned but did not commit (same files, same batch id);
2. lists the source root, keeps files not ingested before, recognises each file's format by content;
3. plans a batch in ``ops/ingest_batches``, parses each format on the executors, adds lineage
   (``_source_file``, ``_record_position``, ``_file_modified_at``, ``_batch_id``, ``_run_id``, ``_ingested_at``,
   ``_record_hash``), marks exact re-deliveries as ``duplicate_record``, and appends valid rows to bronze and
   the rest (with ``_quarantine_reason``) to quarantine -- each write idempotent under the batch id;
4. checks that rows read = rows written + rows quarantined for every table (read back from Delta), commits the
   batch and appends the accounting to ``ops/run_log``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql import types as T
from pyspark.sql.window import Window

from medspark.config.model import MedsparkConfig
from medspark.errors import MedsparkError, UsageError
from medspark.ingestion.contract import RECORD_LINES, SourceFile
from medspark.ingestion.registry import (
    FORMAT_NAMES,
    detect_format,
    get_format,
    header_lines,
    option_key,
)
from medspark.io.delta import append_idempotent, committed_rows, table_exists
from medspark.io.ledger import APP_ID, IngestLedger, PlannedBatch
from medspark.io.runlog import RunRecord, TableCounts, new_run_id, write_run
from medspark.io.sources import (
    ListedFile,
    list_files,
    one_file_per_partition,
    read_files,
    read_head,
    read_lines,
)
from medspark.logs import Progress

log = logging.getLogger(__name__)

# Test seam for kill-and-rerun tests: "write:N" kills this process (SIGKILL, no clean-up) right after the N-th
# Delta write of the run. Unset in normal operation.
KILL_ENV = "MEDSPARK_TEST_KILL_AT"
_writes_done = 0

UNRECOGNISED = "unrecognised_files"
QUARANTINE_COLUMNS = (
    "_source_file",
    "_record_position",
    "_raw",
    "_quarantine_reason",
    "_source_format",
    "_file_modified_at",
    "_batch_id",
    "_run_id",
    "_ingested_at",
    "_record_hash",
)


class AccountingError(MedsparkError):
    """Rows read do not equal rows written plus rows quarantined: the batch is not committed."""


@dataclass
class IngestResult:
    """What one ingest run did."""

    run_id: str
    batches: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    files_new: int = 0
    files_already_ingested: int = 0
    tables: list[TableCounts] = field(default_factory=list)

    def summary(self) -> str:
        """One screen: per table rows read / written / quarantined."""
        lines = [
            f"ingest run {self.run_id}: {self.files_new} new file(s), "
            f"{self.files_already_ingested} already ingested, batches {self.batches or '-'}"
            + (f", recovered {self.recovered}" if self.recovered else "")
        ]
        if self.tables:
            lines.append(f"{'table':<28}{'batch':>6}{'read':>12}{'written':>12}{'quarantined':>13}")
            for t in self.tables:
                lines.append(
                    f"{t.table:<28}{t.batch_id or 0:>6}{t.rows_read:>12}{t.rows_written:>12}{t.rows_quarantined:>13}"
                )
            lines.append(
                f"{'total':<28}{'':>6}{sum(t.rows_read for t in self.tables):>12}"
                f"{sum(t.rows_written for t in self.tables):>12}{sum(t.rows_quarantined for t in self.tables):>13}"
            )
        else:
            lines.append("nothing new to ingest")
        return "\n".join(lines)


# ---- pure transforms ---------------------------------------------------------------------------------------


def with_lineage(
    records: DataFrame,
    *,
    batch_id: int,
    run_id: str,
    ingested_at: dt.datetime,
    file_times: DataFrame,
) -> DataFrame:
    """Add the lineage columns a bronze row carries.

    Input columns: ``_source_file, _record_position, _raw, <typed>, _quarantine_reason, _source_format``.
    Output: the same plus ``_file_modified_at, _batch_id, _run_id, _ingested_at, _record_hash`` (SHA-256 of
    the raw record text, prefixed by the optional ``_dedup_context`` column, which is dropped).
    """
    identity = (
        sf.concat_ws("\x1f", sf.col("_dedup_context"), sf.col("_raw"))
        if "_dedup_context" in records.columns
        else sf.col("_raw")
    )
    return (
        records.withColumn("_record_hash", sf.sha2(identity, 256))
        .drop("_dedup_context")
        .join(sf.broadcast(file_times), "_source_file", "left")
        .withColumn("_batch_id", sf.lit(batch_id).cast("long"))
        .withColumn("_run_id", sf.lit(run_id))
        .withColumn("_ingested_at", sf.lit(ingested_at).cast("timestamp"))
    )


def flag_duplicates(records: DataFrame, earlier_hashes: DataFrame | None) -> DataFrame:
    """Quarantine exact re-deliveries as ``duplicate_record``.

    A valid row is a duplicate when its ``_record_hash`` is in ``earlier_hashes`` (rows of earlier batches) or
    when a valid row with the same hash precedes it in this batch (by file, then position).
    """
    valid = sf.col("_quarantine_reason").isNull()
    order = Window.partitionBy("_record_hash", valid).orderBy("_source_file", "_record_position")
    ranked = records.withColumn("_dup_rank", sf.row_number().over(order))
    if earlier_hashes is not None:
        seen = earlier_hashes.select("_record_hash").distinct().withColumn("_seen", sf.lit(True))
        ranked = ranked.join(seen, "_record_hash", "left")
    else:
        ranked = ranked.withColumn("_seen", sf.lit(None).cast("boolean"))
    duplicate: Column = valid & ((sf.col("_dup_rank") > 1) | sf.coalesce(sf.col("_seen"), sf.lit(False)))
    return ranked.withColumn(
        "_quarantine_reason",
        sf.when(duplicate, sf.lit("duplicate_record")).otherwise(sf.col("_quarantine_reason")),
    ).drop("_dup_rank", "_seen")


def split_valid(records: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(bronze rows without ``_quarantine_reason``, quarantine rows in the uniform quarantine layout)."""
    rejected = sf.col("_quarantine_reason").isNotNull()
    valid = records.where(~rejected).drop("_quarantine_reason")
    quarantined = records.where(rejected).select(*QUARANTINE_COLUMNS)
    return valid, quarantined


def _order_columns(records: DataFrame) -> DataFrame:
    lineage_first = ["_source_file", "_record_position", "_raw"]
    tail = ["_quarantine_reason", "_source_format", "_file_modified_at", "_batch_id", "_run_id", "_ingested_at",
            "_record_hash"]
    typed = [c for c in records.columns if c not in lineage_first and c not in tail]
    return records.select(*lineage_first, *typed, *tail)


# ---- the job -------------------------------------------------------------------------------------------------


def _enabled_formats(config: MedsparkConfig) -> tuple[str, ...]:
    return tuple(n for n in FORMAT_NAMES if getattr(config.ingest, option_key(n)).enabled)


def _classify(
    spark: SparkSession, files: Sequence[ListedFile], forced: str | None, enabled: tuple[str, ...]
) -> tuple[list[SourceFile], list[SourceFile]]:
    recognised: list[SourceFile] = []
    unknown: list[SourceFile] = []
    for listed in files:
        head = read_head(spark, listed.path) if listed.size else b""
        name = listed.path.rsplit("/", 1)[-1]
        fmt = forced or (detect_format(head, name, enabled) if head.strip() else None)
        source = SourceFile(listed.path, listed.size, listed.modification_time, fmt or "unknown", head)
        (recognised if fmt else unknown).append(source)
    return recognised, unknown


def _with_heads(spark: SparkSession, batch: PlannedBatch) -> PlannedBatch:
    files = tuple(
        SourceFile(f.path, f.size, f.modification_time, f.format, read_head(spark, f.path) if f.size else b"")
        for f in batch.files
    )
    return PlannedBatch(batch.batch_id, files)


def ingest(
    spark: SparkSession,
    config: MedsparkConfig,
    source: str,
    *,
    source_format: str = "auto",
) -> IngestResult:
    """Ingest every new file under ``source`` into bronze, exactly once (see module docstring).

    Raises:
        UsageError: bad source path or format.
        AccountingError: a table's rows read != written + quarantined (the batch stays uncommitted).
    """
    if source_format != "auto":
        get_format(source_format)  # validates the name
    run = RunRecord(new_run_id("ingest"), "ingest", dt.datetime.now(dt.UTC))
    result = IngestResult(run.run_id)
    ledger = IngestLedger(spark, config)
    try:
        for pending in ledger.pending():
            log.warning("replaying batch %d left uncommitted by an earlier run", pending.batch_id)
            tables = _process_batch(spark, config, _with_heads(spark, pending), run.run_id)
            ledger.commit(pending.batch_id, run.run_id)
            result.recovered.append(pending.batch_id)
            result.tables.extend(tables)
        listed = list_files(spark, source)
        known = ledger.known_files()
        new = [f for f in listed if (f.path, f.size, f.modification_time) not in known]
        result.files_new = len(new)
        result.files_already_ingested = len(listed) - len(new)
        forced = None if source_format == "auto" else source_format
        recognised, unknown = _classify(spark, new, forced, _enabled_formats(config))
        planned = recognised + unknown
        size = config.ingest.max_files_per_batch
        for start in range(0, len(planned), size):
            chunk = planned[start : start + size]
            batch = ledger.plan(ledger.next_batch_id(), run.run_id, chunk)
            tables = _process_batch(spark, config, batch, run.run_id)
            ledger.commit(batch.batch_id, run.run_id)
            result.batches.append(batch.batch_id)
            result.tables.extend(tables)
        run.tables = result.tables
        run.status = "succeeded"
    except MedsparkError as exc:
        run.status, run.message = "failed", str(exc).splitlines()[0][:500]
        run.tables = result.tables
        write_run(spark, config, run)
        raise
    except Exception as exc:
        run.status, run.message = "failed", type(exc).__name__
        run.tables = result.tables
        write_run(spark, config, run)
        raise
    write_run(spark, config, run)
    return result


def _process_batch(
    spark: SparkSession, config: MedsparkConfig, batch: PlannedBatch, run_id: str
) -> list[TableCounts]:
    ingested_at = dt.datetime.now(dt.UTC)
    by_format: dict[str, list[SourceFile]] = defaultdict(list)
    for f in batch.files:
        by_format[f.format].append(f)
    unknown = by_format.pop("unknown", [])
    file_times = spark.createDataFrame(
        [(f.path, dt.datetime.fromtimestamp(f.modification_time / 1000, dt.UTC)) for f in batch.files]
        or [("", dt.datetime.fromtimestamp(0, dt.UTC))],
        "_source_file string, _file_modified_at timestamp",
    )
    entities = sorted({e for name in by_format for e in get_format(name).entities}) + (
        [UNRECOGNISED] if unknown else []
    )
    progress = Progress(f"ingest batch {batch.batch_id}", len(by_format) + 1 + len(entities))
    cached: list[DataFrame] = []
    outputs: dict[str, list[DataFrame]] = defaultdict(list)
    expected: dict[str, int] = {}
    counts: list[TableCounts] = []
    with one_file_per_partition(spark, config.ingest.split_bytes):
        try:
            for name in sorted(by_format):
                fmt, files = get_format(name), by_format[name]
                progress.step(f"read {name} ({len(files)} file(s))")
                options = getattr(config.ingest, option_key(name))
                if fmt.read_mode == "lines":
                    inputs = read_lines(spark, files, encoding=options.encoding)
                    inputs = inputs.persist(StorageLevel.MEMORY_AND_DISK)
                    cached.append(inputs)
                    expected[name] = inputs.count() - sum(header_lines(fmt, f) for f in files)
                else:
                    inputs = read_files(spark, files)
                    cores = spark.sparkContext.defaultParallelism
                    inputs = inputs.coalesce(file_partitions(files, config.ingest.split_bytes, cores))
                    inputs = inputs.persist(StorageLevel.MEMORY_AND_DISK)
                    cached.append(inputs)
                if fmt.prepare is not None and fmt.parse_prepared is not None:
                    prepared = fmt.prepare(inputs, files)
                    if prepared is not inputs:  # a step with nothing to do may return its input, cached already
                        prepared = prepared.persist(StorageLevel.MEMORY_AND_DISK)
                        cached.append(prepared)
                    parsed = fmt.parse_prepared(prepared, files)
                else:
                    parsed = fmt.parse(inputs, files)
                for entity, frame in parsed.items():
                    outputs[entity].append(frame.withColumn("_source_format", sf.lit(name)))
            if unknown:
                outputs[UNRECOGNISED].append(_unrecognised(spark, unknown))
            staged: dict[str, DataFrame] = {}
            for entity in sorted(outputs):
                records = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), outputs[entity])
                bronze = config.table_path("bronze", entity)
                earlier = (
                    spark.read.format("delta").load(bronze).where(sf.col("_batch_id") < batch.batch_id)
                    if config.ingest.quarantine_exact_duplicates and table_exists(spark, bronze)
                    else None
                )
                records = _order_columns(
                    with_lineage(records, batch_id=batch.batch_id, run_id=run_id, ingested_at=ingested_at,
                                 file_times=file_times)
                )
                if config.ingest.quarantine_exact_duplicates:
                    records = flag_duplicates(records, earlier)
                staged[entity] = records.persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(staged[entity])
            progress.step(f"parse {len(staged)} entities")
            tally = _tally(staged)  # one Spark job materialises every entity's cache
            for name, n_expected in expected.items():
                covered = sum(lines for (_, fmt_name, _), (_, lines) in tally.items() if fmt_name == name)
                if covered != n_expected:
                    raise AccountingError(
                        f"format {name}: {n_expected} line(s) read but the parser's rows cover "
                        f"{covered}; batch {batch.batch_id} not committed"
                    )
            for entity, records in staged.items():
                n_valid = sum(n for (e, _, rejected), (n, _) in tally.items() if e == entity and not rejected)
                n_rejected = sum(n for (e, _, rejected), (n, _) in tally.items() if e == entity and rejected)
                if n_valid + n_rejected == 0:
                    continue
                progress.step(f"write {entity}")
                counts.append(_write_entity(spark, config, entity, records, n_valid, n_rejected, batch.batch_id))
        finally:
            for frame in cached:
                frame.unpersist()
    progress.finish()
    return counts


def file_partitions(files: Sequence[SourceFile], split_bytes: int, cores: int) -> int:
    """Partitions for a whole-file format: about ``split_bytes`` of files each, at least one per core, at most
    one per file.

    Whole-file records carry their own positions, so files need not sit alone in a partition. One task per file
    made each of the eight stages over 207 small Bundles 207 tasks long: the 10,000-patient Bundle ingest took
    133 s in ``bench/bench_bronze.py``, 51-56 s packed (two runs).
    """
    total = sum(f.size for f in files)
    wanted = max(cores, -(-total // split_bytes))
    return max(1, min(len(files), wanted))


def _after_write() -> None:
    global _writes_done
    _writes_done += 1
    target = os.environ.get(KILL_ENV, "")
    if target.startswith("write:") and _writes_done == int(target.split(":", 1)[1]):
        log.warning("%s reached: killing the process", KILL_ENV)
        os.kill(os.getpid(), signal.SIGKILL)


def _tally(staged: dict[str, DataFrame]) -> dict[tuple[str, str, bool], tuple[int, int]]:
    """``(rows, source lines they cover)`` per (entity, source format, rejected), for all entities in one Spark
    job. A row covers one line unless its parser joined several (``_record_lines``)."""
    parts = [
        records.select(
            sf.lit(entity).alias("entity"),
            "_source_format",
            sf.col("_quarantine_reason").isNotNull().alias("rejected"),
            (sf.coalesce(sf.col(RECORD_LINES), sf.lit(1)) if RECORD_LINES in records.columns else sf.lit(1))
            .cast("long")
            .alias("lines"),
        )
        for entity, records in staged.items()
    ]
    if not parts:
        return {}
    union = reduce(DataFrame.unionByName, parts)
    rows = (
        union.groupBy("entity", "_source_format", "rejected")
        .agg(sf.count(sf.lit(1)).alias("rows"), sf.sum("lines").alias("lines"))
        .collect()  # a few rows per entity
    )
    return {
        (r["entity"], r["_source_format"], bool(r["rejected"])): (int(r["rows"]), int(r["lines"])) for r in rows
    }


def _write_entity(
    spark: SparkSession,
    config: MedsparkConfig,
    entity: str,
    records: DataFrame,
    n_valid: int,
    n_rejected: int,
    batch_id: int,
) -> TableCounts:
    bronze = config.table_path("bronze", entity)
    quarantine = config.table_path("quarantine", entity)
    valid, rejected = split_valid(records.drop(RECORD_LINES))
    written = quarantined = 0
    # Each side is written only when it has rows; what Delta committed for this batch is read back from the
    # commit's own metrics (after a replay: the earlier attempt's commit), so the accounting is checked against the
    # tables themselves without scanning them. Without a findable commit the batch's rows are counted instead.
    if n_valid and entity != UNRECOGNISED:
        append_idempotent(valid, bronze, app_id=APP_ID, version=batch_id)
        _after_write()
        written = _batch_rows(spark, bronze, batch_id)
    if n_rejected:
        append_idempotent(rejected, quarantine, app_id=APP_ID, version=batch_id)
        _after_write()
        quarantined = _batch_rows(spark, quarantine, batch_id)
    counts = TableCounts(entity, n_valid + n_rejected, written, quarantined, batch_id)
    if not counts.balanced or (entity != UNRECOGNISED and written != n_valid):
        raise AccountingError(
            f"table {entity}: read {counts.rows_read} != written {written} + quarantined {quarantined} "
            f"(batch {batch_id})"
        )
    log.info("bronze %s batch %d: read=%d written=%d quarantined=%d", entity, batch_id, counts.rows_read,
             written, quarantined)
    return counts


def _batch_rows(spark: SparkSession, path: str, batch_id: int) -> int:
    rows = committed_rows(spark, path, app_id=APP_ID, version=batch_id)
    if rows is None:
        rows = spark.read.format("delta").load(path).where(sf.col("_batch_id") == batch_id).count()
    return rows


def _unrecognised(spark: SparkSession, files: Sequence[SourceFile]) -> DataFrame:
    rows = [
        (f.path, 0, None, "empty_file" if f.size == 0 else "unknown_format", "unknown") for f in files
    ]
    schema = T.StructType(
        [
            T.StructField("_source_file", T.StringType()),
            T.StructField("_record_position", T.LongType()),
            T.StructField("_raw", T.StringType()),
            T.StructField("_quarantine_reason", T.StringType()),
            T.StructField("_source_format", T.StringType()),
        ]
    )
    return spark.createDataFrame(rows, schema)


def validate_source(source: str | None) -> str:
    """The source root, or a usage error when none was given."""
    if not source:
        raise UsageError("no source given: pass --source DIR or set 'source' in the config")
    return source
