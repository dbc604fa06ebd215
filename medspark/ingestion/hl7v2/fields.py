"""Read HL7 v2 values by their conventional path ("PID-3[*].1") from the parsed ``segments`` column.

HL7 people name a value by segment, field, repetition, component and sub-component (``PID-3.4.1``). The bronze
table keeps every message as ``segments: array<struct<seg_id string, fields array<array<array<string>>>>>``
(field -> repetition -> component, escape sequences decoded, sub-components left as text). These helpers turn
such a path into a Spark column expression, so parsers, silver conformance and ad-hoc queries read values the
same way instead of each indexing nested arrays by hand. They also convert the HL7 ``DTM``/``DT`` date types.

Path grammar (1-based numbers, as in the HL7 standard)::

    SEG[ [n] | [*] ] - FIELD[ [n] | [*] ] [ .COMPONENT [ .SUBCOMPONENT ] ]

- ``PID-3``        first PID, field 3, first repetition, first component (same as ``PID-3.1``)
- ``PID-3[2].4``   second repetition, component 4
- ``PID-3[*].1``   component 1 of every repetition -> ``array<string>``
- ``OBX[*]-5``     field 5 of every OBX segment -> ``array<string>``; ``OBX-5`` / ``OBX[2]-5`` one segment
- ``PID-5.1.1``    sub-component 1 of component 1 (split on the message's own sub-component character)

At most one ``[*]`` per path. ``MSH-1`` is the field separator and ``MSH-2`` the encoding characters, as in
the standard. Absent and empty values are null; HL7's explicit null ``""`` is returned as the two quote characters.

Performance: :func:`hl7_field` finds its segment with a ``filter`` over all segments. Spark evaluates identical
``filter`` expressions of one ``select`` once, but not inside conditional expressions (``when``, ``coalesce``),
where each call walks the segments again (measured several times slower). To read many fields of one segment,
stage it once with :func:`first_segment` and read it with :func:`segment_field`, as the parser does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as sf

__all__ = ["FieldPath", "first_segment", "hl7_date", "hl7_dtm_is_valid", "hl7_field", "hl7_timestamp",
           "message_subcomponent_separator", "parse_field_path", "repetition_component", "segment_field",
           "split_literal"]

_SEGMENT = r"(?P<segment>[A-Z0-9]{3})(?:\[(?P<segment_index>\*|[1-9][0-9]*)\])?"
_FIELD = (r"(?P<field>[1-9][0-9]*)(?:\[(?P<repetition>\*|[1-9][0-9]*)\])?"
          r"(?:\.(?P<component>[1-9][0-9]*)(?:\.(?P<subcomponent>[1-9][0-9]*))?)?")
_FULL_PATH = re.compile(rf"{_SEGMENT}-{_FIELD}")
_FIELD_PATH = re.compile(_FIELD)
_COMPONENT_PATH = re.compile(r"(?P<component>[1-9][0-9]*)(?:\.(?P<subcomponent>[1-9][0-9]*))?")

# A character that never occurs inside a segment (segments are split on it): splitting on it is a no-op, so
# a message without a sub-component character needs no special case.
_NO_SEPARATOR = "\r"


@dataclass(frozen=True)
class FieldPath:
    """A parsed HL7 field path; ``None`` indexes mean ``[*]`` (all)."""

    segment: str | None
    segment_index: int | None
    field: int
    repetition: int | None
    component: int
    subcomponent: int | None

    @property
    def is_array(self) -> bool:
        """True when the path selects every segment or every repetition (the column is ``array<string>``)."""
        return self.segment_index is None or self.repetition is None


def _index(text: str | None) -> int | None:
    if text is None:
        return 1
    return None if text == "*" else int(text)


def parse_field_path(path: str, *, with_segment: bool = True) -> FieldPath:
    """Parse ``"PID-3[*].4.1"`` (or, with ``with_segment=False``, the part after the dash: ``"3[*].4.1"``).

    Raises:
        ValueError: naming the path when it does not follow the grammar or has more than one ``[*]``.
    """
    if not isinstance(path, str):
        raise ValueError(f"HL7 field path must be a string, got {type(path).__name__}: {path!r}")
    pattern = _FULL_PATH if with_segment else _FIELD_PATH
    match = pattern.fullmatch(path.strip())
    if match is None:
        example = "'PID-3[*].1'" if with_segment else "'3[*].1'"
        raise ValueError(f"invalid HL7 field path {path!r}: expected e.g. {example}")
    groups = match.groupdict()
    parsed = FieldPath(
        segment=groups.get("segment"),
        segment_index=_index(groups.get("segment_index")),
        field=int(groups["field"]),
        repetition=_index(groups["repetition"]),
        component=int(groups["component"] or 1),
        subcomponent=int(groups["subcomponent"]) if groups["subcomponent"] else None,
    )
    if parsed.segment_index is None and parsed.repetition is None:
        raise ValueError(f"invalid HL7 field path {path!r}: at most one '[*]' is allowed")
    return parsed


def split_literal(separator: Column) -> Column:
    """The ``split`` pattern matching one literal separator character (null/empty: a pattern that never matches).

    ``"\\" + char`` (or the bare char when alphanumeric) is a two-character pattern that Java's
    ``String.split`` recognises on its fast path, without compiling a regex for every value.
    """
    return (sf.when(separator.isNull() | (separator == ""), sf.lit(_NO_SEPARATOR))
            .when(separator.rlike("^[A-Za-z0-9]$"), separator)
            .otherwise(sf.concat(sf.lit("\\"), separator)))


def _empty_to_null(value: Column) -> Column:
    return sf.nullif(value, sf.lit(""))


def _component_value(repetition: Column, path: FieldPath, subcomponent_separator: Column) -> Column:
    component = sf.try_element_at(repetition, sf.lit(path.component))
    if path.subcomponent is not None:
        parts = sf.split(component, split_literal(subcomponent_separator), -1)
        component = sf.try_element_at(parts, sf.lit(path.subcomponent))
    return _empty_to_null(component)


def _segment_value(segment: Column, path: FieldPath, subcomponent_separator: Column) -> Column:
    repetitions = sf.try_element_at(segment["fields"], sf.lit(path.field))
    if path.repetition is None:
        return sf.transform(repetitions, lambda rep: _component_value(rep, path, subcomponent_separator))
    repetition = sf.try_element_at(repetitions, sf.lit(path.repetition))
    return _component_value(repetition, path, subcomponent_separator)


def _as_column(segments: Column | str) -> Column:
    return sf.col(segments) if isinstance(segments, str) else segments


def first_segment(segments: Column | str, segment_id: str) -> Column:
    """The first segment with this id (``struct<seg_id, fields>``), null when the message has none.

    Raises:
        ValueError: naming ``segment_id`` when it is not three upper-case letters/digits.
    """
    if not (isinstance(segment_id, str) and re.fullmatch("[A-Z0-9]{3}", segment_id)):
        raise ValueError(f"invalid HL7 segment id {segment_id!r}: expected three of [A-Z0-9], e.g. 'PID'")
    return sf.try_element_at(sf.filter(_as_column(segments), lambda s: s["seg_id"] == segment_id), sf.lit(1))


def message_subcomponent_separator(segments: Column | str) -> Column:
    """The sub-component character declared in the message's MSH-2 (4th character), null when absent."""
    msh2 = _segment_value(first_segment(segments, "MSH"), parse_field_path("2", with_segment=False),
                          sf.lit(None).cast("string"))
    return _empty_to_null(sf.substring(msh2, 4, 1))


