"""Cohort statistics over the research views: an OHDSI-Achilles-like characterisation of the population.

Researchers get the shape of the data before asking for anything finer: who is in it (persons by birth year, sex,
race, ethnicity), how long they are observed, how common each condition, drug and procedure is (prevalence per
1,000 by age group and sex, new persons per month), how care is used (visits, length of stay, cost, 30-day
readmissions) and a few tests and correlations between them, plus care sites or providers whose costs stand out.

Every function is a transform over explicit DataFrames and returns raw, unsuppressed counts. ``PUBLICATIONS`` says,
per output, which columns are counts, which rates derive from which counts and which columns form a group with a
published margin, so the job can call ``suppress_small_cells(table, **PUBLICATIONS[name].suppression_args())``
before writing. Dates in the research views are shifted per person, so "today" is always the ``as_of`` argument.

Conventions (shared by all functions):
    * Concept id 0 (unmapped) and null concepts are excluded from event statistics.
    * Age = ``as_of.year - year_of_birth`` (or the discharge year for readmissions; birth month and day are not
      used), at least 90 when ``age_over_89`` is true. Age groups: 0-17, 18-34, 35-49, 50-64, 65-79, 80+; persons
      born after ``as_of`` are left out of age-stratified denominators; unknown year of birth is ``unknown``.
    * Sex strata are ``gender_concept_id`` as a string (8507 male, 8532 female, anything else as its id, null
      as ``"0"``).
    * Length of a period or stay in days = ``datediff(end, start)`` (a same-day visit is 0 days).
    * Percentiles are exact (Spark ``percentile``: linear interpolation between closest ranks, the same as
      ``numpy.percentile``'s default), never ``percentile_approx``.

``build_chi_square`` and ``build_utilisation_correlation`` wrap ``pyspark.ml.stat``, which computes eagerly: they run
Spark jobs when called (the correlation collects only its k×k matrix and the row count).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import array_to_vector
from pyspark.ml.stat import ChiSquareTest, Correlation
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf

INPATIENT = 9201
OUTPATIENT = 9202
EMERGENCY = 9203
MALE = 8507
FEMALE = 8532
AGE_GROUPS = (("0-17", 0, 17), ("18-34", 18, 34), ("35-49", 35, 49), ("50-64", 50, 64), ("65-79", 65, 79),
              ("80+", 80, None))
PERSON_DIMENSIONS = ("year_of_birth", "gender_concept_id", "race_concept_id", "ethnicity_concept_id")
UTILISATION_FEATURES = ("n_inpatient_visits", "n_outpatient_visits", "n_emergency_visits", "los_days_total",
                        "total_cost", "n_conditions", "n_drugs")
ROBUST_Z_FACTOR = 0.6745  # Iglewicz & Hoaglin: makes the MAD of a normal sample comparable to its sd
MEANAD_FACTOR = 1.253314  # sqrt(pi/2): the same for the mean absolute deviation, used when the MAD is 0
COST_ANOMALY_UNITS = ("care_site_id", "provider_id")


@dataclass(frozen=True)
class Publication:
    """What ``suppress_small_cells`` needs to know about one output of this module."""

    count_columns: tuple[str, ...]
    rate_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group_columns: tuple[str, ...] | None = None

    def suppression_args(self) -> dict[str, Any]:
        """Keyword arguments for ``medspark.gold.suppression.suppress_small_cells`` (all but ``threshold``)."""
        return {"count_columns": list(self.count_columns),
                "rate_columns": {rate: list(counts) for rate, counts in self.rate_columns.items()},
                "group_columns": list(self.group_columns) if self.group_columns else None}


_PERIOD_STATS = ("mean_days", "min_days", "p10_days", "p25_days", "median_days", "p75_days", "p90_days", "max_days")
_READMISSION_COUNTS = ("index_stays", "readmissions", "index_persons", "readmitted_persons")
_CHI_SQUARE_COUNTS = ("persons", "male_persons", "female_persons")

PUBLICATIONS: dict[str, Publication] = {
    # the values of one dimension add up to all persons, which is published
    "person_counts": Publication(("persons",), group_columns=("dimension",)),
    "observation_period_stats": Publication(
        ("n_periods", "n_persons"), {s: ("n_periods", "n_persons") for s in _PERIOD_STATS}),
    # age groups (and sexes) of a concept add up to its overall row
    "prevalence": Publication(
        ("persons", "denominator"), {"prevalence_per_1000": ("persons", "denominator")},
        group_columns=("concept_id", "stratum")),
    # the months of a concept add up to its persons ever recorded (the overall prevalence numerator)
    "monthly_incidence": Publication(("new_persons",), group_columns=("concept_id",)),
    "visit_stats": Publication(
        ("n_visits", "n_persons", "n_costed_visits"),
        {**{s: ("n_visits", "n_persons") for s in ("mean_los_days", "median_los_days", "p90_los_days")},
         **{s: ("n_costed_visits", "n_persons") for s in ("cost_sum", "cost_mean", "cost_per_person_year")}}),
    # age groups add up to the overall row; condition rows overlap (no margin) and are over-protected by this
    "readmission_rates": Publication(
        _READMISSION_COUNTS, {"readmission_rate": _READMISSION_COUNTS}, group_columns=("stratum",)),
    "chi_square": Publication(_CHI_SQUARE_COUNTS, {"statistic": _CHI_SQUARE_COUNTS, "p_value": _CHI_SQUARE_COUNTS}),
    "utilisation_correlation": Publication(("n",), {"r": ("n",), "p_value": ("n",)}),
    "cost_anomalies": Publication(
        ("n_visits", "n_persons", "n_costed_visits"),
        {c: ("n_visits", "n_persons") for c in ("median_cost", "median_los_days", "cost_robust_z", "los_robust_z",
                                                 "is_cost_anomaly", "is_los_anomaly")}),
}


# --- helpers ---------------------------------------------------------------------------------------------------

def _require(frame: DataFrame, argument: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{argument}: missing column(s) {missing} (has {frame.columns})")


def _age(year: Column, persons: DataFrame) -> Column:
    """Age in whole years at ``year`` from ``year_of_birth`` (at least 90 for ``age_over_89``)."""
    age = year - sf.col("year_of_birth")
    if "age_over_89" in persons.columns:
        age = sf.when(sf.col("age_over_89"), sf.greatest(age, sf.lit(90))).otherwise(age)
    return age


def age_group(age: Column) -> Column:
    """The age group label of an age in years (``AGE_GROUPS``); null for a negative or unknown age."""
    label: Column | None = None
    for name, low, high in AGE_GROUPS:
        test = age >= low if high is None else age.between(low, high)
        label = sf.when(test, sf.lit(name)) if label is None else label.when(test, sf.lit(name))
    assert label is not None
    return label


def _sex(gender: Column) -> Column:
    return sf.coalesce(gender.cast("string"), sf.lit("0"))


def _events(events: DataFrame, concept_column: str, argument: str = "events") -> DataFrame:
    """``person_id, concept_id`` (plus the other columns) of records with a mapped concept."""
    _require(events, argument, ["person_id", concept_column])
    concept = sf.col(concept_column)
    return events.where(concept.isNotNull() & (concept != 0)).withColumn("concept_id", concept.cast("int"))


def _visit_costs(costs: DataFrame, cost_column: str) -> DataFrame:
    """``visit_occurrence_id, visit_cost``: the sum of a visit's cost rows (null when all are null)."""
    _require(costs, "costs", ["cost_event_id", "cost_domain_id", cost_column])
    return costs.where(sf.col("cost_domain_id") == "Visit") \
        .groupBy(sf.col("cost_event_id").alias("visit_occurrence_id")) \
        .agg(sf.sum(sf.col(cost_column).cast("double")).alias("visit_cost"))


