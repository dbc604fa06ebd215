"""``medspark pipeline``: the stages in dependency order -- bronze ingestion, silver, research views, gold analytics.

Each stage has a *fingerprint*: a hash of what it reads (the source listing for bronze; the Delta version of every
table of the layer below for the others), of what it writes (the Delta version of every table of its own layer),
of its configuration section and of the medspark version. A stage whose fingerprint equals the one recorded by
its last successful run is skipped: nothing it could read or would write has changed. Commits that only tidy
files (OPTIMIZE, VACUUM, table properties: ``medspark maintain``) do not count as changes. Because a stage's
fingerprint is recorded *after* it ran, its own writes are part of it, while a change made by anyone else (a
restore, a new source file, a config edit) makes it run again.

The whole run holds the lakehouse lock (:mod:`medspark.ops.lock`). Every stage is recorded in ``ops/run_log``
(job ``pipeline``, table ``stage:<name>``) and in ``ops/pipeline_state`` with its fingerprint. A failing stage stops
the run with its error; the stages before it keep their results, so the next run skips them and resumes at the
failed stage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from medspark import __version__
from medspark.config.model import MedsparkConfig
from medspark.errors import MedsparkError
from medspark.io.delta import table_exists
from medspark.io.runlog import RunRecord, new_run_id, write_run, write_stage
from medspark.logs import Progress
from medspark.ops.lock import lakehouse_lock

log = logging.getLogger(__name__)

STAGES = ("bronze", "silver", "research", "gold")
STATE_TABLE = "pipeline_state"
STATE_SCHEMA = ("run_id string, stage string, status string, fingerprint string, inputs string, "
                "started_at timestamp, ended_at timestamp, message string")
# Layers each stage reads (besides the source, for bronze) and writes.
_READS = {"bronze": (), "silver": ("bronze",), "research": ("silver",), "gold": ("research",)}
# Delta operations that rewrite or tidy files without changing a table's data (``medspark maintain``).
MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES",
                                    "UNSET TBLPROPERTIES"})
_WRITES = {"bronze": ("bronze",), "silver": ("silver",), "research": ("research",), "gold": ("gold",)}


class PipelineStageError(MedsparkError):
    """A stage failed; earlier stages keep their results and the next run resumes at this stage."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        first = str(cause).strip().splitlines()[0][:300] if str(cause).strip() else type(cause).__name__
        super().__init__(f"stage '{stage}' failed: {first}; the stages before it are kept and the next "
                         "`medspark pipeline` resumes at this stage")
        self.stage = stage
        self.exit_code = cause.exit_code if isinstance(cause, MedsparkError) else 1


@dataclass
class StageOutcome:
    """What happened to one stage in one run."""

    stage: str
    status: str  # succeeded | skipped | failed
    seconds: float
    summary: str = ""
    note: str = ""


@dataclass
class PipelineResult:
    """What one pipeline run did."""

    run_id: str
    stages: list[StageOutcome] = field(default_factory=list)

    def summary(self) -> str:
        """The one-screen summary: one line per stage, then each stage's own summary."""
        lines = [f"pipeline run {self.run_id}"]
        lines += [f"  {s.stage:<10}{s.status:<10}{s.seconds:>8.1f} s  {s.note}".rstrip() for s in self.stages]
        details = [s.summary for s in self.stages if s.summary]
        return "\n\n".join(["\n".join(lines), *details])


# --- fingerprints ---------------------------------------------------------------------------------------------


def layer_versions(spark: SparkSession, config: MedsparkConfig, layer: str) -> dict[str, int]:
    """``{"<layer>/<table>": latest Delta version}`` for every Delta table of a layer, read from the transaction
    log's file names only (no data, no log replay)."""
    from medspark.io.sources import hadoop_fs

    root, fs = hadoop_fs(spark, config.table_path(layer, "").rstrip("/"))
    if not fs.exists(root):
        return {}
    found: dict[str, int] = {}
    for status in fs.listStatus(root):
        if not status.isDirectory():
            continue
        log_dir = status.getPath().suffix("/_delta_log")
        if not fs.exists(log_dir):
            continue
        versions = [
            int(name[:-5]) for name in (s.getPath().getName() for s in fs.listStatus(log_dir))
            if name.endswith(".json") and name[:-5].isdigit()
        ]
        if versions:
            found[f"{layer}/{status.getPath().getName()}"] = max(versions)
    return found


