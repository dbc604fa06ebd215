"""ANSI X12 837 claim files (837P 005010X222A1, 837I 005010X223A2) to the bronze table ``x12_837_claims``.

Why this module exists: payers and clearinghouses exchange claims as X12 837 interchanges; bronze keeps one row per
claim (loop 2300) with its envelope, billing provider, subscriber, payer, patient, diagnoses and service lines typed,
and the claim's own segments as ``_raw``.

Why a pandas/Arrow UDF and not built-in column functions: the subscriber, patient and billing provider of a claim
are in the HL loops that precede its CLM segment and are shared by all claims under them; separators are declared
per interchange by its ISA segment; envelope checks (SE-01 segment count, control numbers) only resolve at the end
of each envelope. That is a sequential state machine over a file's segments. With built-ins it would take exploding
every file into numbered segments, window functions to carry HL parentage and envelope state forward, and several
self-joins to fold segments back into claims: far harder to read and to get right than one pass in Python (judged,
not benchmarked). So ``parse`` hands each whole file to :func:`medspark.ingestion.x12.claims.iter_claims` through
``mapInArrow`` (Arrow in and out, no pandas: the output has nested arrays of structs, which Arrow builds directly
from Python values), and keeps to built-ins for the rest: ``_raw`` is cast from the claim's bytes and
``invalid_encoding`` is decided by ``is_valid_utf8``.

Memory per task: one file's content (read from the Arrow buffer without a copy), its decoded text, and its claims
as Arrow batches of ``_ROWS_PER_BATCH`` rows (about the size of the claims' text), which are yielded once the file's
envelope checks are settled at its end. An input Arrow batch can still hold several files: jobs reading large 837
files should set ``spark.sql.execution.arrow.maxBytesPerBatch`` (for example 64 MiB) so that a batch closes after
about one large file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from medspark.ingestion.contract import SourceFile, SourceFormat
from medspark.ingestion.x12.claims import Envelope, X12Claim, iter_claims, read_separators

ENTITY = "x12_837_claims"

_ROWS_PER_BATCH = 2048

DIAGNOSIS_TYPE = StructType(
    [StructField("qualifier", StringType()), StructField("code", StringType())]
)
SERVICE_LINE_TYPE = StructType(
    [
        StructField("line_number", IntegerType()),
        StructField("procedure_qualifier", StringType()),
        StructField("procedure_code", StringType()),
        StructField("modifiers", ArrayType(StringType())),
        StructField("revenue_code", StringType()),
        StructField("charge", DecimalType(18, 2)),
        StructField("unit_type", StringType()),
        StructField("units", DoubleType()),
        StructField("service_date", DateType()),
    ]
)

# The entity's typed columns, in output order; names are X12Claim attributes.
TYPED_FIELDS = (
    StructField("transaction_type", StringType()),
    StructField("interchange_control_number", StringType()),
    StructField("group_control_number", StringType()),
    StructField("transaction_set_control_number", StringType()),
    StructField("billing_provider_npi", StringType()),
    StructField("billing_provider_name", StringType()),
    StructField("subscriber_member_id", StringType()),
    StructField("subscriber_last_name", StringType()),
    StructField("subscriber_first_name", StringType()),
    StructField("subscriber_birth_date", DateType()),
    StructField("subscriber_sex", StringType()),
    StructField("subscriber_ssn", StringType()),
    StructField("payer_name", StringType()),
    StructField("payer_id", StringType()),
    StructField("patient_relationship_code", StringType()),
    StructField("patient_last_name", StringType()),
    StructField("patient_first_name", StringType()),
    StructField("patient_birth_date", DateType()),
    StructField("patient_sex", StringType()),
    StructField("claim_id", StringType()),
    StructField("total_charge", DecimalType(18, 2)),
    StructField("place_of_service", StringType()),
    StructField("facility_type_code", StringType()),
    StructField("claim_frequency", StringType()),
    StructField("service_date_from", DateType()),
    StructField("service_date_to", DateType()),
    StructField("admission_date", DateType()),
    StructField("diagnoses", ArrayType(DIAGNOSIS_TYPE)),
    StructField("principal_diagnosis", StringType()),
    StructField("service_lines", ArrayType(SERVICE_LINE_TYPE)),
)

CLAIMS_SCHEMA = StructType(
    [
        StructField("_source_file", StringType()),
        StructField("_record_position", LongType()),
        StructField("_raw", StringType()),
        *TYPED_FIELDS,
        StructField("_quarantine_reason", StringType()),
    ]
)
"""Output schema of ``x12_837_claims``."""

# What the Python side returns: the claim's text as bytes (exactly as in the file, so Spark can judge its encoding)
# and the reader's own reason, which ``invalid_encoding`` overrides.
_PARSED_SCHEMA = StructType(
    [
        StructField("_source_file", StringType()),
        StructField("_record_position", LongType()),
        StructField("_raw_bytes", BinaryType()),
        *TYPED_FIELDS,
        StructField("_parse_reason", StringType()),
    ]
)
_PARSED_ARROW_SCHEMA = to_arrow_schema(_PARSED_SCHEMA)
_TYPED_NAMES = tuple(f.name for f in TYPED_FIELDS)
_REASON_INDEX = len(_PARSED_SCHEMA.fields) - 1

_BOM = b"\xef\xbb\xbf"


def sniff_x12_837(head: bytes, file_name: str) -> bool:
    """True when ``head`` starts (after an optional BOM and whitespace) with ISA and holds an ST*837 segment.

    Args:
        head: The first 64 KiB of the file.
        file_name: Not used: the content decides.
    """
    del file_name
    body = head[len(_BOM) :] if head.startswith(_BOM) else head
    body = body.lstrip()
    if not body.startswith(b"ISA") or len(body) < 4:
        return False
    separators = read_separators(body[:4096].decode("latin-1"))  # one byte per char keeps offsets
    if separators is not None:
        element = re.escape(separators.element.encode("latin-1"))
        terminator = re.escape(separators.segment.encode("latin-1"))
        pattern = terminator + rb"[\r\n]*ST" + element + rb"837(?:" + element + b"|" + terminator + b")"
    else:  # a damaged ISA: still claim the file so that parse quarantines it rather than leaving it unread
        element = re.escape(body[3:4])
        pattern = rb"(?<![A-Za-z0-9])ST" + element + rb"837(?![A-Za-z0-9])"
    return re.search(pattern, body) is not None


def parse_x12_837_claims(inputs: DataFrame, files: Sequence[SourceFile]) -> dict[str, DataFrame]:
    """Split 837 files into one typed row per claim (pure transform).

    Args:
        inputs: One row per file: ``_source_file string, _content binary``.
        files: The planned files (not needed: every 837 file declares its own separators).

    Returns:
        ``{"x12_837_claims": claims}`` with the columns of :data:`CLAIMS_SCHEMA`: ``_source_file``,
        ``_record_position`` (1-based claim ordinal in the file; 0 for a file without any claim), ``_raw`` (the
        claim's HL loops and CLM loop segments, each followed by the file's segment terminator), the typed columns
        of :data:`TYPED_FIELDS` and ``_quarantine_reason`` (``invalid_encoding``, else the reader's reason, see
        :mod:`medspark.ingestion.x12.claims`).
    """
    del files
    parsed = inputs.select("_source_file", "_content").mapInArrow(_parse_files, _PARSED_SCHEMA)
    raw = sf.col("_raw_bytes").cast("string")  # keeps the bytes, valid or not
    reason = sf.when(~sf.is_valid_utf8(raw), sf.lit("invalid_encoding")).otherwise(sf.col("_parse_reason"))
    claims = parsed.select(
        "_source_file",
        "_record_position",
        raw.alias("_raw"),
        *_TYPED_NAMES,
        reason.alias("_quarantine_reason"),
    )
    return {ENTITY: claims}


def _parse_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: each input row is a whole file; yields its claims in batches of ``_ROWS_PER_BATCH``.

    Claims become Arrow batches as they are read (far more compact than Python objects); only their envelope
    handles are kept until the file ends, when the envelope checks are settled into ``_parse_reason``.
    """
    for batch in batches:
        names = batch.column("_source_file")
        contents = batch.column("_content")
        for row in range(batch.num_rows):
            content = contents[row]
            source_file = names[row].as_py()
            pending: list[tuple[pa.RecordBatch, list[tuple[Envelope | None, str | None]]]] = []
            chunk: list[X12Claim] = []
            for claim in iter_claims(content.as_buffer() if content.is_valid else b""):
                chunk.append(claim)
                if len(chunk) == _ROWS_PER_BATCH:
                    pending.append(_pending_batch(source_file, chunk))
                    chunk = []
            if chunk:
                pending.append(_pending_batch(source_file, chunk))
            for claims_batch, checks in pending:
                settled = [envelope.settle(own) if envelope is not None else own for envelope, own in checks]
                yield claims_batch.set_column(_REASON_INDEX, "_parse_reason", pa.array(settled, pa.string()))


def _pending_batch(
    source_file: str | None, claims: list[X12Claim]
) -> tuple[pa.RecordBatch, list[tuple[Envelope | None, str | None]]]:
    """The claims as an Arrow batch whose reasons are not settled yet, and what settles them: each claim's
    envelope and own reason (the lighter equivalent of keeping the claims for ``settled_reason``)."""
    columns: dict[str, list[object]] = {
        "_source_file": [source_file] * len(claims),
        "_record_position": [claim.position for claim in claims],
        "_raw_bytes": [claim.raw.encode("utf-8", "surrogateescape") for claim in claims],
    }
    for name in _TYPED_NAMES:
        columns[name] = [getattr(claim, name) for claim in claims]
    columns["_parse_reason"] = [None] * len(claims)
    checks = [(claim.envelope, claim.reason) for claim in claims]
    return pa.RecordBatch.from_pydict(columns, schema=_PARSED_ARROW_SCHEMA), checks


FORMAT = SourceFormat(
    name="x12-837",
    read_mode="files",
    sniff=sniff_x12_837,
    parse=parse_x12_837_claims,
    entities=(ENTITY,),
    description="ANSI X12 837 health care claims, professional (837P) and institutional (837I), version 005010",
)
