"""Logging set-up for the CLI and jobs: counts, table names and run ids only, never record values.

Progress lines (``[ingest] 3/7 fhir-ndjson ...``) go to stderr so stdout stays for summaries.
"""

from __future__ import annotations

import logging
import sys
import time

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(*, verbose: bool = False) -> None:
    """Configure the root logger once for a CLI/job process."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format=_FORMAT, stream=sys.stderr, force=True)
    # py4j and Spark's Python side are chatty at INFO and may echo values in debug output.
    for noisy in ("py4j", "pyspark", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Progress:
    """Stage/percentage lines on stderr for long jobs (``[job] step i/n (pct%) label elapsed``)."""

    def __init__(self, job: str, total: int) -> None:
        self.job = job
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()

    def step(self, label: str) -> None:
        """Report that one more of ``total`` steps is starting."""
        self.done += 1
        pct = 100 * (self.done - 1) // self.total
        elapsed = time.monotonic() - self.started
        print(
            f"[{self.job}] {self.done}/{self.total} ({pct:3d}%) {label} +{elapsed:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def finish(self) -> None:
        """Report completion."""
        elapsed = time.monotonic() - self.started
        print(f"[{self.job}] done (100%) in {elapsed:.1f}s", file=sys.stderr, flush=True)
