"""``medspark silver``: bronze → OMOP CDM v5.4 silver, incrementally, gated by Great Expectations.

One run, in order (every step's reads and writes are in this file; the transforms are pure):

1. Plan: the bronze batches committed since the last silver run (``ops/silver_runs``); nothing new → no-op.
2. Stage each new bronze row into person / visit / event / claim / provider / care-site records
   (``medspark.silver.sources``); pseudonymise every identifier (keyed HMAC, ``medspark.privacy``).
3. Resolve persons and visits: connected components of the identifier graph against the persisted crosswalks
   ``silver/person_identifier`` and ``silver/visit_identifier`` (``medspark.silver.resolve``).
4. Build candidate rows for the 14 CDM tables (``medspark.silver.build``); map codes and units through the
   vocabulary; collapse records of the same fact.
5. Gate: every table's candidates through its expectation suite (``conf/quality``). Failing rows go to
   ``quarantine/silver_<table>``; a table over its threshold stops the run here, before any silver write.
6. Write: crosswalks, quarantine, MERGE upserts on the CDM keys, ``person_history`` (type 2), observation periods
   of the affected persons, ``ops/dq_results``, ``ops/run_log``; commit the plan.

Crash safety: appends carry ``txnAppId``/``txnVersion = run_seq``; MERGEs are keyed and idempotent; a replayed run
recomputes the same rows from the same bronze range, so a killed run followed by a re-run equals one clean run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial, reduce

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import StructType

from medspark.config.model import MedsparkConfig
from medspark.io.delta import append_idempotent, table_exists
from medspark.io.runlog import RunRecord, TableCounts, new_run_id, write_run
from medspark.logs import Progress
from medspark.privacy.keys import load_key
from medspark.privacy.pseudonym import pseudonymise
from medspark.privacy.reid import build_reidentification
from medspark.silver import build, omop
from medspark.silver.resolve import resolve
from medspark.silver.runs import SilverPlan, SilverRuns, committed_bronze_batch

log = logging.getLogger(__name__)

HISTORY_TABLE = "person_history"
PERSON_SOURCES = "_person_source"  # work table: every person record's attributes (no direct identifiers)
KINDS = ("person", "visit", "event", "claim", "provider", "care_site")


@dataclass
class SilverResult:
    """What one silver run did."""

    run_id: str
    plan: SilverPlan | None
    tables: list[TableCounts] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)
    merged_persons: int = 0

    def summary(self) -> str:
        """One screen for the CLI."""
        if self.plan is None:
            return f"silver run {self.run_id}: no new bronze batches, nothing to do"
        lines = [f"silver run {self.run_id}: run {self.plan.run_seq}, bronze batches "
                 f"{self.plan.from_batch + 1}..{self.plan.to_batch}{' (replayed)' if self.plan.replay else ''}",
                 f"{'table':<24}{'read':>10}{'written':>10}{'quarantined':>13}{'unmapped':>10}"]
        for t in self.tables:
            lines.append(f"{t.table:<24}{t.rows_read:>10,}{t.rows_written:>10,}{t.rows_quarantined:>13,}"
                         f"{self.unmapped.get(t.table, 0):>10,}")
        if self.merged_persons:
            lines.append(f"{self.merged_persons} previously separate person(s) merged by new identifiers")
        return "\n".join(lines)


def _run_date(config: MedsparkConfig) -> dt.date:
    """The date the quality checks use: configured (reproducible results), else today's date in UTC."""
    return config.silver.run_date or dt.datetime.now(dt.UTC).date()


# --- staging ------------------------------------------------------------------------------------------------------


def _read_bronze(spark: SparkSession, config: MedsparkConfig, plan: SilverPlan) -> dict[str, DataFrame]:
    from medspark.silver.sources import STAGERS

    frames = {}
    for entity in STAGERS:
        path = config.table_path("bronze", entity)
        if table_exists(spark, path):
            frames[entity] = spark.read.format("delta").load(path).where(
                (sf.col("_batch_id") > plan.from_batch) & (sf.col("_batch_id") <= plan.to_batch))
    return frames


