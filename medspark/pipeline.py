"""``medspark pipeline``: the stages in dependency order: bronze ingestion, silver, research views, gold analytics."""

from __future__ import annotations

from pyspark.sql import SparkSession

from medspark.config.model import MedsparkConfig
from medspark.ingestion.job import ingest
from medspark.logs import Progress


def run_pipeline(spark: SparkSession, config: MedsparkConfig, source: str, *, source_format: str = "auto") -> str:
    """Run every stage; returns the one-screen summary."""
    from medspark.gold.job import analyze
    from medspark.privacy.job import build_research
    from medspark.privacy.keys import load_key
    from medspark.silver.job import build_silver

    # A missing pseudonym key must stop the pipeline before bronze is written, not halfway.
    load_key(key_file=config.silver.privacy.key_file)
    progress = Progress("pipeline", 4)
    progress.step("bronze ingestion")
    bronze = ingest(spark, config, source, source_format=source_format)
    progress.step("silver (OMOP CDM v5.4)")
    silver = build_silver(spark, config)
    progress.step("research views (de-identified)")
    research = build_research(spark, config)
    progress.step("gold analytics")
    # Gold needs persons: a source that yields none (e.g. device readings of patients no other source knows)
    # leaves nothing to analyse, which is not an error of the pipeline.
    gold = (
        analyze(spark, config).summary()
        if research.tables.get("person", 0) > 0
        else "analyze: skipped, the research views hold no persons"
    )
    progress.finish()
    return "\n\n".join((bronze.summary(), silver.summary(), research.summary(), gold))
