"""The gold job end to end on research views built in the test: every analysis writes its tables, nothing
publishable holds a small cell, a re-run gives the same tables, and bad calls are clean usage errors."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.cli.main import main
from medspark.config import load_config
from medspark.config.model import MedsparkConfig
from medspark.errors import UsageError
from medspark.gold.job import analyze

AS_OF = dt.date(2024, 12, 31)
DIABETES, HYPERTENSION, CKD, BRONCHITIS = 201826, 320128, 443597, 260139
METFORMIN, LISINOPRIL = 1503297, 1308216


def _research_tables(spark: SparkSession, n_persons: int = 240, seed: int = 3) -> dict[str, DataFrame]:
    """A small research lakehouse with planted structure: diabetes implies hypertension (and metformin), CKD
    patients are readmitted more often."""
    rng = random.Random(seed)
    persons, periods, visits, conditions, drugs, costs = [], [], [], [], [], []
    visit_id = condition_id = drug_id = 0
    for pid in range(1, n_persons + 1):
        persons.append((pid, rng.choice((8507, 8532)), rng.randint(1935, 2010), 8527, 38003564, False))
        periods.append((pid, pid, dt.date(2015, 1, 1), AS_OF, 32817))
        diabetic = rng.random() < 0.35
        chronic = {DIABETES} if diabetic else set()
        if (diabetic and rng.random() < 0.85) or rng.random() < 0.1:
            chronic.add(HYPERTENSION)
        ckd = rng.random() < 0.25
        if ckd:
            chronic.add(CKD)
        day = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randint(0, 300))
        for _ in range(rng.randint(2, 6)):
            visit_id += 1
            inpatient = rng.random() < (0.6 if ckd else 0.3)
            length = rng.randint(1, 6) if inpatient else 0
            end = day + dt.timedelta(days=length)
            visits.append((visit_id, pid, 9201 if inpatient else 9202, day, end, 32817, pid % 7, pid % 11))
            costs.append((visit_id, visit_id, "Visit", float(200 + 900 * length + rng.randint(0, 100))))
            for concept in sorted(chronic) + ([BRONCHITIS] if rng.random() < 0.2 else []):
                condition_id += 1
                moment = dt.datetime.combine(day, dt.time(9))
                conditions.append((condition_id, pid, concept, day, moment, visit_id))
            if DIABETES in chronic:
                drug_id += 1
                drugs.append((drug_id, pid, METFORMIN, day, visit_id))
            if HYPERTENSION in chronic and rng.random() < 0.7:
                drug_id += 1
                drugs.append((drug_id, pid, LISINOPRIL, day, visit_id))
            readmit = inpatient and rng.random() < (0.5 if ckd else 0.1)
            day = end + dt.timedelta(days=rng.randint(3, 25) if readmit else rng.randint(40, 200))
    return {
        "person": spark.createDataFrame(persons, "person_id long, gender_concept_id int, year_of_birth int, "
                                                 "race_concept_id int, ethnicity_concept_id int, age_over_89 boolean"),
        "observation_period": spark.createDataFrame(
            periods, "observation_period_id long, person_id long, observation_period_start_date date, "
                     "observation_period_end_date date, period_type_concept_id int"),
        "visit_occurrence": spark.createDataFrame(
            visits, "visit_occurrence_id long, person_id long, visit_concept_id int, visit_start_date date, "
                    "visit_end_date date, visit_type_concept_id int, provider_id long, care_site_id long"),
        "condition_occurrence": spark.createDataFrame(
            conditions, "condition_occurrence_id long, person_id long, condition_concept_id int, "
                        "condition_start_date date, condition_start_datetime timestamp, visit_occurrence_id long"),
        "drug_exposure": spark.createDataFrame(
            drugs, "drug_exposure_id long, person_id long, drug_concept_id int, drug_exposure_start_date date, "
                   "visit_occurrence_id long"),
        "procedure_occurrence": spark.createDataFrame(
            [(1, 1, 4036803, dt.date(2016, 3, 1), 1)],
            "procedure_occurrence_id long, person_id long, procedure_concept_id int, procedure_date date, "
            "visit_occurrence_id long"),
        "cost": spark.createDataFrame(costs, "cost_id long, cost_event_id long, cost_domain_id string, "
                                             "total_charge double"),
    }


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the lakehouse's files land."""
    return tmp_path_factory.mktemp("gold") / "lh"


@pytest.fixture(scope="module")
def lakehouse(spark: SparkSession, disk: Path, viewfs_mount: Callable[[Path], str]) -> str:
    """The lakehouse as the job sees it: a viewfs:// URI (standing in for s3a:// or hdfs://) mounted on ``disk``."""
    root = viewfs_mount(disk)
    for table, frame in _research_tables(spark).items():
        frame.write.format("delta").save(f"{root}/research/{table}")
    return root


