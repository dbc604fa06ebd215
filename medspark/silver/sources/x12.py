"""X12 837 claims (one bronze row per claim) staged into claim, person, visit, event, provider and care-site records.

- ``claim`` (payer_plan_period + cost): ``claim_id`` (CLM-01), ``claim_type`` professional/institutional (837P/
  837I), payer name/id (NM1*PR), service period (DTP 434/472), ``total_charge`` (CLM-02), currency USD.
  ``plan_source_value`` stays null: bronze does not read SBR-03/04 (group number/name).
- ``person``: the patient. When the patient is the subscriber (no 2000C patient loop) its identifiers are the
  subscriber's ``member`` id (NM1*IL MI) and ``ssn`` (REF*SY, digits only) and its demographics the subscriber's.
  A dependent patient (2000C present) has names, birth date and sex but no identifier: the subscriber's member
  id and SSN are not the patient's. Such claims carry empty ``person_identifiers`` (silver quarantines them
  unless its matcher links by demographics).
- ``visit``: CLM-01 as ``visit`` (medspark's claim id is the hospital visit number), dates from the service
  period (midnight UTC), ``visit_class_source`` ``pos:<place of service>`` (837P, CLM05-1 with qualifier B) or
  ``tob:<facility type>`` (837I, qualifier A): the two code sets overlap (11 = office / hospital inpatient), so the
  prefix keeps them apart. ``provider_source`` = billing provider NPI.
- ``event`` (``type_source`` ``claim``): every HI diagnosis (ICD-10-CM qualifiers ABK principal, ABF other, ABJ
  admitting, APR reason for visit, ABN external cause; the ICD-9 forms BK, BF, BJ, PR, BN give ICD9CM), the code
  dotted as the vocabulary writes it (``A419`` -> ``A41.9``); and every service line with a procedure code:
  qualifier HC -> CPT4 when the code is four digits and a digit/F/T/U (CPT categories I-III), else HCPCS; other
  qualifiers ``other:x12-<qualifier>``; quantity = units, start = line date else the claim's. Revenue-code-only
  lines (837I room and board) give no event; the claim's total covers them.
- ``provider`` (billing provider NPI + name) and ``care_site`` (the billing provider as an organisation).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.silver.sources._common import (
    IDENTIFIERS,
    LINEAGE,
    UNSTAGED,
    clean,
    day_start,
    explode_items,
    identifier,
    identifiers,
    no_rows,
    one,
    ssn_digits,
    to_record,
    with_lineage,
)

SOURCE = "x12_837_claims"
_ICD10_QUALIFIERS = ("ABK", "ABF", "ABJ", "APR", "ABN")
_ICD9_QUALIFIERS = ("BK", "BF", "BJ", "PR", "BN")
_CPT = r"^[0-9]{4}[0-9FTU]$"


def _dotted(code: Column, after: int) -> Column:
    """An ICD code with its decimal point (X12 omits it): ``A419`` -> ``A41.9``; codes already dotted kept."""
    trimmed = sf.upper(sf.trim(code))
    return sf.when(
        (sf.length(trimmed) > after) & ~trimmed.contains("."),
        sf.concat(sf.substring(trimmed, 1, after), sf.lit("."), sf.substring(trimmed, after + 1, 1 << 10)),
    ).otherwise(trimmed)


def _diagnosis_item(diagnosis: Column) -> Column:
    qualifier = diagnosis["qualifier"]
    is_icd9 = qualifier.isin(*_ICD9_QUALIFIERS)
    # ICD-9-CM E codes put the point after four characters (E880.1), other ICD-9 and ICD-10 codes after three.
    after_four = is_icd9 & sf.upper(sf.trim(diagnosis["code"])).startswith("E")
    code = sf.when(after_four, _dotted(diagnosis["code"], 4)).otherwise(_dotted(diagnosis["code"], 3))
    return sf.struct(
        sf.when(is_icd9, sf.lit("ICD9CM")).otherwise(sf.lit("ICD10CM")).alias("vocabulary_id"),
        sf.when(qualifier.isin(*_ICD10_QUALIFIERS, *_ICD9_QUALIFIERS), clean(code)).alias("code"),
        sf.lit(None).cast("date").alias("day"),
        sf.lit(None).cast("double").alias("quantity"),
        sf.lit("condition").alias("event_kind"),
    )


def _line_item(line: Column) -> Column:
    code = sf.upper(clean(line["procedure_code"]))
    qualifier = line["procedure_qualifier"]
    vocabulary = (
        sf.when((qualifier == "HC") & code.rlike(_CPT), sf.lit("CPT4"))
        .when(qualifier == "HC", sf.lit("HCPCS"))
        .otherwise(sf.concat(sf.lit("other:x12-"), sf.coalesce(qualifier, sf.lit("unknown"))))
    )
    return sf.struct(
        vocabulary.alias("vocabulary_id"),
        code.alias("code"),
        line["service_date"].alias("day"),
        line["units"].alias("quantity"),
        sf.lit("procedure").alias("event_kind"),
    )


def stage_claims(claims: DataFrame) -> dict[str, DataFrame]:
    """``x12_837_claims`` -> ``claim``, ``person``, ``visit``, ``event``, ``provider``, ``care_site``.

    Input: bronze ``x12_837_claims``. Output: ``{kind: records}`` with the ``_common`` record DDLs; every claim
    yields a claim, person and visit record, so ``_unstaged`` is always empty.
    """
    is_dependent = sf.col("patient_last_name").isNotNull() | sf.col("patient_first_name").isNotNull()
    subscriber_ids = identifiers(
        one(identifier("member", sf.col("subscriber_member_id"))),
        one(identifier("ssn", ssn_digits(sf.col("subscriber_ssn")))),
    )
    rows = claims.transform(with_lineage, SOURCE).withColumns(
        {
            "_person_identifiers": sf.when(is_dependent, sf.array().cast(IDENTIFIERS)).otherwise(subscriber_ids),
            "_visit_identifiers": identifiers(one(identifier("visit", sf.col("claim_id")))),
            "_is_dependent": is_dependent,
            "_npi": clean(sf.col("billing_provider_npi")),
        }
    )
    claim_records = rows.select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("person_identifiers"),
        sf.col("_visit_identifiers").alias("visit_identifiers"),
        "claim_id",
        sf.when(sf.col("transaction_type") == "837P", sf.lit("professional"))
        .when(sf.col("transaction_type") == "837I", sf.lit("institutional"))
        .alias("claim_type"),
        sf.col("payer_name").alias("payer_source_value"),
        "payer_id",
        sf.col("service_date_from").alias("period_start"),
        sf.col("service_date_to").alias("period_end"),
        "total_charge",
        sf.lit("USD").alias("currency"),
    )
    dependent = sf.col("_is_dependent")
    persons = rows.select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("identifiers"),
        sf.when(dependent, sf.col("patient_birth_date")).otherwise(sf.col("subscriber_birth_date")).alias("birth_date"),
        sf.when(dependent, sf.col("patient_sex")).otherwise(sf.col("subscriber_sex")).alias("gender_source"),
        sf.when(dependent, sf.col("patient_first_name")).otherwise(sf.col("subscriber_first_name")).alias("given_name"),
        sf.when(dependent, sf.col("patient_last_name")).otherwise(sf.col("subscriber_last_name")).alias("family_name"),
    )
    visit_class = sf.when(
        sf.col("place_of_service").isNotNull(), sf.concat(sf.lit("pos:"), sf.col("place_of_service"))
    ).when(sf.col("facility_type_code").isNotNull(), sf.concat(sf.lit("tob:"), sf.col("facility_type_code")))
    visits = rows.select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("person_identifiers"),
        sf.col("_visit_identifiers").alias("visit_identifiers"),
        visit_class.alias("visit_class_source"),
        day_start(sf.coalesce(sf.col("admission_date"), sf.col("service_date_from"))).alias("visit_start"),
        day_start(sf.col("service_date_to")).alias("visit_end"),
        sf.col("_npi").alias("provider_source"),
        sf.col("_npi").alias("care_site_source"),
    )
    empty_lines = sf.array().cast(
        "array<struct<line_number:int,procedure_qualifier:string,procedure_code:string,modifiers:array<string>,"
        "revenue_code:string,charge:decimal(18,2),unit_type:string,units:double,service_date:date>>"
    )
    empty_diagnoses = sf.array().cast("array<struct<qualifier:string,code:string>>")
    items = sf.filter(
        sf.concat(
            sf.transform(sf.coalesce(sf.col("diagnoses"), empty_diagnoses), _diagnosis_item),
            sf.transform(sf.coalesce(sf.col("service_lines"), empty_lines), _line_item),
        ),
        lambda item: item["code"].isNotNull(),
    )
    events = explode_items(rows.withColumn("_items", items), sf.col("_items")).select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("person_identifiers"),
        sf.col("_visit_identifiers").alias("visit_identifiers"),
        sf.col("_item.vocabulary_id").alias("vocabulary_id"),
        sf.col("_item.code").alias("code"),
        day_start(sf.coalesce(sf.col("_item.day"), sf.col("service_date_from"))).alias("event_start"),
        day_start(sf.coalesce(sf.col("_item.day"), sf.col("service_date_to"))).alias("event_end"),
        sf.col("_item.quantity").alias("quantity"),
        sf.col("_item.event_kind").alias("event_kind"),
        sf.lit("claim").alias("type_source"),
    )
    providers = rows.where(sf.col("_npi").isNotNull()).select(
        *LINEAGE,
        sf.col("_npi").alias("provider_source_value"),
        sf.col("_npi").alias("npi"),
        sf.col("billing_provider_name").alias("provider_name"),
        sf.col("_npi").alias("care_site_source_value"),
    )
    care_sites = rows.where(sf.col("_npi").isNotNull()).select(
        *LINEAGE,
        sf.col("_npi").alias("care_site_source_value"),
        sf.col("billing_provider_name").alias("care_site_name"),
        sf.col("place_of_service").alias("place_of_service_source_value"),
    )
    return {
        "claim": to_record(claim_records, "claim"),
        "person": to_record(persons, "person"),
        "visit": to_record(visits, "visit"),
        "event": to_record(events, "event"),
        "provider": to_record(providers, "provider"),
        "care_site": to_record(care_sites, "care_site"),
        UNSTAGED: no_rows(rows, UNSTAGED),
    }


STAGERS: dict[str, Callable[[DataFrame], dict[str, DataFrame]]] = {SOURCE: stage_claims}