def _length_days(end: str, start: str) -> Column:
    return sf.datediff(sf.col(end), sf.col(start))


# --- population --------------------------------------------------------------------------------------------------

def build_person_counts(person: DataFrame) -> DataFrame:
    """Persons by each of year of birth, gender, race and ethnicity (one long table, Achilles analyses 2-5).

    Args:
        person: research ``person`` (``person_id`` and the ``PERSON_DIMENSIONS`` columns).

    Returns:
        ``dimension string`` (a ``PERSON_DIMENSIONS`` column name), ``value string`` (its value; null when
        unknown), ``persons long`` (distinct persons). Suppression: ``PUBLICATIONS["person_counts"]``.
    """
    _require(person, "person", ["person_id", *PERSON_DIMENSIONS])
    cells = sf.array(*[sf.struct(sf.lit(d).alias("dimension"), sf.col(d).cast("string").alias("value"))
                       for d in PERSON_DIMENSIONS])
    return person.select("person_id", sf.explode(cells).alias("cell")).select("person_id", "cell.*") \
        .groupBy("dimension", "value").agg(sf.count_distinct("person_id").alias("persons"))


PYRAMID_BAND_YEARS = 5
PYRAMID_TOP_BAND = 90  # HIPAA Safe Harbor: ages over 89 are one category


