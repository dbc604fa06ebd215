"""Generated populations shared by the generator tests (small: a few hundred patients, several chunks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_readers import CHUNK, DEFECT_RATE, PATIENTS, SEED

from medspark.synthetic import GenerateSummary, generate


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    """300 patients in 3 chunks, no defects, one worker."""
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, patients=PATIENTS, seed=SEED, workers=1, chunk_patients=CHUNK)


@pytest.fixture(scope="session")
def clean(clean_run: tuple[Path, GenerateSummary]) -> Path:
    return clean_run[0]


@pytest.fixture(scope="session")
def defective(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same population as ``clean`` with 3 % of records damaged, written by two workers."""
    out = tmp_path_factory.mktemp("defects")
    generate(out, patients=PATIENTS, seed=SEED, defect_rate=DEFECT_RATE, workers=2, chunk_patients=CHUNK)
    return out


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A larger clean population (3,000 patients) for the statistical checks of the clinical model."""
    out = tmp_path_factory.mktemp("cohort")
    generate(out, patients=3000, seed=2024, workers=2, chunk_patients=1000)
    return out
