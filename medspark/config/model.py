"""Typed, frozen configuration: validated once on the driver, passed down, never read by executors."""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
    # Line-format files larger than this are read in several blocks (tasks); line numbers stay exact (see
    # medspark.io.sources). 32 MiB keeps both cores busy on a bulk export whose Observation file is 60 % of the
    # bytes (NDJSON at 10,000 patients, one profiling run each: 88 s with 256 MiB, 75 s with 32 MiB; runs on this
    # shared machine vary by about 15 %).
    split_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
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
    # Below this many readmitted (or not readmitted) index stays the model is not trained: its AUCs would be noise.
    min_class_examples: int = Field(default=20, ge=2)
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


SAFE_RETENTION_HOURS = 168  # Delta's default delta.deletedFileRetentionDuration (7 days)

# The columns gold filters and joins the OMOP fact tables by (medspark.gold: person_id joins everywhere; the start
# date of each event in the ``<= as_of`` filters, first-event and monthly incidence). Same for silver, which gold
# reads with ``gold.read_layer: silver``.
_FACT_ZORDER: dict[str, tuple[str, ...]] = {
    "condition_occurrence": ("person_id", "condition_start_date"),
    "drug_exposure": ("person_id", "drug_exposure_start_date"),
    "procedure_occurrence": ("person_id", "procedure_date"),
    "visit_occurrence": ("person_id", "visit_start_date"),
    "measurement": ("person_id", "measurement_date"),
    "observation": ("person_id", "observation_date"),
    "observation_period": ("person_id",),
}
_INTERVAL = re.compile(r"^\s*interval\s+(\d+)\s+(hour|day|week)s?\s*$", re.IGNORECASE)
_UNIT_HOURS = {"hour": 1, "day": 24, "week": 168}


def interval_hours(text: str) -> int | None:
    """Hours of a Delta interval property (``interval 30 days``); None when it is not in that simple form."""
    match = _INTERVAL.match(text)
    return int(match.group(1)) * _UNIT_HOURS[match.group(2).lower()] if match else None


class MaintainSettings(_Strict):
    """``medspark maintain``: OPTIMIZE (Z-ORDER), table properties, VACUUM (see medspark.ops.maintain)."""

    # VACUUM keeps removed files this long (time travel and running readers need them). Below Delta's safe default
    # (168 h) only with --allow-short-retention.
    vacuum_retention_hours: int = Field(default=SAFE_RETENTION_HOURS, ge=0)
    # Tasks of VACUUM's file listing; default the cluster's core count. Delta otherwise takes Spark's partition
    # discovery parallelism (10,000 tasks): measured 60-120 s per VACUUM of a two-file table on 2 cores, 2-4 s with 2.
    vacuum_listing_parallelism: int | None = Field(default=None, ge=1)
    # "<layer>/<table>" -> columns for ZORDER BY; a table not listed is compacted only; [] turns Z-order off.
    zorder: dict[str, tuple[str, ...]] = Field(default_factory=lambda: {
        f"{layer}/{table}": columns for layer in ("research", "silver") for table, columns in _FACT_ZORDER.items()})
    # Set on every table. delta.deletedFileRetentionDuration is derived from vacuum_retention_hours (never below the
    # safe default), so it is not accepted here.
    table_properties: dict[str, str] = Field(default_factory=lambda: {
        "delta.checkpointInterval": "10", "delta.logRetentionDuration": "interval 30 days"})
    # "<layer>/<table>" whose Change Data Feed is enabled. Empty by default: no reader consumes a change feed yet.
    change_data_feed: tuple[str, ...] = ()

    @field_validator("zorder", "change_data_feed")
    @classmethod
    def _table_keys(cls, value: dict[str, tuple[str, ...]] | tuple[str, ...]) -> object:
        for key in value:
            layer, sep, table = key.partition("/")
            if not sep or not layer or not table or "/" in table:
                raise ValueError(f"'{key}' is not '<layer>/<table>'")
        return value

    @field_validator("table_properties")
    @classmethod
    def _properties(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.]+", key) or "'" in text or "\\" in text:
                raise ValueError(f"property '{key}': keys are letters, digits, '_' and '.'; values have no quotes")
            if key == "delta.deletedFileRetentionDuration":
                raise ValueError("delta.deletedFileRetentionDuration follows maintain.vacuum_retention_hours; "
                                 "set that instead")
        return value

    @property
    def deleted_file_retention_hours(self) -> int:
        """What ``delta.deletedFileRetentionDuration`` is set to: the vacuum retention, never below 168 h (a
        shorter VACUUM is a one-off, allowed per call)."""
        return max(self.vacuum_retention_hours, SAFE_RETENTION_HOURS)

    @model_validator(mode="after")
    def _log_outlives_files(self) -> MaintainSettings:
        log_hours = interval_hours(self.table_properties.get("delta.logRetentionDuration", "interval 30 days"))
        if log_hours is not None and log_hours < self.deleted_file_retention_hours:
            raise ValueError("delta.logRetentionDuration must be at least the vacuum retention "
                             f"({self.deleted_file_retention_hours} hours), or time travel loses its log first")
        return self

    def properties_for(self, table: str) -> dict[str, str]:
        """The properties ``table`` ("<layer>/<table>") should carry."""
        properties = {**self.table_properties,
                      "delta.deletedFileRetentionDuration": f"interval {self.deleted_file_retention_hours} hours"}
        if table in self.change_data_feed:
            properties["delta.enableChangeDataFeed"] = "true"
        return properties


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
    maintain: MaintainSettings = MaintainSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("lakehouse")
    @classmethod
    def _absolute_local(cls, value: str) -> str:
        """A relative local path is made absolute once, so every component (Spark, Great Expectations' Data Docs,
        the lock, a job started from another directory) means the same place; URIs are kept as given."""
        if "://" in value or value.startswith("file:"):
            return value
        return os.path.abspath(value)

    def table_path(self, layer: str, table: str) -> str:
        """Location of a Delta table: ``<lakehouse>/<layer>/<table>`` for any Hadoop filesystem URI."""
        return f"{self.lakehouse.rstrip('/')}/{layer}/{table}"