def build_person_pyramid(person: DataFrame, *, as_of: dt.date) -> DataFrame:
    """Persons by age band and sex at ``as_of`` (the population pyramid), zero cells included.

    Age is ``as_of.year - year_of_birth`` (90+ for ``age_over_89``), in 5-year bands ``0-4`` ... ``85-89`` and
    ``90+``; a person without a usable age is in band ``unknown``. Sex is the gender concept id as text (``0`` when
    unknown), as in the prevalence strata.

    Returns:
        ``age_band string, band_start int`` (null for ``unknown``), ``sex string, persons long``: every band seen
        crossed with every sex seen. Suppression: both margins are known (``person_counts`` publishes the sex totals,
        and its year-of-birth counts add up to the band totals), so use
        ``suppression.suppress_crossed_cells(..., margins=[["age_band"], ["sex"]])``.
    """
    _require(person, "person", ["person_id", "gender_concept_id", "year_of_birth"])
    age = _age(sf.lit(as_of.year), person)
    start = sf.when(age >= PYRAMID_TOP_BAND, sf.lit(PYRAMID_TOP_BAND)) \
        .when(age >= 0, sf.floor(age / PYRAMID_BAND_YEARS) * PYRAMID_BAND_YEARS).cast("int")
    label = sf.when(start.isNull(), sf.lit("unknown")) \
        .when(start == PYRAMID_TOP_BAND, sf.lit(f"{PYRAMID_TOP_BAND}+")) \
        .otherwise(sf.concat(start.cast("string"), sf.lit("-"), (start + PYRAMID_BAND_YEARS - 1).cast("string")))
    cells = person.select("person_id", start.alias("band_start"), label.alias("age_band"),
                          _sex(sf.col("gender_concept_id")).alias("sex"))
    counts = cells.groupBy("age_band", "sex").agg(sf.count_distinct("person_id").alias("persons"))
    grid = cells.select("age_band", "band_start").distinct().crossJoin(cells.select("sex").distinct())
    # joined on the label: band_start is null for "unknown", and null never equals null in a join
    return grid.join(counts, ["age_band", "sex"], "left") \
        .select("age_band", "band_start", "sex", sf.coalesce("persons", sf.lit(0)).cast("long").alias("persons"))


def build_observation_period_stats(observation_period: DataFrame) -> DataFrame:
    """Distribution of observation period lengths in days (Achilles analysis 105), one row.

    Args:
        observation_period: research ``observation_period`` (``person_id``, ``observation_period_start_date``,
            ``observation_period_end_date``).

    Returns:
        ``n_periods long, n_persons long, mean_days double, min_days int, p10_days, p25_days, median_days,
        p75_days, p90_days double`` (exact percentiles), ``max_days int``. Suppression:
        ``PUBLICATIONS["observation_period_stats"]``.
    """
    _require(observation_period, "observation_period",
             ["person_id", "observation_period_start_date", "observation_period_end_date"])
    periods = observation_period.select(
        "person_id", _length_days("observation_period_end_date", "observation_period_start_date").alias("days"))
    quantiles = sf.percentile("days", [0.1, 0.25, 0.5, 0.75, 0.9])
    distribution = periods.agg(
        sf.count(sf.lit(1)).alias("n_periods"), sf.avg("days").alias("mean_days"), sf.min("days").alias("min_days"),
        quantiles.alias("_q"), sf.max("days").alias("max_days"))
    # exact distinct counts in their own aggregation (see ENVIRONMENT.md: mixing them with percentiles is slow)
    persons = periods.agg(sf.count_distinct("person_id").alias("n_persons"))
    q = sf.col("_q")
    return distribution.crossJoin(persons).select(
        "n_periods", "n_persons", "mean_days", "min_days",
        q[0].alias("p10_days"), q[1].alias("p25_days"), q[2].alias("median_days"), q[3].alias("p75_days"),
        q[4].alias("p90_days"), "max_days")


# --- events ------------------------------------------------------------------------------------------------------

def build_prevalence(events: DataFrame, person: DataFrame, *, concept_column: str, as_of: dt.date,
                     concepts: DataFrame, date_column: str | None = None) -> DataFrame:
    """Period prevalence per 1,000 persons of each concept: persons with at least one record, overall, by age group
    and by sex (Achilles analyses 400/700/600-like), for any event table (condition, drug, procedure...).

    The denominator of a stratum is every person of ``person`` in it, recorded or not, so concepts x strata form a
    full grid (a stratum without a case has ``persons`` 0). Records of persons missing from ``person`` are ignored.

    Args:
        events: an event table with ``person_id`` and ``concept_column`` (and ``date_column`` if given).
        person: research ``person`` (``person_id, gender_concept_id, year_of_birth``, optional ``age_over_89``).
        concept_column: e.g. ``condition_concept_id``.
        as_of: the date ages are computed at; with ``date_column``, also the last date a record counts.
        concepts: ``concept_id int, concept_name string`` (other columns ignored).
        date_column: e.g. ``condition_start_date``; ``None`` counts every record.

    Returns:
        ``concept_id int, concept_name string, stratum string`` (``overall``, ``age_group``, ``sex``),
        ``stratum_value string`` (``all``, an age group label or ``unknown``, a gender concept id),
        ``persons long, denominator long, prevalence_per_1000 double``. Suppression: ``PUBLICATIONS["prevalence"]``.
    """
    _require(person, "person", ["person_id", "gender_concept_id", "year_of_birth"])
    _require(concepts, "concepts", ["concept_id", "concept_name"])
    recorded = _events(events, concept_column)
    if date_column is not None:
        _require(events, "events", [date_column])
        recorded = recorded.where(sf.col(date_column) <= sf.lit(as_of))
    age = _age(sf.lit(as_of.year), person)
    strata = person.where(age.isNull() | (age >= 0)).select(
        "person_id",
        sf.explode(sf.array(
            sf.struct(sf.lit("overall").alias("stratum"), sf.lit("all").alias("stratum_value")),
            sf.struct(sf.lit("age_group").alias("stratum"),
                      sf.coalesce(age_group(age), sf.lit("unknown")).alias("stratum_value")),
            sf.struct(sf.lit("sex").alias("stratum"), _sex(sf.col("gender_concept_id")).alias("stratum_value")),
        )).alias("s")).select("person_id", "s.*")
    denominators = strata.groupBy("stratum", "stratum_value").agg(sf.count_distinct("person_id").alias("denominator"))
    cases = recorded.select("person_id", "concept_id").distinct() \
        .join(strata.where(sf.col("stratum") == "overall").select("person_id"), "person_id")
    numerators = cases.join(strata, "person_id").groupBy("concept_id", "stratum", "stratum_value") \
        .agg(sf.count(sf.lit(1)).alias("persons"))  # one row per person and stratum: exact
    names = concepts.select(sf.col("concept_id").cast("int").alias("concept_id"), "concept_name")
    return cases.select("concept_id").distinct().crossJoin(denominators) \
        .join(numerators, ["concept_id", "stratum", "stratum_value"], "left") \
        .join(names, "concept_id", "left") \
        .select("concept_id", "concept_name", "stratum", "stratum_value",
                sf.coalesce(sf.col("persons"), sf.lit(0)).cast("long").alias("persons"),
                sf.col("denominator").cast("long").alias("denominator")) \
        .withColumn("prevalence_per_1000", sf.col("persons") * 1000.0 / sf.col("denominator"))


