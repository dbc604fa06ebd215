"""Airflow DAGs for medspark: the daily pipeline, one task per job, and the weekly lakehouse maintenance.

``medspark_pipeline`` runs ``ingest >> silver >> research >> analyze >> report`` once a day; ``medspark_maintain``
runs ``maintain`` once a week. Each task is one ``jobs/<stage>.py`` entry point, submitted in one of two modes:

- ``spark-submit`` (default): the Apache Spark provider's ``SparkSubmitOperator`` against the Airflow connection
  ``spark_default`` (its host is the master, e.g. ``spark://host:7077``, ``yarn`` or ``k8s://...``), with the Delta
  package and, if given, the medspark code shipped as ``--py-files`` / ``--archives``;
- ``cli``: a ``BashOperator`` that runs the ``medspark`` command on a worker where medspark is installed (Spark in
  local mode on that worker).

Settings are Airflow Variables named ``medspark_*``; each can also be given as the environment variable
``AIRFLOW_VAR_MEDSPARK_*`` (Airflow's own convention), which is how the settings that shape the DAG itself (mode,
schedules, connection id, checkout path, archives, Spark conf) must be given: they are read when the file is parsed,
where reading Variables from the metadata database is discouraged. The settings that only reach the command line
(lakehouse, source, config profile, Delta package, py-files, report directory) are Jinja templates resolved when
the task runs, so they can be changed in the UI without redeploying. Names deliberately avoid the ``MEDSPARK_``
prefix: medspark reads every ``MEDSPARK_*`` variable as a configuration override.

No secrets here. The pseudonym key reaches the job from the worker's environment (``MEDSPARK_PSEUDONYM_KEY``, which
``spark-submit`` in client mode and the ``medspark`` command inherit) or from the file named by ``privacy`` in the
config profile; see docs/scheduling.md. Two runs cannot overlap (``max_active_runs=1``) and medspark takes its own
lakehouse lock, so a maintenance run that meets a pipeline run fails cleanly and is retried.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, chain

# Stages in dependency order; each is jobs/<stage>.py and `medspark <stage>`.
PIPELINE_STAGES: tuple[str, ...] = ("ingest", "silver", "research", "analyze", "report")
MAINTAIN_STAGES: tuple[str, ...] = ("maintain",)
MODES = ("spark-submit", "cli")
DEFAULT_DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"  # same as conf/base.yaml spark.delta_package

# A stage past its timeout is failed (and retried). Generous upper bounds: raise them for larger data.
EXECUTION_TIMEOUT = {
    "ingest": timedelta(hours=3),
    "silver": timedelta(hours=3),
    "research": timedelta(hours=1),
    "analyze": timedelta(hours=3),
    "report": timedelta(minutes=30),
    "maintain": timedelta(hours=4),
}


def _env(name: str, default: str) -> str:
    """A parse-time setting: environment variable ``AIRFLOW_VAR_MEDSPARK_<NAME>``, else ``default``."""
    value = os.environ.get(f"AIRFLOW_VAR_MEDSPARK_{name.upper()}", "").strip()
    return value or default


def _default_home() -> str:
    """The medspark checkout: the folder above ``dags/`` when it holds ``jobs/``, else /opt/medspark."""
    here = Path(__file__).resolve().parent.parent
    return str(here) if (here / "jobs").is_dir() else "/opt/medspark"


def _var(name: str, default: str) -> str:
    """A run-time setting: a Jinja template reading Airflow Variable ``medspark_<name>`` with a default."""
    return "{{ var.value.get(" + json.dumps(f"medspark_{name}") + ", " + json.dumps(default) + ") }}"


MODE = _env("mode", "spark-submit")
if MODE not in MODES:
    raise ValueError(f"AIRFLOW_VAR_MEDSPARK_MODE must be one of {', '.join(MODES)}, got '{MODE}'")
HOME = _env("home", _default_home())
SPARK_CONN_ID = _env("spark_conn_id", "spark_default")
ARCHIVES = _env("archives", "") or None
SPARK_CONF: dict[str, str] = json.loads(_env("spark_conf", "{}"))
PIPELINE_SCHEDULE = _env("schedule", "0 2 * * *")  # daily, 02:00 UTC
MAINTAIN_SCHEDULE = _env("maintain_schedule", "0 6 * * 0")  # weekly, Sunday 06:00 UTC, after the daily run
WITH_REPORT = _env("with_report", "true").lower() in ("1", "true", "yes")

LAKEHOUSE = _var("lakehouse", f"{HOME}/lakehouse")
SOURCE = _var("source", f"{HOME}/sample-data")
CONFIG = _var("config", "cluster" if MODE == "spark-submit" else "local")
DELTA_PACKAGE = _var("delta_package", DEFAULT_DELTA_PACKAGE)
PY_FILES = _var("py_files", "")
# Airflow renders a template once: the run date is appended outside the Variable lookup, not in its default.
REPORT_DIR = _var("report_dir", f"{HOME}/reports") + "/{{ ds }}"
CLI = _var("cli", "medspark")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "medspark",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(hours=1),
}


def stage_args(stage: str) -> list[str]:
    """The arguments of ``jobs/<stage>.py`` / ``medspark <stage>`` beyond --config and --lakehouse."""
    if stage == "ingest":
        return ["--source", SOURCE]
    if stage == "report":
        return ["--out", REPORT_DIR]
    return []


def spark_submit_task(stage: str) -> BaseOperator:
    """``spark-submit <home>/jobs/<stage>.py --config P --lakehouse L ...`` through the Spark connection."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(
        task_id=stage,
        application=f"{HOME}/jobs/{stage}.py",
        application_args=["--config", CONFIG, "--lakehouse", LAKEHOUSE, *stage_args(stage)],
        conn_id=SPARK_CONN_ID,
        packages=DELTA_PACKAGE,
        py_files=PY_FILES,
        archives=ARCHIVES,
        conf=dict(SPARK_CONF),
        name=f"medspark-{stage}",
        execution_timeout=EXECUTION_TIMEOUT[stage],
    )


