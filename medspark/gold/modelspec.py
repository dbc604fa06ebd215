"""Generic binary-outcome models described in YAML (``conf/models/<name>.yaml``), trained like the readmission model.

Why it exists: besides the readmission model built from OMOP views, the gold layer trains models on other tables —
lakehouse tables or reference data sets such as Diabetes 130 and PhysioNet 2012 — without new code per model. A spec
names the source, an optional reshaping step, the label, the features and their encoding, the group column the
train/test split keeps together, the forest's tuning grid and the evaluation. It is validated once on the driver into
a frozen pydantic object (unknown keys are an error with one readable line); training reuses
:func:`medspark.gold.risk.train_risk_models` and :func:`medspark.gold.risk.evaluate`.

Preprocessing options:

- ``source.archive: tar`` — the source is a tar(.gz) of many small files (PhysioNet ships one CSV per ICU stay).
  Python's :mod:`tarfile` extracts the members matching ``source.members`` (with the ``data`` filter: no absolute
  paths, links or ``..``) into a work directory on the driver, and Spark reads them as one CSV source. Chosen over
  Spark's ``binaryFile`` reader because that would hand the whole archive to one task and need a UDF to untar it;
  extracted members are read by Spark's CSV reader in parallel. This needs a driver-local work directory, which
  suits reference data sets of megabytes, not production feeds (those are ingested to bronze first).
  ``source.file_stem_column`` adds the member's file name without extension (PhysioNet's RecordID).
- ``transform.pivot_long`` — long ``(id, time, parameter, value)`` rows to one row per id with, per listed parameter,
  the aggregates ``mean``, ``min``, ``max``, ``last`` (value at the latest time; ties: the largest value), ``first``
  and ``count`` as columns ``<parameter>_<aggregate>``, plus one column per ``static`` parameter (its first value,
  named like the parameter). Values equal to ``missing_value`` (PhysioNet: -1) are dropped before aggregating;
  aggregates of a parameter without values become ``fill_value`` (-1), counts 0. Done with conditional
  aggregations in one ``groupBy`` (no pivot discovery job, no UDF).
- ``join`` — a second source joined on a key (PhysioNet's outcomes file).
- Missing values: numeric features are cast to double, nulls become ``features.numeric_missing``; categorical
  features are strings, nulls become ``features.categorical_missing`` (a category of its own).
- ``features.encoding``: ``one_hot`` (StringIndexer(handleInvalid='keep') + OneHotEncoder) or ``index``
  (StringIndexer codes in descending frequency, used as plain ordinal numbers — the forest splits them like
  integers, as scikit-learn does with integer codes, instead of needing maxBins >= the number of categories).
"""

from __future__ import annotations

import fnmatch
import logging
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StringIndexer
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.errors import ConfigError, SourceError, UsageError
from medspark.gold.risk import RiskModels, evaluate, train_risk_models

log = logging.getLogger(__name__)

LABEL = "label"
Aggregate = Literal["mean", "min", "max", "first", "last", "count"]
GridKey = Literal["numTrees", "maxDepth"]
DEFAULT_AGGREGATES: tuple[Aggregate, ...] = ("mean", "min", "max", "last", "count")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSource(_Strict):
    """Where rows come from. Relative paths: delta against the lakehouse, others against the data root."""

    format: Literal["delta", "csv", "parquet"]
    path: str
    options: dict[str, str] = Field(default_factory=dict)
    # Spark DDL schema. A CSV without one is read with every column as a string (never inferred).
    ddl: str | None = None
    archive: Literal["tar"] | None = None
    members: str = "*"
    file_stem_column: str | None = None

    @model_validator(mode="after")
    def _archive_is_csv(self) -> TableSource:
        if self.archive and self.format != "csv":
            raise ValueError("archive sources must have format csv")
        return self


class PivotLong(_Strict):
    """Long (id, time, parameter, value) rows to one row per id with per-parameter aggregates."""

    id: str
    parameter: str
    value: str
    time: str  # "HH:MM" (hours may exceed 23) or a number of minutes
    parameters: list[str] = Field(min_length=1)
    static: list[str] = Field(default_factory=list)
    aggregates: list[Aggregate] = Field(default_factory=lambda: list(DEFAULT_AGGREGATES))
    missing_value: float | None = -1.0
    fill_value: float = -1.0


class Transform(_Strict):
    pivot_long: PivotLong | None = None


class Join(_Strict):
    """A second source inner-joined on ``key`` (not ``on``: YAML 1.1 reads a bare ``on`` key as ``true``)."""

    source: TableSource
    key: str


class Label(_Strict):
    """The 0/1 label: ``column`` in ``positive_values``, or a Spark SQL ``positive_expression``."""

    column: str
    positive_values: list[str | int | float] | None = None
    positive_expression: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Label:
        if (self.positive_values is None) == (self.positive_expression is None):
            raise ValueError("give exactly one of positive_values and positive_expression")
        return self


