"""Tests of medspark.gold.segments: recovery of a known cluster structure, k-means cost against scikit-learn on the
same standardised data, profiles against pandas, literal top-condition rows, model save/load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.metrics import adjusted_rand_score

from medspark.errors import UsageError
from medspark.gold.segments import (
    assign_segments,
    build_segment_profiles,
    fit_segments,
    load_segment_model,
    save_segment_model,
    segment_model_metadata,
)

FEATURES = ["age", "n_visits_outpatient", "n_visits_inpatient", "total_cost", "n_chronic"]
# Utilisation-like groups: (size, means, standard deviations) of FEATURES. Healthy adults, chronic, complex,
# children with many outpatient visits. Checked with scikit-learn on seeds 0-4: silhouette picks k=4 with a margin
# of >= 0.06 over any other k in 2..6 and k-means at k=4 recovers the groups exactly (ARI 1.0).
GROUPS = [
    (240, (30, 3, 0.1, 1000, 0.3), (6, 1.0, 0.2, 300, 0.3)),
    (180, (58, 8, 1.0, 6000, 2.5), (6, 1.0, 0.3, 900, 0.4)),
    (120, (72, 14, 3.0, 14000, 4.5), (5, 1.5, 0.4, 1500, 0.5)),
    (60, (8, 10, 0.5, 3000, 0.5), (3, 1.2, 0.3, 500, 0.4)),
]
TRUE_K = 4
MIN_ARI = 0.95
SEED = 7


@pytest.fixture(scope="module")
def known():
    """Feature matrix, true groups and person ids (persons shuffled so groups are not contiguous)."""
    rng = np.random.default_rng(2024)
    matrix = np.vstack([rng.normal(mean, sd, size=(n, len(FEATURES))) for n, mean, sd in GROUPS])
    truth = np.repeat(np.arange(len(GROUPS)), [n for n, _, _ in GROUPS])
    order = rng.permutation(len(truth))
    frame = pd.DataFrame(matrix[order], columns=FEATURES)
    frame.insert(0, "person_id", np.arange(1, len(truth) + 1, dtype=np.int64))
    return frame, truth[order]


@pytest.fixture(scope="module")
def fitted(spark, known):
    frame, _ = known
    features = spark.createDataFrame(frame)
    fit = fit_segments(features, feature_columns=FEATURES, k_values=[2, 3, 4, 5, 6], seed=SEED)
    assigned = pd.DataFrame(assign_segments(fit.model, features).toPandas())
    assigned = assigned.sort_values("person_id").reset_index(drop=True)
    return features, fit, assigned


def _spark_scaled(frame: pd.DataFrame) -> np.ndarray:
    """Standardised as Spark's StandardScaler does: sample standard deviation (n - 1)."""
    matrix = frame[FEATURES].to_numpy()
    return (matrix - matrix.mean(axis=0)) / matrix.std(axis=0, ddof=1)


def test_silhouette_picks_the_true_k_and_segments_recover_the_groups(known, fitted):
    _, truth = known
    _, fit, assigned = fitted
    assert [s.k for s in fit.scores] == [2, 3, 4, 5, 6]
    assert fit.k == TRUE_K
    assert max(fit.scores, key=lambda s: s.silhouette).k == TRUE_K
    assert sorted(assigned["segment"].unique()) == list(range(TRUE_K))
    assert adjusted_rand_score(truth, assigned["segment"]) >= MIN_ARI


