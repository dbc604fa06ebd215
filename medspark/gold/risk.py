"""30-day readmission risk: leakage-safe training examples from the OMOP research views, and the model toolkit.

Why it exists: the gold layer publishes a readmission-risk model for inpatient stays. The hard part is not the forest
but the examples: every feature must be computable on the day of discharge, and stays whose 30-day follow-up is not
over yet must not be labelled "not readmitted". This module builds those examples with Spark built-ins and joins with
date predicates (no UDFs), splits them by person, trains a tuned random forest next to a logistic-regression baseline
(both ``pyspark.ml`` Pipelines), evaluates them, saves them with their metadata and scores current inpatients.

The same training/evaluation helpers serve :mod:`medspark.gold.modelspec` (generic models described in YAML).

Definitions (the contract of :func:`build_readmission_examples`):

- *Index stay*: an inpatient visit (``visit_concept_id`` 9201) with a ``visit_end_date`` (the discharge date).
- *Readmission*: another inpatient visit of the same person starting 1 to 30 days after the discharge date. All
  inpatient readmissions count: OMOP carries no planned/unplanned flag, so planned readmissions (e.g. staged
  surgery) are labelled positive too. A stay starting on the discharge day itself is a transfer or continuation, not
  a readmission. Deaths within 30 days without readmission are labelled 0.
- *Censoring*: stays whose 30-day window ends after ``as_of`` (discharge + 30 days > ``as_of``) are left out.
- *Features*: only data dated at or before the discharge date.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.ml import Pipeline, PipelineModel, Transformer
from pyspark.ml.classification import LogisticRegression, RandomForestClassificationModel, RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder, TrainValidationSplit
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.errors import UsageError
from medspark.io import files

log = logging.getLogger(__name__)

INPATIENT = 9201
OUTPATIENT = 9202
EMERGENCY = 9203
FEMALE = 8532
READMISSION_WINDOW_DAYS = 30
LOOKBACK_DAYS = 365
# "No previous discharge" and "previous discharge more than a year ago" share this value, so the feature needs no
# null handling in either model.
PREVIOUS_DISCHARGE_CAP_DAYS = 366
LABEL_COLUMN = "readmitted_30d"

# Standard condition concepts (SNOMED, plus the local 2-billion ids of medspark's vocabulary subset) behind the chronic
# flags. The lead may pass its own mapping; each key becomes a ``chronic_<key>`` 0/1 feature.
DEFAULT_CHRONIC_CONCEPTS: Mapping[str, tuple[int, ...]] = {
    "diabetes": (201826, 192279, 37016354, 45757499, 45769905),
    "hypertension": (320128, 2000000085),
    "heart_failure": (4229440,),
    "copd": (2000000006, 2000000019),
    "ckd": (443597, 443601, 443612, 443614),
}

BASE_FEATURES: tuple[str, ...] = (
    "age_at_discharge",
    "is_female",
    "length_of_stay_days",
    "prior_inpatient_365d",
    "prior_emergency_365d",
    "prior_outpatient_365d",
    "days_since_previous_discharge",
    "n_prior_conditions",
    "n_prior_drugs",
)
MEASUREMENT_FEATURES: tuple[str, ...] = ("n_stay_measurements",)


def readmission_feature_columns(
    *, chronic_concepts: Mapping[str, Sequence[int]] | None = None, with_measurements: bool = False
) -> list[str]:
    """The feature columns :func:`build_readmission_examples` adds, in model order."""
    chronic = DEFAULT_CHRONIC_CONCEPTS if chronic_concepts is None else chronic_concepts
    columns = [*BASE_FEATURES, *(f"chronic_{name}" for name in chronic)]
    if with_measurements:
        columns.extend(MEASUREMENT_FEATURES)
    return columns


# --------------------------------------------------------------------------------------------------------- examples
def _index_stays(visits: DataFrame, *, as_of: dt.date) -> DataFrame:
    window_end = sf.date_add(sf.col("visit_end_date"), READMISSION_WINDOW_DAYS)
    return visits.filter(
        (sf.col("visit_concept_id") == INPATIENT)
        & sf.col("visit_end_date").isNotNull()
        & (sf.col("visit_end_date") >= sf.col("visit_start_date"))
        & (window_end <= sf.lit(as_of))
    ).select(
        "visit_occurrence_id",
        "person_id",
        sf.col("visit_start_date").alias("admission_date"),
        sf.col("visit_end_date").alias("discharge_date"),
    )


def _readmission_labels(stays: DataFrame, visits: DataFrame) -> DataFrame:
    later = visits.filter(sf.col("visit_concept_id") == INPATIENT).select(
        sf.col("person_id").alias("_person_id"),
        sf.col("visit_occurrence_id").alias("_other_id"),
        sf.col("visit_start_date").alias("_other_start"),
    )
    gap = sf.datediff(sf.col("_other_start"), sf.col("discharge_date"))
    return (
        stays.join(
            later,
            (stays["person_id"] == later["_person_id"])
            & (sf.col("_other_id") != sf.col("visit_occurrence_id"))
            & gap.between(1, READMISSION_WINDOW_DAYS),
        )
        .groupBy("visit_occurrence_id")
        .agg(sf.lit(1).alias(LABEL_COLUMN))
    )


def _with_features(
    stays: DataFrame,
    visits: DataFrame,
    person: DataFrame,
    conditions: DataFrame,
    drugs: DataFrame,
    measurements: DataFrame | None,
    chronic_concepts: Mapping[str, Sequence[int]],
) -> DataFrame:
    """Adds the features of ``stays`` (visit_occurrence_id, person_id, admission_date, discharge_date)."""
    keys = stays.select("visit_occurrence_id", sf.col("person_id").alias("_pid"), "admission_date", "discharge_date")
    discharge = sf.col("discharge_date")

    # Visits that started at or before discharge and overlap the previous 365 days (the index stay excluded).
    others = visits.select(
        sf.col("person_id").alias("_other_person"),
        sf.col("visit_occurrence_id").alias("_other_id"),
        sf.col("visit_concept_id").alias("_other_concept"),
        sf.col("visit_start_date").alias("_other_start"),
        sf.col("visit_end_date").alias("_other_end"),
    )
    prior_pairs = keys.join(
        others,
        (sf.col("_pid") == sf.col("_other_person"))
        & (sf.col("_other_id") != sf.col("visit_occurrence_id"))
        & (sf.col("_other_start") <= discharge)
        & (sf.coalesce(sf.col("_other_end"), sf.col("_other_start")) >= sf.date_sub(discharge, LOOKBACK_DAYS)),
    )
    admission = sf.col("admission_date")
    ended_before_admission = (sf.col("_other_concept") == INPATIENT) & (sf.col("_other_end") <= admission)
    previous_end = sf.when(ended_before_admission, sf.col("_other_end"))
    prior_visits = prior_pairs.groupBy("visit_occurrence_id").agg(
        sf.count(sf.when(sf.col("_other_concept") == INPATIENT, 1)).alias("prior_inpatient_365d"),
        sf.count(sf.when(sf.col("_other_concept") == EMERGENCY, 1)).alias("prior_emergency_365d"),
        sf.count(sf.when(sf.col("_other_concept") == OUTPATIENT, 1)).alias("prior_outpatient_365d"),
        sf.max(previous_end).alias("_previous_discharge"),
    )

    condition_rows = conditions.select(
        sf.col("person_id").alias("_c_person"), "condition_concept_id", "condition_start_date"
    )
    concept = sf.col("condition_concept_id")
    prior_conditions = (
        keys.join(
            condition_rows,
            (sf.col("_pid") == sf.col("_c_person")) & (sf.col("condition_start_date") <= discharge),
        )
        .groupBy("visit_occurrence_id")
        .agg(
            sf.count_distinct(sf.when(concept != 0, concept)).alias("n_prior_conditions"),
            *(
                sf.max(sf.when(concept.isin([int(c) for c in ids]), 1).otherwise(0)).alias(f"chronic_{name}")
                for name, ids in chronic_concepts.items()
            ),
        )
    )

    drug_rows = drugs.select(sf.col("person_id").alias("_d_person"), "drug_concept_id", "drug_exposure_start_date")
    drug = sf.col("drug_concept_id")
    prior_drugs = (
        keys.join(
            drug_rows,
            (sf.col("_pid") == sf.col("_d_person")) & (sf.col("drug_exposure_start_date") <= discharge),
        )
        .groupBy("visit_occurrence_id")
        .agg(sf.count_distinct(sf.when(drug != 0, drug)).alias("n_prior_drugs"))
    )

    people = person.select(
        sf.col("person_id").alias("_p_person"),
        "year_of_birth",
        (sf.col("gender_concept_id") == FEMALE).cast("int").alias("is_female"),
    )

    examples = (
        stays.join(people, stays["person_id"] == people["_p_person"], "left")
        .join(prior_visits, "visit_occurrence_id", "left")
        .join(prior_conditions, "visit_occurrence_id", "left")
        .join(prior_drugs, "visit_occurrence_id", "left")
    )
    since_previous = sf.datediff(sf.col("admission_date"), sf.col("_previous_discharge"))
    examples = examples.withColumns(
        {
            "age_at_discharge": (sf.year(discharge) - sf.col("year_of_birth")).cast("double"),
            "is_female": sf.coalesce(sf.col("is_female"), sf.lit(0)),
            "length_of_stay_days": sf.datediff(discharge, sf.col("admission_date")),
            "prior_inpatient_365d": sf.coalesce(sf.col("prior_inpatient_365d"), sf.lit(0)),
            "prior_emergency_365d": sf.coalesce(sf.col("prior_emergency_365d"), sf.lit(0)),
            "prior_outpatient_365d": sf.coalesce(sf.col("prior_outpatient_365d"), sf.lit(0)),
            "days_since_previous_discharge": sf.least(
                sf.coalesce(since_previous, sf.lit(PREVIOUS_DISCHARGE_CAP_DAYS)), sf.lit(PREVIOUS_DISCHARGE_CAP_DAYS)
            ),
            "n_prior_conditions": sf.coalesce(sf.col("n_prior_conditions"), sf.lit(0)),
            "n_prior_drugs": sf.coalesce(sf.col("n_prior_drugs"), sf.lit(0)),
            **{
                f"chronic_{name}": sf.coalesce(sf.col(f"chronic_{name}"), sf.lit(0))
                for name in chronic_concepts
            },
        }
    )
    if measurements is not None:
        measurement_rows = measurements.select(sf.col("person_id").alias("_m_person"), "measurement_date")
        stay_measurements = (
            keys.join(
                measurement_rows,
                (sf.col("_pid") == sf.col("_m_person"))
                & sf.col("measurement_date").between(sf.col("admission_date"), discharge),
            )
            .groupBy("visit_occurrence_id")
            .agg(sf.count(sf.lit(1)).alias("n_stay_measurements"))
        )
        examples = examples.join(stay_measurements, "visit_occurrence_id", "left").withColumn(
            "n_stay_measurements", sf.coalesce(sf.col("n_stay_measurements"), sf.lit(0))
        )
    features = readmission_feature_columns(
        chronic_concepts=chronic_concepts, with_measurements=measurements is not None
    )
    return examples.select("visit_occurrence_id", "person_id", "admission_date", "discharge_date", *features)


def build_readmission_examples(
    visits: DataFrame,
    person: DataFrame,
    conditions: DataFrame,
    drugs: DataFrame,
    measurements: DataFrame | None = None,
    *,
    as_of: dt.date,
    chronic_concepts: Mapping[str, Sequence[int]] | None = None,
) -> DataFrame:
    """One labelled example per inpatient discharge whose 30-day follow-up ended by ``as_of``.

    See the module docstring for the definitions of index stay, readmission and censoring. Every feature uses only
    rows dated at or before the discharge date, so adding or moving events after discharge cannot change it.

    Args:
        visits: visit_occurrence (visit_occurrence_id, person_id, visit_concept_id, visit_start_date,
            visit_end_date).
        person: person (person_id, gender_concept_id, year_of_birth).
        conditions: condition_occurrence (person_id, condition_concept_id, condition_start_date).
        drugs: drug_exposure (person_id, drug_concept_id, drug_exposure_start_date).
        measurements: optional measurement (person_id, measurement_date); adds ``n_stay_measurements``.
        as_of: the data's "today" (research dates are shifted per person, so it is never ``current_date()``).
        chronic_concepts: flag name -> condition concept ids (default :data:`DEFAULT_CHRONIC_CONCEPTS`).

    Returns:
        visit_occurrence_id, person_id, admission_date, discharge_date, then the features of
        :func:`readmission_feature_columns` — age_at_discharge (double, calendar years, from year_of_birth),
        is_female (0/1), length_of_stay_days, prior_inpatient_365d / prior_emergency_365d / prior_outpatient_365d
        (other visits started at or before discharge and overlapping the 365 days before it),
        days_since_previous_discharge (admission minus the latest earlier inpatient discharge, capped at 366 which
        also means "none"), n_prior_conditions / n_prior_drugs (distinct mapped concepts started at or before
        discharge, ever), chronic_<name> (0/1), [n_stay_measurements] — and readmitted_30d (int 0/1).
    """
    chronic = DEFAULT_CHRONIC_CONCEPTS if chronic_concepts is None else chronic_concepts
    stays = _index_stays(visits, as_of=as_of)
    labels = _readmission_labels(stays, visits)
    examples = _with_features(stays, visits, person, conditions, drugs, measurements, chronic)
    return examples.join(labels, "visit_occurrence_id", "left").withColumn(
        LABEL_COLUMN, sf.coalesce(sf.col(LABEL_COLUMN), sf.lit(0))
    )


def build_current_inpatients(
    visits: DataFrame,
    person: DataFrame,
    conditions: DataFrame,
    drugs: DataFrame,
    measurements: DataFrame | None = None,
    *,
    as_of: dt.date,
    chronic_concepts: Mapping[str, Sequence[int]] | None = None,
) -> DataFrame:
    """Unlabelled examples for the inpatients still in hospital on ``as_of``, for :func:`score`.

    An inpatient visit started at or before ``as_of`` with no end date or one at or after ``as_of`` is treated as
    if discharged on ``as_of``: its features use data dated up to ``as_of`` and ``length_of_stay_days`` is the stay
    so far.

    Returns:
        The columns of :func:`build_readmission_examples` without ``readmitted_30d``.
    """
    chronic = DEFAULT_CHRONIC_CONCEPTS if chronic_concepts is None else chronic_concepts
    day = sf.lit(as_of)
    stays = visits.filter(
        (sf.col("visit_concept_id") == INPATIENT)
        & (sf.col("visit_start_date") <= day)
        & (sf.col("visit_end_date").isNull() | (sf.col("visit_end_date") >= day))
    ).select("visit_occurrence_id", "person_id", sf.col("visit_start_date").alias("admission_date"),
             day.alias("discharge_date"))
    return _with_features(stays, visits, person, conditions, drugs, measurements, chronic)


def split_by_person(
    examples: DataFrame, *, test_fraction: float, seed: int, person_column: str = "person_id"
) -> tuple[DataFrame, DataFrame]:
    """Deterministic train/test split by a seeded hash of the person: all of a person's rows land on one side.

    The bucket is ``pmod(xxhash64(seed, person), 1_000_000) / 1_000_000``; rows below ``test_fraction`` are test.

    Returns:
        ``(train, test)`` with the input's columns.
    """
    if not 0.0 < test_fraction < 1.0:
        raise UsageError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
    bucket = sf.pmod(sf.xxhash64(sf.lit(int(seed)), sf.col(person_column)), sf.lit(1_000_000)) / 1_000_000.0
    in_test = bucket < sf.lit(float(test_fraction))
    return examples.filter(~in_test), examples.filter(in_test)


# --------------------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class RiskModels:
    """The tuned forest, its logistic baseline and what is needed to use them.

    Attributes:
        forest: Pipeline (stages..., VectorAssembler -> RandomForestClassifier).
        baseline: Pipeline (stages..., VectorAssembler -> StandardScaler -> LogisticRegression).
        best_params: the forest's chosen grid point, e.g. ``{"numTrees": 30, "maxDepth": 6}``.
        threshold: the forest's decision threshold (Youden J on the training data, or the configured one).
        feature_columns: assembler inputs, in vector order before any one-hot expansion.
        label_column: the 0/1 label.
        tuning_metrics: validation AUC-ROC of each grid point, in grid order (empty when the grid has one point).
    """

    forest: PipelineModel
    baseline: PipelineModel
    best_params: dict[str, Any]
    threshold: float
    feature_columns: tuple[str, ...]
    label_column: str
    tuning_metrics: tuple[float, ...] = field(default_factory=tuple)


def _probability(column: str = "probability") -> Column:
    return vector_to_array(sf.col(column))[1]


def youden_threshold(model: PipelineModel, frame: DataFrame, *, label_column: str, steps: int = 100) -> float:
    """The threshold in 1/steps .. (steps-1)/steps maximising sensitivity + specificity - 1 (ties: the lowest).

    One aggregation over ``frame``; collects 2 x (steps - 1) counts.
    """
    predictions = model.transform(frame).select(_probability().alias("p"), sf.col(label_column).alias("y"))
    cuts = [i / steps for i in range(1, steps)]
    aggregates = [sf.count(sf.when(sf.col("y") == 1, 1)).alias("pos"), sf.count(sf.lit(1)).alias("n")]
    for i, cut in enumerate(cuts):
        aggregates.append(sf.count(sf.when((sf.col("p") >= cut) & (sf.col("y") == 1), 1)).alias(f"tp{i}"))
        aggregates.append(sf.count(sf.when((sf.col("p") >= cut) & (sf.col("y") != 1), 1)).alias(f"fp{i}"))
    row = predictions.agg(*aggregates).first()
    assert row is not None
    positives, negatives = row["pos"], row["n"] - row["pos"]
    if positives == 0 or negatives == 0:
        return 0.5
    best_cut, best_j = 0.5, -2.0
    for i, cut in enumerate(cuts):
        j = row[f"tp{i}"] / positives - row[f"fp{i}"] / negatives
        if j > best_j + 1e-12:
            best_cut, best_j = cut, j
    return best_cut


def train_risk_models(
    train: DataFrame,
    *,
    feature_columns: Sequence[str],
    label_column: str = LABEL_COLUMN,
    seed: int = 42,
    grid: Mapping[str, Sequence[int]] | None = None,
    folds: int | None = None,
    train_ratio: float | None = None,
    threshold: float | None = None,
    stages: Sequence[Transformer | Any] = (),
    max_bins: int = 32,
    baseline_reg_param: float = 0.0,
) -> RiskModels:
    """Fits a tuned random forest and a logistic-regression baseline on ``train``.

    The forest is tuned over ``grid`` (keys ``numTrees`` and/or ``maxDepth``) by ``CrossValidator`` (``folds``) or
    ``TrainValidationSplit`` (``train_ratio``, the default 0.75) on AUC-ROC, then refitted on all of ``train``. A grid
    of a single point is fitted directly (tuning it would only refit the same model). Trees use
    ``featureSubsetStrategy='sqrt'``, bootstrap sampling and ``max_bins`` bins.

    Args:
        train: rows with ``feature_columns`` (numeric, non-null) and ``label_column`` (0/1).
        stages: estimators/transformers run before the assembler (e.g. categorical encoders from modelspec).
        threshold: the forest's decision threshold; default: maximise Youden J on the training data
            (optimistic for a forest, which fits its training rows closely — pass a value for a deployed model).

    Raises:
        UsageError: both ``folds`` and ``train_ratio`` given, an unknown grid key, or no feature columns.
    """
    if folds is not None and train_ratio is not None:
        raise UsageError("give either folds (CrossValidator) or train_ratio (TrainValidationSplit), not both")
    if not feature_columns:
        raise UsageError("feature_columns is empty")
    grid = dict(grid or {"numTrees": [50], "maxDepth": [8]})
    unknown = sorted(set(grid) - {"numTrees", "maxDepth"})
    if unknown:
        raise UsageError(f"unknown grid parameter(s) {unknown}; allowed: numTrees, maxDepth")

    assembler = VectorAssembler(inputCols=list(feature_columns), outputCol="features", handleInvalid="error")
    forest = RandomForestClassifier(
        featuresCol="features",
        labelCol=label_column,
        seed=seed,
        featureSubsetStrategy="sqrt",
        maxBins=max_bins,
    )
    forest_pipeline = Pipeline(stages=[*stages, assembler, forest])
    builder = ParamGridBuilder()
    for name, values in grid.items():
        builder = builder.addGrid(forest.getParam(name), [int(v) for v in values])
    param_maps = builder.build()
    tuning_metrics: tuple[float, ...] = ()
    if len(param_maps) == 1:
        forest_model = forest_pipeline.fit(train, param_maps[0])
        best = param_maps[0]
    else:
        evaluator = BinaryClassificationEvaluator(
            labelCol=label_column, rawPredictionCol="probability", metricName="areaUnderROC"
        )
        tuner: CrossValidator | TrainValidationSplit
        if folds is not None:
            tuner = CrossValidator(estimator=forest_pipeline, estimatorParamMaps=param_maps, evaluator=evaluator,
                                   numFolds=folds, seed=seed, parallelism=1)
        else:
            tuner = TrainValidationSplit(estimator=forest_pipeline, estimatorParamMaps=param_maps,
                                         evaluator=evaluator, trainRatio=train_ratio or 0.75, seed=seed,
                                         parallelism=1)
        tuned = tuner.fit(train)
        forest_model = tuned.bestModel  # type: ignore[assignment]
        scores = list(tuned.avgMetrics if isinstance(tuned, CrossValidatorModel) else tuned.validationMetrics)
        tuning_metrics = tuple(float(s) for s in scores)
        best = param_maps[max(range(len(scores)), key=lambda i: scores[i])]
    best_params = {param.name: value for param, value in best.items()}
    log.info("readmission forest tuned over %d grid points, best %s", len(param_maps), best_params)

    baseline_pipeline = Pipeline(
        stages=[
            *stages,
            VectorAssembler(inputCols=list(feature_columns), outputCol="raw_features", handleInvalid="error"),
            StandardScaler(inputCol="raw_features", outputCol="features", withMean=False, withStd=True),
            LogisticRegression(featuresCol="features", labelCol=label_column, regParam=baseline_reg_param,
                               maxIter=200),
        ]
    )
    baseline_model = baseline_pipeline.fit(train)
    chosen = threshold if threshold is not None else youden_threshold(forest_model, train, label_column=label_column)
    return RiskModels(
        forest=forest_model,
        baseline=baseline_model,
        best_params=best_params,
        threshold=float(chosen),
        feature_columns=tuple(feature_columns),
        label_column=label_column,
        tuning_metrics=tuning_metrics,
    )


# ------------------------------------------------------------------------------------------------------- evaluation
def feature_importances(model: PipelineModel, names: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """The forest's feature importances as (name, importance), largest first.

    Args:
        model: a Pipeline ending in a random forest.
        names: one name per vector slot; default: the assembler's input columns (right when every input is one slot).
    """
    forest = model.stages[-1]
    if not isinstance(forest, RandomForestClassificationModel):
        raise UsageError("feature importances need a pipeline ending in a RandomForestClassificationModel")
    if names is None:
        assembler = next(s for s in reversed(model.stages) if isinstance(s, VectorAssembler))
        names = list(assembler.getInputCols())
    values = forest.featureImportances.toArray().tolist()
    if len(values) != len(names):
        raise UsageError(f"{len(names)} feature names for {len(values)} importances")
    return sorted(zip(names, (float(v) for v in values), strict=True), key=lambda item: (-item[1], item[0]))


def evaluate(
    model: PipelineModel,
    test: DataFrame,
    *,
    label_column: str = LABEL_COLUMN,
    threshold: float = 0.5,
    bins: int = 10,
    roc_points: int = 20,
) -> dict[str, Any]:
    """Discrimination, calibration, ROC curve points and a confusion matrix of ``model`` on ``test``.

    Returns:
        ``{"n", "positives", "auc_roc", "auc_pr", "brier", "threshold", "confusion": {"tp", "fp", "tn", "fn"},
        "sensitivity", "specificity", "calibration": [{"bin", "mean_predicted", "observed_rate", "count"}, ...],
        "roc": [{"threshold", "tp", "fp", "tpr", "fpr"}, ...]}`` (calibration bins of width 1/bins on the predicted
        probability, empty bins left out; ROC points at the distinct approximate ``k/roc_points`` quantiles of the
        predicted probability, a case flagged when its probability is at least the threshold, so every step of the
        curve moves about ``n/roc_points`` cases, descending thresholds), plus ``"feature_importances": [(name,
        importance), ...]`` when the model ends in a forest.
    """
    transformed = model.transform(test)
    predictions = transformed.select(
        sf.col(label_column).cast("double").alias("y"), "probability", _probability().alias("p")
    )
    predictions.cache()
    try:
        evaluator = BinaryClassificationEvaluator(labelCol="y", rawPredictionCol="probability")
        auc_roc = evaluator.evaluate(predictions, {evaluator.metricName: "areaUnderROC"})
        auc_pr = evaluator.evaluate(predictions, {evaluator.metricName: "areaUnderPR"})
        flagged = sf.col("p") >= sf.lit(float(threshold))
        positive = sf.col("y") == 1.0
        row = predictions.agg(
            sf.count(sf.lit(1)).alias("n"),
            sf.count(sf.when(positive, 1)).alias("positives"),
            sf.avg((sf.col("p") - sf.col("y")) ** 2).alias("brier"),
            sf.count(sf.when(flagged & positive, 1)).alias("tp"),
            sf.count(sf.when(flagged & ~positive, 1)).alias("fp"),
            sf.count(sf.when(~flagged & ~positive, 1)).alias("tn"),
            sf.count(sf.when(~flagged & positive, 1)).alias("fn"),
        ).first()
        assert row is not None
        bin_index = sf.least(sf.floor(sf.col("p") * bins), sf.lit(bins - 1)).cast("int")
        calibration = (
            predictions.groupBy(bin_index.alias("bin"))
            .agg(
                sf.avg("p").alias("mean_predicted"),
                sf.avg("y").alias("observed_rate"),
                sf.count(sf.lit(1)).alias("count"),
            )
            .orderBy("bin")
            .collect()
        )
        roc = _roc_points(predictions, roc_points)
    finally:
        predictions.unpersist()
    tp, fp, tn, fn = row["tp"], row["fp"], row["tn"], row["fn"]
    metrics: dict[str, Any] = {
        "n": row["n"],
        "positives": row["positives"],
        "auc_roc": float(auc_roc),
        "auc_pr": float(auc_pr),
        "brier": float(row["brier"]) if row["brier"] is not None else None,
        "threshold": float(threshold),
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "calibration": [
            {"bin": r["bin"], "mean_predicted": float(r["mean_predicted"]), "observed_rate": float(r["observed_rate"]),
             "count": r["count"]}
            for r in calibration
        ],
        "roc": [{"threshold": c, "tp": tp_c, "fp": fp_c,
                 "tpr": tp_c / row["positives"] if row["positives"] else None,
                 "fpr": fp_c / (row["n"] - row["positives"]) if row["n"] - row["positives"] else None}
                for c, tp_c, fp_c in roc],
    }
    if isinstance(model.stages[-1], RandomForestClassificationModel):
        metrics["feature_importances"] = feature_importances(model, _slot_names(transformed, "features"))
    return metrics


def _roc_points(predictions: DataFrame, points: int) -> list[tuple[float, int, int]]:
    """``(threshold, tp, fp)`` at the distinct approximate quantiles ``1/points ... (points-1)/points`` of ``p``
    (relative error 1e-4), descending, in two Spark jobs (the quantiles, then one aggregation for all points)."""
    if points < 2:
        raise UsageError(f"roc_points must be at least 2, got {points}")
    probabilities = [k / points for k in range(1, points)]
    row = predictions.agg(sf.percentile_approx("p", probabilities, 10000).alias("q")).first()
    if row is None or row["q"] is None:
        return []
    cuts = sorted({float(q) for q in row["q"]}, reverse=True)
    positive = sf.col("y") == 1.0
    counts = predictions.agg(*[
        expr
        for i, c in enumerate(cuts)
        for expr in (sf.count(sf.when((sf.col("p") >= c) & positive, 1)).alias(f"tp{i}"),
                     sf.count(sf.when((sf.col("p") >= c) & ~positive, 1)).alias(f"fp{i}"))
    ]).first()
    assert counts is not None
    return [(c, int(counts[f"tp{i}"]), int(counts[f"fp{i}"])) for i, c in enumerate(cuts)]


def _slot_names(frame: DataFrame, column: str) -> list[str] | None:
    """Vector slot names from the assembler's ML attribute metadata (one-hot slots as ``<column>=<level>``)."""
    attrs = frame.schema[column].metadata.get("ml_attr", {}).get("attrs")
    if not attrs:
        return None
    slots = sorted((a["idx"], a.get("name", f"slot_{a['idx']}")) for group in attrs.values() for a in group)
    return [name for _, name in slots]


