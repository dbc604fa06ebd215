"""Small-cell suppression: primary (1..threshold), zeros kept, derived rates, complementary cells within a group."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from medspark.gold.suppression import suppress_crossed_cells, suppress_small_cells


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


def _lone_suppressed_groups(rows: list[dict[str, object]], margin: str, threshold: int) -> list[object]:
    """Groups of ``margin`` with exactly one suppressed cell while another cell is positive (recoverable)."""
    bad = []
    for key in {r[margin] for r in rows}:
        group = [r for r in rows if r[margin] == key]
        if sum(bool(r["n_suppressed"]) for r in group) == 1 and any(
                not r["n_suppressed"] and (r["n"] or 0) > 0 for r in group):
            bad.append(key)
    return bad


def test_crossed_margins_are_protected_until_nothing_changes(spark: SparkSession) -> None:
    # One pass over rows then columns is not enough here: the column step hides (b,x) and (c,y), each alone in
    # its row, which the second pass's row step must protect, and so on.
    cells = [("a", "x", 5), ("a", "y", 40), ("a", "z", 90),
             ("b", "x", 50), ("b", "y", 60), ("b", "z", 30),
             ("c", "x", 70), ("c", "y", 20), ("c", "z", 0)]
    frame = spark.createDataFrame(cells, "r string, c string, n long")
    out = suppress_crossed_cells(frame, count_column="n", margins=[["r"], ["c"]])
    rows = [r.asDict() for r in out.collect()]
    assert out.columns == ["r", "c", "n", "n_suppressed"]
    hidden = {(r["r"], r["c"]) for r in rows if r["n_suppressed"]}
    assert ("a", "x") in hidden  # primary
    assert all(r["n"] is None for r in rows if r["n_suppressed"])
    assert all(r["n"] == n for r, (_, _, n) in zip(sorted(rows, key=lambda r: (r["r"], r["c"])), cells, strict=True)
               if not r["n_suppressed"])
    assert _lone_suppressed_groups(rows, "r", 10) == [] and _lone_suppressed_groups(rows, "c", 10) == []
    # Exactly what the rule gives. Pass 1: row a (a,y) 40; columns: x (b,x) 50, y (c,y) 20. Pass 2: rows: b (b,z)
    # 30, c (c,x) 70 ((c,z) is zero); columns: z (a,z) 90. Pass 3 changes nothing.
    assert hidden == {("a", "x"), ("a", "y"), ("b", "x"), ("c", "y"), ("b", "z"), ("c", "x"), ("a", "z")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crossed_suppression_leaves_no_recoverable_cell_on_random_grids(spark: SparkSession, seed: int) -> None:
    import random

    rnd = random.Random(seed)
    cells = [(f"r{i}", f"c{j}", rnd.choice([0, 0, 1, 3, 7, 12, 15, 25, 60, 200])) for i in range(7) for j in range(4)]
    out = suppress_crossed_cells(spark.createDataFrame(cells, "r string, c string, n long"), count_column="n",
                                 margins=[["r"], ["c"]], threshold=10)
    rows = [r.asDict() for r in out.collect()]
    assert len(rows) == len(cells)
    primary = {(r, c) for r, c, n in cells if 1 <= n <= 10}
    assert primary <= {(r["r"], r["c"]) for r in rows if r["n_suppressed"]}
    assert _lone_suppressed_groups(rows, "r", 10) == [] and _lone_suppressed_groups(rows, "c", 10) == []
    assert not any(r["n_suppressed"] and dict(((a, b), n) for a, b, n in cells)[(r["r"], r["c"])] == 0 for r in rows)


def test_crossed_suppression_rejects_bad_arguments(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("a", 1.0)], "r string, n double")
    with pytest.raises(ValueError, match="margins"):
        suppress_crossed_cells(frame, count_column="n", margins=[])
    with pytest.raises(ValueError, match="not an integer"):
        suppress_crossed_cells(frame, count_column="n", margins=[["r"]])
    with pytest.raises(ValueError, match="margins"):
        suppress_crossed_cells(frame, count_column="n", margins=[["nope"]])
