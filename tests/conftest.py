"""Test fixtures: pytest-spark's one session-scoped ``spark_session`` (configured in pyproject.toml), paths to
the shared real samples (tests skip cleanly when ``../shared/data`` is absent)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

import __main__

# Under pytest-xdist the worker's __main__ has neither __spec__ nor __file__, which pyspark.sql.connect takes for
# a doctest run and answers with sys.exit(0) when Great Expectations imports it. Give __main__ a real file that
# does nothing: process pools started by the tests (the generator's) re-run it in their workers.
if getattr(__main__, "__spec__", None) is None and not hasattr(__main__, "__file__"):
    __main__.__file__ = str(Path(__file__).with_name("_xdist_main.py"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Python workers must run this interpreter (the venv's, with pyarrow/pandas), not the system python.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
# A fixed test-only pseudonym key (the job refuses to run without one; real runs get theirs from a secret store).
TEST_PSEUDONYM_KEY = "5f0c2a9e7b1d4c3a8e6f9b2d1c7a4e3f0b9d8c7e6a5f4b3c2d1e0f9a8b7c6d5e"
os.environ.setdefault("MEDSPARK_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSPARK_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spark(spark_session):  # type: ignore[no-untyped-def]
    """Alias of pytest-spark's session (one per test run, Delta enabled)."""
    return spark_session


@pytest.fixture
def compiled_codegen(spark):  # type: ignore[no-untyped-def]
    """Spark's code generation back on for one test: the session interprets expressions (faster for the handful of
    rows most tests move), which is slower for the tests that process real data sets (PhysioNet 174 s -> 410 s)."""
    from medspark.spark import session_conf

    with session_conf(spark, {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}):
        yield


def mount_viewfs(spark, directory: Path) -> str:  # type: ignore[no-untyped-def]
    """A ``viewfs://`` URI whose root is mounted on ``directory``: a Hadoop filesystem that Python's file API cannot
    open, standing in for s3a:// or hdfs:// (code that takes a shortcut through local paths fails on it). Each call
    gets its own mount table, so the FileSystem cache never serves another test's mount."""
    directory.mkdir(parents=True, exist_ok=True)
    name = "t" + uuid.uuid4().hex[:12]
    spark.sparkContext._jsc.hadoopConfiguration().set(f"fs.viewfs.mounttable.{name}.link./root", directory.as_uri())
    return f"viewfs://{name}/root"


@pytest.fixture(scope="session")
def viewfs_mount(spark):  # type: ignore[no-untyped-def]
    """:func:`mount_viewfs` on the test session: ``viewfs_mount(directory) -> URI``."""
    return lambda directory: mount_viewfs(spark, directory)


@pytest.fixture
def viewfs(viewfs_mount, tmp_path):  # type: ignore[no-untyped-def]
    """A viewfs:// URI mounted on ``tmp_path / "viewfs"``."""
    return viewfs_mount(tmp_path / "viewfs")
