"""Pure-Python reader of ANSI X12 837 files (837P 005010X222A1, 837I 005010X223A2): one typed record per claim.

Why this module exists: an 837 claim is not a line or a delimited record. Its subscriber, patient and billing
provider live in the HL loops *before* the CLM segment and are shared by every claim under them, the separators are
declared by each ISA segment, and the envelope counts (SE/GE/IEA) are only known at the end of each envelope. Reading
that is a sequential state machine over the segments of one file, which Spark column functions cannot express
without self-joins over segment numbers. Kept free of Spark so the loop logic is unit-tested in milliseconds;
:mod:`medspark.ingestion.x12.parse` is the thin Spark wrapper. :func:`parse_claims` returns a file's claims as a
list; :func:`iter_claims` yields them as they close, for the wrapper to bound memory.

What is read, per claim (loop 2300):
- envelope: ISA-13, GS-06, ST-02 control numbers; transaction type from ST-03 (else GS-08): X222 = 837P, X223 = 837I.
- 2000A/2010AA billing provider (NM1*85, NPI when NM108 = XX); 2000B/2010BA subscriber (NM1*IL name and NM109
  member id, DMG birth date and sex, REF*SY SSN); 2010BB payer (NM1*PR); 2000C/2010CA patient (PAT01, NM1*QC, DMG).
- 2300: CLM-01 id, CLM-02 total charge, CLM-05 facility code (place of service when CLM05-2 = B, UB facility type
  when A), CLM05-3 frequency; DTP 434 (statement period), 472 (service date), 435 (admission); HI diagnoses.
- 2400: LX line number, SV1 (837P) or SV2 (837I), DTP*472 line date.
Service dates: claim-level DTP*434, else claim-level DTP*472, else the earliest and latest line DTP*472.

Quarantine reasons, in order of precedence: x12_bad_envelope:<check> (the claim's ST/SE, GS/GE or ISA/IEA envelope
failed a check; the detail names it, e.g. SE01 = wrong segment count), x12_bad_claim (no CLM-01, CLM-02 absent or
not a number, or no HL loop before the CLM), missing_identifier (no subscriber member id), invalid_date:<segment>
(DMG or DTP date present but impossible or not in its declared format), invalid_number:<segment> (SV1/SV2 charge or
units not a number). A file holding no claims gives one position-0 record: x12_bad_envelope:<check> when the
envelope is broken or missing, else empty_file.

Encoding: the bytes are decoded as UTF-8; undecodable bytes are kept as lone surrogates (``surrogateescape``) in
``raw`` so ``raw.encode("utf-8", "surrogateescape")`` gives back the file's exact bytes, while typed text values have
them replaced by U+FFFD. Deciding ``invalid_encoding`` is left to the Spark wrapper (``is_valid_utf8`` on ``_raw``).
The repetition separator (ISA-11) is read but no extracted element repeats, so nothing is split on it.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import NamedTuple

PROFESSIONAL = "837P"
INSTITUTIONAL = "837I"

# HI qualifiers that carry a diagnosis: ICD-10 (A..) and ICD-9 forms of principal, other, admitting,
# patient reason for visit and external cause of injury. Procedure, occurrence, value and condition codes are not.
DIAGNOSIS_QUALIFIERS = frozenset({"ABK", "BK", "ABF", "BF", "ABJ", "BJ", "APR", "PR", "ABN", "BN"})
PRINCIPAL_QUALIFIERS = frozenset({"ABK", "BK"})

_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("1e16")  # DecimalType(18, 2) holds 16 integer digits
_WINDOW = 1 << 20  # characters split into segments at a time


class Separators(NamedTuple):
    """The delimiters an ISA segment declares for its interchange."""

    element: str
    repetition: str | None  # ISA-11; None when it is not a delimiter (version 4010 and earlier put "U" there)
    component: str  # ISA-16
    segment: str  # the character right after ISA-16


class Diagnosis(NamedTuple):
    """One HI composite: qualifier (ABK principal, ABF other, ABJ admitting, ...) and the code."""

    qualifier: str
    code: str


class ServiceLine(NamedTuple):
    """One 2400 loop: LX plus its SV1 (professional) or SV2 (institutional) and line DTP*472."""

    line_number: int | None
    procedure_qualifier: str | None
    procedure_code: str | None
    modifiers: list[str]
    revenue_code: str | None
    charge: Decimal | None
    unit_type: str | None
    units: float | None
    service_date: date | None


@dataclass(slots=True)
class X12Claim:
    """One claim (loop 2300) with its envelope, hierarchy and service lines; or a position-0 file record.

    ``raw`` holds the enclosing HL loops' segments then the claim's own segments (through its service lines), each
    followed by the segment terminator: enough to re-read the claim alone. ``envelope`` is the transaction set the
    claim is in (None for a position-0 record); see :func:`iter_claims`.
    """

    position: int
    raw: str
    reason: str | None = None
    transaction_type: str | None = None
    interchange_control_number: str | None = None
    group_control_number: str | None = None
    transaction_set_control_number: str | None = None
    billing_provider_npi: str | None = None
    billing_provider_name: str | None = None
    subscriber_member_id: str | None = None
    subscriber_last_name: str | None = None
    subscriber_first_name: str | None = None
    subscriber_birth_date: date | None = None
    subscriber_sex: str | None = None
    subscriber_ssn: str | None = None
    payer_name: str | None = None
    payer_id: str | None = None
    patient_relationship_code: str | None = None
    patient_last_name: str | None = None
    patient_first_name: str | None = None
    patient_birth_date: date | None = None
    patient_sex: str | None = None
    claim_id: str | None = None
    total_charge: Decimal | None = None
    place_of_service: str | None = None
    facility_type_code: str | None = None
    claim_frequency: str | None = None
    service_date_from: date | None = None
    service_date_to: date | None = None
    admission_date: date | None = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    principal_diagnosis: str | None = None
    service_lines: list[ServiceLine] = field(default_factory=list)
    envelope: Envelope | None = field(default=None, repr=False, compare=False)


def parse_claims(content: bytes | bytearray | memoryview) -> list[X12Claim]:
    """Read every claim of one X12 file, in file order, with its final quarantine reason.

    Args:
        content: The whole file (any bytes-like object; an Arrow buffer is read without a copy).

    Returns:
        One :class:`X12Claim` per CLM segment, ``position`` 1-based in file order; or, when the file holds no CLM,
        a single record with ``position`` 0, the whole text as ``raw`` and reason ``x12_bad_envelope:<check>`` or
        ``empty_file``.
    """
    claims = list(iter_claims(content))
    for claim in claims:
        claim.reason = settled_reason(claim)
    return claims


def iter_claims(content: bytes | bytearray | memoryview) -> Iterator[X12Claim]:
    """Like :func:`parse_claims`, but yields each claim as soon as its CLM loop ends, to bound memory.

    A yielded claim's ``reason`` is only its own (claim, identifier, date, number checks): the checks of its
    envelopes may still fail later in the file. Once the iterator is exhausted, :func:`settled_reason` gives the
    final reason of every claim it yielded.
    """
    data = memoryview(content)
    try:
        text = str(data, "utf-8")
        clean = True
    except UnicodeDecodeError:
        text = str(data, "utf-8", "surrogateescape")
        clean = False
    yield from _Reader(clean).claims(text)


def settled_reason(claim: X12Claim) -> str | None:
    """A claim's final quarantine reason: its envelope's failed check if any, else its own reason."""
    return claim.envelope.settle(claim.reason) if claim.envelope is not None else claim.reason


def read_separators(text: str, start: int = 0) -> Separators | None:
    """The separators declared by the ISA segment at ``text[start:]``; None when it is not a well-formed ISA.

    The element separator is the character after "ISA"; ISA-16 follows the sixteenth element separator and the
    segment terminator follows ISA-16. Padding of the fixed-width elements is not required.
    """
    if text[start : start + 3] != "ISA" or len(text) < start + 4:
        return None
    element = text[start + 3]
    if element.isalnum() or element.isspace():
        return None
    position = start + 3
    for _ in range(15):
        position = text.find(element, position + 1)
        if position < 0:
            return None
    component, segment = text[position + 1 : position + 2], text[position + 2 : position + 3]
    if not component or not segment or component.isalnum() or segment.isalnum():
        return None
    if len({element, component, segment}) != 3 or component.isspace():
        return None
    elements = text[start:position].split(element)
    if len(elements) != 16 or not elements[13].strip():  # ISA .. ISA-15; ISA-13 is the control number
        return None
    repetition = elements[11]
    if len(repetition) != 1 or repetition.isalnum() or repetition in (element, component, segment):
        repetition_separator = None
    else:
        repetition_separator = repetition
    return Separators(element, repetition_separator, component, segment)


def transaction_type(convention: str | None) -> str | None:
    """837P or 837I from an implementation convention reference (ST-03 / GS-08), else None."""
    if not convention:
        return None
    if "X222" in convention:
        return PROFESSIONAL
    if "X223" in convention:
        return INSTITUTIONAL
    return None


# ---------------------------------------------------------------------------------------------------------------
# Values


def _element(elements: list[str], index: int) -> str:
    return elements[index] if len(elements) > index else ""


@lru_cache(maxsize=16384)
def _d8(value: str) -> date:
    """CCYYMMDD to a date; ValueError when malformed or impossible (claims repeat dates, hence the cache)."""
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        raise ValueError("not CCYYMMDD")
    return date(int(value[:4]), int(value[4:6]), int(value[6:]))


def _date_period(qualifier: str, value: str) -> tuple[date, date]:
    """A DTP/DMG value in its declared format (D8, RD8, DT) as a (from, to) pair; ValueError when invalid."""
    if qualifier == "D8":
        day = _d8(value)
        return day, day
    if qualifier == "RD8":
        first, _, last = value.partition("-")
        start, end = _d8(first), _d8(last)
        if end < start:
            raise ValueError("range ends before it starts")
        return start, end
    if qualifier == "DT":  # CCYYMMDDHHMM
        if len(value) != 12 or not value.isascii() or not value.isdigit():
            raise ValueError("not CCYYMMDDHHMM")
        if int(value[8:10]) > 23 or int(value[10:]) > 59:
            raise ValueError("impossible time")
        day = _d8(value[:8])
        return day, day
    raise ValueError("unknown date format qualifier")


def _amount(value: str) -> Decimal | None:
    """An X12 decimal (R) as Decimal(18, 2); None when empty, ValueError when not a number or too large."""
    if not value:
        return None
    if not _NUMBER.fullmatch(value):
        raise ValueError("not a number")
    amount = Decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    if abs(amount) >= _MAX_AMOUNT:
        raise ValueError("too large")
    return amount


def _quantity(value: str) -> float | None:
    if not value:
        return None
    if not _NUMBER.fullmatch(value):
        raise ValueError("not a number")
    return float(value)


def _integer(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def _clean_text(value: str) -> str:
    """Replace lone surrogates (undecodable bytes) so the value is valid Unicode."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------------
