"""medspark.gold.sequences: first-onset itemset sequences from literal rows; PrefixSpan against hand-worked patterns
and a brute-force count of subsequence containment written here in plain Python."""

from __future__ import annotations

from datetime import date, datetime
from itertools import combinations

import numpy as np
import pytest
from pyspark.testing import assertDataFrameEqual

from medspark.errors import UsageError
from medspark.gold.sequences import build_condition_sequences, mine_trajectories

CONDITIONS = ("condition_occurrence_id long, person_id long, condition_concept_id int, condition_start_date date, "
              "condition_start_datetime timestamp, visit_occurrence_id long")
SEQUENCES = "person_id long, sequence array<array<int>>"
PATTERNS = "sequence array<array<int>>, freq long, support double, length int"


def _conditions(spark):
    def row(occurrence, person, concept, day, hour, visit):
        return (occurrence, person, concept, day, None if day is None else datetime(day.year, day.month, day.day, hour),
                visit)

    return spark.createDataFrame([
        # Person 1: 10 and 20 start in visit 100; 30 and 40 start on 10 Feb without a visit (one itemset per date),
        # 50 the same day later in visit 200; 60 in visit 300, where 10 is seen again (not an onset).
        row(1, 1, 60, date(2020, 3, 1), 9, 300),
        row(2, 1, 10, date(2020, 3, 1), 9, 300),
        row(3, 1, 20, date(2020, 1, 5), 10, 100),
        row(4, 1, 10, date(2020, 1, 5), 10, 100),
        row(5, 1, 50, date(2020, 2, 10), 15, 200),
        row(6, 1, 30, date(2020, 2, 10), 8, None),
        row(7, 1, 40, date(2020, 2, 10), 8, None),
        row(8, 1, 0, date(2019, 1, 1), 8, 50),  # unmapped: left out
        row(9, 1, 70, None, 0, 300),  # no start date: left out
        # Person 2: 10 first seen in visit 400 (May), with 20; seen again in visit 500 (June) where 30 starts.
        row(10, 2, 10, date(2021, 6, 1), 9, 500),
        row(11, 2, 30, date(2021, 6, 1), 9, 500),
        row(12, 2, 10, date(2021, 5, 1), 9, 400),
        row(13, 2, 20, date(2021, 5, 2), 9, 400),
        # Person 3: 80 coded on one day in two visits; the earlier time (visit 800) is its onset.
        row(14, 3, 80, date(2022, 1, 1), 9, 700),
        row(15, 3, 90, date(2022, 1, 1), 9, 700),
        row(16, 3, 80, date(2022, 1, 1), 8, 800),
        # Person 4: only unmapped conditions: no sequence.
        row(17, 4, 0, date(2022, 1, 1), 8, 900),
    ], CONDITIONS)


def test_visit_sequences_use_first_onsets_grouped_by_visit(spark):
    expected = spark.createDataFrame([
        (1, [[10, 20], [30, 40], [50], [60]]),
        (2, [[10, 20], [30]]),
        (3, [[80], [90]]),
    ], SEQUENCES)
    assertDataFrameEqual(build_condition_sequences(_conditions(spark), grain="visit"), expected)


def test_month_sequences_group_first_onsets_by_calendar_month(spark):
    expected = spark.createDataFrame([
        (1, [[10, 20], [30, 40, 50], [60]]),
        (2, [[10, 20], [30]]),
        (3, [[80, 90]]),
    ], SEQUENCES)
    assertDataFrameEqual(build_condition_sequences(_conditions(spark), grain="month"), expected)


def test_unknown_grain_is_a_usage_error(spark):
    with pytest.raises(UsageError, match="grain"):
        build_condition_sequences(_conditions(spark), grain="week")  # type: ignore[arg-type]


def test_docs_example_worked_by_hand(spark):
    # <{1,2},{3}>, <{1},{2,3},{1,2}>, <{1,2},{5}>, <{6}>; N = 4, min support 0.5 -> 2 sequences.
    # 1, 2: in the first three; 3: first two; {1,2} together: first, second (last itemset), third;
    # 1 then 3: first, second. Not frequent: 2 then 3 (only the first), 1 then 2 (only the second), {2,3} (second).
    sequences = spark.createDataFrame([(1, [[1, 2], [3]]), (2, [[1], [3, 2], [1, 2]]), (3, [[1, 2], [5]]), (4, [[6]])],
                                      SEQUENCES)
    expected = spark.createDataFrame([
        ([[1]], 3, 0.75, 1), ([[2]], 3, 0.75, 1), ([[3]], 2, 0.5, 1), ([[1, 2]], 3, 0.75, 2), ([[1], [3]], 2, 0.5, 2),
    ], PATTERNS)
    assertDataFrameEqual(mine_trajectories(sequences, min_support=0.5, max_pattern_length=5), expected)


