"""The contract every source-format parser implements, so one job can ingest any of them exactly once.

A format is a :class:`SourceFormat`: how to recognise a file by content (``sniff``), how its records are read
(``read_mode``) and a pure ``parse`` transform. The job (``medspark.ingestion.job``) plans files, reads them,
calls ``parse``, adds lineage, splits valid from quarantined rows and writes both idempotently.

Input of ``parse``:
- ``read_mode == "lines"``: one row per physical line, columns
  ``_source_file string, _record_position long (1-based line number), _raw string``. Blank lines are removed
  by the reader (they are not records). Header lines are still present: the parser drops them.
- ``read_mode == "files"``: one row per file, columns ``_source_file string, _content binary``.

Output of ``parse``: ``{entity: DataFrame}``; every DataFrame has, first, the columns
``_source_file string, _record_position long, _raw string`` (the record's own text; for a split file the
record's slice, for a damaged file the whole decoded text), then the entity's typed columns, and last
``_quarantine_reason string`` (null when the row is valid; else a machine-readable reason from ``REASONS``,
optionally followed by ``:detail`` such as a column name, never a record value). Each input record yields
exactly one output row across all entities (a file that cannot be split yields one row with position 0).
A line-format parser that joins several physical lines into one record (a CSV field holding line breaks) adds
``_record_lines int`` (lines in the record; absent or null means 1): the job then checks that every line is in
exactly one record, and drops the column before writing.

Optionally a parser adds ``_dedup_context string`` where the raw text alone does not identify a record (a
PhysioNet line ``00:07,HR,73`` means something only within its record): the job then hashes context and raw
text together into ``_record_hash``, the key of exact-duplicate detection, and drops the column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

LINEAGE_IN = ("_source_file", "_record_position", "_raw")
RECORD_LINES = "_record_lines"  # optional parser output: physical lines joined into the record

# Machine-readable quarantine reasons. Parsers may append ":<detail>" (a column or segment name).
REASONS = {
    "invalid_json": "the record is not well-formed JSON",
    "invalid_encoding": "the bytes are not valid UTF-8 (or the declared encoding)",
    "invalid_date": "a date/time field is present but not a valid date (e.g. 2021-02-30)",
    "invalid_number": "a numeric field is present but not a number",
    "missing_identifier": "the record has no patient/member identifier or no resource id",
    "missing_field": "a field the format requires is absent",
    "duplicate_record": "byte-identical to a record already in bronze or earlier in this batch",
    "unknown_resource_type": "FHIR resourceType absent or not a string",
    "csv_field_count": "the CSV line has a different number of fields than its header",
    "csv_unbalanced_quotes": "the CSV line has an odd number of quotes that joining lines did not balance",
    "csv_unknown_table": "the CSV header matches no known table",
    "hl7_no_msh": "the message does not start with a valid MSH segment",
    "hl7_truncated": "a segment is cut short: required fields are missing",
    "hl7_bad_segment": "a segment id is not three upper-case letters/digits",
    "x12_bad_envelope": "ISA/GS/ST envelope missing, malformed or with wrong counts",
    "x12_bad_claim": "the CLM loop lacks required segments or elements",
    "bundle_invalid": "the file is not a FHIR resource or Bundle",
    "empty_file": "the file holds no records",
    "unknown_format": "no enabled format recognises the file's content",
}


@dataclass(frozen=True)
class SourceFile:
    """A planned input file, known on the driver before any data is read."""

    path: str
    size: int
    modification_time: int  # epoch milliseconds
    format: str
    head: bytes = field(repr=False, default=b"")  # the first 64 KiB, for sniffing and CSV headers


Parse = Callable[[DataFrame, Sequence[SourceFile]], Mapping[str, DataFrame]]


@dataclass(frozen=True)
class SourceFormat:
    """A source format medspark ingests."""

    name: str  # CLI name, e.g. "hl7v2"
    read_mode: Literal["lines", "files"]
    sniff: Callable[[bytes, str], bool]  # (first 64 KiB, file name) -> is this format; content first
    parse: Parse
    entities: tuple[str, ...]  # bronze tables this format can write (documentation and run log)
    description: str = ""
    # Lines of a file that are not records (a CSV header): lets the job check that parse kept every record.
    header_lines: Callable[[SourceFile], int] | None = None
    # Optional split of ``parse`` into a costly first step and the rest, for formats with several entities:
    # ``parse(x, files) == parse_prepared(prepare(x, files), files)``. The job persists ``prepare``'s result, so
    # every entity starts from it instead of repeating the step (FHIR Bundles: unpacking entries in pandas; Synthea
    # CSV: joining the lines of a quoted field that holds line breaks).
    prepare: Callable[[DataFrame, Sequence[SourceFile]], DataFrame] | None = None
    parse_prepared: Parse | None = None


def quarantine_when(conditions: Sequence[tuple[Column, str]]) -> Column:
    """First matching reason of ``(condition, reason)`` pairs, else null: the ``_quarantine_reason`` column."""
    expr: Column = sf.lit(None).cast("string")
    for condition, reason in reversed(conditions):
        expr = sf.when(condition, sf.lit(reason)).otherwise(expr)
    return expr


def bad_cast(raw: Column, typed: Column) -> Column:
    """True where a non-blank source value did not survive its cast (``try_cast``/``try_to_timestamp``)."""
    return raw.isNotNull() & (sf.trim(raw) != "") & typed.isNull()
