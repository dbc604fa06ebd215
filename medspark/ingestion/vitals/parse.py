"""Bedside-monitor / device vitals into one bronze entity, ``device_vitals``, from two line layouts.

Devices deliver readings as JSON Lines (one reading per line: ``device_id, patient_mrn, timestamp, metric,
value, unit``), while ICU research exports such as the PhysioNet/CinC Challenge 2012 use a per-record CSV in
long format (``Time,Parameter,Value``; ``Time`` = ``HH:MM`` since ICU admission; the first rows are the
record's descriptors such as ``RecordID`` and ``Age``; ``-1`` means "not measured"). Both are a stream of
(patient, time, parameter, value) readings, so they share one table; ``layout`` says which one a row came
from, and the columns that only one layout has are null for the other.

A file's layout is decided on the driver from its head (``SourceFile.head``): a first line exactly
``Time,Parameter,Value`` makes it ``long_csv`` (that header line yields no row), anything else is ``jsonl``.
A long-format file's record id is read from its ``RecordID`` row in the head, else from a numeric file name
(``132539.txt``), so each line is parsed on its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.ingestion.contract import SourceFile, SourceFormat, bad_cast, quarantine_when

log = logging.getLogger(__name__)

ENTITY = "device_vitals"
JSONL, LONG_CSV = "jsonl", "long_csv"
LONG_HEADER = "Time,Parameter,Value"
MISSING_VALUE = -1.0  # PhysioNet's marker for "not measured"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what Hadoop's line reader splits on
_RECORD_ID_ROW = re.compile(r"^\s*\d+:\d{2}\s*,\s*RecordID\s*,\s*([^,\s]+)\s*$")
_HEAD_BYTES = 64 * 1024
_SNIFF_LINES = 50
_JSON_SCHEMA = (
    "device_id STRING, patient_mrn STRING, patient_id STRING, timestamp STRING, metric STRING, "
    "value STRING, unit STRING, _corrupt_record STRING"
)
# Strict JSON: no single quotes, no NaN/Infinity literals (a value string is parsed to double separately).
_JSON_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": "_corrupt_record",
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}
_CSV_SCHEMA = "Time STRING, Parameter STRING, Value STRING, _corrupt_record STRING"
_CSV_OPTIONS = {"mode": "PERMISSIVE", "escape": '"', "columnNameOfCorruptRecord": "_corrupt_record"}
_ELAPSED = r"^\s*(\d{1,4}):([0-5]\d)\s*$"
_TIMESTAMP_PATTERNS = ("yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX", "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XX")

COLUMNS = (
    "layout",
    "device_id",
    "patient_identifier",
    "record_id",
    "observed_at",
    "elapsed_minutes",
    "parameter",
    "value",
    "is_missing",
    "unit",
)


# ---- driver side ---------------------------------------------------------------------------------------------


def _lines(head: bytes) -> list[tuple[int, str]]:
    """``(1-based line number, text)`` of the head's complete non-blank lines."""
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    parts = _LINE_BREAK.split(text)
    if len(head) >= _HEAD_BYTES:
        parts = parts[:-1]  # the last line may be cut by the 64 KiB limit
    return [(n, line) for n, line in enumerate(parts, start=1) if line.strip(" ") != ""]


def _is_long_header(line: str) -> bool:
    return line.strip() == LONG_HEADER


def _is_reading(line: str) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and "metric" in value and "value" in value


def sniff(head: bytes, file_name: str) -> bool:
    """True for a ``Time,Parameter,Value`` header, or JSON Lines whose readings carry ``metric`` and ``value``.

    Any of the first 50 lines may be the reading: one malformed first line does not hide a vitals file.
    """
    lines = _lines(head)
    if not lines:
        return False
    if _is_long_header(lines[0][1]):
        return True
    return any(_is_reading(line) for _, line in lines[:_SNIFF_LINES])


def header_lines(source: SourceFile) -> int:
    """Lines of ``source`` that are not records: 1 for a long-format file's header, else 0."""
    lines = _lines(source.head)
    return 1 if lines and _is_long_header(lines[0][1]) else 0


@dataclass(frozen=True)
class _LongFile:
    header_line: int
    record_id: str | None


