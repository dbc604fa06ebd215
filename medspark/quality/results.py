"""Where the gate's findings go: rows for ``<lakehouse>/ops/dq_results`` and a Great Expectations Data Docs site.

Result rows are counts and verdicts only (no record values), one per check per table plus one
``<table>.quarantine_rate`` row with the gate's decision. They are built from the validations alone, so the same
validations give the same rows: the run date is the run's parameter, never the clock.

Idempotence of :func:`write_results`: a Delta overwrite with ``replaceWhere`` on the run id and the tables in the
frame. Re-running a run (after a crash, or after fixing a suite) replaces that run's rows for those tables, so the
table holds one set of rows per run and table, the latest; other runs and other tables are untouched.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession

from medspark.errors import UsageError
from medspark.quality.gate import TableValidation, build_expectation_suite, ephemeral_context, run_identifier

log = logging.getLogger(__name__)

RESULTS_DDL = (
    "run_id string, run_date date, table_name string, check_id string, expectation_type string, category string, "
    "element_count bigint, unexpected_count bigint, unexpected_fraction double, threshold double, success boolean"
)
GATE_EXPECTATION = "medspark_quarantine_rate"
GATE_CATEGORY = "gate"
_SAFE = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_SITE = "medspark"


def _fraction(unexpected: int | None, elements: int) -> float | None:
    if unexpected is None:
        return None
    return unexpected / elements if elements else 0.0


def result_records(validations: Iterable[TableValidation]) -> list[tuple[object, ...]]:
    """The rows of :func:`build_result_rows` as tuples in ``RESULTS_DDL`` order (suite order per table).

    Row-level checks carry the table threshold (GE's ``mostly`` is ``1 - threshold``); table-level checks carry
    NULL counts and threshold. The last row of each table is ``<table>.quarantine_rate``: rows failing any error
    check, against the threshold, and whether the table passed the gate.
    """
    records: list[tuple[object, ...]] = []
    for v in validations:
        for o in v.outcomes:
            records.append((
                v.run_id, v.run_date, v.table, o.check_id, o.expectation_type, o.category, o.element_count,
                o.unexpected_count, _fraction(o.unexpected_count, o.element_count),
                v.suite.threshold if o.row_level else None, o.success,
            ))
        records.append((
            v.run_id, v.run_date, v.table, f"{v.table}.quarantine_rate", GATE_EXPECTATION, GATE_CATEGORY,
            v.row_count, v.failed_rows, v.failure_rate, v.suite.threshold, v.passed,
        ))
    return records


def build_result_rows(spark: SparkSession, validations: Iterable[TableValidation]) -> DataFrame:
    """The validations as a DataFrame with schema ``RESULTS_DDL`` (reads and writes nothing)."""
    return spark.createDataFrame(result_records(validations), RESULTS_DDL)


def write_results(spark: SparkSession, rows_df: DataFrame, path: str) -> None:
    """Write result rows to the Delta table at ``path`` (``<lakehouse>/ops/dq_results``), idempotently per run.

    The rows of the run ids and tables present in ``rows_df`` replace any earlier rows of the same run and tables
    (``replaceWhere``); the table is created on first use.

    Raises:
        UsageError: a run id or table name holds characters other than letters, digits, ``_ . : -``.
    """
    keys = rows_df.select("run_id", "table_name").distinct().collect()
    if not keys:
        return
    by_run: dict[str, list[str]] = {}
    for key in keys:
        for value in (key["run_id"], key["table_name"]):
            if value is None or not _SAFE.match(value):
                raise UsageError("dq results: run ids and table names must be letters, digits, '_', '.', ':', '-'")
        by_run.setdefault(key["run_id"], []).append(key["table_name"])
    condition = " OR ".join(
        f"(run_id = '{run}' AND table_name IN ({', '.join(repr(t) for t in sorted(tables))}))"
        for run, tables in sorted(by_run.items())
    )
    columns = [f.split()[0] for f in RESULTS_DDL.split(", ")]
    (rows_df.select(*columns).write.format("delta").mode("overwrite")
     .option("replaceWhere", condition).save(path))
    log.info("dq results: %d run/table keys written to %s", len(keys), path)


def data_docs_directory(lakehouse: str) -> str:
    """``<lakehouse>/ops/data_docs``."""
    return f"{lakehouse.rstrip('/')}/ops/data_docs"


def _local_path(directory: str) -> Path | None:
    """The local path of ``directory`` (a plain path or ``file:`` URI), or None for another filesystem."""
    parsed = urlparse(directory)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(parsed.path if parsed.scheme == "file" else directory)
    return None


def _render(validations: Sequence[TableValidation], local: Path) -> Path:
    """Build the GE Data Docs site for ``validations`` into the local directory ``local``; its index.html."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    local.mkdir(parents=True, exist_ok=True)
    context = ephemeral_context()
    context.add_data_docs_site(_SITE, {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(local)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    for v in validations:
        context.suites.add(build_expectation_suite(v.suite))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=v.table),
            run_id=run_identifier(v.run_id, v.run_date),
            batch_identifier=v.table,
        )
        context.validation_results_store.set(key, v.ge_result)
    context.build_data_docs(site_names=[_SITE])
    return local / "index.html"


def build_data_docs(
    validations: Sequence[TableValidation],
    directory: str,
    *,
    spark: SparkSession | None = None,
) -> str | None:
    """Write a Great Expectations Data Docs site (index.html, one page per table and suite) for this run.

    Args:
        validations: the run's validations (their GE results carry counts only, no values).
        directory: usually :func:`data_docs_directory` of the lakehouse. A local path or ``file:`` URI is written
            directly. For another filesystem (``s3a://``, ``abfss://``, ``hdfs://``...) GE cannot write there: the
            site is built in a local temporary directory and copied file by file through the Hadoop FileSystem of
            ``spark`` (so the cluster's credentials apply); without ``spark`` it is skipped with a warning.
        spark: the session whose Hadoop configuration reaches ``directory`` (only for non-local directories).

    Returns:
        Location of index.html, or None when skipped.
    """
    local = _local_path(directory)
    if local is not None:
        index = _render(validations, local)
        log.info("dq data docs: %d tables in %s", len(validations), local)
        return str(index)
    if spark is None:
        log.warning("dq data docs skipped: %s is not a local directory and no Spark session was given", directory)
        return None
    with tempfile.TemporaryDirectory(prefix="medspark-data-docs-") as tmp:
        _render(validations, Path(tmp))
        copy_to_hadoop(spark, Path(tmp), directory)
    log.info("dq data docs: %d tables copied to %s", len(validations), directory)
    return directory.rstrip("/") + "/index.html"


def copy_to_hadoop(spark: SparkSession, source: Path, target: str) -> int:
    """Copy every file under the local ``source`` to the Hadoop filesystem URI ``target`` (overwriting); the count.

    Files are copied one by one: Hadoop's directory copy nests into an existing target directory.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    root = hadoop_path(target)
    filesystem = root.getFileSystem(conf)
    copied = 0
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = file.relative_to(source).as_posix()
        filesystem.copyFromLocalFile(False, True, hadoop_path(file.resolve().as_uri()),
                                     hadoop_path(f"{target.rstrip('/')}/{relative}"))
        copied += 1
    return copied
