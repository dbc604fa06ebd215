"""The ingest ledger refuses a batch id another run planned first (two ingests at once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medspark.config.model import MedsparkConfig
from medspark.errors import ConcurrentRunError
from medspark.ingestion.contract import SourceFile
from medspark.io.ledger import IngestLedger


def test_second_planner_of_a_batch_id_is_refused(spark, tmp_path: Path) -> None:
    ledger = IngestLedger(spark, MedsparkConfig(lakehouse=str(tmp_path / "lh")))
    files = [SourceFile("file:/x/a.csv", 10, 1_000, "synthea-csv")]
    ledger.plan(1, "run-a", files)
    with pytest.raises(ConcurrentRunError, match="batch 1 was planned by another ingest run"):
        ledger.plan(1, "run-b", files)
    # The first run's plan is intact and the same run may re-plan idempotently (a replay).
    assert ledger.plan(1, "run-a", files).batch_id == 1
    assert [b.batch_id for b in ledger.pending()] == [1]