def test_empty_and_null_sequences_count_in_the_support(spark):
    # The docs example plus four persons without conditions: same patterns, half the support.
    sequences = spark.createDataFrame([(1, [[1, 2], [3]]), (2, [[1], [3, 2], [1, 2]]), (3, [[1, 2], [5]]), (4, [[6]]),
                                       (5, []), (6, []), (7, None), (8, None)], SEQUENCES)
    expected = spark.createDataFrame([
        ([[1]], 3, 0.375, 1), ([[2]], 3, 0.375, 1), ([[3]], 2, 0.25, 1), ([[1, 2]], 3, 0.375, 2),
        ([[1], [3]], 2, 0.25, 2),
    ], PATTERNS)
    assertDataFrameEqual(mine_trajectories(sequences, min_support=0.25, max_pattern_length=5), expected)


# Brute force, independent of PrefixSpan: every pattern contained in some sequence is a candidate; a sequence
# contains a pattern when the pattern's itemsets are subsets of strictly later and later itemsets (earliest match).
Pattern = tuple[tuple[int, ...], ...]


def _contains(sequence: list[list[int]], pattern: Pattern) -> bool:
    position = 0
    for itemset in pattern:
        while position < len(sequence) and not set(itemset) <= set(sequence[position]):
            position += 1
        if position == len(sequence):
            return False
        position += 1
    return True


def _subpatterns(sequence: list[list[int]], max_length: int) -> set[Pattern]:
    found: set[Pattern] = set()

    def extend(prefix: Pattern, start: int, length: int) -> None:
        for index in range(start, len(sequence)):
            itemset = sorted(sequence[index])
            for size in range(1, min(len(itemset), max_length - length) + 1):
                for chosen in combinations(itemset, size):
                    pattern = (*prefix, chosen)
                    found.add(pattern)
                    extend(pattern, index + 1, length + size)

    extend((), 0, 0)
    return found


def _random_sequences(seed: int, n: int) -> list[list[list[int]]]:
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(n):
        # A common trajectory 1 -> 2 -> {3,4} that persons follow partly, plus noise items 5..9.
        itemsets: list[set[int]] = []
        for step in ({1}, {2}, {3, 4}):
            if rng.random() < 0.6:
                itemsets.append({int(item) for item in step if rng.random() < 0.8} or set(step))
        for _ in range(rng.integers(0, 3)):
            noise = {int(item) for item in rng.choice(np.arange(5, 10), size=rng.integers(1, 3), replace=False)}
            itemsets.insert(int(rng.integers(0, len(itemsets) + 1)), noise)
        # First onsets: a concept appears once per sequence.
        seen: set[int] = set()
        sequence = []
        for itemset in itemsets:
            fresh = sorted(itemset - seen)
            seen |= itemset
            if fresh:
                sequence.append(fresh)
        sequences.append(sequence)
    return sequences


def test_patterns_equal_brute_force_containment_counts(spark):
    n, min_support, max_length = 60, 0.1, 3
    min_count = 6  # 0.1 * 60 exactly; Spark's floating-point ceil(0.1 * 60) would demand 7
    sequences = _random_sequences(seed=7, n=n)
    candidates = set().union(*(_subpatterns(sequence, max_length) for sequence in sequences))
    counts = {pattern: sum(_contains(sequence, pattern) for sequence in sequences) for pattern in candidates}
    expected = {pattern: count for pattern, count in counts.items() if count >= min_count}
    assert len(expected) > 15 and max(sum(map(len, pattern)) for pattern in expected) == max_length
    assert min_count in expected.values(), "no pattern sits exactly at the support threshold"

    frame = spark.createDataFrame([(i, sequence) for i, sequence in enumerate(sequences)], SEQUENCES)
    rows = mine_trajectories(frame, min_support=min_support, max_pattern_length=max_length).collect()
    actual = {tuple(tuple(itemset) for itemset in row["sequence"]): row["freq"] for row in rows}
    assert len(actual) == len(rows)
    assert actual == expected
    for row in rows:
        assert row["support"] == pytest.approx(row["freq"] / n, rel=1e-12)
        assert row["length"] == sum(len(itemset) for itemset in row["sequence"])


def test_brute_force_reference_agrees_with_the_hand_worked_example():
    sequences = [[[1, 2], [3]], [[1], [2, 3], [1, 2]], [[1, 2], [5]], [[6]]]
    assert _contains(sequences[1], ((1,), (3,))) and not _contains(sequences[1], ((2,), (3,)))
    assert _contains(sequences[1], ((1, 2),)) and not _contains(sequences[0], ((3,), (1,)))
    assert _subpatterns([[1, 2], [3]], 2) == {((1,),), ((2,),), ((1, 2),), ((3,),), ((1,), (3,)), ((2,), (3,))}


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"min_support": 0.0, "max_pattern_length": 3}, "min_support"),
    ({"min_support": 0.5, "max_pattern_length": 0}, "max_pattern_length"),
    ({"min_support": 0.5, "max_pattern_length": 3, "max_local_proj_db_size": 0}, "max_local_proj_db_size"),
])
def test_mine_trajectories_names_the_bad_argument(spark, kwargs, name):
    sequences = spark.createDataFrame([(1, [[1]])], SEQUENCES)
    with pytest.raises(UsageError, match=name):
        mine_trajectories(sequences, **kwargs)
