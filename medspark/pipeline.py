"""``medspark pipeline``: the stages that exist, in dependency order. Today: bronze ingestion."""

from __future__ import annotations

from pyspark.sql import SparkSession

from medspark.config.model import MedsparkConfig
from medspark.ingestion.job import ingest
from medspark.logs import Progress


def run_pipeline(spark: SparkSession, config: MedsparkConfig, source: str, *, source_format: str = "auto") -> str:
    """Run every stage; returns the one-screen summary."""
    progress = Progress("pipeline", 1)
    progress.step("bronze ingestion")
    result = ingest(spark, config, source, source_format=source_format)
    progress.finish()
    return result.summary()