# State


class Envelope:
    """One ISA, GS or ST level: control number, what it counts (groups, sets or segments) and its first error.

    A claim's :meth:`reason` is final only once the whole file has been read (a GE or IEA check can still fail).
    """

    __slots__ = ("control", "count", "error", "errors", "parent", "version")

    def __init__(self, errors: list[str], control: str, parent: Envelope | None, version: str | None = None):
        self.errors = errors  # the file's failed checks in order, shared by all its envelopes
        self.control = control
        self.parent = parent
        self.version = version
        self.count = 0
        self.error: str | None = None

    def fail(self, check: str) -> None:
        if self.error is None:
            self.error = f"x12_bad_envelope:{check}"
            self.errors.append(self.error)

    def reason(self) -> str | None:
        """The first failed check of this envelope or of an envelope around it, else None."""
        envelope: Envelope | None = self
        while envelope is not None:
            if envelope.error is not None:
                return envelope.error
            envelope = envelope.parent
        return None

    def settle(self, own_reason: str | None) -> str | None:
        """The final reason of a claim in this envelope: a failed envelope check wins over the claim's own."""
        return self.reason() or own_reason

    def ancestor_control(self, depth: int) -> str | None:
        envelope: Envelope | None = self
        for _ in range(depth):
            envelope = envelope.parent if envelope is not None else None
        if envelope is None or not envelope.control:
            return None
        return envelope.control


