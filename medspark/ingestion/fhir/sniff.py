"""Tell FHIR NDJSON from FHIR JSON documents by the first 64 KiB of a file, so each file gets exactly one format.

Both kinds start with ``{`` and mention ``resourceType``; what differs is the line structure:

- NDJSON: complete lines that are each one JSON object with a ``resourceType``. The first such line decides
  (looking at the first few complete lines, so a damaged first line does not turn a bulk-export file into a
  "document"). A head without any line break that is not itself complete JSON (one very long line) is decided
  by the name: ``.ndjson``/``.jsonl`` -> NDJSON, else a Bundle if it starts like one.
- JSON document: anything else that starts with ``{`` and has ``"resourceType"`` in the head (a pretty-printed
  Bundle or resource). A file holding a single one-line document is a Bundle file when it is a Bundle or its
  name ends in ``.json``, else NDJSON.

The head may be raw gzip bytes (``read_head`` decompresses ``.gz`` heads, but callers may not): a partial
inflate of the head is used then.
"""

from __future__ import annotations

import json
import re
import zlib

HEAD_BYTES = 64 * 1024
NDJSON, DOCUMENT = "ndjson", "document"
_MAX_PROBE_LINES = 5
_NDJSON_NAMES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
_DOCUMENT_NAMES = (".json", ".json.gz")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what Hadoop's line reader splits on
_STARTS_AS_BUNDLE = re.compile(r'^\{\s*"resourceType"\s*:\s*"Bundle"')


def _head_text(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4 * HEAD_BYTES)
        except zlib.error:
            return ""
    return head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")


def _resource_line(line: str) -> dict[str, object] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value
    return None


def classify_head(head: bytes, file_name: str) -> str | None:
    """``"ndjson"``, ``"document"`` or None (not FHIR JSON) for a file's head and name."""
    text = _head_text(head)
    if '"resourceType"' not in text:
        return None
    name = file_name.lower()
    lines = _LINE_BREAK.split(text)
    complete = lines if len(head) < HEAD_BYTES else lines[:-1]  # the last line of a full head may be cut
    non_blank = [line for line in complete if line.strip()]
    if len(non_blank) == 1 and (first := _resource_line(non_blank[0])) is not None:
        # One complete one-line document: NDJSON of one resource, or a minified Bundle / resource file.
        if name.endswith(_NDJSON_NAMES):
            return NDJSON
        return DOCUMENT if first["resourceType"] == "Bundle" or name.endswith(_DOCUMENT_NAMES) else NDJSON
    if any(_resource_line(line) is not None for line in non_blank[:_MAX_PROBE_LINES]):
        return NDJSON
    if not text.startswith("{"):
        return None
    if not non_blank:  # one line longer than the head
        if name.endswith(_NDJSON_NAMES):
            return NDJSON
        if name.endswith(_DOCUMENT_NAMES) or _STARTS_AS_BUNDLE.match(text):
            return DOCUMENT
        return NDJSON
    return DOCUMENT


def sniff_ndjson(head: bytes, file_name: str) -> bool:
    """True for FHIR bulk-export NDJSON (one resource per line)."""
    return classify_head(head, file_name) == NDJSON


def sniff_document(head: bytes, file_name: str) -> bool:
    """True for a file holding one FHIR JSON document (a Bundle or a single resource), gzip'd or not."""
    return classify_head(head, file_name) == DOCUMENT
