"""X12 837 staging: literal bronze claims -> expected claim, person, visit, event, provider, care-site records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from staging_bronze import bronze, expected, ids, ts

from medspark.silver.sources import (
    CARE_SITE_RECORD,
    CLAIM_RECORD,
    EVENT_RECORD,
    PERSON_RECORD,
    PROVIDER_RECORD,
    VISIT_RECORD,
)
from medspark.silver.sources.x12 import STAGERS

D1, D2 = dt.date(2015, 2, 6), dt.date(2015, 2, 9)
SUBSCRIBER = {
    "subscriber_member_id": "HP032395695", "subscriber_last_name": "MOSCISKI301", "subscriber_first_name": "TYLER117",
    "subscriber_birth_date": dt.date(2003, 6, 27), "subscriber_sex": "M", "subscriber_ssn": "906561588",
    "payer_name": "HARVARD PILGRIM HEALTH CARE", "payer_id": "04271", "billing_provider_npi": "3000000018",
    "billing_provider_name": "MEDSPARK PHYSICIANS GROUP",
}  # fmt: skip


def _line(n: int, qualifier: str | None, code: str | None, units: float, day: dt.date | None = None) -> tuple:
    return (n, qualifier, code, [], None if code else "0120", Decimal("10.00"), "UN", units, day)


def test_claims(spark: SparkSession) -> None:
    claims = bronze(spark, "x12_837_claims", [
        {**SUBSCRIBER, "transaction_type": "837P", "claim_id": "10000024", "total_charge": Decimal("195.00"),
         "place_of_service": "11", "service_date_from": D1, "service_date_to": D1,
         "diagnoses": [("ABK", "Z00129"), ("ABF", "E119"), ("BF", "E8801"), ("XYZ", "Q1")],
         "service_lines": [_line(1, "HC", "99393", 1.0, D1), _line(2, "HC", "G0438", 2.0),
                           _line(3, "HC", "0001F", 1.0)]},
        {**SUBSCRIBER, "transaction_type": "837I", "claim_id": "10000025", "total_charge": Decimal("38705.00"),
         "facility_type_code": "11", "service_date_from": D1, "service_date_to": D2, "admission_date": D1,
         "patient_last_name": "MOSCISKI301", "patient_first_name": "ANNA5", "patient_birth_date": dt.date(2010, 1, 2),
         "patient_sex": "F", "diagnoses": [("ABK", "A419")], "service_lines": [_line(1, None, None, 3.0)]},
    ])  # fmt: skip
    staged = STAGERS["x12_837_claims"](claims)
    source = "x12_837_claims"
    member = ids(("member", "HP032395695"), ("ssn", "906561588"))
    v1, v2 = ids(("visit", "10000024")), ids(("visit", "10000025"))
    payer = {"payer_source_value": "HARVARD PILGRIM HEALTH CARE", "payer_id": "04271", "currency": "USD"}
    assertDataFrameEqual(staged["claim"], expected(spark, CLAIM_RECORD, source, [
        {"_h": "h1", "person_identifiers": member, "visit_identifiers": v1, "claim_id": "10000024",
         "claim_type": "professional", **payer, "period_start": D1, "period_end": D1,
         "total_charge": Decimal("195.00")},
        {"_h": "h2", "person_identifiers": [], "visit_identifiers": v2, "claim_id": "10000025",
         "claim_type": "institutional", **payer, "period_start": D1, "period_end": D2,
         "total_charge": Decimal("38705.00")},
    ]))  # fmt: skip
    assertDataFrameEqual(staged["person"], expected(spark, PERSON_RECORD, source, [
        {"_h": "h1", "identifiers": member, "birth_date": dt.date(2003, 6, 27), "gender_source": "M",
         "given_name": "TYLER117", "family_name": "MOSCISKI301"},
        {"_h": "h2", "identifiers": [], "birth_date": dt.date(2010, 1, 2), "gender_source": "F",
         "given_name": "ANNA5", "family_name": "MOSCISKI301"},
    ]))  # fmt: skip
    npi = "3000000018"
    assertDataFrameEqual(staged["visit"], expected(spark, VISIT_RECORD, source, [
        {"_h": "h1", "person_identifiers": member, "visit_identifiers": v1, "visit_class_source": "pos:11",
         "visit_start": ts("2015-02-06 00:00:00"), "visit_end": ts("2015-02-06 00:00:00"), "provider_source": npi,
         "care_site_source": npi},
        {"_h": "h2", "person_identifiers": [], "visit_identifiers": v2, "visit_class_source": "tob:11",
         "visit_start": ts("2015-02-06 00:00:00"), "visit_end": ts("2015-02-09 00:00:00"), "provider_source": npi,
         "care_site_source": npi},
    ]))  # fmt: skip
    day1, day2 = ts("2015-02-06 00:00:00"), ts("2015-02-09 00:00:00")
    c1 = {"_h": "h1", "person_identifiers": member, "visit_identifiers": v1, "type_source": "claim",
          "event_start": day1, "event_end": day1}  # fmt: skip
    assertDataFrameEqual(staged["event"], expected(spark, EVENT_RECORD, source, [
        {**c1, "vocabulary_id": "ICD10CM", "code": "Z00.129", "event_kind": "condition"},
        {**c1, "vocabulary_id": "ICD10CM", "code": "E11.9", "event_kind": "condition"},
        {**c1, "vocabulary_id": "ICD9CM", "code": "E880.1", "event_kind": "condition"},
        {**c1, "vocabulary_id": "CPT4", "code": "99393", "event_kind": "procedure", "quantity": 1.0},
        {**c1, "vocabulary_id": "HCPCS", "code": "G0438", "event_kind": "procedure", "quantity": 2.0},
        {**c1, "vocabulary_id": "CPT4", "code": "0001F", "event_kind": "procedure", "quantity": 1.0},
        {"_h": "h2", "person_identifiers": [], "visit_identifiers": v2, "type_source": "claim",
         "event_start": day1, "event_end": day2, "vocabulary_id": "ICD10CM", "code": "A41.9",
         "event_kind": "condition"},
    ]))  # fmt: skip
    name = "MEDSPARK PHYSICIANS GROUP"
    assertDataFrameEqual(staged["provider"], expected(spark, PROVIDER_RECORD, source, [
        {"_h": h, "provider_source_value": npi, "npi": npi, "provider_name": name, "care_site_source_value": npi}
        for h in ("h1", "h2")
    ]))  # fmt: skip
    assertDataFrameEqual(staged["care_site"], expected(spark, CARE_SITE_RECORD, source, [
        {"_h": "h1", "care_site_source_value": npi, "care_site_name": name, "place_of_service_source_value": "11"},
        {"_h": "h2", "care_site_source_value": npi, "care_site_name": name},
    ]))  # fmt: skip
    assert staged["_unstaged"].isEmpty()
