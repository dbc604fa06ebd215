"""Association rules over per-person baskets: which conditions (or drug ingredients) tend to occur together.

A basket is the set of distinct standard concepts a person ever had. ``mine_itemsets`` runs Spark's FP-growth on
integer concept ids and returns frequent itemsets and rules whose support and lift are relative to all persons given
(also persons whose baskets became empty after pruning), so the numbers mean "share of the population".

Two things differ from calling ``pyspark.ml.fpm.FPGrowth`` directly:

- Items below the support threshold are dropped from the baskets before mining (they can be in no frequent itemset),
  and baskets left empty are dropped; FP-growth's support threshold is rescaled to the smaller basket count, and the
  published support and lift are recomputed with the full person count.
- The support threshold is applied as an exact integer count, ``ceil(min_support * N)`` computed with rationals.
  Spark computes ``ceil(minSupport * N)`` in floating point, so ``0.07 * 100`` becomes 8 persons, not 7.

Spark's rules always have a single item as consequent (mlxtend's may have several).

Drug baskets hold ingredients when an OMOP ``concept_ancestor`` table is given. The vocabulary shipped in
``medspark/resources/vocabulary`` has no ``concept_ancestor`` and no ingredient relationships (only 'Maps to'), and
its drug concepts are RxNorm Clinical Drugs: without an ancestor table a basket holds the drug concepts themselves,
so two strengths of one ingredient are two items.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from pyspark.ml.fpm import FPGrowth
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import ArrayType, DataType, IntegerType

from medspark.errors import UsageError

log = logging.getLogger(__name__)

INGREDIENT_CLASS = "Ingredient"

# Defaults chosen on the 1,010-person dev population (840 with a mapped condition, 2.7 concepts each; 743 with a
# drug, 2.1 each): conditions give 103 itemsets and 47 rules, the rarest rule held by 21 persons; drugs give 43
# itemsets and 5 rules (27 rules at min_support 0.01, rarest 11 persons).
DEFAULT_MIN_SUPPORT = 0.02
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MIN_LIFT = 1.5

FREQUENT_ITEMSET_COUNT_COLUMNS = ("freq",)
"""Count columns of ``frequent_itemsets`` for ``suppress_small_cells`` (``support`` is its rate: ``freq`` / N)."""
RULE_COUNT_COLUMNS = ("persons",)
"""Count columns of ``association_rules`` for ``suppress_small_cells`` (``support`` is its rate: ``persons`` / N)."""


@dataclass(frozen=True)
class MinedItemsets:
    """Result of :func:`mine_itemsets`; unpacks as ``frequent_itemsets, association_rules``.

    Both frames read FP-growth's itemsets from a cache (else every action would mine again): call ``unpersist()``
    once both are written.
    """

    frequent_itemsets: DataFrame
    association_rules: DataFrame
    cached: DataFrame | None = None

    def __iter__(self) -> Iterator[DataFrame]:
        yield self.frequent_itemsets
        yield self.association_rules

    def unpersist(self) -> None:
        """Releases the cached itemsets."""
        if self.cached is not None:
            self.cached.unpersist()


def build_condition_baskets(conditions: DataFrame) -> DataFrame:
    """One basket per person: the distinct standard condition concepts the person ever had.

    Args:
        conditions: ``condition_occurrence`` rows; reads ``person_id``, ``condition_concept_id``. Concept 0
            (unmapped) and null are left out.

    Returns:
        ``person_id bigint``, ``items array<int>`` (distinct, ascending, never empty). Persons without a mapped
        condition have no row: left-join the persons (null basket) to make ``mine_itemsets``'s support a share of
        all persons.
    """
    concept = sf.col("condition_concept_id").cast("int")
    return (conditions.where(concept.isNotNull() & (concept != 0))
            .groupBy("person_id")
            .agg(sf.array_sort(sf.collect_set(concept)).alias("items")))


def build_drug_baskets(drugs: DataFrame, concepts: DataFrame | None = None,
                       concept_ancestor: DataFrame | None = None) -> DataFrame:
    """One basket per person: the distinct drug ingredients (co-medication over the person's whole record).

    With ``concept_ancestor`` each drug concept is replaced by its ancestors whose ``concept_class_id`` in
    ``concepts`` is 'Ingredient' (a combination product gives several ingredients; OMOP's ``concept_ancestor`` has a
    row linking an ingredient to itself). A drug concept with no ingredient ancestor there stays as itself. Without
    ``concept_ancestor`` (the shipped vocabulary has none) every drug concept stays as itself: the basket then holds
    RxNorm Clinical Drugs, not ingredients.

    Args:
        drugs: ``drug_exposure`` rows; reads ``person_id``, ``drug_concept_id`` (0 and null are left out).
        concepts: ``concept_id int``, ``concept_class_id string``; needed with ``concept_ancestor``.
        concept_ancestor: ``ancestor_concept_id int``, ``descendant_concept_id int`` (OMOP ``concept_ancestor``).

    Returns:
        ``person_id bigint``, ``items array<int>`` (distinct, ascending, never empty).

    Raises:
        UsageError: ``concept_ancestor`` is given without ``concepts``.
    """
    drug = sf.col("drug_concept_id").cast("int")
    person_drugs = (drugs.where(drug.isNotNull() & (drug != 0))
                    .select("person_id", drug.alias("drug_concept_id")).distinct())
    if concept_ancestor is None:
        person_items = person_drugs.select("person_id", sf.col("drug_concept_id").alias("item"))
    else:
        if concepts is None:
            raise UsageError("build_drug_baskets: concept_ancestor needs concepts (to find the 'Ingredient' class)")
        ingredients = concepts.where(sf.col("concept_class_id") == INGREDIENT_CLASS) \
            .select(sf.col("concept_id").cast("int").alias("ancestor_concept_id"))
        drug_ingredients = (concept_ancestor
                            .select(sf.col("ancestor_concept_id").cast("int").alias("ancestor_concept_id"),
                                    sf.col("descendant_concept_id").cast("int").alias("drug_concept_id"))
                            .join(ingredients, "ancestor_concept_id")
                            .distinct())
        person_items = (person_drugs.join(drug_ingredients, "drug_concept_id", "left")
                        .select("person_id",
                                sf.coalesce("ancestor_concept_id", "drug_concept_id").alias("item")))
    return person_items.groupBy("person_id").agg(sf.array_sort(sf.collect_set("item")).alias("items"))


def _check_fraction(name: str, value: float, *, low_open: bool) -> None:
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise UsageError(f"{name} must be a number in {interval}, got {value!r}")


def min_count_for(min_support: float, n: int) -> int:
    """The smallest count with ``count / n >= min_support``, computed exactly (at least 1).

    ``min_support`` is read as the decimal it prints as (``0.07`` is 7/100), so ``0.07`` of 100 is 7.
    """
    return max(1, math.ceil(Fraction(repr(float(min_support))) * n))


def spark_min_support(min_count: int, n: int) -> float:
    """A ``minSupport`` for which Spark's ``ceil(minSupport * n)`` is exactly ``min_count`` despite rounding."""
    return (min_count - 0.5) / n


def mine_itemsets(baskets: DataFrame, *, min_support: float, min_confidence: float, min_lift: float | None = None,
                  num_partitions: int | None = None, prune_items: bool = True) -> MinedItemsets:
    """Frequent itemsets and association rules of ``baskets`` (FP-growth).

    Not a lazy transform: it counts the baskets, collects the frequent single items (at most
    ``mean basket size / min_support`` of them) and fits FP-growth. The returned frames are lazy joins over the
    cached itemsets.

    Args:
        baskets: ``items array<int>`` (one row per person; duplicates within a basket are ignored, an empty or
            null basket still counts as a person).
        min_support: keep itemsets held by at least this share of all baskets, in (0, 1].
        min_confidence: keep rules with ``confidence >= min_confidence``, in [0, 1].
        min_lift: if given, keep rules with ``lift >= min_lift``.
        num_partitions: FP-growth's ``numPartitions`` (default: the partitions of the input).
        prune_items: drop infrequent items and then empty baskets before mining (same result, less work).

    Returns:
        ``MinedItemsets`` of
        ``frequent_itemsets``: ``items array<int>`` (ascending), ``freq long`` (persons holding them),
        ``support double`` (freq / N), ``size int``; and
        ``association_rules``: ``antecedent array<int>`` (ascending), ``consequent array<int>`` (one item),
        ``confidence double``, ``lift double``, ``support double`` (persons / N), ``persons long`` (persons holding
        antecedent and consequent). N is the number of rows of ``baskets``. Count columns:
        ``FREQUENT_ITEMSET_COUNT_COLUMNS``, ``RULE_COUNT_COLUMNS``.

    Raises:
        UsageError: an argument is out of range.
    """
    _check_fraction("min_support", min_support, low_open=True)
    _check_fraction("min_confidence", min_confidence, low_open=False)
    if min_lift is not None and (isinstance(min_lift, bool) or not isinstance(min_lift, int | float) or min_lift < 0):
        raise UsageError(f"min_lift must be a non-negative number or None, got {min_lift!r}")
    if num_partitions is not None and (isinstance(num_partitions, bool) or not isinstance(num_partitions, int)
                                       or num_partitions < 1):
        raise UsageError(f"num_partitions must be a positive integer or None, got {num_partitions!r}")

    spark = baskets.sparkSession
    items = sf.array_distinct(sf.coalesce(sf.col("items").cast("array<int>"), sf.array().cast("array<int>")))
    all_baskets = baskets.select(items.alias("items"))
    n_persons = all_baskets.count()
    min_count = min_count_for(min_support, n_persons)

    if prune_items:
        frequent_items = sorted(row.item for row in (
            all_baskets.select(sf.explode("items").alias("item")).groupBy("item").count()
            .where(sf.col("count") >= min_count).select("item").collect()))
        kept = sf.array_intersect("items", sf.array(*[sf.lit(item) for item in frequent_items]).cast("array<int>"))
        training = all_baskets.select(sf.array_sort(kept).alias("items")).where(sf.size("items") > 0)
        n_training = training.count() if frequent_items else 0
    else:
        training, n_training = all_baskets, n_persons
    log.info("FP-growth: %d baskets, %d after pruning, min count %d", n_persons, n_training, min_count)

    if n_training == 0:
        return MinedItemsets(
            spark.createDataFrame([], "items array<int>, freq long, support double, size int"),
            spark.createDataFrame([], "antecedent array<int>, consequent array<int>, confidence double, "
                                      "lift double, support double, persons long"))

    fp_growth = FPGrowth(minSupport=spark_min_support(min_count, n_training), minConfidence=float(min_confidence),
                         itemsCol="items")
    if num_partitions is not None:
        fp_growth.setNumPartitions(num_partitions)
    model = fp_growth.fit(training)
    # freqItemsets is a lazy RDD over the FP-tree: uncached, each action (associationRules too) would mine again.
    mined = model.freqItemsets.cache()
    frequent_itemsets = mined.select(sf.array_sort(sf.col("items").cast("array<int>")).alias("items"),
                                     sf.col("freq").cast("long").alias("freq"),
                                     (sf.col("freq") / sf.lit(n_persons)).alias("support"),
                                     sf.size("items").cast("int").alias("size"))

    # Spark's rule support and lift are relative to the pruned basket count: recompute both over all persons.
    together = frequent_itemsets.select(sf.col("items").alias("_together"), sf.col("freq").alias("persons"))
    consequents = frequent_itemsets.where(sf.col("size") == 1) \
        .select(sf.col("items").alias("consequent"), sf.col("freq").alias("_consequent_freq"))
    rules = (model.associationRules
             .select(sf.array_sort(sf.col("antecedent").cast("array<int>")).alias("antecedent"),
                     sf.col("consequent").cast("array<int>").alias("consequent"),
                     sf.col("confidence").cast("double").alias("confidence"))
             .withColumn("_together", sf.array_sort(sf.concat("antecedent", "consequent")))
             .join(together, "_together")
             .join(consequents, "consequent")
             .select("antecedent", "consequent", "confidence",
                     (sf.col("confidence") * sf.lit(float(n_persons)) / sf.col("_consequent_freq")).alias("lift"),
                     (sf.col("persons") / sf.lit(n_persons)).alias("support"),
                     "persons"))
    if min_lift is not None:
        rules = rules.where(sf.col("lift") >= sf.lit(float(min_lift)))
    return MinedItemsets(frequent_itemsets, rules, mined)


def _is_int_array(data_type: DataType) -> bool:
    return isinstance(data_type, ArrayType) and isinstance(data_type.elementType, IntegerType)


def with_concept_names(frame: DataFrame, concepts: DataFrame, columns: Sequence[str] = ("items",)) -> DataFrame:
    """Adds ``<column>_names`` for each concept-id column: ``array<int>`` gives ``array<string>`` in the same order,
    ``array<array<int>>`` (a sequence of itemsets) gives ``array<array<string>>``.

    A concept missing from ``concepts`` gets a null name. The names travel as one small map row (the distinct
    concepts of ``frame``, e.g. the frequent items), joined to every row.

    Args:
        frame: any rows with the ``columns``.
        concepts: ``concept_id int``, ``concept_name string``.
        columns: the concept-id columns to name.

    Returns:
        ``frame``'s columns plus ``<column>_names`` per column.

    Raises:
        UsageError: a column is not an array of int or an array of arrays of int.
    """
    nested: dict[str, bool] = {}
    for column in columns:
        data_type = frame.schema[column].dataType
        if _is_int_array(data_type):
            nested[column] = False
        elif isinstance(data_type, ArrayType) and _is_int_array(data_type.elementType):
            nested[column] = True
        else:
            raise UsageError(f"with_concept_names: column {column!r} is {data_type.simpleString()}, "
                             "not array<int> or array<array<int>>")
    if not columns:
        return frame
    ids = frame.select(sf.explode(sf.array_distinct(sf.flatten(sf.array(*[
        sf.flatten(column) if nested[column] else sf.col(column) for column in columns])))).alias("concept_id"))
    names = concepts.groupBy(sf.col("concept_id").cast("int").alias("concept_id")) \
        .agg(sf.min("concept_name").alias("concept_name"))
    lookup = (ids.where(sf.col("concept_id").isNotNull()).distinct()
              .join(names, "concept_id", "left")
              .agg(sf.map_from_entries(sf.collect_list(sf.struct("concept_id", "concept_name"))).alias("_names")))
    named = frame.crossJoin(sf.broadcast(lookup))

    def name_of(concept_id: Column) -> Column:
        return sf.col("_names")[concept_id]

    for column in columns:
        if nested[column]:
            named = named.withColumn(f"{column}_names",
                                     sf.transform(column, lambda itemset: sf.transform(itemset, name_of)))
        else:
            named = named.withColumn(f"{column}_names", sf.transform(column, name_of))
    return named.drop("_names")
