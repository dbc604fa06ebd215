"""Synthea's CSV export (all its tables, any Synthea 2.x/3.x column layout) into bronze entities.

Synthea writes one CSV per table, and its columns change between releases (v3 adds ``MIDDLE``, ``FIPS``,
``INCOME`` to patients, ``SYSTEM`` to conditions, ``CATEGORY`` to observations, ...). The table and the column
order are therefore taken from each file's own header, which the driver already holds (``SourceFile.head``):
every distinct header gets its own all-string ``from_csv`` schema, and target columns are then picked by name,
so reordered, added or removed columns need no code change and absent columns come out null.

Six tables become typed entities (``synthea_patients``, ``synthea_encounters``, ``synthea_conditions``,
``synthea_medications``, ``synthea_procedures``, ``synthea_observations``) that keep Synthea's upper-case
column names; every other table (allergies, claims, payers, ...) lands in ``synthea_other`` as
``synthea_table`` + a ``fields`` map (header -> value).

Files are read line by line (exact line numbers, splittable files). A record whose quoted field holds line
breaks (RFC 4180) spans several lines: :func:`join_quoted_line_breaks` joins them back into one record, at the
position of its first line, before parsing (see there for the rules).

Quarantine reasons: ``invalid_encoding``, ``csv_unbalanced_quotes`` (an odd number of ``"`` left after joining: a
broken quote, never a truncated first part in bronze), ``csv_field_count`` (the record's field count differs from
its header's), ``csv_unknown_table`` (the file has no header, or one that is not Synthea's), ``missing_identifier``
(patients without ``Id``; clinical rows without ``PATIENT``), ``invalid_date:<COLUMN>``,
``invalid_number:<COLUMN>``. Dates and numbers use ``try_*`` functions, so nothing throws under ANSI mode.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.window import Window

from medspark.ingestion.contract import RECORD_LINES, SourceFile, SourceFormat, bad_cast, quarantine_when

log = logging.getLogger(__name__)

ColumnKind = Literal["string", "date", "timestamp", "decimal", "double", "int", "long"]

OTHER_ENTITY = "synthea_other"
UNKNOWN_TABLE = "unknown"
TIME_PARAMETER_VALUE = ("TIME", "PARAMETER", "VALUE")  # PhysioNet long format: the vitals parser's, not ours


@dataclass(frozen=True)
class TableSignature:
    """How a Synthea table is recognised from a header (upper-cased column names).

    ``core`` must all be present; ``known`` is the union of the table's columns over Synthea releases.
    """

    name: str
    core: frozenset[str]
    known: frozenset[str]


def _sig(name: str, core: str, known: str) -> TableSignature:
    return TableSignature(name, frozenset(core.split(",")), frozenset(known.split(",")))


# Order breaks ties between equally good matches (typed tables first).
TABLES: tuple[TableSignature, ...] = (
    _sig(
        "patients",
        "ID,BIRTHDATE",
        "ID,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,MIDDLE,LAST,SUFFIX,MAIDEN,MARITAL,RACE,"
        "ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,FIPS,ZIP,LAT,LON,HEALTHCARE_EXPENSES,"
        "HEALTHCARE_COVERAGE,INCOME",
    ),
    _sig(
        "encounters",
        "ID,START,PATIENT,ENCOUNTERCLASS",
        "ID,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,COST,"
        "BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION",
    ),
    _sig("conditions", "START,PATIENT,ENCOUNTER,CODE", "START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION"),
    _sig(
        "medications",
        "START,PATIENT,ENCOUNTER,CODE,DISPENSES",
        "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,COST,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,"
        "REASONCODE,REASONDESCRIPTION",
    ),
    _sig(
        "procedures",
        "PATIENT,ENCOUNTER,CODE",
        "START,STOP,DATE,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION,COST,BASE_COST,REASONCODE,REASONDESCRIPTION",
    ),
    _sig(
        "observations",
        "DATE,PATIENT,CODE,VALUE",
        "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
    ),
    _sig(
        "allergies",
        "START,PATIENT,ENCOUNTER,CODE",
        "START,STOP,PATIENT,ENCOUNTER,CODE,SYSTEM,DESCRIPTION,TYPE,CATEGORY,REACTION1,DESCRIPTION1,SEVERITY1,"
        "REACTION2,DESCRIPTION2,SEVERITY2",
    ),
    _sig(
        "careplans",
        "ID,START,PATIENT,ENCOUNTER,CODE",
        "ID,START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,REASONCODE,REASONDESCRIPTION",
    ),
    _sig("immunizations", "DATE,PATIENT,ENCOUNTER,CODE", "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,COST,BASE_COST"),
    _sig(
        "imaging_studies",
        "ID,PATIENT,MODALITY_CODE",
        "ID,DATE,PATIENT,ENCOUNTER,SERIES_UID,BODYSITE_CODE,BODYSITE_DESCRIPTION,MODALITY_CODE,"
        "MODALITY_DESCRIPTION,INSTANCE_UID,SOP_CODE,SOP_DESCRIPTION,PROCEDURE_CODE",
    ),
    _sig("devices", "START,PATIENT,CODE,UDI", "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,UDI"),
    _sig("supplies", "DATE,PATIENT,CODE,QUANTITY", "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,QUANTITY"),
    _sig(
        "organizations",
        "ID,NAME,ADDRESS,PHONE",
        "ID,NAME,ADDRESS,CITY,STATE,ZIP,LAT,LON,PHONE,REVENUE,UTILIZATION",
    ),
    _sig(
        "providers",
        "ID,ORGANIZATION,NAME,SPECIALITY",
        "ID,ORGANIZATION,NAME,GENDER,SPECIALITY,ADDRESS,CITY,STATE,ZIP,LAT,LON,UTILIZATION,ENCOUNTERS,PROCEDURES",
    ),
    _sig(
        "payers",
        "ID,NAME,AMOUNT_COVERED",
        "ID,NAME,OWNERSHIP,ADDRESS,CITY,STATE_HEADQUARTERED,ZIP,PHONE,AMOUNT_COVERED,AMOUNT_UNCOVERED,REVENUE,"
        "COVERED_ENCOUNTERS,UNCOVERED_ENCOUNTERS,COVERED_MEDICATIONS,UNCOVERED_MEDICATIONS,COVERED_PROCEDURES,"
        "UNCOVERED_PROCEDURES,COVERED_IMMUNIZATIONS,UNCOVERED_IMMUNIZATIONS,UNIQUE_CUSTOMERS,QOLS_AVG,"
        "MEMBER_MONTHS",
    ),
    _sig(
        "payer_transitions",
        "PATIENT,START_YEAR,PAYER",
        "PATIENT,MEMBERID,START_YEAR,END_YEAR,PAYER,SECONDARY_PAYER,OWNERSHIP,OWNERNAME",
    ),
    _sig(
        "claims",
        "ID,PATIENTID,PROVIDERID,PRIMARYPATIENTINSURANCEID",
        "ID,PATIENTID,PROVIDERID,PRIMARYPATIENTINSURANCEID,SECONDARYPATIENTINSURANCEID,DEPARTMENTID,"
        "PATIENTDEPARTMENTID,DIAGNOSIS1,DIAGNOSIS2,DIAGNOSIS3,DIAGNOSIS4,DIAGNOSIS5,DIAGNOSIS6,DIAGNOSIS7,"
        "DIAGNOSIS8,REFERRINGPROVIDERID,APPOINTMENTID,CURRENTILLNESSDATE,SERVICEDATE,SUPERVISINGPROVIDERID,"
        "STATUS1,STATUS2,STATUSP,OUTSTANDING1,OUTSTANDING2,OUTSTANDINGP,LASTBILLEDDATE1,LASTBILLEDDATE2,"
        "LASTBILLEDDATEP,HEALTHCARECLAIMTYPEID1,HEALTHCARECLAIMTYPEID2",
    ),
    _sig(
        "claims_transactions",
        "ID,CLAIMID,CHARGEID,PATIENTID",
        "ID,CLAIMID,CHARGEID,PATIENTID,TYPE,AMOUNT,METHOD,FROMDATE,TODATE,PLACEOFSERVICE,PROCEDURECODE,"
        "MODIFIER1,MODIFIER2,DIAGNOSISREF1,DIAGNOSISREF2,DIAGNOSISREF3,DIAGNOSISREF4,UNITS,DEPARTMENTID,NOTES,"
        "UNITAMOUNT,TRANSFEROUTID,TRANSFERTYPE,PAYMENTS,ADJUSTMENTS,TRANSFERS,OUTSTANDING,APPOINTMENTID,"
        "LINENOTE,PATIENTINSURANCEID,FEESCHEDULEID,PROVIDERID,SUPERVISINGPROVIDERID",
    ),
)
_BY_NAME = {t.name: t for t in TABLES}
MIN_SIMILARITY = 0.5  # Jaccard(header, known columns) below which a header is not called a known table

# Typed entities: (column as written in bronze, kind). Column names are Synthea's own (the contract).
ENTITY_COLUMNS: dict[str, tuple[tuple[str, ColumnKind], ...]] = {
    "synthea_patients": (
        ("Id", "string"), ("BIRTHDATE", "date"), ("DEATHDATE", "date"), ("SSN", "string"),
        ("DRIVERS", "string"), ("PASSPORT", "string"), ("PREFIX", "string"), ("FIRST", "string"),
        ("MIDDLE", "string"), ("LAST", "string"), ("SUFFIX", "string"), ("MAIDEN", "string"),
        ("MARITAL", "string"), ("RACE", "string"), ("ETHNICITY", "string"), ("GENDER", "string"),
        ("BIRTHPLACE", "string"), ("ADDRESS", "string"), ("CITY", "string"), ("STATE", "string"),
        ("COUNTY", "string"), ("FIPS", "string"), ("ZIP", "string"), ("LAT", "double"), ("LON", "double"),
        ("HEALTHCARE_EXPENSES", "decimal"), ("HEALTHCARE_COVERAGE", "decimal"), ("INCOME", "long"),
    ),
    "synthea_encounters": (
        ("Id", "string"), ("START", "timestamp"), ("STOP", "timestamp"), ("PATIENT", "string"),
        ("ORGANIZATION", "string"), ("PROVIDER", "string"), ("PAYER", "string"), ("ENCOUNTERCLASS", "string"),
        ("CODE", "string"), ("DESCRIPTION", "string"), ("BASE_ENCOUNTER_COST", "decimal"),
        ("TOTAL_CLAIM_COST", "decimal"), ("PAYER_COVERAGE", "decimal"), ("REASONCODE", "string"),
        ("REASONDESCRIPTION", "string"),
    ),
    "synthea_conditions": (
        ("START", "date"), ("STOP", "date"), ("PATIENT", "string"), ("ENCOUNTER", "string"),
        ("SYSTEM", "string"), ("CODE", "string"), ("DESCRIPTION", "string"),
    ),
    "synthea_medications": (
        ("START", "timestamp"), ("STOP", "timestamp"), ("PATIENT", "string"), ("PAYER", "string"),
        ("ENCOUNTER", "string"), ("CODE", "string"), ("DESCRIPTION", "string"), ("BASE_COST", "decimal"),
        ("PAYER_COVERAGE", "decimal"), ("DISPENSES", "int"), ("TOTALCOST", "decimal"),
        ("REASONCODE", "string"), ("REASONDESCRIPTION", "string"),
    ),
    "synthea_procedures": (
        ("START", "timestamp"), ("STOP", "timestamp"), ("PATIENT", "string"), ("ENCOUNTER", "string"),
        ("SYSTEM", "string"), ("CODE", "string"), ("DESCRIPTION", "string"), ("BASE_COST", "decimal"),
        ("REASONCODE", "string"), ("REASONDESCRIPTION", "string"),
    ),
    "synthea_observations": (
        ("DATE", "timestamp"), ("PATIENT", "string"), ("ENCOUNTER", "string"), ("CATEGORY", "string"),
        ("CODE", "string"), ("DESCRIPTION", "string"), ("VALUE", "string"), ("UNITS", "string"),
        ("TYPE", "string"),
    ),
}  # fmt: skip
TABLE_ENTITY = {
    "patients": "synthea_patients",
    "encounters": "synthea_encounters",
    "conditions": "synthea_conditions",
    "medications": "synthea_medications",
    "procedures": "synthea_procedures",
    "observations": "synthea_observations",
}
ENTITIES = (*ENTITY_COLUMNS, OTHER_ENTITY)
# Older releases' names for the same column: target column -> header names tried after the column itself.
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "synthea_encounters": {"BASE_ENCOUNTER_COST": ("COST",)},
    "synthea_medications": {"BASE_COST": ("COST",)},
    "synthea_procedures": {"START": ("DATE",), "BASE_COST": ("COST",)},
}
IDENTIFIER = {entity: "PATIENT" for entity in ENTITY_COLUMNS} | {"synthea_patients": "ID"}

_CSV_OPTIONS = {
    "mode": "PERMISSIVE",
    "escape": '"',  # RFC 4180 doubled quotes; a backslash is an ordinary character
    "columnNameOfCorruptRecord": "_corrupt_record",  # set when the token count differs from the schema
}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what Hadoop's line reader splits on
_CHUNK_SUFFIX = re.compile(r"[-_.]?\d+$")
_ISO_DATE_PREFIX = r"^\d{4}-\d{2}-\d{2}"  # rejects the sign/5-digit years Spark's 'yyyy' would accept
_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"
# Joining the lines of a quoted field (join_quoted_line_breaks): a record may span at most this many lines, and
# at most this many lines of a batch may have an odd number of quotes; beyond either, lines are not joined.
MAX_RECORD_LINES = 100
MAX_ODD_LINES = 200_000
# One RFC 4180 record: quoted fields with quotes doubled, unquoted fields without quotes or line breaks. Runs and
# repetitions are possessive so that Java's matcher neither backtracks nor recurses per character; so the quoted
# alternative comes first (an unquoted field may be empty, and a possessive loop would keep that wrong choice).
_FIELD = r'(?:"(?:[^"]++|"")*+"|[^",\r\n]*+)'
_RFC4180_RECORD = rf"^{_FIELD}(?:,{_FIELD})*+$"


# ---- driver side: headers ------------------------------------------------------------------------------------


def read_header(head: bytes) -> tuple[int, tuple[str, ...]] | None:
    """``(1-based line number, column names)`` of the first non-blank line of a file's head, or None."""
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if line.strip(" ") != "":  # the line reader drops lines that Spark's trim() makes empty
            return number, tuple(next(csv.reader([line])))
    return None