def _stage(bronze: dict[str, DataFrame]) -> dict[str, DataFrame | None]:
    """Union of every source's staged records per kind (``_unstaged``: bronze rows no kind takes)."""
    from medspark.silver.sources import STAGERS

    parts: dict[str, list[DataFrame]] = {k: [] for k in (*KINDS, "_unstaged")}
    for entity, rows in bronze.items():
        for kind, staged in STAGERS[entity](rows).items():
            parts[kind].append(staged)
    return {k: reduce(lambda a, b: a.unionByName(b), v) if v else None for k, v in parts.items()}


def _canonical_system(system: sf.Column, config: MedsparkConfig) -> sf.Column:
    out = system
    for alias, target in config.silver.matching.equivalent_systems.items():
        out = sf.when(system == alias, sf.lit(target)).otherwise(out)
    return out


def _canonical_identifiers(column: str, config: MedsparkConfig) -> sf.Column:
    """Identifiers with canonical systems and blank values dropped (still in clear)."""
    return sf.transform(
        sf.filter(sf.col(column), lambda i: i["value"].isNotNull() & (sf.trim(i["value"]) != "")),
        lambda i: sf.struct(_canonical_system(i["system"], config).alias("system"), sf.trim(i["value"]).alias("value")))


def _pseudonymise_identifiers(column: str, key: bytes, config: MedsparkConfig) -> sf.Column:
    """Identifiers with systems made canonical and values replaced by their keyed pseudonyms."""
    return sf.transform(
        _canonical_identifiers(column, config),
        lambda i: sf.struct(i["system"].alias("system"),
                            pseudonymise(i["value"], key, domain=i["system"]).alias("value")))


def _nodes(column: str, link_systems: tuple[str, ...]) -> sf.Column:
    """The linking identifier nodes (``system|pseudonym``) of an identifier array."""
    linking = sf.filter(sf.col(column), lambda i: i["system"].isin(*link_systems))
    return sf.transform(linking, lambda i: sf.concat_ws("|", i["system"], i["value"]))


def _lookup(records: DataFrame, nodes_col: str, crosswalk: DataFrame, id_name: str, key_col: str) -> DataFrame:
    """Adds ``id_name``: the smallest subject id any of the record's nodes has in ``crosswalk`` (null if none)."""
    exploded = records.select(key_col, sf.explode(nodes_col).alias("node"))
    found = exploded.join(crosswalk, "node").groupBy(key_col).agg(sf.min("subject_id").alias(id_name))
    return records.join(found, key_col, "left")


# --- the run --------------------------------------------------------------------------------------------------------


def build_silver(spark: SparkSession, config: MedsparkConfig) -> SilverResult:
    """Run one incremental silver build; see the module docstring."""
    from medspark.quality import load_suites

    run_id = new_run_id("silver")
    started = dt.datetime.now(dt.UTC)
    # Everything that can be wrong with the configuration is checked before anything is read or written.
    key = load_key(key_file=config.silver.privacy.key_file)
    suites = load_suites(config.silver.quality_dir)
    run_date = _run_date(config)

    plan = SilverRuns(spark, config).next_plan(run_id, committed_bronze_batch(spark, config))
    result = SilverResult(run_id, plan)
    record = RunRecord(run_id=run_id, job="silver", started_at=started)
    if plan is None:
        record.status = "succeeded"
        record.message = "no new bronze batches"
        write_run(spark, config, record)
        return result
    progress = Progress(f"silver run {plan.run_seq}", 6)
    try:
        _build(spark, config, plan, key, suites, run_date, result, progress)
    except Exception as exc:
        record.status = "failed"
        record.message = type(exc).__name__
        record.tables = result.tables
        write_run(spark, config, record)
        raise
    record.tables = result.tables
    record.status = "succeeded"
    record.message = "unmapped " + ", ".join(f"{t}={n}" for t, n in sorted(result.unmapped.items()) if n) \
        if any(result.unmapped.values()) else None
    write_run(spark, config, record)
    SilverRuns(spark, config).commit(plan)
    progress.finish()
    return result


def _empty(spark: SparkSession, ddl: str | StructType) -> DataFrame:
    return spark.createDataFrame([], ddl)


def _read_or_empty(spark: SparkSession, path: str, ddl: str | StructType) -> DataFrame:
    return spark.read.format("delta").load(path) if table_exists(spark, path) else _empty(spark, ddl)


