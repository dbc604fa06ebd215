"""Vectorised text formatting for the generator: UUIDs, dates and timestamps as lists of Python strings.

Writers build millions of records per chunk with f-strings; formatting each timestamp or UUID with ``datetime``
or ``uuid`` objects would dominate the run time. Here whole columns are formatted at once by composing ASCII
byte matrices in numpy and slicing the decoded buffer, which is several times faster and fully deterministic.

Local times are US Eastern (the synthetic network is in Massachusetts) with the post-2007 daylight-saving rules,
so FHIR and HL7 timestamps carry ``-05:00`` in winter and ``-04:00`` in summer and bronze must normalise to UTC.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGIT0 = 48
DAY = 86_400
EST = -5 * 3600
EDT = -4 * 3600


def random_uuid_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random version-4 UUIDs as an ``(n, 16)`` uint8 array."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def _slice(codes: np.ndarray, width: int, count: int) -> list[str]:
    """Rows of an ``(count, width)`` array of ASCII codes as strings (via a fixed-width unicode view)."""
    return np.ascontiguousarray(codes, dtype=np.uint32).view(f"<U{width}").ravel().tolist()


def _assemble(parts: Sequence[np.ndarray | bytes], count: int) -> list[str]:
    """Concatenate per-row byte columns (``(count, k)`` uint8 arrays or constant ``bytes``) into strings."""
    width = sum(len(p) if isinstance(p, bytes) else p.shape[1] for p in parts)
    out = np.empty((count, width), dtype=np.uint32)
    pos = 0
    for part in parts:
        if isinstance(part, bytes):
            out[:, pos : pos + len(part)] = np.frombuffer(part, dtype=np.uint8)
            pos += len(part)
        else:
            out[:, pos : pos + part.shape[1]] = part
            pos += part.shape[1]
    return _slice(out, width, count)


def uuid_strings(raw: np.ndarray) -> list[str]:
    """Format an ``(n, 16)`` uint8 array as canonical lower-case UUID strings."""
    n = raw.shape[0]
    if n == 0:
        return []
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    return _assemble(
        [hexed[:, 0:8], b"-", hexed[:, 8:12], b"-", hexed[:, 12:16], b"-", hexed[:, 16:20], b"-", hexed[:, 20:32]],
        n,
    )


def hex_strings(raw: np.ndarray) -> list[str]:
    """Format an ``(n, k)`` uint8 array as lower-case hex strings of ``2k`` characters."""
    n, k = raw.shape
    if n == 0:
        return []
    hexed = np.empty((n, 2 * k), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    return _slice(hexed, 2 * k, n)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an ``(n, width)`` uint8 array."""
    v = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((v.shape[0], width), dtype=np.uint8)
    for k in range(width - 1, -1, -1):
        out[:, k] = _DIGIT0 + v % 10
        v //= 10
    return out