def _table_stem(file_name: str) -> str:
    stem = file_name.rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".csv", ".txt"):
        stem = stem.removesuffix(suffix)
    return _CHUNK_SUFFIX.sub("", stem)


def recognise_table(names: Sequence[str], file_name: str = "") -> str | None:
    """The Synthea table a header belongs to, ``"unknown"`` for a Synthea-like header, None if not Synthea.

    A header is a table's when it has the table's core columns and is close to the table's known columns
    (Jaccard >= 0.5), so added or dropped columns in a new release still match. Some releases' headers are
    identical for two tables (v2 allergies == conditions), so a file name like ``allergies-00001.csv`` picks the
    table when its core columns are present; otherwise the closest table wins.
    """
    keys = frozenset(n.strip().upper() for n in names)
    if len(keys) < 2 or keys == frozenset(TIME_PARAMETER_VALUE):
        return None
    hinted = _BY_NAME.get(_table_stem(file_name))
    if hinted is not None and hinted.core <= keys:
        return hinted.name
    best, best_score = None, MIN_SIMILARITY
    for table in TABLES:
        if table.core <= keys:
            score = len(keys & table.known) / len(keys | table.known)
            if score > best_score or (score == best_score and best is None):
                best, best_score = table.name, score
    if best is not None:
        return best
    if {"PATIENT", "ENCOUNTER"} <= keys or {"ID", "BIRTHDATE"} <= keys:
        return UNKNOWN_TABLE
    return None