def _record_key(columns: list[str]) -> sf.Column:
    """A key per staged record: its bronze record and a hash of its content (a bronze record may stage several,
    e.g. the OBX segments of one message; identical ones share a key and resolve identically)."""
    content = sf.xxhash64(sf.to_json(sf.struct(*columns))).cast("string")
    return sf.concat_ws(":", "_source", "_source_record_hash", content)


def _prepare(records: DataFrame, key: bytes, config: MedsparkConfig, id_columns: dict[str, str],
             keep_clear: str | None = None) -> DataFrame:
    """Pseudonymise the identifier arrays named in ``id_columns`` (array column → node column), add priority and a
    record key that is unique per staged record. ``keep_clear`` names a column to keep the clear identifiers in
    (only for the restricted re-identification table; never written to silver)."""
    link = config.silver.matching.link_systems
    out = records.withColumn("_record_key", _record_key(records.columns))
    if keep_clear:
        out = out.withColumn(keep_clear, _canonical_identifiers("identifiers", config))
    for column, nodes in id_columns.items():
        out = out.withColumn(column, _pseudonymise_identifiers(column, key, config))
        all_systems = nodes.startswith("_v")  # visit identifiers: every system links
        out = out.withColumn(nodes, _nodes(column, link) if not all_systems else
                             sf.transform(sf.col(column), lambda i: sf.concat_ws("|", i["system"], i["value"])))
    return out.transform(build.with_priority, config.silver.source_priority)


