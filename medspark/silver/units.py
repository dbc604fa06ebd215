"""Measurement units for silver: UCUM unit concepts and values in each measurement's canonical unit.

Sources disagree on units: monitors send ``degF`` or ``bpm``, some labs report glucose in mmol/L, the generator
and Synthea write UCUM codes. OMOP wants ``unit_concept_id`` to be a UCUM concept and analyses want one unit per
measurement concept. The spelling aliases and the conversion rules are data (``unit_alias.csv``,
``unit_conversion.csv`` under ``medspark/resources/vocabulary``), read with the vocabulary.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medspark.silver.vocab import Vocabulary


def _unit_concepts(vocabulary: Vocabulary) -> DataFrame:
    """``_unit_code string, _unit_id int``: one UCUM concept per code (standard and valid first, then smallest)."""
    ucum = vocabulary.concept.where(sf.col("vocabulary_id") == "UCUM")
    pick = sf.struct(
        ~((sf.col("standard_concept") == "S") & sf.col("invalid_reason").isNull()).alias("_not_standard"),
        sf.col("concept_id").alias("_id"))
    return ucum.groupBy(sf.col("concept_code").alias("_unit_code")).agg(sf.min(pick).alias("_pick")) \
        .select("_unit_code", sf.col("_pick._id").cast("int").alias("_unit_id"))


def _measurement_ids(vocabulary: Vocabulary) -> DataFrame:
    """``_vocabulary string, _code string, _mid int`` for the measurement concepts the rules name."""
    pick = sf.struct(sf.col("invalid_reason").isNotNull().alias("_invalid"), sf.col("concept_id").alias("_id"))
    return vocabulary.concept.groupBy(sf.col("vocabulary_id").alias("_vocabulary"),
                                      sf.col("concept_code").alias("_code")) \
        .agg(sf.min(pick).alias("_pick")).select("_vocabulary", "_code", sf.col("_pick._id").cast("int").alias("_mid"))


def conversion_rules(vocabulary: Vocabulary) -> DataFrame:
    """The unit conversion rules with concept ids resolved against ``vocabulary``.

    Output: ``_rule_measurement_id int`` (0 = any measurement), ``_rule_from string`` (UCUM code),
    ``_rule_to_unit_id int``, ``_rule_factor double``, ``_rule_offset double``, ``_rule_to_measurement_id int``
    (null = unchanged). Rules whose measurement concept is not in the vocabulary are dropped.
    """
    rules = vocabulary.unit_conversion
    ids = _measurement_ids(vocabulary)
    units = _unit_concepts(vocabulary)
    specific = sf.trim(sf.coalesce(sf.col("measurement_concept_code"), sf.lit(""))) != ""
    target = sf.trim(sf.coalesce(sf.col("to_measurement_concept_code"), sf.lit(""))) != ""
    resolved = rules.join(
        sf.broadcast(ids).select(sf.col("_vocabulary").alias("_mv"), sf.col("_code").alias("_mc"), "_mid"),
        (sf.col("measurement_vocabulary_id") == sf.col("_mv")) & (sf.col("measurement_concept_code") == sf.col("_mc")),
        "left").join(
        sf.broadcast(ids).select(sf.col("_vocabulary").alias("_tv"), sf.col("_code").alias("_tc"),
                                 sf.col("_mid").alias("_tmid")),
        (sf.col("to_measurement_vocabulary_id") == sf.col("_tv"))
        & (sf.col("to_measurement_concept_code") == sf.col("_tc")), "left").join(
        sf.broadcast(units).select(sf.col("_unit_code").alias("_to_code"), sf.col("_unit_id").alias("_to_id")),
        sf.col("to_unit_code") == sf.col("_to_code"), "left")
    return resolved.where(~specific | sf.col("_mid").isNotNull()).select(
        sf.when(specific, sf.col("_mid")).otherwise(sf.lit(0)).cast("int").alias("_rule_measurement_id"),
        sf.col("from_unit_code").alias("_rule_from"),
        sf.coalesce(sf.col("_to_id"), sf.lit(0)).cast("int").alias("_rule_to_unit_id"),
        sf.col("factor").alias("_rule_factor"),
        sf.coalesce(sf.col("offset"), sf.lit(0.0)).alias("_rule_offset"),
        sf.when(target, sf.col("_tmid")).cast("int").alias("_rule_to_measurement_id"),
    )


def standardise_measurements(measurements: DataFrame, vocabulary: Vocabulary) -> DataFrame:
    """Adds the UCUM unit concept and converts values to the measurement's canonical unit.

    Input: ``measurement_concept_id int``, ``value_as_number double``, ``unit_source_value string``.
    Output: every input column, with
      - ``unit_concept_id int``: the UCUM concept of the unit the value is now in (0 when the unit is blank or
        unknown). The source unit is read verbatim, else through ``unit_alias.csv`` (``degF`` -> ``[degF]``).
      - ``value_as_number``: ``value * factor + offset`` when a rule of ``unit_conversion.csv`` applies: first a
        rule for this measurement concept, else a rule for any measurement (temperature, mass, length).
      - ``measurement_concept_id``: replaced only by rules that harmonise the concept (LOINC 15074-8 glucose in
        mmol/L -> 2339-0 in mg/dL).
      - ``unit_source_value`` unchanged, ``_unit_converted_from string``: the UCUM code converted from, null when
        no rule applied.
    """
    aliases = vocabulary.unit_alias.groupBy(sf.trim("unit_source_value").alias("_unit_source")) \
        .agg(sf.min("unit_code").alias("_alias_code"))
    units = _unit_concepts(vocabulary)
    rules = conversion_rules(vocabulary)
    specific = rules.where(sf.col("_rule_measurement_id") != 0) \
        .groupBy(sf.col("_rule_measurement_id").alias("_s_mid"), sf.col("_rule_from").alias("_s_from")) \
        .agg(sf.min(sf.struct("_rule_to_unit_id", "_rule_factor", "_rule_offset", "_rule_to_measurement_id"))
             .alias("_s"))
    generic = rules.where(sf.col("_rule_measurement_id") == 0) \
        .groupBy(sf.col("_rule_from").alias("_g_from")) \
        .agg(sf.min(sf.struct("_rule_to_unit_id", "_rule_factor", "_rule_offset", "_rule_to_measurement_id"))
             .alias("_g"))

    keyed = measurements.withColumn("_unit_source", sf.trim(sf.col("unit_source_value"))) \
        .join(sf.broadcast(aliases), "_unit_source", "left") \
        .withColumn("_unit_code", sf.coalesce(sf.col("_alias_code"), sf.col("_unit_source"))) \
        .join(sf.broadcast(units), "_unit_code", "left") \
        .join(sf.broadcast(specific), (sf.col("measurement_concept_id") == sf.col("_s_mid"))
              & (sf.col("_unit_code") == sf.col("_s_from")), "left") \
        .join(sf.broadcast(generic), sf.col("_unit_code") == sf.col("_g_from"), "left")
    rule = sf.coalesce(sf.col("_s"), sf.col("_g"))
    converted = rule.isNotNull()
    replaced = {
        "measurement_concept_id": sf.coalesce(rule["_rule_to_measurement_id"], sf.col("measurement_concept_id"))
        .cast("int"),
        "value_as_number": sf.when(converted, sf.col("value_as_number") * rule["_rule_factor"]
                                   + rule["_rule_offset"]).otherwise(sf.col("value_as_number")).cast("double"),
    }
    added = [
        sf.when(converted, rule["_rule_to_unit_id"]).otherwise(sf.coalesce(sf.col("_unit_id"), sf.lit(0)))
        .cast("int").alias("unit_concept_id"),
        sf.when(converted, sf.col("_unit_code")).alias("_unit_converted_from"),
    ]
    kept = [replaced[c].alias(c) if c in replaced else sf.col(c) for c in measurements.columns
            if c not in ("unit_concept_id", "_unit_converted_from")]
    return keyed.select(*kept, *added)