def sniff(head: bytes, file_name: str) -> bool:
    """True when the first line is a Synthea CSV header (a known table's, or one with Synthea's key columns)."""
    header = read_header(head)
    return header is not None and recognise_table(header[1], file_name) is not None


def header_lines(source: SourceFile) -> int:
    """Lines of ``source`` that are not records: its header line (if the file has any content)."""
    return 1 if read_header(source.head) is not None else 0


@dataclass(frozen=True)
class _Header:
    """One distinct (header, table) of the batch; ``hid`` identifies it in column expressions."""

    hid: int
    names: tuple[str, ...]
    table: str  # a known table, "unknown" (Synthea-like), or "" (not Synthea: quarantined)

    @property
    def entity(self) -> str:
        return TABLE_ENTITY.get(self.table, OTHER_ENTITY)

    def index(self, upper_name: str) -> int | None:
        """Position of the first column with this (upper-case) name."""
        for i, name in enumerate(self.names):
            if name.strip().upper() == upper_name:
                return i
        return None

    @property
    def ddl(self) -> str:
        return ", ".join([f"`_c{i}` STRING" for i in range(len(self.names))] + ["`_corrupt_record` STRING"])


def _plan(files: Sequence[SourceFile]) -> tuple[list[_Header], dict[str, tuple[int, int]]]:
    """Distinct headers and, per file path, ``(hid, header line number)``."""
    headers: dict[tuple[tuple[str, ...], str], _Header] = {}
    by_file: dict[str, tuple[int, int]] = {}
    for source in files:
        found = read_header(source.head)
        if found is None:
            continue  # no header: every line is quarantined as csv_unknown_table
        line, names = found
        table = recognise_table(names, source.path) or ""
        key = (names, table)
        if key not in headers:
            headers[key] = _Header(len(headers), names, table)
        by_file[source.path] = (headers[key].hid, line)
    log.debug("synthea-csv: %d file(s), %d distinct header(s)", len(files), len(headers))
    return list(headers.values()), by_file


