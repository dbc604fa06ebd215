"""spark-submit entry point for `medspark restore`; takes the same options as the CLI command."""

import sys

from medspark.cli.jobs import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("restore", sys.argv[1:]))