def padded_numbers(values: np.ndarray, width: int) -> list[str]:
    """Zero-padded decimal strings (e.g. MRNs, visit numbers)."""
    n = len(values)
    return _slice(digits(values, width), width, n) if n else []


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm)."""
    z = np.asarray(days, dtype=np.int64) + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def days_from_civil(year: np.ndarray, month: np.ndarray | int, day: np.ndarray | int) -> np.ndarray:
    """Days since 1970-01-01 of a (year, month, day)."""
    y = np.asarray(year, dtype=np.int64) - (np.asarray(month) <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (np.asarray(month, dtype=np.int64) + 9) % 12
    doy = (153 * mp + 2) // 5 + np.asarray(day, dtype=np.int64) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def eastern_offset(utc: np.ndarray) -> np.ndarray:
    """UTC offset in seconds of US Eastern time at the given epoch seconds (DST rules in force since 2007)."""
    utc = np.asarray(utc, dtype=np.int64)
    year, _, _ = civil_from_days(utc // DAY)
    mar1 = days_from_civil(year, 3, 1)
    dst_start = (mar1 + (6 - (mar1 + 3) % 7) % 7 + 7) * DAY + 7 * 3600  # 2nd Sunday of March, 02:00 EST
    nov1 = days_from_civil(year, 11, 1)
    dst_end = (nov1 + (6 - (nov1 + 3) % 7) % 7) * DAY + 6 * 3600  # 1st Sunday of November, 02:00 EDT
    return np.where((utc >= dst_start) & (utc < dst_end), EDT, EST)


def local_to_utc(local: np.ndarray) -> np.ndarray:
    """Epoch seconds of Eastern wall-clock times given as seconds since 1970-01-01 00:00 local."""
    guess = np.asarray(local, dtype=np.int64) - EST
    return np.asarray(local, dtype=np.int64) - eastern_offset(guess)


def _date_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, m, d = civil_from_days(days)
    return digits(y, 4), digits(m, 2), digits(d, 2)


def _time_parts(seconds_of_day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(seconds_of_day, dtype=np.int64)
    return digits(s // 3600, 2), digits(s // 60 % 60, 2), digits(s % 60, 2)


def iso_date(days: np.ndarray) -> list[str]:
    """``YYYY-MM-DD`` for days since the epoch."""
    n = len(days)
    if n == 0:
        return []
    y, m, d = _date_parts(days)
    return _assemble([y, b"-", m, b"-", d], n)


def compact_date(days: np.ndarray) -> list[str]:
    """``YYYYMMDD`` (HL7 DT, X12 D8)."""
    n = len(days)
    if n == 0:
        return []
    y, m, d = _date_parts(days)
    return _assemble([y, m, d], n)


def iso_utc(utc: np.ndarray) -> list[str]:
    """``YYYY-MM-DDTHH:MM:SSZ`` (Synthea CSV)."""
    utc = np.asarray(utc, dtype=np.int64)
    n = len(utc)
    if n == 0:
        return []
    y, m, d = _date_parts(utc // DAY)
    hh, mi, ss = _time_parts(utc % DAY)
    return _assemble([y, b"-", m, b"-", d, b"T", hh, b":", mi, b":", ss, b"Z"], n)


def _offset_columns(offset: np.ndarray, colon: bool) -> np.ndarray:
    edt, est = (b"-04:00", b"-05:00") if colon else (b"-0400", b"-0500")
    table = np.stack([np.frombuffer(est, np.uint8), np.frombuffer(edt, np.uint8)])
    return table[(offset == EDT).astype(np.int64)]


def iso_local(utc: np.ndarray) -> list[str]:
    """``YYYY-MM-DDTHH:MM:SS-05:00``: Eastern wall-clock time with its offset (FHIR, device vitals)."""
    utc = np.asarray(utc, dtype=np.int64)
    n = len(utc)
    if n == 0:
        return []
    offset = eastern_offset(utc)
    local = utc + offset
    y, m, d = _date_parts(local // DAY)
    hh, mi, ss = _time_parts(local % DAY)
    return _assemble([y, b"-", m, b"-", d, b"T", hh, b":", mi, b":", ss, _offset_columns(offset, True)], n)


def hl7_local(utc: np.ndarray) -> list[str]:
    """``YYYYMMDDHHMMSS-0500``: HL7 v2 DTM in Eastern time with its offset."""
    utc = np.asarray(utc, dtype=np.int64)
    n = len(utc)
    if n == 0:
        return []
    offset = eastern_offset(utc)
    local = utc + offset
    y, m, d = _date_parts(local // DAY)
    hh, mi, ss = _time_parts(local % DAY)
    return _assemble([y, m, d, hh, mi, ss, _offset_columns(offset, False)], n)


def local_parts(utc: np.ndarray) -> tuple[list[str], list[str]]:
    """Eastern local ``YYYYMMDD`` and ``HHMM`` (X12 DTP dates and times carry no offset)."""
    utc = np.asarray(utc, dtype=np.int64)
    n = len(utc)
    if n == 0:
        return [], []
    local = utc + eastern_offset(utc)
    y, m, d = _date_parts(local // DAY)
    hh, mi, _ = _time_parts(local % DAY)
    return _assemble([y, m, d], n), _assemble([hh, mi], n)


def fixed(values: np.ndarray, decimals: int) -> list[str]:
    """Numbers with a fixed count of decimals (deterministic text for floats)."""
    fmt = f"{{:.{decimals}f}}".format
    return [fmt(v) for v in np.asarray(values, dtype=np.float64).tolist()]
