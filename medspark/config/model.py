"""Typed, frozen configuration: validated once on the driver, passed down, never read by executors."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    """How the one SparkSession is built (``medspark.spark.build_session``)."""

    master: str = "local[*]"
    app_name: str = "medspark"
    # Maven coordinate of the Delta JAR matching the pinned pyspark (Scala 2.13). In local mode Spark's Ivy
    # resolver fetches it from Maven Central; under spark-submit the cluster or --packages provides it.
    delta_package: str = "io.delta:delta-spark_4.2_2.13:4.4.0"
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class SourceOptions(_Strict):
    """Per-format options."""

    enabled: bool = True
    encoding: str = "utf-8"


class IngestSettings(_Strict):
    """Bronze ingestion."""

    # Exact re-deliveries (same record hash already in the table or earlier in the batch) are quarantined as
    # ``duplicate_record`` so bronze holds each distinct record once.
    quarantine_exact_duplicates: bool = True
    # Files larger than this are split by Spark; line numbers stay exact (see medspark.io.sources).
    split_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # Upper bound on files planned into one batch; more files go to the following batches of the same run.
    max_files_per_batch: int = Field(default=5000, ge=1)
    synthea_csv: SourceOptions = SourceOptions()
    fhir_ndjson: SourceOptions = SourceOptions()
    fhir_bundle: SourceOptions = SourceOptions()
    hl7v2: SourceOptions = SourceOptions()
    x12_837: SourceOptions = SourceOptions()
    vitals_jsonl: SourceOptions = SourceOptions()


class GenerateSettings(_Strict):
    """Defaults for ``medspark generate``."""

    patients: int = Field(default=1000, ge=1)
    seed: int = 42
    defect_rate: float = Field(default=0.0, ge=0.0, le=0.5)
    workers: int = Field(default=0, ge=0, description="0 = one per core")
    chunk_patients: int = Field(default=20000, ge=100)


class MatchingSettings(_Strict):
    """How records are recognised as the same person (``medspark.silver.resolve``)."""

    # Identifier systems that link records. A system not listed here is kept on the record but links nothing
    # (e.g. a driver's licence number that two people could share after a typo).
    link_systems: tuple[str, ...] = ("synthea", "mrn", "ssn", "member")
    # Systems that name the same identifier space: in Synthea's FHIR export Patient.id is the Synthea patient id and
    # Encounter.id the Synthea encounter id. Applies to person and visit identifiers alike.
    equivalent_systems: dict[str, str] = Field(
        default_factory=lambda: {"fhir-patient": "synthea", "fhir-encounter": "synthea-encounter"})


class PrivacySettings(_Strict):
    """Pseudonymisation. The key itself is never in YAML: ``MEDSPARK_PSEUDONYM_KEY`` or the file named here."""

    key_file: str | None = None
    # Write the restricted re-identification table (``<lakehouse>/restricted/reidentification``), AES-GCM encrypted.
    reidentification_table: bool = False
    # Reference date of the research views (ages over 89 become 90+); ISO date. Default: the run date.
    research_as_of: dt.date | None = None


class SilverSettings(_Strict):
    """Silver (OMOP CDM v5.4)."""

    # A full OMOP vocabulary download (Athena, tab-separated CONCEPT.csv ...); default: the subset medspark ships.
    vocabulary_path: str | None = None
    # When two sources describe the same fact, the first source in this list wins; then the newest version.
    source_priority: tuple[str, ...] = ("fhir", "synthea", "hl7v2", "x12", "vitals")
    # Directory of the expectation suites (default: conf/quality beside the profiles).
    quality_dir: str | None = None
    # The run date the quality checks use (ISO date): a parameter, so results are reproducible. Default: today.
    run_date: dt.date | None = None
    matching: MatchingSettings = MatchingSettings()
    privacy: PrivacySettings = PrivacySettings()


class RulesSettings(_Strict):
    """FP-growth association rules (comorbidity and co-medication)."""

    min_support: float = Field(default=0.02, gt=0.0, le=1.0)
    drug_min_support: float = Field(default=0.01, gt=0.0, le=1.0)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    min_lift: float = Field(default=1.5, ge=0.0)


class SequenceSettings(_Strict):
    """PrefixSpan disease trajectories."""

    min_support: float = Field(default=0.02, gt=0.0, le=1.0)
    max_pattern_length: int = Field(default=3, ge=1, le=10)
    grain: Literal["visit", "month"] = "visit"


class SegmentSettings(_Strict):
    """k-means patient segments: k is chosen by silhouette over ``k_values``."""

    k_values: tuple[int, ...] = (2, 3, 4, 5, 6)
    max_iter: int = Field(default=50, ge=1)
    # k-means runs per k (different seeds); the lowest cost is kept, as scikit-learn's n_init.
    n_init: int = Field(default=3, ge=1)

    @field_validator("k_values")
    @classmethod
    def _k_at_least_two(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if not values or min(values) < 2:
            raise ValueError("k_values must list at least one k, each >= 2")
        return tuple(sorted(set(values)))


class RiskSettings(_Strict):
    """Readmission random forest (and the logistic baseline); the grid is small on purpose (2 cores)."""

    test_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    num_trees: tuple[int, ...] = (30, 60)
    max_depth: tuple[int, ...] = (4, 8)
    folds: int = Field(default=3, ge=2, le=10)
    # Directory of model specs (``<name>.yaml``) for ``analyze risk --spec NAME``; default conf/models.
    models_dir: str | None = None
    # Root that relative data paths in a spec are resolved against (e.g. a folder of public datasets).
    data_root: str | None = None


class GoldSettings(_Strict):
    """Gold analytics. They read the de-identified research views unless ``read_layer`` says silver."""

    read_layer: Literal["research", "silver"] = "research"
    # Counts from 1 to this value (and rates derived from them) are suppressed in published tables.
    min_cell_count: int = Field(default=10, ge=1)
    # Reference date for ages and censoring (ISO date). Default: the latest observation-period end in the data.
    as_of: dt.date | None = None
    seed: int = 42
    rules: RulesSettings = RulesSettings()
    sequences: SequenceSettings = SequenceSettings()
    segments: SegmentSettings = SegmentSettings()
    risk: RiskSettings = RiskSettings()


class MedsparkConfig(_Strict):
    """The whole configuration of one run."""

    profile: str = "base"
    lakehouse: str = Field(min_length=1)
    source: str | None = None
    spark: SparkSettings = SparkSettings()
    ingest: IngestSettings = IngestSettings()
    generate: GenerateSettings = GenerateSettings()
    silver: SilverSettings = SilverSettings()
    gold: GoldSettings = GoldSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def table_path(self, layer: str, table: str) -> str:
        """Location of a Delta table: ``<lakehouse>/<layer>/<table>`` for any Hadoop filesystem URI."""
        return f"{self.lakehouse.rstrip('/')}/{layer}/{table}"