class Features(_Strict):
    numeric: list[str] = Field(default_factory=list)
    from_transform: bool = False  # add every column transform.pivot_long produces to the numeric features
    categorical: list[str] = Field(default_factory=list)
    encoding: Literal["one_hot", "index"] = "one_hot"
    numeric_missing: float = -1.0
    categorical_missing: str = "__missing__"


class Split(_Strict):
    group: str  # rows of one group (patient, ICU stay) stay on one side
    test_fraction: float = Field(gt=0.0, lt=1.0)
    seed: int = 42
    # Keep this share of the groups (chosen by a seeded hash) before splitting, to bound training time.
    sample_fraction: float = Field(default=1.0, gt=0.0, le=1.0)


def _default_grid() -> dict[GridKey, list[int]]:
    return {"numTrees": [50], "maxDepth": [8]}


class ForestSpec(_Strict):
    grid: dict[GridKey, list[int]] = Field(default_factory=lambda: _default_grid())
    folds: int | None = Field(default=None, ge=2)
    train_ratio: float | None = Field(default=None, gt=0.0, lt=1.0)
    max_bins: int = Field(default=32, ge=2)
    seed: int = 42

    @model_validator(mode="after")
    def _one_tuner(self) -> ForestSpec:
        if self.folds is not None and self.train_ratio is not None:
            raise ValueError("give either folds or train_ratio, not both")
        return self


class LogisticSpec(_Strict):
    reg_param: float = Field(default=0.0, ge=0.0)


class ModelSection(_Strict):
    random_forest: ForestSpec = ForestSpec()
    baseline_logistic: LogisticSpec = LogisticSpec()


class Evaluation(_Strict):
    threshold: float | Literal["youden"] = "youden"
    calibration_bins: int = Field(default=10, ge=2)


