"""HL7 v2 staging: literal messages (parsed by the bronze parser) -> expected records of every kind."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual
from staging_bronze import MODIFIED, expected, ids, ts

from medspark.ingestion.hl7v2.parse import parse_hl7v2_messages
from medspark.silver.sources import (
    CARE_SITE_RECORD,
    EVENT_RECORD,
    PERSON_RECORD,
    PROVIDER_RECORD,
    UNSTAGED_RECORD,
    VISIT_RECORD,
)
from medspark.silver.sources.hl7v2 import STAGERS

ADMIT = "\r".join([
    "MSH|^~\\&|ADT|MEDSPARK GENERAL^2.16.840.1.113883.3.4242^ISO|LAKE|MEDSPARK|20151118074410-0500||"
    "ADT^A01^ADT_A01|A1|P|2.5",
    "EVN|A01|20151118074410-0500",
    "PID|1||M02931214^^^MEDSPARK^MR~908-65-0218^^^SSA^SS~77^^^OTHER^PI||O'CONNELL147^JACQUELINE390^^^Mrs.^^L||19630703|F||"
    "2028-9^Asian^CDCREC|216 Chestnut Drive^^Boston^MA^02118^USA^H||555-275-3569^PRN^PH|||M||10000163^^^MEDSPARK^AN|"
    "908-65-0218|||2135-2^Hispanic or Latino^CDCREC",
    "PV1|1|I|MED^111^B^MEDSPARK GENERAL HOSPITAL CAMBRIDGE|E|||2055506374^NGUYEN^RAYMOND^^^^MD|||MED||||7|||||"
    "10000163^^^MEDSPARK^VN|||||||||||||||||||||||||20151118074410-0500",
    "DG1|1||A41.9^Sepsis unspecified organism^I10||20151118074410-0500|A",
    "DG1|2||X99^Local^99ZZZ|||A",
    "IN1|1|87726^UnitedHealthcare|87726|UnitedHealthcare|||||||||||PPO|O'CONNELL147^JACQUELINE390|SEL^Self|19630703"
    "||||||||||||||||||U032899905",
])  # fmt: skip
RESULT = "\r".join([
    "MSH|^~\\&|LAB|MEDSPARK GENERAL LAB^2.16.840.1.113883.3.4242.9^ISO|LAKE|MEDSPARK|20150107113752-0500||"
    "ORU^R01^ORU_R01|L1|P|2.5",
    "PID|1||M02496775^^^MEDSPARK^MR||WILSON731^JULIE722||19751110|F",
    "PV1|1|O|||||||||||||||||10000122^^^MEDSPARK^VN",
    "OBR|1|1^EHR|1^LAB|51990-0^Basic metabolic panel - Blood^LN",
    "OBX|1|NM|2339-0^Glucose [Mass/volume] in Blood^LN||129.4|mg/dL^^UCUM|70-99|H|||F|||20150107095323-0500",
    "OBX|2|ST|8251-1^Service comment^LN||see note||||||F",
])  # fmt: skip
ACK = "MSH|^~\\&|LAKE|MEDSPARK|ADT|MEDSPARK GENERAL|20150107113752-0500||ACK^A01^ACK|K1|P|2.5\rMSA|AA|A1"


def _bronze(spark: SparkSession, *messages: str) -> DataFrame:
    """Bronze ``hl7v2_messages`` rows as ingest writes them (the parser's columns + lineage), hashes h1, h2..."""
    content = "\n".join(messages).replace("\r", "\n").encode() + b"\n"
    files = spark.createDataFrame([("file:/src/m.hl7", bytearray(content))], "_source_file string, _content binary")
    parsed = parse_hl7v2_messages(files).drop("_quarantine_reason")
    return parsed.select(
        "*",
        sf.lit("hl7v2").alias("_source_format"),
        sf.lit(MODIFIED).alias("_file_modified_at"),
        sf.lit(1).cast("long").alias("_batch_id"),
        sf.lit("ingest-test").alias("_run_id"),
        sf.lit(MODIFIED).alias("_ingested_at"),
        sf.concat(sf.lit("h"), sf.col("_record_position").cast("string")).alias("_record_hash"),
    )


def test_messages_stage_every_kind(spark: SparkSession) -> None:
    staged = STAGERS["hl7v2_messages"](_bronze(spark, ADMIT, RESULT, ACK))
    admitted, reported = ts("2015-11-18 12:44:10"), ts("2015-01-07 16:37:52")
    source = "hl7v2_messages"
    assertDataFrameEqual(staged["person"], expected(spark, PERSON_RECORD, source, [
        {"_h": "h1", "_source_version": admitted,
         "identifiers": ids(("mrn", "M02931214"), ("ssn", "908650218"), ("other:OTHER/PI", "77"),
                            ("member", "U032899905")),
         "birth_date": dt.date(1963, 7, 3), "gender_source": "F", "race_source": "2028-9",
         "ethnicity_source": "2135-2", "given_name": "JACQUELINE390", "family_name": "O'CONNELL147",
         "street": "216 Chestnut Drive", "city": "Boston", "state": "MA", "zip": "02118"},
        {"_h": "h2", "_source_version": reported, "identifiers": ids(("mrn", "M02496775")),
         "birth_date": dt.date(1975, 11, 10), "gender_source": "F", "given_name": "JULIE722",
         "family_name": "WILSON731"},
    ]))  # fmt: skip
    mrn1, mrn2 = ids(("mrn", "M02931214"), ("ssn", "908650218"), ("other:OTHER/PI", "77"), ("member", "U032899905")), \
        ids(("mrn", "M02496775"))  # fmt: skip
    hospital = "MEDSPARK GENERAL HOSPITAL CAMBRIDGE"
    assertDataFrameEqual(staged["visit"], expected(spark, VISIT_RECORD, source, [
        {"_h": "h1", "_source_version": admitted, "person_identifiers": mrn1,
         "visit_identifiers": ids(("visit", "10000163")), "visit_class_source": "I", "visit_start": admitted,
         "provider_source": "2055506374", "care_site_source": hospital},
        {"_h": "h2", "_source_version": reported, "person_identifiers": mrn2,
         "visit_identifiers": ids(("visit", "10000122")), "visit_class_source": "O",
         "care_site_source": "MEDSPARK GENERAL LAB"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, source, [
        {"_h": "h1", "_source_version": admitted, "person_identifiers": mrn1,
         "visit_identifiers": ids(("visit", "10000163")), "vocabulary_id": "ICD10CM", "code": "A41.9",
         "event_start": admitted, "event_kind": "condition", "type_source": "EHR"},
        {"_h": "h1", "_source_version": admitted, "person_identifiers": mrn1,
         "visit_identifiers": ids(("visit", "10000163")), "vocabulary_id": "other:99ZZZ", "code": "X99",
         "event_start": admitted, "event_kind": "condition", "type_source": "EHR"},
        {"_h": "h2", "_source_version": reported, "person_identifiers": mrn2,
         "visit_identifiers": ids(("visit", "10000122")), "vocabulary_id": "LOINC", "code": "2339-0",
         "event_start": ts("2015-01-07 14:53:23"), "value_as_number": 129.4, "value_source_value": "129.4",
         "unit_source_value": "mg/dL", "event_kind": "observation", "type_source": "EHR"},
        {"_h": "h2", "_source_version": reported, "person_identifiers": mrn2,
         "visit_identifiers": ids(("visit", "10000122")), "vocabulary_id": "LOINC", "code": "8251-1",
         "event_start": reported, "value_source_value": "see note", "event_kind": "observation",
         "type_source": "EHR"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["provider"], expected(spark, PROVIDER_RECORD, source, [
        {"_h": "h1", "_source_version": admitted, "provider_source_value": "2055506374", "npi": "2055506374",
         "provider_name": "RAYMOND NGUYEN", "care_site_source_value": hospital},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["care_site"], expected(spark, CARE_SITE_RECORD, source, [
        {"_h": "h1", "_source_version": admitted, "care_site_source_value": hospital, "care_site_name": hospital},
        {"_h": "h2", "_source_version": reported, "care_site_source_value": "MEDSPARK GENERAL LAB",
         "care_site_name": "MEDSPARK GENERAL LAB"},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["_unstaged"], expected(spark, UNSTAGED_RECORD, source, [
        {"_h": "h3", "_source_version": reported, "reason": "no_patient_data"},
    ]))  # fmt: skip
