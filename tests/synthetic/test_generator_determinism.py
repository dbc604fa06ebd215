"""Determinism, idempotent re-runs, atomic output and argument checks of ``generate``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_readers import CHUNK, PATIENTS, SEED, defects, records_manifests

from medspark.errors import UsageError
from medspark.synthetic import GenerateSummary, generate


def _tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` except the run summary (it holds timings)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "summary.json"
    }


def test_same_seed_two_workers_is_byte_identical(clean: Path, tmp_path: Path) -> None:
    generate(tmp_path, patients=PATIENTS, seed=SEED, workers=2, chunk_patients=CHUNK)
    expected, actual = _tree(clean), _tree(tmp_path)
    assert sorted(actual) == sorted(expected)
    different = [name for name in expected if expected[name] != actual[name]]
    assert different == []


def test_rerun_into_same_directory_reproduces_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    generate(tmp_path, patients=120, seed=5, workers=1, chunk_patients=50)
    first = _tree(tmp_path)
    generate(tmp_path, patients=120, seed=5, workers=1, chunk_patients=50)
    assert _tree(tmp_path) == first
    assert [p.name for p in tmp_path.rglob(".*")] == []


def test_different_seed_gives_different_data(clean: Path, tmp_path: Path) -> None:
    generate(tmp_path, patients=PATIENTS, seed=SEED + 1, workers=1, chunk_patients=CHUNK)
    for rel in ("synthea-csv/patients-00000.csv", "fhir-ndjson/Observation.00001.ndjson"):
        assert (tmp_path / rel).read_bytes() != (clean / rel).read_bytes()


def test_smaller_rerun_removes_outputs_of_the_earlier_run(tmp_path: Path) -> None:
    generate(tmp_path, patients=150, seed=3, workers=1, chunk_patients=50)
    assert (tmp_path / "synthea-csv" / "patients-00002.csv").exists()
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / "synthea-csv" / "README.md").write_text("not ours")
    generate(tmp_path, patients=60, seed=3, workers=1, chunk_patients=50)
    assert sorted(p.name for p in (tmp_path / "synthea-csv").iterdir()) == [
        "README.md", *sorted(f"{t}-0000{c}.csv" for t in (
            "patients", "encounters", "conditions", "medications", "procedures", "observations") for c in (0, 1)),
    ]
    assert not (tmp_path / "_manifest" / "truth-00002.csv.gz").exists()
    assert (tmp_path / "notes.txt").exists()


def test_killed_run_leftovers_are_hidden_and_cleaned(tmp_path: Path) -> None:
    (tmp_path / "vitals").mkdir()
    leftover = tmp_path / "vitals" / ".vitals-00000.jsonl.tmp"
    leftover.write_text('{"device_id":')
    generate(tmp_path, patients=20, seed=1, workers=1, chunk_patients=20)
    assert not leftover.exists()


def test_zero_defect_rate_injects_nothing(clean: Path) -> None:
    assert defects(clean) == []
    for manifest in records_manifests(clean):
        assert manifest["by_file"]


def test_summary_counts_match_the_record_manifests(clean_run: tuple[Path, GenerateSummary]) -> None:
    out, summary = clean_run
    assert summary.patients == PATIENTS and summary.chunks == 3 and summary.defects == 0
    per_format: dict[str, int] = {}
    for manifest in records_manifests(out):
        for fmt, entities in manifest["by_entity"].items():
            per_format[fmt] = per_format.get(fmt, 0) + sum(entities.values())
    assert {k: v for k, v in summary.records.items() if v} == per_format
    assert summary.files == sum(1 for p in out.rglob("*") if p.is_file())
    assert "300 patients" in summary.render()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"patients": 0}, "patients"),
        ({"patients": 2.5}, "patients"),
        ({"seed": -1}, "seed"),
        ({"defect_rate": 0.9}, "defect_rate"),
        ({"defect_rate": "x"}, "defect_rate"),
        ({"workers": -2}, "workers"),
        ({"chunk_patients": 0}, "chunk_patients"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_argument(tmp_path: Path, kwargs: dict, name: str) -> None:
    args = {"patients": 10, "seed": 1, **kwargs}
    with pytest.raises(UsageError, match=name):
        generate(tmp_path, **args)
    assert list(tmp_path.iterdir()) == []


def test_dead_worker_fails_the_run_instead_of_hanging(tmp_path: Path) -> None:
    """A script without a main guard makes spawned workers die; generate must raise, not wait forever."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from medspark.synthetic import generate\n"
        f"generate({str(tmp_path / 'out')!r}, patients=40, seed=1, workers=2, chunk_patients=20)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode != 0
    assert "worker process died" in result.stderr
