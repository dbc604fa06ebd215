"""The optional, restricted re-identification table: person_id to pseudonymised and encrypted identifiers.

Silver holds only pseudonyms. When a governance process must map a person back to a clear identifier (e.g. a
clinically actionable research finding), this table holds each identifier encrypted with AES-256-GCM by Spark's
``aes_encrypt``. Its encryption key is either configured separately (recommended, so whoever can read the
pseudonym key still cannot decrypt: ``derive_key(load_key(env_var="MEDSPARK_REID_KEY"),
REIDENTIFICATION_KEY_PURPOSE)``) or, by default, derived from the pseudonym key with ``derive_key(key,
REIDENTIFICATION_KEY_PURPOSE)``, a different HMAC domain from every pseudonym. It belongs in a location with
stricter access than silver; research views never read it.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.privacy.keys import derive_key
from medspark.privacy.pseudonym import pseudonymise

REIDENTIFICATION_KEY_PURPOSE = "reidentification-aes-256-gcm"
_AES_KEY_BYTES = (16, 24, 32)


def _aes_key(key: bytes, encryption_key: bytes | None) -> Column:
    aes_key = derive_key(key, REIDENTIFICATION_KEY_PURPOSE) if encryption_key is None else encryption_key
    if not isinstance(aes_key, bytes | bytearray) or len(aes_key) not in _AES_KEY_BYTES:
        raise ValueError("encryption_key must be 16, 24 or 32 bytes (AES-128/192/256)")
    return sf.unhex(sf.lit(bytes(aes_key).hex()))


def build_reidentification(
    persons: DataFrame,
    *,
    key: bytes,
    encryption_key: bytes | None = None,
    identifiers_column: str = "identifiers",
) -> DataFrame:
    """One row per distinct (person, identifier system, identifier value), the value pseudonymised and encrypted.

    Input columns: ``person_id`` and ``identifiers_column`` (``array<struct<system:string, value:string>>``, the
    staged PERSON record shape, systems already canonical as silver makes them). Values are trimmed, as silver
    trims them before pseudonymising; identifiers with a null system or a null/blank value are dropped.

    Output columns: ``person_id`` (as input), ``identifier_system string``, ``identifier_pseudonym string``
    (``pseudonymise(value, key, domain=system)``, the same pseudonym silver uses) and ``identifier_encrypted
    binary`` (AES-GCM with a random IV, so equal values encrypt differently).

    Args:
        persons: person records with identifiers.
        key: the pseudonym key.
        encryption_key: a separately configured AES key (16/24/32 bytes); ``None`` derives one from ``key``.
        identifiers_column: name of the identifiers array column.
    """
    aes_key = _aes_key(key, encryption_key)
    identifiers = (
        persons.select("person_id", sf.explode(identifiers_column).alias("_identifier"))
        .select(
            "person_id",
            sf.col("_identifier.system").alias("identifier_system"),
            sf.trim(sf.col("_identifier.value")).alias("_value"),
        )
        .where(sf.col("identifier_system").isNotNull() & (sf.col("_value") != ""))
        .dropDuplicates(["person_id", "identifier_system", "_value"])
    )
    return identifiers.select(
        "person_id",
        "identifier_system",
        pseudonymise(sf.col("_value"), key, domain=sf.col("identifier_system")).alias("identifier_pseudonym"),
        sf.aes_encrypt(sf.encode(sf.col("_value"), "UTF-8"), aes_key, sf.lit("GCM"), sf.lit("DEFAULT")).alias(
            "identifier_encrypted"
        ),
    )


def decrypt_identifier(encrypted: Column, key: bytes, *, encryption_key: bytes | None = None) -> Column:
    """The clear identifier (string) of ``identifier_encrypted``; same key arguments as the build.

    A wrong key makes the query fail (GCM authentication), it never returns garbage.
    """
    aes_key = _aes_key(key, encryption_key)
    return sf.decode(sf.aes_decrypt(encrypted, aes_key, sf.lit("GCM"), sf.lit("DEFAULT")), "UTF-8")
