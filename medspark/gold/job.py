"""``medspark analyze``: the gold layer. Reads the de-identified research views, writes ``<lakehouse>/gold/<table>``.

One screen of what happens (each analysis is a full, atomic refresh of its tables, so a re-run or a run after a
crash gives the same tables; results are reproducible because every random step is seeded and "today" is the
configured or data-derived ``as_of`` date, never the clock):

- ``stats``: person counts, observation-period lengths, prevalence per 1,000 (overall, by age group and sex),
  monthly incidence, visit statistics with length of stay and cost, 30-day readmission rates, chi-square tests of
  condition vs sex, the utilisation correlation matrix, cost/LOS outliers of care sites and providers;
- ``rules``: FP-growth comorbidity and co-medication itemsets and rules;
- ``sequences``: PrefixSpan condition trajectories;
- ``segments``: k-means patient segments (k by silhouette), profiles, the saved model;
- ``risk``: the 30-day readmission forest and its logistic baseline (metrics, importances, scores of current
  inpatients, the saved models), or any model spec in ``conf/models`` with ``--spec NAME``.

Every published table goes through ``suppress_small_cells`` (counts 1..``gold.min_cell_count`` and the rates
derived from them nulled, with complementary suppression where a margin is published). Nothing here logs values.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf

from medspark.config.model import MedsparkConfig
from medspark.errors import MedsparkError, UsageError
from medspark.gold import rules as rules_mod
from medspark.gold import sequences as sequences_mod
from medspark.gold.features import build_person_features, person_feature_columns
from medspark.gold.segments import (
    assign_segments,
    build_segment_profiles,
    fit_segments,
    save_segment_model,
    segment_model_metadata,
)
from medspark.gold.stats import (
    PUBLICATIONS,
    build_chi_square,
    build_cost_anomalies,
    build_monthly_incidence,
    build_observation_period_stats,
    build_person_counts,
    build_person_pyramid,
    build_prevalence,
    build_readmission_rates,
    build_utilisation_correlation,
    build_utilisation_features,
    build_visit_stats,
)
from medspark.gold.suppression import suppress_crossed_cells, suppress_small_cells
from medspark.io import files
from medspark.io.delta import latest_commit_rows, table_exists
from medspark.io.runlog import RunRecord, TableCounts, new_run_id, write_run
from medspark.logs import Progress

log = logging.getLogger(__name__)

ANALYSES = ("stats", "rules", "sequences", "segments", "risk")
MODELS_DIR = "_models"  # under gold/: MLlib models with their metadata, one versioned folder per model


@dataclass
class GoldResult:
    """What one analyze run wrote."""

    run_id: str
    as_of: dt.date
    analyses: list[str]
    tables: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One screen for the CLI."""
        lines = [f"analyze run {self.run_id}: {', '.join(self.analyses)} (as of {self.as_of.isoformat()})"]
        lines += [f"  gold/{t:<30}{n:>10,} rows" for t, n in sorted(self.tables.items())]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


class _Inputs:
    """The tables gold reads (research views by default), each loaded once and only when an analysis needs it."""

    def __init__(self, spark: SparkSession, config: MedsparkConfig) -> None:
        self._spark, self._config = spark, config
        self._frames: dict[str, DataFrame | None] = {}
        self._concepts: DataFrame | None = None

    def optional(self, table: str) -> DataFrame | None:
        if table not in self._frames:
            path = self._config.table_path(self._config.gold.read_layer, table)
            self._frames[table] = (
                self._spark.read.format("delta").load(path) if table_exists(self._spark, path) else None
            )
        return self._frames[table]

    def __getitem__(self, table: str) -> DataFrame:
        frame = self.optional(table)
        if frame is None:
            layer = self._config.gold.read_layer
            hint = "run `medspark research` (or `medspark pipeline`) first" if layer == "research" else ""
            raise UsageError(f"gold needs {layer}/{table}, which does not exist; {hint}".rstrip("; "))
        return frame

    def empty_like_cost(self) -> DataFrame:
        return self._spark.createDataFrame([], "cost_event_id bigint, cost_domain_id string, total_charge double, "
                                               "total_cost double, total_paid double")

    def costs(self) -> DataFrame:
        frame = self.optional("cost")
        return frame if frame is not None else self.empty_like_cost()

    def concepts(self) -> DataFrame:
        if self._concepts is None:
            from medspark.silver.vocab import load_vocabulary

            vocabulary = load_vocabulary(self._spark, self._config.silver.vocabulary_path)
            self._concepts = vocabulary.concept.select(
                "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id"
            )
        return self._concepts


