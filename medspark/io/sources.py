"""List source files and read them for the parsers, with exact lineage on any Hadoop filesystem.

Listing happens on the driver and touches only file metadata plus each file's first 64 KiB (to recognise its
format by content and to learn CSV headers); record data is read by executors. Paths are kept in Hadoop's
``Path.toString()`` form (``file:/data/a b.csv``) everywhere, the same form Spark's ``binaryFile`` reader gives.

Line numbers are exact: every file is read as its own partition(s) (``openCostInBytes`` = the split size, so
small files are not packed together), the row index inside a partition comes from
``monotonically_increasing_id`` and, for a file Spark splits in several blocks, the line counts of the earlier
blocks are added from one small aggregate.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.window import Window

from medspark.errors import UsageError
from medspark.ingestion.contract import SourceFile
from medspark.spark import session_conf

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
_GLOB_CHARS = "\\*?[]{}"


@dataclass(frozen=True)
class ListedFile:
    """A file found under a source root, before its format is known."""

    path: str
    size: int
    modification_time: int


def hadoop_fs(spark: SparkSession, root: str) -> tuple[Any, Any]:
    """``(Path, FileSystem)`` of the JVM's Hadoop API for ``root`` (any scheme the session can reach)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(root)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def _hidden(relative_parts: Sequence[str]) -> bool:
    return any(part.startswith(("_", ".")) for part in relative_parts)


def list_files(spark: SparkSession, root: str) -> list[ListedFile]:
    """All data files below ``root`` (recursively), skipping names that start with ``_`` or ``.``.

    Raises:
        UsageError: the root does not exist or is not readable.
    """
    try:
        path, fs = hadoop_fs(spark, root)
        if not fs.exists(path):
            raise UsageError(f"source path does not exist: {root}")
        root_str = fs.getFileStatus(path).getPath().toString()
        iterator = fs.listFiles(path, True)
        found: list[ListedFile] = []
        while iterator.hasNext():
            status = iterator.next()
            full = status.getPath().toString()
            relative = full[len(root_str) :].strip("/").split("/") if full.startswith(root_str) else [full]
            if _hidden(relative):
                continue
            found.append(ListedFile(full, int(status.getLen()), int(status.getModificationTime())))
    except UsageError:
        raise
    except Exception as exc:  # Py4J errors: keep only the first meaningful line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot list source path {root}: {first[:200]}") from exc
    found.sort(key=lambda f: f.path)
    return found


def _local_path(path: str) -> Path | None:
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else path)
    return None


def _decompress_head(name: str, raw: bytes) -> bytes:
    if name.endswith(".gz") and raw[:2] == b"\x1f\x8b":
        try:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, HEAD_BYTES)
        except zlib.error:
            return raw
    return raw


def read_head(spark: SparkSession, path: str, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file (decompressed for ``.gz``), for sniffing and headers."""
    local = _local_path(path)
    if local is not None:
        with open(local, "rb") as handle:
            raw = handle.read(size)
        if local.name.endswith(".gz") and raw[:2] == b"\x1f\x8b":
            try:
                with gzip.open(local, "rb") as handle:
                    return handle.read(size)
            except (OSError, EOFError, zlib.error):
                return raw
        return raw
    hpath, fs = hadoop_fs(spark, path)
    stream = fs.open(hpath)
    try:
        # readNBytes returns a byte[], which Py4J hands back as Python bytes. (A byte[] passed in to be filled
        # is not: Py4J reads it back as zeros.)
        raw = bytes(stream.readNBytes(int(size)))
    finally:
        stream.close()
    return _decompress_head(path, raw)


def escape_glob(path: str) -> str:
    """Escape Hadoop glob characters so a literal file name is read as itself."""
    return "".join("\\" + ch if ch in _GLOB_CHARS else ch for ch in path)


@contextmanager
def one_file_per_partition(spark: SparkSession, split_bytes: int) -> Iterator[None]:
    """Read with one file per partition (exact line numbers); restores the previous settings after."""
    keys = {
        "spark.sql.files.maxPartitionBytes": str(split_bytes),
        "spark.sql.files.openCostInBytes": str(split_bytes),
    }
    with session_conf(spark, keys):
        yield


def _decoded_path(column: str) -> sf.Column:
    # _metadata.file_path is URI-encoded (space -> %20); '+' must survive url_decode.
    return sf.url_decode(sf.replace(sf.col(column), sf.lit("+"), sf.lit("%2B")))


def read_lines(spark: SparkSession, files: Sequence[SourceFile], *, encoding: str = "utf-8") -> DataFrame:
    """One row per non-blank physical line: ``_source_file, _record_position (1-based line), _raw``.

    Must run inside :func:`one_file_per_partition` (the plan is made when an action runs, so keep the context
    open until the data is written).
    """
    reader = spark.read.format("text")
    if encoding.lower().replace("-", "") != "utf8":
        reader = reader.option("encoding", encoding)
    lines = reader.load([escape_glob(f.path) for f in files]).select(
        _decoded_path("_metadata.file_path").alias("_source_file"),
        sf.col("_metadata.file_block_start").alias("_block_start"),
        (sf.monotonically_increasing_id() - sf.shiftleft(sf.spark_partition_id().cast("long"), 33)).alias(
            "_index"
        ),
        sf.col("value").alias("_raw"),
    )
    # Lines in earlier blocks of the same (split) file: a tiny aggregate, joined back by broadcast.
    blocks = lines.groupBy("_source_file", "_block_start").agg(sf.count(sf.lit(1)).alias("_n"))
    offsets = blocks.withColumn(
        "_offset",
        sf.coalesce(
            sf.sum("_n").over(
                Window.partitionBy("_source_file")
                .orderBy("_block_start")
                .rowsBetween(Window.unboundedPreceding, -1)
            ),
            sf.lit(0),
        ),
    ).drop("_n")
    split_files = {f.path for f in files if f.size > _split_size(spark) and not f.path.endswith(".gz")}
    if split_files:
        lines = lines.join(sf.broadcast(offsets), ["_source_file", "_block_start"], "left")
    else:
        lines = lines.withColumn("_offset", sf.lit(0).cast("long"))
    return lines.select(
        "_source_file",
        (sf.col("_offset") + sf.col("_index") + 1).alias("_record_position"),
        "_raw",
    ).where(sf.trim(sf.col("_raw")) != "")


def _split_size(spark: SparkSession) -> int:
    value = spark.conf.get("spark.sql.files.maxPartitionBytes", "134217728") or "134217728"
    return int(value.rstrip("b"))


def read_files(spark: SparkSession, files: Sequence[SourceFile]) -> DataFrame:
    """One row per whole file: ``_source_file, _content`` (binary), for formats split by their parser."""
    return (
        spark.read.format("binaryFile")
        .load([escape_glob(f.path) for f in files])
        .select(sf.col("path").alias("_source_file"), sf.col("content").alias("_content"))
    )