def _build(spark: SparkSession, config: MedsparkConfig, plan: SilverPlan, key: bytes, suites: dict,
           run_date: dt.date, result: SilverResult, progress: Progress) -> None:
    from medspark import quality as gate
    from medspark.silver.units import standardise_measurements
    from medspark.silver.vocab import load_vocabulary, map_codes, map_values

    settings = config.silver
    seq = plan.run_seq
    silver = lambda table: config.table_path("silver", table)  # noqa: E731
    vocabulary = load_vocabulary(spark, settings.vocabulary_path)
    cached: list[DataFrame] = []

    def keep(frame: DataFrame, *, eager: bool = True) -> DataFrame:
        # A local checkpoint cuts the lineage, so later steps do not re-plan (or re-run) everything before it.
        # Lazy ones are materialised by the next job that reads them, several in one job where possible: each
        # eager checkpoint is a Spark job of its own, and job overhead dominated small incremental runs.
        frame = frame.localCheckpoint(eager=eager)
        cached.append(frame)
        return frame

    progress.step("stage bronze records")
    staged = _stage(_read_bronze(spark, config, plan))
    # Skip the kinds this increment has no record of (one count job): a small late delivery, such as one HL7
    # update, then costs only the steps it needs.
    present = _sizes({k: v for k, v in staged.items() if v is not None})
    staged = {k: (v if present.get(k, 0) else None) for k, v in staged.items()}

    # ---- persons ------------------------------------------------------------------------------------------------
    progress.step("resolve persons and visits")
    reid = settings.privacy.reidentification_table
    persons = keep(_prepare(staged["person"], key, config, {"identifiers": "_nodes"},
                            keep_clear="_clear_identifiers" if reid else None)) \
        if staged["person"] is not None else None
    old_person_xwalk = _read_or_empty(spark, silver("person_identifier"), "node string, subject_id bigint")
    if persons is not None:
        linked = persons.where(sf.size("_nodes") > 0)
        person_res = resolve(linked.select("_record_key", sf.explode("_nodes").alias("node")), old_person_xwalk)
        new_person_xwalk = person_res.crosswalk
        result.merged_persons = person_res.merged
        persons = keep(persons.join(person_res.records.withColumnRenamed("subject_id", "person_id"),
                                    "_record_key", "left"))
    else:
        new_person_xwalk = _empty(spark, "node string, subject_id bigint")
    person_xwalk = keep(old_person_xwalk.select("node", "subject_id")
                        .join(new_person_xwalk, "node", "left_anti").unionByName(new_person_xwalk))

    # ---- visits -------------------------------------------------------------------------------------------------
    old_visit_xwalk = _read_or_empty(spark, silver("visit_identifier"), "node string, subject_id bigint")
    visits = None
    new_visit_xwalk = _empty(spark, "node string, subject_id bigint")
    if staged["visit"] is not None:
        visits = _prepare(staged["visit"], key, config,
                          {"person_identifiers": "_pnodes", "visit_identifiers": "_vnodes"})
        visits = keep(_lookup(visits, "_pnodes", person_xwalk, "person_id", "_record_key"))
        resolvable = visits.where(sf.col("person_id").isNotNull() & (sf.size("_vnodes") > 0))
        visit_res = resolve(resolvable.select("_record_key", sf.explode("_vnodes").alias("node")), old_visit_xwalk)
        new_visit_xwalk = visit_res.crosswalk
        visits = keep(visits.join(visit_res.records.withColumnRenamed("subject_id", "visit_occurrence_id"),
                                  "_record_key", "left"))
    visit_xwalk = keep(old_visit_xwalk.select("node", "subject_id")
                       .join(new_visit_xwalk, "node", "left_anti").unionByName(new_visit_xwalk))

    # ---- candidates per table -------------------------------------------------------------------------------------
    progress.step("conform to OMOP CDM v5.4")
    candidates: dict[str, DataFrame] = {}
    unresolved: list[DataFrame] = []  # (table, _source, _source_record_hash, _source_version, reason)

    def unresolved_rows(frame: DataFrame, table: sf.Column | str, reason: str) -> DataFrame:
        table_col = sf.lit(table) if isinstance(table, str) else table
        return frame.select(table_col.alias("_table"), "_source", "_source_record_hash", "_source_version",
                            sf.lit(reason).alias("_quarantine_reason"))

    affected = None
    if persons is not None:
        unresolved.append(unresolved_rows(persons.where(sf.col("person_id").isNull()), "person",
                                          "no_linking_identifier"))
        attributes_in = persons.where(sf.col("person_id").isNotNull()) \
            .transform(map_values, vocabulary, "gender_source", "gender_concept_id", "gender") \
            .transform(map_values, vocabulary, "race_source", "race_concept_id", "race") \
            .transform(map_values, vocabulary, "ethnicity_source", "ethnicity_concept_id", "ethnicity") \
            .select("person_id", *[c for c in build.PERSON_ATTRIBUTES], sf.array_min("_nodes").alias("_node"),
                    sf.array_min("_nodes").alias("person_source_value"), "_source", "_source_record_hash",
                    "_source_version", "_batch_id", "_priority", sf.lit(seq).cast("long").alias("_run_seq"))
        attributes_in = keep(attributes_in)
        affected = keep(attributes_in.select("person_id").distinct())
        earlier = _read_or_empty(spark, silver(PERSON_SOURCES), attributes_in.drop("person_id").schema)
        earlier = earlier.where(sf.col("_run_seq") < seq).join(
            person_xwalk.withColumnRenamed("node", "_node").withColumnRenamed("subject_id", "person_id"), "_node") \
            .join(affected, "person_id", "left_semi")
        attributes = keep(build.build_person_attributes(attributes_in.unionByName(earlier)))
        candidates["person"] = build.build_persons(attributes)
        candidates["death"] = build.build_deaths(attributes).withColumn("_n_records", sf.lit(0).cast("long"))
        candidates["location"] = build.build_locations(attributes)

    if visits is not None:
        unresolved.append(unresolved_rows(visits.where(sf.col("person_id").isNull()), "visit_occurrence",
                                          "unresolved_person"))
        unresolved.append(unresolved_rows(
            visits.where(sf.col("person_id").isNotNull() & sf.col("visit_occurrence_id").isNull()),
            "visit_occurrence", "no_visit_identifier"))
        resolved_visits = visits.where(sf.col("visit_occurrence_id").isNotNull()) \
            .transform(map_values, vocabulary, "visit_class_source", "visit_concept_id", "visit") \
            .withColumn("visit_source_value", sf.array_min("_vnodes")) \
            .withColumn("type_source", sf.when(sf.col("_source").startswith("x12"), "claim").otherwise("EHR")) \
            .withColumn("provider_id", sf.when(sf.col("provider_source").isNotNull(), build.surrogate_id(
                sf.lit("provider"), sf.col("provider_source")))) \
            .withColumn("care_site_id", sf.when(sf.col("care_site_source").isNotNull(), build.surrogate_id(
                sf.lit("care_site"), sf.col("care_site_source"))))
        candidates["visit_occurrence"] = build.build_visits(resolved_visits)

    if staged["event"] is not None:
        events = _prepare(staged["event"], key, config,
                          {"person_identifiers": "_pnodes", "visit_identifiers": "_vnodes"})
        events = _lookup(events, "_pnodes", person_xwalk, "person_id", "_record_key")
        events = _lookup(events, "_vnodes", visit_xwalk, "visit_occurrence_id", "_record_key")
        events = map_codes(events, vocabulary, prefix="c").transform(build.route_events)
        events = keep(events.withColumn("provider_id", sf.lit(None).cast("bigint")))
        unresolved.append(unresolved_rows(events.where(sf.col("person_id").isNull()), sf.col("_table"),
                                          "unresolved_person"))
        resolved_events = events.where(sf.col("person_id").isNotNull())
        measurements = resolved_events.where(sf.col("_table") == "measurement").withColumnRenamed(
            "c_concept_id", "measurement_concept_id").transform(standardise_measurements, vocabulary) \
            .withColumnRenamed("measurement_concept_id", "c_concept_id")
        others = resolved_events.where(sf.col("_table") != "measurement") \
            .withColumn("unit_concept_id", sf.lit(None).cast("int"))
        routed = keep(measurements.unionByName(others, allowMissingColumns=True))
        for table in build.EVENT_TABLES:
            candidates[table] = build.build_events(routed, table)
        unmapped = routed.where(sf.col("c_concept_id") == 0).groupBy("_table").count().collect()  # ≤ 5 rows
        result.unmapped = {r["_table"]: int(r["count"]) for r in unmapped}

    if staged["claim"] is not None:
        claims = _prepare(staged["claim"], key, config,
                          {"person_identifiers": "_pnodes", "visit_identifiers": "_vnodes"})
        claims = _lookup(claims, "_pnodes", person_xwalk, "person_id", "_record_key")
        claims = keep(_lookup(claims, "_vnodes", visit_xwalk, "visit_occurrence_id", "_record_key")
                      .withColumn("claim_key", pseudonymise(sf.col("claim_id"), key, domain="claim")))
        unresolved.append(unresolved_rows(claims.where(sf.col("person_id").isNull()), "cost", "unresolved_person"))
        resolved_claims = claims.where(sf.col("person_id").isNotNull())
        candidates["cost"] = build.build_costs(resolved_claims)
        candidates["payer_plan_period"] = build.build_payer_plan_periods(resolved_claims)

    if staged["provider"] is not None:
        candidates["provider"] = build.build_providers(
            staged["provider"].transform(build.with_priority, settings.source_priority))
    if staged["care_site"] is not None:
        candidates["care_site"] = build.build_care_sites(
            staged["care_site"].transform(build.with_priority, settings.source_priority))

    candidates = {t: keep(rows, eager=False) for t, rows in candidates.items()}

    # ---- gate ---------------------------------------------------------------------------------------------------
    progress.step("data-quality gate")
    context = {
        "person": _with_existing(spark, silver("person"), candidates.get("person"), "person"),
        "death": _with_existing(spark, silver("death"), candidates.get("death"), "death"),
        "visit_occurrence": _with_existing(spark, silver("visit_occurrence"), candidates.get("visit_occurrence"),
                                           "visit_occurrence"),
        "concept": vocabulary.concept,
    }
    passed: dict[str, DataFrame] = {}
    failed: dict[str, DataFrame] = {}
    validations = []
    sizes = _sizes(candidates)  # one job: materialises every candidate table's checkpoint
    for table, rows in candidates.items():
        if sizes.get(table, 0) == 0 or table not in suites:
            passed[table] = rows
            continue
        flagged = keep(gate.with_check_columns(rows, suites[table], context, run_date=run_date), eager=False)
        validations.append(gate.validate_table(flagged, suites[table], run_id=result.run_id, run_date=run_date))
        passed[table], failed[table] = gate.split_by_checks(flagged)
    if validations:
        # Results and Data Docs are written whether or not the gate passes: a failed gate must be explainable.
        gate.write_results(spark, gate.build_result_rows(spark, validations), config.table_path("ops", "dq_results"))
        gate.build_data_docs(validations, gate.data_docs_directory(config.lakehouse), spark=spark)
    gate.enforce(validations)  # raises DataQualityError before any silver write

    # ---- writes -------------------------------------------------------------------------------------------------
    progress.step("write silver")
    _merge_crosswalk(spark, silver("person_identifier"), new_person_xwalk)
    _merge_crosswalk(spark, silver("visit_identifier"), new_visit_xwalk)
    if persons is not None:
        append_idempotent(attributes_in.drop("person_id"), silver(PERSON_SOURCES),
                          app_id="medspark.silver.person_source", version=seq)
    quarantine_rows = [
        rows.select(sf.lit(t).alias("_table"), "_source", "_source_record_hash", "_source_version",
                    "_quarantine_reason", "_failed_checks", "_n_records",
                    sf.to_json(sf.struct(*[c for c in omop.columns(t)])).alias("_row"))
        for t, rows in failed.items()
    ]
    if unresolved:
        quarantine_rows.append(reduce(DataFrame.unionByName, unresolved).select(
            "*", sf.array().cast("array<string>").alias("_failed_checks"), sf.lit(1).cast("long").alias("_n_records"),
            sf.lit(None).cast("string").alias("_row")))
    if staged["_unstaged"] is not None:
        quarantine_rows.append(staged["_unstaged"].select(
            sf.lit("unstaged").alias("_table"), "_source", "_source_record_hash", "_source_version",
            sf.col("reason").alias("_quarantine_reason"), sf.array().cast("array<string>").alias("_failed_checks"),
            sf.lit(1).cast("long").alias("_n_records"), sf.lit(None).cast("string").alias("_row")))
    quarantined = keep(reduce(DataFrame.unionByName, quarantine_rows)) if quarantine_rows else None
    result.tables = _accounting(candidates, passed, quarantined)
    # Writes to different tables are independent and each one is idempotent: run them concurrently (Spark takes
    # jobs from several driver threads; small MERGEs spend most of their time in Delta's driver-side commit).
    writes: list[Callable[[], None]] = []
    if quarantined is not None:
        for counts in result.tables:
            if counts.rows_quarantined:
                writes.append(partial(
                    append_idempotent,
                    quarantined.where(sf.col("_table") == counts.table).withColumn("_run_id", sf.lit(result.run_id)),
                    config.table_path("quarantine", f"silver_{counts.table}"),
                    app_id=f"medspark.silver.quarantine.{counts.table}", version=seq))
    for table in omop.TABLES:
        if table in passed and table != "observation_period":
            if sizes.get(table, 0) == 0:
                writes.append(partial(_ensure_table, spark, silver(table), passed[table].select(*omop.columns(table))))
            else:
                writes.append(partial(_merge_table, spark, silver(table), table, passed[table],
                                      settings.source_priority))
    _run_concurrently(writes)
    if "person" in passed:
        _merge_history(spark, silver(HISTORY_TABLE), passed["person"], plan.planned_at)
    if reid and persons is not None:
        _merge_reidentification(spark, config.table_path("restricted", "reidentification"), build_reidentification(
            persons.where(sf.col("person_id").isNotNull()), key=key, identifiers_column="_clear_identifiers"))
    if affected is not None or "visit_occurrence" in passed:
        _refresh_observation_periods(spark, config, passed)
    for frame in cached:
        frame.unpersist()



