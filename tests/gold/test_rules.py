"""medspark.gold.rules: baskets from literal rows; FP-growth itemsets and rules against hand-worked numbers and
mlxtend on the same baskets."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import association_rules, fpgrowth
from pyspark.testing import assertDataFrameEqual

from medspark.errors import UsageError
from medspark.gold.rules import (
    build_condition_baskets,
    build_drug_baskets,
    min_count_for,
    mine_itemsets,
    with_concept_names,
)

BASKETS = "person_id long, items array<int>"
ITEMSETS = "items array<int>, freq long, support double, size int"
RULES = "antecedent array<int>, consequent array<int>, confidence double, lift double, support double, persons long"


def test_condition_baskets_hold_distinct_mapped_concepts_sorted(spark):
    conditions = spark.createDataFrame([
        (1, 30, date(2020, 1, 1)), (1, 10, date(2020, 2, 1)), (1, 30, date(2021, 1, 1)), (1, 0, date(2020, 1, 1)),
        (2, 0, date(2020, 1, 1)),
        (3, 20, date(2020, 1, 1)), (3, None, date(2020, 1, 1)),
    ], "person_id long, condition_concept_id int, condition_start_date date")
    expected = spark.createDataFrame([(1, [10, 30]), (3, [20])], BASKETS)
    assertDataFrameEqual(build_condition_baskets(conditions), expected)


DRUGS = "person_id long, drug_concept_id int"
CONCEPTS = "concept_id int, concept_name string, domain_id string, vocabulary_id string, concept_class_id string"
ANCESTORS = "ancestor_concept_id int, descendant_concept_id int"


def _drug_vocabulary(spark):
    # Made-up ids: drug 11 has ingredient 1; combination drug 12 has ingredients 2 and 3; drug 13 has no ancestor row;
    # 90 is a drug class (an ancestor that is not an ingredient); ingredients are their own ancestors, as in OMOP.
    concepts = spark.createDataFrame([
        (1, "ingredient one", "Drug", "RxNorm", "Ingredient"), (2, "ingredient two", "Drug", "RxNorm", "Ingredient"),
        (3, "ingredient three", "Drug", "RxNorm", "Ingredient"),
        (11, "one 5 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug"),
        (12, "two 1 MG / three 2 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug"),
        (13, "four 1 MG Oral Tablet", "Drug", "RxNorm", "Clinical Drug"),
        (90, "a drug class", "Drug", "ATC", "ATC 4th"),
    ], CONCEPTS)
    ancestors = spark.createDataFrame([(1, 1), (2, 2), (3, 3), (1, 11), (90, 11), (2, 12), (3, 12), (90, 12)],
                                      ANCESTORS)
    drugs = spark.createDataFrame([(1, 11), (1, 12), (1, 11), (1, 0), (2, 13), (2, 1), (3, 0), (4, None)], DRUGS)
    return drugs, concepts, ancestors


def test_drug_baskets_use_ingredient_ancestors_and_keep_unmapped_drugs(spark):
    drugs, concepts, ancestors = _drug_vocabulary(spark)
    expected = spark.createDataFrame([(1, [1, 2, 3]), (2, [1, 13])], BASKETS)
    assertDataFrameEqual(build_drug_baskets(drugs, concepts, ancestors), expected)


def test_drug_baskets_without_ancestors_hold_the_drug_concepts(spark):
    drugs, concepts, _ = _drug_vocabulary(spark)
    expected = spark.createDataFrame([(1, [11, 12]), (2, [1, 13])], BASKETS)
    assertDataFrameEqual(build_drug_baskets(drugs, concepts), expected)
    assertDataFrameEqual(build_drug_baskets(drugs), expected)


def test_drug_baskets_refuse_ancestors_without_concepts(spark):
    drugs, _, ancestors = _drug_vocabulary(spark)
    with pytest.raises(UsageError, match="concepts"):
        build_drug_baskets(drugs, None, ancestors)


def test_tiny_example_worked_by_hand(spark):
    # N = 5 persons; min count 2. Item 4 (1 person) is pruned, which leaves person 5's basket empty: support and lift
    # must still be relative to all 5 (Spark alone would use 4: lift(1 -> 2) would be 8/9 instead of 10/9).
    baskets = spark.createDataFrame([(1, [1, 2, 3]), (2, [2, 1]), (3, [1, 3]), (4, [2]), (5, [4])], BASKETS)
    mined = mine_itemsets(baskets, min_support=0.4, min_confidence=0.5)
    itemsets, rules = mined
    assertDataFrameEqual(itemsets, spark.createDataFrame([
        ([1], 3, 0.6, 1), ([2], 3, 0.6, 1), ([3], 2, 0.4, 1), ([1, 2], 2, 0.4, 2), ([1, 3], 2, 0.4, 2),
    ], ITEMSETS))
    assertDataFrameEqual(rules, spark.createDataFrame([
        ([1], [2], 2 / 3, 10 / 9, 0.4, 2), ([2], [1], 2 / 3, 10 / 9, 0.4, 2),
        ([1], [3], 2 / 3, 5 / 3, 0.4, 2), ([3], [1], 1.0, 5 / 3, 0.4, 2),
    ], RULES))
    lifted = mine_itemsets(baskets, min_support=0.4, min_confidence=0.5, min_lift=1.5)
    assertDataFrameEqual(lifted.association_rules, spark.createDataFrame([
        ([1], [3], 2 / 3, 5 / 3, 0.4, 2), ([3], [1], 1.0, 5 / 3, 0.4, 2),
    ], RULES))
    mined.unpersist()
    lifted.unpersist()


def test_support_threshold_is_exact_at_the_boundary(spark):
    # 7 of 100 is exactly 0.07; Spark's own ceil(0.07 * 100) in floating point would demand 8.
    assert min_count_for(0.07, 100) == 7
    baskets = spark.createDataFrame([(i, [5, 6] if i < 7 else [9]) for i in range(100)], BASKETS)
    mined = mine_itemsets(baskets, min_support=0.07, min_confidence=0.9)
    assertDataFrameEqual(mined.frequent_itemsets, spark.createDataFrame([
        ([5], 7, 0.07, 1), ([6], 7, 0.07, 1), ([5, 6], 7, 0.07, 2), ([9], 93, 0.93, 1),
    ], ITEMSETS))
    mined.unpersist()


# Random baskets with correlated items: each person has items independently, plus three "syndromes" that bring groups
# of items together. Thresholds are chosen off any ratio of small integers, so float rounding cannot decide a case.
N_BASKETS = 600
MIN_SUPPORT = 0.0523  # 31.38 persons -> 32
MIN_CONFIDENCE = 0.3137
MIN_LIFT = 1.4142


def _random_baskets(seed: int = 20241128) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    n_items = 24
    prevalence = 0.01 + 0.2 * rng.random(n_items) ** 2
    syndromes = [((3, 7, 11), 0.25), ((2, 5), 0.2), ((13, 17, 19, 23), 0.12)]
    baskets = []
    for _ in range(N_BASKETS):
        present = rng.random(n_items) < prevalence
        for members, chance in syndromes:
            if rng.random() < chance:
                present[list(members)] |= rng.random(len(members)) < 0.85
        baskets.append([1000 + int(i) for i in np.flatnonzero(present)])
    return baskets


@pytest.fixture(scope="module")
def random_case(spark):
    baskets = _random_baskets()
    frame = spark.createDataFrame(list(enumerate(baskets)), BASKETS)
    items = sorted({item for basket in baskets for item in basket})
    onehot = pd.DataFrame([[item in set(basket) for item in items] for basket in baskets], columns=items)
    reference_itemsets = fpgrowth(onehot, min_support=MIN_SUPPORT, use_colnames=True)
    reference_rules = association_rules(reference_itemsets, num_itemsets=N_BASKETS, metric="confidence",
                                        min_threshold=MIN_CONFIDENCE)
    # Spark's rules have a single item as consequent; mlxtend's may have several: compare the single-item ones.
    reference_rules = reference_rules[reference_rules["consequents"].map(len) == 1]
    mined = mine_itemsets(frame, min_support=MIN_SUPPORT, min_confidence=MIN_CONFIDENCE)
    unpruned = mine_itemsets(frame, min_support=MIN_SUPPORT, min_confidence=MIN_CONFIDENCE, prune_items=False,
                             num_partitions=3)
    lifted = mine_itemsets(frame, min_support=MIN_SUPPORT, min_confidence=MIN_CONFIDENCE, min_lift=MIN_LIFT)
    case = {
        "baskets": baskets,
        "reference_itemsets": {frozenset(row.itemsets): round(row.support * N_BASKETS)
                               for row in reference_itemsets.itertuples()},
        "reference_rules": {(frozenset(row.antecedents), frozenset(row.consequents)): row
                            for row in reference_rules.itertuples()},
        "mined": [mined.frequent_itemsets.collect(), mined.association_rules.collect()],
        "unpruned": [unpruned.frequent_itemsets.collect(), unpruned.association_rules.collect()],
        "lifted": lifted.association_rules.collect(),
    }
    for result in (mined, unpruned, lifted):
        result.unpersist()
    return case


def _itemset_counts(rows) -> dict[frozenset[int], int]:
    counts = {frozenset(row["items"]): row["freq"] for row in rows}
    assert len(counts) == len(rows)
    return counts


def _rule_keys(rows) -> dict[tuple[frozenset[int], frozenset[int]], tuple[float, float, float, int]]:
    return {(frozenset(row["antecedent"]), frozenset(row["consequent"])):
            (row["confidence"], row["lift"], row["support"], row["persons"]) for row in rows}


def test_random_case_exercises_pruning(random_case):
    counts: dict[int, int] = {}
    for basket in random_case["baskets"]:
        for item in basket:
            counts[item] = counts.get(item, 0) + 1
    min_count = 32
    assert any(count < min_count for count in counts.values()), "no infrequent item to prune"
    assert any(basket and all(counts[item] < min_count for item in basket) for basket in random_case["baskets"]), \
        "no basket is emptied by pruning"


def test_frequent_itemsets_equal_mlxtend(random_case):
    itemsets, _ = random_case["mined"]
    expected = random_case["reference_itemsets"]
    assert len(expected) > 30 and max(len(items) for items in expected) >= 3
    assert _itemset_counts(itemsets) == expected
    for row in itemsets:
        assert row["support"] == pytest.approx(row["freq"] / N_BASKETS, rel=1e-12)
        assert row["size"] == len(row["items"])
        assert row["items"] == sorted(row["items"])


def test_rules_equal_mlxtend_single_item_consequents(random_case):
    _, rules = random_case["mined"]
    expected = random_case["reference_rules"]
    assert len(expected) > 10
    actual = _rule_keys(rules)
    assert set(actual) == set(expected)
    for key, (confidence, lift, support, persons) in actual.items():
        reference = expected[key]
        assert confidence == pytest.approx(reference.confidence, rel=1e-12)
        assert lift == pytest.approx(reference.lift, rel=1e-12)
        assert support == pytest.approx(reference.support, rel=1e-12)
        assert persons == round(reference.support * N_BASKETS)


def test_pruning_changes_nothing(random_case):
    pruned_itemsets, pruned_rules = random_case["mined"]
    itemsets, rules = random_case["unpruned"]
    assert _itemset_counts(itemsets) == _itemset_counts(pruned_itemsets)
    assert _rule_keys(rules).keys() == _rule_keys(pruned_rules).keys()
    for key, values in _rule_keys(rules).items():
        assert values == pytest.approx(_rule_keys(pruned_rules)[key], rel=1e-12)


def test_min_lift_keeps_exactly_the_rules_at_or_above_it(random_case):
    expected = {key for key, row in random_case["reference_rules"].items() if row.lift >= MIN_LIFT}
    actual = _rule_keys(random_case["lifted"])
    assert 0 < len(expected) < len(random_case["reference_rules"])
    assert set(actual) == expected
    assert all(lift >= MIN_LIFT for _, lift, _, _ in actual.values())


def test_with_concept_names_keeps_order_and_nesting(spark):
    frame = spark.createDataFrame([(1, [2, 1, 99], [[1], [2, 99]]), (2, [], [])],
                                  "id int, items array<int>, sequence array<array<int>>")
    concepts = spark.createDataFrame([(1, "one", "Condition", "SNOMED", "Clinical Finding"),
                                      (2, "two", "Condition", "SNOMED", "Clinical Finding")], CONCEPTS)
    expected = spark.createDataFrame([
        (1, [2, 1, 99], [[1], [2, 99]], ["two", "one", None], [["one"], ["two", None]]),
        (2, [], [], [], []),
    ], "id int, items array<int>, sequence array<array<int>>, items_names array<string>, "
       "sequence_names array<array<string>>")
    assertDataFrameEqual(with_concept_names(frame, concepts, ["items", "sequence"]), expected)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"min_support": 0.0, "min_confidence": 0.5}, "min_support"),
    ({"min_support": 1.5, "min_confidence": 0.5}, "min_support"),
    ({"min_support": 0.1, "min_confidence": -0.1}, "min_confidence"),
    ({"min_support": 0.1, "min_confidence": 0.5, "min_lift": -1.0}, "min_lift"),
    ({"min_support": 0.1, "min_confidence": 0.5, "num_partitions": 0}, "num_partitions"),
])
def test_mine_itemsets_names_the_bad_argument(spark, kwargs, name):
    baskets = spark.createDataFrame([(1, [1])], BASKETS)
    with pytest.raises(UsageError, match=name):
        mine_itemsets(baskets, **kwargs)