def build_monthly_incidence(events: DataFrame, *, concept_column: str, date_column: str) -> DataFrame:
    """New persons per concept and calendar month: persons whose first-ever record of the concept falls in it.

    "First ever" is first in the data: a person whose history starts with a chronic condition counts in the
    month of that first record (no washout or prior-observation requirement).

    Args:
        events: an event table with ``person_id``, ``concept_column`` and ``date_column``.
        concept_column: e.g. ``drug_concept_id``.
        date_column: e.g. ``drug_exposure_start_date``; records without a date are ignored.

    Returns:
        ``concept_id int, month date`` (first day of the month), ``new_persons long``. Suppression:
        ``PUBLICATIONS["monthly_incidence"]``.
    """
    _require(events, "events", [date_column])
    firsts = _events(events, concept_column).where(sf.col(date_column).isNotNull()) \
        .groupBy("person_id", "concept_id").agg(sf.min(date_column).alias("first_date"))
    return firsts.groupBy("concept_id", sf.trunc("first_date", "month").alias("month")) \
        .agg(sf.count(sf.lit(1)).alias("new_persons"))


# --- utilisation -------------------------------------------------------------------------------------------------

def build_visit_stats(visits: DataFrame, costs: DataFrame, observation_period: DataFrame, *,
                      cost_column: str = "total_charge") -> DataFrame:
    """Visits, length of stay and cost by visit type; cost per person-year of observation.

    A visit's cost is the sum of its ``cost`` rows (``cost_domain_id = 'Visit'``, ``cost_event_id`` =
    ``visit_occurrence_id``); ``cost_mean`` is over visits that have a cost. Person-years are the whole population's
    (sum of observation period lengths / 365.25), so ``cost_per_person_year`` of a visit type is its total cost
    spread over everybody observed.

    Args:
        visits: research ``visit_occurrence`` (``visit_occurrence_id, person_id, visit_concept_id,
            visit_start_date, visit_end_date``).
        costs: ``cost`` (``cost_event_id, cost_domain_id`` and ``cost_column``).
        observation_period: research ``observation_period``.
        cost_column: ``total_charge`` (what 837 claims carry), ``total_cost`` or ``total_paid``.

    Returns:
        ``visit_concept_id int, n_visits long, n_persons long, mean_los_days, median_los_days, p90_los_days double``
        (exact; visits without an end date left out), ``n_costed_visits long, cost_sum, cost_mean, person_years,
        cost_per_person_year double``. Suppression: ``PUBLICATIONS["visit_stats"]``.
    """
    _require(visits, "visits", ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                                "visit_end_date"])
    _require(observation_period, "observation_period",
             ["observation_period_start_date", "observation_period_end_date"])
    per_visit = visits.select("visit_occurrence_id", "person_id", "visit_concept_id",
                              _length_days("visit_end_date", "visit_start_date").alias("los")) \
        .join(_visit_costs(costs, cost_column), "visit_occurrence_id", "left")
    los_quantiles = sf.percentile("los", [0.5, 0.9])
    by_type = per_visit.groupBy("visit_concept_id").agg(
        sf.count(sf.lit(1)).alias("n_visits"), sf.avg("los").alias("mean_los_days"), los_quantiles.alias("_q"),
        sf.count("visit_cost").alias("n_costed_visits"), sf.sum("visit_cost").alias("cost_sum"),
        sf.avg("visit_cost").alias("cost_mean"))
    persons = per_visit.groupBy("visit_concept_id").agg(sf.count_distinct("person_id").alias("n_persons"))
    person_years = observation_period.agg(
        (sf.sum(_length_days("observation_period_end_date", "observation_period_start_date")) / 365.25)
        .cast("double").alias("person_years"))
    return by_type.join(persons, "visit_concept_id").crossJoin(person_years).select(
        "visit_concept_id", "n_visits", "n_persons", "mean_los_days",
        sf.col("_q")[0].alias("median_los_days"), sf.col("_q")[1].alias("p90_los_days"),
        "n_costed_visits", "cost_sum", "cost_mean", "person_years",
        (sf.col("cost_sum") / sf.col("person_years")).alias("cost_per_person_year"))