# --- helpers of the run -------------------------------------------------------------------------------------------


def _with_existing(spark: SparkSession, path: str, candidates: DataFrame | None, table: str) -> DataFrame:
    """What a table will hold after this run: the candidates, plus existing rows they do not replace."""
    key = omop.PRIMARY_KEY[table]
    existing = spark.read.format("delta").load(path) if table_exists(spark, path) else None
    columns = list(omop.columns(table))
    if candidates is None:
        return existing.select(*columns) if existing is not None else _empty(spark, omop.schema(table))
    if existing is None:
        return candidates.select(*columns)
    return existing.select(*columns).join(candidates.select(key), key, "left_anti") \
        .unionByName(candidates.select(*columns))


def _sizes(frames: dict[str, DataFrame]) -> dict[str, int]:
    """Row counts of every frame in one Spark job."""
    if not frames:
        return {}
    counts = reduce(DataFrame.unionByName, [
        rows.groupBy().count().select(sf.lit(t).alias("t"), "count") for t, rows in frames.items()])
    return {r["t"]: int(r["count"]) for r in counts.collect()}  # one row per frame


def _accounting(candidates: dict[str, DataFrame], passed: dict[str, DataFrame],
                quarantined: DataFrame | None) -> list[TableCounts]:
    """Records read / written / quarantined per table, in one aggregation (records, not rows: a row built from
    three duplicate records accounts for three)."""
    parts = [rows.select(sf.lit(t).alias("t"), sf.col("_n_records").alias("n"), sf.lit("in").alias("k"))
             for t, rows in candidates.items()]
    parts += [rows.select(sf.lit(t).alias("t"), sf.col("_n_records").alias("n"), sf.lit("ok").alias("k"))
              for t, rows in passed.items()]
    if quarantined is not None:
        parts.append(quarantined.select(sf.col("_table").alias("t"), sf.col("_n_records").alias("n"),
                                        sf.lit("q").alias("k")))
        # unresolved/unstaged records were read by the table they were routed to
        parts.append(quarantined.where(sf.size("_failed_checks") == 0).select(
            sf.col("_table").alias("t"), sf.col("_n_records").alias("n"), sf.lit("in").alias("k")))
    if not parts:
        return []
    totals = reduce(DataFrame.unionByName, parts).groupBy("t").pivot("k", ["in", "ok", "q"]).agg(sf.sum("n"))
    out = []
    for r in sorted(totals.collect(), key=lambda r: r["t"]):  # one row per table
        out.append(TableCounts(table=r["t"], rows_read=int(r["in"] or 0), rows_written=int(r["ok"] or 0),
                               rows_quarantined=int(r["q"] or 0)))
    return out


