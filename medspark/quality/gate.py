"""Run a table's suite with Great Expectations and decide whether the table may replace its silver version.

One ExpectationSuite and one validation run per table, on the frame from
:func:`medspark.quality.checks.with_check_columns` (cache it: GE and the count below both read it). Native
expectations run on the real columns; compiled checks run as ``expect_column_values_to_be_in_set(_ok__<id>,
[True])``. GE 1.24 bundles the aggregate metrics of a suite into a few Spark jobs (measured in
docs/data-quality.md), so the cost is per table rather than per expectation.

Results never carry record values: the result format is BASIC with ``partial_unexpected_count`` 0 and
``exclude_unexpected_values`` -- counts only.

The gate: a table fails when the fraction of its rows that fail at least one error-severity row-level check
exceeds the suite's ``threshold``, or when an error-severity table-level check (row count, column type) fails.
Warn-severity checks are recorded only. :func:`enforce` raises :class:`~medspark.errors.DataQualityError`; call it
before any MERGE so a failing table keeps its previous silver version.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medspark.errors import DataQualityError
from medspark.quality.checks import FAILED_CHECKS
from medspark.quality.suite import Check, Suite

log = logging.getLogger(__name__)

# Counts only: no partial_unexpected_list, no unexpected rows or index queries (record values would be PHI).
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
_SEVERITY = {"error": "critical", "warn": "warning"}
# Null handling GE must apply so that its counts equal the compiled columns (see medspark.quality.checks).
_IGNORE_ROW_IF = {
    "expect_column_pair_values_a_to_be_greater_than_b": "either_value_is_missing",
    "expect_compound_columns_to_be_unique": "any_value_is_missing",
}


def great_expectations() -> Any:
    """The ``great_expectations`` module, imported on first use with usage analytics off (no outbound calls)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


def ephemeral_context() -> Any:
    """An in-memory GE data context with progress bars off (nothing is written until Data Docs are built)."""
    gx = great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def run_identifier(run_id: str, run_date: dt.date) -> Any:
    """GE's RunIdentifier of a medspark run: the run id, at midnight UTC of the run date (never the clock)."""
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=run_id, run_time=dt.datetime.combine(run_date, dt.time(), tzinfo=dt.UTC))


def _class_name(expectation_type: str) -> str:
    """``expect_column_values_to_not_be_null`` -> ``ExpectColumnValuesToNotBeNull``."""
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def build_expectation_suite(suite: Suite) -> Any:
    """The GE ``ExpectationSuite`` of ``suite`` (named after the table); each expectation's ``meta`` holds
    ``check_id``, ``category`` and ``kind``.

    Row-level expectations get ``mostly = 1 - threshold``, so GE's per-check success reads "fails on no more than
    the table's threshold".
    """
    gx = great_expectations()
    import great_expectations.expectations as gxe

    mostly = round(1.0 - suite.threshold, 12)
    expectations = []
    for check in suite.checks:
        common: dict[str, Any] = {
            "meta": {"check_id": check.id, "category": check.category, "kind": check.kind},
            "description": f"{check.id}: {check.description}",
            "severity": _SEVERITY[check.severity],
        }
        if check.expectation is None:
            expectation = gxe.ExpectColumnValuesToBeInSet(
                column=check.ok_column, value_set=[True], mostly=mostly, **common)
        else:
            kwargs = dict(check.parsed_kwargs)
            if check.row_level:
                kwargs["mostly"] = mostly
            if check.expectation in _IGNORE_ROW_IF:
                kwargs["ignore_row_if"] = _IGNORE_ROW_IF[check.expectation]
            expectation = getattr(gxe, _class_name(check.expectation))(**kwargs, **common)
        expectations.append(expectation)
    return gx.ExpectationSuite(name=suite.table, expectations=expectations)


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found in one table: counts and verdict, never values."""

    check_id: str
    expectation_type: str  # the GE type, or in_reference / concept_domain / expression for compiled checks
    category: str
    severity: str
    row_level: bool
    element_count: int
    unexpected_count: int | None  # None for table-level checks
    success: bool  # Great Expectations' verdict (row-level: unexpected share <= the table threshold)


@dataclass(frozen=True)
class TableValidation:
    """The gate's view of one table in one run."""

    suite: Suite
    run_id: str
    run_date: dt.date
    row_count: int
    failed_rows: int  # rows failing at least one error-severity row-level check (the quarantine)
    outcomes: tuple[CheckOutcome, ...]
    ge_result: Any  # great_expectations ExpectationSuiteValidationResult (counts only)
    ge_seconds: float

    @property
    def table(self) -> str:
        return self.suite.table

    @property
    def failure_rate(self) -> float:
        """Share of rows that would be quarantined (0 for an empty table)."""
        return self.failed_rows / self.row_count if self.row_count else 0.0

    @property
    def failed_table_checks(self) -> tuple[str, ...]:
        """Ids of error-severity table-level checks that failed."""
        return tuple(o.check_id for o in self.outcomes
                     if not o.row_level and o.severity == "error" and not o.success)

    @property
    def passed(self) -> bool:
        """True when the table may be merged (its failing rows then go to quarantine)."""
        return self.failure_rate <= self.suite.threshold and not self.failed_table_checks


