"""Readmission examples (labels, censoring, no leakage), person split, and the models against scikit-learn."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from medspark.errors import UsageError
from medspark.gold.risk import (
    build_current_inpatients,
    build_readmission_examples,
    evaluate,
    load_model,
    save_model,
    score,
    split_by_person,
    train_risk_models,
)

D = dt.date
AS_OF = D(2020, 7, 14)
VISIT_DDL = ("visit_occurrence_id bigint, person_id bigint, visit_concept_id int, visit_start_date date, "
             "visit_end_date date")
PERSON_DDL = "person_id bigint, gender_concept_id int, year_of_birth int"
CONDITION_DDL = "person_id bigint, condition_concept_id int, condition_start_date date"
DRUG_DDL = "person_id bigint, drug_concept_id int, drug_exposure_start_date date"
MEASUREMENT_DDL = "person_id bigint, measurement_date date"

VISITS = [
    (11, 1, 9201, D(2020, 1, 1), D(2020, 1, 5)),
    (12, 1, 9201, D(2020, 1, 20), D(2020, 1, 22)),  # 15 days after 11's discharge: 11 is readmitted
    (13, 1, 9203, D(2019, 12, 1), D(2019, 12, 1)),
    (14, 1, 9202, D(2019, 6, 1), D(2019, 6, 1)),
    (15, 1, 9201, D(2019, 11, 1), D(2019, 11, 3)),
    (21, 2, 9201, D(2020, 3, 1), D(2020, 3, 1)),
    (22, 2, 9201, D(2020, 3, 1), D(2020, 3, 4)),  # same day as 21's discharge: a transfer, not a readmission
    (23, 2, 9201, D(2020, 4, 3), D(2020, 4, 5)),  # 30 days after 22's discharge: 22 is readmitted
    (31, 3, 9201, D(2020, 6, 10), D(2020, 6, 15)),  # window ends 2020-07-15 > as_of: censored
    (32, 3, 9201, D(2020, 7, 1), None),  # still in hospital
]
PERSONS = [(1, 8532, 1950), (2, 8507, 1980), (3, 8532, 1960)]
CONDITIONS = [
    (1, 201826, D(2019, 10, 1)),  # diabetes
    (1, 320128, D(2020, 1, 3)),  # hypertension, during stay 11
    (1, 0, D(2019, 1, 1)),  # unmapped: never counted
    (1, 317009, D(2020, 1, 21)),  # during stay 12
]
DRUGS = [(1, 1511248, D(2019, 12, 15)), (1, 1511248, D(2020, 1, 4)), (1, 19019979, D(2020, 1, 21)),
         (2, 1511248, D(2020, 3, 2))]
MEASUREMENTS = [(1, D(2020, 1, 2)), (1, D(2020, 1, 10)), (2, D(2020, 3, 1))]

FEATURE_DDL = (
    "visit_occurrence_id bigint, age_at_discharge double, is_female int, length_of_stay_days int, "
    "prior_inpatient_365d bigint, prior_emergency_365d bigint, prior_outpatient_365d bigint, "
    "days_since_previous_discharge int, n_prior_conditions bigint, n_prior_drugs bigint, chronic_diabetes int, "
    "chronic_hypertension int, n_stay_measurements bigint, readmitted_30d int"
)
FEATURES = [c.split()[0] for c in FEATURE_DDL.split(", ")]
EXPECTED = [
    (11, 70.0, 1, 4, 1, 1, 1, 59, 2, 1, 1, 1, 1, 1),
    (12, 70.0, 1, 2, 2, 1, 1, 15, 3, 2, 1, 1, 0, 0),
    (15, 69.0, 1, 2, 0, 0, 1, 366, 1, 0, 1, 0, 0, 0),
    (21, 40.0, 0, 0, 1, 0, 0, 366, 0, 0, 0, 0, 1, 0),  # stay 22 starts on 21's discharge day: "at or before"
    (22, 40.0, 0, 3, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1),
    (23, 40.0, 0, 2, 2, 0, 0, 30, 0, 1, 0, 0, 0, 0),
]


def _build(spark: SparkSession, visits, conditions=CONDITIONS, drugs=DRUGS, measurements=MEASUREMENTS) -> DataFrame:
    return build_readmission_examples(
        spark.createDataFrame(visits, VISIT_DDL),
        spark.createDataFrame(PERSONS, PERSON_DDL),
        spark.createDataFrame(conditions, CONDITION_DDL),
        spark.createDataFrame(drugs, DRUG_DDL),
        spark.createDataFrame(measurements, MEASUREMENT_DDL),
        as_of=AS_OF,
    )


def test_labels_censoring_and_features_on_literal_rows(spark: SparkSession) -> None:
    examples = _build(spark, VISITS)
    assertDataFrameEqual(examples.select(*FEATURES), spark.createDataFrame(EXPECTED, FEATURE_DDL))
    assert examples.columns[:4] == ["visit_occurrence_id", "person_id", "admission_date", "discharge_date"]


def test_features_ignore_everything_after_discharge(spark: SparkSession) -> None:
    """Per stay, move later events further away and add new ones after its discharge: its row does not change.

    Persons are independent, so each round perturbs one stay of person 1 and one of person 2.
    """
    base = {r.visit_occurrence_id: r.asDict() for r in _build(spark, VISITS).select(*FEATURES).collect()}
    stays = {v[0]: v for v in VISITS}
    day, week = dt.timedelta(days=1), dt.timedelta(days=7)
    for round_stays in [(15, 21), (11, 22), (12, 23)]:
        discharges = {stays[s][1]: stays[s][4] for s in round_stays}  # person -> discharge date

        def after(day: dt.date | None, pid: int, discharges: dict = discharges) -> bool:
            return pid in discharges and day is not None and day > discharges[pid]

        def defines_label(v: tuple, discharges: dict = discharges) -> bool:
            return v[1] in discharges and v[2] == 9201 and 0 <= (v[3] - discharges[v[1]]).days <= 30

        visits = [
            v if defines_label(v) or not after(v[3], v[1]) else (v[0], v[1], v[2], v[3] + week, v[4] and v[4] + week)
            for v in VISITS
        ]
        conditions = [(p, c, d + week if after(d, p) else d) for p, c, d in CONDITIONS]
        drugs = [(p, c, d + week if after(d, p) else d) for p, c, d in DRUGS]
        measurements = list(MEASUREMENTS)
        for person_id, discharge in discharges.items():
            day1 = discharge + day
            visits += [
                (900 + person_id, person_id, 9203, day1, day1),
                (910 + person_id, person_id, 9202, day1, day1),
                (920 + person_id, person_id, 9201, discharge + 45 * day, discharge + 50 * day),
            ]
            conditions += [(person_id, 4229440, day1), (person_id, 201826, day1), (person_id, 0, day1)]
            drugs += [(person_id, 42, day1)]
            measurements += [(person_id, day1)]
        changed = _build(spark, visits, conditions, drugs, measurements).filter(
            sf.col("visit_occurrence_id").isin(list(round_stays)))
        got = {r.visit_occurrence_id: r.asDict() for r in changed.select(*FEATURES).collect()}
        assert got == {s: base[s] for s in round_stays}, round_stays


def test_current_inpatients_use_as_of_as_discharge(spark: SparkSession) -> None:
    current = build_current_inpatients(
        spark.createDataFrame(VISITS, VISIT_DDL),
        spark.createDataFrame(PERSONS, PERSON_DDL),
        spark.createDataFrame(CONDITIONS, CONDITION_DDL),
        spark.createDataFrame(DRUGS, DRUG_DDL),
        as_of=AS_OF,
    )
    rows = current.select("visit_occurrence_id", "length_of_stay_days", "prior_inpatient_365d",
                          "days_since_previous_discharge").collect()
    assert [tuple(r) for r in rows] == [(32, 13, 1, 16)]  # 2020-07-01 .. 07-14; stay 31 ended 06-15
    assert "readmitted_30d" not in current.columns


def test_split_by_person_keeps_each_person_on_one_side(spark: SparkSession) -> None:
    rows = [(i, i % 97) for i in range(600)]
    examples = spark.createDataFrame(rows, "visit_occurrence_id bigint, person_id bigint")
    train, test = split_by_person(examples, test_fraction=0.3, seed=7)
    train_people = {r.person_id for r in train.select("person_id").distinct().collect()}
    test_people = {r.person_id for r in test.select("person_id").distinct().collect()}
    assert not train_people & test_people
    assert train_people | test_people == set(range(97))
    assert train.count() + test.count() == 600
    assert 15 <= len(test_people) <= 45
    again = {r.person_id for r in split_by_person(examples, test_fraction=0.3, seed=7)[1].collect()}
    other = {r.person_id for r in split_by_person(examples, test_fraction=0.3, seed=8)[1].collect()}
    assert again == test_people and other != test_people
    with pytest.raises(UsageError, match="test_fraction"):
        split_by_person(examples, test_fraction=1.0, seed=7)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A label with interactions and non-linear terms a linear model cannot express."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 8))
    logit = (
        2.5 * ((x[:, 0] > 0.2) & (x[:, 1] > -0.1))
        + 2.0 * np.sin(3.0 * x[:, 2])
        + 2.5 * (x[:, 3] ** 2)
        - 2.0 * (x[:, 4] * x[:, 5] > 0.1)
        - 1.5
    )
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    persons = rng.integers(0, n // 2, size=n)  # about two rows per person
    return x, y, persons


def test_forest_beats_baseline_and_matches_sklearn(spark: SparkSession, tmp_path: Path) -> None:
    x, y, persons = _synthetic(3000, seed=11)
    names = [f"x{i}" for i in range(x.shape[1])]
    rows = [(i, int(p), *map(float, xi), int(yi)) for i, (p, xi, yi) in enumerate(zip(persons, x, y, strict=True))]
    ddl = "visit_occurrence_id bigint, person_id bigint, " + ", ".join(f"{c} double" for c in names) + ", label int"
    examples = spark.createDataFrame(rows, ddl)
    train, test = split_by_person(examples, test_fraction=0.3, seed=3)
    models = train_risk_models(train, feature_columns=names, label_column="label", seed=5,
                               grid={"numTrees": [30], "maxDepth": [3, 6]}, train_ratio=0.75)
    assert models.best_params == {"numTrees": 30, "maxDepth": 6}
    assert len(models.tuning_metrics) == 2
    forest = evaluate(models.forest, test, label_column="label", threshold=models.threshold)
    baseline = evaluate(models.baseline, test, label_column="label")

    train_ids = np.array(sorted(r.visit_occurrence_id for r in train.select("visit_occurrence_id").collect()))
    test_ids = np.array(sorted(r.visit_occurrence_id for r in test.select("visit_occurrence_id").collect()))
    reference = RandomForestClassifier(n_estimators=30, max_depth=6, max_features="sqrt", random_state=0)
    reference.fit(x[train_ids], y[train_ids])
    sklearn_auc = roc_auc_score(y[test_ids], reference.predict_proba(x[test_ids])[:, 1])
    print(f"synthetic AUC: medspark forest {forest['auc_roc']:.4f}, LR {baseline['auc_roc']:.4f}, "
          f"sklearn forest {sklearn_auc:.4f}")
    assert forest["auc_roc"] >= 0.78
    assert forest["auc_roc"] >= baseline["auc_roc"] + 0.05
    assert abs(forest["auc_roc"] - sklearn_auc) <= 0.02

    # The metrics, recomputed with numpy/scikit-learn from the scored probabilities.
    scored = score(models.forest, test, id_columns=("visit_occurrence_id",)).toPandas()
    p = scored.sort_values("visit_occurrence_id")["risk"].to_numpy()
    truth = y[test_ids]
    assert forest["n"] == len(test_ids) and forest["positives"] == int(truth.sum())
    assert forest["auc_roc"] == pytest.approx(roc_auc_score(truth, p), abs=1e-6)
    assert forest["auc_pr"] == pytest.approx(average_precision_score(truth, p), abs=0.01)
    assert forest["brier"] == pytest.approx(float(np.mean((p - truth) ** 2)), abs=1e-9)
    flagged = p >= models.threshold
    assert forest["confusion"] == {
        "tp": int((flagged & (truth == 1)).sum()),
        "fp": int((flagged & (truth == 0)).sum()),
        "tn": int((~flagged & (truth == 0)).sum()),
        "fn": int((~flagged & (truth == 1)).sum()),
    }
    bins = np.minimum(np.floor(p * 10), 9).astype(int)
    expected_bins = [(b, int((bins == b).sum()), float(truth[bins == b].mean())) for b in sorted(set(bins))]
    assert [(c["bin"], c["count"], pytest.approx(c["observed_rate"])) for c in forest["calibration"]] == expected_bins
    # ROC points: thresholds are scored probabilities near the 1/20 ... 19/20 quantiles, descending; the counts are
    # numpy's at the same thresholds; the curve's trapezoid area is close to scikit-learn's exact AUC.
    roc = forest["roc"]
    cuts = [point["threshold"] for point in roc]
    assert cuts == sorted(set(cuts), reverse=True) and 10 <= len(cuts) <= 19
    scored_values = set(np.round(p, 9))
    assert all(round(c, 9) in scored_values for c in cuts)
    for point in roc:
        at = p >= point["threshold"]
        assert (point["tp"], point["fp"]) == (int((at & (truth == 1)).sum()), int((at & (truth == 0)).sum()))
        assert point["tpr"] == pytest.approx(point["tp"] / truth.sum())
        assert point["fpr"] == pytest.approx(point["fp"] / (truth == 0).sum())
    fpr = [0.0, *(q["fpr"] for q in roc), 1.0]
    tpr = [0.0, *(q["tpr"] for q in roc), 1.0]
    assert float(np.trapezoid(tpr, fpr)) == pytest.approx(roc_auc_score(truth, p), abs=0.02)
    # x6 and x7 are pure noise.
    assert {name for name, _ in forest["feature_importances"][-2:]} == {"x6", "x7"}

    # Youden threshold, recomputed on the training predictions over the same cut grid.
    train_scored = score(models.forest, train, id_columns=("visit_occurrence_id",)).toPandas()
    tp_ = train_scored.sort_values("visit_occurrence_id")["risk"].to_numpy()
    ty = y[train_ids]
    cuts = np.arange(1, 100) / 100
    j = [((tp_ >= c) & (ty == 1)).sum() / ty.sum() - ((tp_ >= c) & (ty == 0)).sum() / (ty == 0).sum() for c in cuts]
    assert models.threshold == pytest.approx(cuts[int(np.argmax(j))])

    path = save_model(models.forest, tmp_path / "models", name="readmission", metrics={"auc_roc": forest["auc_roc"]},
                      params=models.best_params, data_version=7, feature_columns=names)
    assert path.endswith("readmission/v1")
    second = save_model(models.baseline, tmp_path / "models", name="readmission", metrics={}, params={},
                        data_version=8)
    assert second.endswith("readmission/v2")
    with pytest.raises(UsageError, match="exists already"):
        save_model(models.baseline, tmp_path / "models", name="readmission", metrics={}, params={}, data_version=8,
                   version=2)
    loaded, metadata = load_model(path)
    assert metadata["data_version"] == 7 and metadata["feature_columns"] == names
    assert json.loads((Path(path) / "metadata.json").read_text())["params"] == {"numTrees": 30, "maxDepth": 6}
    reloaded = score(loaded, test, id_columns=("visit_occurrence_id",)).toPandas().sort_values("visit_occurrence_id")
    np.testing.assert_allclose(reloaded["risk"].to_numpy(), p)


def test_train_rejects_both_tuners(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(1.0, 0)], "x double, label int")
    with pytest.raises(UsageError, match="not both"):
        train_risk_models(frame, feature_columns=["x"], label_column="label", folds=3, train_ratio=0.7)


def test_models_are_versioned_on_any_hadoop_filesystem(spark: SparkSession, viewfs: str, tmp_path: Path) -> None:
    # viewfs:// stands in for s3a:// or hdfs://: version discovery, the model and its metadata go through Hadoop.
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    frame = spark.createDataFrame([(float(i), i % 2) for i in range(20)], "x double, label int")
    model = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="f"),
                             LogisticRegression(featuresCol="f", labelCol="label", maxIter=5)]).fit(frame)
    root = f"{viewfs}/models"
    first = save_model(model, root, name="m", metrics={"auc_roc": 0.5}, params={"maxIter": 5}, data_version=3)
    second = save_model(model, root, name="m", metrics={}, params={}, data_version=4)
    assert (first, second) == (f"{root}/m/v1", f"{root}/m/v2")
    assert json.loads((tmp_path / "viewfs" / "models" / "m" / "v1" / "metadata.json").read_text())["data_version"] == 3
    with pytest.raises(UsageError, match="exists already"):
        save_model(model, root, name="m", metrics={}, params={}, data_version=4, version=2)
    loaded, metadata = load_model(second)
    assert metadata["version"] == 2 and metadata["data_version"] == 4
    assertDataFrameEqual(loaded.transform(frame).select("prediction"), model.transform(frame).select("prediction"))
