"""spark-submit entry point for `medspark ingest`: `spark-submit jobs/ingest.py [options]` takes the CLI's options."""

import sys

from medspark.cli.jobs import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("ingest", sys.argv[1:]))
