"""The ``medspark`` command line: one readable line per error, exit 2 for usage/config, 1 for runtime.

Every command builds its configuration once (``--config``, ``MEDSPARK_*``, ``--set``, ``--lakehouse``), then
calls the same library function its ``jobs/`` entry point calls.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, NoReturn

from medspark.config import MedsparkConfig, load_config
from medspark.errors import MedsparkError, UsageError
from medspark.logs import configure_logging

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("medspark")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The CLI grammar (kept in one place; ``jobs/`` reuse it)."""
    parser = _Parser(prog="medspark", description="Healthcare lakehouse on Spark + Delta Lake.")
    parser.add_argument("--config", help="profile name (local, test, cluster) or YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (dotted key), repeatable")
    parser.add_argument("--lakehouse", help="lakehouse root: a path or any Hadoop filesystem URI")
    parser.add_argument("--verbose", action="store_true", help="debug logging and full tracebacks")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    commands.required = True

    gen = commands.add_parser("generate", help="write a synthetic population in five formats")
    gen.add_argument("--patients", type=_positive_int, required=True)
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--defect-rate", type=_rate, default=0.0)
    gen.add_argument("--workers", type=_non_negative_int, default=None, help="processes (default: config)")

    ing = commands.add_parser("ingest", help="ingest new source files into bronze, exactly once")
    ing.add_argument("--source", help="source directory or URI (default: config 'source')")
    ing.add_argument("--format", default="auto", choices=["auto", *_format_names()])

    pipe = commands.add_parser("pipeline", help="run every stage that exists, in order")
    pipe.add_argument("--source", help="source directory or URI (default: config 'source')")
    pipe.add_argument("--format", default="auto", choices=["auto", *_format_names()])
    pipe.add_argument("--force", action="store_true", help="run every stage, also those whose inputs did not change")

    commands.add_parser("silver", help="conform new bronze batches to OMOP CDM v5.4 silver (gated, pseudonymised)")

    commands.add_parser("research", help="refresh the de-identified research views of silver (what gold reads)")

    ana = commands.add_parser("analyze", help="gold analytics on the research views: stats, rules, sequences, ...")
    ana.add_argument("analysis", nargs="?", default="all", choices=("all", "stats", "rules", "sequences",
                                                                     "segments", "risk"))
    ana.add_argument("--spec", help="with `risk`: train the model spec conf/models/<SPEC>.yaml instead")

    rep = commands.add_parser("report", help="static offline HTML report of the gold tables and data quality")
    rep.add_argument("--out", required=True, help="output directory (local path) for report.html")

    commands.add_parser("unlock", help="clear the lakehouse lock of a run that died (check it is not running)")

    hist = commands.add_parser("history", help="Delta history of a table, e.g. bronze/fhir_patient")
    hist.add_argument("table", help="<layer>/<table> or a table name searched in every layer")
    hist.add_argument("--limit", type=_positive_int, default=20)

    mnt = commands.add_parser("maintain", help="table properties, OPTIMIZE (Z-ORDER) and VACUUM of the Delta tables")
    mnt.add_argument("--table", dest="tables", action="append", metavar="TABLE",
                     help="only this table (<layer>/<table>), repeatable; default every table")
    mnt.add_argument("--no-vacuum", action="store_true", help="skip VACUUM")
    mnt.add_argument("--no-optimize", action="store_true", help="skip OPTIMIZE")
    mnt.add_argument("--dry-run", action="store_true", help="change nothing; report what VACUUM would delete")
    mnt.add_argument("--allow-short-retention", action="store_true",
                     help="accept maintain.vacuum_retention_hours below 168 (breaks time travel to older versions)")

    res = commands.add_parser("restore", help="restore a Delta table to an earlier version (time travel)")
    res.add_argument("table", help="<layer>/<table> or a table name found in one layer")
    when = res.add_mutually_exclusive_group(required=True)
    when.add_argument("--version", type=_non_negative_int, help="table version (see `medspark history`)")
    when.add_argument("--timestamp", help="ISO date/time: the latest version committed at or before it")
    return parser


def _format_names() -> tuple[str, ...]:
    from medspark.ingestion.registry import FORMAT_NAMES

    return FORMAT_NAMES


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got '{text}'")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 0.5, got '{text}'") from None
    if not 0.0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 0.5, got '{text}'")
    return value


# ---- commands ------------------------------------------------------------------------------------------------


def _locked(spark: SparkSession, config: MedsparkConfig, job: str) -> AbstractContextManager[None]:
    """The lakehouse lock for one writing command (see medspark.ops.lock)."""
    from medspark.io.runlog import new_run_id
    from medspark.ops.lock import lakehouse_lock

    return lakehouse_lock(spark, config, new_run_id(job), job)


