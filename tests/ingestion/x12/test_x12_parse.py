"""The x12-837 source format through Spark: sniffing, the output schema and rows, and quarantine reasons."""

from __future__ import annotations

import os
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import DataType, StructType
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual
from x12_builder import (
    billing_provider,
    functional_group,
    header,
    interchange,
    professional_claim,
    professional_file,
    render,
    subscriber,
    transaction_set,
)

from medspark.ingestion.x12.parse import ENTITY, FORMAT, sniff_x12_837

# mapInArrow runs the parser in Python workers, which need this interpreter (pyarrow is not on the system one).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

DATA = Path(__file__).parent / "data"
FILES_SCHEMA = "_source_file string, _content binary"


def claims_of(spark: SparkSession, files: dict[str, bytes]) -> DataFrame:
    inputs = spark.createDataFrame(list(files.items()), FILES_SCHEMA)
    return FORMAT.parse(inputs, [])[ENTITY]


# -- sniff -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["837p-riverside.x12", "837i-mercy.x12"])
def test_sniff_recognises_the_samples(name: str) -> None:
    assert sniff_x12_837((DATA / name).read_bytes()[:65536], "anything.txt")


def test_sniff_reads_the_declared_separators_and_skips_a_bom() -> None:
    text = render(professional_file(professional_claim()), element="|", component=">", terminator="\n")

    assert sniff_x12_837(b"\xef\xbb\xbf\r\n" + text.encode(), "claims.dat")


@pytest.mark.parametrize(
    "head",
    [
        b"ISA*00*          *00*          *ZZ*S              *ZZ*R              *240115*0930*^*00501*000000001*0*T*:~"
        b"GS*HP*S*R*20240115*0930*1*X*005010X221A1~ST*835*0001*005010X221A1~",
        b"MSH|^~\\&|LAB|HOSP|||20240115||ORU^R01|1|P|2.5\r",
        b"Id,BIRTHDATE,DEATHDATE\n",
        b"",
    ],
    ids=["x12-835", "hl7v2", "csv", "empty"],
)
def test_sniff_rejects_other_content(head: bytes) -> None:
    assert not sniff_x12_837(head, "claims.x12")


# -- parse -----------------------------------------------------------------------------------------------------


def test_format_declares_files_mode_and_one_entity() -> None:
    assert (FORMAT.name, FORMAT.read_mode, FORMAT.entities) == ("x12-837", "files", ("x12_837_claims",))


def test_parse_gives_the_contract_schema(spark: SparkSession) -> None:
    claims = claims_of(spark, {})

    expected = DataType.fromDDL(
        "_source_file STRING, _record_position BIGINT, _raw STRING, transaction_type STRING,"
        " interchange_control_number STRING, group_control_number STRING, transaction_set_control_number STRING,"
        " billing_provider_npi STRING, billing_provider_name STRING, subscriber_member_id STRING,"
        " subscriber_last_name STRING, subscriber_first_name STRING, subscriber_birth_date DATE,"
        " subscriber_sex STRING, subscriber_ssn STRING, payer_name STRING, payer_id STRING,"
        " patient_relationship_code STRING, patient_last_name STRING, patient_first_name STRING,"
        " patient_birth_date DATE, patient_sex STRING, claim_id STRING, total_charge DECIMAL(18,2),"
        " place_of_service STRING, facility_type_code STRING, claim_frequency STRING, service_date_from DATE,"
        " service_date_to DATE, admission_date DATE, diagnoses ARRAY<STRUCT<qualifier: STRING, code: STRING>>,"
        " principal_diagnosis STRING, service_lines ARRAY<STRUCT<line_number: INT, procedure_qualifier: STRING,"
        " procedure_code: STRING, modifiers: ARRAY<STRING>, revenue_code: STRING, charge: DECIMAL(18,2),"
        " unit_type: STRING, units: DOUBLE, service_date: DATE>>, _quarantine_reason STRING"
    )
    assert isinstance(expected, StructType)
    assertSchemaEqual(claims.schema, expected)


def test_parse_reads_the_sample_files_one_row_per_claim(spark: SparkSession) -> None:
    claims = claims_of(spark, {name: (DATA / name).read_bytes() for name in ("837p-riverside.x12", "837i-mercy.x12")})

    columns = ["_source_file", "_record_position", "transaction_type", "claim_id", "total_charge",
               "billing_provider_npi", "subscriber_member_id", "subscriber_birth_date", "payer_id",
               "patient_first_name", "place_of_service", "facility_type_code", "service_date_from",
               "service_date_to", "admission_date", "principal_diagnosis", "_quarantine_reason"]
    expected = spark.createDataFrame(
        [
            ("837p-riverside.x12", 1, "837P", "RFM24031501", Decimal("185.00"), "1437156722", "BHP778812301",
             date(1977, 4, 12), "BHP01", None, "11", None, date(2024, 3, 15), date(2024, 3, 15), None, "J0190",
             None),
            ("837p-riverside.x12", 2, "837P", "RFM24031802", Decimal("260.00"), "1437156722", "BHP554400102",
             date(1982, 11, 30), "BHP01", "AMARA", "11", None, date(2024, 3, 18), date(2024, 3, 18), None, "J069",
             None),
            ("837i-mercy.x12", 1, "837I", "MGH2403020117", Decimal("8450.75"), "1730282216", "1EG4TE5MK73",
             date(1945, 7, 22), "14212", None, None, "11", date(2024, 3, 2), date(2024, 3, 5), date(2024, 3, 2),
             "J189", None),
            ("837i-mercy.x12", 2, "837I", "MGH2403100442", Decimal("612.00"), "1730282216", "XQB901223344",
             date(1979, 2, 3), "BCBSMA", "GIULIA", None, "13", date(2024, 3, 10), date(2024, 3, 10), None,
             "S52501A", None),
        ],
        "_source_file string, _record_position bigint, transaction_type string, claim_id string,"
        " total_charge decimal(18,2), billing_provider_npi string, subscriber_member_id string,"
        " subscriber_birth_date date, payer_id string, patient_first_name string, place_of_service string,"
        " facility_type_code string, service_date_from date, service_date_to date, admission_date date,"
        " principal_diagnosis string, _quarantine_reason string",
    )
    assertDataFrameEqual(claims.select(columns), expected)


