"""Pure transforms from staged records (``medspark.silver.sources``) to OMOP CDM v5.4 rows.

Nothing here reads or writes a table: ``medspark.silver.job`` reads bronze, stages, resolves persons and visits,
calls these steps and writes. Inputs are the staged record kinds with person/visit ids already attached
(``person_id``, ``visit_occurrence_id``) and codes already mapped (``medspark.silver.vocab.map_codes``).

Several records can describe the same fact (a diagnosis in Synthea CSV, FHIR and an HL7 DG1 of the same visit). A
fact is identified by a natural key per table (person, standard concept — or the source code when unmapped —, the
start date or time, the visit); records with the same key collapse to one row. The row's values come from the best
record: the source that comes first in ``silver.source_priority``, then the newest ``_source_version``, then the
smallest record hash (so the choice never depends on partitioning). ``_n_records`` keeps how many records a row
stands for, so the run log can account for every record.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf

from medspark.silver import omop
from medspark.silver.keys import surrogate_id

EHR = 32817  # Type Concept: EHR
CLAIM = 32810  # Type Concept: Claim
USD = 44818668  # Currency: United States dollar

# Default CDM table of an event whose code has no standard concept, by the source's own category.
KIND_TABLE = {
    "condition": "condition_occurrence",
    "drug": "drug_exposure",
    "procedure": "procedure_occurrence",
    "device_vital": "measurement",
}
DOMAIN_TABLE = {
    "Condition": "condition_occurrence",
    "Drug": "drug_exposure",
    "Procedure": "procedure_occurrence",
    "Measurement": "measurement",
    "Observation": "observation",
}
EVENT_TABLES = ("condition_occurrence", "drug_exposure", "procedure_occurrence", "measurement", "observation")


def source_family(source: Column) -> Column:
    """The source family of a bronze entity name: ``fhir_condition`` → ``fhir``, ``device_vitals`` → ``vitals``."""
    family = sf.substring_index(source, "_", 1)
    return sf.when(family == "device", sf.lit("vitals")).otherwise(family)


def with_priority(records: DataFrame, source_priority: Sequence[str]) -> DataFrame:
    """Adds ``_priority int``: position of the record's source family in ``source_priority`` (unlisted: last)."""
    position = sf.array_position(sf.array(*[sf.lit(s) for s in source_priority]), source_family(sf.col("_source")))
    return records.withColumn("_priority",
                              sf.when(position > 0, position).otherwise(sf.lit(len(source_priority) + 1)).cast("int"))


def _rank_key() -> Column:
    """Ordering of records for 'best record wins' (larger is better); ties broken by the record hash."""
    return sf.struct(-sf.col("_priority"), sf.col("_source_version"), sf.col("_source_record_hash"))


def collapse(rows: DataFrame, key: str) -> DataFrame:
    """One row per ``key``: the best record's row (see module docstring), with ``_n_records`` records behind it.

    Input: rows with ``key``, ``_priority``, ``_source_version``, ``_source_record_hash``. Output: same columns plus
    ``_n_records long``.
    """
    window = Window.partitionBy(key)
    ranked = rows.withColumn("_rank", sf.row_number().over(window.orderBy(
        sf.col("_priority").asc(), sf.col("_source_version").desc_nulls_last(),
        sf.col("_source_record_hash").asc())))
    return ranked.withColumn("_n_records", sf.count(sf.lit(1)).over(window)) \
        .where(sf.col("_rank") == 1).drop("_rank")


def _latest_key() -> Column:
    """Ordering for person attributes (larger is better): the latest delivery first (a later bronze batch carries
    a correction, e.g. an HL7 A08 update), then source priority, then version, then hash."""
    return sf.struct(sf.col("_batch_id"), -sf.col("_priority"), sf.col("_source_version"),
                     sf.col("_source_record_hash"))


def best_non_null(column: str, rank: Column | None = None) -> Column:
    """Aggregate: the value of ``column`` from the best record that has one (null when no record has one)."""
    key = _rank_key() if rank is None else rank
    return sf.max_by(sf.col(column), sf.when(sf.col(column).isNotNull(), key)).alias(column)


def _date(ts: Column) -> Column:
    return sf.to_date(ts)


