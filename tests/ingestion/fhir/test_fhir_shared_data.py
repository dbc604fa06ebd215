"""FHIR parsers on the shared real samples, checked against counts and values read with plain Python json."""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.window import Window

from medspark.ingestion.fhir.parse import bundle_records, parse_ndjson
from medspark.ingestion.fhir.resources import TYPED_ENTITIES, parse_resources

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # pandas workers (see test_fhir_bundle.py)

pytestmark = pytest.mark.shared_data


def _entity_of(resource_type: str | None) -> str:
    return TYPED_ENTITIES.get(resource_type or "", "fhir_other")


def _counts(outputs: dict[str, DataFrame]) -> tuple[Counter[tuple[str, str | None]], Counter[str | None]]:
    """(rows per (entity, resource_type), rows per quarantine reason), one small aggregate per entity."""
    per_type: Counter[tuple[str, str | None]] = Counter()
    reasons: Counter[str | None] = Counter()
    for entity, frame in outputs.items():
        for row in frame.groupBy("resource_type", "_quarantine_reason").count().collect():
            per_type[(entity, row["resource_type"])] += row["count"]
            reasons[row["_quarantine_reason"]] += row["count"]
    return per_type, reasons


def _files(spark: SparkSession, pattern: str) -> DataFrame:
    return (
        spark.read.format("binaryFile")
        .load(pattern)
        .select(sf.col("path").alias("_source_file"), sf.col("content").alias("_content"))
    )


def test_bulk_ndjson_sample(spark: SparkSession, shared_data: Path) -> None:
    folder = shared_data / "fhir-bulk-ndjson"
    expected: Counter[tuple[str, str | None]] = Counter()
    patients = {}
    for path in sorted(folder.glob("*.ndjson.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    resource = json.loads(line)
                    expected[(_entity_of(resource["resourceType"]), resource["resourceType"])] += 1
                    if resource["resourceType"] == "Patient":
                        patients[resource["id"]] = (resource["birthDate"], resource["gender"])
    # SOURCE.md: line counts per file
    assert sum(expected.values()) == 6145 and len(patients) == 7
    assert expected[("fhir_medicationrequest", "MedicationRequest")] == 1623
    assert expected[("fhir_other", "DocumentReference")] == 1029

    lines = (
        spark.read.text(str(folder / "*.ndjson.gz"))
        .select(
            sf.col("_metadata.file_path").alias("_source_file"),
            sf.monotonically_increasing_id().alias("_id"),
            sf.col("value").alias("_raw"),
        )
        .select(
            "_source_file",
            sf.row_number()
            .over(Window.partitionBy("_source_file").orderBy("_id"))
            .cast("long")
            .alias("_record_position"),
            "_raw",
        )
        .where(sf.trim("_raw") != "")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        outputs = dict(parse_ndjson(lines))
        per_type, reasons = _counts(outputs)
        assert per_type == expected
        assert reasons == Counter({None: 6145})
        parsed = {
            r.resource_id: (str(r.birth_date), r.gender)
            for r in outputs["fhir_patient"].select("resource_id", "birth_date", "gender").collect()
        }
        assert parsed == patients
        # positions are physical line numbers: the first Condition line is line 1 of its file
        first = outputs["fhir_condition"].orderBy("_record_position").select("_raw", "_record_position").first()
        assert first is not None and first["_record_position"] == 1
        with gzip.open(folder / "Condition.000.ndjson.gz", "rt", encoding="utf-8") as handle:
            assert first["_raw"] == handle.readline().rstrip("\n")
    finally:
        lines.unpersist()


def test_synthea_bundles(spark: SparkSession, shared_data: Path) -> None:
    folder = shared_data / "synthea-fhir-r4-bundles"
    expected: Counter[tuple[str, str | None]] = Counter()
    paths = sorted(folder.glob("*.json.gz"))
    assert len(paths) == 100
    for path in paths:
        with gzip.open(path, "rb") as handle:
            bundle = json.load(handle)
        for entry in bundle["entry"]:
            rtype = entry["resource"]["resourceType"]
            expected[(_entity_of(rtype), rtype)] += 1
    assert sum(expected.values()) == 27237  # SOURCE.md counts
    assert expected[("fhir_observation", "Observation")] == 13327

    # parse_bundle == parse_resources(bundle_records(files)); the records are persisted here so the seven
    # entities do not each unpack 100 MB in Python again.
    records = bundle_records(_files(spark, str(folder / "*.json.gz"))).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        per_type, reasons = _counts(parse_resources(records))
    finally:
        records.unpersist()
    assert per_type == expected
    assert reasons == Counter({None: 27237})


def test_official_examples(spark: SparkSession, shared_data: Path) -> None:
    """All 286 spec examples parse; every file gives >= 1 row; the quarantine is what the FHIR rules predict."""
    folder = shared_data / "fhir-r4-official-examples"
    paths = sorted(folder.glob("*-*.json"))
    assert len(paths) == 286
    expected_rows = 0
    expected_types: Counter[tuple[str, str | None]] = Counter()
    for path in paths:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document["resourceType"] == "Bundle" and document.get("entry"):
            for entry in document["entry"]:
                rtype = entry["resource"]["resourceType"] if "resource" in entry else None
                expected_types[(_entity_of(rtype), rtype)] += 1
                expected_rows += 1
        else:
            expected_types[(_entity_of(document["resourceType"]), document["resourceType"])] += 1
            expected_rows += 1

    records = bundle_records(_files(spark, str(folder / "*-*.json"))).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        outputs = parse_resources(records)
        per_type, reasons = _counts(outputs)
        rows_per_file = Counter[str]()
        quarantined = []
        for frame in outputs.values():
            for row in frame.select("_source_file", "_record_position", "_quarantine_reason").collect():
                rows_per_file[row["_source_file"].rsplit("/", 1)[-1]] += 1
                if row["_quarantine_reason"] is not None:
                    name = row["_source_file"].rsplit("/", 1)[-1]
                    quarantined.append((name, row["_record_position"], row["_quarantine_reason"]))
    finally:
        records.unpersist()

    assert sum(per_type.values()) == expected_rows == 503
    assert per_type == expected_types
    assert set(rows_per_file) == {p.name for p in paths}
    assert min(rows_per_file.values()) >= 1
    assert sorted(quarantined) == sorted(
        [
            # a batch request of GETs: entries without resource
            ("Bundle-bundle-request-simplesummary.json", 1, "missing_field:resource"),
            ("Bundle-bundle-request-simplesummary.json", 2, "missing_field:resource"),
            ("Bundle-bundle-request-simplesummary.json", 3, "missing_field:resource"),
            ("Bundle-bundle-request-simplesummary.json", 4, "missing_field:resource"),
            # a Patient with neither id nor identifier (only a urn:uuid fullUrl)
            ("Bundle-bundle-references.json", 2, "missing_identifier"),
            # panel members (Observation) without subject: valid FHIR, but not linkable to a person
            ("Bundle-ghp.json", 5, "missing_identifier"),
            ("Bundle-ghp.json", 23, "missing_identifier"),
            ("Bundle-ghp.json", 46, "missing_identifier"),
            # subject given only as a display text
            ("Procedure-education.json", 1, "missing_identifier"),
            ("Procedure-ob.json", 1, "missing_identifier"),
        ]
    )
    assert reasons[None] == expected_rows - 10