def _with_file_header(lines: DataFrame, by_file: Mapping[str, tuple[int, int]]) -> DataFrame:
    """Add ``_hid, _header_line`` of each line's file (null for a file without a header).

    A broadcast join rather than a literal map: a batch may hold thousands of files, and a map lookup scans
    its keys linearly for every line.
    """
    file_headers = lines.sparkSession.createDataFrame(
        [(path, hid, line) for path, (hid, line) in by_file.items()],
        "_source_file string, _hid int, _header_line int",
    )
    return lines.join(sf.broadcast(file_headers), "_source_file", "left")


# ---- column conversions ----------------------------------------------------------------------------------


def _iso_timestamp(value: Column) -> Column:
    """ISO-8601 with offset (Synthea: ``2019-02-17T05:07:38Z``) to a UTC timestamp; a bare date is midnight UTC
    (older releases wrote dates in some timestamp columns). Null when not a real instant (e.g. Feb 30)."""
    shaped = value.rlike(_ISO_DATE_PREFIX)
    return sf.when(
        shaped,
        sf.coalesce(
            sf.try_to_timestamp(value, sf.lit(_TIMESTAMP_PATTERN)),
            sf.when(sf.length(value) == 10, sf.try_to_timestamp(value, sf.lit("yyyy-MM-dd"))),
        ),
    )