def cmd_unlock(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark unlock``: clear a lock left by a run that died on another host (operator action)."""
    from medspark.ops.lock import force_unlock
    from medspark.spark import build_session

    spark = build_session(config)
    holder = force_unlock(spark, config)
    print(f"lock of {holder.describe()} removed" if holder else "the lakehouse was not locked")
    return 0


def cmd_generate(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark generate``: no Spark needed."""
    from medspark.synthetic import generate

    summary = generate(
        args.out,
        patients=args.patients,
        seed=args.seed,
        defect_rate=args.defect_rate,
        workers=config.generate.workers if args.workers is None else args.workers,
        chunk_patients=config.generate.chunk_patients,
    )
    print(summary.render() if hasattr(summary, "render") else summary)
    return 0


def cmd_ingest(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark ingest``."""
    from medspark.ingestion.job import ingest, validate_source
    from medspark.spark import build_session

    source = validate_source(args.source or config.source)
    spark = build_session(config)
    with _locked(spark, config, "ingest"):
        result = ingest(spark, config, source, source_format=args.format)
    print(result.summary())
    return 0


def cmd_pipeline(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark pipeline``: the stages in order, skipping those whose inputs did not change."""
    from medspark.ingestion.job import validate_source
    from medspark.pipeline import run_pipeline
    from medspark.spark import build_session

    source = validate_source(args.source or config.source)
    spark = build_session(config)
    print(run_pipeline(spark, config, source, source_format=args.format, force=args.force).summary())
    return 0


def cmd_silver(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark silver``: one incremental silver build."""
    from medspark.silver.job import build_silver
    from medspark.spark import build_session

    spark = build_session(config)
    with _locked(spark, config, "silver"):
        print(build_silver(spark, config).summary())
    return 0


def cmd_research(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark research``: refresh the Safe-Harbour research views."""
    from medspark.privacy.job import build_research
    from medspark.spark import build_session

    spark = build_session(config)
    with _locked(spark, config, "research"):
        print(build_research(spark, config).summary())
    return 0


def cmd_analyze(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark analyze [stats|rules|sequences|segments|risk|all] [--spec NAME]``."""
    from medspark.gold.job import analyze
    from medspark.spark import build_session

    if args.spec is not None and args.analysis != "risk":
        raise UsageError("--spec is only for `analyze risk`")
    spark = build_session(config)
    with _locked(spark, config, "analyze"):
        print(analyze(spark, config, args.analysis, spec=args.spec).summary())
    return 0


def cmd_report(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark report --out DIR``: the gold report as one offline HTML file."""
    from medspark.gold.report import prepare_out_dir, write_report
    from medspark.spark import build_session

    out_dir = prepare_out_dir(args.out)  # a bad --out fails before Spark starts
    spark = build_session(config)
    print(f"report written to {write_report(spark, config, out_dir)}")
    return 0


def cmd_history(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark history TABLE``."""
    from medspark.io.delta import history
    from medspark.ops.tables import resolve_table
    from medspark.spark import build_session

    spark = build_session(config)
    ref = resolve_table(spark, config, args.table)
    rows = history(spark, ref.path, args.limit).collect()  # bounded by --limit
    print(f"history of {ref.key} ({ref.path})")
    print(f"{'version':>7}  {'timestamp':<26}{'operation':<16}{'rows':>10}  parameters")
    for r in rows:
        print(f"{r['version']:>7}  {r['timestamp']!s:<26} {r['operation']:<16}{r['rows_written'] or '':>10}"
              f"  {(r['parameters'] or '')[:80]}")
    return 0


def cmd_maintain(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark maintain``: properties, OPTIMIZE, VACUUM (a short retention is refused before Spark starts)."""
    from medspark.ops.maintain import check_retention, maintain
    from medspark.spark import build_session

    if not args.no_vacuum:
        check_retention(config.maintain.vacuum_retention_hours, allow_short_retention=args.allow_short_retention)
    spark = build_session(config)
    run = partial(maintain, spark, config, tables=args.tables, vacuum=not args.no_vacuum,
                  optimize=not args.no_optimize, dry_run=args.dry_run, allow_short_retention=args.allow_short_retention)
    if args.dry_run:
        print(run().summary())
    else:
        with _locked(spark, config, "maintain"):
            print(run().summary())
    return 0


def cmd_restore(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark restore TABLE (--version V | --timestamp TS)``."""
    from medspark.ops.timetravel import check_restore, restore
    from medspark.spark import build_session

    spark = build_session(config)
    check_restore(spark, config, args.table, version=args.version, timestamp=args.timestamp)  # before the lock
    with _locked(spark, config, "restore"):
        print(restore(spark, config, args.table, version=args.version, timestamp=args.timestamp).summary())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, MedsparkConfig], int]] = {
    "generate": cmd_generate,
    "ingest": cmd_ingest,
    "pipeline": cmd_pipeline,
    "silver": cmd_silver,
    "research": cmd_research,
    "analyze": cmd_analyze,
    "report": cmd_report,
    "history": cmd_history,
    "maintain": cmd_maintain,
    "restore": cmd_restore,
    "unlock": cmd_unlock,
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    # Py4J/JVM errors: keep the first meaningful line, without the Java stack.
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "Traceback", "File ")):
            return line[:300]
    return type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medspark`` console script and of ``jobs/*.py``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args_list
    configure_logging(verbose=verbose)
    try:
        args = build_parser().parse_args(args_list)
        config = load_config(args.config, overrides=args.overrides, lakehouse=args.lakehouse)
        return COMMANDS[args.command](args, config)
    except MedsparkError as exc:
        if verbose:
            log.exception("failed")
        print(f"medspark: error: {_first_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("medspark: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            log.exception("failed")
        print(f"medspark: error: {type(exc).__name__}: {_first_line(exc)} (run with --verbose for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