def conform(rows: DataFrame, table: str, extra: Sequence[str] = ()) -> DataFrame:
    """Select the silver columns of ``table`` (missing CDM columns as typed nulls), then lineage, then ``extra``."""
    present = set(rows.columns)
    cols = [
        (sf.col(f.name) if f.name in present else sf.lit(None)).cast(f.dataType).alias(f.name)
        for f in omop.schema(table).fields
    ]
    return rows.select(*cols, *extra)


# --- persons ------------------------------------------------------------------------------------------------------

PERSON_ATTRIBUTES = ("birth_date", "gender_source", "race_source", "ethnicity_source", "death_datetime",
                     "city", "state", "zip", "county", "gender_concept_id", "race_concept_id",
                     "ethnicity_concept_id")


def build_person_attributes(person_sources: DataFrame) -> DataFrame:
    """One row per person: every attribute from the latest record that has it (see :func:`_latest_key`).

    Input: ``person_id``, the attributes in ``PERSON_ATTRIBUTES``, ``person_source_value`` and the record columns
    ``_batch_id``, ``_priority``, ``_source``, ``_source_version``, ``_source_record_hash``. Output:
    ``person_id``, the attributes, ``person_source_value`` (the smallest), lineage of the best record,
    ``_n_records``.
    """
    best = sf.max_by(sf.struct("_source", "_source_record_hash", "_source_version"), _latest_key())
    return person_sources.groupBy("person_id").agg(
        *[best_non_null(a, _latest_key()) for a in PERSON_ATTRIBUTES],
        sf.min("person_source_value").alias("person_source_value"),
        best.alias("_best"),
        sf.count(sf.lit(1)).alias("_n_records"),
    ).select("*", "_best.*").drop("_best")


def location_key() -> Column:
    """``location_id`` of a person's address (upper-cased city, state, ZIP, county); null when all are unknown."""
    parts = [sf.upper(sf.trim(sf.col(c))) for c in ("city", "state", "zip", "county")]
    return sf.when(sf.coalesce(*parts).isNotNull(), surrogate_id(sf.lit("location"), *parts))


def build_persons(attributes: DataFrame) -> DataFrame:
    """``person`` rows from :func:`build_person_attributes` (gender/race/ethnicity already mapped to concepts)."""
    return conform(attributes.select(
        "*",
        sf.year("birth_date").alias("year_of_birth"),
        sf.month("birth_date").alias("month_of_birth"),
        sf.dayofmonth("birth_date").alias("day_of_birth"),
        sf.col("birth_date").cast("timestamp").alias("birth_datetime"),
        location_key().alias("location_id"),
        sf.col("gender_source").alias("gender_source_value"),
        sf.col("race_source").alias("race_source_value"),
        sf.col("ethnicity_source").alias("ethnicity_source_value"),
        sf.lit(0).alias("gender_source_concept_id"),
        sf.lit(0).alias("race_source_concept_id"),
        sf.lit(0).alias("ethnicity_source_concept_id"),
    ).fillna(0, ["gender_concept_id", "race_concept_id", "ethnicity_concept_id"]), "person", ["_n_records"])


def build_deaths(attributes: DataFrame) -> DataFrame:
    """``death`` rows for persons whose best records carry a death date."""
    return conform(attributes.where(sf.col("death_datetime").isNotNull()).select(
        "*",
        _date(sf.col("death_datetime")).alias("death_date"),
        sf.lit(EHR).alias("death_type_concept_id"),
        sf.lit(0).alias("cause_concept_id"),
        sf.lit(0).alias("cause_source_concept_id"),
    ), "death", ["_n_records"])


def build_locations(attributes: DataFrame) -> DataFrame:
    """``location`` rows: one per distinct address of the persons (street lines never: they are identifiers).

    A derived table: its rows stand for no record of their own (``_n_records`` 0); the person records are
    accounted for in ``person``.
    """
    keyed = attributes.withColumn("location_id", location_key()).where(sf.col("location_id").isNotNull()) \
        .withColumn("_priority", sf.lit(1))
    return conform(collapse(keyed, "location_id").select(
        "*", sf.lit("US").alias("country_source_value"),
        sf.lit(4330442).alias("country_concept_id"),  # United States of America
    ), "location").withColumn("_n_records", sf.lit(0).cast("long"))


# --- visits -------------------------------------------------------------------------------------------------------


