"""The silver data-quality gate: expectation suites declared in ``conf/quality/<table>.yaml``, run with Great
Expectations before any MERGE, so a table whose candidate rows fail too often never replaces the previous silver.

Modules, in the order a job uses them:

- :mod:`medspark.quality.suite` -- the YAML schema (pydantic) and the suite loader.
- :mod:`medspark.quality.checks` -- pure transforms: one boolean ``_ok__<check>`` column per row-level check,
  ``_failed_checks``, and :func:`~medspark.quality.checks.split_by_checks` (passed / quarantined rows).
- :mod:`medspark.quality.gate` -- one Great Expectations validation per table, the cross-check of its counts
  against the compiled columns, and the gate decision (:class:`~medspark.errors.DataQualityError`).
- :mod:`medspark.quality.results` -- result rows for ``<lakehouse>/ops/dq_results`` and the Data Docs site.

See docs/data-quality.md.
"""

from __future__ import annotations

from medspark.quality.checks import split_by_checks, with_check_columns
from medspark.quality.gate import TableValidation, enforce, validate_table
from medspark.quality.results import build_data_docs, build_result_rows, data_docs_directory, write_results
from medspark.quality.suite import Check, Suite, load_suite, load_suites

__all__ = [
    "Check",
    "Suite",
    "TableValidation",
    "build_data_docs",
    "build_result_rows",
    "data_docs_directory",
    "enforce",
    "load_suite",
    "load_suites",
    "split_by_checks",
    "validate_table",
    "with_check_columns",
    "write_results",
]
