"""De-identified research views of the OMOP silver tables (HIPAA Safe Harbour plus a per-patient date shift).

What each view removes or generalises, and why, is in docs/privacy.md. In short:
- person: year of birth only (month, day and birth datetime nulled); ages over 89 at ``as_of`` collapsed to 90
  with ``age_over_89``; every ``*_source_value`` dropped.
- location: ZIP reduced to its first three digits, ``"000"`` for the sparsely populated ZIP3s; street, city,
  county, coordinates and the source value dropped; state kept.
- event tables: every date and datetime moved by a per-patient offset in [-365, -1] or [1, 365] days derived
  from a keyed HMAC of person_id (intervals within a patient are preserved); free-text columns dropped.
- every view: system columns (``_source_record_hash`` etc., which point back to identified source records) are
  dropped and ``person_id`` is replaced by a keyed pseudonymous id.

All functions are pure transforms; the job reads silver and writes ``<lakehouse>/research/<table>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

from medspark.privacy.pseudonym import hmac_sha256, pseudonymous_id

DATE_SHIFT_DOMAIN = "date-shift"
RESEARCH_PERSON_DOMAIN = "research-person"
AGE_CAP = 90  # Safe Harbour: ages over 89 are aggregated into a single "90 or older" category

# The 17 three-digit ZIP prefixes whose areas held 20,000 people or fewer in the 2000 census (HHS guidance on
# Safe Harbour, 45 CFR 164.514(b)(2)(i)(B)); they are reported as "000".
RESTRICTED_ZIP3 = frozenset(
    {
        "036", "059", "063", "102", "203", "556", "692", "790", "821",
        "823", "830", "831", "878", "879", "884", "890", "893",
    }
)  # fmt: skip

# ``*_source_value`` columns that hold source codes (vocabulary codes, units, routes, payer codes): kept. Every
# other ``*_source_value`` is dropped, because ETLs put free text or record numbers there (``visit_source_value``
# often holds the encounter number; ``value_source_value`` the raw result text; ``family_source_value`` a family
# identifier).
CODE_SOURCE_VALUES = frozenset(
    {
        "condition_source_value",
        "condition_status_source_value",
        "drug_source_value",
        "route_source_value",
        "dose_unit_source_value",
        "procedure_source_value",
        "modifier_source_value",
        "measurement_source_value",
        "unit_source_value",
        "observation_source_value",
        "qualifier_source_value",
        "cause_source_value",
        "admitted_from_source_value",
        "discharged_to_source_value",
        "device_source_value",
        "specimen_source_value",
        "anatomic_site_source_value",
        "disease_status_source_value",
        "payer_source_value",
        "plan_source_value",
        "revenue_code_source_value",
        "drg_source_value",
    }
)

# Columns that carry free text or device/specimen serials whatever their name says.
FREE_TEXT_COLUMNS = frozenset(
    {
        "value_as_string",
        "value_source_value",
        "stop_reason",
        "sig",
        "lot_number",
        "unique_device_id",
        "production_id",
        "specimen_source_id",
    }
)
_FREE_TEXT_SUFFIXES = ("_text", "_title")

_LOCATION_DROPPED = ("address_1", "address_2", "city", "county", "location_source_value", "latitude", "longitude")


@dataclass(frozen=True)
class ResearchTable:
    """The date and datetime columns of one silver table that are shifted in its research view."""

    date_columns: tuple[str, ...] = ()
    datetime_columns: tuple[str, ...] = ()


# Silver tables (OMOP CDM v5.4 names) that get a research view. person and location have their own rules.
RESEARCH_TABLES: Mapping[str, ResearchTable] = MappingProxyType(
    {
        "person": ResearchTable(),
        "location": ResearchTable(),
        "observation_period": ResearchTable(("observation_period_start_date", "observation_period_end_date")),
        "visit_occurrence": ResearchTable(
            ("visit_start_date", "visit_end_date"), ("visit_start_datetime", "visit_end_datetime")
        ),
        "condition_occurrence": ResearchTable(
            ("condition_start_date", "condition_end_date"), ("condition_start_datetime", "condition_end_datetime")
        ),
        "drug_exposure": ResearchTable(
            ("drug_exposure_start_date", "drug_exposure_end_date", "verbatim_end_date"),
            ("drug_exposure_start_datetime", "drug_exposure_end_datetime"),
        ),
        "procedure_occurrence": ResearchTable(
            ("procedure_date", "procedure_end_date"), ("procedure_datetime", "procedure_end_datetime")
        ),
        "measurement": ResearchTable(("measurement_date",), ("measurement_datetime",)),
        "observation": ResearchTable(("observation_date",), ("observation_datetime",)),
        "death": ResearchTable(("death_date",), ("death_datetime",)),
        "payer_plan_period": ResearchTable(("payer_plan_period_start_date", "payer_plan_period_end_date")),
        # No person_id and no dates: rows reach a person only through cost_event_id (a visit id), so the view only
        # drops system and free-text columns.
        "cost": ResearchTable(),
    }
)


def shift_days(person_id: Column, key: bytes, max_days: int = 365) -> Column:
    """A per-patient day offset in ``[-max_days, -1] ∪ [1, max_days]`` (int), the same for every row of a patient.

    Derived from ``hmac_sha256("date-shift:" + person_id, key)``: its first 8 hex digits as an unsigned number
    ``n``, ``r = n mod 2*max_days``, offset ``r - max_days`` when ``r < max_days`` else ``r - max_days + 1``.
    Without the key the offset cannot be recomputed. Null person_id gives null.
    """
    if not isinstance(max_days, int) or max_days < 1:
        raise ValueError(f"max_days must be a positive integer, got {max_days!r}")
    digest = hmac_sha256(sf.concat(sf.lit(DATE_SHIFT_DOMAIN + ":"), person_id.cast("string")), key)
    number = sf.conv(sf.substring(digest, 1, 8), 16, 10).cast("bigint")
    residue = sf.pmod(number, sf.lit(2 * max_days))
    offset = sf.when(residue < max_days, residue - max_days).otherwise(residue - max_days + 1)
    return offset.cast("int")


def _system_columns(columns: Iterable[str]) -> list[str]:
    return [name for name in columns if name.startswith("_")]


def is_free_text(column: str) -> bool:
    """True for columns research views drop as free text (see ``CODE_SOURCE_VALUES`` and ``FREE_TEXT_COLUMNS``)."""
    if column in FREE_TEXT_COLUMNS or column.endswith(_FREE_TEXT_SUFFIXES):
        return True
    return column.endswith("_source_value") and column not in CODE_SOURCE_VALUES


def deidentify_person(persons: DataFrame, *, as_of: dt.date) -> DataFrame:
    """Safe-Harbour person rows.

    Input: an OMOP ``person`` frame (``year_of_birth`` required; ``month_of_birth``, ``day_of_birth``,
    ``birth_datetime`` used for the age when present).

    Output: the same columns except every ``*_source_value`` and system column, with ``month_of_birth``,
    ``day_of_birth`` and ``birth_datetime`` null (types kept), plus ``age_over_89 boolean``: true when the age on
    ``as_of`` is over 89, and then ``year_of_birth = as_of.year - 90`` so every such person reads as exactly 90.
    When only the year is known the person is taken as born on 1 January (the oldest possible, so never
    under-reported). ``age_over_89`` is null when ``year_of_birth`` is null.

    Args:
        persons: silver person rows.
        as_of: the reference date of the ages (the release date; never "now", so reruns agree).
    """
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise TypeError("as_of must be a datetime.date")
    types = dict(persons.dtypes)
    months = [sf.col("month_of_birth")] if "month_of_birth" in types else []
    days = [sf.col("day_of_birth")] if "day_of_birth" in types else []
    if "birth_datetime" in types:
        months.append(sf.month("birth_datetime"))
        days.append(sf.dayofmonth("birth_datetime"))
    birth_month = sf.coalesce(*months, sf.lit(1))
    birth_day = sf.coalesce(*days, sf.lit(1))
    before_birthday = (birth_month > as_of.month) | ((birth_month == as_of.month) & (birth_day > as_of.day))
    age = sf.lit(as_of.year) - sf.col("year_of_birth") - sf.when(before_birthday, 1).otherwise(0)
    over_89 = age >= AGE_CAP
    dropped = [name for name in persons.columns if name.endswith("_source_value")] + _system_columns(persons.columns)
    nulled: dict[str, Column] = {
        name: sf.lit(None).cast(types[name])
        for name in ("month_of_birth", "day_of_birth", "birth_datetime")
        if name in types
    }
    return persons.withColumns(
        {
            "year_of_birth": sf.when(over_89, sf.lit(as_of.year - AGE_CAP))
            .otherwise(sf.col("year_of_birth"))
            .cast(types["year_of_birth"]),
            "age_over_89": over_89,
            **nulled,
        }
    ).drop(*dropped)


def deidentify_location(locations: DataFrame) -> DataFrame:
    """Safe-Harbour location rows: ZIP3 (``"000"`` for restricted prefixes), state kept, smaller areas dropped.

    Input: an OMOP ``location`` frame. Output: the same columns without ``address_1``, ``address_2``, ``city``,
    ``county``, ``location_source_value``, ``latitude``, ``longitude`` and system columns; ``zip`` holds the
    first three digits of a 5- or 9-digit US ZIP (``12345``, ``12345-6789``, ``123456789``; a 4-digit value is
    read as a ZIP that lost its leading zero), ``"000"`` for ``RESTRICTED_ZIP3``, null for anything else.
    """
    zip_text = sf.trim(sf.col("zip").cast("string"))
    zip5 = sf.when(zip_text.rlike(r"^[0-9]{5}(-?[0-9]{4})?$"), sf.substring(zip_text, 1, 5)).when(
        zip_text.rlike(r"^[0-9]{4}$"), sf.lpad(zip_text, 5, "0")
    )
    zip3 = sf.substring(zip5, 1, 3)
    generalised = sf.when(zip3.isin(*sorted(RESTRICTED_ZIP3)), sf.lit("000")).otherwise(zip3)
    result = locations.withColumn("zip", generalised) if "zip" in locations.columns else locations
    return result.drop(*_LOCATION_DROPPED, *_system_columns(locations.columns))


def deidentify_events(
    events: DataFrame,
    *,
    key: bytes,
    date_columns: Sequence[str] = (),
    datetime_columns: Sequence[str] = (),
    max_days: int = 365,
) -> DataFrame:
    """Event rows with dates shifted per patient and free text dropped.

    Input: an OMOP event frame with ``person_id`` and the named ``date`` / ``timestamp`` columns. Output: the same
    columns with each named column moved by ``shift_days(person_id, key, max_days)`` days (datetimes by calendar
    days in the session time zone, so the shifted date part matches the shifted date) and without system columns
    and free-text columns (``is_free_text``). ``person_id`` is unchanged here; ``build_research_view`` replaces it.
    """
    if "person_id" not in events.columns:
        raise ValueError("events need a person_id column to shift dates per patient")
    missing = [name for name in (*date_columns, *datetime_columns) if name not in events.columns]
    if missing:
        raise ValueError(f"date columns not in the frame: {', '.join(missing)}")
    offset = shift_days(sf.col("person_id"), key, max_days)
    shifted = {name: sf.date_add(sf.col(name), offset) for name in date_columns}
    shifted |= {name: sf.timestamp_add("DAY", offset, sf.col(name)) for name in datetime_columns}
    dropped = [name for name in events.columns if is_free_text(name)] + _system_columns(events.columns)
    return events.withColumns(shifted).drop(*dropped)


def _shifted_columns(table_name: str, frame: DataFrame) -> tuple[list[str], list[str]]:
    """Declared date columns present in ``frame``, plus any other date/timestamp column (fail closed)."""
    spec = RESEARCH_TABLES[table_name]
    fields = {field.name: field.dataType for field in frame.schema.fields}
    for name in (*spec.date_columns, *spec.datetime_columns):
        if name in fields and not isinstance(fields[name], DateType | TimestampType | TimestampNTZType):
            raise ValueError(
                f"{table_name}.{name} must be a date or timestamp column, not {fields[name].simpleString()}"
            )
    dates = [name for name, kind in fields.items() if isinstance(kind, DateType) and not name.startswith("_")]
    datetimes = [
        name
        for name, kind in fields.items()
        if isinstance(kind, TimestampType | TimestampNTZType) and not name.startswith("_")
    ]
    return dates, datetimes


def build_research_view(
    table_name: str,
    frame: DataFrame,
    *,
    key: bytes,
    as_of: dt.date,
    persons: DataFrame | None = None,
    max_days: int = 365,
) -> DataFrame:
    """The research view of one silver table (a key of ``RESEARCH_TABLES``).

    Dispatches to ``deidentify_person``, ``deidentify_location`` or ``deidentify_events``. Event tables shift the
    declared date columns and, failing closed, any other date or timestamp column. Every view with a
    ``person_id`` gets ``person_id = pseudonymous_id(person_id, key, domain="research-person")`` (dates are
    shifted from the silver person_id first), so research ids cannot be linked to silver, gold or the
    re-identification table without the key.

    Args:
        table_name: silver table name.
        frame: the silver rows.
        key: the pseudonym key.
        as_of: reference date of ages (person).
        persons: optional silver person rows; when given, rows of other tables are restricted to their person_ids
            (e.g. to leave out persons excluded from the research person view).
        max_days: bound of the date shift.
    """
    if table_name not in RESEARCH_TABLES:
        raise ValueError(f"no research view for table {table_name!r}; known: {', '.join(sorted(RESEARCH_TABLES))}")
    if table_name == "location":
        return deidentify_location(frame)
    if table_name == "person":
        view = deidentify_person(frame, as_of=as_of)
    elif "person_id" not in frame.columns:
        dropped = [name for name in frame.columns if is_free_text(name)] + _system_columns(frame.columns)
        return frame.drop(*dropped)
    else:
        if persons is not None:
            kept = persons.select(sf.col("person_id").alias("_kept_person_id"))
            frame = frame.join(kept, sf.col("person_id") == sf.col("_kept_person_id"), how="left_semi")
        dates, datetimes = _shifted_columns(table_name, frame)
        view = deidentify_events(frame, key=key, date_columns=dates, datetime_columns=datetimes, max_days=max_days)
    return view.withColumn("person_id", pseudonymous_id(sf.col("person_id"), key, domain=RESEARCH_PERSON_DOMAIN))