def _as_of(inputs: _Inputs, config: MedsparkConfig) -> dt.date:
    """The configured reference date, else the latest observation-period end (deterministic for the data)."""
    if config.gold.as_of is not None:
        return config.gold.as_of
    periods = inputs.optional("observation_period")
    if periods is not None:
        latest = periods.agg(sf.max("observation_period_end_date")).first()
        if latest is not None and latest[0] is not None:
            return latest[0]
    return dt.datetime.now(dt.UTC).date()


class _Writer:
    """Writes gold tables (atomic overwrite), suppressing small cells of published aggregates first."""

    def __init__(self, spark: SparkSession, config: MedsparkConfig, record: RunRecord, result: GoldResult) -> None:
        self._spark, self._config, self._record, self._result = spark, config, record, result

    def write(self, table: str, frame: DataFrame, *, publication: str | None = None,
              suppression: Mapping[str, Any] | None = None) -> None:
        args = dict(PUBLICATIONS[publication].suppression_args()) if publication else dict(suppression or {})
        if args:
            frame = suppress_small_cells(frame, threshold=self._config.gold.min_cell_count, **args)
        path = self._config.table_path("gold", table)
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        rows = latest_commit_rows(self._spark, path)
        self._result.tables[table] = rows
        # Derived tables: nothing is quarantined, rows read are the rows the aggregate produced.
        self._record.tables.append(TableCounts(table=f"gold/{table}", rows_read=rows, rows_written=rows))
        log.info("gold %s: %d rows", table, rows)


# ---- analyses -----------------------------------------------------------------------------------------------


def _stats(inputs: _Inputs, out: _Writer, config: MedsparkConfig, as_of: dt.date) -> None:
    person, visits, periods = inputs["person"], inputs["visit_occurrence"], inputs["observation_period"]
    conditions, drugs = inputs["condition_occurrence"], inputs["drug_exposure"]
    procedures, costs, concepts = inputs["procedure_occurrence"], inputs.costs(), inputs.concepts()
    out.write("person_counts", build_person_counts(person), publication="person_counts")
    # Both margins of the pyramid are known (sex totals, and band totals from the year-of-birth counts).
    out.write("person_pyramid", suppress_crossed_cells(build_person_pyramid(person, as_of=as_of),
                                                       count_column="persons", margins=[["age_band"], ["sex"]],
                                                       threshold=config.gold.min_cell_count))
    out.write("observation_period_stats", build_observation_period_stats(periods),
              publication="observation_period_stats")
    prevalence_inputs = (
        ("condition", conditions, "condition_concept_id", "condition_start_date"),
        ("drug", drugs, "drug_concept_id", "drug_exposure_start_date"),
        ("procedure", procedures, "procedure_concept_id", "procedure_date"),
    )
    for name, events, concept_column, date_column in prevalence_inputs:
        prevalence = build_prevalence(events, person, concept_column=concept_column, as_of=as_of,
                                      concepts=concepts, date_column=date_column)
        out.write(f"{name}_prevalence", prevalence, publication="prevalence")
    incidence = build_monthly_incidence(conditions, concept_column="condition_concept_id",
                                        date_column="condition_start_date")
    out.write("condition_monthly_incidence", incidence, publication="monthly_incidence")
    out.write("visit_stats", build_visit_stats(visits, costs, periods), publication="visit_stats")
    out.write("readmission_rates", build_readmission_rates(visits, person, conditions, as_of=as_of),
              publication="readmission_rates")
    out.write("chi_square_condition_sex", build_chi_square(person, conditions), publication="chi_square")
    features = build_utilisation_features(person, visits, costs, conditions, drugs)
    out.write("utilisation_correlation", build_utilisation_correlation(features),
              publication="utilisation_correlation")
    for unit in ("care_site_id", "provider_id"):
        anomalies = build_cost_anomalies(visits, costs, by=unit)
        out.write(f"cost_anomalies_{unit.removesuffix('_id')}", anomalies, publication="cost_anomalies")


