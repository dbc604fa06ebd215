"""The staged record kinds every source is reduced to, and the column helpers the source stagers share.

Silver links one person across five sources that share no single key. Each bronze table is therefore first
*staged*: a pure transform turns its rows into a few source-neutral record kinds with the same columns whatever
the source, so the silver job can union the records of all sources by name and then match, map and conform
them once. The kinds (DDL below; the first four columns of each are the lineage):

- ``PERSON_RECORD``    one per record that describes a person (identifiers + demographics + direct identifiers);
- ``VISIT_RECORD``     one per encounter/visit a record describes;
- ``EVENT_RECORD``     one per coded clinical fact (condition, drug, procedure, observation, device vital...);
- ``CLAIM_RECORD``     one per X12 837 claim (payer_plan_period + cost);
- ``PROVIDER_RECORD``  one per provider a record names (often only its id: merge per source value by
                       coalescing non-null fields, not by "newer wins", or a bare reference hides a full row);
- ``CARE_SITE_RECORD`` one per organisation/facility a record names (same remark);
- ``UNSTAGED_RECORD``  bronze rows that yield no staged record, with a reason, so rows in = staged + counted.

Identifier systems (``identifiers``, ``person_identifiers``, ``visit_identifiers``) are normalised:
``synthea`` (Synthea patient Id), ``fhir-patient`` (a FHIR Patient's server id), ``mrn``, ``ssn`` (digits only),
``member`` (payer member id), ``synthea-encounter``, ``fhir-encounter``, ``visit`` (the hospital visit number);
anything else ``other:<system>``. Blank values are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

LINEAGE = ("_source", "_source_record_hash", "_source_version", "_batch_id")
_LINEAGE_DDL = "_source string, _source_record_hash string, _source_version timestamp, _batch_id bigint"
IDENTIFIERS = "array<struct<system:string,value:string>>"

PERSON_RECORD = (
    f"{_LINEAGE_DDL}, identifiers {IDENTIFIERS}, birth_date date, gender_source string, race_source string, "
    "ethnicity_source string, death_datetime timestamp, given_name string, family_name string, street string, "
    "city string, state string, zip string, county string"
)
VISIT_RECORD = (
    f"{_LINEAGE_DDL}, person_identifiers {IDENTIFIERS}, visit_identifiers {IDENTIFIERS}, "
    "visit_class_source string, visit_start timestamp, visit_end timestamp, provider_source string, "
    "care_site_source string"
)
EVENT_RECORD = (
    f"{_LINEAGE_DDL}, person_identifiers {IDENTIFIERS}, visit_identifiers {IDENTIFIERS}, vocabulary_id string, "
    "code string, event_start timestamp, event_end timestamp, value_as_number double, value_source_value string, "
    "unit_source_value string, event_kind string, quantity double, type_source string"
)
CLAIM_RECORD = (
    f"{_LINEAGE_DDL}, person_identifiers {IDENTIFIERS}, visit_identifiers {IDENTIFIERS}, claim_id string, "
    "claim_type string, payer_source_value string, payer_id string, plan_source_value string, period_start date, "
    "period_end date, total_charge decimal(18,2), currency string"
)
PROVIDER_RECORD = (
    f"{_LINEAGE_DDL}, provider_source_value string, npi string, provider_name string, "
    "specialty_source_value string, care_site_source_value string, gender_source_value string"
)
CARE_SITE_RECORD = (
    f"{_LINEAGE_DDL}, care_site_source_value string, care_site_name string, place_of_service_source_value string, "
    "street string, city string, state string, zip string"
)
UNSTAGED_RECORD = f"{_LINEAGE_DDL}, reason string"

UNSTAGED = "_unstaged"
RECORDS: Mapping[str, str] = {
    "person": PERSON_RECORD,
    "visit": VISIT_RECORD,
    "event": EVENT_RECORD,
    "claim": CLAIM_RECORD,
    "provider": PROVIDER_RECORD,
    "care_site": CARE_SITE_RECORD,
    UNSTAGED: UNSTAGED_RECORD,
}

# OMOP vocabulary_id by coding system, keyed by the system in upper case with everything but letters, digits and
# ':' '/' '.' removed: FHIR system URLs, HL7 v2 table 0396 names and Synthea's SYSTEM column values.
_VOCABULARY_OF_SYSTEM: Mapping[str, str] = {
    "HTTP://SNOMED.INFO/SCT": "SNOMED",
    "SCT": "SNOMED",
    "SNOMEDCT": "SNOMED",
    "SNOMED": "SNOMED",
    "SNM": "SNOMED",
    "HTTP://HL7.ORG/FHIR/SID/ICD10CM": "ICD10CM",
    "I10": "ICD10CM",
    "I10C": "ICD10CM",
    "ICD10CM": "ICD10CM",
    "ICD10": "ICD10CM",  # Synthea writes ICD-10-CM codes under "ICD10"
    "HTTP://HL7.ORG/FHIR/SID/ICD10": "ICD10",
    "HTTP://HL7.ORG/FHIR/SID/ICD9CM": "ICD9CM",
    "I9": "ICD9CM",
    "I9C": "ICD9CM",
    "ICD9CM": "ICD9CM",
    "HTTP://LOINC.ORG": "LOINC",
    "LN": "LOINC",
    "LOINC": "LOINC",
    "HTTP://WWW.NLM.NIH.GOV/RESEARCH/UMLS/RXNORM": "RxNorm",
    "RXNORM": "RxNorm",
    "HTTP://WWW.AMAASSN.ORG/GO/CPT": "CPT4",
    "CPT": "CPT4",
    "CPT4": "CPT4",
    "C4": "CPT4",
    "URN:OID:2.16.840.1.113883.6.285": "HCPCS",
    "HTTPS://WWW.CMS.GOV/MEDICARE/CODING/HCPCSRELEASECODESETS": "HCPCS",
    "HTTP://WWW.CMS.GOV/MEDICARE/CODING/HCPCSRELEASECODESETS": "HCPCS",
    "HCPCS": "HCPCS",
    "HCPT": "HCPCS",
    "HTTP://HL7.ORG/FHIR/SID/CVX": "CVX",
    "CVX": "CVX",
    "HTTP://HL7.ORG/FHIR/SID/NDC": "NDC",
    "NDC": "NDC",
}

# Identifier systems (FHIR Identifier.system, or its v2-0203 type code) -> normalised system.
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.1"
VISIT_SYSTEM = "urn:oid:2.16.840.1.113883.3.4242.2"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
SYNTHEA_SYSTEM = "https://github.com/synthetichealth/synthea"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


# ---- record shaping --------------------------------------------------------------------------------------------


def record_columns(ddl: str) -> list[tuple[str, str]]:
    """``(name, type)`` pairs of a flat DDL string such as ``PERSON_RECORD`` (commas inside ``<>``/``()`` kept)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in ddl:
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    pairs = []
    for part in parts:
        name, _, kind = part.strip().partition(" ")
        pairs.append((name, kind.strip()))
    return pairs


