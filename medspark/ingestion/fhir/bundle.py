"""Unpack whole FHIR JSON files (a Bundle, or one resource) into resource records, keeping each entry's own text.

Why Python (``mapInPandas``) and not Spark's JSON functions:

- gzip: ``binaryFile`` delivers ``.json.gz`` as compressed bytes and Spark has no function that inflates a
  binary column.
- exact text: ``from_json`` with ``entry: array<struct<resource: string>>`` does keep an entry's unknown fields,
  but it re-serialises the object through Jackson: whitespace and escapes are normalised and every decimal is
  re-printed from a double (``0.1000`` -> ``0.1``, ``1e5`` -> ``100000.0``), which loses the precision FHIR
  decimals carry. The contract wants the record's own slice of the file, so this module finds each
  ``entry[i].resource`` value's byte span with Python's C JSON scanner and returns those bytes unchanged.
- strictness: ``from_json`` ignores anything after the first JSON value (``{...} garbage`` parses); the scanner
  requires the document to end after it.

Bytes are decoded with ``surrogateescape`` so that a slice re-encodes to exactly the original bytes, invalid
UTF-8 included; the Spark side then flags those records ``invalid_encoding`` with ``is_valid_utf8``.

Records per file: a Bundle (any ``type``) gives one record per ``entry`` (position = 1-based entry number; an
entry without ``resource`` gives its own entry text with ``missing_field:resource``); nested Bundles are entries
like any other (not recursed into). A single non-Bundle resource gives one record at position 1. A file that is
not one JSON object with a ``resourceType`` gives one record at position 0 with ``bundle_invalid`` (a broken
gzip stream: ``bundle_invalid:gzip``, with an empty ``_raw``); an empty file or a Bundle without entries gives
one record at position 0 with ``empty_file``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pandas as pd
from pyspark.sql import DataFrame

GZIP_MAGIC = b"\x1f\x8b"
SPLIT_SCHEMA = "_source_file string, _record_position long, _raw_bytes binary, _full_url string, _split_reason string"
_WHITESPACE = " \t\n\r"
_ROWS_PER_CHUNK = 2_000


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


# Strict: NaN / Infinity are not JSON; control characters inside strings are rejected (strict=True).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class SplitRecord(NamedTuple):
    """One resource record cut from a file."""

    position: int
    raw: bytes
    full_url: str | None
    reason: str | None


class _Invalid(ValueError):
    """The text is not the JSON this module expects."""


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WHITESPACE:
        i += 1
    return i


def _value_end(text: str, start: int) -> int:
    """End index of the JSON value starting at ``start``."""
    try:
        _, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        raise _Invalid(str(exc)) from exc
    return int(end)


def _walk_object(text: str, start: int, consume: Callable[[str, int], int]) -> int:
    """Walk the object at ``text[start]``: ``consume(key, value_start)`` reads each member's value and returns
    the index just after it. Returns the index just after the closing brace."""
    if start >= len(text) or text[start] != "{":
        raise _Invalid("not an object")
    i = _skip_ws(text, start + 1)
    if i < len(text) and text[i] == "}":
        return i + 1
    while True:
        if i >= len(text) or text[i] != '"':
            raise _Invalid("expected a member name")
        try:
            key, i = _DECODER.raw_decode(text, i)
        except ValueError as exc:
            raise _Invalid(str(exc)) from exc
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] != ":":
            raise _Invalid("expected ':'")
        i = _skip_ws(text, consume(str(key), _skip_ws(text, i + 1)))
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
        elif i < len(text) and text[i] == "}":
            return i + 1
        else:
            raise _Invalid("expected ',' or '}'")


def _walk_array(text: str, start: int, consume: Callable[[int], int]) -> int:
    """Walk the array at ``text[start]`` (``[``): ``consume(value_start)`` returns the index after each element.
    Returns the index just after the closing bracket."""
    i = _skip_ws(text, start + 1)
    if i < len(text) and text[i] == "]":
        return i + 1
    while True:
        i = _skip_ws(text, consume(i))
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
        elif i < len(text) and text[i] == "]":
            return i + 1
        else:
            raise _Invalid("expected ',' or ']'")


def _string_at(text: str, start: int, end: int) -> str | None:
    value = json.loads(text[start:end]) if text[start] == '"' else None
    return value if isinstance(value, str) else None


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _entry_records(text: str, array_start: int) -> tuple[list[SplitRecord], int]:
    """Records of a Bundle's ``entry`` array, and the index after the array."""
    records: list[SplitRecord] = []

    def entry(start: int) -> int:
        spans: dict[str, tuple[int, int]] = {}

        def member(key: str, value_start: int) -> int:
            value_end = _value_end(text, value_start)
            spans[key] = (value_start, value_end)
            return value_end

        is_object = start < len(text) and text[start] == "{"
        end = _walk_object(text, start, member) if is_object else _value_end(text, start)
        number = len(records) + 1
        full_url = _string_at(text, *spans["fullUrl"]) if "fullUrl" in spans else None
        resource = spans.get("resource")
        if resource is None or text[resource[0]] == "n":  # absent, or "resource": null
            records.append(SplitRecord(number, _encode(text[start:end]), full_url, "missing_field:resource"))
        else:
            records.append(SplitRecord(number, _encode(text[resource[0] : resource[1]]), full_url, None))
        return end

    return records, _walk_array(text, array_start, entry)


def split_document(content: bytes) -> list[SplitRecord]:
    """Resource records of one whole file's bytes (gzip or plain); see the module docstring for the rules."""
    if content[:2] == GZIP_MAGIC:
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error):
            return [SplitRecord(0, b"", None, "bundle_invalid:gzip")]
    text = content.decode("utf-8", "surrogateescape")
    start = _skip_ws(text, 1 if text.startswith("\ufeff") else 0)
    if start >= len(text):
        return [SplitRecord(0, content, None, "empty_file")]
    found: dict[str, object] = {}

    def member(key: str, value_start: int) -> int:
        if key == "entry" and text[value_start] == "[":
            found["entries"], end = _entry_records(text, value_start)
            return end
        end = _value_end(text, value_start)
        if key == "resourceType":
            found["resourceType"] = _string_at(text, value_start, end)
        elif key == "entry":
            found["entries"] = None if text[value_start] == "n" else "not an array"
        return end

    try:
        end = _walk_object(text, start, member)
        if _skip_ws(text, end) != len(text):
            raise _Invalid("content after the JSON document")
        resource_type = found.get("resourceType")
        if not resource_type:
            raise _Invalid("no resourceType")
        document = _encode(text[start:end])
        if resource_type != "Bundle":
            return [SplitRecord(1, document, None, None)]
        entries = found.get("entries")
        if isinstance(entries, str):
            raise _Invalid("Bundle.entry is not an array")
        return entries if isinstance(entries, list) and entries else [SplitRecord(0, document, None, "empty_file")]
    except _Invalid:
        return [SplitRecord(0, content, None, "bundle_invalid")]


def _split_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    columns = ["_source_file", "_record_position", "_raw_bytes", "_full_url", "_split_reason"]
    rows: list[tuple[str, int, bytes, str | None, str | None]] = []
    for batch in batches:
        for source_file, content in zip(batch["_source_file"], batch["_content"], strict=True):
            for record in split_document(bytes(content)):
                rows.append((source_file, record.position, record.raw, record.full_url, record.reason))
            if len(rows) >= _ROWS_PER_CHUNK:
                yield pd.DataFrame(rows, columns=columns)
                rows = []
    if rows:
        yield pd.DataFrame(rows, columns=columns)


def split_files(files: DataFrame) -> DataFrame:
    """One row per resource record of whole FHIR JSON files (pure transform; a pandas step, see module doc).

    Input columns: ``_source_file string, _content binary`` (one row per file).
    Output columns: ``_source_file string, _record_position long, _raw_bytes binary`` (the record's exact
    bytes), ``_full_url string`` (the entry's ``fullUrl``), ``_split_reason string`` (null, or ``bundle_invalid``,
    ``empty_file``, ``missing_field:resource``).
    """
    return files.select("_source_file", "_content").mapInPandas(_split_batches, SPLIT_SCHEMA)
