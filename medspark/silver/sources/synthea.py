"""Synthea CSV bronze tables staged into person, visit, event, provider and care-site records.

Identifiers: patients ``Id`` -> ``synthea``, ``SSN`` -> ``ssn`` (digits only); clinical rows name their patient by
``PATIENT`` (``synthea``) and their encounter by ``ENCOUNTER`` (``synthea-encounter``, the encounters' ``Id``).
``DRIVERS``/``PASSPORT`` are not emitted: no other source carries them under a system medspark normalises.

Vocabularies: conditions and procedures read ``SYSTEM`` (Synthea >= 3.1: ``SNOMED-CT``, ``ICD10``...; absent or
blank in older releases -> SNOMED); medications are RxNorm, observations LOINC, immunizations CVX; allergies read
``SYSTEM`` (RxNorm for drug allergies) defaulting to SNOMED; devices and supplies are SNOMED.

``synthea_other`` (``synthea_table`` + ``fields`` map): ``organizations`` -> ``care_site``, ``providers`` ->
``provider`` (Synthea's provider ``Id`` is the source value: the CSV carries no NPI, so these do not meet FHIR's
NPI-keyed practitioners), ``allergies``/``immunizations``/``devices``/``supplies`` -> ``event`` (event kinds
``allergy``, ``immunization``, ``device``, ``supply``). Every other table (careplans, imaging_studies, payers,
payer_transitions, claims, claims_transactions, unrecognised files) is ``_unstaged`` with reason
``not_staged:<table>``; careplans and imaging studies would need OMOP tables silver does not build.

Dates: CSV ``date`` columns start at midnight UTC. ``_source_version`` is the file's modification time.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.silver.sources._common import (
    LINEAGE,
    UNSTAGED,
    blank,
    clean,
    day_start,
    identifier,
    identifiers,
    no_rows,
    one,
    ssn_digits,
    to_record,
    unstaged,
    vocabulary_or_other,
    with_lineage,
)

_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"


def _csv_timestamp(text: Column) -> Column:
    """A Synthea ISO timestamp (``2019-02-17T05:07:38Z``) or date (midnight) from a ``fields`` value."""
    value = clean(text)
    return sf.coalesce(
        sf.try_to_timestamp(value, sf.lit(_TIMESTAMP_PATTERN)),
        sf.when(sf.length(value) == 10, sf.try_to_timestamp(value, sf.lit("yyyy-MM-dd"))),
    )


def _patient(column: str = "PATIENT") -> Column:
    return identifiers(one(identifier("synthea", sf.col(column))))


def _encounter(column: Column) -> Column:
    return identifiers(one(identifier("synthea-encounter", column)))


def stage_patients(patients: DataFrame) -> dict[str, DataFrame]:
    """``synthea_patients`` -> ``person``: ``Id`` (synthea), ``SSN`` (ssn), demographics, names and address."""
    rows = patients.transform(with_lineage, "synthea_patients")
    persons = rows.select(
        *LINEAGE,
        identifiers(one(identifier("synthea", sf.col("Id"))), one(identifier("ssn", ssn_digits(sf.col("SSN"))))).alias(
            "identifiers"
        ),
        sf.col("BIRTHDATE").alias("birth_date"),
        sf.col("GENDER").alias("gender_source"),
        sf.col("RACE").alias("race_source"),
        sf.col("ETHNICITY").alias("ethnicity_source"),
        day_start(sf.col("DEATHDATE")).alias("death_datetime"),
        sf.col("FIRST").alias("given_name"),
        sf.col("LAST").alias("family_name"),
        sf.col("ADDRESS").alias("street"),
        sf.col("CITY").alias("city"),
        sf.col("STATE").alias("state"),
        sf.col("ZIP").alias("zip"),
        sf.col("COUNTY").alias("county"),
    )
    return {"person": to_record(persons, "person"), UNSTAGED: no_rows(rows, UNSTAGED)}


def stage_encounters(encounters: DataFrame) -> dict[str, DataFrame]:
    """``synthea_encounters`` -> ``visit`` + bare ``provider`` (``PROVIDER``) and ``care_site`` (``ORGANIZATION``)."""
    rows = encounters.transform(with_lineage, "synthea_encounters")
    visits = rows.select(
        *LINEAGE,
        _patient().alias("person_identifiers"),
        _encounter(sf.col("Id")).alias("visit_identifiers"),
        sf.col("ENCOUNTERCLASS").alias("visit_class_source"),
        sf.col("START").alias("visit_start"),
        sf.col("STOP").alias("visit_end"),
        clean(sf.col("PROVIDER")).alias("provider_source"),
        clean(sf.col("ORGANIZATION")).alias("care_site_source"),
    )
    providers = visits.where(sf.col("provider_source").isNotNull()).select(
        "*",
        sf.col("provider_source").alias("provider_source_value"),
        sf.col("care_site_source").alias("care_site_source_value"),
    )
    care_sites = visits.where(sf.col("care_site_source").isNotNull()).select(
        "*", sf.col("care_site_source").alias("care_site_source_value")
    )
    return {
        "visit": to_record(visits, "visit"),
        "provider": to_record(providers, "provider"),
        "care_site": to_record(care_sites, "care_site"),
        UNSTAGED: no_rows(rows, UNSTAGED),
    }


def _events(
    rows: DataFrame,
    *,
    vocabulary: Column,
    code: Column,
    start: Column,
    end: Column | None,
    event_kind: str,
    encounter: Column,
    value_as_number: Column | None = None,
    value_source_value: Column | None = None,
    unit: Column | None = None,
    quantity: Column | None = None,
) -> dict[str, DataFrame]:
    """Rows (with lineage and ``PATIENT``) -> ``event`` where ``code`` is present, else ``_unstaged`` (no_code)."""
    none = sf.lit(None)
    staged = rows.withColumn("_code", clean(code))
    events = staged.where(sf.col("_code").isNotNull()).select(
        *LINEAGE,
        _patient().alias("person_identifiers"),
        _encounter(encounter).alias("visit_identifiers"),
        vocabulary.alias("vocabulary_id"),
        sf.col("_code").alias("code"),
        start.alias("event_start"),
        (end if end is not None else none).cast("timestamp").alias("event_end"),
        (value_as_number if value_as_number is not None else none).alias("value_as_number"),
        (value_source_value if value_source_value is not None else none).alias("value_source_value"),
        (unit if unit is not None else none).alias("unit_source_value"),
        sf.lit(event_kind).alias("event_kind"),
        (quantity if quantity is not None else none).cast("double").alias("quantity"),
        sf.lit("EHR").alias("type_source"),
    )
    return {
        "event": to_record(events, "event"),
        UNSTAGED: unstaged(staged.where(sf.col("_code").isNull()), "no_code"),
    }


def stage_conditions(conditions: DataFrame) -> dict[str, DataFrame]:
    """``synthea_conditions`` -> ``event`` (``condition``), START .. STOP (dates, midnight UTC)."""
    return _events(
        conditions.transform(with_lineage, "synthea_conditions"),
        vocabulary=vocabulary_or_other(sf.col("SYSTEM"), "SNOMED"),
        code=sf.col("CODE"),
        start=day_start(sf.col("START")),
        end=day_start(sf.col("STOP")),
        event_kind="condition",
        encounter=sf.col("ENCOUNTER"),
    )


def stage_medications(medications: DataFrame) -> dict[str, DataFrame]:
    """``synthea_medications`` -> ``event`` (``drug``, RxNorm), quantity = ``DISPENSES``."""
    return _events(
        medications.transform(with_lineage, "synthea_medications"),
        vocabulary=sf.lit("RxNorm"),
        code=sf.col("CODE"),
        start=sf.col("START"),
        end=sf.col("STOP"),
        event_kind="drug",
        encounter=sf.col("ENCOUNTER"),
        quantity=sf.col("DISPENSES"),
    )


def stage_procedures(procedures: DataFrame) -> dict[str, DataFrame]:
    """``synthea_procedures`` -> ``event`` (``procedure``), ``SYSTEM`` else SNOMED."""
    return _events(
        procedures.transform(with_lineage, "synthea_procedures"),
        vocabulary=vocabulary_or_other(sf.col("SYSTEM"), "SNOMED"),
        code=sf.col("CODE"),
        start=sf.col("START"),
        end=sf.col("STOP"),
        event_kind="procedure",
        encounter=sf.col("ENCOUNTER"),
    )


def stage_observations(observations: DataFrame) -> dict[str, DataFrame]:
    """``synthea_observations`` -> ``event`` (``observation``, LOINC): ``VALUE_NUMERIC``, ``VALUE`` verbatim, ``UNITS``.

    ``CATEGORY`` (vital-signs, laboratory, survey...) is not kept: the domain comes from the LOINC concept.
    """
    return _events(
        observations.transform(with_lineage, "synthea_observations"),
        vocabulary=sf.lit("LOINC"),
        code=sf.col("CODE"),
        start=sf.col("DATE"),
        end=None,
        event_kind="observation",
        encounter=sf.col("ENCOUNTER"),
        value_as_number=sf.col("VALUE_NUMERIC"),
        value_source_value=clean(sf.col("VALUE")),
        unit=clean(sf.col("UNITS")),
    )


# ---- synthea_other -------------------------------------------------------------------------------------------

_EVENT_TABLES = ("allergies", "immunizations", "devices", "supplies")
_STAGED_TABLES = ("organizations", "providers", *_EVENT_TABLES)


def _field(name: str) -> Column:
    """A ``fields`` value by Synthea header name as written (``Id``), else in upper case (``ID``, older releases)."""
    fields = sf.col("fields")
    return clean(sf.coalesce(sf.try_element_at(fields, sf.lit(name)), sf.try_element_at(fields, sf.lit(name.upper()))))


def _other_events(rows: DataFrame) -> dict[str, DataFrame]:
    table = sf.col("synthea_table")
    start = _csv_timestamp(sf.coalesce(_field("START"), _field("DATE")))
    vocabulary = (
        sf.when(table == "immunizations", sf.lit("CVX"))
        .when(table == "allergies", vocabulary_or_other(_field("SYSTEM"), "SNOMED"))
        .otherwise(sf.lit("SNOMED"))
    )
    kind = {"allergies": "allergy", "immunizations": "immunization", "devices": "device", "supplies": "supply"}
    event_kind: Column = sf.lit(None)
    for name, value in kind.items():
        event_kind = sf.when(table == name, sf.lit(value)).otherwise(event_kind)
    staged = rows.withColumns({"PATIENT": _field("PATIENT"), "_code": _field("CODE")})
    events = staged.where(sf.col("_code").isNotNull()).select(
        *LINEAGE,
        _patient().alias("person_identifiers"),
        _encounter(_field("ENCOUNTER")).alias("visit_identifiers"),
        vocabulary.alias("vocabulary_id"),
        sf.col("_code").alias("code"),
        start.alias("event_start"),
        _csv_timestamp(_field("STOP")).alias("event_end"),
        event_kind.alias("event_kind"),
        _field("QUANTITY").try_cast("double").alias("quantity"),
        sf.lit("EHR").alias("type_source"),
    )
    return {
        "event": to_record(events, "event"),
        UNSTAGED: unstaged(staged.where(sf.col("_code").isNull()), "no_code"),
    }


def stage_other(others: DataFrame) -> dict[str, DataFrame]:
    """``synthea_other`` -> ``care_site`` (organizations), ``provider`` (providers), ``event`` (allergies,
    immunizations, devices, supplies); other tables -> ``_unstaged`` (``not_staged:<table>``)."""
    rows = others.transform(with_lineage, "synthea_other")
    table = sf.col("synthea_table")
    organizations = rows.where(table == "organizations").select(
        *LINEAGE,
        _field("Id").alias("care_site_source_value"),
        _field("NAME").alias("care_site_name"),
        _field("ADDRESS").alias("street"),
        _field("CITY").alias("city"),
        _field("STATE").alias("state"),
        _field("ZIP").alias("zip"),
    )
    providers = rows.where(table == "providers").select(
        *LINEAGE,
        _field("Id").alias("provider_source_value"),
        _field("NAME").alias("provider_name"),
        _field("SPECIALITY").alias("specialty_source_value"),
        _field("ORGANIZATION").alias("care_site_source_value"),
        _field("GENDER").alias("gender_source_value"),
    )
    staged_events = _other_events(rows.where(table.isin(*_EVENT_TABLES)))
    no_id = (table.isin("organizations", "providers")) & blank(_field("Id"))
    not_staged = rows.where(~table.isin(*_STAGED_TABLES) | table.isNull())
    return {
        "care_site": to_record(organizations.where(sf.col("care_site_source_value").isNotNull()), "care_site"),
        "provider": to_record(providers.where(sf.col("provider_source_value").isNotNull()), "provider"),
        "event": staged_events["event"],
        UNSTAGED: unstaged(not_staged, sf.concat(sf.lit("not_staged:"), sf.coalesce(table, sf.lit("unknown"))))
        .unionByName(unstaged(rows.where(no_id), "missing_identifier"))
        .unionByName(staged_events[UNSTAGED]),
    }


STAGERS: dict[str, Callable[[DataFrame], dict[str, DataFrame]]] = {
    "synthea_patients": stage_patients,
    "synthea_encounters": stage_encounters,
    "synthea_conditions": stage_conditions,
    "synthea_medications": stage_medications,
    "synthea_procedures": stage_procedures,
    "synthea_observations": stage_observations,
    "synthea_other": stage_other,
}