def _run_concurrently(writes: list[Callable[[], None]], threads: int = 4) -> None:
    """Run independent writes on a few driver threads; the first failure is raised after the others finish."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="silver-write") as pool:
        futures = [pool.submit(write) for write in writes]
    for future in futures:
        future.result()


def _ensure_table(spark: SparkSession, path: str, rows: DataFrame) -> None:
    """Create an empty table with the rows' schema if none exists (every CDM table exists after a run)."""
    if not table_exists(spark, path):
        rows.limit(0).write.format("delta").mode("append").save(path)


def _merge_crosswalk(spark: SparkSession, path: str, rows: DataFrame) -> None:
    """Upsert crosswalk rows (``node`` → ``subject_id``): idempotent, so a replayed run changes nothing."""
    _ensure_table(spark, path, rows)
    DeltaTable.forPath(spark, path).alias("t").merge(rows.alias("s"), "t.node = s.node") \
        .whenMatchedUpdate(condition="t.subject_id <> s.subject_id", set={"subject_id": "s.subject_id"}) \
        .whenNotMatchedInsertAll().execute()


def _priority_sql(alias: str, source_priority: tuple[str, ...]) -> str:
    family = (f"CASE WHEN substring_index({alias}._source, '_', 1) = 'device' THEN 'vitals' "
              f"ELSE substring_index({alias}._source, '_', 1) END")
    listed = ", ".join(f"'{s}'" for s in source_priority)
    return (f"(CASE WHEN array_position(array({listed}), {family}) > 0 THEN array_position(array({listed}), {family})"
            f" ELSE {len(source_priority) + 1} END)")


