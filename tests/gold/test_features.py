"""Tests of medspark.gold.features: literal research rows in, literal feature rows out; the default chronic concept
ids checked against the vocabulary files and the generator's code table."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from medspark.errors import UsageError
from medspark.gold.features import (
    DEFAULT_CHRONIC_CONCEPTS,
    build_person_features,
    person_feature_columns,
)
from medspark.synthetic import codes

VOCABULARY = Path(__file__).resolve().parents[2] / "medspark" / "resources" / "vocabulary"

PERSON_DDL = "person_id long, gender_concept_id int, year_of_birth int, age_over_89 boolean"
VISIT_DDL = ("visit_occurrence_id long, person_id long, visit_concept_id int, visit_start_date date, "
             "visit_end_date date")
CONDITION_DDL = "person_id long, condition_concept_id int"
OBSERVATION_DDL = "person_id long, observation_concept_id int"
DRUG_DDL = "person_id long, drug_concept_id int"
COST_DDL = "cost_id long, cost_event_id long, cost_domain_id string, total_cost double, total_charge double"
FEATURES_DDL = (
    "person_id long, age int, sex_male int, n_visits_inpatient long, n_visits_outpatient long, "
    "n_visits_emergency long, n_visits_other long, total_los_days long, total_cost double, n_chronic int, "
    "flag_diabetes int, flag_hypertension int, flag_obesity int, n_drugs long"
)
# Two ids for hypertension: a person flagged through either counts once.
CHRONIC = {"diabetes": [201826], "hypertension": [320128, 35207668], "obesity": [4060985]}
AS_OF = date(2025, 6, 30)


@pytest.fixture
def inputs(spark):
    d = date
    person = spark.createDataFrame([
        (1, 8507, 1980, False),
        (2, 8532, 1936, True),  # masked over-89: 90 whatever the year says
        (3, 8532, 1934, False),  # 91 at as_of: capped at 90
        (4, 0, 2020, False),  # no events at all
    ], PERSON_DDL)
    visits = spark.createDataFrame([
        (10, 1, 9201, d(2024, 1, 1), d(2024, 1, 5)),  # 4 days
        (11, 1, 9201, d(2024, 3, 10), d(2024, 3, 10)),  # same-day stay: 0 days
        (12, 1, 9202, d(2024, 2, 1), d(2024, 2, 1)),
        (13, 1, 9203, d(2024, 2, 2), d(2024, 2, 3)),  # ER overnight: not a stay
        (14, 1, 581477, d(2024, 4, 1), d(2024, 4, 1)),  # home visit: other
        (20, 2, 9202, d(2023, 1, 1), d(2023, 1, 1)),
        (21, 2, None, d(2023, 2, 1), d(2023, 2, 1)),  # unknown visit concept: other
        (30, 3, 9201, d(2023, 5, 1), d(2023, 5, 8)),  # 7 days
    ], VISIT_DDL)
    conditions = spark.createDataFrame([
        (1, 201826), (1, 201826), (1, 0), (1, 255848),
        (2, 35207668),
        (3, 320128),
    ], CONDITION_DDL)
    observations = spark.createDataFrame([(3, 4060985), (2, 4036803)], OBSERVATION_DDL)
    drugs = spark.createDataFrame([
        (1, 1503297), (1, 1503297), (1, 1308216), (1, 0),
        (2, 0),
        (3, 1503297), (3, None),
    ], DRUG_DDL)
    costs = spark.createDataFrame([
        (1, 10, "Visit", 1000.0, 1500.0),
        (2, 10, "Visit", 250.5, 300.0),  # a second cost row of the same visit adds up
        (3, 12, "Visit", 80.0, 90.0),
        (4, 12, "Drug", 999.0, 999.0),  # not a visit cost
        (5, 99, "Visit", 5000.0, 5000.0),  # no such visit
        (6, 20, "Visit", 60.0, 70.0),
    ], COST_DDL)
    return {"person": person, "visits": visits, "conditions": conditions, "drugs": drugs, "costs": costs,
            "observations": observations}


def test_build_person_features_literal_rows(spark, inputs):
    features = build_person_features(**inputs, as_of=AS_OF, chronic_concepts=CHRONIC)
    expected = spark.createDataFrame([
        (1, 45, 1, 2, 1, 1, 1, 4, 1330.5, 1, 1, 0, 0, 2),
        (2, 90, 0, 0, 1, 0, 1, 0, 60.0, 1, 0, 1, 0, 0),
        (3, 90, 0, 1, 0, 0, 0, 7, 0.0, 2, 0, 1, 1, 1),
        (4, 5, 0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0),
    ], FEATURES_DDL)
    assertDataFrameEqual(features, expected)
    assert features.columns == expected.columns
    assert features.columns[1:] == person_feature_columns(CHRONIC)


def test_observation_domain_concepts_need_observations_and_cost_column_is_chosen(spark, inputs):
    del inputs["observations"]
    features = build_person_features(**inputs, as_of=AS_OF, chronic_concepts=CHRONIC, cost_column="total_charge")
    got = features.select("person_id", "total_cost", "n_chronic", "flag_obesity")
    expected = spark.createDataFrame([(1, 1890.0, 1, 0), (2, 70.0, 1, 0), (3, 0.0, 1, 0), (4, 0.0, 0, 0)],
                                     "person_id long, total_cost double, n_chronic int, flag_obesity int")
    assertDataFrameEqual(got, expected)


@pytest.mark.parametrize("chronic", [{"Bad Name": [1]}, {"ok": []}, {"ok": ["320128"]}, {"ok": [0]}])
def test_malformed_chronic_concepts_are_usage_errors(inputs, chronic):
    with pytest.raises(UsageError, match="chronic_concepts"):
        build_person_features(**inputs, as_of=AS_OF, chronic_concepts=chronic)


def test_missing_input_column_names_the_argument(inputs):
    inputs["costs"] = inputs["costs"].drop("cost_domain_id")
    with pytest.raises(UsageError, match=r"costs lacks column\(s\) \['cost_domain_id'\]"):
        build_person_features(**inputs, as_of=AS_OF)


def _read_csv(name: str) -> list[dict[str, str]]:
    with open(VOCABULARY / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_default_chronic_concepts_are_the_standard_concepts_of_the_generator_codes() -> None:
    concepts = {int(row["concept_id"]): row for row in _read_csv("concept.csv")}
    maps_to = {(int(r["concept_id_1"]), int(r["concept_id_2"])) for r in _read_csv("concept_relationship.csv")
               if r["relationship_id"] == "Maps to"}
    by_code = {(row["vocabulary_id"], row["concept_code"]): cid for cid, row in concepts.items()}
    generated = {c.key: c for c in codes.CONDITIONS if c.chronic}
    assert set(DEFAULT_CHRONIC_CONCEPTS) == set(generated)
    for key, ids in DEFAULT_CHRONIC_CONCEPTS.items():
        assert len(ids) == 1, key
        concept = concepts[ids[0]]
        assert (concept["vocabulary_id"], concept["concept_code"], concept["standard_concept"]) == \
            ("SNOMED", generated[key].snomed, "S"), key
        # The ICD-10-CM code HL7 and X12 carry either is that concept or maps to it.
        icd = by_code[("ICD10CM", generated[key].icd10)]
        assert icd == ids[0] or (icd, ids[0]) in maps_to, key