def _rules(inputs: _Inputs, out: _Writer, config: MedsparkConfig, as_of: dt.date) -> None:
    settings = config.gold.rules
    person_ids = inputs["person"].select("person_id")
    baskets = {
        "condition": (rules_mod.build_condition_baskets(inputs["condition_occurrence"]), settings.min_support),
        "drug": (rules_mod.build_drug_baskets(inputs["drug_exposure"]), settings.drug_min_support),
    }
    itemsets: list[DataFrame] = []
    rules: list[DataFrame] = []
    mined_all = []
    concepts = inputs.concepts()
    for kind, (frame, min_support) in baskets.items():
        # Support is a share of all persons: persons without any item join in with an empty basket.
        everyone = person_ids.join(frame, "person_id", "left").withColumn(
            "items", sf.coalesce(sf.col("items"), sf.array().cast("array<int>"))
        )
        mined = rules_mod.mine_itemsets(everyone, min_support=min_support, min_confidence=settings.min_confidence,
                                        min_lift=settings.min_lift)
        mined_all.append(mined)
        itemsets.append(
            rules_mod.with_concept_names(mined.frequent_itemsets, concepts).withColumn("basket", sf.lit(kind))
        )
        rules.append(
            rules_mod.with_concept_names(mined.association_rules, concepts, columns=("antecedent", "consequent"))
            .withColumn("basket", sf.lit(kind))
        )
    out.write("frequent_itemsets", _union(itemsets), suppression={"count_columns": ["freq"],
                                                                  "rate_columns": {"support": ["freq"]}})
    out.write("association_rules", _union(rules), suppression={
        "count_columns": ["persons"],
        "rate_columns": {"support": ["persons"], "confidence": ["persons"], "lift": ["persons"]},
    })
    for mined in mined_all:
        mined.unpersist()


def _sequences(inputs: _Inputs, out: _Writer, config: MedsparkConfig, as_of: dt.date) -> None:
    settings = config.gold.sequences
    sequences = sequences_mod.build_condition_sequences(inputs["condition_occurrence"], grain=settings.grain)
    everyone = inputs["person"].select("person_id").join(sequences, "person_id", "left")
    patterns = sequences_mod.mine_trajectories(everyone, min_support=settings.min_support,
                                               max_pattern_length=settings.max_pattern_length)
    named = rules_mod.with_concept_names(patterns, inputs.concepts(), columns=("sequence",))
    out.write("condition_trajectories", named,
              suppression={"count_columns": ["freq"], "rate_columns": {"support": ["freq"]}})


def _model_root(config: MedsparkConfig) -> str:
    return config.table_path("gold", MODELS_DIR)


def _table_version(spark: SparkSession, config: MedsparkConfig, table: str) -> int | None:
    from delta.tables import DeltaTable

    path = config.table_path(config.gold.read_layer, table)
    if not table_exists(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row[0]) if row is not None else None