def _record_id(lines: Sequence[tuple[int, str]], path: str) -> str | None:
    for _, line in lines:
        match = _RECORD_ID_ROW.match(line)
        if match:
            return match.group(1)
    stem = path.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem if stem.isdigit() else None


def _plan(files: Sequence[SourceFile]) -> dict[str, _LongFile]:
    """The long-format files of the batch (every other file is JSON Lines)."""
    long_files = {}
    for source in files:
        lines = _lines(source.head)
        if lines and _is_long_header(lines[0][1]):
            long_files[source.path] = _LongFile(lines[0][0], _record_id(lines, source.path))
    log.debug("vitals: %d file(s), %d in long CSV layout", len(files), len(long_files))
    return long_files


def _with_file_layout(lines: DataFrame, long_files: Mapping[str, _LongFile]) -> DataFrame:
    """Add ``_long`` (boolean), ``_header_line`` and ``_file_record_id`` per line, by a broadcast join."""
    layouts = lines.sparkSession.createDataFrame(
        [(path, True, f.header_line, f.record_id) for path, f in long_files.items()],
        "_source_file string, _long boolean, _header_line int, _file_record_id string",
    )
    return lines.join(sf.broadcast(layouts), "_source_file", "left").withColumn(
        "_long", sf.coalesce(sf.col("_long"), sf.lit(False))
    )


# ---- executor side -------------------------------------------------------------------------------------------


def _present(value: Column) -> Column:
    """The value, or null when it is blank."""
    return sf.when(sf.trim(value) != "", value)


def _iso_timestamp(value: Column) -> Column:
    """ISO-8601 with an offset (``+01:00``, ``+0100`` or ``Z``) to a UTC timestamp; null without an offset or
    when not a real instant (Feb 30); a local time without offset is ambiguous, so it is not accepted."""
    return sf.when(
        value.rlike(r"^\d{4}-\d{2}-\d{2}T"),
        sf.coalesce(*[sf.try_to_timestamp(value, sf.lit(p)) for p in _TIMESTAMP_PATTERNS]),
    )


def _with_parsed(records: DataFrame) -> DataFrame:
    """Parse each line once, as JSON or as a ``Time,Parameter,Value`` CSV row, into string fields."""
    long = sf.col("_long")
    parsed = records.select(
        "*",
        sf.when(~long, sf.from_json(sf.col("_text"), _JSON_SCHEMA, _JSON_OPTIONS)).alias("_j"),
        sf.when(long, sf.from_csv(sf.col("_text"), _CSV_SCHEMA, _CSV_OPTIONS)).alias("_c"),
    )
    trimmed = sf.trim(sf.col("_text"))
    # Spark's JSON reader ignores text after the first value ({...} junk); a reading must be exactly one object.
    json_ok = sf.col("_j._corrupt_record").isNull() & trimmed.startswith("{") & trimmed.endswith("}")
    patient = sf.coalesce(_present(sf.col("_j.patient_mrn")), _present(sf.col("_j.patient_id")))
    return parsed.select(
        "_source_file",
        "_record_position",
        "_raw",
        sf.when(long, sf.lit(LONG_CSV)).otherwise(sf.lit(JSONL)).alias("layout"),
        sf.when(long, sf.col("_c._corrupt_record").isNull()).otherwise(json_ok).alias("_well_formed"),
        sf.col("_j.device_id").alias("device_id"),
        sf.when(long, sf.col("_file_record_id")).otherwise(patient).alias("patient_identifier"),
        sf.when(long, sf.col("_file_record_id")).alias("record_id"),
        sf.col("_j.timestamp").alias("_s_timestamp"),
        sf.col("_c.Time").alias("_s_time"),
        sf.when(long, sf.col("_c.Parameter")).otherwise(sf.col("_j.metric")).alias("parameter"),
        sf.when(long, sf.col("_c.Value")).otherwise(sf.col("_j.value")).alias("_s_value"),
        sf.col("_j.unit").alias("unit"),
    )