def build_readmission_rates(visits: DataFrame, person: DataFrame, conditions: DataFrame, *, as_of: dt.date,
                            window_days: int = 30) -> DataFrame:
    """30-day all-cause readmission: share of inpatient stays followed by another inpatient stay of the same person
    starting within ``window_days`` days after discharge; overall, by age group and by prior condition.

    Index stays: inpatient visits (9201) with a start and end date, discharged at least ``window_days`` before
    ``as_of`` (so every index stay has its full follow-up); every such stay is an index, including one that is
    itself a readmission. A readmission is another inpatient visit starting on the discharge day up to
    ``window_days`` days later (a same-day start, e.g. a transfer, counts; planned readmissions and deaths are not
    distinguished). Age is at the discharge year. The condition stratum holds, per condition concept, the index
    stays of persons with a record of it starting on or before the discharge date (strata overlap).

    Args:
        visits: research ``visit_occurrence``.
        person: research ``person`` (``person_id, year_of_birth``, optional ``age_over_89``).
        conditions: research ``condition_occurrence`` (``person_id, condition_concept_id, condition_start_date``).
        as_of: the last date of follow-up.
        window_days: length of the follow-up window.

    Returns:
        ``stratum string`` (``overall``, ``age_group``, ``condition``), ``stratum_value string`` (``all``, an age
        group label or ``unknown``, a condition concept id), ``index_stays long, readmissions long, index_persons
        long, readmitted_persons long, readmission_rate double`` (readmissions / index_stays). Suppression:
        ``PUBLICATIONS["readmission_rates"]``.
    """
    _require(visits, "visits", ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                                "visit_end_date"])
    _require(person, "person", ["person_id", "year_of_birth"])
    _require(conditions, "conditions", ["condition_start_date"])
    stays = visits.where((sf.col("visit_concept_id") == INPATIENT) & sf.col("visit_start_date").isNotNull()
                         & sf.col("visit_end_date").isNotNull()) \
        .select("visit_occurrence_id", "person_id", "visit_start_date", "visit_end_date")
    index = stays.where(sf.col("visit_end_date") <= sf.lit(as_of - dt.timedelta(days=window_days)))
    later = stays.select(sf.col("person_id").alias("_r_person_id"), sf.col("visit_occurrence_id").alias("_r_id"),
                         sf.col("visit_start_date").alias("_r_start"))
    followed = (sf.col("person_id") == sf.col("_r_person_id")) & (sf.col("visit_occurrence_id") != sf.col("_r_id")) \
        & sf.col("_r_start").between(sf.col("visit_end_date"), sf.date_add(sf.col("visit_end_date"), window_days))
    readmitted = index.join(later, followed, "left_semi").select("visit_occurrence_id", sf.lit(1).alias("readmitted"))
    index_stays = index.join(readmitted, "visit_occurrence_id", "left") \
        .withColumn("readmitted", sf.coalesce(sf.col("readmitted"), sf.lit(0))) \
        .join(person.select("person_id", *[c for c in ("year_of_birth", "age_over_89") if c in person.columns]),
              "person_id", "left")
    index_stays = index_stays.withColumn("age_group", sf.coalesce(
        age_group(_age(sf.year("visit_end_date"), person)), sf.lit("unknown")))
    prior = _events(conditions, "condition_concept_id", "conditions") \
        .select(sf.col("person_id").alias("_c_person_id"), "concept_id", "condition_start_date")
    by_condition = index_stays.join(prior, (sf.col("person_id") == sf.col("_c_person_id"))
                                    & (sf.col("condition_start_date") <= sf.col("visit_end_date"))) \
        .select("visit_occurrence_id", "person_id", "readmitted", sf.lit("condition").alias("stratum"),
                sf.col("concept_id").cast("string").alias("stratum_value")).distinct()
    cells = index_stays.select("visit_occurrence_id", "person_id", "readmitted", sf.lit("overall").alias("stratum"),
                               sf.lit("all").alias("stratum_value")) \
        .unionByName(index_stays.select("visit_occurrence_id", "person_id", "readmitted",
                                        sf.lit("age_group").alias("stratum"),
                                        sf.col("age_group").alias("stratum_value"))) \
        .unionByName(by_condition)
    return cells.groupBy("stratum", "stratum_value").agg(
        sf.count(sf.lit(1)).alias("index_stays"), sf.sum("readmitted").cast("long").alias("readmissions"),
        sf.count_distinct("person_id").alias("index_persons"),
        sf.count_distinct(sf.when(sf.col("readmitted") == 1, sf.col("person_id"))).alias("readmitted_persons"),
    ).withColumn("readmission_rate", sf.col("readmissions") / sf.col("index_stays"))


