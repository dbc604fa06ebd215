"""Small-cell suppression: the last step before any gold aggregate is published.

Counts of few persons can identify them, even in de-identified data. Following the CMS cell-size policy ("no cell
of 1 to 10 persons"), every count ``n`` with ``1 <= n <= threshold`` (default 10) is replaced by null before a
table is written. Zero is published: it says nobody has the attribute, which identifies no one. Rates (per cent,
per 1,000, means, percentiles...) computed from a suppressed count are nulled with it, since a rate and its
denominator give the count back.

Complementary suppression: when a table also publishes, or lets a reader compute, the total of a group of cells
(counts by sex within an age group, and the age group's total), a single suppressed cell of that group is just the
total minus the others. So when exactly one cell of a group is suppressed, the smallest other positive cell of the
group is suppressed too (all cells tied for smallest, which is deterministic and never less protective). Zero cells
are not chosen: if every other cell of the group is zero, the group's total equals the suppressed cell, and that
total is itself a count of 1 to ``threshold`` that its own table suppresses. :func:`suppress_small_cells` protects
one level of margins (one pass over ``group_columns``); a cross table with several known margins (age band x sex)
goes through :func:`suppress_crossed_cells`, which repeats the passes over every margin until none changes.

Output convention: each count column keeps its name and position (null when suppressed) and gains a boolean
``<count>_suppressed`` column at the end, true for primary and complementary suppression alike; a null count stays
null with the flag false. Rate columns are nulled in place and get no flag of their own: the flag of their
count(s) says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf

DEFAULT_THRESHOLD = 10
SUPPRESSED_SUFFIX = "_suppressed"


def _as_tuple(columns: str | Sequence[str]) -> tuple[str, ...]:
    return (columns,) if isinstance(columns, str) else tuple(columns)


def _check_columns(frame: DataFrame, argument: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{argument}: column(s) {missing} not in the frame (columns: {frame.columns})")


def _check_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"threshold: must be an integer >= 1, got {threshold!r}")


def suppress_small_cells(frame: DataFrame, *, count_columns: Sequence[str],
                         rate_columns: Mapping[str, str | Sequence[str]] | None = None,
                         threshold: int = DEFAULT_THRESHOLD,
                         group_columns: Sequence[str] | None = None) -> DataFrame:
    """Nulls counts of 1 to ``threshold`` and everything derived from them (see the module docstring).

    Args:
        frame: any aggregate table; count columns are integral (int/long).
        count_columns: the columns holding counts of persons (or of events of few persons).
        rate_columns: ``{rate_column: count_column}`` or ``{rate_column: [count columns]}``: a rate is nulled when
            any count it is derived from is suppressed (primary or complementary).
        threshold: largest suppressed count; counts ``1 <= n <= threshold`` are suppressed.
        group_columns: columns identifying a group of cells whose total is published (e.g. ``["concept_id",
            "stratum"]`` for a stratified prevalence whose overall row is the margin). ``None``: no complementary
            suppression. Groups are formed per count column independently.

    Returns:
        ``frame`` with the same columns in the same order (count and rate columns nulled where suppressed), plus
        ``<count>_suppressed boolean`` for every count column, appended in ``count_columns`` order.

    Raises:
        ValueError: an argument names a missing column, a rate refers to a column not in ``count_columns``, a count
            column is not integral, or ``threshold`` is below 1.
    """
    counts = tuple(count_columns)
    rates = {rate: _as_tuple(sources) for rate, sources in (rate_columns or {}).items()}
    groups = tuple(group_columns or ())
    if not counts:
        raise ValueError("count_columns: at least one count column is required")
    _check_threshold(threshold)
    _check_columns(frame, "count_columns", counts)
    _check_columns(frame, "rate_columns", list(rates))
    _check_columns(frame, "group_columns", groups)
    not_counts = sorted({s for sources in rates.values() for s in sources} - set(counts))
    if not_counts:
        raise ValueError(f"rate_columns: rates refer to {not_counts}, which are not in count_columns {list(counts)}")
    types = dict(frame.dtypes)
    non_integral = [c for c in counts if types[c] not in ("tinyint", "smallint", "int", "bigint")]
    if non_integral:
        raise ValueError(f"count_columns: {non_integral} are not integer columns ({[types[c] for c in non_integral]})")
    clashes = [f"{c}{SUPPRESSED_SUFFIX}" for c in counts if f"{c}{SUPPRESSED_SUFFIX}" in frame.columns]
    if clashes:
        raise ValueError(f"count_columns: the frame already has flag column(s) {clashes}")
    overlap = sorted(set(counts) & (set(rates) | set(groups)))
    if overlap:
        raise ValueError(f"count_columns: {overlap} also given as rate or group columns")

    flags: dict[str, Column] = {}
    staged = frame
    for count in counts:
        value = sf.col(count)
        primary = value.between(1, threshold)  # null count -> null, coalesced below
        flag = sf.coalesce(primary, sf.lit(False))
        if groups:
            group = Window.partitionBy(*groups)
            primaries = sf.sum(flag.cast("int")).over(group)
            candidate = ~flag & (value > 0)
            smallest = sf.min(sf.when(candidate, value)).over(group)
            flag = flag | ((primaries == 1) & candidate & (value == smallest))
        flag_name = f"_{count}{SUPPRESSED_SUFFIX}_staged"
        staged = staged.withColumn(flag_name, sf.coalesce(flag, sf.lit(False)))
        flags[count] = sf.col(flag_name)

    replaced: dict[str, Column] = {}
    for count in counts:
        replaced[count] = sf.when(~flags[count], sf.col(count))
    for rate, sources in rates.items():
        hidden = sf.lit(False)
        for source in sources:
            hidden = hidden | flags[source]
        replaced[rate] = sf.when(~hidden, sf.col(rate))
    kept = [replaced[c].alias(c) if c in replaced else sf.col(c) for c in frame.columns]
    flagged = [flags[c].alias(f"{c}{SUPPRESSED_SUFFIX}") for c in counts]
    return staged.select(*kept, *flagged)


def suppress_crossed_cells(frame: DataFrame, *, count_column: str, margins: Sequence[Sequence[str]],
                           threshold: int = DEFAULT_THRESHOLD, max_passes: int = 100) -> DataFrame:
    """Small-cell suppression of a cross table whose every margin is published or computable.

    For example persons by age band x sex: the band totals and the sex totals are both known. Primary suppression
    is that of :func:`suppress_small_cells`. Then, pass after pass over every margin, a group of cells holding
    exactly one suppressed cell gets its smallest other positive cell(s) suppressed too, until no group of any
    margin holds exactly one suppressed cell beside a positive one. Flags only grow, so this ends. Each pass runs
    one small Spark job (a count) on a locally checkpointed frame: meant for tables of up to some thousands of
    cells, as published aggregates are.

    Args:
        frame: the full cross table, zero cells included (a missing cell is a cell nobody can see the value of).
        count_column: the integral column of counts.
        margins: the groupings whose totals are known, e.g. ``[["age_band"], ["sex"]]``.
        threshold: largest suppressed count.
        max_passes: a guard; more passes than this raise.

    Returns:
        ``frame`` with ``count_column`` nulled where suppressed and ``<count_column>_suppressed boolean`` appended.

    Raises:
        ValueError: a missing or non-integral column, no margin, a bad threshold, or no fixpoint within
            ``max_passes`` passes.
    """
    if not margins or any(not m for m in margins):
        raise ValueError("margins: at least one non-empty grouping is required")
    _check_threshold(threshold)
    _check_columns(frame, "count_columns", [count_column])
    _check_columns(frame, "margins", sorted({c for m in margins for c in m}))
    if dict(frame.dtypes)[count_column] not in ("tinyint", "smallint", "int", "bigint"):
        raise ValueError(f"count_column: {count_column} is not an integer column")
    flag_name = f"{count_column}{SUPPRESSED_SUFFIX}"
    if flag_name in frame.columns:
        raise ValueError(f"count_column: the frame already has flag column {flag_name}")

    value, flag = sf.col(count_column), sf.col(flag_name)
    staged = frame.withColumn(flag_name, sf.coalesce(value.between(1, threshold), sf.lit(False))).localCheckpoint()
    flagged = staged.where(flag).count()
    for _ in range(max_passes):
        for margin in margins:
            group = Window.partitionBy(*margin)
            candidate = ~flag & (value > 0)
            lone = sf.sum(flag.cast("int")).over(group) == 1
            smallest = sf.min(sf.when(candidate, value)).over(group)
            staged = staged.withColumn(flag_name, flag | sf.coalesce(lone & candidate & (value == smallest),
                                                                     sf.lit(False)))
        staged = staged.localCheckpoint()
        now = staged.where(flag).count()
        if now == flagged:
            return staged.withColumn(count_column, sf.when(~flag, value)).select(*frame.columns, flag_name)
        flagged = now
    raise ValueError(f"complementary suppression found no fixpoint in {max_passes} passes")
