"""Staging: every bronze table as source-neutral person/visit/event/claim/provider/care-site records.

``STAGERS`` maps a bronze entity name to its pure stager, ``DataFrame -> {kind: DataFrame}``: the kinds it
produces among ``person``, ``visit``, ``event``, ``claim``, ``provider``, ``care_site``, each with exactly the
columns of the matching ``*_RECORD`` DDL in :mod:`medspark.silver.sources._common`, plus always ``_unstaged``
(lineage + ``reason``) for bronze rows that yield no record, so rows in = staged + counted. Source-specific
decisions (identifier systems, vocabularies, times) are documented in each source module.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame

from medspark.silver.sources import fhir, hl7v2, synthea, vitals, x12
from medspark.silver.sources._common import (
    CARE_SITE_RECORD,
    CLAIM_RECORD,
    EVENT_RECORD,
    PERSON_RECORD,
    PROVIDER_RECORD,
    RECORDS,
    UNSTAGED,
    UNSTAGED_RECORD,
    VISIT_RECORD,
    to_record,
)

Stager = Callable[[DataFrame], dict[str, DataFrame]]

STAGERS: dict[str, Stager] = {
    **synthea.STAGERS,
    **fhir.STAGERS,
    **hl7v2.STAGERS,
    **x12.STAGERS,
    **vitals.STAGERS,
}

__all__ = [
    "CARE_SITE_RECORD",
    "CLAIM_RECORD",
    "EVENT_RECORD",
    "PERSON_RECORD",
    "PROVIDER_RECORD",
    "RECORDS",
    "STAGERS",
    "UNSTAGED",
    "UNSTAGED_RECORD",
    "VISIT_RECORD",
    "Stager",
    "to_record",
]
