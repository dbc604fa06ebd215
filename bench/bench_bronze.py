"""Bronze benchmark: generator throughput, then medspark ingestion vs a plain copy of the same files.

    python bench/bench_bronze.py --patients 100000 [--work /tmp/medspark-bench]

The plain copy reads the same files with ``spark.read.text`` (line formats) or ``binaryFile`` (whole-file formats)
and writes them to Delta with no parsing and no lineage. Throughput is records/s on the same records; the ratio
is medspark/plain (1.0 = as fast as copying). Peak memory is the RSS of the whole process tree (driver JVM and
Python workers), sampled every 0.25 s. Result: bench/results/bronze-<patients>.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from common import machine_info, measure, write_result
from pyspark.sql import functions as sf

from medspark.config import load_config
from medspark.ingestion.job import ingest
from medspark.ingestion.registry import get_format
from medspark.io.sources import escape_glob, list_files
from medspark.spark import build_session
from medspark.synthetic import generate

FORMAT_DIRS = {
    "synthea-csv": "synthea-csv",
    "fhir-ndjson": "fhir-ndjson",
    "fhir-bundle": "fhir-bundle",
    "hl7v2": "hl7v2",
    "x12-837": "x12-837",
    "vitals-jsonl": "vitals",
}


def _spark_parse_reference(spark, name: str, files, out: Path) -> float | None:
    """Seconds for Spark's own parser alone to turn the files into columns plus raw text, written to Delta.

    A floor for any parsing ingest on this machine, next to the plain copy: FHIR NDJSON goes through
    ``from_json`` with the typed schema medspark reads for that resource type (no validity parse, routing,
    lineage, quarantine or duplicate check); Synthea CSV through ``spark.read.csv`` with a header (strings, no
    typing). Other formats have no Spark-native parser to compare with (None).
    """
    if name == "fhir-ndjson":
        from medspark.ingestion.fhir.resources import _SPECS, TYPED_ENTITIES

        def parse(path: str, stem: str):
            if stem not in TYPED_ENTITIES:
                return None
            schema = _SPECS[TYPED_ENTITIES[stem]].json_schema
            return spark.read.text(path).select("value", sf.from_json("value", schema).alias("parsed"))
    elif name == "synthea-csv":
        def parse(path: str, stem: str):
            return spark.read.option("header", True).csv(path)
    else:
        return None
    with measure() as timing:
        for f in files:
            stem = f.path.rsplit("/", 1)[-1].split(".", 1)[0]
            frame = parse(escape_glob(f.path), stem)
            if frame is not None:
                frame.write.format("delta").mode("overwrite").save(str(out / stem))
    return timing.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="/tmp/medspark-bench")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--skip-generate", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    source = work / f"src-{args.patients}"
    result: dict = {"machine": machine_info(), "patients": args.patients, "seed": args.seed}

    if not args.skip_generate:
        shutil.rmtree(source, ignore_errors=True)
        with measure() as gen:
            summary = generate(source, patients=args.patients, seed=args.seed, workers=0)
        result["generate"] = {
            "seconds": round(gen.seconds, 1),
            "cpu_seconds": round(gen.cpu_seconds, 1),
            "patients_per_second": round(args.patients / gen.seconds, 1),
            "peak_rss_mib": gen.peak_rss_mib,
            "bytes": sum(p.stat().st_size for p in source.rglob("*") if p.is_file()),
            "summary": str(summary)[:2000],
        }
        print(f"generate: {result['generate']['seconds']} s, {result['generate']['patients_per_second']} patients/s",
              file=sys.stderr)

    config = load_config(
        "local",
        environ={},
        lakehouse=str(work / "lakehouse"),
        overrides=[f"spark.conf.spark.driver.memory={args.driver_memory}", "spark.master=local[2]",
                   "spark.conf.spark.sql.shuffle.partitions=4"],
    )
    shutil.rmtree(work / "lakehouse", ignore_errors=True)
    shutil.rmtree(work / "plain", ignore_errors=True)
    spark = build_session(config)
    spark.range(1).write.format("delta").mode("overwrite").save(str(work / "plain" / "warmup"))
    formats = {}
    for name, folder in FORMAT_DIRS.items():
        root = source / folder
        if not root.exists():
            continue
        with measure() as med:
            run = ingest(spark, config, str(root), source_format=name)
        records = sum(t.rows_read for t in run.tables)
        files = list_files(spark, str(root))
        fmt = get_format(name)
        paths = [escape_glob(f.path) for f in files]
        with measure() as plain:
            reader = spark.read.format("text" if fmt.read_mode == "lines" else "binaryFile").load(paths)
            reader.withColumn("_source_file", sf.col("_metadata.file_path")).write.format("delta").mode(
                "overwrite").save(str(work / "plain" / folder))
        reference = _spark_parse_reference(spark, name, files, work / "typed" / folder)
        formats[name] = {
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "records": records,
            "quarantined": sum(t.rows_quarantined for t in run.tables),
            "medspark_seconds": round(med.seconds, 1),
            "plain_copy_seconds": round(plain.seconds, 1),
            "medspark_records_per_second": round(records / med.seconds, 1),
            "plain_copy_records_per_second": round(records / plain.seconds, 1),
            "ratio_medspark_over_plain": round(plain.seconds / med.seconds, 3),
            "medspark_peak_rss_mib": med.peak_rss_mib,
            "medspark_peak_rss_by_kind": med.peak_rss_by_kind,
            "plain_peak_rss_mib": plain.peak_rss_mib,
        }
        if reference is not None:
            formats[name]["spark_parse_only_seconds"] = round(reference, 1)
            formats[name]["ratio_medspark_over_spark_parse_only"] = round(reference / med.seconds, 3)
        print(f"{name}: {formats[name]}", file=sys.stderr)
    result["ingest"] = formats
    total_med = sum(f["medspark_seconds"] for f in formats.values())
    total_plain = sum(f["plain_copy_seconds"] for f in formats.values())
    result["ingest_total"] = {
        "records": sum(f["records"] for f in formats.values()),
        "medspark_seconds": round(total_med, 1),
        "plain_copy_seconds": round(total_plain, 1),
        "ratio_medspark_over_plain": round(total_plain / total_med, 3) if total_med else None,
    }
    out = write_result(f"bronze-{args.patients}", result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
