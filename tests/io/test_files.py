"""Small files through Hadoop's FileSystem: the same calls work on a local path and on a filesystem Python's file API
cannot open (viewfs://, standing in for s3a:// or hdfs://)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medspark.io import files


def test_join_keeps_uri_schemes() -> None:
    assert files.join("s3a://bucket/lake/", "gold", "/_models/") == "s3a://bucket/lake/gold/_models"
    assert files.join("/tmp/lake", "v1") == "/tmp/lake/v1"


@pytest.mark.parametrize("where", ["local", "viewfs"])
def test_text_versions_and_listing(spark: SparkSession, tmp_path: Path, viewfs: str, where: str) -> None:
    root, disk = (viewfs, tmp_path / "viewfs") if where == "viewfs" else (str(tmp_path / "local"), tmp_path / "local")
    models = files.join(root, "models")
    assert files.child_directories(spark, models) == []
    assert files.next_version(spark, models) == 1

    text = '{"name": "r\u00e9sum\u00e9 \u2713"}\n' * 3000  # non-ASCII, and larger than one 64 KiB buffer
    files.write_text(spark, files.join(models, "v2", "metadata.json"), text, overwrite=False)
    assert (disk / "models" / "v2" / "metadata.json").read_text("utf-8") == text  # it really landed there
    assert files.read_text(spark, files.join(models, "v2", "metadata.json")) == text
    with pytest.raises(FileExistsError):
        files.write_text(spark, files.join(models, "v2", "metadata.json"), "x", overwrite=False)
    files.write_text(spark, files.join(models, "v2", "metadata.json"), "short", overwrite=True)
    assert files.read_text(spark, files.join(models, "v2", "metadata.json")) == "short"

    (disk / "models" / "v10").mkdir()
    (disk / "models" / "vx").mkdir()
    (disk / "models" / "v11").write_text("a file, not a version directory")
    assert files.child_directories(spark, models) == ["v10", "v2", "vx"]
    assert files.next_version(spark, models) == 11
    assert files.exists(spark, files.join(models, "v10")) and not files.exists(spark, files.join(models, "v3"))
    with pytest.raises(FileNotFoundError):
        files.read_text(spark, files.join(models, "v3", "metadata.json"))
