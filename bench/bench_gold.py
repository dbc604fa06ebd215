"""Gold benchmark: medspark's gold functions against single-machine references on the same data, in one run.

    python bench/bench_gold.py --n 100000 [--work /tmp/medspark-bench-gold] [--seed 42]

Four comparisons (issue 4 §7), each on data generated here with numpy (seeded) and written to Parquet as four files
of several row groups each, so that Spark reads at least two partitions per table and both cores work:

1. FP-growth: ``medspark.gold.rules.mine_itemsets`` vs mlxtend ``fpgrowth`` on a sparse one-hot DataFrame
   (n baskets of Zipf-distributed item codes out of 2,000, ~5 per basket, min support 0.001). Itemsets and supports
   must be identical.
2. k-means: ``medspark.gold.segments.fit_segments`` (k=8; it also computes the silhouette) and a plain pyspark.ml
   assembler -> scaler -> KMeans fit vs scikit-learn ``KMeans(n_clusters=8, n_init=1)`` on the same standardised
   features (n x 10 Gaussian blobs). Training costs are compared.
3. Random forest: ``medspark.gold.risk.train_risk_models`` (one grid point: 50 trees, depth 10; it also fits the
   logistic baseline and picks a threshold) and a plain pyspark.ml forest fit vs scikit-learn
   ``RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=2)`` on n x 20 synthetic rows; AUC-ROC of both on
   n/4 held-out rows with scikit-learn's ``roc_auc_score``.
4. Statistics: ``medspark.gold.stats.build_prevalence`` (conditions) and ``build_visit_stats`` vs the same
   definitions written as DuckDB SQL over the same Parquet files (persons n, visits ~5n, conditions ~3n, costs).
   Counts and medians must be equal.

All reference runs happen first, in this Python process before the JVM exists, so their peak RSS is the Python
process alone; then one SparkSession (local[2], 8g driver) runs the medspark side, whose peak RSS is the process
tree (driver JVM + this Python process). Both sides' timings include reading their input Parquet and bringing the
result to the driver. Result: bench/results/gold-<n>.json. ``--n 1000000`` works the same way (not yet run: the
mlxtend one-hot alone is then several GB).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import gc
import math
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from common import Measurement, machine_info, measure, write_result
from mlxtend.frequent_patterns import fpgrowth
from scipy import sparse
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier as SkForest
from sklearn.metrics import roc_auc_score

FILES_PER_TABLE = 4
ROW_GROUPS_PER_FILE = 4
N_CODES = 2_000
ZIPF_EXPONENT = 1.0
MEAN_BASKET = 5.0
MIN_SUPPORT = 0.001
K = 8
KMEANS_FEATURES = 10
KMEANS_MAX_ITER = 50
RF_FEATURES = 20
RF_TREES = 50
RF_DEPTH = 10
AS_OF = dt.date(2025, 1, 1)
EPOCH = dt.date(1970, 1, 1)


# --------------------------------------------------------------------------------------------------- helpers
def _tree_rss_mib() -> float:
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss / 2**20
    return round(total, 1)


def _release_memory() -> None:
    """Give freed heap back to the OS between measurements, so one side's garbage is not the next side's peak."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _side(m: Measurement, rss_before: float, **extra: Any) -> dict[str, Any]:
    return {"seconds": round(m.seconds, 2), "cpu_seconds": round(m.cpu_seconds, 1), "peak_rss_mib": m.peak_rss_mib,
            "rss_before_mib": rss_before, "peak_rss_by_kind": m.peak_rss_by_kind, **extra}


def _timed(fn: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Runs ``fn`` under ``measure()`` after releasing freed memory; returns its value and the measurement."""
    _release_memory()
    before = _tree_rss_mib()
    with measure() as m:
        value = fn()
    return value, _side(m, before)


def _write_parquet(table: pa.Table, directory: Path) -> None:
    """``FILES_PER_TABLE`` files of ``ROW_GROUPS_PER_FILE`` row groups each (Spark: one partition per file here)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = table.num_rows
    per_file = math.ceil(rows / FILES_PER_TABLE)
    for i in range(FILES_PER_TABLE):
        part = table.slice(i * per_file, per_file)
        pq.write_table(part, directory / f"part-{i:03d}.parquet",
                       row_group_size=max(1, math.ceil(part.num_rows / ROW_GROUPS_PER_FILE)))


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype("int32"), type=pa.int32()).cast(pa.date32())


def _day(date: dt.date) -> int:
    return (date - EPOCH).days


