"""Small-cell suppression: primary (1..threshold), zeros kept, derived rates, complementary cells within a group."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from medspark.gold.suppression import suppress_small_cells


def test_counts_of_one_to_threshold_are_nulled_with_their_rates(spark: SparkSession) -> None:
    cells = spark.createDataFrame([
        ("a", 0, 0.0),      # zero is published
        ("b", 1, 0.1),
        ("c", 10, 1.0),     # the threshold itself is suppressed
        ("d", 11, 1.1),
        ("e", None, None),  # unknown stays unknown, not flagged
        ("f", 250, 25.0),
    ], "cell string, persons long, per_1000 double")
    suppressed = suppress_small_cells(cells, count_columns=["persons"], rate_columns={"per_1000": "persons"})
    expected = spark.createDataFrame([
        ("a", 0, 0.0, False),
        ("b", None, None, True),
        ("c", None, None, True),
        ("d", 11, 1.1, False),
        ("e", None, None, False),
        ("f", 250, 25.0, False),
    ], "cell string, persons long, per_1000 double, persons_suppressed boolean")
    assertSchemaEqual(suppressed.schema, expected.schema)
    assertDataFrameEqual(suppressed, expected)


def test_threshold_is_configurable_and_a_rate_follows_every_count_it_uses(spark: SparkSession) -> None:
    cells = spark.createDataFrame([
        ("a", 5, 100, 50.0),
        ("b", 6, 100, 60.0),
        ("c", 20, 4, 5000.0),   # the denominator is small: the rate goes, the numerator stays
    ], "cell string, persons int, denominator int, rate double")
    suppressed = suppress_small_cells(cells, count_columns=["persons", "denominator"],
                                      rate_columns={"rate": ["persons", "denominator"]}, threshold=5)
    expected = spark.createDataFrame([
        ("a", None, 100, None, True, False),
        ("b", 6, 100, 60.0, False, False),
        ("c", 20, None, None, False, True),
    ], "cell string, persons int, denominator int, rate double, persons_suppressed boolean,"
       " denominator_suppressed boolean")
    assertDataFrameEqual(suppressed, expected)


def test_a_lone_suppressed_cell_takes_the_next_smallest_of_its_group_with_it(spark: SparkSession) -> None:
    schema = "age_group string, sex string, persons long, share double"
    cells = spark.createDataFrame([
        # one primary: the smallest other positive cell (30) goes too, so 5 is not total - 30 - 40
        ("0-17", "m", 5, 0.07), ("0-17", "f", 30, 0.4), ("0-17", "u", 40, 0.53),
        # two primaries already protect each other
        ("18-34", "m", 3, 0.05), ("18-34", "f", 4, 0.07), ("18-34", "u", 50, 0.88),
        # the others are zero: none is taken (the group total, 2, is suppressed in its own table)
        ("35-49", "m", 2, 1.0), ("35-49", "f", 0, 0.0), ("35-49", "u", 0, 0.0),
        # ties for the next smallest: both go
        ("50-64", "m", 7, 0.15), ("50-64", "f", 20, 0.43), ("50-64", "u", 20, 0.43),
        # nothing small
        ("65-79", "m", 12, 0.3), ("65-79", "f", 28, 0.7),
    ], schema)
    suppressed = suppress_small_cells(cells, count_columns=["persons"], rate_columns={"share": "persons"},
                                      group_columns=["age_group"])
    expected = spark.createDataFrame([
        ("0-17", "m", None, None, True), ("0-17", "f", None, None, True), ("0-17", "u", 40, 0.53, False),
        ("18-34", "m", None, None, True), ("18-34", "f", None, None, True), ("18-34", "u", 50, 0.88, False),
        ("35-49", "m", None, None, True), ("35-49", "f", 0, 0.0, False), ("35-49", "u", 0, 0.0, False),
        ("50-64", "m", None, None, True), ("50-64", "f", None, None, True), ("50-64", "u", None, None, True),
        ("65-79", "m", 12, 0.3, False), ("65-79", "f", 28, 0.7, False),
    ], schema + ", persons_suppressed boolean")
    assertDataFrameEqual(suppressed, expected)


def test_complementary_suppression_is_per_count_column(spark: SparkSession) -> None:
    cells = spark.createDataFrame([
        ("g", "x", 4, 100), ("g", "y", 50, 8), ("g", "z", 60, 200),
    ], "grp string, cell string, persons long, events long")
    suppressed = suppress_small_cells(cells, count_columns=["persons", "events"], group_columns=["grp"])
    expected = spark.createDataFrame([
        ("g", "x", None, None, True, True),    # persons: primary; events: next smallest after 8
        ("g", "y", None, None, True, True),    # persons: next smallest after 4; events: primary
        ("g", "z", 60, 200, False, False),
    ], "grp string, cell string, persons long, events long, persons_suppressed boolean, events_suppressed boolean")
    assertDataFrameEqual(suppressed, expected)


def test_bad_arguments_name_themselves(spark: SparkSession) -> None:
    cells = spark.createDataFrame([(1, 2.0, "a")], "persons long, rate double, label string")
    with pytest.raises(ValueError, match="count_columns"):
        suppress_small_cells(cells, count_columns=["nope"])
    with pytest.raises(ValueError, match="count_columns"):
        suppress_small_cells(cells, count_columns=["rate"])          # not an integer column
    with pytest.raises(ValueError, match="rate_columns"):
        suppress_small_cells(cells, count_columns=["persons"], rate_columns={"rate": "label"})
    with pytest.raises(ValueError, match="group_columns"):
        suppress_small_cells(cells, count_columns=["persons"], group_columns=["grp"])
    with pytest.raises(ValueError, match="threshold"):
        suppress_small_cells(cells, count_columns=["persons"], threshold=0)