def hl7_field(segments: Column | str, path: str, *, subcomponent_separator: Column | str | None = None
              ) -> Column:
    """The value at an HL7 path such as ``"PID-3[*].1"`` (grammar in the module docstring).

    Args:
        segments: the parsed ``segments`` column (or its name) of ``hl7v2_messages``.
        path: an HL7 field path; ``[*]`` on the segment or on the repetition makes the result an array.
        subcomponent_separator: only for paths with a sub-component: the message's sub-component character
            (a column or a literal). By default it is read from the message's own MSH-2.

    Returns:
        A ``string`` column, or ``array<string>`` for a ``[*]`` path; empty and absent values are null
        (elements of an array are null, the array itself is null when the segment/field is absent).

    Raises:
        ValueError: naming ``path`` when it is malformed.
    """
    parsed = parse_field_path(path)
    column = _as_column(segments)
    separator = _subcomponent_separator(column, parsed, subcomponent_separator)
    matching = sf.filter(column, lambda s: s["seg_id"] == sf.lit(parsed.segment))
    if parsed.segment_index is None:
        return sf.transform(matching, lambda s: _segment_value(s, parsed, separator))
    segment = sf.try_element_at(matching, sf.lit(parsed.segment_index))
    return _segment_value(segment, parsed, separator)


