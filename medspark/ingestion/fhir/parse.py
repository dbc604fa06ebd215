"""The two FHIR R4 source formats, bulk-export NDJSON and JSON documents (Bundles), over one resource parser.

- ``fhir-ndjson`` (lines): one resource per line, as a Bulk Data ``$export`` writes it (``.ndjson``, gzip
  handled by Spark's text reader). Each line is a resource record as it is.
- ``fhir-bundle`` (files): one JSON document per file, a Bundle of any type (transaction, collection,
  searchset, document, message, ...) unpacked to one record per ``entry[i].resource``, or a single resource;
  ``.json.gz`` is inflated. The unpacking is a pandas step (:mod:`.bundle` says why).

Both hand their records to :func:`medspark.ingestion.fhir.resources.parse_resources`, which writes the entities
``fhir_patient``, ``fhir_encounter``, ``fhir_condition``, ``fhir_medicationrequest``, ``fhir_procedure``,
``fhir_observation`` and ``fhir_other``. Which file is which format is decided by content (:mod:`.sniff`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medspark.ingestion.contract import SourceFile, SourceFormat
from medspark.ingestion.fhir.bundle import split_files
from medspark.ingestion.fhir.resources import ENTITIES, parse_resources
from medspark.ingestion.fhir.sniff import sniff_document, sniff_ndjson


def parse_ndjson(lines: DataFrame, files: Sequence[SourceFile] = ()) -> Mapping[str, DataFrame]:
    """Typed FHIR entities from NDJSON lines (pure transform).

    Args:
        lines: ``_source_file string, _record_position long (physical line number), _raw string``, blank
            lines already removed.
        files: the planned files (unused: every line stands on its own).

    Returns:
        ``{entity: DataFrame}`` for the seven ``fhir_*`` entities (see :mod:`.resources` for the columns).
    """
    records = lines.select(
        "_source_file",
        sf.col("_record_position").cast("long").alias("_record_position"),
        "_raw",
        sf.lit(None).cast("string").alias("_full_url"),
        sf.lit(None).cast("string").alias("_split_reason"),
    )
    return parse_resources(records)


def bundle_records(files_content: DataFrame, files: Sequence[SourceFile] = ()) -> DataFrame:
    """Resource records of whole JSON files (pure transform; the unpacking is a pandas step, see :mod:`.bundle`).

    Input columns: ``_source_file string, _content binary``; ``files`` is unused. Output columns: those of
    :data:`medspark.ingestion.fhir.resources.RECORD_COLUMNS`. A caller that materialises several entities may
    persist this result: every entity's DataFrame starts from it, and the unpacking is the costly part.
    """
    split = split_files(files_content)
    return split.select(
        "_source_file",
        "_record_position",
        # binary -> string keeps the bytes as they are, so is_valid_utf8 can judge them.
        sf.col("_raw_bytes").cast("string").alias("_raw"),
        "_full_url",
        "_split_reason",
    )


def parse_bundle(files_content: DataFrame, files: Sequence[SourceFile] = ()) -> Mapping[str, DataFrame]:
    """Typed FHIR entities from whole JSON files, one Bundle or resource each (pure transform).

    Args:
        files_content: ``_source_file string, _content binary``, one row per file (gzip'd or not).
        files: the planned files (unused).

    Returns:
        ``{entity: DataFrame}`` for the seven ``fhir_*`` entities; ``_record_position`` is the 1-based entry
        number (1 for a single resource, 0 for a file that cannot be split).
    """
    return parse_bundle_records(bundle_records(files_content))


def parse_bundle_records(records: DataFrame, files: Sequence[SourceFile] = ()) -> Mapping[str, DataFrame]:
    """Typed FHIR entities from the output of :func:`bundle_records` (the second half of :func:`parse_bundle`)."""
    return parse_resources(records)


FORMAT_NDJSON = SourceFormat(
    name="fhir-ndjson",
    read_mode="lines",
    sniff=sniff_ndjson,
    parse=parse_ndjson,
    entities=ENTITIES,
    description="FHIR R4 Bulk Data NDJSON: one resource per line (gzip by extension)",
)

FORMAT_BUNDLE = SourceFormat(
    name="fhir-bundle",
    read_mode="files",
    sniff=sniff_document,
    parse=parse_bundle,
    prepare=bundle_records,
    parse_prepared=parse_bundle_records,
    entities=ENTITIES,
    description="FHIR R4 JSON document per file: a Bundle (one record per entry) or one resource; .json.gz ok",
)
