"""The re-identification table: pseudonyms as silver computes them, AES-GCM values that decrypt back."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.privacy.reid import build_reidentification, decrypt_identifier

KEY = bytes(range(100, 132))
SEPARATE_KEY = bytes(range(7, 39))
PERSONS_DDL = "person_id long, identifiers array<struct<system:string, value:string>>"


def _pseudonym(system: str, value: str) -> str:
    return hmac.new(KEY, f"{system}:{value}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def persons(spark):
    return spark.createDataFrame(
        [
            (1, [("ssn", "123456789"), ("mrn", " MRN-001 "), ("ssn", "123456789"), ("mrn", None), ("member", "  ")]),
            (2, [("ssn", "987654321"), ("other:urn:x", "Zoë-7")]),
            (3, []),
        ],
        PERSONS_DDL,
    )


@pytest.mark.parametrize("encryption_key", [None, SEPARATE_KEY], ids=["derived", "separate"])
def test_round_trip(spark, persons, encryption_key: bytes | None) -> None:
    table = build_reidentification(persons, key=KEY, encryption_key=encryption_key).cache()
    try:
        decrypted = table.select(
            "person_id",
            "identifier_system",
            "identifier_pseudonym",
            decrypt_identifier(sf.col("identifier_encrypted"), KEY, encryption_key=encryption_key).alias("value"),
        )
        expected = spark.createDataFrame(
            [
                (1, "ssn", _pseudonym("ssn", "123456789"), "123456789"),
                (1, "mrn", _pseudonym("mrn", "MRN-001"), "MRN-001"),
                (2, "ssn", _pseudonym("ssn", "987654321"), "987654321"),
                (2, "other:urn:x", _pseudonym("other:urn:x", "Zoë-7"), "Zoë-7"),
            ],
            "person_id long, identifier_system string, identifier_pseudonym string, value string",
        )
        assertDataFrameEqual(decrypted, expected)
        assert dict(table.dtypes)["identifier_encrypted"] == "binary"
        for row in table.collect():
            assert b"123456789" not in row["identifier_encrypted"]
            assert b"MRN-001" not in row["identifier_encrypted"]
    finally:
        table.unpersist()


def test_ciphertext_is_standard_aes_gcm_under_the_derived_key(spark, persons) -> None:
    aesgcm = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead")
    derived = hmac.new(KEY, b"medspark-key:reidentification-aes-256-gcm", hashlib.sha256).digest()
    row = build_reidentification(persons.where("person_id = 2"), key=KEY).where("identifier_system = 'ssn'").first()
    assert row is not None
    blob = bytes(row["identifier_encrypted"])
    # Spark's layout: 12-byte IV, then ciphertext and 16-byte tag.
    assert aesgcm.AESGCM(derived).decrypt(blob[:12], blob[12:], None) == b"987654321"


def test_wrong_key_fails_instead_of_returning_garbage(spark, persons) -> None:
    table = build_reidentification(persons.where("person_id = 2"), key=KEY, encryption_key=SEPARATE_KEY)
    with pytest.raises(Exception):  # noqa: B017 - Spark raises its own error class for a failed GCM tag
        table.select(decrypt_identifier(sf.col("identifier_encrypted"), KEY)).collect()


def test_bad_encryption_key_length_is_named() -> None:
    with pytest.raises(ValueError, match="encryption_key must be 16, 24 or 32 bytes"):
        decrypt_identifier(sf.lit(b""), KEY, encryption_key=b"short")