def _segments(inputs: _Inputs, out: _Writer, config: MedsparkConfig, as_of: dt.date) -> None:
    spark = inputs["person"].sparkSession
    settings = config.gold.segments
    features = build_person_features(
        inputs["person"], inputs["visit_occurrence"], inputs["condition_occurrence"], inputs["drug_exposure"],
        inputs.costs(), as_of=as_of, observations=inputs.optional("observation"), cost_column="total_charge",
    )
    columns = person_feature_columns()
    n_persons = inputs["person"].count()
    k_values = [k for k in settings.k_values if k < n_persons]
    if not k_values:
        out._result.notes.append(f"segments: skipped, {n_persons} person(s) is fewer than every k in the range")
        return
    fit = fit_segments(features, feature_columns=columns, k_values=k_values, seed=config.gold.seed,
                       max_iter=settings.max_iter, n_init=settings.n_init)
    assigned = assign_segments(fit.model, features)
    profiles = build_segment_profiles(assigned, features, inputs["condition_occurrence"], inputs.concepts(),
                                      feature_columns=columns)
    scores = spark.createDataFrame(
        [(s.k, float(s.silhouette), float(s.training_cost), s.k == fit.k) for s in fit.scores],
        "k int, silhouette double, training_cost double, chosen boolean",
    )
    # Person-level assignments are not an aggregate: research ids only, never published outside the lakehouse.
    out.write("patient_segments", assigned)
    out.write("segment_scores", scores)
    mean_columns = [c for c in profiles.summary.columns if c.startswith("mean_")]
    out.write("segment_profiles", profiles.summary,
              suppression={"count_columns": ["persons"], "rate_columns": {c: ["persons"] for c in mean_columns}})
    if profiles.top_conditions is not None:
        out.write("segment_top_conditions", profiles.top_conditions,
                  suppression={"count_columns": ["persons"], "rate_columns": {"prevalence": ["persons"]}})
    metadata = segment_model_metadata(fit, training_data_version=_table_version(spark, config, "person") or 0)
    root = files.join(_model_root(config), "segments")
    path = files.join(root, f"v{files.next_version(spark, root)}")
    save_segment_model(fit.model, path, metadata)
    out._result.notes.append(f"segments: k={fit.k} chosen by silhouette; model saved to {path}")


def _risk(inputs: _Inputs, out: _Writer, config: MedsparkConfig, as_of: dt.date) -> None:
    from medspark.gold import risk as risk_mod

    spark = inputs["person"].sparkSession
    settings = config.gold.risk
    measurements = inputs.optional("measurement")
    examples = risk_mod.build_readmission_examples(
        inputs["visit_occurrence"], inputs["person"], inputs["condition_occurrence"], inputs["drug_exposure"],
        measurements, as_of=as_of,
    )
    columns = risk_mod.readmission_feature_columns(with_measurements=measurements is not None)
    # The forest's bootstrap draws per partition and row position: a layout that depends only on the data (hash of
    # the person, sorted by stay) makes the model the same on any cluster, not only for the same seed.
    partitions = spark.sparkContext.defaultParallelism
    examples = examples.repartition(partitions, "person_id").sortWithinPartitions("person_id", "visit_occurrence_id")
    examples = examples.cache()
    labels = {int(r[0]): int(r[1]) for r in examples.groupBy(risk_mod.LABEL_COLUMN).count().collect()}
    if min(labels.get(0, 0), labels.get(1, 0)) < settings.min_class_examples:
        out._result.notes.append(
            f"risk: skipped, too few index stays to train (need {settings.min_class_examples} of each outcome)")
        examples.unpersist()
        return
    # The training rows are kept (research ids, features dated before each discharge): the model's metadata names
    # this table's Delta version, and `analyze risk --spec readmission` retrains from it.
    out.write("readmission_examples", examples)
    train, test = risk_mod.split_by_person(examples, test_fraction=settings.test_fraction, seed=config.gold.seed)
    models = risk_mod.train_risk_models(
        train, feature_columns=columns, seed=config.gold.seed,
        grid={"numTrees": list(settings.num_trees), "maxDepth": list(settings.max_depth)}, folds=settings.folds,
    )
    _publish_models(spark, out, config, "readmission", models, test)
    current = risk_mod.build_current_inpatients(
        inputs["visit_occurrence"], inputs["person"], inputs["condition_occurrence"], inputs["drug_exposure"],
        measurements, as_of=as_of,
    )
    out.write("readmission_risk", risk_mod.score(models.forest, current))
    examples.unpersist()