def _source_listing(spark: SparkSession, source: str, source_format: str) -> dict[str, object]:
    from medspark.io.sources import list_files

    digest = hashlib.sha256()
    files = list_files(spark, source)
    for f in files:
        digest.update(f"{f.path}\t{f.size}\t{f.modification_time}\n".encode())
    return {"source": source, "format": source_format, "files": len(files), "listing": digest.hexdigest()}


def _config_part(config: MedsparkConfig, stage: str) -> object:
    if stage == "bronze":
        return config.ingest.model_dump(mode="json")
    if stage == "silver":
        return config.silver.model_dump(mode="json")
    if stage == "research":
        as_of = config.silver.privacy.research_as_of or config.silver.run_date or dt.datetime.now(dt.UTC).date()
        return {"privacy": config.silver.privacy.model_dump(mode="json"), "as_of": as_of.isoformat()}
    return config.gold.model_dump(mode="json")


def fingerprint(spark: SparkSession, config: MedsparkConfig, stage: str, *, source: str | None = None,
                source_format: str = "auto") -> tuple[str, dict[str, object]]:
    """The stage's fingerprint and the facts it hashes (table versions, source listing digest, config)."""
    facts: dict[str, object] = {"medspark": __version__, "config": _config_part(config, stage)}
    if stage == "bronze":
        if source is None:
            raise ValueError("the bronze fingerprint needs the source")
        facts["source"] = _source_listing(spark, source, source_format)
    for layer in (*_READS[stage], *_WRITES[stage]):
        facts.update(layer_versions(spark, config, layer))
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), facts


# --- state ----------------------------------------------------------------------------------------------------


def state_path(config: MedsparkConfig) -> str:
    """Location of ``ops/pipeline_state``."""
    return config.table_path("ops", STATE_TABLE)


@dataclass(frozen=True)
class Recorded:
    """What a stage's newest successful (or skipped) run recorded."""

    fingerprint: str
    run_id: str
    facts: dict[str, object]


def last_good(spark: SparkSession, config: MedsparkConfig, stage: str) -> Recorded | None:
    """The record of the stage's newest successful (or skipped) run, if any."""
    path = state_path(config)
    if not table_exists(spark, path):
        return None
    rows = (
        spark.read.format("delta").load(path)
        .where((sf.col("stage") == stage) & sf.col("status").isin("succeeded", "skipped"))
        .orderBy(sf.col("ended_at").desc()).limit(1).collect()  # one row
    )
    if not rows:
        return None
    return Recorded(rows[0]["fingerprint"], rows[0]["run_id"], json.loads(rows[0]["inputs"] or "{}"))


def only_maintenance_since(spark: SparkSession, config: MedsparkConfig, before: dict[str, object],
                           now: dict[str, object]) -> bool:
    """True when ``now`` differs from ``before`` only in table versions, and every commit in between is maintenance
    (OPTIMIZE, VACUUM, table properties): the data the stage reads and writes is what it was.

    Reads the history of the changed tables only, and only the commits in between.
    """
    now = json.loads(json.dumps(now, sort_keys=True, default=str))
    if before.keys() != now.keys():
        return False
    for key, value in now.items():
        old = before[key]
        if old == value:
            continue
        if "/" not in key or not isinstance(old, int) or not isinstance(value, int) or value < old:
            return False
        layer, _, table = key.partition("/")
        commits = DeltaTable.forPath(spark, config.table_path(layer, table)).history(value - old)
        seen = {(int(r["version"]), r["operation"]) for r in commits.select("version", "operation").collect()}
        if {v for v, _ in seen} != set(range(old + 1, value + 1)):
            return False  # part of the history is gone: cannot tell
        if any(operation not in MAINTENANCE_OPERATIONS for _, operation in seen):
            return False
    return True


