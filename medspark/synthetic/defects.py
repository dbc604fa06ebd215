"""Deterministic defect injection: which records are damaged, how, and the manifest row that says so.

Bronze must quarantine damaged records with a precise reason and keep everything else; to test that, the
generator damages a known fraction of records and writes, for each one, the file, position and the reason bronze
is expected to give (CONTEXT.md, "Generator defect kinds"). Decisions come from an RNG seeded by
``(seed, chunk, file path)`` that is separate from the population's, so the clean records are the same whatever
the defect rate, and the damage is the same whatever the worker count.

Each record is damaged independently with probability ``rate``; the kind is drawn uniformly among the kinds that
make sense for that record (its :class:`Profile`). A duplicate is a byte-identical copy of the (clean) record,
inserted right after it or appended at the end of the file; the manifest position is the copy's.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medspark.synthetic import codes as C

INVALID_JSON = "invalid_json"
HL7_TRUNCATED = "hl7_truncated"
INVALID_DATE = "invalid_date"
MISSING_IDENTIFIER = "missing_identifier"
DUPLICATE = "duplicate_record"
INVALID_ENCODING = "invalid_encoding"
UNKNOWN_CODE = "unknown_code"
X12_BAD_CLAIM = "x12_bad_claim"

# Invalid UTF-8 (a UTF-16 byte-order mark read as bytes), carried in str via the surrogateescape error handler
# and written with ``encode("utf-8", "surrogateescape")``.
BAD_BYTES = b"\xff\xfe".decode("utf-8", "surrogateescape")
ENCODING = "utf-8"
ERRORS = "surrogateescape"

_DATE_FIELD = {
    "synthea-csv": "BIRTHDATE",
    "fhir-ndjson": "birthDate",
    "fhir-bundle": "birthDate",
    "hl7v2": "PID-7",
}


def expected(fmt: str, kind: str) -> tuple[str, str]:
    """(expected bronze/silver reason, layer) for a defect kind in a format."""
    if kind == UNKNOWN_CODE:
        return UNKNOWN_CODE, "silver"
    if kind == INVALID_DATE:
        return f"{INVALID_DATE}:{_DATE_FIELD[fmt]}", "bronze"
    if kind == HL7_TRUNCATED:
        return f"{HL7_TRUNCATED}:PID", "bronze"
    return kind, "bronze"


@dataclass(frozen=True)
class Profile:
    """What a kind of record is (its bronze entity) and which defects can be applied to it."""

    entity: str
    kinds: tuple[str, ...]


Damage = Callable[[str, Any, str], Any]


@dataclass
class Injector:
    """Damages the records of one file as they are written, in blocks, and records manifest rows.

    Args:
        fmt: Format name used in the manifest (``synthea-csv``, ``hl7v2``, ...).
        rel_path: File path relative to the output directory (manifest ``file``; also seeds the RNG).
        rate: Probability that a record is damaged.
        profiles: Record key -> :class:`Profile`.
        damage: ``damage(kind, record, key) -> damaged record`` for every non-duplicate kind in the profiles.
        position_offset: Added to the 1-based record ordinal to get the manifest position (1 for a CSV header).
        seed: Generation seed.
        chunk: Chunk index.
    """

    fmt: str
    rel_path: str
    rate: float
    profiles: dict[str, Profile]
    damage: Damage
    position_offset: int
    seed: int
    chunk: int
    events: list[dict[str, Any]] = field(default_factory=list)
    tail: list[tuple[Any, str, dict[str, Any]]] = field(default_factory=list)
    emitted: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, self.chunk, 0xDEFEC7, zlib.crc32(self.rel_path.encode())])
        self._entity_of = {key: profile.entity for key, profile in self.profiles.items()}

    def _event(self, kind: str, key: str) -> dict[str, Any]:
        reason, layer = expected(self.fmt, kind)
        return {"kind": kind, "format": self.fmt, "file": self.rel_path, "position": None,
                "entity": self.profiles[key].entity, "expected_reason": reason, "layer": layer}

    def _entities(self, keys: Sequence[str]) -> list[str]:
        return list(map(self._entity_of.__getitem__, keys))

    def process(self, records: list[Any], keys: Sequence[str]) -> tuple[list[Any], list[str]]:
        """Damage a block of records (in file order).

        Returns:
            The records to write (copies included) and the bronze entity of each.
        """
        if self.rate <= 0 or not records:
            self.emitted += len(records)
            return records, self._entities(keys)
        hits = np.flatnonzero(self.rng.random(len(records)) < self.rate).tolist()
        if not hits:
            self.emitted += len(records)
            return records, self._entities(keys)
        out: list[Any] = []
        out_entities: list[str] = []
        base = self.emitted + self.position_offset
        prev = 0
        for i in hits:
            key = keys[i]
            kinds = self.profiles[key].kinds
            kind = kinds[int(self.rng.integers(len(kinds)))]
            event = self._event(kind, key)
            out.extend(records[prev:i])
            out_entities.extend(self._entities(keys[prev:i]))
            prev = i + 1
            entity = self.profiles[key].entity
            if kind == DUPLICATE:
                out.append(records[i])
                out_entities.append(entity)
                if self.rng.random() < 0.5:
                    self.tail.append((records[i], key, event))  # positioned in finish()
                    continue
                out.append(records[i])
            else:
                out.append(self.damage(kind, records[i], key))
            out_entities.append(entity)
            event["position"] = base + len(out)
            self.events.append(event)
        out.extend(records[prev:])
        out_entities.extend(self._entities(keys[prev:]))
        self.emitted += len(out)
        return out, out_entities

    def finish(self) -> tuple[list[Any], list[str]]:
        """End-of-file duplicates (positions assigned now) and their entities; call once after the last block."""
        records, entities = [], []
        for rec, key, event in self.tail:
            self.emitted += 1
            event["position"] = self.emitted + self.position_offset
            self.events.append(event)
            records.append(rec)
            entities.append(self.profiles[key].entity)
        self.tail = []
        return records, entities


# ------------------------------------------------------------------------------------------- damage functions


def _bad_bytes_in(text: str) -> str:
    cut = min(2, len(text))
    return text[:cut] + BAD_BYTES + text[cut:]


def damage_csv(kind: str, line: str, key: str) -> str:
    """Damage a Synthea CSV line (no trailing newline). Fields never contain commas or quotes."""
    fields = line.split(",")
    if kind == INVALID_DATE:
        fields[1] = fields[1][:4] + "-02-30"
    elif kind == MISSING_IDENTIFIER:
        fields[0] = ""
    elif kind == INVALID_ENCODING:
        fields[7] = _bad_bytes_in(fields[7])  # FIRST
    elif kind == UNKNOWN_CODE:
        fields[4] = C.UNKNOWN_SNOMED  # conditions CODE
    else:
        raise ValueError(f"no CSV damage for kind {kind!r}")
    return ",".join(fields)


def break_json(text: str) -> str:
    """An invalid JSON text: missing its closing brace, or cut short (chosen by length).

    Both variants keep the opening ``{"resourceType":"<T>"`` (bronze routes such a line to T's table even when
    it does not parse, so the manifest entity is the file's type) and the record's distinguishing content (ids,
    metric), so two damaged records never become byte-identical duplicates of each other.
    """
    return text[:-1] if len(text) % 2 == 0 else text[: len(text) - 8]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def damage_json(kind: str, text: str, key: str) -> str:
    """Damage a FHIR resource (NDJSON line or Bundle entry resource) or a device-vitals line."""
    if kind == INVALID_JSON:
        return break_json(text)
    if kind == INVALID_ENCODING:
        at = text.find('"family":"')
        if at < 0:
            raise ValueError("no family name to damage")
        at += len('"family":"')
        return text[:at] + _bad_bytes_in(text[at:])
    obj = json.loads(text)
    if kind == INVALID_DATE:
        obj["birthDate"] = obj["birthDate"][:4] + "-13-40"
    elif kind == MISSING_IDENTIFIER:
        if obj.get("resourceType") == "Patient":
            obj.pop("id", None)
            obj.pop("identifier", None)
        elif "resourceType" in obj:
            obj.pop("subject", None)
        else:
            obj.pop("patient_mrn", None)
    elif kind == UNKNOWN_CODE:
        obj["code"]["coding"][0]["code"] = C.UNKNOWN_SNOMED
    else:
        raise ValueError(f"no JSON damage for kind {kind!r}")
    return _dumps(obj)


def damage_hl7(kind: str, message: str, key: str) -> str:
    """Damage an HL7 v2 message (segments separated by carriage returns)."""
    segments = message.split("\r")
    if kind == UNKNOWN_CODE:
        j = next(i for i, s in enumerate(segments) if s.startswith("DG1|"))
        fields = segments[j].split("|")
        comps = fields[3].split("^")
        comps[0] = C.UNKNOWN_ICD10
        fields[3] = "^".join(comps)
        segments[j] = "|".join(fields)
        return "\r".join(segments)
    j = next(i for i, s in enumerate(segments) if s.startswith("PID|"))
    fields = segments[j].split("|")
    if kind == HL7_TRUNCATED:
        segments[j] = "PID|1||" + fields[3].split("^")[0]
    else:
        if kind == INVALID_DATE:
            fields[7] = fields[7][:4] + "1340"
        elif kind == MISSING_IDENTIFIER:
            fields[3] = ""
        elif kind == INVALID_ENCODING:
            fields[5] = _bad_bytes_in(fields[5])
        else:
            raise ValueError(f"no HL7 damage for kind {kind!r}")
        segments[j] = "|".join(fields)
    return "\r".join(segments)


def damage_x12(kind: str, segments: list[str], key: str) -> list[str]:
    """Damage one claim (its segments, without terminators)."""
    out = list(segments)
    for i, seg in enumerate(out):
        if kind == MISSING_IDENTIFIER and seg.startswith("NM1*IL*"):
            out[i] = "*".join(seg.split("*")[:5])  # drop NM108/NM109: no member id
            return out
        if kind == X12_BAD_CLAIM and seg.startswith("CLM*"):
            elements = seg.split("*")
            elements[2] = ""  # CLM02 total claim charge
            out[i] = "*".join(elements)
            return out
        if kind == UNKNOWN_CODE and seg.startswith("HI*ABK:"):
            elements = seg.split("*")
            elements[1] = "ABK:" + C.UNKNOWN_ICD10.replace(".", "")
            out[i] = "*".join(elements)
            return out
    raise ValueError(f"no X12 damage for kind {kind!r}")
