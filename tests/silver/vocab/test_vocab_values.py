"""map_values: gender, race, ethnicity and visit class source values to OMOP concept ids (literal rows)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.silver.vocab import load_vocabulary, map_values


@pytest.mark.parametrize(("kind", "pairs"), [
    ("gender", [("M", 8507), ("female", 8532), (" F ", 8532), ("male", 8507), ("U", 0), ("x", 0), (None, 0)]),
    ("race", [("white", 8527), ("2054-5", 8516), ("asian", 8515), ("1002-5", 8657), ("hawaiian", 8557),
              ("other", 0), ("2131-1", 0)]),
    ("ethnicity", [("hispanic", 38003563), ("nonhispanic", 38003564), ("2186-5", 38003564), ("H", 38003563)]),
    ("visit", [("wellness", 9202), ("ambulatory", 9202), ("outpatient", 9202), ("AMB", 9202), ("O", 9202),
               ("emergency", 9203), ("EMER", 9203), ("E", 9203), ("urgentcare", 9203), ("inpatient", 9201),
               ("IMP", 9201), ("I", 9201), ("HH", 0), ("P", 0)]),
])
def test_map_values(spark: SparkSession, kind: str, pairs: list[tuple[str | None, int]]) -> None:
    vocabulary = load_vocabulary(spark)
    rows = spark.createDataFrame([(i, value) for i, (value, _) in enumerate(pairs)], "id int, source string")
    expected = spark.createDataFrame([(i, value, concept) for i, (value, concept) in enumerate(pairs)],
                                     "id int, source string, concept_id int")
    assertDataFrameEqual(map_values(rows, vocabulary, "source", "concept_id", kind), expected)


def test_map_values_unknown_kind(spark: SparkSession) -> None:
    rows = spark.createDataFrame([("M",)], "source string")
    with pytest.raises(ValueError, match="kind 'sex'"):
        map_values(rows, load_vocabulary(spark), "source", "concept_id", "sex")