def _record_state(spark: SparkSession, config: MedsparkConfig, run_id: str, stage: str, status: str,
                  digest: str | None, facts: dict[str, object] | None, started: dt.datetime, message: str) -> None:
    ended = dt.datetime.now(dt.UTC)
    row = (run_id, stage, status, digest, json.dumps(facts, sort_keys=True, default=str) if facts else None,
           started, ended, message)
    spark.createDataFrame([row], STATE_SCHEMA).write.format("delta").mode("append").save(state_path(config))
    write_stage(spark, config, run_id=run_id, job="pipeline", stage=stage, started_at=started, ended_at=ended,
                status=status, message=message)


# --- the run --------------------------------------------------------------------------------------------------


def _stage_bodies(spark: SparkSession, config: MedsparkConfig, source: str,
                  source_format: str) -> dict[str, Callable[[], str]]:
    from medspark.gold.job import analyze
    from medspark.ingestion.job import ingest
    from medspark.privacy.job import build_research
    from medspark.silver.job import build_silver

    def gold() -> str:
        # Gold needs persons: a source that yields none (e.g. device readings of patients no other source knows)
        # leaves nothing to analyse, which is not an error of the pipeline.
        person = config.table_path("research", "person")
        if not table_exists(spark, person) or spark.read.format("delta").load(person).limit(1).count() == 0:
            return "analyze: skipped, the research views hold no persons"
        return analyze(spark, config).summary()

    return {
        "bronze": lambda: ingest(spark, config, source, source_format=source_format).summary(),
        "silver": lambda: build_silver(spark, config).summary(),
        "research": lambda: build_research(spark, config).summary(),
        "gold": gold,
    }


def run_pipeline(spark: SparkSession, config: MedsparkConfig, source: str, *, source_format: str = "auto",
                 force: bool = False) -> PipelineResult:
    """Run every stage whose inputs changed (all of them with ``force``), holding the lakehouse lock."""
    from medspark.privacy.keys import load_key

    # A missing pseudonym key must stop the pipeline before bronze is written, not halfway.
    load_key(key_file=config.silver.privacy.key_file)
    run_id = new_run_id("pipeline")
    result = PipelineResult(run_id)
    record = RunRecord(run_id=run_id, job="pipeline", started_at=dt.datetime.now(dt.UTC))
    with lakehouse_lock(spark, config, run_id, "pipeline"):
        bodies = _stage_bodies(spark, config, source, source_format)
        progress = Progress("pipeline", len(STAGES))
        try:
            for stage in STAGES:
                progress.step(stage)
                result.stages.append(_run_stage(spark, config, run_id, stage, bodies[stage], source=source,
                                                source_format=source_format, force=force))
        except PipelineStageError as exc:
            record.status, record.message = "failed", f"stage {exc.stage} failed"
            write_run(spark, config, record)
            raise
        progress.finish()
        record.status = "succeeded"
        record.message = ", ".join(f"{s.stage} {s.status}" for s in result.stages)
        write_run(spark, config, record)
    return result


def _run_stage(spark: SparkSession, config: MedsparkConfig, run_id: str, stage: str, body: Callable[[], str], *,
               source: str, source_format: str, force: bool) -> StageOutcome:
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    digest, facts = fingerprint(spark, config, stage, source=source, source_format=source_format)
    previous = None if force else last_good(spark, config, stage)
    if previous is not None and (
        previous.fingerprint == digest or only_maintenance_since(spark, config, previous.facts, facts)
    ):
        note = f"inputs unchanged since run {previous.run_id}"
        _record_state(spark, config, run_id, stage, "skipped", digest, facts, started, note)
        log.info("stage %s skipped: %s", stage, note)
        return StageOutcome(stage, "skipped", time.monotonic() - clock, note=note)
    try:
        summary = body()
    except Exception as exc:
        # Only the error's type goes to the tables: a message may quote a value.
        _record_state(spark, config, run_id, stage, "failed", None, None, started, f"failed: {type(exc).__name__}")
        raise PipelineStageError(stage, exc) from exc
    digest, facts = fingerprint(spark, config, stage, source=source, source_format=source_format)
    _record_state(spark, config, run_id, stage, "succeeded", digest, facts, started, "")
    return StageOutcome(stage, "succeeded", time.monotonic() - clock, summary=summary)
