"""``medspark research``: the Safe-Harbour de-identified research views of silver, which gold and exports read.

Each view is a full refresh of ``<lakehouse>/research/<table>`` from the current silver table (an atomic Delta
overwrite, so readers see the old or the new view, never a mix, and a re-run gives the same view). The rules are in
``medspark.privacy.research``: birth year only, ages over 89 as 90+, ZIP3 with restricted areas as 000, every date
shifted by a consistent per-person offset, free text removed, person ids replaced by keyed research ids.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from medspark.config.model import MedsparkConfig
from medspark.io.delta import table_exists
from medspark.io.runlog import RunRecord, TableCounts, new_run_id, write_run
from medspark.privacy.keys import load_key
from medspark.privacy.research import RESEARCH_TABLES, build_research_view

log = logging.getLogger(__name__)


@dataclass
class ResearchResult:
    """Rows written per research view."""

    run_id: str
    as_of: dt.date
    tables: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One screen for the CLI."""
        lines = [f"research run {self.run_id}: views as of {self.as_of.isoformat()}"]
        lines += [f"  research/{t:<22}{n:>10,} rows" for t, n in sorted(self.tables.items())]
        return "\n".join(lines)


def clustered(view: DataFrame, columns: tuple[str, ...]) -> DataFrame:
    """The view range-partitioned on its first clustering column and sorted within each file by all of them.

    A full refresh replaces every file, so the Z-order ``medspark maintain`` gave the previous version is gone;
    writing the rows in this order keeps each file's ``person_id`` range narrow (Delta's per-file min/max then lets
    gold's per-person filters and joins skip files) without a second pass over the data.
    """
    present = [c for c in columns if c in view.columns]
    if not present:
        return view
    return view.repartitionByRange(present[0]).sortWithinPartitions(*present)


def build_research(spark: SparkSession, config: MedsparkConfig) -> ResearchResult:
    """Refresh every research view whose silver table exists."""
    key = load_key(key_file=config.silver.privacy.key_file)
    as_of = config.silver.privacy.research_as_of or config.silver.run_date or dt.datetime.now(dt.UTC).date()
    run_id = new_run_id("research")
    record = RunRecord(run_id=run_id, job="research", started_at=dt.datetime.now(dt.UTC))
    result = ResearchResult(run_id, as_of)
    for table in RESEARCH_TABLES:
        source = config.table_path("silver", table)
        if not table_exists(spark, source):
            continue
        view = build_research_view(table, spark.read.format("delta").load(source), key=key, as_of=as_of)
        target = config.table_path("research", table)
        view = clustered(view, config.maintain.zorder.get(f"research/{table}", ()))
        view.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(target)
        rows = spark.read.format("delta").load(target).count()
        result.tables[table] = rows
        # A view is derived, not ingested: rows read are the silver rows it was built from.
        record.tables.append(TableCounts(table=f"research/{table}", rows_read=rows, rows_written=rows))
        log.info("research %s: %d rows", table, rows)
    record.status = "succeeded"
    write_run(spark, config, record)
    return result
