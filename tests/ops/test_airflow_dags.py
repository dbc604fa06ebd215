"""The Airflow DAGs in dags/ load with Airflow's DagBag without import errors, in the intended shape.

Airflow runs in one subprocess with its own AIRFLOW_HOME under pytest's tmp dir (never the user's home), so its
settings and logging never touch the pytest process or its SparkSession. The subprocess loads dags/ once per mode
and prints a JSON description of the DAGs, with the templated arguments rendered the way a task run renders them.
Skipped when Airflow is not installed, unless MEDSPARK_REQUIRE_AIRFLOW is set (``make test`` sets it): then a
missing Airflow fails instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from medspark.config import load_config

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PIPELINE_TASKS = ["ingest", "silver", "research", "analyze", "report"]
MAINTAIN_TASKS = ["maintain"]
# Variables given to the render: a lakehouse with a space checks the CLI mode's quoting.
VARIABLES = {"medspark_lakehouse": "/data/lake house", "medspark_source": "/data/in"}
DS = "2026-05-01"

PROBE = r'''
import inspect, json, os, sys, warnings
from airflow.dag_processing.dagbag import DagBag

# Airflow 3.0-3.2 take include_examples; from 3.3 examples are a separate bundle (core.load_examples=False here).
no_examples = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}

dag_folder, variables, ds = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]


class _Values:
    def get(self, name, default=None):
        return variables.get(name, default)


out = {}
for mode in sys.argv[4:]:
    os.environ["AIRFLOW_VAR_MEDSPARK_MODE"] = mode
    warnings.simplefilter("always")
    bag = DagBag(dag_folder=dag_folder, **no_examples)
    dags = {}
    for dag_id, dag in bag.dags.items():
        context = {"var": {"value": _Values()}, "ds": ds}
        env = dag.get_template_env()
        tasks = {}
        for task in dag.tasks:
            info = {
                "operator": type(task).__name__,
                "upstream": sorted(task.upstream_task_ids),
                "downstream": sorted(task.downstream_task_ids),
                "retries": task.retries,
                "retry_delay_s": task.retry_delay.total_seconds(),
                "timeout_s": task.execution_timeout.total_seconds() if task.execution_timeout else None,
            }
            for field in ("application", "application_args", "packages", "py_files", "bash_command", "env"):
                if hasattr(task, field):
                    info[field] = task.render_template(getattr(task, field), context, env)
            if hasattr(task, "_conn_id"):
                info["conn_id"] = task._conn_id
            tasks[task.task_id] = info
        dags[dag_id] = {
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
            "schedule": str(dag.schedule),
            "tasks": tasks,
        }
    out[mode] = {
        "import_errors": {str(k): str(v)[-400:] for k, v in bag.import_errors.items()},
        "warnings": {str(k): list(v) for k, v in bag.captured_warnings.items()},
        "dags": dags,
    }
from airflow.configuration import AIRFLOW_HOME, conf

out["airflow_home"] = AIRFLOW_HOME
out["sql_alchemy_conn"] = conf.get("database", "sql_alchemy_conn")
print("PROBE-JSON " + json.dumps(out))
'''


def _airflow_installed() -> bool:
    return importlib.util.find_spec("airflow") is not None


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DAGs as loaded by DagBag in each mode ("bogus" must give an import error)."""
    if not _airflow_installed():
        if os.environ.get("MEDSPARK_REQUIRE_AIRFLOW"):
            pytest.fail("Airflow is not installed and MEDSPARK_REQUIRE_AIRFLOW is set (pip install -e '.[dev]')")
        pytest.skip("Airflow is not installed (set MEDSPARK_REQUIRE_AIRFLOW=1 to fail instead)")
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # no user AIRFLOW_HOME/VAR_*
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(DAGS), AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR")
    probe = home / "probe.py"
    probe.write_text(PROBE)
    proc = subprocess.run(
        [sys.executable, str(probe), str(DAGS), json.dumps(VARIABLES), DS, "spark-submit", "cli", "bogus"],
        env=env, cwd=home, capture_output=True, text=True, timeout=300, check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE-JSON ")]
    assert proc.returncode == 0 and lines, f"DagBag probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1][len("PROBE-JSON "):])
    result["_tmp_home"] = str(home)
    return result


@pytest.mark.parametrize("mode", ["spark-submit", "cli"])
def test_dags_import_without_errors_or_warnings(loaded: dict[str, Any], mode: str) -> None:
    assert loaded[mode]["import_errors"] == {}
    assert loaded[mode]["warnings"] == {}
    assert sorted(loaded[mode]["dags"]) == ["medspark_maintain", "medspark_pipeline"]


def test_airflow_home_is_the_tmp_dir(loaded: dict[str, Any]) -> None:
    assert loaded["airflow_home"] == loaded["_tmp_home"]
    assert loaded["sql_alchemy_conn"].startswith(f"sqlite:///{loaded['_tmp_home']}/")


def test_an_unknown_mode_is_an_import_error(loaded: dict[str, Any]) -> None:
    errors = loaded["bogus"]["import_errors"]
    assert len(errors) == 1
    assert "AIRFLOW_VAR_MEDSPARK_MODE must be one of spark-submit, cli" in next(iter(errors.values()))


@pytest.mark.parametrize("mode", ["spark-submit", "cli"])
@pytest.mark.parametrize(("dag_id", "order"), [("medspark_pipeline", PIPELINE_TASKS),
                                               ("medspark_maintain", MAINTAIN_TASKS)])
def test_one_task_per_job_in_dependency_order(loaded: dict[str, Any], mode: str, dag_id: str,
                                              order: list[str]) -> None:
    dag = loaded[mode]["dags"][dag_id]
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is False
    tasks = dag["tasks"]
    assert sorted(tasks) == sorted(order)
    for i, task_id in enumerate(order):
        assert tasks[task_id]["upstream"] == order[i - 1 : i], task_id
        assert tasks[task_id]["downstream"] == order[i + 1 : i + 2], task_id
        assert tasks[task_id]["retries"] > 0
        assert tasks[task_id]["retry_delay_s"] > 0
        assert tasks[task_id]["timeout_s"] is not None and tasks[task_id]["timeout_s"] > 0


def test_schedules_daily_and_weekly(loaded: dict[str, Any]) -> None:
    dags = loaded["spark-submit"]["dags"]
    assert "0 2 * * *" in dags["medspark_pipeline"]["schedule"]
    assert "0 6 * * 0" in dags["medspark_maintain"]["schedule"]


def test_spark_submit_tasks_run_the_job_files(loaded: dict[str, Any]) -> None:
    delta_package = yaml.safe_load((REPO / "conf" / "base.yaml").read_text())["spark"]["delta_package"]
    expected_extra = {"ingest": ["--source", "/data/in"], "report": ["--out", f"{REPO}/reports/{DS}"]}
    for dag in loaded["spark-submit"]["dags"].values():
        for task_id, task in dag["tasks"].items():
            assert task["operator"] == "SparkSubmitOperator"
            application = Path(task["application"])
            assert application == REPO / "jobs" / f"{task_id}.py"
            assert application.is_file(), f"{application} does not exist"
            assert task["application_args"] == ["--config", "cluster", "--lakehouse", "/data/lake house",
                                                *expected_extra.get(task_id, [])]
            assert task["packages"] == delta_package
            assert task["py_files"] == ""
            assert task["conn_id"] == "spark_default"


def test_cli_tasks_run_medspark_with_the_same_arguments(loaded: dict[str, Any], tmp_path: Path) -> None:
    # A stand-in for the medspark command that records its argv: checks the rendered command and its quoting.
    fake = tmp_path / "fake-medspark"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    expected_extra = {"ingest": ["--source", "/data/in"], "report": ["--out", f"{REPO}/reports/{DS}"]}
    for dag in loaded["cli"]["dags"].values():
        for task_id, task in dag["tasks"].items():
            assert task["operator"] == "BashOperator"
            assert task["env"]["MS_CLI"] == "medspark"
            env = {**os.environ, **task["env"], "MS_CLI": str(fake)}
            proc = subprocess.run(["bash", "-c", task["bash_command"]], env=env, capture_output=True, text=True,
                                  check=True, timeout=60)
            assert json.loads(proc.stdout) == ["--config", "local", "--lakehouse", "/data/lake house", task_id,
                                               *expected_extra.get(task_id, [])]


def test_require_airflow_switch_is_not_a_config_key() -> None:
    # MEDSPARK_* variables are config overrides; the test switch set by `make test` must not be read as one.
    config = load_config("test", environ={"MEDSPARK_REQUIRE_AIRFLOW": "1"})
    assert config.lakehouse
