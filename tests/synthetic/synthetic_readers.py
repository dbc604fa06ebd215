"""Independent readers for the generator's outputs (standard library only, no generator code).

The tests read generated files the way a consumer would: ``csv`` for Synthea, ``json`` for FHIR and vitals, a
plain split for HL7 v2 and an X12 splitter that checks the envelope and SE counts, so a generator bug cannot
hide behind a shared helper.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The small populations the tests generate (see conftest.py).
SEED = 11
PATIENTS = 300
CHUNK = 100
DEFECT_RATE = 0.03


def csv_lines(path: Path) -> list[bytes]:
    """Physical lines of a CSV file (bytes, without line terminators); line 1 is the header."""
    return path.read_bytes().split(b"\n")[:-1]


def csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a clean CSV file, parsed with the csv module."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def jsonl_lines(path: Path) -> list[bytes]:
    """Lines of an NDJSON/JSONL file (bytes, 1-based positions are index + 1)."""
    return path.read_bytes().split(b"\n")[:-1]


def json_objects(path: Path) -> list[dict[str, Any]]:
    """All lines of a clean NDJSON/JSONL file as objects."""
    return [json.loads(line) for line in jsonl_lines(path)]


def hl7_messages(path: Path) -> list[bytes]:
    """Messages of an HL7 file: MLLP frames for ``.mllp``, else one message per line."""
    data = path.read_bytes()
    if path.suffix == ".mllp":
        frames = data.split(b"\x1c\r")
        assert frames[-1] == b"", "MLLP file must end with an end-of-block frame"
        assert all(f.startswith(b"\x0b") for f in frames[:-1]), "every frame starts with VT"
        return [f[1:] for f in frames[:-1]]
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def hl7_segments(message: bytes) -> list[list[str]]:
    """Segments of a (decodable) HL7 message as field lists (field 0 is the segment id)."""
    return [seg.split("|") for seg in message.decode("utf-8").split("\r")]


def hl7_segment(message: bytes, name: str) -> list[str]:
    """The first segment with this id."""
    return next(seg for seg in hl7_segments(message) if seg[0] == name)


@dataclass
class X12Interchange:
    """An 837 file split into transactions and claims (claims in file order)."""

    segments: list[list[str]]
    claims: list[list[list[str]]]
    transactions: int


def x12_parse(path: Path) -> X12Interchange:
    """Split an X12 file on its declared separators and check ISA/IEA, GS/GE and every ST/SE count."""
    text = path.read_bytes().decode("ascii")
    assert text.startswith("ISA")
    element, component, terminator = text[3], text[104], text[105]
    assert (element, component, terminator) == ("*", ":", "~")
    segments = [s.split(element) for s in text.split(terminator) if s]
    assert segments[0][0] == "ISA" and segments[1][0] == "GS"
    assert segments[-1][0] == "IEA" and segments[-2][0] == "GE"
    assert segments[-1][1] == "1" and segments[-1][2] == segments[0][13]
    transactions = 0
    claims: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    st_index = -1
    for i, seg in enumerate(segments):
        tag = seg[0]
        if tag == "ST":
            st_index = i
            transactions += 1
        elif tag == "SE":
            assert int(seg[1]) == i - st_index + 1, f"SE count wrong in transaction {seg[2]}"
            assert seg[2] == segments[st_index][2]
            current = None
        elif tag == "HL":
            current = None
            if seg[3] == "22":
                current = []
                claims.append(current)
        if current is not None and tag not in ("SE",):
            current.append(seg)
    assert int(segments[-2][1]) == transactions
    return X12Interchange(segments, claims, transactions)


def claim_segment(claim: list[list[str]], tag: str, qualifier: str | None = None) -> list[str]:
    """The first segment of a claim with this tag (and first element, when given); KeyError when absent."""
    for seg in claim:
        if seg[0] == tag and (qualifier is None or seg[1] == qualifier):
            return seg
    raise KeyError(f"{tag}*{qualifier or ''} not in claim")


def truth(out: Path, name: str = "truth") -> list[dict[str, str]]:
    """All rows of ``_manifest/<name>-<chunk>.csv.gz`` over chunks."""
    rows: list[dict[str, str]] = []
    for path in sorted((out / "_manifest").glob(f"{name}-[0-9]*.csv.gz")):
        rows += list(csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8"))))
    return rows


def defects(out: Path) -> list[dict[str, Any]]:
    """All manifest defect rows."""
    rows: list[dict[str, Any]] = []
    for path in sorted((out / "_manifest").glob("defects-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def records_manifests(out: Path) -> list[dict[str, Any]]:
    """All ``records-<chunk>.json`` documents."""
    return [json.loads(p.read_text()) for p in sorted((out / "_manifest").glob("records-*.json"))]
