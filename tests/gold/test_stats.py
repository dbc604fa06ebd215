"""Cohort statistics: literal rows for the aggregates; SciPy/NumPy/pandas references for percentiles, chi-square,
Pearson correlation and robust z-scores computed on the same input rows."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual
from scipy import stats as scipy_stats

from medspark.gold import stats
from medspark.gold.suppression import suppress_small_cells

D = dt.date
PERSON_SCHEMA = ("person_id long, gender_concept_id int, year_of_birth int, race_concept_id int,"
                 " ethnicity_concept_id int, age_over_89 boolean")
VISIT_SCHEMA = ("visit_occurrence_id long, person_id long, visit_concept_id int, visit_start_date date,"
                " visit_end_date date, care_site_id long, provider_id long")
COST_SCHEMA = "cost_id long, cost_event_id long, cost_domain_id string, total_charge double, total_cost double"
CONDITION_SCHEMA = "person_id long, condition_concept_id int, condition_start_date date"


def _persons(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([
        (1, 8507, 2010, 8527, 38003564, False),   # 14 at as_of
        (2, 8532, 1990, 8516, 38003564, False),   # 34
        (3, 8532, 1950, 8527, 38003563, False),   # 74
        (4, 8507, 1930, 8527, 38003564, True),    # 94, over 89
        (5, 0, 1980, None, 38003564, False),      # 44, unknown gender and race
        (6, 8532, 2030, 8527, 38003564, False),   # born after as_of
    ], PERSON_SCHEMA)


def test_person_counts(spark: SparkSession) -> None:
    expected = spark.createDataFrame([
        ("year_of_birth", "2010", 1), ("year_of_birth", "1990", 1), ("year_of_birth", "1950", 1),
        ("year_of_birth", "1930", 1), ("year_of_birth", "1980", 1), ("year_of_birth", "2030", 1),
        ("gender_concept_id", "8507", 2), ("gender_concept_id", "8532", 3), ("gender_concept_id", "0", 1),
        ("race_concept_id", "8527", 4), ("race_concept_id", "8516", 1), ("race_concept_id", None, 1),
        ("ethnicity_concept_id", "38003564", 5), ("ethnicity_concept_id", "38003563", 1),
    ], "dimension string, value string, persons long")
    assertDataFrameEqual(stats.build_person_counts(_persons(spark)), expected)


def test_person_pyramid_matches_pandas(spark: SparkSession) -> None:
    rng = np.random.default_rng(4)
    n = 400
    frame = pd.DataFrame({
        "person_id": np.arange(n), "gender_concept_id": rng.choice([8507, 8532, 0], n, p=[0.48, 0.48, 0.04]),
        "year_of_birth": rng.integers(1920, 2024, n), "age_over_89": rng.random(n) < 0.03,
    })
    frame.loc[:4, "year_of_birth"] = None  # unknown age
    persons = spark.createDataFrame(frame.astype(object).where(frame.notna(), None),
                                    "person_id long, gender_concept_id int, year_of_birth int, age_over_89 boolean")
    got = stats.build_person_pyramid(persons, as_of=D(2024, 6, 30)).toPandas()

    age = 2024 - frame["year_of_birth"]
    # over 89 is 90+ even without a year of birth (the research view may drop it for them)
    age = age.where(~frame["age_over_89"], np.fmax(age, 90))
    start = np.where(age >= 90, 90, (age // 5) * 5)
    band = [("unknown" if pd.isna(a) else "90+" if s == 90 else f"{int(s)}-{int(s) + 4}")
            for a, s in zip(age, start, strict=True)]
    counted = pd.DataFrame({"age_band": band, "sex": frame["gender_concept_id"].astype(str)}) \
        .value_counts().rename("persons")
    grid = pd.MultiIndex.from_product([sorted(set(band)), sorted(counted.index.unique("sex"))])
    expected = counted.reindex(grid, fill_value=0).sort_index()
    got_series = got.set_index(["age_band", "sex"])["persons"].sort_index()
    assert list(got_series.items()) == list(expected.items())
    starts = dict(zip(got["age_band"], got["band_start"], strict=True))
    assert pd.isna(starts["unknown"]) and starts["90+"] == 90 and starts["0-4"] == 0
    assert int(got["persons"].sum()) == n


def test_observation_period_distribution_matches_numpy(spark: SparkSession) -> None:
    lengths = [0, 10, 31, 100, 365, 366, 1000]
    owners = [1, 1, 2, 3, 4, 5, 6]
    start = D(2020, 1, 1)
    periods = spark.createDataFrame(
        [(i, p, start, start + dt.timedelta(days=n)) for i, (p, n) in enumerate(zip(owners, lengths, strict=True))],
        "observation_period_id long, person_id long, observation_period_start_date date,"
        " observation_period_end_date date")
    row = stats.build_observation_period_stats(periods).collect()
    assert len(row) == 1
    result = row[0].asDict()
    q = np.percentile(lengths, [10, 25, 50, 75, 90])
    assert (result["n_periods"], result["n_persons"], result["min_days"], result["max_days"]) == (7, 6, 0, 1000)
    assert result["mean_days"] == pytest.approx(np.mean(lengths))
    assert [result[c] for c in ("p10_days", "p25_days", "median_days", "p75_days", "p90_days")] == \
        pytest.approx(list(q))


def _condition_events(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([
        (1, 100, D(2020, 1, 1)), (1, 100, D(2021, 1, 1)),   # one person, two records
        (2, 100, D(2023, 1, 1)), (2, 200, D(2022, 1, 1)),
        (3, 100, D(2010, 1, 1)),
        (3, 200, D(2024, 12, 1)),                           # after as_of
        (4, 0, D(2020, 5, 5)),                              # unmapped
        (9, 300, D(2020, 1, 15)),                           # not in person
    ], CONDITION_SCHEMA)


def test_prevalence_overall_by_age_group_and_sex(spark: SparkSession) -> None:
    concepts = spark.createDataFrame([(100, "Asthma", "Condition"), (200, "Diabetes", "Condition")],
                                     "concept_id int, concept_name string, domain_id string")
    prevalence = stats.build_prevalence(_condition_events(spark), _persons(spark),
                                        concept_column="condition_concept_id", as_of=D(2024, 6, 30),
                                        concepts=concepts, date_column="condition_start_date")
    rows = []
    # denominators: 5 persons (person 6 is not born yet); one per age group but 50-64; 2 male, 2 female, 1 unknown
    for concept, name, overall, by_age, by_sex in [
        (100, "Asthma", 3, {"0-17": 1, "18-34": 1, "35-49": 0, "65-79": 1, "80+": 0}, {"8507": 1, "8532": 2, "0": 0}),
        (200, "Diabetes", 1, {"0-17": 0, "18-34": 1, "35-49": 0, "65-79": 0, "80+": 0}, {"8507": 0, "8532": 1, "0": 0}),
    ]:
        rows.append((concept, name, "overall", "all", overall, 5, overall * 200.0))
        rows += [(concept, name, "age_group", g, n, 1, n * 1000.0) for g, n in by_age.items()]
        rows += [(concept, name, "sex", s, n, 1 if s == "0" else 2, n * 1000.0 / (1 if s == "0" else 2))
                 for s, n in by_sex.items()]
    expected = spark.createDataFrame(rows, "concept_id int, concept_name string, stratum string,"
                                           " stratum_value string, persons long, denominator long,"
                                           " prevalence_per_1000 double")
    assertDataFrameEqual(prevalence, expected)
    # the publication spec is accepted as is by the suppression step
    published = suppress_small_cells(prevalence, **stats.PUBLICATIONS["prevalence"].suppression_args())
    assert published.where(sf.col("persons").isNotNull() & (sf.col("persons") > 0)).count() == 0


def test_monthly_incidence_counts_first_records_only(spark: SparkSession) -> None:
    incidence = stats.build_monthly_incidence(_condition_events(spark), concept_column="condition_concept_id",
                                              date_column="condition_start_date")
    expected = spark.createDataFrame([
        (100, D(2020, 1, 1), 1), (100, D(2023, 1, 1), 1), (100, D(2010, 1, 1), 1),
        (200, D(2022, 1, 1), 1), (200, D(2024, 12, 1), 1),
        (300, D(2020, 1, 1), 1),
    ], "concept_id int, month date, new_persons long")
    assertDataFrameEqual(incidence, expected)


def _visits(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([
        (1, 1, 9201, D(2024, 1, 1), D(2024, 1, 5), 10, 100),
        (2, 1, 9201, D(2024, 3, 1), D(2024, 3, 11), 10, 100),
        (3, 2, 9201, D(2024, 2, 1), D(2024, 2, 2), 20, 100),
        (4, 2, 9202, D(2024, 2, 10), D(2024, 2, 10), 20, 200),
        (5, 3, 9202, D(2024, 4, 1), D(2024, 4, 1), 30, 200),
        (6, 3, 9203, D(2024, 5, 1), D(2024, 5, 2), 30, None),
        (7, 3, 9202, D(2024, 6, 1), None, None, 200),
    ], VISIT_SCHEMA)


def _costs(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([
        (1, 1, "Visit", 1000.0, None), (2, 1, "Visit", 500.0, None), (3, 2, "Visit", 3000.0, None),
        (4, 3, "Visit", None, None), (5, 4, "Visit", 100.0, None), (6, 5, "Visit", 120.0, None),
        (7, 6, "Visit", 800.0, None),
        (8, 1, "Drug", 999999.0, None),   # another domain's event id space
    ], COST_SCHEMA)


def test_visit_stats(spark: SparkSession) -> None:
    periods = spark.createDataFrame([
        (1, 1, D(2023, 1, 1), D(2024, 12, 31)), (2, 2, D(2024, 1, 1), D(2024, 12, 31)),   # 730 + 365 days
    ], "observation_period_id long, person_id long, observation_period_start_date date,"
       " observation_period_end_date date")
    person_years = 1095 / 365.25
    expected = spark.createDataFrame([
        # LOS 4, 10, 1: median 4, p90 4 + 0.8 * 6; visit 3 has no charge
        (9201, 3, 2, 5.0, 4.0, 8.8, 2, 4500.0, 2250.0, person_years, 4500.0 / person_years),
        # LOS 0, 0 (visit 7 has no end date)
        (9202, 3, 2, 0.0, 0.0, 0.0, 2, 220.0, 110.0, person_years, 220.0 / person_years),
        (9203, 1, 1, 1.0, 1.0, 1.0, 1, 800.0, 800.0, person_years, 800.0 / person_years),
    ], "visit_concept_id int, n_visits long, n_persons long, mean_los_days double, median_los_days double,"
       " p90_los_days double, n_costed_visits long, cost_sum double, cost_mean double, person_years double,"
       " cost_per_person_year double")
    assertDataFrameEqual(stats.build_visit_stats(_visits(spark), _costs(spark), periods), expected)


def test_utilisation_features(spark: SparkSession) -> None:
    conditions = spark.createDataFrame([(1, 100, D(2024, 1, 1)), (1, 100, D(2024, 2, 1)), (1, 200, D(2024, 1, 1)),
                                        (2, 0, D(2024, 1, 1))], CONDITION_SCHEMA)
    drugs = spark.createDataFrame([(3, 5, D(2024, 1, 1))], "person_id long, drug_concept_id int, x date")
    features = stats.build_utilisation_features(_persons(spark), _visits(spark), _costs(spark), conditions, drugs)
    expected = spark.createDataFrame([
        (1, 2, 0, 0, 14, 4500.0, 2, 0),
        (2, 1, 1, 0, 1, 100.0, 0, 0),
        (3, 0, 2, 1, 0, 920.0, 0, 1),
        (4, 0, 0, 0, 0, 0.0, 0, 0), (5, 0, 0, 0, 0, 0.0, 0, 0), (6, 0, 0, 0, 0, 0.0, 0, 0),
    ], "person_id long, n_inpatient_visits long, n_outpatient_visits long, n_emergency_visits long,"
       " los_days_total long, total_cost double, n_conditions long, n_drugs long")
    assertDataFrameEqual(features, expected)


def test_thirty_day_readmissions(spark: SparkSession) -> None:
    persons = spark.createDataFrame([(10, 8532, 1950, 0, 0, False), (11, 8507, 1990, 0, 0, False),
                                     (12, 8507, 1990, 0, 0, False)], PERSON_SCHEMA)
    visits = spark.createDataFrame([
        (1, 10, 9201, D(2024, 1, 1), D(2024, 1, 10), None, None),
        (2, 10, 9201, D(2024, 1, 25), D(2024, 1, 30), None, None),   # 15 days after 1: 1 is readmitted
        (3, 10, 9202, D(2024, 2, 5), D(2024, 2, 5), None, None),     # outpatient: not a readmission of 2
        (4, 10, 9201, D(2024, 3, 5), D(2024, 3, 6), None, None),     # 35 days after 2
        (5, 10, 9201, D(2024, 4, 5), D(2024, 4, 7), None, None),     # day 30 after 4: 4 is readmitted
        (6, 11, 9201, D(2024, 11, 25), D(2024, 12, 1), None, None),  # last discharge with full follow-up
        (7, 11, 9201, D(2024, 12, 1), D(2024, 12, 20), None, None),  # same-day start: 6 is readmitted; no index
        (8, 12, 9201, D(2024, 6, 1), D(2024, 6, 3), None, None),
        (9, 12, 9203, D(2024, 6, 10), D(2024, 6, 10), None, None),   # emergency: not a readmission
    ], VISIT_SCHEMA)
    conditions = spark.createDataFrame([
        (10, 100, D(2024, 3, 1)), (10, 100, D(2024, 3, 2)),   # before discharge of 4 and 5 only
        (11, 100, D(2020, 1, 1)),
        (12, 200, D(2024, 6, 3)),                             # on the discharge day: counts
        (12, 0, D(2020, 1, 1)),
    ], CONDITION_SCHEMA)
    rates = stats.build_readmission_rates(visits, persons, conditions, as_of=D(2024, 12, 31))
    expected = spark.createDataFrame([
        ("overall", "all", 6, 3, 3, 2, 0.5),
        ("age_group", "65-79", 4, 2, 1, 1, 0.5),
        ("age_group", "18-34", 2, 1, 2, 1, 0.5),
        ("condition", "100", 3, 2, 2, 2, 2 / 3),
        ("condition", "200", 1, 0, 1, 0, 0.0),
    ], "stratum string, stratum_value string, index_stays long, readmissions long, index_persons long,"
       " readmitted_persons long, readmission_rate double")
    assertDataFrameEqual(rates, expected)


def test_chi_square_matches_scipy_without_continuity_correction(spark: SparkSession) -> None:
    rng = np.random.default_rng(7)
    people, records = [], []
    for person_id in range(80):
        female = bool(rng.random() < 0.5)
        people.append((person_id, 8532 if female else 8507, 1970, 0, 0, False))
        if rng.random() < (0.6 if female else 0.2):
            records.append((person_id, 1, D(2020, 1, 1)))
            records.append((person_id, 1, D(2021, 1, 1)))   # repeated records count once
        if rng.random() < 0.35:
            records.append((person_id, 2, D(2020, 1, 1)))
        if person_id < 3:
            records.append((person_id, 3, D(2020, 1, 1)))
    people += [(100, 0, 1970, 0, 0, False)]                  # unknown sex: not in the test
    records += [(100, 1, D(2020, 1, 1)), (100, 3, D(2020, 1, 1))]
    result = stats.build_chi_square(spark.createDataFrame(people, PERSON_SCHEMA),
                                    spark.createDataFrame(records, CONDITION_SCHEMA), top_n=2).collect()

    sexes = pd.Series({p[0]: p[1] for p in people if p[1] in (8507, 8532)})
    has = pd.DataFrame(records, columns=["person_id", "concept", "date"]).drop_duplicates(["person_id", "concept"])
    has = has[has["person_id"].isin(sexes.index)]
    top = has["concept"].value_counts().sort_index().sort_values(ascending=False, kind="stable").index[:2]
    assert sorted(r["concept_id"] for r in result) == sorted(top) == [1, 2]
    for row in result:
        carriers = set(has.loc[has["concept"] == row["concept_id"], "person_id"])
        table = pd.crosstab(sexes, sexes.index.isin(carriers))
        statistic, p_value, dof, _ = scipy_stats.chi2_contingency(table.to_numpy(), correction=False)
        assert row["statistic"] == pytest.approx(statistic, rel=1e-9)
        assert row["p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-12)
        assert row["dof"] == dof == 1
        assert (row["persons"], row["male_persons"], row["female_persons"]) == (
            len(carriers), sum(sexes[list(carriers)] == 8507), sum(sexes[list(carriers)] == 8532))


def test_correlation_matches_scipy_pearsonr(spark: SparkSession) -> None:
    rng = np.random.default_rng(11)
    n = 40
    visits = rng.poisson(3, n).astype(float)
    cost = visits * 250 + rng.normal(0, 300, n)
    drugs = rng.poisson(2, n).astype(float)
    rows = [(i, float(visits[i]), float(cost[i]), float(drugs[i]), 1.0) for i in range(n)]
    rows.append((n, None, 10.0, 1.0, 1.0))   # a null: the row is left out
    features = spark.createDataFrame(rows, "person_id long, visits double, cost double, drugs double, flat double")
    result = {(r["feature_a"], r["feature_b"]): r for r in stats.build_utilisation_correlation(
        features, feature_columns=["visits", "cost", "drugs", "flat"]).collect()}
    columns = {"visits": visits, "cost": cost, "drugs": drugs}
    assert len(result) == 6
    for a, b in [("visits", "cost"), ("visits", "drugs"), ("cost", "drugs")]:
        reference = scipy_stats.pearsonr(columns[a], columns[b])
        assert result[(a, b)]["r"] == pytest.approx(reference.statistic, rel=1e-9)
        assert result[(a, b)]["p_value"] == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-15)
        assert result[(a, b)]["n"] == n
    assert result[("visits", "flat")]["r"] is None and result[("visits", "flat")]["p_value"] is None


@pytest.mark.parametrize(("r", "n"), [(0.0, 10), (0.3, 3), (0.3, 50), (-0.45, 25), (0.9, 12), (0.999, 1000),
                                      (0.05, 100_000), (1.0, 5)])
def test_pearson_p_value_matches_scipy(r: float, n: int) -> None:
    df = n - 2
    t = math.inf if abs(r) == 1 else r * math.sqrt(df / (1 - r * r))
    expected = 2 * scipy_stats.t.sf(abs(t), df)
    assert stats.pearson_p_value(r, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_cost_anomalies_match_numpy_robust_z_within_visit_type(spark: SparkSession) -> None:
    # (visit type, care site, LOS days, charge)
    visit_rows = [
        # outpatient: site 6 far too expensive, site 7 below min_visits
        (9202, 1, 0, 100.0), (9202, 1, 1, 110.0), (9202, 1, 2, 90.0),
        (9202, 2, 1, 120.0), (9202, 2, 3, 115.0),
        (9202, 3, 2, 130.0), (9202, 3, 2, 125.0), (9202, 3, 4, 135.0),
        (9202, 4, 0, 95.0), (9202, 4, 1, 105.0),
        (9202, 5, 3, 140.0), (9202, 5, 5, 150.0),
        (9202, 6, 2, 1000.0), (9202, 6, 3, 1100.0),
        (9202, 7, 9, 5000.0),
        (9202, None, 1, 100.0),
        # inpatient, scored among inpatient stays only: LOS medians 3, 3, 6, 3 have MAD 0 (mean AD is used)
        (9201, 1, 3, 5000.0), (9201, 1, 3, 5000.0),
        (9201, 2, 3, 5100.0), (9201, 2, 3, 5100.0),
        (9201, 3, 3, 5200.0), (9201, 3, 9, 5300.0),
        (9201, 4, 3, 4900.0), (9201, 4, 3, 5100.0),
    ]
    visits = spark.createDataFrame(
        [(i, i % 4, kind, D(2024, 1, 1), D(2024, 1, 1) + dt.timedelta(days=los), site, None)
         for i, (kind, site, los, _) in enumerate(visit_rows)], VISIT_SCHEMA)
    costs = spark.createDataFrame([(i, i, "Visit", row[3], None) for i, row in enumerate(visit_rows)], COST_SCHEMA)
    result = stats.build_cost_anomalies(visits, costs, by="care_site_id", min_visits=2)

    frame = pd.DataFrame([r for r in visit_rows if r[1] is not None], columns=["kind", "site", "los", "charge"])
    medians = frame.groupby(["kind", "site"]).median()
    eligible = medians[frame.groupby(["kind", "site"]).size() >= 2]

    def robust_z(values: np.ndarray) -> np.ndarray:
        deviations = values - np.median(values)
        mad = np.median(np.abs(deviations))
        if mad > 0:
            return 0.6745 * deviations / mad
        return deviations / (np.sqrt(np.pi / 2) * np.mean(np.abs(deviations)))

    reference = {}
    for kind, group in eligible.groupby(level="kind"):
        for site, cost_z, los_z in zip(group.index.get_level_values("site"), robust_z(group["charge"].to_numpy()),
                                       robust_z(group["los"].to_numpy()), strict=True):
            reference[(kind, site)] = (medians.loc[(kind, site), "charge"], medians.loc[(kind, site), "los"],
                                       cost_z, los_z)
    rows = {(r["visit_concept_id"], r["care_site_id"]): r for r in result.collect()}
    assert set(rows) == set(reference) | {(9202, 7)}
    for key, (median_cost, median_los, cost_z, los_z) in reference.items():
        assert (rows[key]["median_cost"], rows[key]["median_los_days"]) == pytest.approx((median_cost, median_los))
        assert rows[key]["cost_robust_z"] == pytest.approx(cost_z, rel=1e-5)
        assert rows[key]["los_robust_z"] == pytest.approx(los_z, rel=1e-5)
    assert sorted(k for k, r in rows.items() if r["is_cost_anomaly"]) == [(9202, 6)]
    assert not any(r["is_los_anomaly"] for r in rows.values())
    assert (rows[(9202, 7)]["n_visits"], rows[(9202, 7)]["cost_robust_z"], rows[(9202, 7)]["los_robust_z"]) == (
        1, None, None)
    with pytest.raises(ValueError, match="by"):
        stats.build_cost_anomalies(visits, costs, by="person_id")


def test_chi_square_without_conditions_is_empty(spark: SparkSession) -> None:
    persons = spark.createDataFrame([(1, 8507), (2, 8532)], "person_id long, gender_concept_id int")
    conditions = spark.createDataFrame([], "person_id long, condition_concept_id int")
    result = stats.build_chi_square(persons, conditions)
    assert result.columns == ["concept_id", "persons", "male_persons", "female_persons", "statistic", "dof", "p_value"]
    assert result.count() == 0
