"""spark-submit entry point for `medspark history`: `spark-submit jobs/history.py [options]` takes the CLI's options."""

import sys

from medspark.cli.jobs import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("history", sys.argv[1:]))
