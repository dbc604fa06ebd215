"""A missing Java or an unresolvable Delta JAR gives one clear line and exit code 2, not a JVM stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medspark.cli.main", *args],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )


def test_missing_java(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # python only, no java
    (tmp_path / "src").mkdir()
    proc = _run(["--config", "test", "--lakehouse", str(tmp_path / "lh"), "ingest", "--source", str(tmp_path / "src")],
                env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("medspark: error: Java not found")
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_unresolvable_delta_jar(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    proc = _run(
        ["--config", "test", "--lakehouse", str(tmp_path / "lh"),
         "--set", "spark.delta_package=io.delta:delta-spark_4.2_2.13:0.0.0-no-such-version",
         "ingest", "--source", str(tmp_path / "src")],
        dict(os.environ),
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("medspark: error: Spark could not start its JVM")
    assert "0.0.0-no-such-version" in last
    assert "Traceback" not in proc.stderr