def _compiled_counts(flagged: DataFrame, suite: Suite) -> tuple[int, int, dict[str, int]]:
    """Rows, quarantined rows and FALSE count per row-level check, in ONE aggregation (one Spark job)."""
    checks = suite.row_checks
    row = flagged.agg(
        sf.count(sf.lit(1)).alias("rows"),
        sf.count_if(sf.size(FAILED_CHECKS) > 0).alias("failed"),
        *[sf.count_if(~sf.col(c.ok_column)).alias(f"c{i}") for i, c in enumerate(checks)],
    ).first()
    assert row is not None
    return int(row["rows"]), int(row["failed"]), {c.id: int(row[f"c{i}"]) for i, c in enumerate(checks)}


def _outcome(check: Check, result: Any, row_count: int) -> CheckOutcome:
    detail = result.result or {}
    if check.row_level:
        element_count = int(detail.get("element_count", row_count))
        unexpected = detail.get("unexpected_count")
        unexpected_count: int | None = int(unexpected) if unexpected is not None else 0
    else:
        element_count, unexpected_count = row_count, None
    return CheckOutcome(
        check_id=check.id,
        expectation_type=check.expectation or check.kind,
        category=check.category,
        severity=check.severity,
        row_level=check.row_level,
        element_count=element_count,
        unexpected_count=unexpected_count,
        success=bool(result.success),
    )


def validate_table(flagged: DataFrame, suite: Suite, *, run_id: str, run_date: dt.date) -> TableValidation:
    """Validate one table's flagged rows with Great Expectations and count its quarantine.

    Args:
        flagged: output of :func:`medspark.quality.checks.with_check_columns` for ``suite`` (cache it).
        suite: the table's suite.
        run_id: the run's id (recorded, and the Data Docs run name).
        run_date: the run's date (recorded; the same date the checks used).

    Returns:
        The table's :class:`TableValidation`; nothing is raised for a failing table (see :func:`enforce`).

    Raises:
        DataQualityError: GE could not evaluate a check, or its unexpected count differs from the compiled column
            (the gate cannot be trusted then).
    """
    context = ephemeral_context()
    asset = context.data_sources.add_spark(name="medspark").add_dataframe_asset(name=suite.table)
    batch = asset.add_batch_definition_whole_dataframe(name="candidates").get_batch(
        batch_parameters={"dataframe": flagged})
    expectation_suite = context.suites.add(build_expectation_suite(suite))
    started = time.monotonic()
    result = batch.validate(expectation_suite, result_format=RESULT_FORMAT)
    ge_seconds = time.monotonic() - started
    result.meta["run_id"] = run_identifier(run_id, run_date)  # Data Docs name the run by it
    row_count, failed_rows, compiled = _compiled_counts(flagged, suite)
    log.info("dq %s: %d expectations validated by Great Expectations in %.1f s", suite.table,
             len(suite.checks), ge_seconds)

    by_id = {r.expectation_config.meta["check_id"]: r for r in result.results}
    outcomes = []
    for check in suite.checks:
        check_result = by_id.get(check.id)
        if check_result is None or check_result.exception_info.get("raised_exception"):
            raise DataQualityError(f"dq {suite.table}: Great Expectations could not evaluate check '{check.id}'")
        outcome = _outcome(check, check_result, row_count)
        if check.row_level and outcome.unexpected_count != compiled[check.id]:
            raise DataQualityError(
                f"dq {suite.table}: check '{check.id}': Great Expectations counts {outcome.unexpected_count} "
                f"unexpected rows, the compiled column {compiled[check.id]}")
        outcomes.append(outcome)
    validation = TableValidation(suite=suite, run_id=run_id, run_date=run_date, row_count=row_count,
                                 failed_rows=failed_rows, outcomes=tuple(outcomes), ge_result=result,
                                 ge_seconds=ge_seconds)
    log.info("dq %s: %d of %d rows fail error checks (threshold %.4f): %s", suite.table, failed_rows, row_count,
             suite.threshold, "pass" if validation.passed else "FAIL")
    return validation


def enforce(validations: Iterable[TableValidation]) -> None:
    """Raise when any table failed its gate; the message names tables, counts and check ids only.

    Raises:
        DataQualityError: at least one table exceeds its threshold or failed an error table-level check.
    """
    problems = []
    for v in validations:
        if v.passed:
            continue
        worst = sorted((o for o in v.outcomes if o.row_level and o.severity == "error" and o.unexpected_count),
                       key=lambda o: (-(o.unexpected_count or 0), o.check_id))[:3]
        text = (f"{v.table}: {v.failed_rows} of {v.row_count} rows ({v.failure_rate:.2%}) fail error checks, "
                f"threshold {v.suite.threshold:.2%}")
        if worst:
            text += " (" + ", ".join(f"{o.check_id}: {o.unexpected_count}" for o in worst) + ")"
        if v.failed_table_checks:
            text += "; failed table checks: " + ", ".join(v.failed_table_checks)
        problems.append(text)
    if problems:
        raise DataQualityError("data-quality gate failed: " + "; ".join(problems))
