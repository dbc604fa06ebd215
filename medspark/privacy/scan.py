"""Leak scan: count rows of every table under a path that contain known clear-text identifiers.

Used by the end-to-end privacy test: plant-and-find on the files actually on disk, not on the latest Delta
snapshot. Every Parquet file is read, including files a later Delta version removed but ``VACUUM`` has not yet
deleted, and the ``_delta_log`` as well (commit JSON carries column statistics with min/max values and operation
parameters). Each row is flattened with ``to_json`` so strings nested in arrays, maps and structs, and numbers
that spell an SSN, are matched too. The result holds counts only, never the values searched for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import reduce

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.utils import AnalysisException

from medspark.errors import UsageError
from medspark.io.sources import escape_glob

log = logging.getLogger(__name__)

RESULT_SCHEMA = "table string, kind string, rows_scanned long, rows_with_hits long, needles_hit long"
_LOG_DIR = "_delta_log"


def _list_files(spark: SparkSession, root: str) -> tuple[str, list[str]]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        path = jvm.org.apache.hadoop.fs.Path(root)
        fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(path):
            raise UsageError(f"scan root does not exist: {root}")
        root_str = fs.getFileStatus(path).getPath().toString().rstrip("/")
        iterator = fs.listFiles(path, True)
        files = []
        while iterator.hasNext():
            files.append(iterator.next().getPath().toString())
    except UsageError:
        raise
    except Exception as exc:  # Py4J errors: keep the first line only
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot list scan root {root}: {first[:200]}") from exc
    return root_str, sorted(files)


def _group_by_table(root: str, files: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """``table -> {"data": [...parquet], "log_parquet": [...], "log_text": [...]}``; table = path below root."""
    relative = {full: full[len(root) :].strip("/").split("/") for full in files if full.startswith(root)}
    table_roots = {"/".join(parts[: parts.index(_LOG_DIR)]) for parts in relative.values() if _LOG_DIR in parts}
    tables: dict[str, dict[str, list[str]]] = {}
    for full, parts in relative.items():
        name = parts[-1]
        if name.startswith("."):
            continue  # Hadoop .crc checksums
        if _LOG_DIR in parts:
            table = "/".join(parts[: parts.index(_LOG_DIR)])
            kind = "log_parquet" if name.endswith(".parquet") else "log_text"
        elif name.endswith(".parquet"):
            directory = parts[:-1]
            folder = "/".join(directory)
            owners = [t for t in table_roots if t in ("", folder) or folder.startswith(t + "/")]
            if owners:
                table = max(owners, key=len)
            else:
                while directory and "=" in directory[-1]:
                    directory = directory[:-1]  # Hive-style partition folders belong to their table
                table = "/".join(directory)
            kind = "data"
        else:
            continue
        tables.setdefault(table or ".", {}).setdefault(kind, []).append(full)
    return tables


def _normalise(needle: str, case_sensitive: bool) -> str:
    return needle.strip() if case_sensitive else needle.strip().lower()


def _bounded_pattern(needle: str) -> str:
    """Java regex: ``needle`` literally, not glued to a letter or digit on an alphanumeric edge."""
    body = "".join("\\" + ch if ch.isascii() and not ch.isalnum() else ch for ch in needle)
    before = r"(?<![\p{L}\p{N}])" if needle[0].isalnum() else ""
    after = r"(?![\p{L}\p{N}])" if needle[-1].isalnum() else ""
    return before + body + after


def _parquet_rows(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """Every row of the Parquet files as one JSON string; files with conflicting schemas are read one by one."""
    escaped = [escape_glob(p) for p in paths]
    try:
        frames = [spark.read.option("mergeSchema", "true").parquet(*escaped)]
    except (AnalysisException, PySparkException):
        frames = [spark.read.parquet(p) for p in escaped]
    return reduce(
        DataFrame.unionAll,
        [frame.select(sf.to_json(sf.struct(*[frame[c] for c in frame.columns])).alias("_text")) for frame in frames],
    )


def _table_rows(spark: SparkSession, files: Mapping[str, list[str]]) -> DataFrame:
    parts = []
    if files.get("data"):
        parts.append(_parquet_rows(spark, files["data"]))
    if files.get("log_parquet"):
        parts.append(_parquet_rows(spark, files["log_parquet"]))
    if files.get("log_text"):
        parts.append(
            spark.read.text([escape_glob(p) for p in files["log_text"]]).select(sf.col("value").alias("_text"))
        )
    return reduce(DataFrame.unionAll, parts)


def count_identifiers(
    spark: SparkSession,
    root: str,
    needles: Mapping[str, Sequence[str]],
    *,
    case_sensitive: bool = False,
    whole_word: bool = True,
) -> DataFrame:
    """Per (table, needle kind): rows scanned, rows containing at least one needle, distinct needles found.

    A table is a directory holding ``_delta_log`` (its data files and log together), or else a directory of
    Parquet files (Hive-style ``key=value`` folders folded into their table). Matching is substring matching on
    the JSON text of each row (and each log line), case-insensitive and whole-word by default. Callers list every
    spelling they want found (SSN with and without dashes, phone formats); needles are trimmed, blank ones
    ignored, and a needle holding ``"`` or ``\\`` never matches (JSON escapes them).

    Args:
        spark: the session.
        root: a lakehouse, a layer (``<lakehouse>/silver``) or one table.
        needles: ``kind -> clear-text values``, e.g. ``{"ssn": [...], "family_name": [...]}``.
        case_sensitive: match case exactly.
        whole_word: a needle that starts (ends) with a letter or digit only counts when the text does not continue
            with a letter or digit before (after) it, so an SSN is not "found" inside a hex pseudonym or a longer
            number, nor ``MRN-4`` inside ``MRN-42``.

    Returns:
        DataFrame ``table string, kind string, rows_scanned long, rows_with_hits long, needles_hit long``, one row
        per table and kind (zeros included); no needle values.

    Raises:
        UsageError: the root does not exist or cannot be listed.
    """
    root_str, files = _list_files(spark, root)
    tables = _group_by_table(root_str, files)
    pairs = [
        (kind, needle, _bounded_pattern(needle) if whole_word else None)
        for kind, values in needles.items()
        for needle in sorted({_normalise(value, case_sensitive) for value in values if value and value.strip()})
    ]
    kinds = spark.createDataFrame([(kind,) for kind in needles], "kind string")
    needle_frame = spark.createDataFrame(pairs, "kind string, needle string, _pattern string")
    log.info("scanning %d tables (%d files) under %s for %d needles", len(tables), len(files), root, len(pairs))
    if not tables:
        return spark.createDataFrame([], RESULT_SCHEMA)
    text = sf.col("_text") if case_sensitive else sf.lower(sf.col("_text"))
    rows = reduce(
        DataFrame.unionAll,
        [
            # Row ids only need to be unique within a table: results are grouped by table.
            _table_rows(spark, table_files).select(
                sf.lit(table).alias("table"), text.alias("_text"), sf.monotonically_increasing_id().alias("_row")
            )
            for table, table_files in sorted(tables.items())
        ],
    )
    hits = (
        # contains() is the cheap filter; the boundary regex runs only on the rare candidate pairs.
        rows.join(
            sf.broadcast(needle_frame),
            sf.col("_text").contains(sf.col("needle"))
            & (sf.col("_pattern").isNull() | sf.rlike(sf.col("_text"), sf.col("_pattern"))),
        )
        .groupBy("table", "kind")
        .agg(sf.count_distinct("_row").alias("rows_with_hits"), sf.count_distinct("needle").alias("needles_hit"))
    )
    scanned = rows.groupBy("table").agg(sf.count(sf.lit(1)).alias("rows_scanned"))
    return (
        scanned.crossJoin(kinds)
        .join(hits, on=["table", "kind"], how="left")
        .select(
            "table",
            "kind",
            "rows_scanned",
            sf.coalesce("rows_with_hits", sf.lit(0)).cast("long").alias("rows_with_hits"),
            sf.coalesce("needles_hit", sf.lit(0)).cast("long").alias("needles_hit"),
        )
    )


def find_identifiers(
    spark: SparkSession,
    root: str,
    needles: Mapping[str, Sequence[str]],
    *,
    case_sensitive: bool = False,
    whole_word: bool = True,
) -> dict[tuple[str, str], int]:
    """The hits only: ``{(table, kind): rows_with_hits}`` for every pair with at least one hit; ``{}`` when clean.

    Same matching as :func:`count_identifiers`; the result is small (tables x kinds) and holds no needle values, so
    ``assert find_identifiers(...) == {}`` is safe to print.
    """
    counts = count_identifiers(spark, root, needles, case_sensitive=case_sensitive, whole_word=whole_word)
    return {
        (row["table"], row["kind"]): int(row["rows_with_hits"])
        for row in counts.where(sf.col("rows_with_hits") > 0).collect()
    }
