"""spark-submit entry point for `medspark unlock`; takes the same options as the CLI command."""

import sys

from medspark.cli.jobs import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("unlock", sys.argv[1:]))