# --- tests and correlations --------------------------------------------------------------------------------------

def build_chi_square(person: DataFrame, conditions: DataFrame, *, concept_ids: Sequence[int] | None = None,
                     top_n: int = 20) -> DataFrame:
    """Pearson's chi-square test of independence (no continuity correction) of having a condition vs sex.

    The cohort is the persons of ``person`` who are male (8507) or female (8532); a person "has" a condition with
    at least one record of it, ever. One 2x2 table per condition: ``pyspark.ml.stat.ChiSquareTest`` over a 0/1
    vector of the selected conditions per person with sex as the label (runs Spark jobs when called).

    Args:
        person: research ``person`` (``person_id, gender_concept_id``).
        conditions: research ``condition_occurrence`` (``person_id, condition_concept_id``).
        concept_ids: the conditions to test; ``None``: the ``top_n`` conditions with most persons in the cohort
            (ties by concept id). Conditions nobody in the cohort has are not tested.
        top_n: how many conditions when ``concept_ids`` is None.

    Returns:
        ``concept_id int, persons long, male_persons long, female_persons long`` (persons with the condition),
        ``statistic double, dof int, p_value double``. Suppression: ``PUBLICATIONS["chi_square"]`` (the statistic
        and a published margin give a small cell back, so it goes with the cells).
    """
    _require(person, "person", ["person_id", "gender_concept_id"])
    if concept_ids is None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ValueError(f"top_n: must be an integer >= 1, got {top_n!r}")
    cohort = person.where(sf.col("gender_concept_id").isin(MALE, FEMALE)).select(
        "person_id", (sf.col("gender_concept_id") == FEMALE).cast("double").alias("label"))
    cases = _events(conditions, "condition_concept_id", "conditions").select("person_id", "concept_id").distinct() \
        .join(cohort, "person_id")
    if concept_ids is not None:
        cases = cases.where(sf.col("concept_id").isin([int(c) for c in concept_ids]))
    counts = cases.groupBy("concept_id").agg(
        sf.count(sf.lit(1)).alias("persons"), sf.sum(1 - sf.col("label")).cast("long").alias("male_persons"),
        sf.sum("label").cast("long").alias("female_persons"))
    ranked = counts.withColumn("_rank", sf.row_number().over(
        Window.orderBy(sf.col("persons").desc(), sf.col("concept_id").asc())))  # few rows: one partition is fine
    if concept_ids is None:
        ranked = ranked.where(sf.col("_rank") <= top_n)
    selected = ranked.withColumn("feature_index", (sf.col("_rank") - 1).cast("int")).drop("_rank")
    if selected.isEmpty():  # no condition in the cohort: nothing to test (ChiSquareTest needs one feature)
        return person.sparkSession.createDataFrame(
            [], "concept_id int, persons long, male_persons long, female_persons long, statistic double, dof int, "
                "p_value double")
    k = selected.agg(sf.count(sf.lit(1)).alias("_k"))
    indices = cases.join(selected.select("concept_id", "feature_index"), "concept_id") \
        .groupBy("person_id").agg(sf.collect_set("feature_index").alias("_idx"))
    present = sf.coalesce(sf.col("_idx"), sf.array().cast("array<int>"))
    vectors = cohort.join(indices, "person_id", "left").crossJoin(k).select(
        "label", array_to_vector(sf.transform(
            sf.sequence(sf.lit(0), sf.col("_k") - 1),
            lambda i: sf.when(sf.array_contains(present, i), sf.lit(1.0)).otherwise(sf.lit(0.0)))).alias("features"))
    tested = ChiSquareTest.test(vectors, "features", "label", flatten=True)
    return selected.join(tested.withColumnRenamed("featureIndex", "feature_index"), "feature_index").select(
        "concept_id", "persons", "male_persons", "female_persons", "statistic",
        sf.col("degreesOfFreedom").cast("int").alias("dof"), sf.col("pValue").alias("p_value"))