def _iso_date(value: Column) -> Column:
    """``YYYY-MM-DD`` (strict: 1980-02-30 is null); a full ISO timestamp gives its UTC date."""
    return sf.when(
        value.rlike(_ISO_DATE_PREFIX),
        sf.coalesce(
            sf.try_to_date(value, "yyyy-MM-dd"),
            sf.to_date(sf.try_to_timestamp(value, sf.lit(_TIMESTAMP_PATTERN))),
        ),
    )


_CONVERT: dict[ColumnKind, Callable[[Column], Column]] = {
    "string": lambda c: c,
    "date": _iso_date,
    "timestamp": _iso_timestamp,
    "decimal": lambda c: c.try_cast("decimal(18,2)"),
    "double": lambda c: c.try_cast("double"),
    "int": lambda c: c.try_cast("int"),
    "long": lambda c: c.try_cast("long"),
}


def _blank(value: Column) -> Column:
    return value.isNull() | (sf.trim(value) == "")


def _unbalanced_quotes(line: Column) -> Column:
    """An odd number of ``"`` in the line. RFC 4180 doubles a quote inside a quoted field, so a whole record always
    holds an even number: an odd one is a record cut by a line break inside a quoted field (or a broken quote).
    Spark's ``from_csv`` would read the first part as a complete record with a truncated last field."""
    return ((sf.length(line) - sf.length(sf.replace(line, sf.lit('"'), sf.lit("")))) % 2) == 1


# ---- executor side: joining the lines of a quoted field ---------------------------------------------------------