def _publish_models(spark: SparkSession, out: _Writer, config: MedsparkConfig, name: str, models: Any,
                    test: DataFrame, *, metrics: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Evaluate (unless given) and save the forest and its baseline; write their metrics and importances."""
    from medspark.gold import risk as risk_mod

    metric_rows, importance_rows, calibration_rows, roc_rows = [], [], [], []
    columns = list(models.feature_columns)
    number: int | None = None  # the forest's save picks the next free version; the baseline gets the same one
    # kind -> (model, key of the metrics train_from_spec already computed)
    kinds = {"random_forest": (models.forest, "random_forest"),
             "logistic_baseline": (models.baseline, "baseline_logistic")}
    for kind, (model, metrics_key) in kinds.items():
        given = (metrics or {}).get(metrics_key)
        result = dict(given) if given else risk_mod.evaluate(model, test, label_column=models.label_column,
                                                            threshold=models.threshold)
        params = dict(models.best_params) if kind == "random_forest" else {}
        saved = risk_mod.save_model(model, _model_root(config), name=f"{name}-{kind}", metrics=result,
                                    params=params, data_version=_table_version(spark, config, "visit_occurrence"),
                                    feature_columns=columns, version=number)
        number = int(saved.rsplit("/v", 1)[1])
        metric_rows.append(_metric_row(name, kind, number, result))
        calibration_rows += [(name, kind, number, *b) for b in _calibration(result)]
        roc_rows += [(name, kind, number, float(p["threshold"]), int(p["tp"]), int(p["fp"]), _num(p["tpr"]),
                      _num(p["fpr"])) for p in result.get("roc", []) or []]
    for feature, importance in risk_mod.feature_importances(models.forest, columns):
        importance_rows.append((name, number, feature, float(importance)))
    out.write(f"model_metrics_{name}", spark.createDataFrame(metric_rows, _METRICS_DDL),
              suppression={"count_columns": ["tp", "fp", "tn", "fn", "n_test"]})
    out.write(f"model_calibration_{name}", spark.createDataFrame(calibration_rows, _CALIBRATION_DDL),
              suppression={"count_columns": ["n"], "rate_columns": {"mean_predicted": ["n"],
                                                                    "observed_rate": ["n"]}})
    # ROC points are cumulative counts of the test set: a point's tp or fp of 1 to 10 is suppressed with its rate.
    out.write(f"model_roc_{name}", spark.createDataFrame(roc_rows, _ROC_DDL),
              suppression={"count_columns": ["tp", "fp"], "rate_columns": {"tpr": ["tp"], "fpr": ["fp"]}})
    out.write(f"feature_importance_{name}", spark.createDataFrame(
        importance_rows, "model string, version int, feature string, importance double"))
    out._result.notes.append(f"{name}: models saved under {_model_root(config)}/{name}-*/v{number}")


_METRICS_DDL = ("model string, estimator string, version int, auc_roc double, auc_pr double, brier double, "
                "threshold double, tp long, fp long, tn long, fn long, n_test long, metrics_json string")
_ROC_DDL = ("model string, estimator string, version int, threshold double, tp long, fp long, tpr double, "
            "fpr double")
_CALIBRATION_DDL = ("model string, estimator string, version int, bin int, mean_predicted double, "
                    "observed_rate double, n long")


def _metric_row(name: str, kind: str, version: int, metrics: Mapping[str, Any]) -> tuple[Any, ...]:
    confusion = metrics.get("confusion", {}) or {}
    return (name, kind, version, _num(metrics.get("auc_roc")), _num(metrics.get("auc_pr")), _num(metrics.get("brier")),
            _num(metrics.get("threshold")), _int(confusion.get("tp")), _int(confusion.get("fp")),
            _int(confusion.get("tn")), _int(confusion.get("fn")), _int(metrics.get("n")),
            json.dumps(_public_metrics(metrics), sort_keys=True, default=str))


def _public_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics without their cell counts (confusion matrix, calibration bins, class counts), which the table
    publishes in suppressed columns and ``model_calibration_*`` / ``model_roc_*`` instead."""
    return {k: v for k, v in metrics.items()
            if k not in ("confusion", "calibration", "roc", "feature_importances", "n", "positives")}


def _calibration(metrics: Mapping[str, Any]) -> list[tuple[int, float | None, float | None, int]]:
    return [(int(b["bin"]), _num(b.get("mean_predicted")), _num(b.get("observed_rate")), int(b.get("count", 0)))
            for b in metrics.get("calibration", []) or []]


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _union(frames: Sequence[DataFrame]) -> DataFrame:
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame, allowMissingColumns=True)
    return result