def to_record(records: DataFrame, kind: str) -> DataFrame:
    """Select and cast ``records`` to the columns of a staged record kind, in order.

    Columns of the kind that ``records`` lacks come out null (identifier arrays: empty, never null); other
    columns are dropped. So a stager names only the columns its source fills, and every stager's output unions
    with the others' by name.

    Args:
        records: rows with (some of) the kind's columns.
        kind: a key of ``RECORDS``: ``person``, ``visit``, ``event``, ``claim``, ``provider``, ``care_site`` or
            ``_unstaged``.

    Raises:
        ValueError: naming ``kind`` when it is not a record kind.
    """
    if kind not in RECORDS:
        raise ValueError(f"unknown staged record kind {kind!r}: expected one of {', '.join(RECORDS)}")
    present = set(records.columns)

    def absent(data_type: str) -> Column:
        return sf.array() if data_type == IDENTIFIERS else sf.lit(None)

    return records.select(
        *[
            (sf.col(name) if name in present else absent(data_type)).cast(data_type).alias(name)
            for name, data_type in record_columns(RECORDS[kind])
        ]
    )


def with_lineage(rows: DataFrame, source: str, version: Column | None = None) -> DataFrame:
    """Add the lineage columns ``_source, _source_record_hash, _source_version`` (``_batch_id`` is bronze's).

    Args:
        rows: bronze rows (``_record_hash``, ``_batch_id``, ``_file_modified_at``).
        source: the bronze entity name.
        version: the record's own version time (FHIR ``last_updated``, HL7 ``message_datetime``); falls back to
            ``_file_modified_at`` where null, and is ``_file_modified_at`` when not given.
    """
    modified = sf.col("_file_modified_at")
    return rows.withColumns(
        {
            "_source": sf.lit(source),
            "_source_record_hash": sf.col("_record_hash"),
            "_source_version": modified if version is None else sf.coalesce(version, modified),
        }
    )


def unstaged(rows: DataFrame, reason: Column | str) -> DataFrame:
    """``rows`` (with lineage) as ``_unstaged`` records carrying ``reason`` (a literal or a column)."""
    return to_record(rows.withColumn("reason", sf.lit(reason) if isinstance(reason, str) else reason), UNSTAGED)


def no_rows(rows: DataFrame, kind: str) -> DataFrame:
    """An empty frame of ``kind`` (for a kind a stager may produce but not from these rows)."""
    return to_record(rows.where(sf.lit(False)), kind)


def explode_items(rows: DataFrame, items: Column, name: str = "_item") -> DataFrame:
    """One row per element of the array ``items`` (rows with a null or empty array yield none)."""
    return rows.withColumn(name, sf.explode(items))


