"""The source formats medspark knows, by CLI name, and content-based recognition of a file's format."""

from __future__ import annotations

import dataclasses
import importlib
from functools import cache

from medspark.errors import UsageError
from medspark.ingestion.contract import SourceFile, SourceFormat

# CLI name -> module:attribute. Order matters for ``auto``: the most specific sniffers first.
_FORMATS = {
    "x12-837": "medspark.ingestion.x12.parse:FORMAT",
    "hl7v2": "medspark.ingestion.hl7v2.parse:FORMAT",
    "fhir-ndjson": "medspark.ingestion.fhir.parse:FORMAT_NDJSON",
    "fhir-bundle": "medspark.ingestion.fhir.parse:FORMAT_BUNDLE",
    "vitals-jsonl": "medspark.ingestion.vitals.parse:FORMAT",
    "synthea-csv": "medspark.ingestion.synthea_csv.parse:FORMAT",
}
FORMAT_NAMES = tuple(_FORMATS)


@cache
def get_format(name: str) -> SourceFormat:
    """The format registered under ``name``."""
    if name not in _FORMATS:
        raise UsageError(f"unknown format '{name}' (choose auto or one of: {', '.join(FORMAT_NAMES)})")
    module, attr = _FORMATS[name].split(":")
    fmt = getattr(importlib.import_module(module), attr)
    assert isinstance(fmt, SourceFormat)
    if fmt.header_lines is None and name in _HEADERS:
        fmt = dataclasses.replace(fmt, header_lines=_HEADERS[name])
    return fmt


def _csv_header(source: SourceFile) -> int:
    return 1 if source.head.strip() else 0


def _vitals_header(source: SourceFile) -> int:
    return 1 if source.head.lstrip(b"\xef\xbb\xbf").startswith(b"Time,Parameter,Value") else 0


_HEADERS = {"synthea-csv": _csv_header, "vitals-jsonl": _vitals_header}


def detect_format(head: bytes, file_name: str, enabled: tuple[str, ...] = FORMAT_NAMES) -> str | None:
    """Name of the first enabled format whose sniffer recognises the content, or None."""
    for name in enabled:
        try:
            if get_format(name).sniff(head, file_name):
                return name
        except (ValueError, UnicodeDecodeError):
            continue
    return None


def header_lines(fmt: SourceFormat, source: SourceFile) -> int:
    """Non-record lines at the top of a file (a CSV header), per the format."""
    return fmt.header_lines(source) if fmt.header_lines else 0


def option_key(name: str) -> str:
    """Config attribute of a format under ``ingest``."""
    return name.replace("-", "_")