def score(model: PipelineModel, examples: DataFrame, *, id_columns: Sequence[str] = ("visit_occurrence_id",
                                                                                       "person_id")) -> DataFrame:
    """Batch scoring: the id columns and ``risk`` (double, probability of the positive class).

    Args:
        model: a fitted forest or baseline pipeline.
        examples: rows with the model's feature columns (e.g. from :func:`build_current_inpatients`).
    """
    return model.transform(examples).select(*id_columns, _probability().alias("risk"))


# ------------------------------------------------------------------------------------------------------ persistence
def save_model(
    model: PipelineModel,
    root: str | Path,
    *,
    name: str,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    data_version: int | None,
    feature_columns: Sequence[str] = (),
    version: int | None = None,
) -> str:
    """Saves ``model`` under ``<root>/<name>/v<N>/model`` with ``<root>/<name>/v<N>/metadata.json``.

    ``N`` is ``version`` when given (it must not exist yet), else one more than the largest existing ``v<N>``. The
    metadata holds the name, version, metrics, params, the Delta version of the training data and the feature
    columns. ``root`` is a path or URI on any filesystem the active Spark session can reach: everything goes through
    Hadoop's FileSystem (MLlib for the model, :mod:`medspark.io.files` for the metadata).

    Returns:
        The version directory.

    Raises:
        UsageError: a bad name, or the requested version exists already.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UsageError(f"model name '{name}' may hold only letters, digits, '_', '.', '-'")
    spark = SparkSession.active()
    base = files.join(str(root), name)
    version = files.next_version(spark, base) if version is None else int(version)
    target = files.join(base, f"v{version}")
    if files.exists(spark, target):
        raise UsageError(f"model version {target} exists already")
    metadata = {
        "name": name,
        "version": version,
        "data_version": data_version,
        "feature_columns": list(feature_columns),
        "params": dict(params),
        "metrics": dict(metrics),
    }
    model.write().save(files.join(target, "model"))
    # The metadata last: a version directory with metadata.json holds a complete model.
    files.write_text(spark, files.join(target, "metadata.json"),
                     json.dumps(metadata, indent=2, sort_keys=True, default=str), overwrite=False)
    log.info("saved model %s version %d (training data version %s)", name, version, data_version)
    return target


def load_model(path: str | Path) -> tuple[PipelineModel, dict[str, Any]]:
    """Reads back what :func:`save_model` wrote: the pipeline and its metadata."""
    metadata = json.loads(files.read_text(SparkSession.active(), files.join(str(path), "metadata.json")))
    return PipelineModel.load(files.join(str(path), "model")), metadata