def parse_vitals(inputs: DataFrame, files: Sequence[SourceFile]) -> dict[str, DataFrame]:
    """Parse vitals lines (JSON Lines or PhysioNet long CSV) into ``device_vitals``.

    Args:
        inputs: ``_source_file, _record_position, _raw``, header lines included.
        files: the planned files; each file's layout and record id come from its ``head``.

    Returns:
        ``{"device_vitals": rows}`` with ``_source_file, _record_position, _raw, layout ('jsonl'|'long_csv'),
        device_id, patient_identifier (patient_mrn, alias patient_id; or the PhysioNet RecordID), record_id
        (long_csv), observed_at timestamp UTC (jsonl), elapsed_minutes int (long_csv), parameter, value double
        (as given, also -1), is_missing boolean (long_csv value -1; false for jsonl), unit (jsonl),
        _quarantine_reason``. A long-format file's header line yields no row; every other line exactly one.
        Reasons: ``invalid_encoding``, ``invalid_json``, ``csv_field_count``, ``missing_identifier``,
        ``missing_field:<metric|timestamp|value|Parameter|Time|Value>``, ``invalid_date:<timestamp|Time>``,
        ``invalid_number:<value|Value>``.
    """
    long_files = _plan(files)
    text = sf.when(sf.is_valid_utf8("_raw"), sf.col("_raw")).otherwise(sf.make_valid_utf8("_raw"))
    records = (
        inputs.transform(_with_file_layout, long_files)
        .where(~sf.col("_long") | (sf.col("_record_position") > sf.col("_header_line")))
        .withColumn("_text", sf.rtrim(text, sf.lit("\r")))
    )
    fields = records.transform(_with_parsed)
    long = sf.col("layout") == LONG_CSV
    value = sf.col("_s_value").try_cast("double")
    minutes = sf.regexp_extract(sf.col("_s_time"), _ELAPSED, 1).try_cast("int") * 60 + sf.regexp_extract(
        sf.col("_s_time"), _ELAPSED, 2
    ).try_cast("int")
    typed = fields.select(
        "*",
        sf.when(~long, _iso_timestamp(sf.col("_s_timestamp"))).alias("observed_at"),
        sf.when(long & sf.col("_s_time").rlike(_ELAPSED), minutes).alias("elapsed_minutes"),
        value.alias("value"),
        (long & sf.coalesce(value == MISSING_VALUE, sf.lit(False))).alias("is_missing"),
    )

    checks = [
        (~sf.is_valid_utf8("_raw"), "invalid_encoding"),
        (~long & ~sf.col("_well_formed"), "invalid_json"),
        (long & ~sf.col("_well_formed"), "csv_field_count"),
        (_blank(sf.col("patient_identifier")), "missing_identifier"),
        (~long & _blank(sf.col("parameter")), "missing_field:metric"),
        (~long & _blank(sf.col("_s_timestamp")), "missing_field:timestamp"),
        (~long & _blank(sf.col("_s_value")), "missing_field:value"),
        (~long & bad_cast(sf.col("_s_timestamp"), sf.col("observed_at")), "invalid_date:timestamp"),
        (~long & bad_cast(sf.col("_s_value"), sf.col("value")), "invalid_number:value"),
        (long & _blank(sf.col("parameter")), "missing_field:Parameter"),
        (long & _blank(sf.col("_s_time")), "missing_field:Time"),
        (long & _blank(sf.col("_s_value")), "missing_field:Value"),
        (long & bad_cast(sf.col("_s_time"), sf.col("elapsed_minutes")), "invalid_date:Time"),
        (long & bad_cast(sf.col("_s_value"), sf.col("value")), "invalid_number:Value"),
    ]
    return {
        ENTITY: typed.select(
            "_source_file",
            "_record_position",
            "_raw",
            *COLUMNS,
            quarantine_when(checks).alias("_quarantine_reason"),
            # A long-format line ("00:07,HR,73") does not identify itself: its record and line do.
            sf.when(long, sf.concat_ws("|", sf.col("record_id"), sf.col("_record_position").cast("string")))
            .alias("_dedup_context"),
        )
    }


def _blank(value: Column) -> Column:
    return value.isNull() | (sf.trim(value) == "")


FORMAT = SourceFormat(
    name="vitals-jsonl",
    read_mode="lines",
    sniff=sniff,
    parse=parse_vitals,
    entities=(ENTITY,),
    description="device vitals: JSON Lines readings or PhysioNet 2012 long CSV (Time,Parameter,Value)",
    header_lines=header_lines,
)