def _merge_table(spark: SparkSession, path: str, table: str, rows: DataFrame,
                 source_priority: tuple[str, ...]) -> None:
    """MERGE candidate rows into a silver table on its CDM key.

    A matched row is replaced when the new row comes from a better source, or from the same source with a version
    at least as new (a corrected record); re-applying the same rows is a no-op in content. ``person`` and
    ``observation_period`` rows are recomputed from all their records, so they always replace; a
    ``payer_plan_period`` widens to cover both periods.
    """
    key = omop.PRIMARY_KEY[table]
    frame = rows.select(*omop.columns(table))
    _ensure_table(spark, path, frame)
    merge = DeltaTable.forPath(spark, path).alias("t").merge(frame.alias("s"), f"t.{key} = s.{key}")
    if table == "payer_plan_period":
        merge = merge.whenMatchedUpdate(set={
            "payer_plan_period_start_date": "least(t.payer_plan_period_start_date, s.payer_plan_period_start_date)",
            "payer_plan_period_end_date": "greatest(t.payer_plan_period_end_date, s.payer_plan_period_end_date)",
        })
    elif table in ("person", "observation_period"):
        merge = merge.whenMatchedUpdateAll()
    else:
        better = (f"{_priority_sql('s', source_priority)} < {_priority_sql('t', source_priority)} OR "
                  f"({_priority_sql('s', source_priority)} = {_priority_sql('t', source_priority)} AND "
                  "s._source_version >= t._source_version)")
        merge = merge.whenMatchedUpdateAll(condition=better)
    merge.whenNotMatchedInsertAll().execute()


