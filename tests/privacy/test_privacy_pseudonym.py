"""HMAC-SHA256 from Spark built-ins agrees with Python's hmac; pseudonyms are separated by domain."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.privacy.pseudonym import hmac_sha256, pseudonymise, pseudonymous_id

KEY = bytes(range(100, 132))
LONG_KEY = bytes(range(0, 200, 2))  # 100 bytes: longer than the SHA-256 block, hashed first
BLOCK_KEY = bytes(range(64))  # exactly one block: used as is
VALUES = ["123-45-6789", "", "Zoë Ålvarez 山田太郎", "a" * 200, None]


def _expected(key: bytes, value: str | None) -> str | None:
    return None if value is None else hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", [KEY, LONG_KEY, BLOCK_KEY], ids=["32-bytes", "100-bytes", "64-bytes"])
def test_hmac_matches_python_hmac(spark, key: bytes) -> None:
    values = spark.createDataFrame([(i, v) for i, v in enumerate(VALUES)], "i int, value string")
    actual = values.select("i", hmac_sha256(sf.col("value"), key).alias("digest"))
    expected = spark.createDataFrame([(i, _expected(key, v)) for i, v in enumerate(VALUES)], "i int, digest string")
    assertDataFrameEqual(actual, expected)


def test_hmac_of_a_number_is_the_hmac_of_its_decimal_text(spark) -> None:
    actual = spark.createDataFrame([(1234567890123,)], "person_id long").select(
        hmac_sha256(sf.col("person_id"), KEY).alias("digest")
    )
    assert actual.first()["digest"] == _expected(KEY, "1234567890123")


def test_pseudonyms_are_separated_by_domain(spark) -> None:
    rows = spark.createDataFrame([("123456789",), (None,)], "value string")
    actual = rows.select(
        pseudonymise(sf.col("value"), KEY, domain="ssn").alias("ssn"),
        pseudonymise(sf.col("value"), KEY, domain="mrn").alias("mrn"),
        pseudonymise(sf.col("value"), KEY, domain=sf.lit("mrn")).alias("mrn_from_column"),
    )
    expected = spark.createDataFrame(
        [
            (_expected(KEY, "ssn:123456789"), _expected(KEY, "mrn:123456789"), _expected(KEY, "mrn:123456789")),
            (None, None, None),
        ],
        "ssn string, mrn string, mrn_from_column string",
    )
    assertDataFrameEqual(actual, expected)
    first = actual.first()
    assert first["ssn"] != first["mrn"]


def test_pseudonymous_id_is_a_positive_bigint_from_the_digest(spark) -> None:
    actual = spark.createDataFrame([(7,)], "person_id long").select(
        pseudonymous_id(sf.col("person_id"), KEY, domain="research-person").alias("id")
    )
    expected = int(_expected(KEY, "research-person:7")[:15], 16)  # type: ignore[index]
    assertDataFrameEqual(actual, spark.createDataFrame([(expected,)], "id long"))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="key must be non-empty bytes"):
        hmac_sha256(sf.lit("x"), b"")
    with pytest.raises(ValueError, match="domain must be a non-empty string"):
        pseudonymise(sf.lit("x"), KEY, domain="")