def build_visits(visits: DataFrame) -> DataFrame:
    """``visit_occurrence`` rows, one per resolved visit: class and times from the best record that has them.

    Input: visit records with ``visit_occurrence_id``, ``person_id``, ``visit_concept_id``, ``visit_start``,
    ``visit_end``, ``visit_class_source``, ``visit_source_value``, ``provider_id``, ``care_site_id``, ``type_source``
    and the record columns.
    """
    best = sf.max_by(sf.struct("_source", "_source_record_hash", "_source_version"), _rank_key())
    aggregated = visits.groupBy("visit_occurrence_id").agg(
        *[best_non_null(c) for c in ("person_id", "visit_concept_id", "visit_start", "visit_end",
                                     "visit_class_source", "provider_id", "care_site_id", "type_source")],
        sf.min("visit_source_value").alias("visit_source_value"),
        best.alias("_best"),
        sf.count(sf.lit(1)).alias("_n_records"),
    ).select("*", "_best.*").drop("_best")
    return conform(aggregated.select(
        "*",
        _date(sf.col("visit_start")).alias("visit_start_date"),
        sf.col("visit_start").alias("visit_start_datetime"),
        _date(sf.coalesce("visit_end", "visit_start")).alias("visit_end_date"),
        sf.coalesce("visit_end", "visit_start").alias("visit_end_datetime"),
        _type_concept().alias("visit_type_concept_id"),
        sf.lit(0).alias("visit_source_concept_id"),
    ).fillna(0, ["visit_concept_id"]), "visit_occurrence", ["_n_records"])


def _type_concept() -> Column:
    return sf.when(sf.col("type_source") == "claim", sf.lit(CLAIM)).otherwise(sf.lit(EHR))


# --- events -------------------------------------------------------------------------------------------------------


def route_events(events: DataFrame) -> DataFrame:
    """Adds ``_table``: the CDM table of each mapped event.

    The standard concept's domain decides (OMOP convention); an unmapped code goes where its source says (a
    numeric observation is a measurement). Input: ``c_domain_id``, ``event_kind``, ``value_as_number``.
    """
    by_domain = sf.lit(None).cast("string")
    for domain, table in DOMAIN_TABLE.items():
        by_domain = sf.when(sf.col("c_domain_id") == domain, sf.lit(table)).otherwise(by_domain)
    by_kind = sf.lit(None).cast("string")
    for kind, table in KIND_TABLE.items():
        by_kind = sf.when(sf.col("event_kind") == kind, sf.lit(table)).otherwise(by_kind)
    observation = sf.when(sf.col("value_as_number").isNotNull(), sf.lit("measurement")).otherwise("observation")
    return events.withColumn("_table", sf.coalesce(by_domain, by_kind, observation))


def _fact_id(table: str, start: Column) -> Column:
    """Natural key of a fact: table, person, the standard concept (or the source code when unmapped), start, visit."""
    concept = sf.when(sf.col("c_concept_id") != 0, sf.col("c_concept_id").cast("string")) \
        .otherwise(sf.concat_ws(":", sf.col("vocabulary_id"), sf.col("code")))
    return surrogate_id(sf.lit(table), sf.col("person_id"), concept, start, sf.col("visit_occurrence_id"))