class ModelSpec(_Strict):
    """One model: ``conf/models/<name>.yaml``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    source: TableSource
    transform: Transform = Transform()
    join: Join | None = None
    label: Label
    features: Features
    split: Split
    model: ModelSection = ModelSection()
    evaluation: Evaluation = Evaluation()

    @model_validator(mode="after")
    def _has_features(self) -> ModelSpec:
        if self.features.from_transform and self.transform.pivot_long is None:
            raise ValueError("features.from_transform needs transform.pivot_long")
        if not (self.features.numeric or self.features.categorical or self.features.from_transform):
            raise ValueError("no features: list numeric and/or categorical columns")
        return self


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}'"
    if err["type"] == "missing":
        return f"missing required value '{where}'"
    return f"'{where}': {err['msg']}"


def load_model_spec(path: str | Path) -> ModelSpec:
    """Reads and validates a model spec YAML.

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key, wrong type or missing value — one line naming
            the file and the key.
    """
    spec_path = Path(path)
    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read model spec {spec_path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"model spec {spec_path} is not valid YAML") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"model spec {spec_path} must hold a mapping of keys")
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"model spec {spec_path}: {_describe(exc)}") from exc


# -------------------------------------------------------------------------------------------------------- reading
def _resolve(path: str, root: str | Path | None, what: str) -> str:
    if Path(path).is_absolute() or "://" in path:
        return path
    if root is None:
        raise UsageError(f"relative {what} path '{path}' needs a root directory")
    return str(Path(root) / path)


def _extract_tar(archive: Path, members: str, work_dir: Path) -> Path:
    target = work_dir / archive.name.split(".")[0]
    if target.is_dir() and any(target.iterdir()):
        return target  # extracted by an earlier call with the same work directory
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            chosen = [m for m in tar.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, members)]
            tar.extractall(target, members=chosen, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise SourceError(f"cannot extract archive {archive}: {exc}") from exc
    if not chosen:
        raise SourceError(f"archive {archive} has no member matching '{members}'")
    log.info("extracted %d archive members", len(chosen))
    return target


def read_source(
    spark: SparkSession,
    source: TableSource,
    *,
    data_root: str | Path | None,
    lakehouse: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> DataFrame:
    """Reads one spec source (see the module docstring for archives and ``file_stem_column``)."""
    if source.format == "delta":
        return spark.read.format("delta").options(**source.options).load(_resolve(source.path, lakehouse, "delta"))
    location = _resolve(source.path, data_root, source.format)
    if source.archive == "tar":
        if work_dir is None:
            raise UsageError("an archive source needs a work directory to extract to")
        location = str(_extract_tar(Path(location), source.members, Path(work_dir)) / source.members)
    reader = spark.read.options(**source.options)
    if source.ddl:
        reader = reader.schema(source.ddl)
    frame = reader.csv(location) if source.format == "csv" else reader.parquet(location)
    if source.file_stem_column:
        stem = sf.regexp_extract(sf.col("_metadata.file_name"), r"^(.+?)(\.[^.]*)?$", 1)
        frame = frame.withColumn(source.file_stem_column, stem)
    return frame


# ----------------------------------------------------------------------------------------------------- transforms
def pivot_output_columns(pivot: PivotLong) -> list[str]:
    """The feature columns :func:`derive_record_aggregates` adds, in order."""
    return [f"{p}_{a}" for p in pivot.parameters for a in pivot.aggregates] + list(pivot.static)


def _minutes(column: str) -> Column:
    text = sf.col(column).cast("string")
    parts = sf.split(text, ":")
    clock = parts.getItem(0).cast("int") * 60 + parts.getItem(1).cast("int")
    return sf.when(text.contains(":"), clock).otherwise(text.cast("int"))


def derive_record_aggregates(records: DataFrame, pivot: PivotLong) -> DataFrame:
    """Long measurements to one row per id with per-parameter aggregates (``transform.pivot_long``).

    Args:
        records: rows with ``pivot.id``, ``pivot.time``, ``pivot.parameter``, ``pivot.value``.

    Returns:
        ``pivot.id`` and the columns of :func:`pivot_output_columns` (double; counts bigint).
    """
    value = sf.col(pivot.value).cast("double")
    if pivot.missing_value is not None:
        value = sf.when(value != sf.lit(pivot.missing_value), value)
    rows = records.select(
        sf.col(pivot.id), sf.col(pivot.parameter).alias("_parameter"), value.alias("_value"),
        _minutes(pivot.time).alias("_minute"),
    ).filter(sf.col("_value").isNotNull() & sf.col("_parameter").isin([*pivot.parameters, *pivot.static]))
    fill = sf.lit(pivot.fill_value)

    def aggregate(parameter: str, kind: str) -> Column:
        selected = sf.col("_parameter") == parameter
        values = sf.when(selected, sf.col("_value"))
        order = sf.when(selected, sf.struct(sf.col("_minute"), sf.col("_value")))
        if kind == "count":
            return sf.count(values)
        result = {
            "mean": lambda: sf.avg(values),
            "min": lambda: sf.min(values),
            "max": lambda: sf.max(values),
            "last": lambda: sf.max_by(values, order),
            "first": lambda: sf.min_by(values, order),
        }[kind]()
        return sf.coalesce(result, fill)

    columns = [aggregate(p, a).alias(f"{p}_{a}") for p in pivot.parameters for a in pivot.aggregates]
    columns += [aggregate(p, "first").alias(p) for p in pivot.static]
    return rows.groupBy(pivot.id).agg(*columns)


def build_model_examples(frame: DataFrame, spec: ModelSpec) -> DataFrame:
    """Typed, filled model rows: group column, ``label`` (int 0/1), numeric (double) and categorical (string) features.

    Rows whose label column is null are dropped.
    """
    label_rule = (
        sf.expr(spec.label.positive_expression)
        if spec.label.positive_expression is not None
        else sf.col(spec.label.column).isin(list(spec.label.positive_values or []))
    )
    numeric = feature_numeric_columns(spec)
    return frame.filter(sf.col(spec.label.column).isNotNull()).select(
        sf.col(spec.split.group),
        sf.when(label_rule, 1).otherwise(0).alias(LABEL),
        *(sf.coalesce(sf.col(c).cast("double"), sf.lit(spec.features.numeric_missing)).alias(c) for c in numeric),
        *(
            sf.coalesce(sf.col(c).cast("string"), sf.lit(spec.features.categorical_missing)).alias(c)
            for c in spec.features.categorical
        ),
    )


def feature_numeric_columns(spec: ModelSpec) -> list[str]:
    """Numeric features: the listed ones, then (``from_transform``) the pivot's outputs."""
    columns = list(spec.features.numeric)
    if spec.features.from_transform and spec.transform.pivot_long is not None:
        columns += [c for c in pivot_output_columns(spec.transform.pivot_long) if c not in columns]
    return columns


