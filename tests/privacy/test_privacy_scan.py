"""The leak scan finds planted identifiers (nested, in superseded Delta files) and reports absent ones as zero."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from medspark.errors import UsageError
from medspark.privacy.scan import count_identifiers, find_identifiers

NEEDLES = {
    "ssn": ["123-45-6789", "123456789"],
    "family_name": ["PLANTËD", "Plan"],  # stored as "Plantëd": case ignored; "Plan" is not a whole word there
    "mrn": ["MRN-42", "RN-4", "  "],  # "RN-4" only occurs inside "MRN-42"
    "phone": ["555-867-5309"],  # nowhere
}


def test_scan_counts_hits_per_table_and_kind(spark, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lakehouse = tmp_path / "lh"
    person_ddl = "person_id long, names array<struct<given:string, family:string>>, ids map<string, string>"
    spark.createDataFrame(
        [(1, [("Zoë", "Plantëd")], {"ssn": "123-45-6789"}), (2, [("Alice", "Other")], {"mrn": "M1"})], person_ddl
    ).write.format("delta").save(str(lakehouse / "silver" / "person"))
    # The current snapshot is clean, but the first version's file is still on disk until VACUUM: it is found.
    spark.createDataFrame([(2, [("Alice", "Other")], {"mrn": "M1"})], person_ddl).write.format("delta").mode(
        "overwrite"
    ).save(str(lakehouse / "silver" / "person"))
    # Digits of the SSN inside a hex pseudonym are not a hit (whole-word matching).
    spark.createDataFrame(
        [(11, "021", "ab123456789cd"), (12, "000", None)], "person_id long, zip string, pid string"
    ).write.format("delta").save(str(lakehouse / "research" / "person"))
    spark.createDataFrame([("MRN-42", 1), ("M7", 2)], "note string, part int").write.partitionBy("part").parquet(
        str(lakehouse / "gold" / "extract")
    )

    with caplog.at_level(logging.DEBUG, logger="medspark.privacy.scan"):
        result = count_identifiers(spark, str(lakehouse), NEEDLES).cache()
    try:
        expected = spark.createDataFrame(
            [
                ("gold/extract", "ssn", 0, 0),
                ("gold/extract", "family_name", 0, 0),
                ("gold/extract", "mrn", 1, 1),
                ("gold/extract", "phone", 0, 0),
                ("research/person", "ssn", 0, 0),
                ("research/person", "family_name", 0, 0),
                ("research/person", "mrn", 0, 0),
                ("research/person", "phone", 0, 0),
                ("silver/person", "ssn", 1, 1),
                ("silver/person", "family_name", 1, 1),
                ("silver/person", "mrn", 0, 0),
                ("silver/person", "phone", 0, 0),
            ],
            "table string, kind string, rows_with_hits long, needles_hit long",
        )
        assertDataFrameEqual(result.drop("rows_scanned"), expected)
        scanned = {row["table"]: row["rows_scanned"] for row in result.where("kind = 'ssn'").collect()}
        assert scanned["gold/extract"] == 2
        assert scanned["silver/person"] > 3  # both versions' rows plus the Delta log lines
    finally:
        result.unpersist()
    assert find_identifiers(spark, str(lakehouse / "gold"), NEEDLES) == {("extract", "mrn"): 1}
    assert find_identifiers(spark, str(lakehouse / "research"), NEEDLES) == {}
    for values in NEEDLES.values():
        for value in values:
            if value.strip():
                assert value.lower() not in caplog.text.lower()


def test_scan_of_a_missing_root_is_a_usage_error(spark, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="scan root does not exist"):
        find_identifiers(spark, str(tmp_path / "nowhere"), NEEDLES)