def join_quoted_line_breaks(lines: DataFrame, files: Sequence[SourceFile]) -> DataFrame:
    """Join the lines of each record whose quoted field holds line breaks into one record (RFC 4180).

    A record that spans lines starts and ends on a line with an odd number of ``"`` and has only even lines
    between. In each file (below its header), the odd lines are paired in order (1st with 2nd, 3rd with 4th, ...);
    a pair becomes one record when it spans at most :data:`MAX_RECORD_LINES` lines and the joined text is one
    well-formed RFC 4180 record (every field with a quote or line break fully quoted) with the field count of the
    file's header. Its ``_raw`` is its lines joined by ``\\n`` (with the blank lines the
    reader dropped put back), its position that of its first line, and ``_record_lines`` the number of non-blank
    lines it covers. A pair that fails either test is not joined: both odd lines stay single records (and are
    quarantined as ``csv_unbalanced_quotes``), the lines between them are parsed on their own, so a stray quote
    cannot swallow the rest of a file. The pairing is greedy: after an unjoined stray quote, later pairs may be
    off by one and fail too; nothing is lost either way.

    The lines' quote parity is computed in one Spark job; without odd lines (the usual case) the input is
    returned as it is. With more than :data:`MAX_ODD_LINES` odd lines in the batch nothing is joined (logged).

    Args:
        lines: ``_source_file, _record_position, _raw``, one row per non-blank line (header lines included).
        files: the planned files; headers come from their ``head`` on the driver.

    Returns:
        ``_source_file, _record_position, _raw, _record_lines``, one row per record; or ``lines`` unchanged.
    """
    headers, by_file = _plan(files)
    framed = lines.transform(_with_file_header, by_file)
    body = sf.col("_hid").isNotNull() & (sf.col("_record_position") > sf.col("_header_line"))
    odd = framed.where(body & _unbalanced_quotes(sf.col("_raw"))).select("_source_file", "_record_position", "_hid")
    n_odd = odd.count()
    if n_odd == 0:
        return lines
    if n_odd > MAX_ODD_LINES:
        log.warning("synthea-csv: %d lines with an odd number of quotes (limit %d): no lines joined", n_odd,
                    MAX_ODD_LINES)
        return lines
    by_line = Window.partitionBy("_source_file").orderBy("_record_position")
    pairs = (
        odd.withColumn("_pair", sf.floor((sf.row_number().over(by_line) - 1) / 2))
        .groupBy("_source_file", "_pair")
        .agg(
            sf.min("_record_position").alias("_start"),
            sf.max("_record_position").alias("_end"),
            sf.count(sf.lit(1)).alias("_n"),
        )
        .where((sf.col("_n") == 2) & (sf.col("_end") - sf.col("_start") < MAX_RECORD_LINES))
        .select("_source_file", "_start", "_end")
    )
    members = _span_join(framed, pairs, "inner")
    gap = sf.col("_record_position") - sf.lag("_record_position").over(
        Window.partitionBy("_source_file", "_start").orderBy("_record_position")
    )
    piece = sf.concat(sf.array_join(sf.array_repeat(sf.lit("\n"), sf.coalesce(gap, sf.lit(0)).cast("int")), ""),
                      sf.col("_raw"))
    joined = (
        members.withColumn("_piece", piece)
        .groupBy("_source_file", "_start", "_end")
        .agg(
            sf.first("_hid").alias("_hid"),
            sf.array_join(
                sf.transform(
                    sf.array_sort(sf.collect_list(sf.struct("_record_position", "_piece"))), lambda x: x["_piece"]
                ),
                "",
            ).alias("_raw"),
            sf.count(sf.lit(1)).cast("int").alias(RECORD_LINES),
        )
    )
    text = _valid_text(sf.col("_raw"))
    fits = text.rlike(_RFC4180_RECORD) & sf.coalesce(
        *[
            sf.when(sf.col("_hid") == h.hid, sf.from_csv(text, h.ddl, _CSV_OPTIONS)["_corrupt_record"].isNull())
            for h in headers
        ],
        sf.lit(False),
    )
    accepted = joined.where(fits)
    kept = _span_join(lines, accepted.select("_source_file", "_start", "_end"), "left_anti")
    return kept.withColumn(RECORD_LINES, sf.lit(1)).unionByName(
        accepted.select("_source_file", sf.col("_start").alias("_record_position"), "_raw", RECORD_LINES)
    )


def _span_join(lines: DataFrame, spans: DataFrame, how: str) -> DataFrame:
    """``lines`` joined with a small ``_source_file, _start, _end`` table (broadcast) on the line being inside a
    span: ``inner`` gives each line in a span with its ``_start, _end``; ``left_anti`` the lines in no span."""
    inside = [
        sf.col("l._source_file") == sf.col("s._source_file"),
        sf.col("l._record_position").between(sf.col("s._start"), sf.col("s._end")),
    ]
    joined = lines.alias("l").join(sf.broadcast(spans.alias("s")), inside, how)
    return joined.select("l.*", "s._start", "s._end") if how == "inner" else joined.select("l.*")


def _valid_text(raw: Column) -> Column:
    """The record's text with invalid UTF-8 replaced (its quarantine reason is decided on the raw bytes)."""
    return sf.when(sf.is_valid_utf8(raw), raw).otherwise(sf.make_valid_utf8(raw))


# ---- executor side: parsing ---------------------------------------------------------------------------------