def build_events(events: DataFrame, table: str) -> DataFrame:
    """CDM rows of one event table from routed, mapped events (:func:`route_events`), duplicates collapsed.

    Input: ``person_id``, ``visit_occurrence_id``, ``provider_id``, ``vocabulary_id``, ``code``, ``event_start``,
    ``event_end``, ``value_as_number``, ``value_source_value``, ``unit_source_value``, ``unit_concept_id``,
    ``quantity``, ``type_source``, ``c_concept_id``, ``c_source_concept_id``, record columns.
    """
    rows = events.where(sf.col("_table") == table)
    start, end = sf.col("event_start"), sf.col("event_end")
    type_concept = _type_concept()
    if table == "condition_occurrence":
        key = _fact_id(table, _date(start))
        columns = [start.alias("condition_start_datetime"), _date(start).alias("condition_start_date"),
                   end.alias("condition_end_datetime"), _date(end).alias("condition_end_date"),
                   sf.col("c_concept_id").alias("condition_concept_id"),
                   sf.col("c_source_concept_id").alias("condition_source_concept_id"),
                   sf.col("code").alias("condition_source_value"),
                   type_concept.alias("condition_type_concept_id"), sf.lit(0).alias("condition_status_concept_id")]
    elif table == "drug_exposure":
        key = _fact_id(table, _date(start))
        columns = [start.alias("drug_exposure_start_datetime"), _date(start).alias("drug_exposure_start_date"),
                   sf.coalesce(end, start).alias("drug_exposure_end_datetime"),
                   _date(sf.coalesce(end, start)).alias("drug_exposure_end_date"),
                   _date(end).alias("verbatim_end_date"),
                   sf.col("c_concept_id").alias("drug_concept_id"),
                   sf.col("c_source_concept_id").alias("drug_source_concept_id"),
                   sf.col("code").alias("drug_source_value"), sf.col("quantity").alias("quantity"),
                   type_concept.alias("drug_type_concept_id"), sf.lit(0).alias("route_concept_id")]
    elif table == "procedure_occurrence":
        key = _fact_id(table, _date(start))
        columns = [start.alias("procedure_datetime"), _date(start).alias("procedure_date"),
                   end.alias("procedure_end_datetime"), _date(end).alias("procedure_end_date"),
                   sf.col("c_concept_id").alias("procedure_concept_id"),
                   sf.col("c_source_concept_id").alias("procedure_source_concept_id"),
                   sf.col("code").alias("procedure_source_value"),
                   type_concept.alias("procedure_type_concept_id"), sf.lit(0).alias("modifier_concept_id")]
    elif table == "measurement":
        key = _fact_id(table, start)
        columns = [start.alias("measurement_datetime"), _date(start).alias("measurement_date"),
                   sf.col("c_concept_id").alias("measurement_concept_id"),
                   sf.col("c_source_concept_id").alias("measurement_source_concept_id"),
                   sf.col("code").alias("measurement_source_value"),
                   sf.col("value_as_number"), sf.col("unit_concept_id"), sf.col("unit_source_value"),
                   sf.col("value_source_value"), type_concept.alias("measurement_type_concept_id"),
                   sf.lit(0).alias("operator_concept_id"), sf.lit(0).alias("value_as_concept_id")]
    elif table == "observation":
        key = _fact_id(table, start)
        columns = [start.alias("observation_datetime"), _date(start).alias("observation_date"),
                   sf.col("c_concept_id").alias("observation_concept_id"),
                   sf.col("c_source_concept_id").alias("observation_source_concept_id"),
                   sf.col("code").alias("observation_source_value"),
                   sf.col("value_as_number"), sf.col("value_source_value").alias("value_as_string"),
                   sf.col("unit_concept_id"), sf.col("unit_source_value"), sf.col("value_source_value"),
                   type_concept.alias("observation_type_concept_id"), sf.lit(0).alias("value_as_concept_id")]
    else:
        raise ValueError(f"not an event table: {table}")
    pk = omop.PRIMARY_KEY[table]
    keyed = rows.select(
        "person_id", "visit_occurrence_id", "provider_id", "_source", "_source_record_hash", "_source_version",
        "_priority", key.alias(pk), *columns)
    return conform(collapse(keyed, pk), table, ["_n_records"])


# --- claims -------------------------------------------------------------------------------------------------------


def payer_plan_period_id() -> Column:
    """One payer plan period per person and payer (upper-cased payer name)."""
    return surrogate_id(sf.lit("payer_plan_period"), sf.col("person_id"), sf.upper(sf.col("payer_source_value")))


def build_payer_plan_periods(claims: DataFrame) -> DataFrame:
    """``payer_plan_period``: per person and payer, from the first to the last service date of their claims."""
    keyed = claims.where(sf.col("payer_source_value").isNotNull()) \
        .withColumn("payer_plan_period_id", payer_plan_period_id())
    best = sf.max_by(sf.struct("_source", "_source_record_hash", "_source_version"), _rank_key())
    aggregated = keyed.groupBy("payer_plan_period_id").agg(
        sf.first("person_id").alias("person_id"),
        sf.min("payer_source_value").alias("payer_source_value"),
        sf.min("plan_source_value").alias("plan_source_value"),
        sf.min(sf.coalesce("period_start", "period_end")).alias("payer_plan_period_start_date"),
        sf.max(sf.coalesce("period_end", "period_start")).alias("payer_plan_period_end_date"),
        best.alias("_best"),
        sf.count(sf.lit(1)).alias("_n_records"),
    ).select("*", "_best.*").drop("_best")
    return conform(aggregated.select(
        "*", *[sf.lit(0).alias(c) for c in ("payer_concept_id", "payer_source_concept_id", "plan_concept_id",
                                            "plan_source_concept_id")]), "payer_plan_period", ["_n_records"])


