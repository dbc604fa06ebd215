"""Small files beside the Delta tables (model metadata) through the JVM's Hadoop FileSystem.

The lakehouse may live on any filesystem the Spark session can reach (``s3a://``, ``abfss://``, ``hdfs://``,
``viewfs://``, a local path), so these helpers never use Python's file API: every call goes through the Hadoop
``FileSystem`` of the path, as Delta and MLlib do. They are for a handful of small files per run, not for data.
"""

from __future__ import annotations

import re
from typing import Any

from pyspark.sql import SparkSession

from medspark.io.sources import hadoop_fs

_VERSION_DIR = re.compile(r"^v(\d+)$")


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a path or URI, without Python's path rules (which would fold ``s3a://`` to ``s3a:/``)."""
    return "/".join([str(root).rstrip("/"), *(p.strip("/") for p in parts)])


def exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` (a file or a directory) exists."""
    hpath, fs = hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def child_directories(spark: SparkSession, root: str) -> list[str]:
    """Names of the directories directly under ``root``, sorted; empty when ``root`` does not exist."""
    hpath, fs = hadoop_fs(spark, root)
    if not fs.exists(hpath):
        return []
    return sorted(str(s.getPath().getName()) for s in fs.listStatus(hpath) if s.isDirectory())


def next_version(spark: SparkSession, root: str) -> int:
    """One more than the largest ``v<N>`` directory under ``root`` (1 when there is none)."""
    taken = [int(m.group(1)) for name in child_directories(spark, root) if (m := _VERSION_DIR.match(name))]
    return max(taken, default=0) + 1


def write_text(spark: SparkSession, path: str, text: str, *, overwrite: bool) -> None:
    """Writes ``text`` as UTF-8 to ``path``, creating parent directories.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    hpath, fs = hadoop_fs(spark, path)
    if not overwrite and fs.exists(hpath):
        raise FileExistsError(path)
    stream: Any = fs.create(hpath, bool(overwrite))
    try:
        stream.write(bytearray(text.encode("utf-8")))  # Py4J passes a bytearray as a Java byte[]
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str:
    """The whole of a small UTF-8 file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    hpath, fs = hadoop_fs(spark, path)
    if not fs.exists(hpath):
        raise FileNotFoundError(path)
    stream: Any = fs.open(hpath)
    try:
        return bytes(stream.readAllBytes()).decode("utf-8")
    finally:
        stream.close()