class _Level:
    """One HL loop: its segments (text for ``raw``), the values read from its NM1/DMG/REF/PAT and date errors."""

    __slots__ = ("code", "date_error", "hl_id", "last_nm1", "parent_id", "segments", "text", "values")

    def __init__(self, segment: str, elements: list[str]):
        self.hl_id = _element(elements, 1)
        self.parent_id = _element(elements, 2)
        self.code = _element(elements, 3)
        self.segments = [segment]
        self.text: str | None = None
        self.last_nm1 = ""
        self.values: dict[str, object] = {}
        self.date_error: str | None = None


class _OpenLine:
    """A 2400 loop being read."""

    __slots__ = ("charge", "line_number", "modifiers", "procedure_code", "procedure_qualifier", "revenue_code",
                 "service_date", "service_read", "unit_type", "units")

    def __init__(self, line_number: int | None):
        self.line_number = line_number
        self.procedure_qualifier: str | None = None
        self.procedure_code: str | None = None
        self.modifiers: list[str] = []
        self.revenue_code: str | None = None
        self.charge: Decimal | None = None
        self.unit_type: str | None = None
        self.units: float | None = None
        self.service_date: date | None = None
        self.service_read = False

    def close(self) -> ServiceLine:
        return ServiceLine(self.line_number, self.procedure_qualifier, self.procedure_code, self.modifiers,
                           self.revenue_code, self.charge, self.unit_type, self.units, self.service_date)