def build_costs(claims: DataFrame) -> DataFrame:
    """``cost``: one row per claim, the billed total charge of its visit (837 claims carry charges, not payments)."""
    keyed = claims.withColumns({
        "cost_id": surrogate_id(sf.lit("cost"), sf.col("claim_key")),
        "cost_event_id": sf.col("visit_occurrence_id"),
        "cost_domain_id": sf.lit("Visit"),
        "cost_type_concept_id": sf.lit(CLAIM),
        "currency_concept_id": sf.lit(USD),
        "total_charge": sf.col("total_charge").cast("double"),
        "payer_plan_period_id": sf.when(sf.col("payer_source_value").isNotNull(), payer_plan_period_id()),
    })
    return conform(collapse(keyed, "cost_id"), "cost", ["_n_records"])


# --- providers and care sites -------------------------------------------------------------------------------------


def _coalesce_by(records: DataFrame, key: str, columns: Sequence[str]) -> DataFrame:
    """One row per ``key``, every column from the best record that has it: a bare reference (an NPI alone) must
    not hide the full row another record carries."""
    best = sf.max_by(sf.struct("_source", "_source_record_hash", "_source_version"), _rank_key())
    return records.groupBy(key).agg(*[best_non_null(c) for c in columns], best.alias("_best"),
                                    sf.count(sf.lit(1)).alias("_n_records")).select("*", "_best.*").drop("_best")


def build_providers(providers: DataFrame) -> DataFrame:
    """``provider`` rows, one per provider source value (an NPI or a Synthea provider id)."""
    keyed = providers.withColumn("provider_id", surrogate_id(sf.lit("provider"), sf.col("provider_source_value")))
    merged = _coalesce_by(keyed, "provider_id", ("provider_source_value", "npi", "provider_name",
                                                 "specialty_source_value", "care_site_source_value",
                                                 "gender_source_value"))
    return conform(merged.select(
        "*", sf.lit(0).alias("specialty_concept_id"), sf.lit(0).alias("gender_concept_id"),
        sf.lit(0).alias("specialty_source_concept_id"), sf.lit(0).alias("gender_source_concept_id"),
        sf.when(sf.col("care_site_source_value").isNotNull(),
                surrogate_id(sf.lit("care_site"), sf.col("care_site_source_value"))).alias("care_site_id"),
    ), "provider", ["_n_records"])


def build_care_sites(care_sites: DataFrame) -> DataFrame:
    """``care_site`` rows, one per organisation source value."""
    keyed = care_sites.withColumn("care_site_id", surrogate_id(sf.lit("care_site"),
                                                               sf.col("care_site_source_value")))
    merged = _coalesce_by(keyed, "care_site_id", ("care_site_source_value", "care_site_name",
                                                  "place_of_service_source_value"))
    return conform(merged.select("*", sf.lit(0).alias("place_of_service_concept_id")), "care_site", ["_n_records"])


# --- observation periods ------------------------------------------------------------------------------------------

EVENT_DATES = {
    "visit_occurrence": ("visit_start_date", "visit_end_date"),
    "condition_occurrence": ("condition_start_date", "condition_end_date"),
    "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
    "procedure_occurrence": ("procedure_date", "procedure_end_date"),
    "measurement": ("measurement_date", "measurement_date"),
    "observation": ("observation_date", "observation_date"),
}


def build_observation_periods(dated: DataFrame) -> DataFrame:
    """One ``observation_period`` per person: from the first to the last date of any of their silver events.

    Input: ``person_id``, ``start_date``, ``end_date`` (the union of the event tables' dates).
    """
    periods = dated.groupBy("person_id").agg(
        sf.min("start_date").alias("observation_period_start_date"),
        sf.max(sf.coalesce("end_date", "start_date")).alias("observation_period_end_date"),
    )
    return conform(periods.select(
        "*", surrogate_id(sf.lit("observation_period"), sf.col("person_id")).alias("observation_period_id"),
        sf.lit(EHR).alias("period_type_concept_id"), sf.lit("derived").alias("_source")),
        "observation_period")
