"""Silver benchmark: full build for N patients, then the incremental run after 1% more patients arrive.

    python bench/bench_silver.py --patients 100000 [--work /tmp/medspark-bench-silver]

Steps: generate N patients (seed S) and N/100 more (another seed, so new people); ingest the first set; time the
full silver build; ingest the 1% set; time the incremental silver build (it reads only the new bronze batches).
The issue's target is incremental <= 10% of the full build. Peak memory is the RSS of the process tree. Result:
bench/results/silver-<patients>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from common import machine_info, measure, write_result

from medspark.config import load_config
from medspark.ingestion.job import ingest
from medspark.silver.job import build_silver
from medspark.spark import build_session
from medspark.synthetic import generate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="/tmp/medspark-bench-silver")
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    if not os.environ.get("MEDSPARK_PSEUDONYM_KEY"):
        os.environ["MEDSPARK_PSEUDONYM_KEY"] = os.urandom(32).hex()  # a throwaway key for synthetic data
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    base, extra = work / "src" / "base", work / "src" / "increment"
    increment = max(1, args.patients // 100)
    generate(base, patients=args.patients, seed=args.seed, workers=0)
    generate(extra, patients=increment, seed=args.seed + 1, workers=0)

    config = load_config(
        "local", environ={}, lakehouse=str(work / "lakehouse"),
        overrides=[f"spark.conf.spark.driver.memory={args.driver_memory}", "spark.master=local[2]",
                   "spark.conf.spark.sql.shuffle.partitions=8"],
    )
    spark = build_session(config)
    result: dict = {"machine": machine_info(), "patients": args.patients, "increment_patients": increment}
    with measure() as bronze:
        ingest(spark, config, str(base))
    result["bronze_base_seconds"] = round(bronze.seconds, 1)
    with measure() as full:
        first = build_silver(spark, config)
    result["silver_full"] = {"seconds": round(full.seconds, 1), "peak_rss_mib": full.peak_rss_mib,
                             "records_read": sum(t.rows_read for t in first.tables)}
    print(f"silver full: {result['silver_full']}", file=sys.stderr)
    with measure() as bronze_inc:
        ingest(spark, config, str(extra))
    result["bronze_increment_seconds"] = round(bronze_inc.seconds, 1)
    with measure() as inc:
        second = build_silver(spark, config)
    result["silver_incremental"] = {"seconds": round(inc.seconds, 1), "peak_rss_mib": inc.peak_rss_mib,
                                    "records_read": sum(t.rows_read for t in second.tables)}
    result["incremental_over_full"] = round(inc.seconds / full.seconds, 3)
    print(f"silver incremental: {result['silver_incremental']}, ratio {result['incremental_over_full']}",
          file=sys.stderr)
    out = write_result(f"silver-{args.patients}", result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