def encoding_stages(features: Features) -> tuple[list[Any], list[str]]:
    """The categorical encoders and the assembler's categorical inputs, for ``features.encoding``."""
    if not features.categorical:
        return [], []
    indexed = [f"{c}__index" for c in features.categorical]
    indexer = StringIndexer(inputCols=list(features.categorical), outputCols=indexed, handleInvalid="keep",
                            stringOrderType="frequencyDesc")
    if features.encoding == "one_hot":
        encoded = [f"{c}__onehot" for c in features.categorical]
        return [indexer, OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep")], encoded
    # An arithmetic expression drops the indexer's nominal metadata: the forest sees ordinal numbers.
    codes = [f"{c}__code" for c in features.categorical]
    select = ", ".join(f"`{i}` + 0.0 AS `{c}`" for i, c in zip(indexed, codes, strict=True))
    return [indexer, SQLTransformer(statement=f"SELECT *, {select} FROM __THIS__")], codes


def split_groups(examples: DataFrame, split: Split) -> tuple[DataFrame, DataFrame]:
    """Sample (``sample_fraction``) and split (``test_fraction``) by seeded hashes of the group column.

    Returns:
        ``(train, test)``; every group lies on one side.
    """
    def bucket(salt: int) -> Column:
        hashed = sf.xxhash64(sf.lit(int(split.seed)), sf.lit(salt), sf.col(split.group))
        return sf.pmod(hashed, sf.lit(1_000_000)) / 1_000_000.0

    kept = examples.filter(bucket(1) < sf.lit(split.sample_fraction)) if split.sample_fraction < 1.0 else examples
    in_test = bucket(2) < sf.lit(split.test_fraction)
    return kept.filter(~in_test), kept.filter(in_test)


# ------------------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class SpecResult:
    """What :func:`train_from_spec` returns.

    Attributes:
        models: the forest and baseline pipelines, best grid point and threshold.
        metrics: ``{"random_forest": evaluate(...), "baseline_logistic": evaluate(...)}`` on the test rows.
        examples: all model rows, cached by :func:`train_from_spec` (call ``examples.unpersist()`` when done).
        train / test: the model rows of each side, derived from ``examples`` (after ``unpersist`` they read the
            source again: from ``work_dir`` when it is an archive).
        feature_columns: numeric features then categorical features, as the spec resolved them.
        work_dir: where archive members were extracted (the caller may delete it after using train/test).
    """

    models: RiskModels
    metrics: dict[str, dict[str, Any]]
    examples: DataFrame
    train: DataFrame
    test: DataFrame
    feature_columns: tuple[str, ...]
    work_dir: str | None


def train_from_spec(
    spark: SparkSession,
    spec: ModelSpec,
    *,
    data_root: str | Path | None,
    seed: int | None = None,
    lakehouse: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> SpecResult:
    """Reads the spec's data, builds examples, splits by group, trains forest + baseline and evaluates both.

    Args:
        data_root: directory that relative csv/parquet paths are resolved against.
        seed: overrides ``model.random_forest.seed``.
        lakehouse: directory that relative delta paths are resolved against.
        work_dir: where archive sources are extracted (default: a new temporary directory, kept for the
            returned frames).
    """
    if work_dir is None and (spec.source.archive or (spec.join and spec.join.source.archive)):
        work_dir = tempfile.mkdtemp(prefix=f"medspark-{spec.name}-")
    frame = read_source(spark, spec.source, data_root=data_root, lakehouse=lakehouse, work_dir=work_dir)
    if spec.transform.pivot_long is not None:
        frame = frame.transform(derive_record_aggregates, spec.transform.pivot_long)
    if spec.join is not None:
        other = read_source(spark, spec.join.source, data_root=data_root, lakehouse=lakehouse, work_dir=work_dir)
        frame = frame.join(other, on=spec.join.key, how="inner")
    examples = build_model_examples(frame, spec)
    # Tuning, the baseline, the threshold and both evaluations each read the examples again: cache them once, spread
    # over the cores (a gzip CSV is one partition, PhysioNet 4,000 small files plus a wide aggregation).
    parallelism = spark.sparkContext.defaultParallelism
    if examples.rdd.getNumPartitions() < parallelism:
        examples = examples.repartition(parallelism)
    examples = examples.cache()
    train, test = split_groups(examples, spec.split)
    stages, categorical_inputs = encoding_stages(spec.features)
    numeric = feature_numeric_columns(spec)
    forest = spec.model.random_forest
    threshold = None if spec.evaluation.threshold == "youden" else float(spec.evaluation.threshold)
    models = train_risk_models(
        train,
        feature_columns=[*numeric, *categorical_inputs],
        label_column=LABEL,
        seed=forest.seed if seed is None else seed,
        grid={str(k): v for k, v in forest.grid.items()},
        folds=forest.folds,
        train_ratio=forest.train_ratio,
        threshold=threshold,
        stages=stages,
        max_bins=forest.max_bins,
        baseline_reg_param=spec.model.baseline_logistic.reg_param,
    )
    bins = spec.evaluation.calibration_bins
    metrics = {
        "random_forest": evaluate(models.forest, test, label_column=LABEL, threshold=models.threshold, bins=bins),
        "baseline_logistic": evaluate(models.baseline, test, label_column=LABEL, threshold=models.threshold,
                                      bins=bins),
    }
    log.info("model %s trained: best %s", spec.name, models.best_params)
    return SpecResult(
        models=models,
        metrics=metrics,
        examples=examples,
        train=train,
        test=test,
        feature_columns=(*numeric, *spec.features.categorical),
        work_dir=str(work_dir) if work_dir is not None else None,
    )