def cli_task(stage: str) -> BaseOperator:
    """``medspark --config P --lakehouse L <stage> ...`` on the worker, values passed through the environment."""
    from airflow.providers.standard.operators.bash import BashOperator

    # Values travel as environment variables and are expanded inside double quotes: no shell quoting of templates.
    env = {"MS_CLI": CLI, "MS_CONFIG": CONFIG, "MS_LAKEHOUSE": LAKEHOUSE}
    extra = ""
    if stage == "ingest":
        env["MS_SOURCE"] = SOURCE
        extra = ' --source "$MS_SOURCE"'
    elif stage == "report":
        env["MS_REPORT_DIR"] = REPORT_DIR
        extra = ' --out "$MS_REPORT_DIR"'
    return BashOperator(
        task_id=stage,
        bash_command=f'"$MS_CLI" --config "$MS_CONFIG" --lakehouse "$MS_LAKEHOUSE" {stage}{extra}',
        env=env,
        append_env=True,  # keep PATH, JAVA_HOME and MEDSPARK_PSEUDONYM_KEY of the worker
        execution_timeout=EXECUTION_TIMEOUT[stage],
    )


def chain_stages(stages: Sequence[str]) -> list[BaseOperator]:
    """One task per stage, each downstream of the one before."""
    factory = spark_submit_task if MODE == "spark-submit" else cli_task
    tasks = [factory(stage) for stage in stages]
    chain(*tasks)
    return tasks


def medspark_dag(dag_id: str, description: str, schedule: str, timeout: timedelta) -> DAG:
    """A medspark DAG: no catch-up, one run at a time (the jobs also take the lakehouse lock), shared defaults."""
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timeout,
        default_args=DEFAULT_ARGS,
        tags=["medspark"],
        doc_md=__doc__,
    )


with medspark_dag("medspark_pipeline", "medspark daily: ingest >> silver >> research >> analyze >> report",
                  PIPELINE_SCHEDULE, timedelta(hours=12)):
    chain_stages(PIPELINE_STAGES if WITH_REPORT else PIPELINE_STAGES[:-1])

with medspark_dag("medspark_maintain", "medspark weekly: OPTIMIZE / VACUUM / table properties of the lakehouse",
                  MAINTAIN_SCHEDULE, timedelta(hours=6)):
    chain_stages(MAINTAIN_STAGES)
