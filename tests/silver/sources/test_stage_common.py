"""Staging contract: every stager's outputs have exactly the record DDL's columns; shared helpers' values."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual
from staging_bronze import BRONZE

from medspark.silver.sources import RECORDS, STAGERS, UNSTAGED
from medspark.silver.sources._common import record_columns, to_record, vocabulary_or_other

ENTITIES = [
    "synthea_patients", "synthea_encounters", "synthea_conditions", "synthea_medications", "synthea_procedures",
    "synthea_observations", "synthea_other", "fhir_patient", "fhir_encounter", "fhir_condition",
    "fhir_medicationrequest", "fhir_procedure", "fhir_observation", "hl7v2_messages", "x12_837_claims",
    "device_vitals",
]  # fmt: skip


def test_registry_covers_every_bronze_entity() -> None:
    assert sorted(STAGERS) == sorted(ENTITIES)
    assert sorted(BRONZE) == sorted(ENTITIES)


def test_record_columns_split_nested_types() -> None:
    assert record_columns("a string, b array<struct<x:string,y:int>>, c decimal(18,2)") == [
        ("a", "string"),
        ("b", "array<struct<x:string,y:int>>"),
        ("c", "decimal(18,2)"),
    ]


def test_to_record_rejects_an_unknown_kind(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="'persons'"):
        to_record(spark.range(1), "persons")


@pytest.mark.parametrize("entity", ENTITIES)
def test_every_output_has_its_record_schema(spark: SparkSession, entity: str) -> None:
    """Analysis only (no job): an empty bronze frame staged gives frames with exactly the contract schema."""
    outputs = STAGERS[entity](spark.createDataFrame([], BRONZE[entity]))
    assert UNSTAGED in outputs
    assert len(outputs) > 1
    for kind, frame in outputs.items():
        assert kind in RECORDS, kind
        assertSchemaEqual(frame.schema, spark.createDataFrame([], RECORDS[kind]).schema)


def test_vocabulary_of_fhir_hl7_and_synthea_systems(spark: SparkSession) -> None:
    systems = spark.createDataFrame(
        [
            ("http://snomed.info/sct",),
            ("http://hl7.org/fhir/sid/icd-10-cm",),
            ("http://loinc.org",),
            ("http://www.nlm.nih.gov/research/umls/rxnorm",),
            ("http://www.ama-assn.org/go/cpt",),
            ("SNOMED-CT",),
            ("I10",),
            ("LN",),
            ("RXNORM",),
            ("CVX",),
            ("http://example.org/local",),
            (" ",),
            (None,),
        ],
        "system string",
    )
    actual = systems.select("system", vocabulary_or_other(sf.col("system"), "SNOMED").alias("vocabulary_id"))
    assertDataFrameEqual(
        actual,
        spark.createDataFrame(
            [
                ("http://snomed.info/sct", "SNOMED"),
                ("http://hl7.org/fhir/sid/icd-10-cm", "ICD10CM"),
                ("http://loinc.org", "LOINC"),
                ("http://www.nlm.nih.gov/research/umls/rxnorm", "RxNorm"),
                ("http://www.ama-assn.org/go/cpt", "CPT4"),
                ("SNOMED-CT", "SNOMED"),
                ("I10", "ICD10CM"),
                ("LN", "LOINC"),
                ("RXNORM", "RxNorm"),
                ("CVX", "CVX"),
                ("http://example.org/local", "other:http://example.org/local"),
                (" ", "SNOMED"),
                (None, "SNOMED"),
            ],
            "system string, vocabulary_id string",
        ),
    )