def _with_parsed(records: DataFrame, headers: Sequence[_Header], *, guard: bool = True) -> DataFrame:
    """One struct column ``_p<hid>`` per header: the line parsed with that header's all-string schema (null
    on other headers' rows unless ``guard`` is off), in its own projection so each line is tokenised once."""
    parsed = []
    for h in headers:
        fields = sf.from_csv(sf.col("_text"), h.ddl, _CSV_OPTIONS)
        parsed.append((sf.when(sf.col("_hid") == h.hid, fields) if guard else fields).alias(f"_p{h.hid}"))
    return records.select("_source_file", "_record_position", "_raw", *_carried(records), "_hid", *parsed)


def _carried(records: DataFrame) -> list[str]:
    """``[_record_lines]`` when the lines were joined (:func:`join_quoted_line_breaks`), else nothing."""
    return [RECORD_LINES] if RECORD_LINES in records.columns else []


def _field(headers: Sequence[_Header], names: Sequence[str]) -> Column:
    """The raw string of the first of ``names`` (upper-case) each header has; null where none."""
    picks = []
    for h in headers:
        index = next((i for i in (h.index(n) for n in names) if i is not None), None)
        if index is not None:
            picks.append(sf.col(f"_p{h.hid}._c{index}"))
    if not picks:
        return sf.lit(None).cast("string")
    return picks[0] if len(picks) == 1 else sf.coalesce(*picks)


def _field_count_wrong(headers: Sequence[_Header]) -> Column:
    return sf.coalesce(*[sf.col(f"_p{h.hid}._corrupt_record") for h in headers], sf.lit(None).cast("string"))


def _typed_entity(records: DataFrame, entity: str, headers: Sequence[_Header]) -> DataFrame:
    columns = ENTITY_COLUMNS[entity]
    aliases = ALIASES.get(entity, {})
    parsed = records.transform(_with_parsed, headers, guard=len(headers) > 1)
    strings = parsed.select(
        "_source_file",
        "_record_position",
        "_raw",
        *_carried(parsed),
        _field_count_wrong(headers).isNotNull().alias("_bad_count"),
        *[_field(headers, (name.upper(), *aliases.get(name, ()))).alias(f"_s_{name}") for name, _ in columns],
    )
    typed = [_CONVERT[kind](sf.col(f"_s_{name}")).alias(name) for name, kind in columns]
    checks: list[tuple[Column, str]] = [
        (~sf.is_valid_utf8("_raw"), "invalid_encoding"),
        (_unbalanced_quotes(sf.col("_raw")), "csv_unbalanced_quotes"),
        (sf.col("_bad_count"), "csv_field_count"),
        (_blank(sf.col(f"_s_{_written(entity, IDENTIFIER[entity])}")), "missing_identifier"),
    ]
    for name, kind in columns:
        if kind in ("date", "timestamp"):
            checks.append((bad_cast(sf.col(f"_s_{name}"), sf.col(name)), f"invalid_date:{name}"))
    for name, kind in columns:
        if kind in ("decimal", "double", "int", "long"):
            checks.append((bad_cast(sf.col(f"_s_{name}"), sf.col(name)), f"invalid_number:{name}"))
    extra: list[Column] = []
    if entity == "synthea_observations":
        numeric = sf.lower(sf.trim(sf.col("_s_TYPE"))) == "numeric"
        extra.append(sf.when(numeric, sf.col("_s_VALUE").try_cast("double")).alias("VALUE_NUMERIC"))
        checks.append((numeric & bad_cast(sf.col("_s_VALUE"), sf.col("VALUE_NUMERIC")), "invalid_number:VALUE"))
    converted = strings.select("*", *typed, *extra)
    output = [name for name, _ in columns] + ["VALUE_NUMERIC" for _ in extra]
    return converted.select(
        "_source_file", "_record_position", "_raw", *output, *_carried(converted),
        quarantine_when(checks).alias("_quarantine_reason"),
    )


def _written(entity: str, upper_name: str) -> str:
    return next(name for name, _ in ENTITY_COLUMNS[entity] if name.upper() == upper_name)