def has_no_items(items: Column) -> Column:
    """True where an array column is null or empty (the rows :func:`explode_items` drops)."""
    return sf.coalesce(sf.size(items), sf.lit(0)) <= 0


# ---- values ------------------------------------------------------------------------------------------------------


def blank(text: Column) -> Column:
    """True where a string is null or only white space."""
    return text.isNull() | (sf.trim(text) == "")


def clean(text: Column) -> Column:
    """Trimmed text, null when blank."""
    return sf.when(~blank(text), sf.trim(text))


def ssn_digits(text: Column) -> Column:
    """A social security number as digits only (``906-28-3104`` -> ``906283104``); null when none are left."""
    digits = sf.regexp_replace(text, r"[^0-9]", "")
    return sf.when(digits != "", digits)


def identifier(system: Column | str, value: Column) -> Column:
    """One ``struct<system, value>`` identifier."""
    system_col = sf.lit(system) if isinstance(system, str) else system
    return sf.struct(system_col.cast("string").alias("system"), clean(value).alias("value"))


def identifiers(*items: Column) -> Column:
    """An identifier array from identifier structs and/or arrays of them: blank values dropped, duplicates once."""
    merged = sf.concat(*[sf.coalesce(item, sf.array().cast(IDENTIFIERS)) for item in items])
    return sf.array_distinct(sf.filter(merged, lambda i: i["value"].isNotNull() & i["system"].isNotNull()))


def one(item: Column) -> Column:
    """An identifier struct as a one-element array (for :func:`identifiers`)."""
    return sf.array(item).cast(IDENTIFIERS)


def other_system(system: Column) -> Column:
    """``other:<system>`` for an identifier system medspark does not normalise."""
    return sf.concat(sf.lit("other:"), sf.coalesce(system, sf.lit("unknown")))


def fhir_identifier_system(system: Column, type_code: Column) -> Column:
    """The normalised system of a FHIR Patient identifier (or a conditional reference's identifier system).

    ``mrn``: medspark's MRN system or type ``MR``; ``ssn``: ``http://hl7.org/fhir/sid/us-ssn`` or type ``SS``;
    ``synthea``: Synthea's own system; else ``other:<system>`` (type ``SB``, a social *beneficiary* number, is not
    an SSN and stays ``other``).
    """
    return (
        sf.when(system == MRN_SYSTEM, sf.lit("mrn"))
        .when(system == SSN_SYSTEM, sf.lit("ssn"))
        .when(system == SYNTHEA_SYSTEM, sf.lit("synthea"))
        .when(type_code == "MR", sf.lit("mrn"))
        .when(type_code == "SS", sf.lit("ssn"))
        .otherwise(other_system(system))
    )


def person_identifier(system: Column, value: Column) -> Column:
    """An identifier struct with a normalised system; ``ssn`` values reduced to digits."""
    return sf.struct(
        system.alias("system"), sf.when(system == "ssn", ssn_digits(value)).otherwise(clean(value)).alias("value")
    )


def vocabulary_of(system: Column) -> Column:
    """The OMOP ``vocabulary_id`` of a coding system (FHIR URL, HL7 v2 name, Synthea SYSTEM), null if unknown."""
    key = sf.regexp_replace(sf.upper(sf.trim(system)), r"[^A-Z0-9:/.]", "")
    mapping = sf.create_map(*[sf.lit(x) for pair in _VOCABULARY_OF_SYSTEM.items() for x in pair])
    return sf.try_element_at(mapping, key)


def vocabulary_or_other(system: Column, default: str | None = None) -> Column:
    """``vocabulary_of(system)``; ``default`` when the system is blank; else ``other:<system>``.

    An unknown system keeps its name, so its codes stay unmapped (concept 0) and are counted rather than lost.
    """
    known = vocabulary_of(system)
    fallback = sf.lit(default) if default is not None else other_system(clean(system))
    return sf.when(blank(system), fallback).otherwise(sf.coalesce(known, other_system(sf.trim(system))))


def chosen_coding(codings: Column) -> Column:
    """The coding an event is keyed on: the first with a code in a known vocabulary, else the first with a code.

    ``codings``: ``array<struct<system, code, ...>>``. Returns ``struct<vocabulary_id, code>`` or null.
    """
    coded = sf.filter(codings, lambda c: ~blank(c["code"]))
    known = sf.filter(coded, lambda c: vocabulary_of(c["system"]).isNotNull())
    pick = sf.coalesce(sf.get(known, 0), sf.get(coded, 0))
    return sf.when(
        pick.isNotNull(),
        sf.struct(vocabulary_or_other(pick["system"]).alias("vocabulary_id"), sf.trim(pick["code"]).alias("code")),
    )


def day_start(day: Column) -> Column:
    """A date as the timestamp of its midnight (UTC session)."""
    return day.cast("timestamp")