# ---------------------------------------------------------------------------------------------- data generation
def generate_baskets(n: int, rng: np.random.Generator, out: Path) -> dict[str, Any]:
    """n baskets; sizes Poisson(5) (at least 1) draws of Zipf(1.0) codes 1..2000, duplicates removed."""
    weights = 1.0 / np.arange(1, N_CODES + 1) ** ZIPF_EXPONENT
    sizes = np.maximum(1, rng.poisson(MEAN_BASKET, n))
    draws = rng.choice(np.arange(1, N_CODES + 1, dtype=np.int32), size=int(sizes.sum()), p=weights / weights.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)])
    baskets = [np.unique(draws[starts[i]:starts[i + 1]]) for i in range(n)]
    lengths = np.array([len(b) for b in baskets])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    items = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(baskets), type=pa.int32()))
    _write_parquet(pa.table({"person_id": pa.array(np.arange(n, dtype=np.int64)), "items": items}), out)
    return {"baskets": n, "codes": N_CODES, "zipf_exponent": ZIPF_EXPONENT,
            "mean_items": round(float(lengths.mean()), 2)}


def generate_blobs(n: int, rng: np.random.Generator, out: Path) -> dict[str, Any]:
    """n points in 10 dimensions around 8 centres, unit spread, features on different scales (so scaling matters)."""
    centres = rng.uniform(-5.0, 5.0, size=(K, KMEANS_FEATURES))
    labels = rng.integers(0, K, n)
    scales = 10.0 ** rng.uniform(-1.0, 2.0, KMEANS_FEATURES)
    points = (centres[labels] + rng.normal(0.0, 1.0, size=(n, KMEANS_FEATURES))) * scales
    columns = {f"f{j}": pa.array(points[:, j]) for j in range(KMEANS_FEATURES)}
    _write_parquet(pa.table({"person_id": pa.array(np.arange(n, dtype=np.int64)), **columns}), out)
    np.save(out.parent / "blob_labels.npy", labels)
    return {"points": n, "features": KMEANS_FEATURES, "k_true": K}


