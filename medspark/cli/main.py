"""The ``medspark`` command line: one readable line per error, exit 2 for usage/config, 1 for runtime.

Every command builds its configuration once (``--config``, ``MEDSPARK_*``, ``--set``, ``--lakehouse``), then
calls the same library function its ``jobs/`` entry point calls.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from medspark.config import MedsparkConfig, load_config
from medspark.errors import MedsparkError, UsageError
from medspark.logs import configure_logging

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

    commands.add_parser("silver", help="conform new bronze batches to OMOP CDM v5.4 silver (gated, pseudonymised)")

    commands.add_parser("research", help="refresh the de-identified research views of silver (what gold reads)")

    ana = commands.add_parser("analyze", help="gold analytics on the research views: stats, rules, sequences, ...")
    ana.add_argument("analysis", nargs="?", default="all", choices=("all", "stats", "rules", "sequences",
                                                                     "segments", "risk"))
    ana.add_argument("--spec", help="with `risk`: train the model spec conf/models/<SPEC>.yaml instead")

    rep = commands.add_parser("report", help="static offline HTML report of the gold tables and data quality")
    rep.add_argument("--out", required=True, help="output directory (local path) for report.html")

    hist = commands.add_parser("history", help="Delta history of a table, e.g. bronze/fhir_patient")
    hist.add_argument("table", help="<layer>/<table> or a table name searched in bronze, quarantine, ops")
    hist.add_argument("--limit", type=_positive_int, default=20)
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
    result = ingest(spark, config, source, source_format=args.format)
    print(result.summary())
    return 0


def cmd_pipeline(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark pipeline``: every stage that exists, in order (bronze ingestion, silver)."""
    from medspark.ingestion.job import validate_source
    from medspark.pipeline import run_pipeline
    from medspark.spark import build_session

    source = validate_source(args.source or config.source)
    spark = build_session(config)
    print(run_pipeline(spark, config, source, source_format=args.format))
    return 0


def cmd_silver(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark silver``: one incremental silver build."""
    from medspark.silver.job import build_silver
    from medspark.spark import build_session

    spark = build_session(config)
    print(build_silver(spark, config).summary())
    return 0


def cmd_research(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark research``: refresh the Safe-Harbour research views."""
    from medspark.privacy.job import build_research
    from medspark.spark import build_session

    spark = build_session(config)
    print(build_research(spark, config).summary())
    return 0


def cmd_analyze(args: argparse.Namespace, config: MedsparkConfig) -> int:
    """``medspark analyze [stats|rules|sequences|segments|risk|all] [--spec NAME]``."""
    from medspark.gold.job import analyze
    from medspark.spark import build_session

    if args.spec is not None and args.analysis != "risk":
        raise UsageError("--spec is only for `analyze risk`")
    spark = build_session(config)
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
    from medspark.io.delta import history, table_exists
    from medspark.spark import build_session

    spark = build_session(config)
    candidates = [args.table] if "/" in args.table else [f"{layer}/{args.table}" for layer in
                                                          ("bronze", "silver", "gold", "quarantine", "ops")]
    for candidate in candidates:
        layer, _, name = candidate.partition("/")
        path = config.table_path(layer, name)
        if table_exists(spark, path):
            rows = history(spark, path, args.limit).collect()  # bounded by --limit
            print(f"history of {candidate} ({path})")
            print(f"{'version':>7}  {'timestamp':<26}{'operation':<16}{'rows':>10}  parameters")
            for r in rows:
                print(f"{r['version']:>7}  {r['timestamp']!s:<26} {r['operation']:<16}{r['rows_written'] or '':>10}"
                      f"  {(r['parameters'] or '')[:80]}")
            return 0
    raise UsageError(f"no Delta table '{args.table}' under {config.lakehouse}")


COMMANDS: dict[str, Callable[[argparse.Namespace, MedsparkConfig], int]] = {
    "generate": cmd_generate,
    "ingest": cmd_ingest,
    "pipeline": cmd_pipeline,
    "silver": cmd_silver,
    "research": cmd_research,
    "analyze": cmd_analyze,
    "report": cmd_report,
    "history": cmd_history,
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
