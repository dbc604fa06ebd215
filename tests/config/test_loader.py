"""Config layering and validation: base < profile < MEDSPARK_* < --set < --lakehouse; bad input -> ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from medspark.config import load_config
from medspark.errors import ConfigError


def test_profile_layers_over_base() -> None:
    config = load_config("test", environ={})
    assert config.profile == "test"
    assert config.spark.master == "local[2]"
    assert config.spark.conf["spark.sql.shuffle.partitions"] == "2"
    # from base.yaml, untouched by the profile
    assert config.spark.conf["spark.sql.session.timeZone"] == "UTC"


def test_precedence_env_then_set_then_flag() -> None:
    env = {"MEDSPARK_LAKEHOUSE": "/from/env", "MEDSPARK_INGEST__MAX_FILES_PER_BATCH": "7"}
    config = load_config("test", environ=env)
    assert config.lakehouse == "/from/env"
    assert config.ingest.max_files_per_batch == 7
    config = load_config("test", environ=env, overrides=["lakehouse=/from/set", "ingest.max_files_per_batch=9"])
    assert (config.lakehouse, config.ingest.max_files_per_batch) == ("/from/set", 9)
    config = load_config("test", environ=env, overrides=["lakehouse=/from/set"], lakehouse="s3a://bucket/lh")
    assert config.lakehouse == "s3a://bucket/lh"
    assert config.table_path("bronze", "fhir_patient") == "s3a://bucket/lh/bronze/fhir_patient"


def test_spark_conf_keys_keep_their_dots() -> None:
    config = load_config("test", environ={}, overrides=["spark.conf.spark.sql.shuffle.partitions=5"])
    assert config.spark.conf["spark.sql.shuffle.partitions"] == "5"


def test_reserved_environment_is_not_config() -> None:
    config = load_config("test", environ={"MEDSPARK_PSEUDONYM_KEY": "x" * 40, "MEDSPARK_PROFILE": "test"})
    assert config.profile == "test"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": ["ingest.no_such_key=1"]}, "unknown config key 'ingest.no_such_key'"),
        ({"overrides": ["ingest.max_files_per_batch=many"]}, "config key 'ingest.max_files_per_batch'"),
        ({"overrides": ["ingest.max_files_per_batch=0"]}, "config key 'ingest.max_files_per_batch'"),
        ({"overrides": ["novalue"]}, "--set expects KEY=VALUE"),
        ({"environ": {"MEDSPARK_BOGUS": "1"}}, "unknown config key 'bogus'"),
        ({"overrides": ["lakehouse="]}, "config key 'lakehouse'"),
    ],
)
def test_invalid_config_is_one_clear_line(kwargs: dict, message: str) -> None:
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        load_config("test", **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a profile"):
        load_config(str(tmp_path / "missing.yaml"), environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("lakehouse: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(str(bad), environ={})
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(str(listy), environ={})
    good = tmp_path / "mine.yaml"
    good.write_text("lakehouse: /data/lh\ningest:\n  split_bytes: 2097152\n")
    config = load_config(str(good), environ={})
    assert (config.lakehouse, config.ingest.split_bytes) == ("/data/lh", 2097152)


def test_a_relative_local_lakehouse_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("test", environ={}, lakehouse="lh").lakehouse == str(tmp_path / "lh")
    assert load_config("test", environ={}, lakehouse="./a/../lh").lakehouse == str(tmp_path / "lh")
    assert load_config("test", environ={}, lakehouse="file:/data/lh").lakehouse == "file:/data/lh"
    assert load_config("test", environ={}, lakehouse="abfss://c@a.dfs.core.windows.net/lh").lakehouse.startswith(
        "abfss://")


def test_profiles_found_beside_the_running_job_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under spark-submit medspark may come from a --py-files archive (no conf/ beside the package): the profiles
    are then the ones beside the submitted jobs/ folder."""
    from medspark.config import loader

    deploy = tmp_path / "deploy"
    (deploy / "jobs").mkdir(parents=True)
    (deploy / "jobs" / "pipeline.py").write_text("")
    (deploy / "conf").mkdir()
    (deploy / "conf" / "base.yaml").write_text("lakehouse: /data/lh\n")
    (deploy / "conf" / "cluster.yaml").write_text("gold:\n  min_cell_count: 11\n")
    monkeypatch.chdir(tmp_path)  # no ./conf here
    monkeypatch.delenv("MEDSPARK_CONF_DIR", raising=False)
    monkeypatch.setattr(loader, "__file__", str(tmp_path / "archive.zip" / "medspark" / "config" / "loader.py"))
    monkeypatch.setattr("sys.argv", [str(deploy / "jobs" / "pipeline.py")])
    assert loader.conf_dir() == deploy / "conf"
    assert load_config("cluster", environ={}).gold.min_cell_count == 11
    monkeypatch.setattr("sys.argv", [str(deploy / "pipeline.py")])  # not a job file: not looked beside
    assert loader.conf_dir() is None