def _config(root: Path | str) -> MedsparkConfig:
    return load_config("test", lakehouse=str(root), environ={}, overrides=[
        f"gold.as_of={AS_OF.isoformat()}", "gold.segments.k_values=[2, 3]", "gold.segments.n_init=1",
        "gold.risk.num_trees=[10]", "gold.risk.max_depth=[3]", "gold.risk.folds=2",
    ])


def _gold(spark: SparkSession, root: Path | str, table: str) -> DataFrame:
    return spark.read.format("delta").load(f"{root}/gold/{table}")


def _published_small_cells(frame: DataFrame) -> int:
    """Rows where a suppressible count column holds a value from 1 to 10."""
    counts = [c.removesuffix("_suppressed") for c in frame.columns if c.endswith("_suppressed")]
    assert counts, "a published table must carry its suppression flags"
    condition = None
    for c in counts:
        small = sf.col(c).between(1, 10)
        condition = small if condition is None else condition | small
    return frame.where(condition).count()


def test_analyze_all_writes_every_table_without_small_cells(spark: SparkSession, lakehouse: str, disk: Path) -> None:
    result = analyze(spark, _config(lakehouse), "all")
    assert result.as_of == AS_OF
    expected = {
        "person_counts", "person_pyramid", "observation_period_stats", "condition_prevalence", "drug_prevalence",
        "procedure_prevalence", "condition_monthly_incidence", "visit_stats", "readmission_rates",
        "chi_square_condition_sex", "utilisation_correlation", "cost_anomalies_care_site", "cost_anomalies_provider",
        "frequent_itemsets", "association_rules", "condition_trajectories", "patient_segments", "segment_scores",
        "segment_profiles", "segment_top_conditions", "model_metrics_readmission", "model_calibration_readmission",
        "model_roc_readmission",
        "feature_importance_readmission", "readmission_risk", "readmission_examples",
    }  # fmt: skip
    assert set(result.tables) == expected
    published = [t for t in expected if t not in {"patient_segments", "segment_scores",
                                                  "feature_importance_readmission", "readmission_risk",
                                                  "readmission_examples"}]
    for table in published:
        assert _published_small_cells(_gold(spark, lakehouse, table)) == 0, table
    # The planted rule: diabetes -> hypertension has confidence near 0.85+ and lift > 1.5.
    rule = _gold(spark, lakehouse, "association_rules").where(
        (sf.col("basket") == "condition") & (sf.col("antecedent") == sf.array(sf.lit(DIABETES)))
        & (sf.col("consequent") == sf.array(sf.lit(HYPERTENSION)))
    ).first()
    assert rule is not None and rule["confidence"] > 0.8 and rule["lift"] > 1.5
    # The procedure seen for one person is suppressed, not published.
    procedure = _gold(spark, lakehouse, "procedure_prevalence").where("stratum = 'overall'").first()
    assert procedure is not None and procedure["persons"] is None and procedure["persons_suppressed"]
    metrics = {r["estimator"]: r for r in _gold(spark, lakehouse, "model_metrics_readmission").collect()}
    assert set(metrics) == {"random_forest", "logistic_baseline"}
    assert 0.0 <= metrics["random_forest"]["auc_roc"] <= 1.0
    assert (disk / "gold" / "_models" / "readmission-random_forest" / "v1" / "metadata.json").is_file()
    assert (disk / "gold" / "_models" / "segments" / "v1" / "metadata.json").is_file()
    scores = {r["k"]: r for r in _gold(spark, lakehouse, "segment_scores").collect()}
    assert set(scores) == {2, 3} and sum(bool(r["chosen"]) for r in scores.values()) == 1


def test_rerun_gives_the_same_tables(spark: SparkSession, lakehouse: str) -> None:
    config = _config(lakehouse)
    analyze(spark, config, "sequences")
    first = _gold(spark, lakehouse, "condition_trajectories").localCheckpoint()
    analyze(spark, config, "sequences")
    assertDataFrameEqual(_gold(spark, lakehouse, "condition_trajectories"), first)


def test_usage_errors(spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path / "empty")
    with pytest.raises(UsageError, match=r"gold needs research/observation_period|gold needs research/person"):
        analyze(spark, config, "stats")
    with pytest.raises(UsageError, match="unknown analysis 'nope'"):
        analyze(spark, config, "nope")
    assert main(["--config", "test", "--lakehouse", str(tmp_path / "empty"), "analyze", "stats", "--spec", "x"]) == 2
    assert "--spec is only for `analyze risk`" in capsys.readouterr().err
    code = main(["--config", "test", "--lakehouse", str(tmp_path / "empty"), "analyze", "risk", "--spec", "nope"])
    assert code == 2
    assert "no model spec 'nope'" in capsys.readouterr().err
