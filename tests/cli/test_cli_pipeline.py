"""The CLI end to end in-process (joins the test session): pipeline on a small source, then history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medspark.cli.main import main


def test_pipeline_then_history(spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    reading = {"device_id": "m", "patient_mrn": "MRN1", "timestamp": "2024-01-01T00:00:00Z", "metric": "spo2",
               "value": 97, "unit": "%"}
    (src / "v.jsonl").write_text(json.dumps(reading) + "\n")
    lakehouse = str(tmp_path / "lh")
    assert main(["--config", "test", "--lakehouse", lakehouse, "pipeline", "--source", str(src)]) == 0
    out = capsys.readouterr()
    assert "device_vitals" in out.out and "[pipeline] done" in out.err
    assert main(["--config", "test", "--lakehouse", lakehouse, "history", "device_vitals"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert history[0].startswith("history of bronze/device_vitals")
    assert any("WRITE" in line.split() for line in history[2:])
    assert main(["--config", "test", "--lakehouse", lakehouse, "history", "silver/nothing"]) == 2
    assert "no Delta table 'silver/nothing'" in capsys.readouterr().err
