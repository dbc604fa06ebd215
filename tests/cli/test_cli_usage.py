"""Usage and config errors: one line on stderr, exit code 2, no traceback (no Spark needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medspark.cli.jobs import run_job
from medspark.cli.main import main


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["generate", "--patients", "0", "--seed", "1", "--out", "x"], "expected a positive integer"),
        (["generate", "--patients", "10", "--seed", "1", "--out", "x", "--defect-rate", "2"], "between 0 and 0.5"),
        (["--set", "ingest.nope=1", "ingest", "--source", "x"], "unknown config key 'ingest.nope'"),
        (["--config", "/no/such.yaml", "ingest", "--source", "x"], "neither a profile"),
        (["ingest", "--source", "x", "--format", "pdf"], "invalid choice: 'pdf'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("medspark: error: ")
    assert fragment in err[0]


def test_console_script_exit_code_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medspark.cli.main", "--set", "bogus=1", "history", "bronze/x"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "medspark: error: unknown config key 'bogus'"


def test_job_entry_point_accepts_global_options_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_job("ingest", ["--source", "x", "--set", "ingest.nope=1"]) == 2
    assert "unknown config key 'ingest.nope'" in capsys.readouterr().err


JOBS = sorted((Path(__file__).resolve().parents[2] / "jobs").glob("*.py"))


@pytest.mark.parametrize("job", JOBS, ids=[p.stem for p in JOBS])
def test_each_job_file_runs_its_own_command(job: Path) -> None:
    """``python jobs/<name>.py --help`` is ``medspark <name> --help``: each spark-submit entry point maps to its CLI
    command (the cluster test submits jobs/generate.py and jobs/pipeline.py; the Airflow DAG submits the rest)."""
    proc = subprocess.run([sys.executable, str(job), "--help"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: medspark {job.stem} "), proc.stdout[:200]