def build_utilisation_features(person: DataFrame, visits: DataFrame, costs: DataFrame, conditions: DataFrame,
                               drugs: DataFrame, *, cost_column: str = "total_charge") -> DataFrame:
    """One row of utilisation features per person of ``person`` (zeros for persons without records).

    Returns:
        ``person_id long, n_inpatient_visits, n_outpatient_visits, n_emergency_visits long, los_days_total long``
        (inpatient days), ``total_cost double`` (sum of visit costs, see ``build_visit_stats``),
        ``n_conditions, n_drugs long`` (distinct mapped concepts).
    """
    _require(person, "person", ["person_id"])
    _require(visits, "visits", ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
                                "visit_end_date"])
    kind = sf.col("visit_concept_id")
    per_visit = visits.join(_visit_costs(costs, cost_column), "visit_occurrence_id", "left")
    usage = per_visit.groupBy("person_id").agg(
        sf.count(sf.when(kind == INPATIENT, 1)).alias("n_inpatient_visits"),
        sf.count(sf.when(kind == OUTPATIENT, 1)).alias("n_outpatient_visits"),
        sf.count(sf.when(kind == EMERGENCY, 1)).alias("n_emergency_visits"),
        sf.sum(sf.when(kind == INPATIENT, _length_days("visit_end_date", "visit_start_date"))).alias("los_days_total"),
        sf.sum("visit_cost").alias("total_cost"))
    diagnoses = _events(conditions, "condition_concept_id", "conditions").groupBy("person_id") \
        .agg(sf.count_distinct("concept_id").alias("n_conditions"))
    prescriptions = _events(drugs, "drug_concept_id", "drugs").groupBy("person_id") \
        .agg(sf.count_distinct("concept_id").alias("n_drugs"))
    joined = person.select("person_id").join(usage, "person_id", "left").join(diagnoses, "person_id", "left") \
        .join(prescriptions, "person_id", "left")
    return joined.select(
        "person_id",
        *[sf.coalesce(sf.col(c), sf.lit(0)).cast("long").alias(c)
          for c in ("n_inpatient_visits", "n_outpatient_visits", "n_emergency_visits", "los_days_total")],
        sf.coalesce(sf.col("total_cost"), sf.lit(0.0)).alias("total_cost"),
        *[sf.coalesce(sf.col(c), sf.lit(0)).cast("long").alias(c) for c in ("n_conditions", "n_drugs")])


def _regularised_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, by its continued fraction (DLMF 8.17.22) evaluated
    with the modified Lentz method; the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) keeps it in its fast region."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _regularised_beta(1.0 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny, eps = 1e-300, 1e-15
    f, c, d = tiny, tiny, 0.0
    for step in range(0, 2000):
        m = step // 2
        if step == 0:
            numerator = 1.0
        elif step % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + numerator / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        f *= c * d
        if step > 0 and abs(c * d - 1.0) < eps:
            break
    return math.exp(log_front) * f / a


def pearson_p_value(r: float, n: int) -> float | None:
    """Two-sided p-value of a Pearson correlation ``r`` over ``n`` pairs (t-test with n-2 degrees of freedom).

    With t = r sqrt((n-2)/(1-r²)), P(|T| > |t|) = I_{1-r²}((n-2)/2, 1/2). None when undefined (n < 3, r NaN).
    """
    if n < 3 or r is None or math.isnan(r):
        return None
    r = max(-1.0, min(1.0, r))
    return _regularised_beta(1.0 - r * r, (n - 2) / 2.0, 0.5)


def build_utilisation_correlation(features: DataFrame, *,
                                  feature_columns: Sequence[str] = UTILISATION_FEATURES) -> DataFrame:
    """Pearson correlation of every pair of utilisation features, with two-sided p-values.

    Rows with a null feature are left out (listwise). ``pyspark.ml.stat.Correlation`` computes the k×k matrix;
    this function collects it and the row count (two Spark jobs) and returns a small local DataFrame.

    Args:
        features: one row per person, e.g. ``build_utilisation_features``.
        feature_columns: numeric columns to correlate (at least two).

    Returns:
        ``feature_a string, feature_b string, r double, p_value double, n long``: one row per unordered pair, in
        ``feature_columns`` order (a before b). ``r`` and ``p_value`` are null for a constant feature.
        Suppression: ``PUBLICATIONS["utilisation_correlation"]``.
    """
    columns = list(feature_columns)
    if len(columns) < 2:
        raise ValueError(f"feature_columns: at least two columns are needed, got {columns}")
    _require(features, "features", columns)
    assembled = VectorAssembler(inputCols=columns, outputCol="_features", handleInvalid="skip").transform(
        features.select(*[sf.col(c).cast("double").alias(c) for c in columns])).select("_features")
    n = assembled.count()
    schema = "feature_a string, feature_b string, r double, p_value double, n long"
    session = features.sparkSession
    if n == 0:
        return session.createDataFrame([], schema)
    correlation = Correlation.corr(assembled, "_features", "pearson").head()
    assert correlation is not None  # one row whenever the input has rows
    matrix = correlation[0].toArray()
    rows = []
    for i, a in enumerate(columns):
        for j in range(i + 1, len(columns)):
            r = float(matrix[i, j])
            defined = not math.isnan(r)
            rows.append((a, columns[j], r if defined else None, pearson_p_value(r, n) if defined else None, n))
    return session.createDataFrame(rows, schema)


# --- outliers ----------------------------------------------------------------------------------------------------

