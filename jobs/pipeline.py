"""spark-submit entry point for `medspark pipeline`: `spark-submit jobs/pipeline.py [options]` takes the CLI's options."""

import sys

from medspark.cli.jobs import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("pipeline", sys.argv[1:]))