def test_parse_fills_diagnoses_service_lines_and_raw(spark: SparkSession) -> None:
    segments = professional_file(
        professional_claim("PC7", "180.5", diagnoses=("M545", "G8929"),
                           lines=[("97110:GP", "120", "2", "20240201"), ("97140:GP:59", "60.5", "1", "20240202")]),
    )
    claims = claims_of(spark, {"p.x12": render(segments, line_break="\n").encode()})

    expected = spark.createDataFrame(
        [
            Row(
                _record_position=1,
                _raw="HL*1**20*1~PRV*BI*PXC*207Q00000X~NM1*85*2*VALLEY FAMILY CLINIC*****XX*1245319599~"
                "N3*100 MAIN ST~N4*SPRINGFIELD*MA*01103~REF*EI*123456789~HL*2*1*22*0~SBR*P*18*GRP100******CI~"
                "NM1*IL*1*DOE*JANE****MI*MBR1001~N3*12 ELM ST~N4*SPRINGFIELD*MA*01104~DMG*D8*19800115*F~"
                "NM1*PR*2*ACME HEALTH PLAN*****PI*ACME01~CLM*PC7*180.5***11:B:1*Y*A*Y*Y~REF*D9*TRACEPC7~"
                "HI*ABK:M545*ABF:G8929~LX*1~SV1*HC:97110:GP*120*UN*2***1~DTP*472*D8*20240201~LX*2~"
                "SV1*HC:97140:GP:59*60.5*UN*1***1~DTP*472*D8*20240202~",
                diagnoses=[Row(qualifier="ABK", code="M545"), Row(qualifier="ABF", code="G8929")],
                service_lines=[
                    Row(line_number=1, procedure_qualifier="HC", procedure_code="97110", modifiers=["GP"],
                        revenue_code=None, charge=Decimal("120.00"), unit_type="UN", units=2.0,
                        service_date=date(2024, 2, 1)),
                    Row(line_number=2, procedure_qualifier="HC", procedure_code="97140", modifiers=["GP", "59"],
                        revenue_code=None, charge=Decimal("60.50"), unit_type="UN", units=1.0,
                        service_date=date(2024, 2, 2)),
                ],
                _quarantine_reason=None,
            )
        ],
        "_record_position bigint, _raw string, diagnoses array<struct<qualifier: string, code: string>>,"
        " service_lines array<struct<line_number: int, procedure_qualifier: string, procedure_code: string,"
        " modifiers: array<string>, revenue_code: string, charge: decimal(18,2), unit_type: string,"
        " units: double, service_date: date>>, _quarantine_reason string",
    )
    assertDataFrameEqual(
        claims.select("_record_position", "_raw", "diagnoses", "service_lines", "_quarantine_reason"), expected
    )


def test_parse_quarantines_with_one_reason_per_row(spark: SparkSession) -> None:
    encoding = render(professional_file(professional_claim("E1"), professional_claim("E2"))).encode()
    encoding = encoding.replace(b"REF*D9*TRACEE2", b"REF*D9*TRACE\xff")
    se_count = professional_file(professional_claim("S1"))
    se_count[-3] = "SE*3*0001"
    no_member = header() + billing_provider() + subscriber(member_id="") + professional_claim("M1")
    no_charge = professional_claim("B1")
    no_charge[0] = "CLM*B1****11:B:1*Y*A*Y*Y"
    bad_birth = header() + billing_provider() + subscriber(birth="19790229") + professional_claim("D1")
    files = {
        "encoding.x12": encoding,
        "envelope.x12": render(se_count).encode(),
        "no-isa.x12": b"GS*HC*A*B~ST*837*0001~",
        "member.x12": render(interchange([functional_group([transaction_set(no_member)])])).encode(),
        "charge.x12": render(professional_file(no_charge)).encode(),
        "birth.x12": render(interchange([functional_group([transaction_set(bad_birth)])])).encode(),
    }

    claims = claims_of(spark, files)

    expected = spark.createDataFrame(
        [
            ("encoding.x12", 1, "E1", None),
            ("encoding.x12", 2, "E2", "invalid_encoding"),
            ("envelope.x12", 1, "S1", "x12_bad_envelope:SE01"),
            ("no-isa.x12", 0, None, "x12_bad_envelope:ISA"),
            ("member.x12", 1, "M1", "missing_identifier"),
            ("charge.x12", 1, "B1", "x12_bad_claim"),
            ("birth.x12", 1, "D1", "invalid_date:DMG"),
        ],
        "_source_file string, _record_position bigint, claim_id string, _quarantine_reason string",
    )
    assertDataFrameEqual(claims.select("_source_file", "_record_position", "claim_id", "_quarantine_reason"),
                         expected)
