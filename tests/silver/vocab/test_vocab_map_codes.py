"""map_codes and load_vocabulary on literal rows: standard codes, ICD-10-CM via 'Maps to', unknown codes, no row
duplication, and an Athena-layout directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.errors import ConfigError
from medspark.silver.vocab import (
    CONCEPT_DDL,
    CONCEPT_RELATIONSHIP_DDL,
    Vocabulary,
    load_vocabulary,
    map_codes,
)

EVENTS_DDL = "id int, vocabulary_id string, code string"
OUT_DDL = f"{EVENTS_DDL}, c_source_concept_id int, c_concept_id int, c_domain_id string"


@pytest.fixture(scope="module")
def vocabulary(spark: SparkSession) -> Vocabulary:
    return load_vocabulary(spark)


def test_map_codes_packaged_vocabulary(spark: SparkSession, vocabulary: Vocabulary) -> None:
    events = spark.createDataFrame([
        (1, "SNOMED", "44054006"),        # standard SNOMED: itself
        (2, "ICD10CM", "E11.9"),          # local ICD-10-CM concept, 'Maps to' SNOMED type 2 diabetes
        (3, "ICD10CM", "E119"),           # X12 writes ICD codes without the dot
        (4, "ICD10CM", "I10"),            # real Athena ICD-10-CM concept
        (5, "HCPCS", "99213"),            # X12 HC qualifier: a CPT-4 code under HCPCS
        (6, "SNOMED", "999999999"),       # the generator's deliberately unknown code
        (7, "ICD10CM", "Z99.99X"),        # ... and its ICD-10-CM twin
        (8, "LOINC", "8867-4"),
        (9, "MedsparkVitals", "temperature"),
        (10, "SNOMED", "15777000"),       # real but non-standard, its target absent from the subset
        (11, "RXNORM", "860975"),         # vocabulary_id case does not matter
        (12, None, None),
        (13, "SNOMED", " 162864005 "),    # obesity is an Observation in OMOP
    ], EVENTS_DDL)
    expected = spark.createDataFrame([
        (1, "SNOMED", "44054006", 201826, 201826, "Condition"),
        (2, "ICD10CM", "E11.9", 2000000001, 201826, "Condition"),
        (3, "ICD10CM", "E119", 2000000001, 201826, "Condition"),
        (4, "ICD10CM", "I10", 35207668, 320128, "Condition"),
        (5, "HCPCS", "99213", 2000000054, 2000000054, "Procedure"),
        (6, "SNOMED", "999999999", 0, 0, None),
        (7, "ICD10CM", "Z99.99X", 0, 0, None),
        (8, "LOINC", "8867-4", 3027018, 3027018, "Measurement"),
        (9, "MedsparkVitals", "temperature", 2000000206, 3020891, "Measurement"),
        (10, "SNOMED", "15777000", 40316773, 0, None),
        (11, "RXNORM", "860975", 40163924, 40163924, "Drug"),
        (12, None, None, 0, 0, None),
        (13, "SNOMED", " 162864005 ", 4060985, 4060985, "Observation"),
    ], OUT_DDL)
    assertDataFrameEqual(map_codes(events, vocabulary, prefix="c"), expected)


def test_map_codes_several_targets_one_row(spark: SparkSession) -> None:
    """A code with two 'Maps to' targets keeps its one row and gets the smallest valid standard target."""
    concepts = spark.createDataFrame([
        (1, "combination code", "Condition", "ICD10CM", "x", None, "A1.0", None, None, None),
        (10, "target ten", "Condition", "SNOMED", "x", "S", "10", None, None, None),
        (5, "target five", "Observation", "SNOMED", "x", "S", "5", None, None, None),
        (3, "deprecated target", "Condition", "SNOMED", "x", None, "3", None, None, "D"),
    ], CONCEPT_DDL)
    relationships = spark.createDataFrame([
        (1, 10, "Maps to", None, None, None),
        (1, 5, "Maps to", None, None, None),
        (1, 3, "Maps to", None, None, None),
        (1, 2, "Maps to", None, None, "D"),
    ], CONCEPT_RELATIONSHIP_DDL)
    empty = spark.createDataFrame([], "x string")
    vocabulary = Vocabulary(concepts, relationships, empty, empty, empty)
    events = spark.createDataFrame([(1, "ICD10CM", "A1.0"), (2, "ICD10CM", "A10"), (3, "ICD10CM", "A1.0")],
                                   EVENTS_DDL)
    expected = spark.createDataFrame([
        (1, "ICD10CM", "A1.0", 1, 5, "Observation"),
        (2, "ICD10CM", "A10", 1, 5, "Observation"),
        (3, "ICD10CM", "A1.0", 1, 5, "Observation"),
    ], OUT_DDL)
    assertDataFrameEqual(map_codes(events, vocabulary, prefix="c"), expected)


def test_load_athena_layout(spark: SparkSession, tmp_path: Path) -> None:
    """Tab-separated, unquoted, yyyyMMdd dates; medspark-only vocabularies are added from the package."""
    (tmp_path / "CONCEPT.csv").write_text(
        "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\tconcept_code\t"
        "valid_start_date\tvalid_end_date\tinvalid_reason\n"
        '201826\tType 2 diabetes mellitus\tCondition\tSNOMED\tClinical Finding\tS\t44054006\t19700101\t20991231\t\n'
        '45576876\tType 2 "diabetes" mellitus without complications\tCondition\tICD10CM\t4-char billing code\t\t'
        'E11.9\t20071001\t20991231\t\n'
        '3020891\tBody temperature\tMeasurement\tLOINC\tClinical Observation\tS\t8310-5\t19700101\t20991231\t\n',
        encoding="utf-8")
    (tmp_path / "CONCEPT_RELATIONSHIP.csv").write_text(
        "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
        "45576876\t201826\tMaps to\t20071001\t20991231\t\n", encoding="utf-8")
    vocabulary = load_vocabulary(spark, str(tmp_path))
    names = vocabulary.concept.where("concept_id = 45576876").select("concept_name", "valid_start_date")
    assertDataFrameEqual(names, spark.createDataFrame(
        [('Type 2 "diabetes" mellitus without complications', __import__("datetime").date(2007, 10, 1))],
        "concept_name string, valid_start_date date"))
    events = spark.createDataFrame([(1, "ICD10CM", "E11.9"), (2, "MedsparkVitals", "temperature"),
                                    (3, "SNOMED", "59621000")], EVENTS_DDL)
    expected = spark.createDataFrame([
        (1, "ICD10CM", "E11.9", 45576876, 201826, "Condition"),
        (2, "MedsparkVitals", "temperature", 2000000206, 3020891, "Measurement"),
        (3, "SNOMED", "59621000", 0, 0, None),
    ], OUT_DDL)
    assertDataFrameEqual(map_codes(events, vocabulary, prefix="c"), expected)


def test_load_vocabulary_rejects_unknown_directory(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vocabulary_path"):
        load_vocabulary(spark, str(tmp_path))
