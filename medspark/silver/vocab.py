"""OMOP vocabulary for silver: source codes to standard concepts, source values to concept ids.

medspark ships a small OMOP vocabulary subset (``medspark/resources/vocabulary``, see docs/vocabulary.md) that
covers every code the synthetic generator and the shared real samples use, so silver maps codes without anyone
downloading Athena. A full Athena download can replace it (config ``silver.vocabulary_path``). The mapping steps
are pure transforms; the vocabulary tables are small enough to broadcast.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from importlib import resources

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql import types as st

from medspark.errors import ConfigError

CONCEPT_DDL = (
    "concept_id int, concept_name string, domain_id string, vocabulary_id string, concept_class_id string, "
    "standard_concept string, concept_code string, valid_start_date string, valid_end_date string, "
    "invalid_reason string"
)
CONCEPT_RELATIONSHIP_DDL = (
    "concept_id_1 int, concept_id_2 int, relationship_id string, valid_start_date string, valid_end_date string, "
    "invalid_reason string"
)
SOURCE_TO_CONCEPT_MAP_DDL = (
    "source_code string, source_concept_id int, source_vocabulary_id string, source_code_description string, "
    "target_concept_id int, target_vocabulary_id string, valid_start_date string, valid_end_date string, "
    "invalid_reason string"
)
UNIT_CONVERSION_DDL = (
    "measurement_vocabulary_id string, measurement_concept_code string, from_unit_code string, to_unit_code string, "
    "factor double, offset double, to_measurement_vocabulary_id string, to_measurement_concept_code string, "
    "note string"
)
UNIT_ALIAS_DDL = "unit_source_value string, unit_code string"

# map_values kinds -> source_vocabulary_id of the shipped source_to_concept_map.csv
VALUE_KINDS = {
    "gender": "MedsparkGender",
    "race": "MedsparkRace",
    "ethnicity": "MedsparkEthnicity",
    "visit": "MedsparkVisit",
    "type": "MedsparkType",
}
# Vocabularies whose codes are written with an optional dot (X12 drops it): matched with dots removed.
_DOTLESS_VOCABULARIES = ("icd10cm", "icd9cm", "icd10")
# CPT-4 and HCPCS level II share one code space (X12 "HC" qualifies both): matched as one vocabulary.
_HCPCS_FAMILY = ("cpt4", "hcpcs")


@dataclass(frozen=True)
class Vocabulary:
    """The OMOP vocabulary tables silver needs.

    Attributes:
        concept: OMOP ``concept`` (dates as ``date``).
        concept_relationship: OMOP ``concept_relationship`` (dates as ``date``).
        source_to_concept_map: OMOP ``source_to_concept_map``: medspark's value tables (gender, race, ethnicity,
            visit class, type), keyed by ``source_vocabulary_id`` ``Medspark<Kind>``.
        unit_conversion: unit conversion rules (``unit_conversion.csv``).
        unit_alias: non-UCUM unit spellings and the UCUM code they mean (``unit_alias.csv``).
    """

    concept: DataFrame
    concept_relationship: DataFrame
    source_to_concept_map: DataFrame
    unit_conversion: DataFrame
    unit_alias: DataFrame


def _read_packaged(spark: SparkSession, name: str, ddl: str) -> DataFrame:
    """One packaged vocabulary file, parsed on the driver into a local relation.

    The files are small (under 100 KB in all). Reading them with ``spark.read.csv`` would hand executors a path in
    the driver's site-packages, which executors on other hosts cannot read, and which is not a path at all when
    medspark is imported from a ``--py-files`` archive.
    """
    schema = st.StructType.fromDDL(ddl)
    assert isinstance(schema, st.StructType)  # a column list parses to a struct
    text = resources.files("medspark").joinpath("resources", "vocabulary", name).read_text(encoding="utf-8")
    header, *body = list(csv.reader(io.StringIO(text)))
    if header != schema.names or any(len(row) != len(header) for row in body):
        raise RuntimeError(f"packaged vocabulary file {name} does not match its layout ({', '.join(schema.names)})")
    # as Spark's CSV reader: an empty unquoted field is null (the packaged files have no quoted empty fields)
    rows = [[value if value != "" else None for value in row] for row in body]
    strings = st.StructType([st.StructField(field, st.StringType()) for field in schema.names])
    return spark.createDataFrame(rows, strings).select(
        *[sf.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def _read(spark: SparkSession, path: str, ddl: str, *, athena: bool = False) -> DataFrame:
    reader = spark.read.schema(ddl).option("header", True).option("mode", "FAILFAST")
    if athena:
        # Athena writes tab-separated files without quoting; a '"' inside a concept name is literal.
        reader = reader.option("sep", "\t").option("quote", "\u0000")
    else:
        reader = reader.option("sep", ",").option("quote", '"').option("escape", '"')
    return reader.csv(path)


def _with_dates(frame: DataFrame, pattern: str) -> DataFrame:
    return frame.withColumns({c: sf.to_date(c, pattern) for c in ("valid_start_date", "valid_end_date")})


def _blank_to_null(frame: DataFrame, *columns: str) -> DataFrame:
    return frame.withColumns({c: sf.when(sf.trim(c) != "", sf.col(c)) for c in columns})


def load_vocabulary(spark: SparkSession, path: str | None = None) -> Vocabulary:
    """Read the vocabulary: the packaged subset, or a directory with a full Athena download.

    Args:
        spark: the session.
        path: ``None`` for the packaged CSVs (comma-separated, quoted, ISO dates). Otherwise a directory holding
            either Athena's ``CONCEPT.csv`` and ``CONCEPT_RELATIONSHIP.csv`` (tab-separated, ``yyyyMMdd`` dates) or
            files in the packaged layout (``concept.csv``...). With an Athena download, medspark's own tables
            (source_to_concept_map, unit rules) still come from the package, and the packaged concepts of
            vocabularies Athena does not have (``MedsparkVitals``) are added with their 'Maps to' rows.

    Raises:
        ConfigError: ``path`` is not a directory with one of the two layouts.
    """
    stcm = _blank_to_null(_read_packaged(spark, "source_to_concept_map.csv", SOURCE_TO_CONCEPT_MAP_DDL),
                          "invalid_reason")
    conversions = _read_packaged(spark, "unit_conversion.csv", UNIT_CONVERSION_DDL)
    aliases = _read_packaged(spark, "unit_alias.csv", UNIT_ALIAS_DDL)
    own_concepts = _blank_to_null(_read_packaged(spark, "concept.csv", CONCEPT_DDL), "standard_concept",
                                  "invalid_reason")
    own_relationships = _blank_to_null(_read_packaged(spark, "concept_relationship.csv", CONCEPT_RELATIONSHIP_DDL),
                                       "invalid_reason")
    if path is None:
        return Vocabulary(_with_dates(own_concepts, "yyyy-MM-dd"), _with_dates(own_relationships, "yyyy-MM-dd"),
                          stcm, conversions, aliases)

    local_path = path.removeprefix("file:")
    if os.path.isfile(os.path.join(local_path, "CONCEPT.csv")) and os.path.isfile(
            os.path.join(local_path, "CONCEPT_RELATIONSHIP.csv")):
        concepts = _blank_to_null(_read(spark, os.path.join(path, "CONCEPT.csv"), CONCEPT_DDL, athena=True),
                                  "standard_concept", "invalid_reason")
        relationships = _blank_to_null(_read(spark, os.path.join(path, "CONCEPT_RELATIONSHIP.csv"),
                                             CONCEPT_RELATIONSHIP_DDL, athena=True), "invalid_reason")
        extra = own_concepts.join(concepts.select("vocabulary_id").distinct(), "vocabulary_id", "left_anti") \
            .select(*own_concepts.columns)
        extra_rels = own_relationships.join(extra.select(sf.col("concept_id").alias("concept_id_1")),
                                            "concept_id_1", "left_semi")
        return Vocabulary(
            _with_dates(concepts, "yyyyMMdd").unionByName(_with_dates(extra, "yyyy-MM-dd")),
            _with_dates(relationships, "yyyyMMdd").unionByName(_with_dates(extra_rels, "yyyy-MM-dd")),
            stcm, conversions, aliases)
    if os.path.isfile(os.path.join(local_path, "concept.csv")):
        concepts = _blank_to_null(_read(spark, os.path.join(path, "concept.csv"), CONCEPT_DDL),
                                  "standard_concept", "invalid_reason")
        relationships = _blank_to_null(_read(spark, os.path.join(path, "concept_relationship.csv"),
                                             CONCEPT_RELATIONSHIP_DDL), "invalid_reason")
        return Vocabulary(_with_dates(concepts, "yyyy-MM-dd"), _with_dates(relationships, "yyyy-MM-dd"),
                          stcm, conversions, aliases)
    raise ConfigError(f"silver.vocabulary_path {path!r}: no CONCEPT.csv + CONCEPT_RELATIONSHIP.csv (Athena) "
                      "or concept.csv (medspark layout) in that directory")


def vocabulary_key(vocabulary_id: Column) -> Column:
    """The vocabulary part of the lookup key: lower case; CPT4 and HCPCS as one code space."""
    lowered = sf.lower(sf.trim(vocabulary_id))
    return sf.when(lowered.isin(*_HCPCS_FAMILY), sf.lit("hcpcs")).otherwise(lowered)


def code_key(vocabulary_id: Column, code: Column) -> Column:
    """The code part of the lookup key: trimmed, upper case, dots removed for ICD codes (X12 writes E669)."""
    cleaned = sf.upper(sf.trim(code))
    return sf.when(sf.lower(sf.trim(vocabulary_id)).isin(*_DOTLESS_VOCABULARIES),
                   sf.regexp_replace(cleaned, r"\.", "")).otherwise(cleaned)


def code_map(vocabulary: Vocabulary) -> DataFrame:
    """One row per (vocabulary, code) key: its source concept, standard concept and the standard's domain.

    Output: ``_vocab_key string, _code_key string, source_concept_id int, concept_id int, domain_id string``.
    ``concept_id`` is the concept itself when it is standard and valid, else the smallest valid standard target of
    its valid 'Maps to' rows (OMOP allows several, e.g. a combination code; the smallest id makes the choice
    deterministic and keeps one row per event), else 0 with a null domain. When a key names several concepts
    (rare: upgraded codes), the valid one wins, then the smallest id.
    """
    concepts = vocabulary.concept
    standard = concepts.where((sf.col("standard_concept") == "S") & sf.col("invalid_reason").isNull()) \
        .select(sf.col("concept_id").alias("_target_id"), sf.col("domain_id").alias("_target_domain"))
    maps_to = vocabulary.concept_relationship \
        .where((sf.col("relationship_id") == "Maps to") & sf.col("invalid_reason").isNull()) \
        .join(sf.broadcast(standard), sf.col("concept_id_2") == sf.col("_target_id")) \
        .groupBy(sf.col("concept_id_1").alias("_source_id")) \
        .agg(sf.min(sf.struct("_target_id", "_target_domain")).alias("_target"))
    keyed = concepts.select(
        vocabulary_key(sf.col("vocabulary_id")).alias("_vocab_key"),
        code_key(sf.col("vocabulary_id"), sf.col("concept_code")).alias("_code_key"),
        sf.struct(sf.col("invalid_reason").isNotNull().alias("_invalid"), sf.col("concept_id").alias("_id"),
                  ((sf.col("standard_concept") == "S") & sf.col("invalid_reason").isNull()).alias("_standard"),
                  sf.col("domain_id").alias("_domain")).alias("_pick"))
    sources = keyed.groupBy("_vocab_key", "_code_key").agg(sf.min("_pick").alias("_pick"))
    mapped = sources.join(sf.broadcast(maps_to), sf.col("_pick._id") == sf.col("_source_id"), "left")
    standard_id = sf.when(sf.col("_pick._standard"), sf.col("_pick._id")).otherwise(sf.col("_target._target_id"))
    standard_domain = sf.when(sf.col("_pick._standard"), sf.col("_pick._domain")) \
        .otherwise(sf.col("_target._target_domain"))
    return mapped.select(
        "_vocab_key", "_code_key", sf.col("_pick._id").cast("int").alias("source_concept_id"),
        sf.coalesce(standard_id, sf.lit(0)).cast("int").alias("concept_id"), standard_domain.alias("domain_id"))


def map_codes(events: DataFrame, vocabulary: Vocabulary, *, vocabulary_col: str = "vocabulary_id",
              code_col: str = "code", prefix: str, broadcast: bool = True) -> DataFrame:
    """Adds the OMOP concepts of each event's code (one output row per input row).

    Input: ``vocabulary_col`` (OMOP vocabulary_id, case-insensitive), ``code_col``.
    Output: every input column plus ``<prefix>_source_concept_id int`` (the code's concept, 0 if unknown),
    ``<prefix>_concept_id int`` (standard concept: itself if standard, else via 'Maps to', 0 if none; see
    :func:`code_map` for the choice among several targets) and ``<prefix>_domain_id string`` (the standard
    concept's domain, null when unmapped). ICD codes match with or without their dot; CPT4 and HCPCS codes
    match under either vocabulary_id.

    Args:
        broadcast: broadcast the code map (default). Turn off only for a full Athena download too big to
            broadcast.
    """
    codes = code_map(vocabulary)
    lookup = sf.broadcast(codes) if broadcast else codes
    keyed = events.withColumns({
        "_vocab_key": vocabulary_key(sf.col(vocabulary_col)),
        "_code_key": code_key(sf.col(vocabulary_col), sf.col(code_col)),
    })
    return keyed.join(lookup, ["_vocab_key", "_code_key"], "left").select(
        *[sf.col(c) for c in events.columns],
        sf.coalesce(sf.col("source_concept_id"), sf.lit(0)).cast("int").alias(f"{prefix}_source_concept_id"),
        sf.coalesce(sf.col("concept_id"), sf.lit(0)).cast("int").alias(f"{prefix}_concept_id"),
        sf.col("domain_id").alias(f"{prefix}_domain_id"),
    )


def map_values(frame: DataFrame, vocabulary: Vocabulary, column: str, output_col: str, kind: str) -> DataFrame:
    """Adds ``output_col int``: the concept id of a source value (gender, race, ethnicity, visit class, type).

    The table is data: rows of ``source_to_concept_map`` with ``source_vocabulary_id`` ``Medspark<Kind>``
    (e.g. Synthea ``M``/FHIR ``male``/HL7 ``M`` -> 8507; Synthea ``white``/OMB ``2106-3`` -> 8527; Synthea
    ``wellness``/FHIR ``AMB``/HL7 ``O`` -> 9202). Matching ignores case and surrounding blanks; an unknown or
    null value gives 0 (OMOP's "no matching concept").

    Args:
        frame: input rows; ``column`` is a string column.
        vocabulary: the vocabulary (its ``source_to_concept_map``).
        column: source value column.
        output_col: name of the added column.
        kind: one of ``gender``, ``race``, ``ethnicity``, ``visit``, ``type``.

    Raises:
        ValueError: ``kind`` is not one of those.
    """
    if kind not in VALUE_KINDS:
        raise ValueError(f"map_values kind {kind!r}: expected one of {sorted(VALUE_KINDS)}")
    table = vocabulary.source_to_concept_map \
        .where((sf.col("source_vocabulary_id") == VALUE_KINDS[kind]) & sf.col("invalid_reason").isNull()) \
        .groupBy(sf.lower(sf.trim("source_code")).alias("_value_key")) \
        .agg(sf.min("target_concept_id").alias("_value_concept"))
    keyed = frame.withColumn("_value_key", sf.lower(sf.trim(sf.col(column))))
    return keyed.join(sf.broadcast(table), "_value_key", "left").select(
        *[sf.col(c) for c in frame.columns if c != output_col],
        sf.coalesce(sf.col("_value_concept"), sf.lit(0)).cast("int").alias(output_col))
