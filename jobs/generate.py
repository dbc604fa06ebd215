"""spark-submit entry point for `medspark generate`: `spark-submit jobs/generate.py [options]` takes the CLI's options."""

import sys

from medspark.cli.jobs import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("generate", sys.argv[1:]))
