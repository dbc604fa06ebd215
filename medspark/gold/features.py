"""Per-person feature vectors (utilisation, cost, chronic burden, demographics) for patient segmentation.

Segmentation (``medspark.gold.segments``) clusters persons on numbers, so this module turns the research views
into one numeric row per person. Everything is a built-in Spark aggregation (no UDFs); the function is a pure
transform: the gold job reads the research tables, calls it and decides what to write.

All events present in the inputs are counted: filter visits, conditions, drugs and costs to the study window
before calling (research dates are shifted per person, so a fixed calendar window cuts persons unevenly).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from types import MappingProxyType

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.errors import UsageError

INPATIENT_VISIT = 9201  # Visit concept: Inpatient Visit
OUTPATIENT_VISIT = 9202  # Visit concept: Outpatient Visit
EMERGENCY_VISIT = 9203  # Visit concept: Emergency Room Visit
MALE = 8507  # Gender concept: MALE
AGE_CAP = 90  # HIPAA Safe Harbor: ages over 89 are reported as one category, 90

# Chronic condition -> standard concept ids that flag it. Source: the eight chronic conditions the synthetic
# generator draws (``medspark.synthetic.codes.CONDITIONS``, ``chronic=True``) and the standard SNOMED concept of
# each code in ``medspark/resources/vocabulary/concept.csv`` (the ICD-10-CM code of the same condition maps to the
# same standard concept through ``concept_relationship.csv`` "Maps to", so one id per condition covers all sources):
#   obesity 162864005 -> 4060985 (domain Observation: found in ``observation``, not ``condition_occurrence``),
#   hypertension 59621000 -> 320128 (ICD-10 I10 = 35207668 maps to it), type 2 diabetes 44054006 -> 201826,
#   hyperlipidemia 55822004 -> 432867, CKD stage 3 433144002 -> 443597, chronic congestive heart failure
#   88805009 -> 4229440, asthma 195967001 -> 317009, COPD 13645005 -> 2000000006 (a local standard concept:
#   the vocabulary subset lacks the Athena one; ICD-10 J44.9 = 2000000007 maps to it).
# Checked against the dev research views: persons per concept equal the generator's ground-truth prevalence.
# Real data would use the full descendant sets (concept_ancestor) instead of one concept per condition.
DEFAULT_CHRONIC_CONCEPTS: Mapping[str, tuple[int, ...]] = MappingProxyType({
    "type2_diabetes": (201826,),
    "hypertension": (320128,),
    "ckd": (443597,),
    "obesity": (4060985,),
    "heart_failure": (4229440,),
    "asthma": (317009,),
    "copd": (2000000006,),
    "hyperlipidemia": (432867,),
})

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def chronic_flag_columns(chronic_concepts: Mapping[str, Sequence[int]] = DEFAULT_CHRONIC_CONCEPTS) -> list[str]:
    """The flag column names :func:`build_person_features` adds, in output order (``flag_<name>``)."""
    return [f"flag_{name}" for name in chronic_concepts]


def person_feature_columns(chronic_concepts: Mapping[str, Sequence[int]] = DEFAULT_CHRONIC_CONCEPTS) -> list[str]:
    """All numeric feature columns of :func:`build_person_features` (every output column but ``person_id``)."""
    return [
        "age", "sex_male", "n_visits_inpatient", "n_visits_outpatient", "n_visits_emergency", "n_visits_other",
        "total_los_days", "total_cost", "n_chronic", *chronic_flag_columns(chronic_concepts), "n_drugs",
    ]


def _require_columns(frame: DataFrame, argument: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(f"{argument} lacks column(s) {missing}; it has {sorted(frame.columns)}")


def _check_chronic_concepts(chronic_concepts: Mapping[str, Sequence[int]]) -> None:
    for name, ids in chronic_concepts.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"chronic_concepts: name {name!r} is not a snake_case identifier (it names a column)")
        if isinstance(ids, str | bytes) or not ids or not all(isinstance(i, int) and i > 0 for i in ids):
            raise UsageError(f"chronic_concepts[{name!r}] must be a non-empty sequence of positive concept ids")


def _count_where(condition: Column) -> Column:
    return sf.sum(sf.when(condition, sf.lit(1)).otherwise(sf.lit(0))).cast("long")


def build_person_features(
    person: DataFrame,
    visits: DataFrame,
    conditions: DataFrame,
    drugs: DataFrame,
    costs: DataFrame,
    *,
    as_of: date,
    chronic_concepts: Mapping[str, Sequence[int]] = DEFAULT_CHRONIC_CONCEPTS,
    observations: DataFrame | None = None,
    cost_column: str = "total_cost",
) -> DataFrame:
    """One row of numeric features per person of ``person``; persons without events get zeros.

    Args:
        person: ``person_id``, ``year_of_birth``, ``gender_concept_id``, ``age_over_89`` (boolean).
        visits: visit_occurrence: ``visit_occurrence_id``, ``person_id``, ``visit_concept_id``,
            ``visit_start_date``, ``visit_end_date``.
        conditions: condition_occurrence: ``person_id``, ``condition_concept_id``.
        drugs: drug_exposure: ``person_id``, ``drug_concept_id``.
        costs: cost: ``cost_event_id``, ``cost_domain_id`` and ``cost_column``. Only rows with
            ``cost_domain_id = 'Visit'`` whose ``cost_event_id`` is a visit of ``visits`` count.
        as_of: the date ages are computed at (its year minus ``year_of_birth``).
        chronic_concepts: condition name -> standard concept ids; one ``flag_<name>`` column each.
        observations: observation: ``person_id``, ``observation_concept_id``. Chronic concepts of the Observation
            domain (obesity, 4060985) are only found here; without it their flags are 0.
        cost_column: the cost column summed into ``total_cost`` (OMOP has ``total_charge``, ``total_cost``,
            ``total_paid``).

    Returns:
        ``person_id long``, ``age int`` (as_of year - year_of_birth, capped at 90; 90 when ``age_over_89``),
        ``sex_male int`` (1 when gender is 8507, else 0), ``n_visits_inpatient``/``_outpatient``/``_emergency``
        ``long`` (visit concepts 9201/9202/9203), ``n_visits_other long`` (any other or null visit concept),
        ``total_los_days long`` (sum of end - start days over inpatient visits; a same-day stay adds 0),
        ``total_cost double`` (0 when none), ``n_chronic int`` (number of flags set), ``flag_<name> int`` (0/1)
        per chronic condition in mapping order, ``n_drugs long`` (exact count of distinct drug concepts, 0 =
        unmapped excluded).

    Raises:
        UsageError: an input lacks a needed column, or ``chronic_concepts`` is malformed.
    """
    _require_columns(person, "person", ["person_id", "year_of_birth", "gender_concept_id", "age_over_89"])
    _require_columns(visits, "visits", ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                                        "visit_end_date"])
    _require_columns(conditions, "conditions", ["person_id", "condition_concept_id"])
    _require_columns(drugs, "drugs", ["person_id", "drug_concept_id"])
    _require_columns(costs, "costs", ["cost_event_id", "cost_domain_id", cost_column])
    if observations is not None:
        _require_columns(observations, "observations", ["person_id", "observation_concept_id"])
    _check_chronic_concepts(chronic_concepts)

    computed_age = sf.lit(as_of.year) - sf.col("year_of_birth")
    persons = person.select(
        sf.col("person_id").cast("long").alias("person_id"),
        sf.when(sf.coalesce(sf.col("age_over_89"), sf.lit(False)), sf.lit(AGE_CAP))
        .otherwise(sf.least(computed_age, sf.lit(AGE_CAP))).cast("int").alias("age"),
        sf.when(sf.col("gender_concept_id") == MALE, 1).otherwise(0).cast("int").alias("sex_male"),
    )

    visit_concept = sf.coalesce(sf.col("visit_concept_id"), sf.lit(0))
    inpatient = visit_concept == INPATIENT_VISIT
    los = sf.coalesce(sf.datediff(sf.col("visit_end_date"), sf.col("visit_start_date")), sf.lit(0))
    visit_features = visits.groupBy("person_id").agg(
        _count_where(inpatient).alias("n_visits_inpatient"),
        _count_where(visit_concept == OUTPATIENT_VISIT).alias("n_visits_outpatient"),
        _count_where(visit_concept == EMERGENCY_VISIT).alias("n_visits_emergency"),
        _count_where(~visit_concept.isin(INPATIENT_VISIT, OUTPATIENT_VISIT, EMERGENCY_VISIT))
        .alias("n_visits_other"),
        sf.sum(sf.when(inpatient, los).otherwise(sf.lit(0))).cast("long").alias("total_los_days"),
    )

    visit_costs = costs.where(sf.col("cost_domain_id") == "Visit").select(
        sf.col("cost_event_id").alias("visit_occurrence_id"), sf.col(cost_column).cast("double").alias("_cost"))
    cost_features = visit_costs.join(visits.select("visit_occurrence_id", "person_id"), "visit_occurrence_id") \
        .groupBy("person_id").agg(sf.sum("_cost").alias("total_cost"))

    all_ids = sorted({int(i) for ids in chronic_concepts.values() for i in ids})
    events = conditions.select("person_id", sf.col("condition_concept_id").alias("_concept_id"))
    if observations is not None:
        events = events.unionByName(
            observations.select("person_id", sf.col("observation_concept_id").alias("_concept_id")))
    flag_columns = chronic_flag_columns(chronic_concepts)
    flags = [
        sf.max(sf.when(sf.col("_concept_id").isin(*[int(i) for i in ids]), 1).otherwise(0)).cast("int").alias(col)
        for col, ids in zip(flag_columns, chronic_concepts.values(), strict=True)
    ]
    chronic_features = (
        events.where(sf.col("_concept_id").isin(*all_ids)).groupBy("person_id").agg(*flags)
        if flags else None
    )

    drug_features = drugs.where(sf.coalesce(sf.col("drug_concept_id"), sf.lit(0)) != 0).groupBy("person_id") \
        .agg(sf.count_distinct("drug_concept_id").cast("long").alias("n_drugs"))

    joined = persons.join(visit_features, "person_id", "left").join(cost_features, "person_id", "left")
    if chronic_features is not None:
        joined = joined.join(chronic_features, "person_id", "left")
    joined = joined.join(drug_features, "person_id", "left")

    def zero(name: str, dtype: str) -> Column:
        return sf.coalesce(sf.col(name), sf.lit(0)).cast(dtype).alias(name)

    n_chronic = sf.lit(0)
    for col in flag_columns:
        n_chronic = n_chronic + sf.coalesce(sf.col(col), sf.lit(0))
    return joined.select(
        "person_id", "age", "sex_male",
        *[zero(c, "long") for c in ("n_visits_inpatient", "n_visits_outpatient", "n_visits_emergency",
                                    "n_visits_other", "total_los_days")],
        zero("total_cost", "double"),
        n_chronic.cast("int").alias("n_chronic"),
        *[zero(c, "int") for c in flag_columns],
        zero("n_drugs", "long"),
    )