class _OpenClaim:
    """A CLM loop being read."""

    __slots__ = ("bad_claim", "claim", "date_error", "dates", "level", "line", "lines", "number_error", "segments")

    def __init__(self, claim: X12Claim, segment: str, level: _Level | None):
        self.claim = claim
        self.segments = [segment]
        self.level = level
        self.bad_claim = False
        self.date_error: str | None = None
        self.number_error: str | None = None
        self.dates: dict[str, tuple[date, date]] = {}
        self.lines: list[_OpenLine] = []
        self.line: _OpenLine | None = None


class _Reader:
    """The segment state machine over one file."""

    def __init__(self, clean: bool):
        self.clean = clean
        self.claim_count = 0
        self.ready: list[X12Claim] = []  # closed claims not yet yielded
        self.envelope_errors: list[str] = []
        self.separators = Separators("*", "^", ":", "~")
        self.interchange: Envelope | None = None
        self.group: Envelope | None = None
        self.transaction_set: Envelope | None = None
        self.levels: dict[str, _Level] = {}
        self.level: _Level | None = None
        self.open_claim: _OpenClaim | None = None

    # -- file ------------------------------------------------------------------------------------------------

    def claims(self, text: str) -> Iterator[X12Claim]:
        start = 0
        while start < len(text) and (text[start] == "\ufeff" or text[start].isspace()):
            start += 1
        separators = read_separators(text, start) if start < len(text) else None
        if separators is not None:
            restart: tuple[int, Separators] | None = (start, separators)
            while restart is not None:
                restart = yield from self._read_from(text, *restart)
            self._end_of_file()
            yield from self.ready
        if self.claim_count == 0:
            if start == len(text):
                reason = "empty_file"
            elif separators is None:
                reason = "x12_bad_envelope:ISA"
            else:
                reason = self.envelope_errors[0] if self.envelope_errors else "empty_file"
            yield X12Claim(position=0, raw=text, reason=reason)

    def _read_from(
        self, text: str, start: int, separators: Separators
    ) -> Generator[X12Claim, None, tuple[int, Separators] | None]:
        """Read segments from ``start``, yielding claims as they close.

        Returns:
            Where to restart when a later ISA declares other separators, else None at the end of the text.
        """
        self.separators = separators
        element, terminator = separators.element, separators.segment
        envelope_segments = {
            "ISA": self._isa, "GS": self._gs, "ST": self._st, "SE": self._se, "GE": self._ge, "IEA": self._iea
        }
        body, ready = self._body, self.ready
        end = len(text)
        window = start
        offset = start
        while window < end:
            # Split a window of about _WINDOW characters at a terminator, so that the segment strings of the
            # whole file never exist at once.
            cut = text.find(terminator, window + _WINDOW)
            stop = end if cut < 0 else cut
            for piece in text[window:stop].split(terminator):
                segment = piece.lstrip("\r\n") if piece[:1] in ("\r", "\n") else piece
                if segment:
                    elements = segment.split(element)
                    segment_id = elements[0]
                    if offset > start and segment.startswith("ISA"):
                        # A later interchange may declare other separators: re-read the text from its ISA if so.
                        isa_start = offset + len(piece) - len(segment)
                        declared = read_separators(text, isa_start)
                        if declared is None:
                            segment_id = "ISA"  # malformed: opened as an interchange and marked bad
                            elements = [segment_id]
                        elif declared != separators:
                            return isa_start, declared
                    handler = envelope_segments.get(segment_id)
                    if handler is not None:
                        handler(elements)
                    else:
                        transaction_set = self.transaction_set
                        if transaction_set is None:
                            transaction_set = self._orphan_transaction_set()
                        transaction_set.count += 1
                        body(segment, segment_id, elements)
                    if ready:
                        yield from ready
                        ready.clear()
                offset += len(piece) + 1  # the terminator is one character
            window = stop + 1
        return None

    def _end_of_file(self) -> None:
        self._close_claim()
        if self.transaction_set is not None:
            self.transaction_set.fail("SE")
        if self.group is not None:
            self.group.fail("GE")
        if self.interchange is not None:
            self.interchange.fail("IEA")

    # -- envelopes -------------------------------------------------------------------------------------------

    def _orphan_transaction_set(self) -> Envelope:
        """A body segment outside ST/SE: its claims (if any) get a transaction set that failed."""
        group = self._require_group()
        transaction_set = self.transaction_set = Envelope(self.envelope_errors, "", group, group.version)
        transaction_set.fail("ST")
        return transaction_set

    def _require_interchange(self) -> Envelope:
        if self.interchange is None:
            self.interchange = Envelope(self.envelope_errors, "", None)
            self.interchange.fail("ISA")
        return self.interchange

    def _require_group(self) -> Envelope:
        if self.group is None:
            self.group = Envelope(self.envelope_errors, "", self._require_interchange())
            self.group.fail("GS")
        return self.group

    def _close_set(self, check: str) -> None:
        self._close_claim()
        if self.transaction_set is not None:
            self.transaction_set.fail(check)
            self.transaction_set = None

    def _isa(self, elements: list[str]) -> None:
        self._close_set("SE")
        if self.group is not None:
            self.group.fail("GE")
            self.group = None
        if self.interchange is not None:
            self.interchange.fail("IEA")
        self.interchange = Envelope(self.envelope_errors, _element(elements, 13).strip(), None)
        if len(elements) != 17:
            self.interchange.fail("ISA")

    def _iea(self, elements: list[str]) -> None:
        self._close_set("SE")
        if self.group is not None:
            self.group.fail("GE")
            self.group = None
        interchange = self._require_interchange()
        if _integer(_element(elements, 1)) != interchange.count:
            interchange.fail("IEA01")
        if _element(elements, 2).strip() != interchange.control:
            interchange.fail("IEA02")
        self.interchange = None

    def _gs(self, elements: list[str]) -> None:
        self._close_set("SE")
        if self.group is not None:
            self.group.fail("GE")
        interchange = self._require_interchange()
        interchange.count += 1
        self.group = Envelope(self.envelope_errors, _element(elements, 6), interchange, _element(elements, 8))
        if _element(elements, 1) != "HC":
            self.group.fail("GS01")

    def _ge(self, elements: list[str]) -> None:
        self._close_set("SE")
        group = self._require_group()
        if _integer(_element(elements, 1)) != group.count:
            group.fail("GE01")
        if _element(elements, 2) != group.control:
            group.fail("GE02")
        self.group = None

    def _st(self, elements: list[str]) -> None:
        self._close_set("SE")
        group = self._require_group()
        group.count += 1
        transaction_set = Envelope(
            self.envelope_errors, _element(elements, 2), group, _element(elements, 3) or group.version
        )
        transaction_set.count = 1
        if _element(elements, 1) != "837":
            transaction_set.fail("ST01")
        self.transaction_set = transaction_set
        self.levels = {}
        self.level = None

    def _se(self, elements: list[str]) -> None:
        self._close_claim()
        transaction_set = self.transaction_set
        if transaction_set is None:
            self._require_group().fail("ST")
            return
        transaction_set.count += 1
        if _integer(_element(elements, 1)) != transaction_set.count:
            transaction_set.fail("SE01")
        if _element(elements, 2) != transaction_set.control:
            transaction_set.fail("SE02")
        self.transaction_set = None
        self.level = None

    # -- transaction set body --------------------------------------------------------------------------------

    def _body(self, segment: str, segment_id: str, elements: list[str]) -> None:
        if segment_id == "HL":
            self._close_claim()
            level = _Level(segment, elements)
            self.levels[level.hl_id] = level
            self.level = level
        elif segment_id == "CLM":
            self._close_claim()
            self._open(segment, elements)
        elif self.open_claim is not None:
            self.open_claim.segments.append(segment)
            self._claim_segment(self.open_claim, segment_id, elements)
        elif self.level is not None:
            self.level.segments.append(segment)
            self._level_segment(self.level, segment_id, elements)
        # else: BHT and the 1000A/1000B submitter and receiver loops, which no claim needs.

    def _level_segment(self, level: _Level, segment_id: str, elements: list[str]) -> None:
        code = level.code
        values = level.values
        if segment_id == "NM1":
            entity = _element(elements, 1)
            level.last_nm1 = entity
            if code == "20" and entity == "85":
                values["billing_provider_name"] = _element(elements, 3) or None
                npi = _element(elements, 9) if _element(elements, 8) == "XX" else ""
                values["billing_provider_npi"] = npi or None
            elif code == "22" and entity == "IL":
                values["subscriber_last_name"] = _element(elements, 3) or None
                values["subscriber_first_name"] = _element(elements, 4) or None
                values["subscriber_member_id"] = _element(elements, 9) or None
            elif code == "22" and entity == "PR":
                values["payer_name"] = _element(elements, 3) or None
                values["payer_id"] = _element(elements, 9) or None
            elif code == "23" and entity == "QC":
                values["patient_last_name"] = _element(elements, 3) or None
                values["patient_first_name"] = _element(elements, 4) or None
        elif segment_id == "DMG":
            if code == "22" and level.last_nm1 == "IL":
                prefix = "subscriber_"
            elif code == "23" and level.last_nm1 == "QC":
                prefix = "patient_"
            else:
                return
            value = _element(elements, 2)
            if value:
                try:
                    values[prefix + "birth_date"] = _date_period(_element(elements, 1), value)[0]
                except ValueError:
                    level.date_error = level.date_error or "invalid_date:DMG"
            values[prefix + "sex"] = _element(elements, 3) or None
        elif segment_id == "REF":
            if code == "22" and level.last_nm1 == "IL" and _element(elements, 1) == "SY":
                values["subscriber_ssn"] = _element(elements, 2) or None
        elif segment_id == "PAT" and code == "23":
            values["patient_relationship_code"] = _element(elements, 1) or None

    # -- claims ----------------------------------------------------------------------------------------------

    def _open(self, segment: str, elements: list[str]) -> None:
        transaction_set = self.transaction_set
        assert transaction_set is not None  # _segment opened one before any body segment
        self.claim_count += 1
        claim = X12Claim(position=self.claim_count, raw="", envelope=transaction_set)
        claim.transaction_type = transaction_type(transaction_set.version)
        claim.transaction_set_control_number = transaction_set.control or None
        claim.group_control_number = transaction_set.ancestor_control(1)
        claim.interchange_control_number = transaction_set.ancestor_control(2)
        open_claim = _OpenClaim(claim, segment, self.level)
        claim.claim_id = _element(elements, 1) or None
        try:
            claim.total_charge = _amount(_element(elements, 2))
        except ValueError:
            claim.total_charge = None
        if claim.claim_id is None or claim.total_charge is None or self.level is None:
            open_claim.bad_claim = True
        facility = _element(elements, 5).split(self.separators.component)
        code = facility[0] or None
        qualifier = facility[1] if len(facility) > 1 else ""
        if qualifier == "B" or (not qualifier and claim.transaction_type == PROFESSIONAL):
            claim.place_of_service = code
        elif qualifier == "A" or (not qualifier and claim.transaction_type == INSTITUTIONAL):
            claim.facility_type_code = code
        claim.claim_frequency = (facility[2] if len(facility) > 2 else "") or None
        self.open_claim = open_claim

    def _claim_segment(self, open_claim: _OpenClaim, segment_id: str, elements: list[str]) -> None:
        if segment_id == "LX":
            open_claim.line = _OpenLine(_integer(_element(elements, 1)))
            open_claim.lines.append(open_claim.line)
        elif segment_id in ("SV1", "SV2"):
            line = open_claim.line
            if line is None or line.service_read:  # a service segment without its own LX is still a line
                line = open_claim.line = _OpenLine(None)
                open_claim.lines.append(line)
            line.service_read = True
            if segment_id == "SV1":  # SV1: procedure, charge, unit type, units
                procedure, at = _element(elements, 1), 2
            else:  # SV2: revenue code, procedure, charge, unit type, units
                line.revenue_code = _element(elements, 1) or None
                procedure, at = _element(elements, 2), 3
            if procedure:
                components = procedure.split(self.separators.component)
                line.procedure_qualifier = components[0] or None
                line.procedure_code = (components[1] if len(components) > 1 else "") or None
                line.modifiers = [modifier for modifier in components[2:6] if modifier]
            line.unit_type = _element(elements, at + 1) or None
            try:
                line.charge = _amount(_element(elements, at))
            except ValueError:
                open_claim.number_error = open_claim.number_error or f"invalid_number:{segment_id}"
            try:
                line.units = _quantity(_element(elements, at + 2))
            except ValueError:
                open_claim.number_error = open_claim.number_error or f"invalid_number:{segment_id}"
        elif segment_id == "DTP":
            qualifier, value = _element(elements, 1), _element(elements, 3)
            if qualifier not in ("472", "434", "435") or not value:
                return
            try:
                period = _date_period(_element(elements, 2), value)
            except ValueError:
                open_claim.date_error = open_claim.date_error or "invalid_date:DTP"
                return
            if open_claim.line is not None:
                if qualifier == "472":
                    open_claim.line.service_date = period[0]
            else:
                open_claim.dates.setdefault(qualifier, period)
        elif segment_id == "HI" and open_claim.line is None:
            claim = open_claim.claim
            component = self.separators.component
            for composite in elements[1:]:
                parts = composite.split(component)
                if len(parts) > 1 and parts[0] in DIAGNOSIS_QUALIFIERS and parts[1]:
                    claim.diagnoses.append(Diagnosis(parts[0], parts[1]))
                    if claim.principal_diagnosis is None and parts[0] in PRINCIPAL_QUALIFIERS:
                        claim.principal_diagnosis = parts[1]

    def _close_claim(self) -> None:
        open_claim = self.open_claim
        if open_claim is None:
            return
        self.open_claim = None
        claim = open_claim.claim
        terminator = self.separators.segment

        chain: list[_Level] = []
        level = open_claim.level
        while level is not None and len(chain) < 8:  # HL parents; the bound guards against cycles
            chain.append(level)
            level = self.levels.get(level.parent_id) if level.parent_id else None
        chain.reverse()
        parts = []
        date_error = None
        for level in chain:
            if level.text is None:
                level.text = terminator.join(level.segments) + terminator
            parts.append(level.text)
            for name, value in level.values.items():
                setattr(claim, name, value)
            date_error = date_error or level.date_error
        parts.append(terminator.join(open_claim.segments) + terminator)
        claim.raw = "".join(parts)

        lines = [line.close() for line in open_claim.lines]
        claim.service_lines = lines
        period = open_claim.dates.get("434") or open_claim.dates.get("472")
        if period is not None:
            claim.service_date_from, claim.service_date_to = period
        else:
            line_dates = [line.service_date for line in lines if line.service_date is not None]
            if line_dates:
                claim.service_date_from, claim.service_date_to = min(line_dates), max(line_dates)
        admission = open_claim.dates.get("435")
        claim.admission_date = admission[0] if admission is not None else None

        if open_claim.bad_claim:
            claim.reason = "x12_bad_claim"
        elif claim.subscriber_member_id is None:
            claim.reason = "missing_identifier"
        else:
            claim.reason = date_error or open_claim.date_error or open_claim.number_error
        if not self.clean:
            _clean_claim_text(claim)
        self.ready.append(claim)


_TEXT_FIELDS = tuple(
    name for name, kind in X12Claim.__annotations__.items() if kind == "str | None" and name != "reason"
)


def _clean_claim_text(claim: X12Claim) -> None:
    for name in _TEXT_FIELDS:
        value = getattr(claim, name)
        if value is not None:
            setattr(claim, name, _clean_text(value))
    claim.diagnoses = [Diagnosis(_clean_text(d.qualifier), _clean_text(d.code)) for d in claim.diagnoses]
    claim.service_lines = [
        line._replace(
            procedure_qualifier=line.procedure_qualifier and _clean_text(line.procedure_qualifier),
            procedure_code=line.procedure_code and _clean_text(line.procedure_code),
            modifiers=[_clean_text(modifier) for modifier in line.modifiers],
            revenue_code=line.revenue_code and _clean_text(line.revenue_code),
            unit_type=line.unit_type and _clean_text(line.unit_type),
        )
        for line in claim.service_lines
    ]