def generate_classification(n: int, seed: int, train_out: Path, test_out: Path) -> dict[str, Any]:
    """n training and n/4 held-out rows of a 20-feature binary problem (10 informative, 5 redundant, 3% noise)."""
    n_test = max(1, n // 4)
    features, labels = make_classification(n_samples=n + n_test, n_features=RF_FEATURES, n_informative=10,
                                           n_redundant=5, n_clusters_per_class=2, flip_y=0.03, class_sep=1.0,
                                           random_state=seed)
    for out, rows in ((train_out, slice(0, n)), (test_out, slice(n, n + n_test))):
        columns = {f"x{j}": pa.array(features[rows, j]) for j in range(RF_FEATURES)}
        _write_parquet(pa.table({**columns, "label": pa.array(labels[rows].astype(np.int32))}), out)
    return {"train_rows": n, "test_rows": n_test, "features": RF_FEATURES,
            "positive_share": round(float(labels[:n].mean()), 3)}


def generate_research(n: int, rng: np.random.Generator, out: Path) -> dict[str, Any]:
    """Research-like person, observation_period, visit_occurrence (~5n), condition_occurrence (~3n), cost, concept.

    Edge cases both sides must agree on: unknown and future years of birth, unknown sex, unmapped (0) and null
    concepts, conditions after ``as_of``, visits without end date, visits with no / two / null cost rows, non-visit
    cost rows, concepts without a name.
    """
    person_ids = np.arange(1, n + 1, dtype=np.int64)
    year = rng.integers(1915, 2027, n).astype("float64")
    year[rng.random(n) < 0.005] = np.nan
    gender = rng.choice(np.array([8507, 8532, 0], dtype=np.int64), size=n, p=[0.485, 0.505, 0.01]).astype("float64")
    gender[rng.random(n) < 0.005] = np.nan
    person = pa.table({
        "person_id": person_ids,
        "gender_concept_id": pa.array(gender, from_pandas=True).cast(pa.int32()),
        "year_of_birth": pa.array(year, from_pandas=True).cast(pa.int32()),
        "race_concept_id": pa.array(rng.choice([8527, 8516, 8515, 0], size=n).astype(np.int32)),
        "ethnicity_concept_id": pa.array(rng.choice([38003563, 38003564], size=n).astype(np.int32)),
        "age_over_89": pa.array(np.nan_to_num(year, nan=2000.0) < AS_OF.year - 89),
    })
    _write_parquet(person, out / "person")

    obs_start = _day(dt.date(2010, 1, 1)) + rng.integers(0, 3650, n)
    obs_end = obs_start + rng.integers(30, 15 * 365, n)
    _write_parquet(pa.table({"observation_period_id": person_ids, "person_id": person_ids,
                             "observation_period_start_date": _dates(obs_start),
                             "observation_period_end_date": _dates(obs_end)}), out / "observation_period")

    visits_per_person = rng.poisson(5.0, n)
    m = int(visits_per_person.sum())
    visit_person = np.repeat(person_ids, visits_per_person)
    kind = rng.choice(np.array([9201, 9202, 9203], dtype=np.int32), size=m, p=[0.08, 0.77, 0.15])
    start = _day(dt.date(2015, 1, 1)) + rng.integers(0, 3653, m)
    los = np.where(kind == 9201, rng.geometric(0.25, m), np.where(kind == 9203, rng.integers(0, 2, m), 0))
    end = (start + los).astype("float64")
    end[rng.random(m) < 0.01] = np.nan
    visit_ids = np.arange(1, m + 1, dtype=np.int64)
    _write_parquet(pa.table({
        "visit_occurrence_id": visit_ids, "person_id": visit_person, "visit_concept_id": pa.array(kind),
        "visit_start_date": _dates(start),
        "visit_end_date": pa.array(end, from_pandas=True).cast(pa.int32()).cast(pa.date32()),
        "care_site_id": pa.array(rng.integers(1, 200, m)),
    }), out / "visit_occurrence")

    costed = visit_ids[rng.random(m) < 0.92]
    twice = costed[rng.random(costed.size) < 0.05]
    strays = rng.integers(1, m + 1, max(1, m // 100))
    event_ids = np.concatenate([costed, twice, strays])
    domains = np.array(["Visit"] * (costed.size + twice.size) + ["Drug"] * strays.size)
    charge = np.round(rng.lognormal(5.0, 1.2, event_ids.size), 2)
    charge[rng.random(event_ids.size) < 0.02] = np.nan
    _write_parquet(pa.table({
        "cost_id": np.arange(1, event_ids.size + 1, dtype=np.int64), "cost_event_id": event_ids,
        "cost_domain_id": pa.array(domains), "total_charge": pa.array(charge, from_pandas=True),
    }), out / "cost")

    conditions_per_person = rng.poisson(3.0, n)
    c = int(conditions_per_person.sum())
    weights = 1.0 / np.arange(1, N_CODES + 1) ** ZIPF_EXPONENT
    concept_codes = 3_000_000 + np.arange(1, N_CODES + 1)
    concept = rng.choice(concept_codes, size=c, p=weights / weights.sum()).astype("float64")
    concept[rng.random(c) < 0.02] = 0
    concept[rng.random(c) < 0.005] = np.nan
    _write_parquet(pa.table({
        "condition_occurrence_id": np.arange(1, c + 1, dtype=np.int64),
        "person_id": np.repeat(person_ids, conditions_per_person),
        "condition_concept_id": pa.array(concept, from_pandas=True).cast(pa.int32()),
        "condition_start_date": _dates(_day(dt.date(2015, 1, 1)) + rng.integers(0, 3835, c)),  # some after as_of
    }), out / "condition_occurrence")

    named = concept_codes[concept_codes % 100 != 0]  # every 100th concept has no name
    _write_parquet(pa.table({"concept_id": pa.array(named.astype(np.int32)),
                             "concept_name": pa.array([f"condition {code}" for code in named])}), out / "concept")
    return {"persons": n, "visits": m, "conditions": c, "cost_rows": int(event_ids.size), "as_of": AS_OF.isoformat()}


# --------------------------------------------------------------------------------------------------- references
def reference_fpgrowth(baskets_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    items = pq.read_table(baskets_dir, columns=["items"]).column("items").combine_chunks()
    offsets = items.offsets.to_numpy()
    codes = items.values.to_numpy()
    vocabulary, columns = np.unique(codes, return_inverse=True)
    one_hot = sparse.csr_matrix((np.ones(codes.size, dtype=bool), columns, offsets),
                                shape=(len(items), vocabulary.size))
    with warnings.catch_warnings():  # pandas: fill value 0 for a bool SparseDtype is deprecated; it means False
        warnings.simplefilter("ignore", FutureWarning)
        # mlxtend wants string column names for sparse frames whose integer names do not start at 0
        frame = pd.DataFrame.sparse.from_spmatrix(one_hot, columns=[str(code) for code in vocabulary])
    encoded = time.perf_counter()
    found = fpgrowth(frame, min_support=MIN_SUPPORT, use_colnames=True)
    finished = time.perf_counter()
    n = len(items)
    itemsets = {frozenset(int(i) for i in s): float(sup) for s, sup in zip(found["itemsets"], found["support"],
                                                                          strict=True)}
    return {"itemsets": itemsets, "n": n, "read_encode_seconds": round(encoded - started, 2),
            "fpgrowth_seconds": round(finished - encoded, 2)}


def _scaled_blobs(blobs_dir: Path) -> np.ndarray:
    frame = pd.read_parquet(blobs_dir)
    points = frame[[f"f{j}" for j in range(KMEANS_FEATURES)]].to_numpy()
    # Spark's StandardScaler divides by the sample standard deviation (n - 1)
    return (points - points.mean(axis=0)) / points.std(axis=0, ddof=1)


def reference_kmeans(blobs_dir: Path, seed: int) -> dict[str, Any]:
    scaled = _scaled_blobs(blobs_dir)
    model = SkKMeans(n_clusters=K, n_init=1, max_iter=KMEANS_MAX_ITER, random_state=seed).fit(scaled)
    return {"cost": float(model.inertia_), "iterations": int(model.n_iter_)}


def reference_forest(train_dir: Path, test_dir: Path, seed: int) -> dict[str, Any]:
    columns = [f"x{j}" for j in range(RF_FEATURES)]
    train = pd.read_parquet(train_dir)
    test = pd.read_parquet(test_dir)
    started = time.perf_counter()
    forest = SkForest(n_estimators=RF_TREES, max_depth=RF_DEPTH, n_jobs=2, random_state=seed)
    forest.fit(train[columns].to_numpy(), train["label"].to_numpy())
    fitted = time.perf_counter()
    probability = forest.predict_proba(test[columns].to_numpy())[:, 1]
    scored = time.perf_counter()
    return {"auc": float(roc_auc_score(test["label"].to_numpy(), probability)),
            "fit_seconds": round(fitted - started, 2), "score_seconds": round(scored - fitted, 2)}


_AGE_GROUP_SQL = """CASE WHEN age BETWEEN 0 AND 17 THEN '0-17' WHEN age BETWEEN 18 AND 34 THEN '18-34'
    WHEN age BETWEEN 35 AND 49 THEN '35-49' WHEN age BETWEEN 50 AND 64 THEN '50-64'
    WHEN age BETWEEN 65 AND 79 THEN '65-79' WHEN age >= 80 THEN '80+' END"""


def duckdb_prevalence_sql(as_of: dt.date) -> str:
    """Prevalence per 1,000 by overall / age group / sex, written from build_prevalence's docstring conventions."""
    return f"""
    WITH people AS (
        SELECT person_id, gender_concept_id,
               CASE WHEN age_over_89 THEN greatest({as_of.year} - year_of_birth, 90)
                    ELSE {as_of.year} - year_of_birth END AS age
        FROM person),
    eligible AS (SELECT * FROM people WHERE age IS NULL OR age >= 0),
    strata AS (
        SELECT person_id, 'overall' AS stratum, 'all' AS stratum_value FROM eligible
        UNION ALL
        SELECT person_id, 'age_group', coalesce({_AGE_GROUP_SQL}, 'unknown') FROM eligible
        UNION ALL
        SELECT person_id, 'sex', coalesce(CAST(gender_concept_id AS VARCHAR), '0') FROM eligible),
    denominators AS (
        SELECT stratum, stratum_value, count(DISTINCT person_id) AS denominator FROM strata GROUP BY ALL),
    cases AS (
        SELECT DISTINCT c.person_id, CAST(c.condition_concept_id AS INTEGER) AS concept_id
        FROM condition_occurrence c JOIN eligible e ON c.person_id = e.person_id
        WHERE c.condition_concept_id IS NOT NULL AND c.condition_concept_id <> 0
          AND c.condition_start_date <= DATE '{as_of.isoformat()}'),
    numerators AS (
        SELECT concept_id, stratum, stratum_value, count(*) AS persons
        FROM cases JOIN strata USING (person_id) GROUP BY ALL)
    SELECT k.concept_id, n.concept_name, d.stratum, d.stratum_value,
           CAST(coalesce(x.persons, 0) AS BIGINT) AS persons, CAST(d.denominator AS BIGINT) AS denominator,
           coalesce(x.persons, 0) * 1000.0 / d.denominator AS prevalence_per_1000
    FROM (SELECT DISTINCT concept_id FROM cases) k CROSS JOIN denominators d
    LEFT JOIN numerators x ON x.concept_id = k.concept_id AND x.stratum = d.stratum
                          AND x.stratum_value = d.stratum_value
    LEFT JOIN concept n ON n.concept_id = k.concept_id"""


DUCKDB_VISIT_STATS_SQL = """
    WITH visit_costs AS (
        SELECT cost_event_id AS visit_occurrence_id, sum(CAST(total_charge AS DOUBLE)) AS visit_cost
        FROM cost WHERE cost_domain_id = 'Visit' GROUP BY 1),
    per_visit AS (
        SELECT v.person_id, v.visit_concept_id, date_diff('day', v.visit_start_date, v.visit_end_date) AS los,
               c.visit_cost
        FROM visit_occurrence v LEFT JOIN visit_costs c USING (visit_occurrence_id)),
    years AS (
        SELECT CAST(sum(date_diff('day', observation_period_start_date, observation_period_end_date)) / 365.25
                    AS DOUBLE) AS person_years
        FROM observation_period)
    SELECT visit_concept_id, count(*) AS n_visits, count(DISTINCT person_id) AS n_persons,
           avg(los) AS mean_los_days, quantile_cont(los, 0.5) AS median_los_days,
           quantile_cont(los, 0.9) AS p90_los_days, count(visit_cost) AS n_costed_visits,
           sum(visit_cost) AS cost_sum, avg(visit_cost) AS cost_mean, any_value(person_years) AS person_years,
           sum(visit_cost) / any_value(person_years) AS cost_per_person_year
    FROM per_visit CROSS JOIN years GROUP BY visit_concept_id"""


def reference_stats(research: Path) -> dict[str, pd.DataFrame]:
    connection = duckdb.connect(config={"threads": 2})
    for table in ("person", "observation_period", "visit_occurrence", "condition_occurrence", "cost", "concept"):
        connection.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{research / table}/*.parquet')")
    prevalence = connection.execute(duckdb_prevalence_sql(AS_OF)).fetchdf()
    visit_stats = connection.execute(DUCKDB_VISIT_STATS_SQL).fetchdf()
    connection.close()
    return {"prevalence": prevalence, "visit_stats": visit_stats}


# ------------------------------------------------------------------------------------------------------ medspark
def spark_fpgrowth(spark: Any, baskets_dir: Path) -> dict[str, Any]:
    from medspark.gold.rules import mine_itemsets

    baskets = spark.read.parquet(str(baskets_dir))
    mined = mine_itemsets(baskets, min_support=MIN_SUPPORT, min_confidence=0.5)
    rows = mined.frequent_itemsets.select("items", "freq", "support").collect()
    mined.unpersist()
    return {"itemsets": {frozenset(r["items"]): float(r["support"]) for r in rows},
            "freq": {frozenset(r["items"]): int(r["freq"]) for r in rows}}


def spark_segments(spark: Any, blobs_dir: Path, seed: int) -> dict[str, Any]:
    from medspark.gold.segments import fit_segments

    features = spark.read.parquet(str(blobs_dir))
    fit = fit_segments(features, feature_columns=[f"f{j}" for j in range(KMEANS_FEATURES)], k_values=[K], seed=seed,
                       max_iter=KMEANS_MAX_ITER)
    score = fit.scores[0]
    return {"cost": score.training_cost, "silhouette": score.silhouette}


def spark_kmeans_only(spark: Any, blobs_dir: Path, seed: int) -> dict[str, Any]:
    """The k-means part of fit_segments without the silhouette: same stages, same repartitioning, no caching."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    columns = [f"f{j}" for j in range(KMEANS_FEATURES)]
    features = spark.read.parquet(str(blobs_dir)).select("person_id", *columns) \
        .repartition(spark.sparkContext.defaultParallelism)
    assembled = VectorAssembler(inputCols=columns, outputCol="raw").transform(features)
    scaled = StandardScaler(inputCol="raw", outputCol="scaled", withMean=True, withStd=True).fit(assembled) \
        .transform(assembled)
    model = KMeans(featuresCol="scaled", k=K, seed=seed, maxIter=KMEANS_MAX_ITER).fit(scaled)
    return {"cost": float(model.summary.trainingCost), "iterations": int(model.summary.numIter)}


def _spark_auc(model: Any, test: Any) -> float:
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as sf

    scored = model.transform(test).select("label", vector_to_array(sf.col("probability"))[1].alias("p")).toPandas()
    return float(roc_auc_score(scored["label"], scored["p"]))


def spark_risk(spark: Any, train_dir: Path, test_dir: Path, seed: int) -> dict[str, Any]:
    from medspark.gold.risk import train_risk_models

    train = spark.read.parquet(str(train_dir))
    started = time.perf_counter()
    models = train_risk_models(train, feature_columns=[f"x{j}" for j in range(RF_FEATURES)], label_column="label",
                               seed=seed, grid={"numTrees": [RF_TREES], "maxDepth": [RF_DEPTH]})
    fitted = time.perf_counter()
    auc = _spark_auc(models.forest, spark.read.parquet(str(test_dir)))
    return {"auc": auc, "fit_seconds": round(fitted - started, 2),
            "score_seconds": round(time.perf_counter() - fitted, 2), "best_params": models.best_params}


def spark_forest_only(spark: Any, train_dir: Path, test_dir: Path, seed: int) -> dict[str, Any]:
    """The forest of train_risk_models alone (same parameters), without the baseline and the threshold search."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    train = spark.read.parquet(str(train_dir))
    pipeline = Pipeline(stages=[
        VectorAssembler(inputCols=[f"x{j}" for j in range(RF_FEATURES)], outputCol="features"),
        RandomForestClassifier(featuresCol="features", labelCol="label", numTrees=RF_TREES, maxDepth=RF_DEPTH,
                               seed=seed, featureSubsetStrategy="sqrt", maxBins=32)])
    started = time.perf_counter()
    model = pipeline.fit(train)
    fitted = time.perf_counter()
    auc = _spark_auc(model, spark.read.parquet(str(test_dir)))
    return {"auc": auc, "fit_seconds": round(fitted - started, 2),
            "score_seconds": round(time.perf_counter() - fitted, 2)}


def spark_stats(spark: Any, research: Path) -> dict[str, pd.DataFrame]:
    from medspark.gold.stats import build_prevalence, build_visit_stats

    def read(table: str) -> Any:
        return spark.read.parquet(str(research / table))

    prevalence = build_prevalence(read("condition_occurrence"), read("person"), concept_column="condition_concept_id",
                                  as_of=AS_OF, concepts=read("concept"), date_column="condition_start_date")
    visit_stats = build_visit_stats(read("visit_occurrence"), read("cost"), read("observation_period"))
    return {"prevalence": prevalence.toPandas(), "visit_stats": visit_stats.toPandas()}


# ---------------------------------------------------------------------------------------------------- comparisons
def compare_itemsets(spark_side: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    ours, theirs = spark_side["itemsets"], reference["itemsets"]
    only_spark, only_mlxtend = set(ours) - set(theirs), set(theirs) - set(ours)
    support_diffs = [abs(ours[s] - theirs[s]) for s in set(ours) & set(theirs)]
    freq_mismatch = sum(1 for s, f in spark_side["freq"].items() if s in theirs
                        and round(theirs[s] * reference["n"]) != f)
    sizes: dict[int, int] = {}
    for s in ours:
        sizes[len(s)] = sizes.get(len(s), 0) + 1
    return {"itemsets_spark": len(ours), "itemsets_mlxtend": len(theirs), "only_in_spark": len(only_spark),
            "only_in_mlxtend": len(only_mlxtend), "max_support_difference": max(support_diffs, default=0.0),
            "count_mismatches": freq_mismatch, "itemsets_by_size": {str(k): v for k, v in sorted(sizes.items())},
            "identical": not only_spark and not only_mlxtend and max(support_diffs, default=0.0) == 0.0
            and freq_mismatch == 0}


def _compare_frames(ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], exact: list[str],
                    close: list[str], rel_tol: float = 1e-9) -> dict[str, Any]:
    """Rows matched on ``keys``; ``exact`` columns must be equal, ``close`` within ``rel_tol`` (sum order differs)."""
    left = ours.astype({k: "string" for k in keys})
    right = theirs.astype({k: "string" for k in keys})
    merged = left.merge(right, on=keys, how="outer", suffixes=("_spark", "_duckdb"), indicator=True)
    unmatched = int((merged["_merge"] != "both").sum())
    both = merged[merged["_merge"] == "both"]
    mismatches: dict[str, int] = {}
    worst: dict[str, float] = {}
    for column in exact:
        a, b = both[f"{column}_spark"], both[f"{column}_duckdb"]
        if column == "concept_name":
            equal = (a.isna() & b.isna()) | (a.astype("object") == b.astype("object"))
        else:  # counts and medians: compared as numbers, exactly (all below 2**53)
            x, y = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            equal = (np.isnan(x) & np.isnan(y)) | (x == y)
        mismatches[column] = int((~np.asarray(equal)).sum())
    for column in close:
        a = pd.to_numeric(both[f"{column}_spark"]).astype(float).to_numpy()
        b = pd.to_numeric(both[f"{column}_duckdb"]).astype(float).to_numpy()
        nan_same = np.isnan(a) & np.isnan(b)
        diff = np.where(nan_same, 0.0, np.abs(a - b) / np.maximum(1.0, np.abs(b)))
        diff = np.nan_to_num(diff, nan=np.inf)
        worst[column] = float(diff.max()) if diff.size else 0.0
        mismatches[column] = int((diff > rel_tol).sum())
    return {"rows_spark": len(ours), "rows_duckdb": len(theirs), "unmatched_rows": unmatched,
            "mismatches": mismatches, "max_relative_difference": worst,
            "equal": unmatched == 0 and not any(mismatches.values())}


def compare_stats(ours: dict[str, pd.DataFrame], theirs: dict[str, pd.DataFrame]) -> dict[str, Any]:
    return {
        "prevalence": _compare_frames(ours["prevalence"], theirs["prevalence"],
                                      ["concept_id", "stratum", "stratum_value"],
                                      exact=["persons", "denominator", "concept_name"],
                                      close=["prevalence_per_1000"]),
        "visit_stats": _compare_frames(ours["visit_stats"], theirs["visit_stats"], ["visit_concept_id"],
                                       exact=["n_visits", "n_persons", "n_costed_visits", "median_los_days"],
                                       close=["mean_los_days", "p90_los_days", "cost_sum", "cost_mean",
                                              "person_years", "cost_per_person_year"]),
    }


def _ratio(spark_side: dict[str, Any], reference: dict[str, Any], key: str) -> float | None:
    return round(spark_side[key] / reference[key], 2) if reference.get(key) else None


# ------------------------------------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="persons / baskets / training rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="/tmp/medspark-bench-gold")
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    n, seed = args.n, args.seed
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    rng = np.random.default_rng(seed)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    log(f"generating data for n={n}")
    datasets = {
        "fpgrowth": generate_baskets(n, rng, data / "baskets"),
        "kmeans": generate_blobs(n, rng, data / "blobs" / "points"),
        "forest": generate_classification(n, seed, data / "forest" / "train", data / "forest" / "test"),
        "stats": generate_research(n, rng, data / "research"),
    }
    result: dict[str, Any] = {"machine": machine_info(), "n": n, "seed": seed, "datasets": datasets,
                              "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

    # ---- references: this Python process only (no JVM yet)
    log("reference: mlxtend fpgrowth")
    ref_fp, ref_fp_m = _timed(lambda: reference_fpgrowth(data / "baskets"))
    log(f"  {ref_fp_m}")
    log("reference: scikit-learn KMeans")
    ref_km, ref_km_m = _timed(lambda: reference_kmeans(data / "blobs" / "points", seed))
    log(f"  {ref_km_m}")
    log("reference: scikit-learn RandomForestClassifier")
    ref_rf, ref_rf_m = _timed(lambda: reference_forest(data / "forest" / "train", data / "forest" / "test", seed))
    log(f"  {ref_rf_m}")
    log("reference: DuckDB statistics")
    ref_st, ref_st_m = _timed(lambda: reference_stats(data / "research"))
    log(f"  {ref_st_m}")

    # ---- medspark: one SparkSession
    from medspark.config import load_config
    from medspark.spark import build_session

    config = load_config("local", environ={}, lakehouse=str(work / "lakehouse"), overrides=[
        "spark.master=local[2]", f"spark.conf.spark.driver.memory={args.driver_memory}",
        "spark.conf.spark.sql.shuffle.partitions=8"])
    spark = build_session(config)
    spark.read.parquet(str(data / "research" / "person")).groupBy("gender_concept_id").count().collect()  # warm-up

    log("medspark: mine_itemsets")
    sp_fp, sp_fp_m = _timed(lambda: spark_fpgrowth(spark, data / "baskets"))
    log(f"  {sp_fp_m}")
    log("medspark: fit_segments")
    sp_seg, sp_seg_m = _timed(lambda: spark_segments(spark, data / "blobs" / "points", seed))
    log(f"  {sp_seg_m}")
    log("pyspark.ml: KMeans fit only")
    sp_km, sp_km_m = _timed(lambda: spark_kmeans_only(spark, data / "blobs" / "points", seed))
    log(f"  {sp_km_m}")
    log("medspark: train_risk_models")
    sp_rf, sp_rf_m = _timed(lambda: spark_risk(spark, data / "forest" / "train", data / "forest" / "test", seed))
    log(f"  {sp_rf_m}")
    log("pyspark.ml: forest fit only")
    sp_rfo, sp_rfo_m = _timed(lambda: spark_forest_only(spark, data / "forest" / "train", data / "forest" / "test",
                                                        seed))
    log(f"  {sp_rfo_m}")
    log("medspark: build_prevalence + build_visit_stats")
    sp_st, sp_st_m = _timed(lambda: spark_stats(spark, data / "research"))
    log(f"  {sp_st_m}")
    # Not timed: does the k-means cost gap depend on the seed? Two more seeds for both sides (costs only).
    sweep_seeds = [seed + 1, seed + 2]
    log(f"k-means costs for seeds {sweep_seeds} (untimed)")
    spark_sweep = {str(s): spark_kmeans_only(spark, data / "blobs" / "points", s)["cost"] for s in sweep_seeds}
    spark.stop()
    sklearn_sweep = {str(s): reference_kmeans(data / "blobs" / "points", s)["cost"] for s in sweep_seeds}

    # ---- quality checks and ratios
    itemsets = compare_itemsets(sp_fp, ref_fp)
    result["fpgrowth"] = {
        "spark": sp_fp_m, "reference": {**ref_fp_m, "read_encode_seconds": ref_fp["read_encode_seconds"],
                                        "fpgrowth_seconds": ref_fp["fpgrowth_seconds"]},
        "time_ratio": _ratio(sp_fp_m, ref_fp_m, "seconds"),
        "memory_ratio": _ratio(sp_fp_m, ref_fp_m, "peak_rss_mib"),
        "quality": itemsets,
    }
    labels = np.load(data / "blobs" / "blob_labels.npy")
    scaled = _scaled_blobs(data / "blobs" / "points")
    true_cost = float(sum(((scaled[labels == j] - scaled[labels == j].mean(axis=0)) ** 2).sum() for j in range(K)))
    result["kmeans"] = {
        "spark_fit_segments": {**sp_seg_m, "silhouette": sp_seg["silhouette"]},
        "spark_kmeans_only": {**sp_km_m, "iterations": sp_km["iterations"]},
        "reference": {**ref_km_m, "iterations": ref_km["iterations"]},
        "time_ratio_fit_segments": _ratio(sp_seg_m, ref_km_m, "seconds"),
        "time_ratio_kmeans_only": _ratio(sp_km_m, ref_km_m, "seconds"),
        "quality": {"cost_fit_segments": sp_seg["cost"], "cost_kmeans_only": sp_km["cost"],
                    "cost_sklearn": ref_km["cost"], "cost_generating_partition": true_cost,
                    "relative_cost_difference": round(sp_seg["cost"] / ref_km["cost"] - 1.0, 6),
                    "other_seeds_spark_kmeans_only": spark_sweep, "other_seeds_sklearn": sklearn_sweep},
    }
    result["forest"] = {
        "spark_train_risk_models": {**sp_rf_m, **{k: sp_rf[k] for k in ("fit_seconds", "score_seconds")},
                                    "best_params": sp_rf["best_params"]},
        "spark_forest_only": {**sp_rfo_m, **{k: sp_rfo[k] for k in ("fit_seconds", "score_seconds")}},
        "reference": {**ref_rf_m, **{k: ref_rf[k] for k in ("fit_seconds", "score_seconds")}},
        "time_ratio_train_risk_models": _ratio(sp_rf_m, ref_rf_m, "seconds"),
        "time_ratio_forest_only": _ratio(sp_rfo_m, ref_rf_m, "seconds"),
        "fit_time_ratio_forest_only": round(sp_rfo["fit_seconds"] / ref_rf["fit_seconds"], 2),
        "quality": {"auc_train_risk_models": sp_rf["auc"], "auc_forest_only": sp_rfo["auc"],
                    "auc_sklearn": ref_rf["auc"], "auc_difference": round(sp_rf["auc"] - ref_rf["auc"], 4)},
    }
    result["stats"] = {"spark": sp_st_m, "reference": ref_st_m, "time_ratio": _ratio(sp_st_m, ref_st_m, "seconds"),
                       "memory_ratio": _ratio(sp_st_m, ref_st_m, "peak_rss_mib"),
                       "quality": compare_stats(sp_st, ref_st)}
    q_km, q_rf = result["kmeans"], result["forest"]
    result["targets"] = {
        "identical_itemsets": itemsets["identical"],
        "fpgrowth_time_at_most_2x_mlxtend": result["fpgrowth"]["time_ratio"] <= 2.0,
        "fpgrowth_memory_at_most_quarter_of_mlxtend": result["fpgrowth"]["memory_ratio"] <= 0.25,
        "kmeans_cost_within_1pct": abs(q_km["quality"]["relative_cost_difference"]) <= 0.01,
        "kmeans_fit_segments_at_most_8x_sklearn": q_km["time_ratio_fit_segments"] <= 8.0,
        "kmeans_only_at_most_8x_sklearn": q_km["time_ratio_kmeans_only"] <= 8.0,
        "forest_auc_within_0_02": abs(q_rf["quality"]["auc_difference"]) <= 0.02,
        "forest_train_risk_models_not_slower": q_rf["time_ratio_train_risk_models"] <= 1.0,
        "forest_only_not_slower": q_rf["time_ratio_forest_only"] <= 1.0,
        "stats_equal": all(v["equal"] for v in result["stats"]["quality"].values()),
        "stats_within_3x_duckdb": result["stats"]["time_ratio"] <= 3.0,
    }
    result["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = write_result(f"gold-{n}", result)
    log(f"targets: {result['targets']}")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
