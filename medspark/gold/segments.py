"""Patient segmentation: k-means on standardised person features, k chosen by silhouette, with segment profiles.

Analysts want a handful of utilisation segments (healthy / chronic / complex ...) rather than one number per
person. :func:`fit_segments` fits a ``pyspark.ml`` pipeline (VectorAssembler -> StandardScaler(mean, std) ->
KMeans) for each candidate k and keeps the k with the best silhouette; :func:`assign_segments` and
:func:`build_segment_profiles` are pure transforms for the gold job; :func:`save_segment_model` stores the
pipeline with MLlib next to a JSON of how it was chosen, so a segment table can be traced to its model.

Spark habits measured on this machine (../shared/ENVIRONMENT.md): the KMeans input is NOT cached (MLlib persists
its own RDD when the input is not cached; caching it as well made KMeans 2.6-4.3x slower), and the input is
repartitioned so that every core gets a share (a features table read from one small file is one partition), by a
hash of person_id and sorted, so that the same persons give the same segments on any cluster layout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as sf

from medspark.errors import UsageError
from medspark.io import files

log = logging.getLogger(__name__)

RAW_FEATURES = "_segment_features"
SCALED_FEATURES = "_segment_scaled"
SEGMENT = "segment"
MODEL_DIR = "model"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class SegmentScore:
    """Quality of the k-means fit for one k: silhouette (squared Euclidean, higher is better) and training cost
    (sum of squared distances to the nearest centre in the standardised space)."""

    k: int
    silhouette: float
    training_cost: float


@dataclass(frozen=True)
class SegmentFit:
    """The chosen segmentation: ``model`` is the fitted pipeline for ``k``; ``scores`` has one entry per candidate k."""

    k: int
    scores: tuple[SegmentScore, ...]
    model: PipelineModel
    feature_columns: tuple[str, ...]
    seed: int


@dataclass(frozen=True)
class SegmentProfiles:
    """Segment profiles: ``summary`` (one row per segment) and ``top_conditions`` (None without conditions)."""

    summary: DataFrame
    top_conditions: DataFrame | None


def _check_feature_columns(features: DataFrame, feature_columns: Sequence[str]) -> tuple[str, ...]:
    columns = tuple(feature_columns)
    if not columns or isinstance(feature_columns, str):
        raise UsageError("feature_columns must be a non-empty sequence of column names")
    if len(set(columns)) != len(columns):
        raise UsageError(f"feature_columns has duplicates: {list(columns)}")
    missing = [c for c in (*columns, "person_id") if c not in features.columns]
    if missing:
        raise UsageError(f"features lacks column(s) {missing}; it has {sorted(features.columns)}")
    return columns


def _check_k_values(k_values: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(k_values)
    if not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 2 for k in ks):
        raise UsageError(f"k_values must be a non-empty sequence of integers >= 2 (silhouette needs 2+ clusters), "
                         f"got {list(ks)}")
    if len(set(ks)) != len(ks):
        raise UsageError(f"k_values has duplicates: {list(ks)}")
    return tuple(sorted(ks))


def fit_segments(
    features: DataFrame,
    *,
    feature_columns: Sequence[str],
    k_values: Sequence[int],
    seed: int,
    max_iter: int = 50,
    num_partitions: int | None = None,
    n_init: int = 1,
) -> SegmentFit:
    """Fits the segmentation pipeline for every k in ``k_values`` and keeps the best by silhouette.

    The scaler is fitted once (it does not depend on k); one KMeans per k is fitted on the scaled vectors and
    scored with ``ClusteringEvaluator`` (silhouette, squaredEuclidean). Ties go to the smaller k. Runs Spark jobs
    (it is a fit, not a transform): pass features read back from storage, not a long lineage, since each k
    re-reads the input.

    Args:
        features: one row per person: ``person_id`` and the numeric ``feature_columns`` (no nulls).
        feature_columns: the columns clustered on, in vector order.
        k_values: candidate numbers of segments, each >= 2.
        seed: KMeans seed (the same seed is used for every k).
        max_iter: KMeans iteration limit.
        n_init: KMeans runs per k with seeds ``seed, seed+1, ...``; the lowest training cost is kept (as
            scikit-learn's ``n_init``): one k-means|| start can settle in a clearly worse optimum.
        num_partitions: partitions of the KMeans input; default: the session's default parallelism.

    Returns:
        The chosen k, the scores of every k (ascending k) and the fitted ``PipelineModel``.

    Raises:
        UsageError: a bad argument (missing column, k < 2, duplicates, max_iter < 1, num_partitions < 1).
    """
    columns = _check_feature_columns(features, feature_columns)
    ks = _check_k_values(k_values)
    if max_iter < 1:
        raise UsageError(f"max_iter must be >= 1, got {max_iter}")
    if n_init < 1:
        raise UsageError(f"n_init must be >= 1, got {n_init}")
    if num_partitions is not None and num_partitions < 1:
        raise UsageError(f"num_partitions must be >= 1, got {num_partitions}")
    partitions = num_partitions or features.sparkSession.sparkContext.defaultParallelism

    assembler = VectorAssembler(inputCols=list(columns), outputCol=RAW_FEATURES, handleInvalid="error")
    scaler = StandardScaler(inputCol=RAW_FEATURES, outputCol=SCALED_FEATURES, withMean=True, withStd=True)
    # Deliberately not cached: see the module docstring. Hash-partitioned and sorted on person_id, not round-robin:
    # k-means|| samples its initial centres per partition and row position, so the layout must depend only on the
    # data (the rows a shuffle delivers come in fetch order, which differs between local mode and a cluster).
    assembled = assembler.transform(
        features.select("person_id", *columns).repartition(partitions, "person_id").sortWithinPartitions("person_id"))
    scaler_model = scaler.fit(assembled)
    scaled = scaler_model.transform(assembled)
    evaluator = ClusteringEvaluator(featuresCol=SCALED_FEATURES, predictionCol=SEGMENT, metricName="silhouette",
                                    distanceMeasure="squaredEuclidean")

    scores: list[SegmentScore] = []
    best: tuple[float, KMeansModel] | None = None
    for k in ks:
        kmeans_model: KMeansModel | None = None
        for start in range(n_init):
            kmeans = KMeans(featuresCol=SCALED_FEATURES, predictionCol=SEGMENT, k=k, seed=seed + start,
                            maxIter=max_iter)
            candidate = kmeans.fit(scaled)
            if kmeans_model is None or candidate.summary.trainingCost < kmeans_model.summary.trainingCost:
                kmeans_model = candidate
        assert kmeans_model is not None  # n_init >= 1
        silhouette = float(evaluator.evaluate(kmeans_model.transform(scaled)))
        cost = float(kmeans_model.summary.trainingCost)
        scores.append(SegmentScore(k=k, silhouette=silhouette, training_cost=cost))
        log.info("k-means k=%d: silhouette %.4f, training cost %.4g", k, silhouette, cost)
        if best is None or silhouette > best[0]:
            best = (silhouette, kmeans_model)
    assert best is not None  # ks is non-empty
    chosen = best[1]
    model = PipelineModel(stages=[assembler, scaler_model, chosen])
    log.info("k-means: chose k=%d of %s", chosen.getK(), list(ks))
    return SegmentFit(k=chosen.getK(), scores=tuple(scores), model=model, feature_columns=columns, seed=seed)


def _kmeans_stage(model: PipelineModel) -> KMeansModel:
    stage = model.stages[-1]
    if not isinstance(stage, KMeansModel):
        raise UsageError(f"model's last stage is {type(stage).__name__}, not a KMeansModel")
    return stage


def assign_segments(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Segment of each person, with the distance to its segment's centre.

    Args:
        model: a pipeline from :func:`fit_segments` (or :func:`load_segment_model`).
        features: ``person_id`` and the model's feature columns (no nulls).

    Returns:
        ``person_id``, ``segment int`` (0 .. k-1), ``distance double`` (Euclidean distance to the segment centre
        in the standardised feature space).
    """
    centres = _kmeans_stage(model).clusterCenters()
    centre_array = sf.array(*[sf.array(*[sf.lit(float(v)) for v in centre]) for centre in centres])
    predicted = model.transform(features)
    vector = vector_to_array(sf.col(SCALED_FEATURES))
    centre = sf.element_at(centre_array, sf.col(SEGMENT) + 1)
    squared: Column = sf.aggregate(sf.zip_with(vector, centre, lambda a, b: (a - b) * (a - b)), sf.lit(0.0),
                                   lambda acc, x: acc + x)
    return predicted.select("person_id", sf.col(SEGMENT).cast("int").alias(SEGMENT),
                            sf.sqrt(squared).alias("distance"))


def build_segment_profiles(
    assigned: DataFrame,
    features: DataFrame,
    conditions: DataFrame | None = None,
    concepts: DataFrame | None = None,
    *,
    feature_columns: Sequence[str] | None = None,
    top_n: int = 5,
) -> SegmentProfiles:
    """Size and feature means per segment, and the most prevalent conditions of each segment.

    Args:
        assigned: ``person_id``, ``segment`` (from :func:`assign_segments`).
        features: ``person_id`` and the feature columns.
        conditions: condition_occurrence ``person_id``, ``condition_concept_id``; concept 0 (unmapped) is ignored.
        concepts: ``concept_id``, ``concept_name``, for condition names (names are null without it).
        feature_columns: columns averaged; default: every column of ``features`` but ``person_id``.
        top_n: conditions kept per segment.

    Returns:
        ``summary``: ``segment int``, ``persons long`` (count column), ``mean_<feature> double`` per feature.
        ``top_conditions`` (None when ``conditions`` is None): ``segment int``, ``rank int`` (1 = most prevalent;
        ties by smaller concept id), ``condition_concept_id int``, ``concept_name string``, ``persons long``
        (count column: persons of the segment with the condition), ``prevalence double`` (persons / segment
        persons; rate column of ``persons``).
    """
    columns = [c for c in features.columns if c != "person_id"] if feature_columns is None else list(feature_columns)
    _check_feature_columns(features, columns)
    if top_n < 1:
        raise UsageError(f"top_n must be >= 1, got {top_n}")
    members = assigned.select("person_id", sf.col(SEGMENT).cast("int").alias(SEGMENT))
    summary = members.join(features.select("person_id", *columns), "person_id").groupBy(SEGMENT).agg(
        sf.count(sf.lit(1)).cast("long").alias("persons"),
        *[sf.avg(sf.col(c).cast("double")).alias(f"mean_{c}") for c in columns],
    )
    if conditions is None:
        return SegmentProfiles(summary=summary, top_conditions=None)

    sizes = members.groupBy(SEGMENT).agg(sf.count(sf.lit(1)).alias("_segment_persons"))
    having = conditions.where(sf.coalesce(sf.col("condition_concept_id"), sf.lit(0)) != 0) \
        .select("person_id", sf.col("condition_concept_id").cast("int").alias("condition_concept_id")).distinct()
    prevalence = having.join(members, "person_id").groupBy(SEGMENT, "condition_concept_id") \
        .agg(sf.count(sf.lit(1)).cast("long").alias("persons"))
    order = Window.partitionBy(SEGMENT).orderBy(sf.col("persons").desc(), sf.col("condition_concept_id").asc())
    top = prevalence.withColumn("rank", sf.row_number().over(order).cast("int")).where(sf.col("rank") <= top_n) \
        .join(sizes, SEGMENT) \
        .withColumn("prevalence", sf.col("persons") / sf.col("_segment_persons"))
    if concepts is not None:
        names = concepts.select(sf.col("concept_id").cast("int").alias("condition_concept_id"), "concept_name")
        top = top.join(names, "condition_concept_id", "left")
    else:
        top = top.withColumn("concept_name", sf.lit(None).cast("string"))
    top_conditions = top.select(SEGMENT, "rank", "condition_concept_id", "concept_name", "persons", "prevalence")
    return SegmentProfiles(summary=summary, top_conditions=top_conditions)


def segment_model_metadata(fit: SegmentFit, *, training_data_version: str | int) -> dict[str, Any]:
    """The metadata :func:`save_segment_model` stores: k, per-k scores, seed, feature columns, data version."""
    return {
        "k": fit.k,
        "scores": [asdict(s) for s in fit.scores],
        "seed": fit.seed,
        "feature_columns": list(fit.feature_columns),
        "training_data_version": training_data_version,
    }


def save_segment_model(model: PipelineModel, path: str | Path, metadata: Mapping[str, Any]) -> None:
    """Saves the pipeline with MLlib under ``<path>/model`` and ``metadata`` as ``<path>/metadata.json``.

    Overwrites an existing model at ``path``. ``path`` is a path or URI on any filesystem the active Spark session
    can reach (both files go through Hadoop's FileSystem). ``metadata`` must be JSON-serialisable and must not hold
    record values (use :func:`segment_model_metadata`).

    Raises:
        UsageError: ``metadata`` is not JSON-serialisable.
    """
    try:
        text = json.dumps(dict(metadata), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"metadata is not JSON-serialisable: {exc}") from exc
    model.write().overwrite().save(files.join(str(path), MODEL_DIR))
    files.write_text(SparkSession.active(), files.join(str(path), METADATA_FILE), text + "\n", overwrite=True)
    log.info("saved segment model (k=%s) to %s", metadata.get("k"), path)


def load_segment_model(path: str | Path) -> tuple[PipelineModel, dict[str, Any]]:
    """Reads back what :func:`save_segment_model` wrote: the pipeline and its metadata."""
    model = PipelineModel.load(files.join(str(path), MODEL_DIR))
    metadata = json.loads(files.read_text(SparkSession.active(), files.join(str(path), METADATA_FILE)))
    return model, metadata
