"""HL7 v2 messages (one bronze row per message) staged into person, visit, event, provider and care-site records.

- ``person`` (messages with a PID): PID-3 repetitions (type ``MR`` -> ``mrn``, ``SS`` -> ``ssn``, others
  ``other:<assigning authority>/<type>``), PID-19 -> ``ssn``, IN1-36 member ids -> ``member``; PID-7 birth date,
  PID-8 sex, PID-10.1 race, PID-22.1 ethnicity, PID-29 death time, PID-5 names, PID-11 address.
- ``visit`` (messages with a PV1 carrying PV1-19 or an admit time): PV1-19 -> ``visit``, PV1-2 patient class,
  PV1-44/45 admit/discharge, PV1-7.1 attending id, care site = PV1-3.4 facility else MSH-4 sending facility.
- ``event``: each DG1 (``condition``; time DG1-5, else admit time, else message time) and each OBX
  (``observation``; OBX-14, else message time; ``value_as_number`` when OBX-2 is NM/SN and OBX-5 is a number;
  ``value_source_value`` is OBX-5 verbatim). Coding systems go through HL7 table 0396 names (I10 -> ICD10CM,
  LN -> LOINC, SCT -> SNOMED...); an unknown or missing one gives ``other:<system>``.
- ``provider`` (PV1-7 attending: id, name; ``npi`` when the id is ten digits) and ``care_site``.

Every message of a visit (A01 admit, A08 update, A03 discharge, ORU results) is staged; ``_source_version`` is the
message time (MSH-7), else the file's modification time, so silver's "newer wins" keeps the latest state. A
message without PID, PV1, DG1 and OBX (an ACK, a master-file message) is ``_unstaged`` as ``no_patient_data``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.ingestion.hl7v2.fields import hl7_field, hl7_timestamp
from medspark.silver.sources._common import (
    LINEAGE,
    UNSTAGED,
    clean,
    explode_items,
    identifier,
    identifiers,
    one,
    ssn_digits,
    to_record,
    unstaged,
    vocabulary_or_other,
    with_lineage,
)

SOURCE = "hl7v2_messages"


def _has(segment_id: str) -> Column:
    return sf.coalesce(sf.array_contains(sf.col("segment_ids"), segment_id), sf.lit(False))


def _person_identifiers() -> Column:
    pid3 = sf.transform(
        sf.coalesce(
            sf.col("patient_identifiers"),
            sf.array().cast("array<struct<id:string,assigning_authority:string,identifier_type:string>>"),
        ),
        lambda i: (
            sf.when(i["identifier_type"] == "MR", identifier("mrn", i["id"]))
            .when(i["identifier_type"] == "SS", identifier("ssn", ssn_digits(i["id"])))
            .otherwise(
                identifier(
                    sf.concat(
                        sf.lit("other:"),
                        sf.concat_ws("/", sf.coalesce(i["assigning_authority"], sf.lit("")), i["identifier_type"]),
                    ),
                    i["id"],
                )
            )
        ),
    )
    members = sf.transform(
        sf.coalesce(
            sf.col("insurance"),
            sf.array().cast("array<struct<plan_id:string,company_name:string,member_id:string,group_number:string>>"),
        ),
        lambda i: identifier("member", i["member_id"]),
    )
    return identifiers(pid3, one(identifier("ssn", ssn_digits(sf.col("patient_ssn")))), members)


def _visit_identifiers() -> Column:
    return identifiers(one(identifier("visit", sf.col("visit_number"))))


def stage_messages(messages: DataFrame) -> dict[str, DataFrame]:
    """``hl7v2_messages`` -> ``person``, ``visit``, ``event``, ``provider``, ``care_site`` and ``_unstaged``.

    Input: bronze ``hl7v2_messages`` (typed columns and the ``segments`` tree). Output: ``{kind: records}``
    with the columns of the ``_common`` record DDLs.
    """
    segments = sf.col("segments")
    address = sf.col("patient_address")
    rows = messages.transform(with_lineage, SOURCE, sf.col("message_datetime")).withColumns(
        {
            "_person_identifiers": _person_identifiers(),
            "_visit_identifiers": _visit_identifiers(),
            "_has_pid": _has("PID"),
            "_has_pv1": _has("PV1"),
            "_facility": clean(hl7_field(segments, "PV1-3.4")),
            "_attending_id": clean(hl7_field(segments, "PV1-7.1")),
            "_attending_name": sf.concat_ws(
                " ", clean(hl7_field(segments, "PV1-7.3")), clean(hl7_field(segments, "PV1-7.2"))
            ),
            "_dg1_times": hl7_field(segments, "DG1[*]-5"),
        }
    )

    persons = rows.where(sf.col("_has_pid")).select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("identifiers"),
        "birth_date",
        sf.col("administrative_sex").alias("gender_source"),
        clean(hl7_field(segments, "PID-10.1")).alias("race_source"),
        clean(hl7_field(segments, "PID-22.1")).alias("ethnicity_source"),
        hl7_timestamp(hl7_field(segments, "PID-29")).alias("death_datetime"),
        sf.col("patient_given_name").alias("given_name"),
        sf.col("patient_family_name").alias("family_name"),
        address["street"].alias("street"),
        address["city"].alias("city"),
        address["state"].alias("state"),
        address["postal_code"].alias("zip"),
    )

    care_site = sf.coalesce(sf.col("_facility"), clean(sf.col("sending_facility")))
    has_visit = sf.col("_has_pv1") & (sf.col("visit_number").isNotNull() | sf.col("admit_datetime").isNotNull())
    visits = rows.where(has_visit).select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("person_identifiers"),
        sf.col("_visit_identifiers").alias("visit_identifiers"),
        sf.col("patient_class").alias("visit_class_source"),
        sf.col("admit_datetime").alias("visit_start"),
        sf.col("discharge_datetime").alias("visit_end"),
        sf.col("_attending_id").alias("provider_source"),
        care_site.alias("care_site_source"),
        sf.col("_attending_name").alias("_attending_name"),
    )
    providers = visits.where(sf.col("provider_source").isNotNull()).select(
        *LINEAGE,
        sf.col("provider_source").alias("provider_source_value"),
        sf.when(sf.col("provider_source").rlike(r"^[0-9]{10}$"), sf.col("provider_source")).alias("npi"),
        sf.nullif(sf.col("_attending_name"), sf.lit("")).alias("provider_name"),
        sf.col("care_site_source").alias("care_site_source_value"),
    )
    care_sites = visits.where(sf.col("care_site_source").isNotNull()).select(
        *LINEAGE,
        sf.col("care_site_source").alias("care_site_source_value"),
        sf.col("care_site_source").alias("care_site_name"),
    )

    diagnoses = sf.transform(
        sf.coalesce(
            sf.col("diagnoses"),
            sf.array().cast(
                "array<struct<set_id:string,code:string,code_text:string,coding_system:string,diagnosis_type:string>>"
            ),
        ),
        lambda d, i: sf.struct(
            vocabulary_or_other(d["coding_system"]).alias("vocabulary_id"),
            clean(d["code"]).alias("code"),
            sf.coalesce(
                hl7_timestamp(sf.try_element_at(sf.col("_dg1_times"), i + 1)),
                sf.col("admit_datetime"),
                sf.col("message_datetime"),
            ).alias("event_start"),
            sf.lit(None).cast("double").alias("value_as_number"),
            sf.lit(None).cast("string").alias("value_source_value"),
            sf.lit(None).cast("string").alias("unit_source_value"),
            sf.lit("condition").alias("event_kind"),
        ),
    )
    observations = _observation_items()
    items = sf.filter(sf.concat(diagnoses, observations), lambda e: e["code"].isNotNull())
    events = explode_items(rows.withColumn("_items", items), sf.col("_items")).select(
        *LINEAGE,
        sf.col("_person_identifiers").alias("person_identifiers"),
        sf.col("_visit_identifiers").alias("visit_identifiers"),
        "_item.*",
        sf.lit("EHR").alias("type_source"),
    )

    produces_nothing = ~sf.col("_has_pid") & ~has_visit & (sf.coalesce(sf.size(items), sf.lit(0)) <= 0)
    return {
        "person": to_record(persons, "person"),
        "visit": to_record(visits, "visit"),
        "event": to_record(events, "event"),
        "provider": to_record(providers, "provider"),
        "care_site": to_record(care_sites, "care_site"),
        UNSTAGED: unstaged(rows.where(produces_nothing), "no_patient_data"),
    }


def _observation_items() -> Column:
    """OBX structs as event items (same fields, in the same order, as the DG1 items)."""
    empty = sf.array().cast(
        "array<struct<set_id:string,value_type:string,code:string,code_text:string,coding_system:string,"
        "value:string,units:string,reference_range:string,abnormal_flags:array<string>,result_status:string,"
        "observed_at:timestamp>>"
    )
    return sf.transform(
        sf.coalesce(sf.col("observations"), empty),
        lambda o: sf.struct(
            vocabulary_or_other(o["coding_system"]).alias("vocabulary_id"),
            clean(o["code"]).alias("code"),
            sf.coalesce(o["observed_at"], sf.col("message_datetime")).alias("event_start"),
            sf.when(o["value_type"].isin("NM", "SN"), o["value"].try_cast("double")).alias("value_as_number"),
            o["value"].alias("value_source_value"),
            clean(o["units"]).alias("unit_source_value"),
            sf.lit("observation").alias("event_kind"),
        ),
    )


STAGERS: dict[str, Callable[[DataFrame], dict[str, DataFrame]]] = {SOURCE: stage_messages}
