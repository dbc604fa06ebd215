"""Synthea CSV parser: literal lines -> expected rows, header versions and order, quoting, every quarantine reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import StructType
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from medspark.ingestion.contract import SourceFile
from medspark.ingestion.synthea_csv import parse as csv_parse
from medspark.ingestion.synthea_csv.parse import (
    FORMAT,
    header_lines,
    join_quoted_line_breaks,
    parse_synthea_csv,
    read_header,
    recognise_table,
    sniff,
)

LINES = "_source_file string, _record_position long, _raw string"
UTC = dt.UTC

PATIENTS_V30 = (
    "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,"
    "BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE"
)
PATIENTS_V33 = (
    "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,MIDDLE,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,"
    "GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,FIPS,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE,INCOME"
)
ENCOUNTERS = (
    "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,BASE_ENCOUNTER_COST,"
    "TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION"
)
OBSERVATIONS = "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE"
MEDICATIONS = (
    "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,"
    "REASONCODE,REASONDESCRIPTION"
)
ALLERGIES_V2 = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"


def _inputs(spark: SparkSession, files: Mapping[str, Sequence[str | bytes]]) -> tuple[DataFrame, list[SourceFile]]:
    """Lines of literal files (1-based line numbers, blank lines skipped as the reader does) + planned files.

    A ``bytes`` line may hold invalid UTF-8: it reaches ``_raw`` through a binary -> string cast, which keeps
    the bytes, as Spark's text reader does.
    """
    rows, sources = [], []
    for path, lines in files.items():
        encoded = [line if isinstance(line, bytes) else line.encode() for line in lines]
        rows += [(path, n, bytearray(line)) for n, line in enumerate(encoded, start=1) if line.strip(b" ")]
        content = b"\n".join(encoded) + b"\n"
        sources.append(SourceFile(path, len(content), 0, "synthea-csv", content[: 64 * 1024]))
    frame = spark.createDataFrame(rows, "_source_file string, _record_position long, _bytes binary")
    return frame.select("_source_file", "_record_position", sf.col("_bytes").cast("string").alias("_raw")), sources


def test_patients_two_synthea_versions_by_header(spark: SparkSession) -> None:
    # v3.0 (no MIDDLE/FIPS/INCOME) and v3.3 headers in one batch; v3.3 also reordered (INCOME before Id).
    v33_reordered = "INCOME," + PATIENTS_V33.removesuffix(",INCOME")
    inputs, files = _inputs(
        spark,
        {
            "file:/in/patients.csv": [
                PATIENTS_V30,
                "p1,1980-01-31,2020-05-06,999-11-1111,S1,,Mr.,Al,Bo,,,M,white,nonhispanic,M,"
                "Boston  MA  US,1 Main St,Boston,Massachusetts,Suffolk County,02110,42.5,-71.25,1234.5,10",
            ],
            "file:/in/patients-00002.csv": [
                v33_reordered,
                "52000,p2,2001-02-03,,999-22-2222,,,,Cy,Di,Ed,,,,asian,hispanic,F,Here,2 Elm St,Worcester,"
                "Massachusetts,Worcester County,25027,01602,42,-71.8,0.00,99999999.99",
            ],
        },
    )
    out = parse_synthea_csv(inputs, files)
    assert sorted(out) == ["synthea_other", "synthea_patients"]
    got = out["synthea_patients"].select(
        "_source_file",
        "_record_position",
        "Id",
        "BIRTHDATE",
        "DEATHDATE",
        "FIRST",
        "MIDDLE",
        "LAST",
        "GENDER",
        "COUNTY",
        "FIPS",
        "ZIP",
        "LAT",
        "LON",
        "HEALTHCARE_EXPENSES",
        "HEALTHCARE_COVERAGE",
        "INCOME",
        "_quarantine_reason",
    )
    expected = spark.createDataFrame(
        [
            (
                "file:/in/patients.csv",
                2,
                "p1",
                dt.date(1980, 1, 31),
                dt.date(2020, 5, 6),
                "Al",
                None,
                "Bo",
                "M",
                "Suffolk County",
                None,
                "02110",
                42.5,
                -71.25,
                Decimal("1234.50"),
                Decimal("10.00"),
                None,
                None,
            ),
            (
                "file:/in/patients-00002.csv",
                2,
                "p2",
                dt.date(2001, 2, 3),
                None,
                "Cy",
                "Di",
                "Ed",
                "F",
                "Worcester County",
                "25027",
                "01602",
                42.0,
                -71.8,
                Decimal("0.00"),
                Decimal("99999999.99"),
                52000,
                None,
            ),
        ],
        "_source_file string, _record_position long, Id string, BIRTHDATE date, DEATHDATE date, FIRST string, "
        "MIDDLE string, LAST string, GENDER string, COUNTY string, FIPS string, ZIP string, LAT double, "
        "LON double, HEALTHCARE_EXPENSES decimal(18,2), HEALTHCARE_COVERAGE decimal(18,2), INCOME long, "
        "_quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)
    assert out["synthea_other"].isEmpty()


def test_entity_schemas_are_the_contract(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/a/patients.csv": [PATIENTS_V30],
            "file:/a/encounters.csv": [ENCOUNTERS],
            "file:/a/conditions.csv": ["START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"],
            "file:/a/medications.csv": [MEDICATIONS],
            "file:/a/procedures.csv": [
                "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION"
            ],
            "file:/a/observations.csv": [OBSERVATIONS],
        },
    )
    out = parse_synthea_csv(inputs, files)
    lineage = "_source_file string, _record_position long, _raw string"
    expected = {
        "synthea_patients": "Id string, BIRTHDATE date, DEATHDATE date, SSN string, DRIVERS string, "
        "PASSPORT string, PREFIX string, FIRST string, MIDDLE string, LAST string, SUFFIX string, "
        "MAIDEN string, MARITAL string, RACE string, ETHNICITY string, GENDER string, BIRTHPLACE string, "
        "ADDRESS string, CITY string, STATE string, COUNTY string, FIPS string, ZIP string, LAT double, "
        "LON double, HEALTHCARE_EXPENSES decimal(18,2), HEALTHCARE_COVERAGE decimal(18,2), INCOME long",
        "synthea_encounters": "Id string, START timestamp, STOP timestamp, PATIENT string, ORGANIZATION string, "
        "PROVIDER string, PAYER string, ENCOUNTERCLASS string, CODE string, DESCRIPTION string, "
        "BASE_ENCOUNTER_COST decimal(18,2), TOTAL_CLAIM_COST decimal(18,2), PAYER_COVERAGE decimal(18,2), "
        "REASONCODE string, REASONDESCRIPTION string",
        "synthea_conditions": "START date, STOP date, PATIENT string, ENCOUNTER string, SYSTEM string, "
        "CODE string, DESCRIPTION string",
        "synthea_medications": "START timestamp, STOP timestamp, PATIENT string, PAYER string, ENCOUNTER string, "
        "CODE string, DESCRIPTION string, BASE_COST decimal(18,2), PAYER_COVERAGE decimal(18,2), DISPENSES int, "
        "TOTALCOST decimal(18,2), REASONCODE string, REASONDESCRIPTION string",
        "synthea_procedures": "START timestamp, STOP timestamp, PATIENT string, ENCOUNTER string, SYSTEM string, "
        "CODE string, DESCRIPTION string, BASE_COST decimal(18,2), REASONCODE string, REASONDESCRIPTION string",
        "synthea_observations": "DATE timestamp, PATIENT string, ENCOUNTER string, CATEGORY string, CODE string, "
        "DESCRIPTION string, VALUE string, UNITS string, TYPE string, VALUE_NUMERIC double",
        "synthea_other": "synthea_table string, fields map<string,string>",
    }
    assert sorted(out) == sorted(expected)
    for entity, columns in expected.items():
        schema = StructType.fromDDL(f"{lineage}, {columns}, _quarantine_reason string")
        assertSchemaEqual(out[entity].schema, schema)
    assert set(FORMAT.entities) == set(expected)


def test_encounters_timestamps_quoting_and_crlf(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/b/encounters.csv": [
                ENCOUNTERS + "\r",
                "e1,2019-02-17T05:07:38Z,2019-02-17T05:22:38Z,p1,o1,pr1,pay1,ambulatory,185345009,"
                '"Encounter for symptom, acute","129.16",0.5,"0",,\r',
                'e2,2019-02-17T05:07:38.250+01:00,,p1,o1,pr1,pay1,wellness,1,"He said ""hi"", twice",1,2,3,4,C:\\temp',
            ]
        },
    )
    got = parse_synthea_csv(inputs, files)["synthea_encounters"].select(
        "_record_position",
        "Id",
        "START",
        "STOP",
        "DESCRIPTION",
        "BASE_ENCOUNTER_COST",
        "TOTAL_CLAIM_COST",
        "PAYER_COVERAGE",
        "REASONCODE",
        "REASONDESCRIPTION",
        "_quarantine_reason",
    )
    expected = spark.createDataFrame(
        [
            (
                2,
                "e1",
                dt.datetime(2019, 2, 17, 5, 7, 38, tzinfo=UTC),
                dt.datetime(2019, 2, 17, 5, 22, 38, tzinfo=UTC),
                "Encounter for symptom, acute",
                Decimal("129.16"),
                Decimal("0.50"),
                Decimal("0.00"),
                None,
                None,
                None,
            ),
            (
                3,
                "e2",
                dt.datetime(2019, 2, 17, 4, 7, 38, 250000, tzinfo=UTC),
                None,
                'He said "hi", twice',
                Decimal("1.00"),
                Decimal("2.00"),
                Decimal("3.00"),
                "4",
                "C:\\temp",
                None,
            ),
        ],
        "_record_position long, Id string, START timestamp, STOP timestamp, DESCRIPTION string, "
        "BASE_ENCOUNTER_COST decimal(18,2), TOTAL_CLAIM_COST decimal(18,2), PAYER_COVERAGE decimal(18,2), "
        "REASONCODE string, REASONDESCRIPTION string, _quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)


def test_field_count_mismatch_is_detected(spark: SparkSession) -> None:
    # from_csv alone would pad a short line with nulls and drop a long line's extra fields silently.
    inputs, files = _inputs(
        spark,
        {
            "file:/c/conditions.csv": [
                "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
                "2020-01-01,,p1,e1,123,ok",
                "2020-01-01,,p1,e1,123",  # 5 fields
                "2020-01-01,,p1,e1,123,too,many",  # 7 fields
                "2020-01-01,,p1,e1,123,ok,",  # a trailing comma is a 7th (empty) field
                '2020-01-01,,p1,e1,123,"a, quoted, comma"',  # commas inside quotes are not separators
                '2020-01-01,,p1,e1,123,"unterminated, quote',
                # a quoted field with a line break: parse_synthea_csv alone does not join lines (the format's
                # join_quoted_line_breaks does, tested below), so both are quarantined; from_csv alone would keep
                # "first line" as a whole record
                '2020-01-01,,p1,e1,123,"first line',
                'second line"',
                '2020-01-01,,p1,e1,123,"say ""hi"""',  # doubled quotes: an even count, a valid record
            ]
        },
    )
    got = parse_synthea_csv(inputs, files)["synthea_conditions"].select(
        "_record_position", "DESCRIPTION", "_quarantine_reason"
    )
    expected = spark.createDataFrame(
        [
            (2, "ok", None),
            (3, None, "csv_field_count"),
            (4, "too", "csv_field_count"),
            (5, "ok", "csv_field_count"),
            (6, "a, quoted, comma", None),
            (7, "unterminated, quote", "csv_unbalanced_quotes"),
            (8, "first line", "csv_unbalanced_quotes"),
            (9, None, "csv_unbalanced_quotes"),
            (10, 'say "hi"', None),
        ],
        "_record_position long, DESCRIPTION string, _quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)


CONDITIONS = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"


def _conditions(spark: SparkSession, lines: Sequence[str]) -> DataFrame:
    """The whole format (FORMAT.parse: lines joined, then parsed) on one conditions file."""
    inputs, files = _inputs(spark, {"file:/q/conditions.csv": [CONDITIONS, *lines]})
    return FORMAT.parse(inputs, files)["synthea_conditions"]


def test_quoted_line_breaks_are_joined_into_one_record(spark: SparkSession) -> None:
    got = _conditions(
        spark,
        [
            "2020-01-01,,p1,e1,1,ok",  # line 2
            '2020-01-01,,p1,e1,2,"first line',  # 3-4: one record
            'second line"',
            '2020-01-01,,p1,e1,3,"a',  # 5-8: one record, a blank line inside its quoted field
            "b",
            "",
            'c, with ""quotes"" and a comma"',
            '2020-01-01,,p1,e1,4,"say ""hi"""',  # 9: even, a record of its own
            '2020-01-01,,p1,e1,5,"',  # 10-11: the field is a lone line break
            '"',
        ],
    ).select("_record_position", "_raw", "CODE", "DESCRIPTION", "_record_lines", "_quarantine_reason")
    expected = spark.createDataFrame(
        [
            (2, "2020-01-01,,p1,e1,1,ok", "1", "ok", 1, None),
            (3, '2020-01-01,,p1,e1,2,"first line\nsecond line"', "2", "first line\nsecond line", 2, None),
            (5, '2020-01-01,,p1,e1,3,"a\nb\n\nc, with ""quotes"" and a comma"', "3",
             'a\nb\n\nc, with "quotes" and a comma', 3, None),
            (9, '2020-01-01,,p1,e1,4,"say ""hi"""', "4", 'say "hi"', 1, None),
            (10, '2020-01-01,,p1,e1,5,"\n"', "5", "\n", 2, None),
        ],
        "_record_position long, _raw string, CODE string, DESCRIPTION string, _record_lines int, "
        "_quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)


def test_stray_quotes_are_not_joined_and_swallow_nothing(spark: SparkSession) -> None:
    # Lines 2 and 5 each hold a stray quote. Joined, 2-5 would not be one RFC 4180 record (a quoted field
    # followed by more text), so both stay single, quarantined records and the valid lines between them land.
    got = _conditions(
        spark,
        [
            '2020-01-01,,p1,e1,1,5\'10" tall',  # 2
            "2020-01-01,,p1,e1,2,ok",
            "2020-01-01,,p1,e1,3,ok",
            '2020-01-01,,p1,e1,4,"open, never closed',  # 5
            '2020-01-01,,p1,e1,5,"after"',  # 6: even
            '2020-01-01,,p1,e1,6,"last',  # 7: odd and alone
        ],
    ).select("_record_position", "CODE", "_record_lines", "_quarantine_reason")
    expected = spark.createDataFrame(
        [
            (2, "1", 1, "csv_unbalanced_quotes"),
            (3, "2", 1, None),
            (4, "3", 1, None),
            (5, "4", 1, "csv_unbalanced_quotes"),
            (6, "5", 1, None),
            (7, "6", 1, "csv_unbalanced_quotes"),
        ],
        "_record_position long, CODE string, _record_lines int, _quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)


def test_a_joined_record_must_match_the_header_and_the_span_limit(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_parse, "MAX_RECORD_LINES", 3)
    got = _conditions(
        spark,
        [
            '2020-01-01,,p1,e1,1,"one',  # 2-3: a well-formed record but 7 fields for a 6-column header
            'two",extra',
            '2020-01-01,,p1,e1,2,"1',  # 4-7: 4 lines, over the limit of 3: not joined
            "2",
            "3",
            '4"',
            '2020-01-01,,p1,e1,3,"1',  # 8-10: 3 lines, joined
            "2",
            '3"',
        ],
    ).select("_record_position", "CODE", "_record_lines", "_quarantine_reason")
    expected = spark.createDataFrame(
        [
            (2, "1", 1, "csv_unbalanced_quotes"),
            (3, None, 1, "csv_unbalanced_quotes"),
            (4, "2", 1, "csv_unbalanced_quotes"),
            (5, None, 1, "csv_field_count"),
            (6, None, 1, "csv_field_count"),
            (7, None, 1, "csv_unbalanced_quotes"),
            (8, "3", 3, None),
        ],
        "_record_position long, CODE string, _record_lines int, _quarantine_reason string",
    )
    assertDataFrameEqual(got, expected)


def test_lines_without_odd_quotes_pass_through_unchanged(spark: SparkSession) -> None:
    inputs, files = _inputs(spark, {"file:/q/conditions.csv": [CONDITIONS, '2020-01-01,,p1,e1,1,"a, b"']})
    assert join_quoted_line_breaks(inputs, files) is inputs


def test_each_quarantine_reason(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/d/patients.csv": [
                PATIENTS_V30,
                "p1,1980-02-30,,s,,,,A,B,,,,,,F,,,,,,,1,2,3,4",  # impossible date
                ",1980-02-03,,s,,,,A,B,,,,,,F,,,,,,,1,2,3,4",  # no Id
                "p3,1980-02-03,1999-1-2,s,,,,A,B,,,,,,F,,,,,,,1,2,3,4",  # not YYYY-MM-DD
                "p4,1980-02-03,,s,,,,A,B,,,,,,F,,,,,,,north,2,3,4",  # LAT not a number
                "p5,1980-02-03,,s,,,,A,B,,,,,,F,,,,,,,1,2,1e999999,4",  # HEALTHCARE_EXPENSES overflows
                b"p6,1980-02-03,,s,,,,A\xff\xfeB,B,,,,,,F,,,,,,,1,2,3,4",  # invalid UTF-8
                "p7,+12019-02-03,,s,,,,A,B,,,,,,F,,,,,,,1,2,3,4",  # Spark's 'yyyy' alone would accept this
            ],
            "file:/d/observations.csv": [
                OBSERVATIONS,
                "2020-01-01T00:00:00Z,p1,e1,vital-signs,8302-2,Body Height,abc,cm,numeric",
                "2020-01-01T00:00:00Z,p1,e1,survey,72166-2,Tobacco,Never smoked,,text",
                "2020-01-01T00:00:00Z,,e1,vital-signs,8302-2,Body Height,1,cm,numeric",
                "2020-13-01T00:00:00Z,p1,e1,vital-signs,8302-2,Body Height,1.5,cm,numeric",
                "2020-01-01 00:00:00,p1,e1,vital-signs,8302-2,Body Height,1.5,cm,numeric",
            ],
            "file:/d/medications.csv": [
                MEDICATIONS,
                "2020-01-01T00:00:00Z,,p1,pay,e1,1,Drug,1.5,0,12.0,18,,",  # DISPENSES must be whole
                "2020-01-01T00:00:00Z,,p1,pay,e1,1,Drug,1.5,0,12,18,,",
            ],
        },
    )
    out = parse_synthea_csv(inputs, files)
    patients = out["synthea_patients"].select("_record_position", "Id", "BIRTHDATE", "_quarantine_reason")
    assertDataFrameEqual(
        patients,
        spark.createDataFrame(
            [
                (2, "p1", None, "invalid_date:BIRTHDATE"),
                (3, None, dt.date(1980, 2, 3), "missing_identifier"),
                (4, "p3", dt.date(1980, 2, 3), "invalid_date:DEATHDATE"),
                (5, "p4", dt.date(1980, 2, 3), "invalid_number:LAT"),
                (6, "p5", dt.date(1980, 2, 3), "invalid_number:HEALTHCARE_EXPENSES"),
                (7, "p6", dt.date(1980, 2, 3), "invalid_encoding"),
                (8, "p7", None, "invalid_date:BIRTHDATE"),
            ],
            "_record_position long, Id string, BIRTHDATE date, _quarantine_reason string",
        ),
    )
    observations = out["synthea_observations"].select(
        "_record_position", "VALUE", "VALUE_NUMERIC", "_quarantine_reason"
    )
    assertDataFrameEqual(
        observations,
        spark.createDataFrame(
            [
                (2, "abc", None, "invalid_number:VALUE"),
                (3, "Never smoked", None, None),
                (4, "1", 1.0, "missing_identifier"),
                (5, "1.5", 1.5, "invalid_date:DATE"),
                (6, "1.5", 1.5, "invalid_date:DATE"),
            ],
            "_record_position long, VALUE string, VALUE_NUMERIC double, _quarantine_reason string",
        ),
    )
    medications = out["synthea_medications"].select("_record_position", "DISPENSES", "_quarantine_reason")
    assertDataFrameEqual(
        medications,
        spark.createDataFrame(
            [(2, None, "invalid_number:DISPENSES"), (3, 12, None)],
            "_record_position long, DISPENSES int, _quarantine_reason string",
        ),
    )


def test_other_tables_unknown_headers_and_unplanned_files(spark: SparkSession) -> None:
    inputs, files = _inputs(
        spark,
        {
            "file:/e/allergies.csv": [ALLERGIES_V2, "2020-01-01,,p1,e1,300916003,Latex", "2020-01-01,,,e1,1,x"],
            "file:/e/extra.csv": ["PATIENT,ENCOUNTER,NOTE", "p1,e1,free text"],  # Synthea-like, unknown table
            "file:/e/forced.csv": ["a,b", "1,2"],  # given to this parser although it is not Synthea
        },
    )
    unplanned = spark.createDataFrame([("file:/e/lost.csv", 1, "x,y")], LINES)
    out = parse_synthea_csv(inputs.unionByName(unplanned), files)
    assert sorted(out) == ["synthea_other"]  # v2 allergies == conditions header: the file name decides
    expected = spark.createDataFrame(
        [
            (
                "file:/e/allergies.csv",
                2,
                "allergies",
                {
                    "START": "2020-01-01",
                    "STOP": None,
                    "PATIENT": "p1",
                    "ENCOUNTER": "e1",
                    "CODE": "300916003",
                    "DESCRIPTION": "Latex",
                },
                None,
            ),
            (
                "file:/e/allergies.csv",
                3,
                "allergies",
                {
                    "START": "2020-01-01",
                    "STOP": None,
                    "PATIENT": None,
                    "ENCOUNTER": "e1",
                    "CODE": "1",
                    "DESCRIPTION": "x",
                },
                "missing_identifier",
            ),
            ("file:/e/extra.csv", 2, "unknown", {"PATIENT": "p1", "ENCOUNTER": "e1", "NOTE": "free text"}, None),
            ("file:/e/forced.csv", 2, "unknown", {"a": "1", "b": "2"}, "csv_unknown_table"),
            ("file:/e/lost.csv", 1, "unknown", None, "csv_unknown_table"),
        ],
        "_source_file string, _record_position long, synthea_table string, fields map<string,string>, "
        "_quarantine_reason string",
    )
    assertDataFrameEqual(out["synthea_other"].drop("_raw"), expected)


def test_header_after_blank_lines_and_bom(spark: SparkSession) -> None:
    header = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"
    inputs, files = _inputs(
        spark,
        {
            "file:/f/blank-first.csv": ["", header, "2020-01-01,,p1,e1,1,x"],
            "file:/f/bom.csv": [b"\xef\xbb\xbf" + header.encode(), "2020-01-02,,p2,e2,2,y"],
        },
    )
    got = parse_synthea_csv(inputs, files)["synthea_conditions"].select(
        "_source_file", "_record_position", "START", "PATIENT"
    )
    expected = spark.createDataFrame(
        [("file:/f/blank-first.csv", 3, dt.date(2020, 1, 1), "p1"), ("file:/f/bom.csv", 2, dt.date(2020, 1, 2), "p2")],
        "_source_file string, _record_position long, START date, PATIENT string",
    )
    assertDataFrameEqual(got, expected)
    assert [header_lines(f) for f in files] == [1, 1]


REAL_HEADERS = {
    "patients": PATIENTS_V30,
    "encounters": ENCOUNTERS,
    "observations": OBSERVATIONS,
    "medications": MEDICATIONS,
    "conditions": "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION",
    "procedures": "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
    "immunizations": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST",
    "supplies": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,QUANTITY",
    "devices": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,UDI",
    "careplans": "Id,START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,REASONCODE,REASONDESCRIPTION",
    "organizations": "Id,NAME,ADDRESS,CITY,STATE,ZIP,LAT,LON,PHONE,REVENUE,UTILIZATION",
    "providers": "Id,ORGANIZATION,NAME,GENDER,SPECIALITY,ADDRESS,CITY,STATE,ZIP,LAT,LON,UTILIZATION",
    "payer_transitions": "PATIENT,MEMBERID,START_YEAR,END_YEAR,PAYER,SECONDARY_PAYER,OWNERSHIP,OWNERNAME",
}


@pytest.mark.parametrize("table", sorted(REAL_HEADERS))
def test_tables_recognised_by_content_alone(table: str) -> None:
    header = REAL_HEADERS[table]
    assert recognise_table(header.split(","), "data-00001.csv") == table
    assert recognise_table(header.lower().split(","), "") == table  # case-insensitive
    assert sniff(f"{header}\n1,2\n".encode(), "x.txt")


def test_recognition_edge_cases() -> None:
    v2_procedures = "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,COST,REASONCODE,REASONDESCRIPTION"
    assert recognise_table(v2_procedures.split(","), "") == "procedures"
    assert recognise_table(ALLERGIES_V2.split(","), "") == "conditions"
    assert recognise_table(ALLERGIES_V2.split(","), "/x/allergies-00003.csv") == "allergies"
    assert recognise_table((PATIENTS_V33 + ",NEW_COLUMN").split(","), "") == "patients"  # a future column
    assert recognise_table(["Id", "BIRTHDATE", "FOO"], "") == "unknown"  # too far from patients
    assert recognise_table(["PATIENT", "ENCOUNTER", "X"], "") == "unknown"
    assert not sniff(b"Time,Parameter,Value\n00:00,RecordID,132539\n", "132539.txt")
    assert not sniff(b'{"resourceType": "Patient", "id": "p1"}\n', "Patient.ndjson")
    assert not sniff(b"a,b,c\n1,2,3\n", "table.csv")
    assert not sniff(b"", "patients.csv")
    assert read_header(b'\n \nA,"B,C"\r\n1,2') == (3, ("A", "B,C"))
    assert read_header(b"\xef\xbb\xbfA,B\n") == (1, ("A", "B"))
    assert read_header(b"\n  \n") is None
