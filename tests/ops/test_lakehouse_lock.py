"""The lakehouse lock: one holder at a time, also when two runs race for it; dead holders are taken over."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medspark.cli.main import main
from medspark.config import load_config
from medspark.errors import ConcurrentRunError
from medspark.ops.lock import acquire, current_holder, lakehouse_lock, lock_path, release


def _config(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_config("test", lakehouse=str(tmp_path / "lh"))


def test_two_runs_racing_for_the_lock_get_one_holder(spark: SparkSession, tmp_path: Path) -> None:
    config = _config(tmp_path)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def contender(run_id: str) -> None:
        barrier.wait()
        try:
            acquire(spark, config, run_id, "pipeline")
            outcomes[run_id] = "held"
        except ConcurrentRunError as exc:
            outcomes[run_id] = f"refused: {exc}"

    threads = [threading.Thread(target=contender, args=(name,)) for name in ("run-a", "run-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [run for run, outcome in outcomes.items() if outcome == "held"]
    assert len(winners) == 1, outcomes
    loser = "run-b" if winners == ["run-a"] else "run-a"
    assert "is locked by run " + winners[0] in outcomes[loser]
    holder = current_holder(spark, config)
    assert holder is not None and holder.holder == winners[0] and holder.pid == os.getpid()
    # The lock table stays one row whatever the interleaving was.
    assert spark.read.format("delta").load(lock_path(config)).count() == 1
    release(spark, config, winners[0])
    assert current_holder(spark, config) is None
    acquire(spark, config, loser, "pipeline")
    assert current_holder(spark, config).holder == loser  # type: ignore[union-attr]


def test_a_dead_holder_on_this_host_is_taken_over(spark: SparkSession, tmp_path: Path) -> None:
    config = _config(tmp_path)
    # A pid above the kernel's maximum can belong to no process (a just-finished one could be reused at once).
    pid_max = Path("/proc/sys/kernel/pid_max")
    dead_pid = int(pid_max.read_text()) + 1 if pid_max.exists() else 2**22 + 1
    acquire(spark, config, "dead-run", "silver")
    DeltaTable.forPath(spark, lock_path(config)).update(set={"pid": sf.lit(dead_pid)})
    assert current_holder(spark, config).host == socket.gethostname()  # type: ignore[union-attr]
    with lakehouse_lock(spark, config, "new-run", "pipeline"):
        assert current_holder(spark, config).holder == "new-run"  # type: ignore[union-attr]
    assert current_holder(spark, config) is None


def test_a_command_refuses_a_locked_lakehouse_and_unlock_clears_it(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    acquire(spark, config, "other-run", "pipeline")  # alive: this very process
    lakehouse = ["--config", "test", "--lakehouse", config.lakehouse]
    assert main([*lakehouse, "research"]) == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medspark: error")]
    assert len(err) == 1 and "is locked by run other-run (pipeline" in err[0] and "medspark unlock" in err[0]
    assert main([*lakehouse, "unlock"]) == 0
    assert "run other-run" in capsys.readouterr().out
    assert current_holder(spark, config) is None
    assert main([*lakehouse, "unlock"]) == 0
    assert "not locked" in capsys.readouterr().out


def test_the_lock_is_released_when_the_block_fails(spark: SparkSession, tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(RuntimeError), lakehouse_lock(spark, config, "failing-run", "silver"):
        assert current_holder(spark, config).holder == "failing-run"  # type: ignore[union-attr]
        raise RuntimeError("stage failed")
    assert current_holder(spark, config) is None
