"""Condition trajectories: which conditions tend to start before which others (sequential pattern mining).

Each person's record becomes a sequence of itemsets: the conditions that first started in the same visit (or the same
calendar month) form one itemset, and itemsets are ordered by time. Only the first onset of a concept counts, so a
chronic condition coded at every visit marks when it began, not how often it was seen. ``mine_trajectories`` runs
Spark's PrefixSpan over these sequences.

The support threshold is applied as an exact integer count, ``ceil(min_support * N)`` computed with rationals (Spark
computes it in floating point, so ``0.07 * 100`` would become 8 sequences instead of 7).
"""

from __future__ import annotations

import logging
from typing import Literal

from pyspark.ml.fpm import PrefixSpan
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medspark.errors import UsageError
from medspark.gold.rules import min_count_for, spark_min_support

log = logging.getLogger(__name__)

Grain = Literal["visit", "month"]
GRAINS: tuple[str, ...] = ("visit", "month")

# Defaults chosen on the 1,010-person dev population (840 with a mapped condition, 2.7 first onsets each): 81
# patterns of at most 2 items over those 840 sequences, the rarest held by 17 persons (suppression threshold: 10).
DEFAULT_MIN_SUPPORT = 0.02
DEFAULT_MAX_PATTERN_LENGTH = 3

TRAJECTORY_COUNT_COLUMNS = ("freq",)
"""Count columns of ``mine_trajectories``'s output for ``suppress_small_cells`` (``support`` is ``freq`` / N)."""


def build_condition_sequences(conditions: DataFrame, *, grain: Grain = "visit") -> DataFrame:
    """One sequence per person: conditions at their first onset, grouped into itemsets, itemsets in time order.

    A concept's first onset is its earliest ``condition_start_date`` (then ``condition_start_datetime``, then
    ``condition_occurrence_id`` break ties). With ``grain="visit"`` the concepts first seen in the same
    ``visit_occurrence_id`` form an itemset, and those with a null visit are grouped per onset date; with
    ``grain="month"`` the concepts whose onset falls in the same calendar month form an itemset. Itemsets are ordered
    by their earliest onset (date, then time, then visit id).

    Args:
        conditions: ``condition_occurrence`` rows; reads ``person_id``, ``condition_concept_id``,
            ``condition_start_date``, ``condition_start_datetime``, ``visit_occurrence_id``,
            ``condition_occurrence_id``. Concept 0 (unmapped), null concepts and null start dates are left out.
        grain: ``"visit"`` or ``"month"``.

    Returns:
        ``person_id bigint``, ``sequence array<array<int>>`` (each itemset distinct and ascending, never empty).
        Persons without a mapped condition have no row: left-join the persons (null sequence) to make
        ``mine_trajectories``'s support a share of all persons.

    Raises:
        UsageError: unknown ``grain``.
    """
    if grain not in GRAINS:
        raise UsageError(f"build_condition_sequences: grain must be one of {', '.join(GRAINS)}, got {grain!r}")
    concept = sf.col("condition_concept_id").cast("int")
    onsets = (conditions
              .where(concept.isNotNull() & (concept != 0) & sf.col("condition_start_date").isNotNull())
              .groupBy("person_id", concept.alias("concept_id"))
              .agg(sf.min(sf.struct(
                  sf.col("condition_start_date").alias("date"),
                  sf.col("condition_start_datetime").alias("datetime"),
                  sf.col("condition_occurrence_id").alias("occurrence_id"),
                  sf.col("visit_occurrence_id").alias("visit_id"))).alias("first")))
    if grain == "visit":
        # A null visit groups per date: the visit's own id otherwise (dates are per person, so no clash).
        group = [sf.col("first.visit_id").alias("_visit"),
                 sf.when(sf.col("first.visit_id").isNull(), sf.col("first.date")).alias("_date")]
    else:
        group = [sf.trunc(sf.col("first.date"), "month").alias("_month")]
    itemsets = (onsets.groupBy("person_id", *group)
                .agg(sf.min(sf.struct(sf.col("first.date"), sf.col("first.datetime"), sf.col("first.visit_id")))
                     .alias("_when"),
                     sf.array_sort(sf.collect_set("concept_id")).alias("_itemset")))
    return (itemsets.groupBy("person_id")
            .agg(sf.array_sort(sf.collect_list(sf.struct("_when", "_itemset"))).alias("_ordered"))
            .select("person_id", sf.transform("_ordered", lambda element: element["_itemset"]).alias("sequence")))


def mine_trajectories(sequences: DataFrame, *, min_support: float, max_pattern_length: int,
                      max_local_proj_db_size: int | None = None) -> DataFrame:
    """Frequent sequential patterns of ``sequences`` (PrefixSpan).

    A sequence contains a pattern when the pattern's itemsets are subsets of some of its itemsets, in the same order
    (not necessarily adjacent). Not a lazy transform: it counts the sequences and runs PrefixSpan, whose result is a
    lazy RDD: write the returned frame once (or cache it).

    Args:
        sequences: ``sequence array<array<int>>`` (one row per person; null counts as an empty sequence).
        min_support: keep patterns contained in at least this share of the sequences, in (0, 1].
        max_pattern_length: the longest pattern, counted in items (PrefixSpan's ``maxPatternLength``), >= 1.
        max_local_proj_db_size: PrefixSpan's ``maxLocalProjDBSize`` (items in a projected database that is then
            mined locally on one executor); Spark's default when None.

    Returns:
        ``sequence array<array<int>>`` (each itemset ascending), ``freq long`` (sequences containing it),
        ``support double`` (freq / N, N = rows of ``sequences``), ``length int`` (items in the pattern). Count
        columns: ``TRAJECTORY_COUNT_COLUMNS``.

    Raises:
        UsageError: an argument is out of range.
    """
    if isinstance(min_support, bool) or not isinstance(min_support, int | float) or not 0.0 < min_support <= 1.0:
        raise UsageError(f"min_support must be a number in (0, 1], got {min_support!r}")
    for name, value in (("max_pattern_length", max_pattern_length),
                        ("max_local_proj_db_size", max_local_proj_db_size)):
        if value is None and name == "max_local_proj_db_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")

    inputs = sequences.select(sf.coalesce(sf.col("sequence").cast("array<array<int>>"),
                                          sf.array().cast("array<array<int>>")).alias("sequence"))
    n_sequences = inputs.count()
    if n_sequences == 0:
        return sequences.sparkSession.createDataFrame([], "sequence array<array<int>>, freq long, support double, "
                                                          "length int")
    min_count = min_count_for(min_support, n_sequences)
    log.info("PrefixSpan: %d sequences, min count %d", n_sequences, min_count)
    prefix_span = PrefixSpan(minSupport=spark_min_support(min_count, n_sequences), maxPatternLength=max_pattern_length,
                             sequenceCol="sequence")
    if max_local_proj_db_size is not None:
        prefix_span.setMaxLocalProjDBSize(max_local_proj_db_size)
    patterns = prefix_span.findFrequentSequentialPatterns(inputs)
    sorted_sequence = sf.transform(sf.col("sequence").cast("array<array<int>>"),
                                   lambda itemset: sf.array_sort(itemset))
    return patterns.select(sorted_sequence.alias("sequence"),
                           sf.col("freq").cast("long").alias("freq"),
                           (sf.col("freq") / sf.lit(n_sequences)).alias("support"),
                           sf.size(sf.flatten("sequence")).cast("int").alias("length"))