def segment_field(segment: Column, path: str, *, subcomponent_separator: Column | str | None = None) -> Column:
    """Like :func:`hl7_field`, for ONE segment struct (e.g. the lambda variable of ``transform`` over OBX
    segments); ``path`` omits the segment part: ``"5"``, ``"3.2"``, ``"8[*].1"``, ``"4.1.2"``.

    Sub-component paths need ``subcomponent_separator`` (a single segment does not carry MSH-2); without it
    ``"&"`` is used.

    Raises:
        ValueError: naming ``path`` when it is malformed.
    """
    parsed = parse_field_path(path, with_segment=False)
    return _segment_value(segment, parsed, _separator_or_default(subcomponent_separator))


def repetition_component(repetition: Column, path: str, *,
                         subcomponent_separator: Column | str | None = None) -> Column:
    """Component ``"4"`` or sub-component ``"4.1"`` of ONE repetition (``array<string>`` of components), e.g.
    the lambda variable of ``transform`` over a field's repetitions; empty -> null. Sub-components are split
    on ``subcomponent_separator`` (default ``"&"``).

    Raises:
        ValueError: naming ``path`` when it is malformed.
    """
    match = _COMPONENT_PATH.fullmatch(path.strip()) if isinstance(path, str) else None
    if match is None:
        raise ValueError(f"invalid HL7 component path {path!r}: expected e.g. '4' or '4.1'")
    parsed = FieldPath(None, 1, 1, 1, int(match["component"]),
                       int(match["subcomponent"]) if match["subcomponent"] else None)
    return _component_value(repetition, parsed, _separator_or_default(subcomponent_separator))


def _separator_or_default(given: Column | str | None) -> Column:
    if given is None:
        return sf.lit("&")
    return sf.lit(given) if isinstance(given, str) else given


def _subcomponent_separator(segments: Column, path: FieldPath, given: Column | str | None) -> Column:
    if path.subcomponent is None:
        return sf.lit(None).cast("string")
    if given is None:
        return message_subcomponent_separator(segments)
    return sf.lit(given) if isinstance(given, str) else given


# HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]; DT is the date-only prefix of the same shape.
_DTM = r"^[0-9]{4}(?:[0-9]{2}){0,5}(?:(?<=[0-9]{14})\.[0-9]+)?(?:[+-][0-9]{4})?$"
# Appended to the digits to complete yyyyMMddHHmmss: missing parts start their period (month/day 01).
_PERIOD_START = "0101000000"


def _dtm_timestamp(value: Column) -> Column:
    """Timestamp (or null) for a trimmed DTM string; one strict ``try_to_timestamp`` validates every part.

    ``value`` is referenced several times: pass a column, not an expensive expression.
    """
    digits = sf.regexp_extract(value, "^[0-9]+", 0)
    fraction = sf.rpad(sf.substring(sf.regexp_extract(value, "\\.([0-9]+)", 1), 1, 6), 6, "0")
    offset = sf.coalesce(sf.nullif(sf.regexp_extract(value, "[+-][0-9]{4}$", 0), sf.lit("")), sf.lit("+0000"))
    text = sf.concat(digits, sf.substring(sf.lit(_PERIOD_START), sf.length(digits) - 3, 10), sf.lit("."),
                     fraction, offset)
    return sf.when(value.rlike(_DTM), sf.try_to_timestamp(text, sf.lit("yyyyMMddHHmmss.SSSSSSZ")))


def hl7_timestamp(value: Column) -> Column:
    """HL7 ``DTM`` text -> ``timestamp`` (UTC instant); null when blank or not a valid date-time.

    ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``: missing parts default to the start of the period, a missing
    offset means UTC, fractions beyond microseconds are truncated. ``value`` is referenced several times in
    the expression: pass a column (or a cheap expression), not e.g. an un-materialised :func:`hl7_field`.
    """
    return _dtm_timestamp(sf.trim(value))


def hl7_dtm_is_valid(value: Column) -> Column:
    """True when the value is null/blank or a valid HL7 ``DTM``; use it to quarantine bad dates."""
    trimmed = sf.trim(value)
    return value.isNull() | (trimmed == "") | _dtm_timestamp(trimmed).isNotNull()


def hl7_date(value: Column) -> Column:
    """HL7 ``DT``/``DTM`` text -> ``date``: the calendar day as written (local to the sender, no shift to UTC).

    Null when blank, invalid, or less precise than a day (``YYYY``/``YYYYMM`` cannot be a ``date``).
    """
    trimmed = sf.trim(value)
    has_day = sf.length(sf.regexp_extract(trimmed, "^[0-9]+", 0)) >= 8
    return sf.when(has_day & _dtm_timestamp(trimmed).isNotNull(),
                   sf.try_to_date(sf.substring(trimmed, 1, 8), "yyyyMMdd"))