_RUNNERS: dict[str, Callable[[_Inputs, _Writer, MedsparkConfig, dt.date], None]] = {
    "stats": _stats, "rules": _rules, "sequences": _sequences, "segments": _segments, "risk": _risk,
}


def analyze(spark: SparkSession, config: MedsparkConfig, what: str = "all", *, spec: str | None = None) -> GoldResult:
    """Run one gold analysis, or all of them in order (see the module docstring).

    Raises:
        UsageError: unknown analysis, a missing input table, or a bad model spec.
    """
    if what != "all" and what not in ANALYSES:
        raise UsageError(f"unknown analysis '{what}' (choose all or one of: {', '.join(ANALYSES)})")
    if spec is not None and what != "risk":
        raise UsageError("--spec is only for `analyze risk`")
    chosen = list(ANALYSES) if what == "all" else [what]
    inputs = _Inputs(spark, config)
    as_of = _as_of(inputs, config)
    record = RunRecord(new_run_id("analyze"), "analyze", dt.datetime.now(dt.UTC))
    result = GoldResult(record.run_id, as_of, chosen)
    writer = _Writer(spark, config, record, result)
    progress = Progress("analyze", len(chosen))
    try:
        for name in chosen:
            progress.step(name)
            if name == "risk" and spec is not None:
                _spec_model(spark, config, writer, spec)
            else:
                _RUNNERS[name](inputs, writer, config, as_of)
        record.status = "succeeded"
    except MedsparkError as exc:
        record.status, record.message = "failed", str(exc).splitlines()[0][:500]
        write_run(spark, config, record)
        raise
    except Exception as exc:
        record.status, record.message = "failed", type(exc).__name__
        write_run(spark, config, record)
        raise
    write_run(spark, config, record)
    progress.finish()
    return result


def _spec_model(spark: SparkSession, config: MedsparkConfig, out: _Writer, name: str) -> None:
    from medspark.config.loader import conf_dir
    from medspark.gold.modelspec import load_model_spec, train_from_spec

    default = conf_dir()
    models_dir = Path(config.gold.risk.models_dir or (default / "models" if default else "conf/models"))
    path = models_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in models_dir.glob("*.yaml")) if models_dir.is_dir() else []
        raise UsageError(f"no model spec '{name}' in {models_dir} (known: {', '.join(known) or 'none'})")
    spec = load_model_spec(path)
    result = train_from_spec(spark, spec, data_root=config.gold.risk.data_root, seed=config.gold.seed,
                             lakehouse=config.lakehouse)
    try:
        _publish_models(spark, out, config, name, result.models, result.test, metrics=result.metrics)
    finally:
        result.examples.unpersist()
