"""Row-level checks as columns: the pure half of the data-quality gate.

Every row-level check of a suite becomes one boolean column ``_ok__<id with dots as __>`` (TRUE = the row passes),
computed once, so quarantining rows, counting failures and Great Expectations' validation share one pass over the
data instead of one job per check. Native GE expectations are compiled to the same Spark condition GE evaluates
(``medspark.quality.gate`` asserts that GE's unexpected counts equal the counts of FALSE here); medspark's own kinds
(``in_reference``, ``concept_domain``, ``expression``) exist only as these columns, which GE then validates.

NULL semantics: a NULL input passes every check except ``expect_column_values_to_not_be_null`` -- as in Great
Expectations, which leaves missing values out of column-map expectations (pair checks ignore a row when either
value is missing, compound-unique checks when any is). An ``expression`` that evaluates to NULL passes too; write
``x IS NOT NULL AND ...`` when a missing value should fail.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import reduce

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as sf

from medspark.errors import ConfigError, UsageError
from medspark.quality.suite import OK_PREFIX, PERSON_COLUMNS, Check, Suite

FAILED_CHECKS = "_failed_checks"
QUARANTINE_REASON = "_quarantine_reason"
REASON_PREFIX = "dq:"
_RUN_DATE = re.compile(r":run_date\b")


def _person_attributes(context: Mapping[str, DataFrame]) -> DataFrame:
    """One row per person: ``_person_key`` and the ``_person_*`` columns.

    The context may hold a person twice (a candidate and the current silver row): the most lenient value is kept
    (earliest birth, latest death) so that the join never multiplies rows and no check fails on a stale version.
    """
    if "person" not in context:
        raise UsageError("the data-quality context has no 'person' table, which _person_* columns need")
    persons = context["person"]
    aggregates = [
        sf.min("year_of_birth").alias("_person_year_of_birth"),
        sf.min("birth_datetime").alias("_person_birth_datetime"),
    ]
    if "death_date" in persons.columns:
        aggregates.append(sf.max("death_date").alias("_person_death_date"))
    attributes = persons.groupBy(sf.col("person_id").alias("_person_key")).agg(*aggregates)
    if "death_date" in persons.columns:
        return attributes
    deaths = context.get("death")
    if deaths is None:
        return attributes.withColumn("_person_death_date", sf.lit(None).cast("date"))
    last_deaths = deaths.groupBy(sf.col("person_id").alias("_death_key")).agg(
        sf.max("death_date").alias("_person_death_date"))
    return attributes.join(last_deaths, sf.col("_person_key") == sf.col("_death_key"), "left").drop("_death_key")


def _native_verdict(check: Check) -> Column:
    """The Spark condition Great Expectations evaluates for a row-level expectation (TRUE = expected)."""
    kwargs = check.parsed_kwargs
    kind = check.expectation
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = sf.col(kwargs["column_A"]), sf.col(kwargs["column_B"])
        # GE runs with ignore_row_if="either_value_is_missing" (set in medspark.quality.gate).
        return a.isNull() | b.isNull() | ((a >= b) if kwargs["or_equal"] else (a > b))
    if kind == "expect_compound_columns_to_be_unique":
        columns = [sf.col(c) for c in kwargs["column_list"]]
        # GE runs with ignore_row_if="any_value_is_missing".
        any_missing = reduce(lambda x, y: x | y, [c.isNull() for c in columns])
        duplicates = sf.count(sf.lit(1)).over(Window.partitionBy(sf.struct(*columns)))
        return any_missing | (duplicates <= 1)
    column = sf.col(kwargs["column"])
    if kind == "expect_column_values_to_not_be_null":
        return column.isNotNull()
    if kind == "expect_column_values_to_be_between":
        condition = sf.lit(True)
        if kwargs["min_value"] is not None:
            low = sf.lit(kwargs["min_value"])
            condition = condition & ((column > low) if kwargs["strict_min"] else (column >= low))
        if kwargs["max_value"] is not None:
            high = sf.lit(kwargs["max_value"])
            condition = condition & ((column < high) if kwargs["strict_max"] else (column <= high))
        return column.isNull() | condition
    if kind == "expect_column_values_to_be_in_set":
        return column.isNull() | column.isin(kwargs["value_set"])
    if kind == "expect_column_values_to_match_regex":
        return column.isNull() | column.rlike(kwargs["regex"])
    if kind == "expect_column_values_to_be_unique":
        return column.isNull() | (sf.count(sf.lit(1)).over(Window.partitionBy(column)) <= 1)
    raise ValueError(f"not a row-level expectation: {kind}")


def _expression(check: Check, suite: Suite, run_date: dt.date) -> Column:
    assert check.expression is not None
    sql = _RUN_DATE.sub(f"DATE'{run_date.isoformat()}'", check.expression.sql)
    try:
        return sf.expr(sql)
    except ParseException as exc:
        raise ConfigError(f"quality suite {suite.table}: check '{check.id}': expression is not valid SQL") from exc


def with_check_columns(
    rows: DataFrame,
    suite: Suite,
    context: Mapping[str, DataFrame],
    *,
    run_date: dt.date,
) -> DataFrame:
    """Adds one verdict column per row-level check and the ids of the failed error checks.

    Args:
        rows: candidate rows of ``suite.table`` (its silver columns; other columns are kept).
        suite: the table's suite.
        context: DataFrames the checks refer to: ``person`` (``person_id``, ``year_of_birth``,
            ``birth_datetime``, optionally ``death_date``), ``death`` (``person_id``, ``death_date``; optional --
            without it and without ``person.death_date`` ``_person_death_date`` is NULL),
            ``visit_occurrence`` and any other table named by ``in_reference``, and ``concept``
            (``concept_id``, ``domain_id``, ``standard_concept``; broadcast). Only those the suite uses are read.
        run_date: the run's date, substituted for ``:run_date`` in expressions (checks never call now()).

    Returns:
        ``rows``' columns, then ``_ok__<check>`` boolean (never NULL, TRUE = passes) per row-level check in
        suite order, then ``_failed_checks array<string>`` (ids of failed error-severity checks, suite order).

    Raises:
        ConfigError: an expression does not parse or names an unknown column.
        UsageError: the context lacks a table a check needs.
    """
    frame = rows
    helpers: list[str] = []
    if any(c.expression is not None and "_person_" in c.expression.sql for c in suite.row_checks):
        frame = frame.join(_person_attributes(context), sf.col("person_id") == sf.col("_person_key"), "left")
        helpers += ["_person_key", *PERSON_COLUMNS]
    verdicts: list[tuple[Check, Column]] = []
    for i, check in enumerate(suite.row_checks):
        key = f"_dq_key_{i}"
        if check.in_reference is not None:
            ref = check.in_reference
            if ref.table not in context:
                raise UsageError(f"check '{check.id}' needs the '{ref.table}' table in the data-quality context")
            keys = context[ref.table].select(sf.col(ref.ref_column).alias(key)).where(sf.col(key).isNotNull())
            frame = frame.join(keys.distinct(), sf.col(ref.column) == sf.col(key), "left")
            helpers.append(key)
            verdicts.append((check, sf.col(ref.column).isNull() | sf.col(key).isNotNull()))
        elif check.concept_domain is not None:
            spec = check.concept_domain
            if "concept" not in context:
                raise UsageError(f"check '{check.id}' needs the 'concept' table in the data-quality context")
            concepts = context["concept"].where(sf.col("domain_id").isin(spec.domains))
            if spec.standard:
                concepts = concepts.where(sf.col("standard_concept") == "S")
            allowed = concepts.select(sf.col("concept_id").alias(key)).distinct()
            frame = frame.join(sf.broadcast(allowed), sf.col(spec.column) == sf.col(key), "left")
            helpers.append(key)
            column = sf.col(spec.column)
            zero = (column == 0) if spec.allow_zero else sf.lit(False)
            verdicts.append((check, column.isNull() | zero | sf.col(key).isNotNull()))
        elif check.expression is not None:
            verdicts.append((check, _expression(check, suite, run_date)))
        else:
            verdicts.append((check, _native_verdict(check)))
    ok_columns = [sf.coalesce(verdict, sf.lit(True)).alias(check.ok_column) for check, verdict in verdicts]
    try:
        judged = frame.select("*", *ok_columns)
    except AnalysisException as exc:
        raise _explain(frame, suite, verdicts) from exc
    failed = [sf.when(~sf.col(c.ok_column), sf.lit(c.id)) for c in suite.row_checks if c.severity == "error"]
    failed_ids = sf.array_compact(sf.array(*failed)) if failed else sf.array().cast("array<string>")
    keep = [c for c in judged.columns if c not in set(helpers)]
    return judged.select(*keep, failed_ids.alias(FAILED_CHECKS))


def _explain(frame: DataFrame, suite: Suite, verdicts: list[tuple[Check, Column]]) -> ConfigError:
    """The check whose condition does not resolve against ``frame`` (the combined select hides which one)."""
    for check, verdict in verdicts:
        try:
            frame.select(verdict)
        except ParseException:
            return ConfigError(f"quality suite {suite.table}: check '{check.id}': expression is not valid SQL")
        except AnalysisException as exc:
            first = str(exc).strip().splitlines()[0][:200]
            return ConfigError(f"quality suite {suite.table}: check '{check.id}' does not resolve: {first}")
    return ConfigError(f"quality suite {suite.table}: the checks do not resolve against the rows")


def split_by_checks(flagged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Rows that pass every error check, and rows to quarantine.

    Args:
        flagged: output of :func:`with_check_columns`.

    Returns:
        ``(passed, failed)``: both without the ``_ok__*`` columns; ``passed`` also without ``_failed_checks``;
        ``failed`` keeps ``_failed_checks`` and adds ``_quarantine_reason string`` = ``"dq:"`` + the ids joined
        by commas (suite order).
    """
    check_columns = [c for c in flagged.columns if c.startswith(OK_PREFIX)]
    has_failed = sf.size(FAILED_CHECKS) > 0
    passed = flagged.where(~has_failed).drop(*check_columns, FAILED_CHECKS)
    failed = flagged.where(has_failed).drop(*check_columns).withColumn(
        QUARANTINE_REASON, sf.concat(sf.lit(REASON_PREFIX), sf.array_join(FAILED_CHECKS, ",")))
    return passed, failed