def test_scaler_and_cost_match_numpy_and_scikit_learn(known, fitted):
    frame, _ = known
    _, fit, _ = fitted
    matrix = frame[FEATURES].to_numpy()
    scaler = fit.model.stages[1]
    np.testing.assert_allclose(scaler.mean.toArray(), matrix.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(scaler.std.toArray(), matrix.std(axis=0, ddof=1), rtol=1e-9)
    reference = SklearnKMeans(n_clusters=fit.k, n_init=10, random_state=0).fit(_spark_scaled(frame))
    spark_cost = next(s.training_cost for s in fit.scores if s.k == fit.k)
    assert spark_cost == pytest.approx(reference.inertia_, rel=0.01)


def test_distance_is_to_the_nearest_centre(known, fitted):
    frame, _ = known
    _, fit, assigned = fitted
    centres = np.array(fit.model.stages[-1].clusterCenters())
    scaled = _spark_scaled(frame.sort_values("person_id"))
    to_centres = np.linalg.norm(scaled[:, None, :] - centres[None, :, :], axis=2)
    np.testing.assert_array_equal(assigned["segment"].to_numpy(), to_centres.argmin(axis=1))
    np.testing.assert_allclose(assigned["distance"].to_numpy(), to_centres.min(axis=1), rtol=1e-6)


def test_profile_sizes_and_means_match_pandas(spark, known, fitted):
    frame, _ = known
    features, _, assigned = fitted
    profiles = build_segment_profiles(spark.createDataFrame(assigned[["person_id", "segment"]]), features,
                                      feature_columns=FEATURES)
    summary = pd.DataFrame(profiles.summary.toPandas()).sort_values("segment").reset_index(drop=True)
    expected = frame.merge(assigned, on="person_id").groupby("segment")[FEATURES].mean()
    assert summary["persons"].sum() == len(frame)
    np.testing.assert_array_equal(summary["persons"], frame.merge(assigned, on="person_id")
                                  .groupby("segment").size().to_numpy())
    for column in FEATURES:
        np.testing.assert_allclose(summary[f"mean_{column}"], expected[column].to_numpy(), rtol=1e-9)


def test_top_conditions_literal_rows(spark):
    assigned = spark.createDataFrame([(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 1)], "person_id long, segment int")
    features = spark.createDataFrame([(1, 1.0), (2, 2.0), (3, 3.0), (4, 10.0), (5, 20.0), (6, 30.0)],
                                     "person_id long, x double")
    conditions = spark.createDataFrame([
        (1, 100), (1, 200),
        (2, 100), (2, 100), (2, 300),  # a repeated diagnosis counts the person once
        (3, 100), (3, 0),  # unmapped: never listed
        (4, 200),
        (5, 200), (5, 300),
        (6, 400), (6, 0),
    ], "person_id long, condition_concept_id int")
    concepts = spark.createDataFrame([(100, "Alpha"), (200, "Beta"), (400, "Delta")],  # 300 has no name
                                     "concept_id int, concept_name string")
    profiles = build_segment_profiles(assigned, features, conditions, concepts, top_n=2)
    assertDataFrameEqual(profiles.summary, spark.createDataFrame(
        [(0, 3, 2.0), (1, 3, 20.0)], "segment int, persons long, mean_x double"))
    assert profiles.top_conditions is not None
    assertDataFrameEqual(profiles.top_conditions, spark.createDataFrame([
        (0, 1, 100, "Alpha", 3, 1.0),
        (0, 2, 200, "Beta", 1, 1 / 3),  # ties with 300: the smaller concept id wins
        (1, 1, 200, "Beta", 2, 2 / 3),
        (1, 2, 300, None, 1, 1 / 3),  # ties with 400
    ], "segment int, rank int, condition_concept_id int, concept_name string, persons long, prevalence double"))


@pytest.mark.parametrize("where", ["local", "viewfs"])
def test_saved_model_reloads_with_its_metadata(spark, tmp_path, viewfs, fitted, where):
    features, fit, assigned = fitted
    metadata = segment_model_metadata(fit, training_data_version=12)
    # viewfs:// stands in for s3a:// or hdfs://: nothing may go through Python's file API.
    path = f"{viewfs}/segments" if where == "viewfs" else tmp_path / "segments"
    save_segment_model(fit.model, path, metadata)
    save_segment_model(fit.model, path, metadata)  # overwrites
    disk = tmp_path / "viewfs" / "segments" if where == "viewfs" else tmp_path / "segments"
    on_disk = json.loads((disk / "metadata.json").read_text())
    assert on_disk == {
        "k": TRUE_K, "seed": SEED, "feature_columns": FEATURES, "training_data_version": 12,
        "scores": [{"k": s.k, "silhouette": s.silhouette, "training_cost": s.training_cost} for s in fit.scores],
    }
    model, loaded = load_segment_model(path)
    assert loaded == on_disk
    again = assign_segments(model, features).select("person_id", "segment")
    assertDataFrameEqual(again, spark.createDataFrame(assigned[["person_id", "segment"]]))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"feature_columns": FEATURES, "k_values": [1, 2]}, "k_values"),
    ({"feature_columns": FEATURES, "k_values": [3, 3]}, "k_values"),
    ({"feature_columns": [*FEATURES, "nope"], "k_values": [2]}, r"features lacks column\(s\) \['nope'\]"),
    ({"feature_columns": [], "k_values": [2]}, "feature_columns"),
    ({"feature_columns": FEATURES, "k_values": [2], "n_init": 0}, "n_init"),
])
def test_bad_arguments_are_usage_errors(fitted, kwargs, message):
    features, _, _ = fitted
    with pytest.raises(UsageError, match=message):
        fit_segments(features, seed=1, **kwargs)


def test_metadata_must_be_json(tmp_path, fitted):
    _, fit, _ = fitted
    with pytest.raises(UsageError, match="JSON"):
        save_segment_model(fit.model, tmp_path / "m", {"k": object()})
    assert not (tmp_path / "m").exists()  # checked before anything is written
