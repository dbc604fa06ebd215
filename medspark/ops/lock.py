"""The lakehouse lock: one writing run at a time, on any filesystem Delta supports.

The lock is a one-row Delta table, ``ops/lakehouse_lock``. A run takes it with a MERGE that only sets the holder
when nobody holds it, then reads the row back. Two runs that try at the same moment both read the same snapshot
and both rewrite the row; Delta lets exactly one of those commits in and fails the other with a concurrent
modification error, so at most one run ever sees itself as the holder. No lock service and no atomic-rename
filesystem is needed beyond what Delta itself requires of its log store.

A holder that died without releasing (a killed process) is detected when it ran on this host and its process no
longer exists; its lock is taken over and the take-over is logged. A lock held from another host is only released
by that run or by ``medspark unlock`` (an operator's decision). Only run ids, host names and process ids are
stored: no record values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as sf

from medspark.config.model import MedsparkConfig
from medspark.errors import ConcurrentRunError
from medspark.io.delta import table_exists

log = logging.getLogger(__name__)

LOCK_TABLE = "lakehouse_lock"
LOCK_SCHEMA = "lock_name string, holder string, job string, host string, pid int, acquired_at timestamp"
_NAME = "lakehouse"
_CONFLICTS = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)


@dataclass(frozen=True)
class Holder:
    """Who holds the lock."""

    holder: str
    job: str
    host: str
    pid: int
    acquired_at: dt.datetime

    def describe(self) -> str:
        """One line for an error message."""
        since = self.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.acquired_at else "unknown time"
        return f"run {self.holder} ({self.job}, host {self.host}, pid {self.pid}, since {since})"


def lock_path(config: MedsparkConfig) -> str:
    """Location of the lock table."""
    return config.table_path("ops", LOCK_TABLE)


def _ensure_table(spark: SparkSession, path: str) -> None:
    if table_exists(spark, path):
        return
    row = spark.createDataFrame([(_NAME, None, None, None, None, None)], LOCK_SCHEMA)
    try:
        row.write.format("delta").mode("errorifexists").save(path)
    except (AnalysisException, *_CONFLICTS):
        # Another run created it first (its first commit won); that table is the lock.
        if not table_exists(spark, path):
            raise


def current_holder(spark: SparkSession, config: MedsparkConfig) -> Holder | None:
    """The run holding the lock, or None."""
    path = lock_path(config)
    if not table_exists(spark, path):
        return None
    rows = (
        spark.read.format("delta").load(path).where((sf.col("lock_name") == _NAME) & sf.col("holder").isNotNull())
        .collect()  # one row at most
    )
    if not rows:
        return None
    r = rows[0]
    return Holder(r["holder"], r["job"], r["host"], int(r["pid"]), r["acquired_at"])


def _set_holder(spark: SparkSession, path: str, *, new: tuple[str, str, str, int] | None, expected: str | None) -> bool:
    """Replace the holder ``expected`` (None = free) by ``new`` (None = release) in one Delta commit.

    Returns False when a concurrent run changed the lock first.
    """
    table = DeltaTable.forPath(spark, path)
    condition = "t.holder IS NULL" if expected is None else f"t.holder = '{_quote(expected)}'"
    values: dict[str, str | Column]
    if new is None:
        values = {c: sf.lit(None) for c in ("holder", "job", "host", "pid", "acquired_at")}
    else:
        holder, job, host, pid = new
        values = {"holder": sf.lit(holder), "job": sf.lit(job), "host": sf.lit(host), "pid": sf.lit(pid),
                  "acquired_at": sf.current_timestamp()}
    source = spark.createDataFrame([(_NAME,)], "lock_name string")
    try:
        (
            table.alias("t").merge(source.alias("s"), "t.lock_name = s.lock_name")
            .whenMatchedUpdate(condition=condition, set=values)
            .execute()
        )
    except _CONFLICTS:
        return False
    return True


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _alive_here(holder: Holder) -> bool:
    """False only when the holder ran on this host and its process is gone."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(spark: SparkSession, config: MedsparkConfig, run_id: str, job: str) -> None:
    """Take the lakehouse lock for ``run_id`` or raise :class:`ConcurrentRunError` naming the holder."""
    path = lock_path(config)
    _ensure_table(spark, path)
    me = (run_id, job, socket.gethostname(), os.getpid())
    for _ in range(3):
        holder = current_holder(spark, config)
        if holder is None:
            _set_holder(spark, path, new=me, expected=None)
        elif holder.holder == run_id:
            return
        elif not _alive_here(holder):
            log.warning("lakehouse lock: taking over from %s, whose process is gone", holder.describe())
            _set_holder(spark, path, new=me, expected=holder.holder)
        else:
            raise ConcurrentRunError(
                f"the lakehouse {config.lakehouse} is locked by {holder.describe()}; wait for it to finish, or run "
                "`medspark unlock` if that run is dead"
            )
        confirmed = current_holder(spark, config)
        if confirmed is not None and confirmed.holder == run_id:
            log.info("lakehouse lock taken by %s", run_id)
            return
    holder = current_holder(spark, config)
    raise ConcurrentRunError(
        f"the lakehouse {config.lakehouse} is locked by "
        f"{holder.describe() if holder else 'another run that just finished'}; try again"
    )


def release(spark: SparkSession, config: MedsparkConfig, run_id: str) -> None:
    """Give the lock back (a no-op when ``run_id`` does not hold it)."""
    path = lock_path(config)
    if table_exists(spark, path) and not _set_holder(spark, path, new=None, expected=run_id):
        log.warning("lakehouse lock: release by %s raced with another change; lock state re-read", run_id)
        holder = current_holder(spark, config)
        if holder is not None and holder.holder == run_id:
            _set_holder(spark, path, new=None, expected=run_id)


def force_unlock(spark: SparkSession, config: MedsparkConfig) -> Holder | None:
    """Clear the lock whoever holds it (operator action); returns the holder that was removed."""
    holder = current_holder(spark, config)
    if holder is not None:
        _set_holder(spark, lock_path(config), new=None, expected=holder.holder)
    return holder


@contextlib.contextmanager
def lakehouse_lock(spark: SparkSession, config: MedsparkConfig, run_id: str, job: str) -> Iterator[None]:
    """Hold the lakehouse lock for the duration of a block; released also when the block fails."""
    acquire(spark, config, run_id, job)
    try:
        yield
    finally:
        release(spark, config, run_id)
