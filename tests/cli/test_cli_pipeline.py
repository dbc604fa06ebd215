"""The CLI end to end in-process (joins the test session): the pipeline on a small source, its stage skipping,
failure and resume, then history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

import medspark.silver.job
from medspark.cli.main import main
from medspark.pipeline import STAGES


def _reading(mrn: str, value: int) -> str:
    return json.dumps({"device_id": "m", "patient_mrn": mrn, "timestamp": "2024-01-01T00:00:00Z", "metric": "spo2",
                       "value": value, "unit": "%"}) + "\n"


def _stages(spark: SparkSession, lakehouse: str) -> dict[str, str]:
    """Status of each stage in the newest pipeline run, from ops/pipeline_state."""
    state = spark.read.format("delta").load(f"{lakehouse}/ops/pipeline_state")
    newest = state.agg(sf.max("run_id")).first()[0]  # type: ignore[index]
    return {r["stage"]: r["status"] for r in state.where(sf.col("run_id") == newest).collect()}


def test_pipeline_skips_what_did_not_change_and_resumes_after_a_failure(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "v.jsonl").write_text(_reading("MRN1", 97))
    lakehouse = str(tmp_path / "lh")
    pipeline = ["--config", "test", "--lakehouse", lakehouse, "pipeline", "--source", str(src)]

    # Silver fails: bronze keeps its batch, the run stops at silver with one line and a non-zero exit.
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(medspark.silver.job, "build_silver", broken)
    assert main(pipeline) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medspark: error")]
    assert len(errors) == 1 and "stage 'silver' failed: disk full" in errors[0]
    assert _stages(spark, lakehouse) == {"bronze": "succeeded", "silver": "failed"}
    assert spark.read.format("delta").load(f"{lakehouse}/bronze/device_vitals").count() == 1
    run_log = spark.read.format("delta").load(f"{lakehouse}/ops/run_log").where(sf.col("job") == "pipeline")
    assert run_log.where((sf.col("table_name") == "stage:silver") & (sf.col("status") == "failed")).count() == 1
    assert run_log.where(sf.col("table_name").isNull() & (sf.col("status") == "failed")).count() == 1

    # Fixed: the next run resumes at silver, as bronze has nothing new.
    monkeypatch.undo()
    assert main(pipeline) == 0
    out = capsys.readouterr()
    assert "analyze: skipped, the research views hold no persons" in out.out and "[pipeline] done" in out.err
    assert _stages(spark, lakehouse) == {"bronze": "skipped", "silver": "succeeded", "research": "succeeded",
                                         "gold": "succeeded"}
    assert spark.read.format("delta").load(f"{lakehouse}/bronze/device_vitals").count() == 1

    # Nothing changed: every stage is skipped, and says since which run.
    assert main(pipeline) == 0
    assert _stages(spark, lakehouse) == dict.fromkeys(STAGES, "skipped")
    assert capsys.readouterr().out.count("inputs unchanged since run pipeline-") == len(STAGES)

    assert main(["--config", "test", "--lakehouse", lakehouse, "history", "device_vitals"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert history[0].startswith("history of bronze/device_vitals")
    assert any("WRITE" in line.split() for line in history[2:])
    assert main(["--config", "test", "--lakehouse", lakehouse, "history", "silver/nothing"]) == 2
    assert "no Delta table 'silver/nothing'" in capsys.readouterr().err