def _merge_reidentification(spark: SparkSession, path: str, rows: DataFrame) -> None:
    """Insert (person, system, pseudonym) mappings not yet in the restricted table; existing ones are kept."""
    _ensure_table(spark, path, rows)
    DeltaTable.forPath(spark, path).alias("t").merge(
        rows.alias("s"), "t.person_id = s.person_id AND t.identifier_system = s.identifier_system "
        "AND t.identifier_pseudonym = s.identifier_pseudonym").whenNotMatchedInsertAll().execute()


def _content_hash(table: str) -> sf.Column:
    cdm = [f.name for f in omop.cdm_schema(table).fields]
    return sf.sha2(sf.to_json(sf.struct(*cdm)), 256)


def _merge_history(spark: SparkSession, path: str, persons: DataFrame, valid_from: dt.datetime | None) -> None:
    """Type-2 history of ``person``: a new version when a person's CDM content changes.

    ``valid_from`` is the time the silver run was planned (recorded in ``ops/silver_runs``), not the wall clock at
    write time and not a source's own clock (sources disagree), so replaying a run writes the same history. The
    open version has ``valid_to`` null and ``is_current`` true.
    """
    incoming = persons.select(*omop.columns("person"), _content_hash("person").alias("_content_hash"),
                              sf.lit(valid_from).cast("timestamp").alias("valid_from"))
    if not table_exists(spark, path):
        incoming.limit(0).select("*", sf.lit(None).cast("timestamp").alias("valid_to"),
                                 sf.lit(True).alias("is_current")).write.format("delta").save(path)
    history = DeltaTable.forPath(spark, path)
    current = history.toDF().where("is_current")
    changed = incoming.join(current.select("person_id", sf.col("_content_hash").alias("_old_hash")), "person_id",
                            "left") \
        .where(sf.col("_old_hash").isNull() | (sf.col("_old_hash") != sf.col("_content_hash"))).drop("_old_hash")
    # Standard SCD2 MERGE: rows keyed by person_id close the current version; rows with a null key insert the new.
    staged = changed.select(sf.col("person_id").alias("_merge_key"), "*").unionByName(
        changed.select(sf.lit(None).cast("bigint").alias("_merge_key"), "*"))
    history.alias("t").merge(staged.alias("s"), "t.person_id = s._merge_key AND t.is_current") \
        .whenMatchedUpdate(set={"is_current": "false", "valid_to": "s.valid_from"}) \
        .whenNotMatchedInsert(condition="s._merge_key IS NULL", values={
            **{c: f"s.{c}" for c in (*omop.columns("person"), "_content_hash", "valid_from")},
            "valid_to": "null", "is_current": "true"}) \
        .execute()


def _refresh_observation_periods(spark: SparkSession, config: MedsparkConfig, passed: dict[str, DataFrame]) -> None:
    """Recompute the observation period of every person this run touched, from all their silver events."""
    touched = reduce(DataFrame.unionByName, [
        rows.select("person_id") for t, rows in passed.items() if t in build.EVENT_DATES or t == "person"]).distinct()
    dated = []
    for table, (start, end) in build.EVENT_DATES.items():
        path = config.table_path("silver", table)
        if table_exists(spark, path):
            dated.append(spark.read.format("delta").load(path).join(touched, "person_id", "left_semi").select(
                "person_id", sf.col(start).alias("start_date"), sf.col(end).alias("end_date")))
    if not dated:
        return
    periods = build.build_observation_periods(reduce(DataFrame.unionByName, dated))
    _merge_table(spark, config.table_path("silver", "observation_period"), "observation_period", periods,
                 config.silver.source_priority)