def _other_entity(records: DataFrame, headers: Sequence[_Header]) -> DataFrame:
    parsed = records.transform(_with_parsed, headers)
    tables, maps, synthea_like = [], [], []
    for h in headers:
        keys = _unique_keys(h.names)
        values = [sf.col(f"_p{h.hid}._c{i}") for i in range(len(h.names))]
        maps.append(
            sf.when(sf.col("_hid") == h.hid, sf.map_from_arrays(sf.array(*map(sf.lit, keys)), sf.array(*values)))
        )
        tables.append(sf.when(sf.col("_hid") == h.hid, sf.lit(h.table or UNKNOWN_TABLE)))
        if h.table:
            synthea_like.append(h.hid)
    no_map = sf.lit(None).cast("map<string,string>")
    with_patient = [h for h in headers if h.index("PATIENT") is not None]
    patient = _field(with_patient, ("PATIENT",))
    checks: list[tuple[Column, str]] = [
        (~sf.is_valid_utf8("_raw"), "invalid_encoding"),
        (_unbalanced_quotes(sf.col("_raw")), "csv_unbalanced_quotes"),
        (~sf.coalesce(sf.col("_hid").isin(synthea_like), sf.lit(False)), "csv_unknown_table"),
        (_field_count_wrong(headers).isNotNull() if headers else sf.lit(False), "csv_field_count"),
        (sf.col("_hid").isin([h.hid for h in with_patient]) & _blank(patient), "missing_identifier"),
    ]
    return parsed.select(
        "_source_file",
        "_record_position",
        "_raw",
        sf.coalesce(*tables, sf.lit(UNKNOWN_TABLE)).alias("synthea_table"),
        sf.coalesce(*maps, no_map).alias("fields"),
        *_carried(parsed),
        quarantine_when(checks).alias("_quarantine_reason"),
    )


def _unique_keys(names: Sequence[str]) -> list[str]:
    """Header names as map keys; a repeated name gets ``_2``, ``_3``... (map keys must be unique)."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return keys


def parse_synthea_csv(inputs: DataFrame, files: Sequence[SourceFile]) -> dict[str, DataFrame]:
    """Parse Synthea CSV lines into the typed Synthea entities and ``synthea_other``.

    Args:
        inputs: lines of Synthea CSV files: ``_source_file, _record_position, _raw`` (header lines included),
            optionally ``_record_lines`` (records joined by :func:`join_quoted_line_breaks`), carried through.
        files: the planned files; each file's header is read from its ``head`` on the driver.

    Returns:
        ``{entity: rows}`` for each typed entity some file's header maps to, plus always ``synthea_other``
        (other tables, and files whose header is missing or not Synthea's). Columns:
        ``_source_file, _record_position, _raw``, the entity's columns (``ENTITY_COLUMNS``; observations add
        ``VALUE_NUMERIC double``; ``synthea_other``: ``synthea_table string, fields map<string,string>``),
        ``_quarantine_reason``. Each file's header line yields no row; every other line exactly one.
    """
    headers, by_file = _plan(files)
    text = _valid_text(sf.col("_raw"))
    records = (
        inputs.transform(_with_file_header, by_file)
        .where(sf.col("_hid").isNull() | (sf.col("_record_position") > sf.col("_header_line")))
        .select(
            "_source_file",
            "_record_position",
            "_raw",
            *_carried(inputs),
            "_hid",
            sf.rtrim(text, sf.lit("\r")).alias("_text"),  # a CR left by a CRLF file read with a LF separator
        )
    )
    outputs: dict[str, DataFrame] = {}
    for entity in ENTITY_COLUMNS:
        own = [h for h in headers if h.entity == entity]
        if own:
            rows = records.where(sf.col("_hid").isin([h.hid for h in own]))
            outputs[entity] = _typed_entity(rows, entity, own)
    others = [h for h in headers if h.entity == OTHER_ENTITY]
    rows = records.where(sf.col("_hid").isNull() | sf.col("_hid").isin([h.hid for h in others]))
    outputs[OTHER_ENTITY] = _other_entity(rows, others)
    return outputs


def parse_synthea_csv_lines(lines: DataFrame, files: Sequence[SourceFile]) -> dict[str, DataFrame]:
    """:func:`parse_synthea_csv` after :func:`join_quoted_line_breaks`: the whole format, line to entity."""
    return parse_synthea_csv(join_quoted_line_breaks(lines, files), files)


FORMAT = SourceFormat(
    name="synthea-csv",
    read_mode="lines",
    sniff=sniff,
    parse=parse_synthea_csv_lines,
    prepare=join_quoted_line_breaks,
    parse_prepared=parse_synthea_csv,
    entities=ENTITIES,
    description="Synthea CSV export (v2.x/v3.x headers): 6 typed tables + synthea_other",
    header_lines=header_lines,
)
