"""Keyed pseudonyms (HMAC-SHA256, RFC 2104) computed with Spark built-in functions only.

An unkeyed hash of an SSN or MRN can be reversed by hashing every candidate value; a keyed HMAC cannot without
the key. The HMAC is assembled from ``sha2`` over binary and ``concat``: the key is padded and XOR-ed with
ipad/opad on the driver, so executors only see two 64-byte literals and no Python UDF runs.

Those literals are key material and appear in query plans: never log ``explain()`` output of these columns, and
keep Spark event logs of pseudonymising jobs as restricted as the key.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as sf

_BLOCK_BYTES = 64  # SHA-256 block size
_IPAD = 0x36
_OPAD = 0x5C


def _pads(key: bytes) -> tuple[str, str]:
    if not isinstance(key, bytes | bytearray) or not key:
        raise ValueError("key must be non-empty bytes")
    block_key = hashlib.sha256(key).digest() if len(key) > _BLOCK_BYTES else bytes(key)
    block_key = block_key.ljust(_BLOCK_BYTES, b"\x00")
    inner = bytes(b ^ _IPAD for b in block_key)
    outer = bytes(b ^ _OPAD for b in block_key)
    return inner.hex(), outer.hex()


def hmac_sha256(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of ``value`` under ``key`` as 64 lowercase hex characters; null in, null out.

    The message is the UTF-8 encoding of ``value`` cast to string (so ``123`` and ``"123"`` agree). The result
    equals ``hmac.new(key, message, hashlib.sha256).hexdigest()``; keys longer than 64 bytes are hashed first,
    as RFC 2104 prescribes.

    Args:
        value: the column to authenticate.
        key: the secret key (from ``medspark.privacy.keys.load_key``).
    """
    inner_pad, outer_pad = _pads(key)
    message = sf.encode(value.cast("string"), "UTF-8")
    inner = sf.unhex(sf.sha2(sf.concat(sf.unhex(sf.lit(inner_pad)), message), 256))
    return sf.sha2(sf.concat(sf.unhex(sf.lit(outer_pad)), inner), 256)


def pseudonymise(value: Column, key: bytes, *, domain: str | Column) -> Column:
    """Pseudonym of ``value`` within an identifier ``domain``: ``hmac_sha256(domain + ":" + value, key)``.

    Domain separation makes the same value in different identifier systems (``"ssn"``, ``"mrn"``, ``"person"``)
    give unrelated pseudonyms, so a pseudonym from one system cannot be joined against another. Callers normalise
    the value first (e.g. SSN digits only); null values give null.

    Args:
        value: the identifier column.
        key: the secret key.
        domain: the identifier system, a literal string or a column (e.g. the ``system`` of an identifier struct).
    """
    if isinstance(domain, str):
        if not domain:
            raise ValueError("domain must be a non-empty string")
        prefix = sf.lit(domain + ":")
    else:
        prefix = sf.concat(domain, sf.lit(":"))
    return hmac_sha256(sf.concat(prefix, value.cast("string")), key)


def pseudonymous_id(value: Column, key: bytes, *, domain: str) -> Column:
    """A positive ``bigint`` pseudonym (the first 60 bits of :func:`pseudonymise`), for surrogate keys.

    Collisions are negligible at lakehouse scale (about 4e-7 for a million distinct values).
    """
    digest = pseudonymise(value, key, domain=domain)
    return sf.conv(sf.substring(digest, 1, 15), 16, 10).cast("bigint")