def build_cost_anomalies(visits: DataFrame, costs: DataFrame, *, by: str = "care_site_id",
                         cost_column: str = "total_charge", threshold: float = 3.5,
                         min_visits: int = 1) -> DataFrame:
    """Care sites (or providers) whose median cost or length of stay per visit is far from their peers'.

    Units are compared within a visit type (an inpatient ward is not an outlier for costing more than a clinic):
    per unit and ``visit_concept_id``, the median visit cost and LOS over its visits; then, across the units of that
    visit type with at least ``min_visits`` visits, the modified z-score of Iglewicz & Hoaglin,
    z = 0.6745 (x - median) / MAD, anomalous when |z| > ``threshold``. When the MAD is 0 (more than half of the
    units share the median, e.g. same-day clinic visits), z = (x - median) / (1.253314 MeanAD) with the mean
    absolute deviation from the median instead; when that is 0 too, z is null. z is also null for a unit with fewer
    than ``min_visits`` visits or without a value. Flags are false where z is null.

    Args:
        visits: research ``visit_occurrence`` (``visit_occurrence_id, person_id, visit_concept_id``, ``by``,
            dates).
        costs: ``cost``, see ``build_visit_stats``.
        by: ``care_site_id`` or ``provider_id``; visits without one are left out.
        cost_column: the cost column summed per visit.
        threshold: the |z| above which a unit is flagged.
        min_visits: units with fewer visits (of the type) get no score and do not shape the reference median/MAD.

    Returns:
        ``<by> long, visit_concept_id int, n_visits long, n_persons long, n_costed_visits long, median_cost double,
        median_los_days double, cost_robust_z double, los_robust_z double, is_cost_anomaly boolean,
        is_los_anomaly boolean``. Suppression: ``PUBLICATIONS["cost_anomalies"]``.
    """
    if by not in COST_ANOMALY_UNITS:
        raise ValueError(f"by: must be one of {COST_ANOMALY_UNITS}, got {by!r}")
    if threshold <= 0:
        raise ValueError(f"threshold: must be > 0, got {threshold!r}")
    _require(visits, "visits", ["visit_occurrence_id", "person_id", "visit_concept_id", by, "visit_start_date",
                                "visit_end_date"])
    unit = [by, "visit_concept_id"]
    per_visit = visits.where(sf.col(by).isNotNull()).select(
        "visit_occurrence_id", "person_id", *unit, _length_days("visit_end_date", "visit_start_date").alias("los")) \
        .join(_visit_costs(costs, cost_column), "visit_occurrence_id", "left")
    units = per_visit.groupBy(*unit).agg(
        sf.count(sf.lit(1)).alias("n_visits"), sf.count("visit_cost").alias("n_costed_visits"),
        sf.percentile("visit_cost", 0.5).alias("median_cost"), sf.percentile("los", 0.5).alias("median_los_days")) \
        .join(per_visit.groupBy(*unit).agg(sf.count_distinct("person_id").alias("n_persons")), unit)
    eligible = sf.col("n_visits") >= min_visits
    centres = units.where(eligible).groupBy("visit_concept_id").agg(
        sf.percentile("median_cost", 0.5).alias("_cost_centre"),
        sf.percentile("median_los_days", 0.5).alias("_los_centre"))
    centred = units.join(centres, "visit_concept_id", "left")
    cost_deviation = sf.abs(sf.col("median_cost") - sf.col("_cost_centre"))
    los_deviation = sf.abs(sf.col("median_los_days") - sf.col("_los_centre"))
    spreads = centred.where(eligible).groupBy("visit_concept_id").agg(
        sf.percentile(cost_deviation, 0.5).alias("_cost_mad"), sf.avg(cost_deviation).alias("_cost_meanad"),
        sf.percentile(los_deviation, 0.5).alias("_los_mad"), sf.avg(los_deviation).alias("_los_meanad"))

    def robust_z(value: str, kind: str) -> Column:
        deviation = sf.col(value) - sf.col(f"_{kind}_centre")
        mad, meanad = sf.col(f"_{kind}_mad"), sf.col(f"_{kind}_meanad")
        return sf.when(eligible & (mad > 0), sf.lit(ROBUST_Z_FACTOR) * deviation / mad) \
            .when(eligible & (meanad > 0), deviation / (sf.lit(MEANAD_FACTOR) * meanad))

    scored = centred.join(spreads, "visit_concept_id", "left") \
        .withColumn("cost_robust_z", robust_z("median_cost", "cost")) \
        .withColumn("los_robust_z", robust_z("median_los_days", "los"))
    return scored.select(
        by, "visit_concept_id", "n_visits", "n_persons", "n_costed_visits", "median_cost", "median_los_days",
        "cost_robust_z", "los_robust_z",
        sf.coalesce(sf.abs("cost_robust_z") > threshold, sf.lit(False)).alias("is_cost_anomaly"),
        sf.coalesce(sf.abs("los_robust_z") > threshold, sf.lit(False)).alias("is_los_anomaly"))
