"""Orchestration of synthetic data generation: chunks, worker processes, manifests and the run summary.

The population is cut into chunks of ``chunk_patients``; chunk ``i`` is drawn and written by one process from an
RNG seeded by ``(seed, i)`` alone, so the bytes written are identical whatever the number of workers, and memory
is bounded by the chunk size. Each chunk writes its own files (``<name>-<chunk:05d>``) plus its manifest:

- ``_manifest/defects-<chunk>.jsonl``: one row per injected defect (file, position, expected reason, layer);
- ``_manifest/records-<chunk>.json``: exact record counts per format/entity and per file, defects included;
- ``_manifest/truth-<chunk>.csv.gz`` and ``truth-admissions-<chunk>.csv.gz``: ground truth per patient and per
  inpatient stay (utilisation group, chronic conditions, identifiers, 30-day readmission).

``_manifest/summary.json`` (arguments, counts, timing) is the only file that differs between identical runs.
Every file is written under a hidden temporary name and renamed when complete; outputs of an earlier run into the
same directory that this run did not produce (e.g. more chunks before) are removed at the end.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import multiprocessing
import os
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medspark.errors import MedsparkError, UsageError
from medspark.synthetic import codes as C
from medspark.synthetic import fhir, hl7v2, synthea_csv, vitals, x12
from medspark.synthetic import textfmt as T
from medspark.synthetic.population import GROUPS, Population, build_population
from medspark.synthetic.sink import ChunkContext, Strings, write_atomic

logger = logging.getLogger(__name__)

FORMAT_DIRS = ("synthea-csv", "fhir-ndjson", "fhir-bundle", "hl7v2", "x12-837", "vitals")
FORMATS = ("synthea-csv", "fhir-ndjson", "fhir-bundle", "hl7v2", "x12-837", "vitals-jsonl")
MANIFEST_DIR = "_manifest"
_OUTPUT_PATTERNS = {
    "synthea-csv": re.compile(r"(patients|encounters|conditions|medications|procedures|observations)-\d{5,}\.csv"),
    "fhir-ndjson": re.compile(r"(Patient|Encounter|Condition|MedicationRequest|Procedure|Observation)\.\d{5,}\.ndjson"),
    "fhir-bundle": re.compile(r"bundle-\d{5,}-\d{5,}\.json"),
    "hl7v2": re.compile(r"(adt-\d{5,}\.hl7|oru-\d{5,}\.mllp)"),
    "x12-837": re.compile(r"837[pi]-\d{5,}\.x12"),
    "vitals": re.compile(r"vitals-\d{5,}\.jsonl"),
    MANIFEST_DIR: re.compile(r"(defects-\d{5,}\.jsonl|records-\d{5,}\.json|truth-(admissions-)?\d{5,}\.csv\.gz"
                             r"|summary\.json)"),
}


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: The output directory.
        patients: Number of patients generated.
        chunks: Number of chunks.
        files: Number of files written (data and manifest).
        records: Records written per format (defective records and duplicates included).
        defects: Number of injected defects.
        seconds: Wall-clock duration.
    """

    out_dir: Path
    patients: int
    chunks: int
    files: int
    records: dict[str, int] = field(default_factory=dict)
    defects: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        """A short human-readable report (printed by ``medspark generate``)."""
        rate = self.patients / self.seconds if self.seconds > 0 else 0.0
        lines = [f"generated {self.patients:,} patients in {self.chunks} chunk(s) into {self.out_dir}: "
                 f"{self.files:,} files, {self.defects:,} defects, {self.seconds:.1f} s ({rate:,.0f} patients/s)"]
        lines += [f"  {fmt:<13} {count:>12,} records" for fmt, count in self.records.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class _ChunkSpec:
    out_dir: str
    seed: int
    chunk: int
    first_index: int
    patients: int
    defect_rate: float


def generate(
    out_dir: str | Path,
    *,
    patients: int,
    seed: int,
    defect_rate: float = 0.0,
    workers: int = 0,
    chunk_patients: int = 20000,
) -> GenerateSummary:
    """Generate one consistent synthetic population in all five source formats.

    Args:
        out_dir: Directory to write into (created if missing). Re-running with the same arguments rewrites
            identical files; files of earlier runs that this run does not produce are removed.
        patients: Number of patients (>= 1).
        seed: Non-negative seed; with ``chunk_patients`` it fixes every byte written.
        defect_rate: Probability (0..0.5) that a record is damaged; each defect is listed in the manifest.
        workers: Worker processes; 0 means ``os.cpu_count()``. Does not change the output.
        chunk_patients: Patients per chunk (the unit of parallelism and of memory use).

    Returns:
        A :class:`GenerateSummary`.

    Raises:
        UsageError: An argument is out of range (the message names it).
        MedsparkError: A worker process died.
    """
    _check_args(patients=patients, seed=seed, defect_rate=defect_rate, workers=workers,
                chunk_patients=chunk_patients)
    started = time.monotonic()
    root = Path(out_dir)
    for sub in (*FORMAT_DIRS, MANIFEST_DIR):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for stale in (root / sub).glob(".*.tmp"):
            stale.unlink()  # left by a killed run
    n_chunks = -(-patients // chunk_patients)
    specs = [
        _ChunkSpec(str(root), seed, i, i * chunk_patients, min(chunk_patients, patients - i * chunk_patients),
                   defect_rate)
        for i in range(n_chunks)
    ]
    n_workers = min(workers or os.cpu_count() or 1, n_chunks)
    logger.info("generating %d patients in %d chunks with %d workers", patients, n_chunks, n_workers)
    results: list[dict[str, Any]] = []
    if n_workers == 1:
        for spec in specs:
            results.append(_run_chunk(spec))
            logger.info("chunk %d/%d written", len(results), n_chunks)
    else:
        # "spawn" keeps workers independent of the caller's threads (a Spark driver, py4j); a worker that dies
        # (e.g. a script without an ``if __name__ == "__main__":`` guard) breaks the pool instead of hanging it.
        context = multiprocessing.get_context("spawn")
        try:
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
                for future in as_completed([pool.submit(_run_chunk, spec) for spec in specs]):
                    results.append(future.result())
                    logger.info("chunk %d/%d written", len(results), n_chunks)
        except BrokenProcessPool as exc:
            raise MedsparkError(
                "generate: a worker process died; when calling generate() from a script with workers > 1, "
                "put the call under `if __name__ == \"__main__\":` (worker processes re-import the main module)"
            ) from exc
    results.sort(key=lambda r: r["chunk"])

    written = {rel for r in results for rel in r["files"]}
    _prune(root, written | {f"{MANIFEST_DIR}/summary.json"})
    records: dict[str, dict[str, int]] = {}
    for r in results:
        for fmt, entities in r["records"].items():
            for entity, count in entities.items():
                records.setdefault(fmt, {}).setdefault(entity, 0)
                records[fmt][entity] += count
    defects = Counter[str]()
    for r in results:
        defects.update(r["defects"])
    seconds = time.monotonic() - started
    summary = GenerateSummary(
        out_dir=root, patients=patients, chunks=n_chunks, files=len(written) + 1,
        records={fmt: sum(records.get(fmt, {}).values()) for fmt in FORMATS}, defects=sum(defects.values()),
        seconds=seconds,
    )
    summary_json = {
        "args": {"patients": patients, "seed": seed, "defect_rate": defect_rate, "workers": n_workers,
                 "chunk_patients": chunk_patients},
        "chunks": n_chunks, "files": summary.files, "records": records, "records_per_format": summary.records,
        "defects": dict(sorted(defects.items())), "seconds": round(seconds, 3),
        "patients_per_second": round(patients / seconds, 1) if seconds > 0 else None,
    }
    write_atomic(root / MANIFEST_DIR / "summary.json", (json.dumps(summary_json, indent=2) + "\n").encode())
    logger.info("generated %d patients, %d files, %d defects in %.1f s", patients, summary.files,
                summary.defects, seconds)
    return summary


def _check_args(*, patients: int, seed: int, defect_rate: float, workers: int, chunk_patients: int) -> None:
    def bad(name: str, value: object, rule: str) -> UsageError:
        return UsageError(f"generate: {name}={value!r} is invalid ({rule})")

    for name, value, minimum in (("patients", patients, 1), ("seed", seed, 0), ("workers", workers, 0),
                                 ("chunk_patients", chunk_patients, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise bad(name, value, "must be an integer")
        if value < minimum:
            raise bad(name, value, f"must be >= {minimum}")
    if patients > 100_000_000:
        raise bad("patients", patients, "must be <= 100000000 (MRN/SSN space)")
    if chunk_patients > 1_000_000:
        raise bad("chunk_patients", chunk_patients, "must be <= 1000000")
    if not isinstance(defect_rate, int | float) or not 0.0 <= float(defect_rate) <= 0.5:
        raise bad("defect_rate", defect_rate, "must be a number between 0 and 0.5")


def _prune(root: Path, keep: set[str]) -> None:
    for sub, pattern in _OUTPUT_PATTERNS.items():
        for path in (root / sub).iterdir():
            rel = f"{sub}/{path.name}"
            if path.is_file() and pattern.fullmatch(path.name) and rel not in keep:
                path.unlink()


def _run_chunk(spec: _ChunkSpec) -> dict[str, Any]:
    """Draw and write one chunk (runs in a worker process)."""
    pop = build_population(spec.seed, spec.chunk, spec.first_index, spec.patients)
    ctx = ChunkContext(out_dir=Path(spec.out_dir), seed=spec.seed, chunk=spec.chunk,
                       defect_rate=float(spec.defect_rate))
    strings = Strings(pop)
    for writer in (synthea_csv, fhir, hl7v2, x12, vitals):
        writer.write(pop, ctx, strings)
    files = dict(ctx.files)
    files.update(_write_manifest(pop, ctx, strings))
    return {
        "chunk": spec.chunk,
        "files": sorted(files),
        "records": {fmt: dict(entities) for fmt, entities in ctx.records.items()},
        "defects": dict(Counter(e["kind"] for e in ctx.events)),
    }


def _write_manifest(pop: Population, ctx: ChunkContext, strings: Strings) -> dict[str, int]:
    c = pop.chunk
    manifest = ctx.out_dir / MANIFEST_DIR
    events = sorted(ctx.events, key=lambda e: (e["file"], e["position"]))
    lines = [
        json.dumps({"defect_id": f"{c:05d}-{i:06d}", **{k: e[k] for k in (
            "kind", "format", "file", "position", "entity", "expected_reason", "layer")}})
        for i, e in enumerate(events, start=1)
    ]
    write_atomic(manifest / f"defects-{c:05d}.jsonl", "".join(line + "\n" for line in lines).encode())
    records = {
        "chunk": c, "patients": pop.n,
        "by_entity": {fmt: dict(sorted(ents.items())) for fmt, ents in sorted(ctx.records.items())},
        "by_file": dict(sorted(ctx.files.items())),
    }
    write_atomic(manifest / f"records-{c:05d}.json", (json.dumps(records, indent=1) + "\n").encode())
    write_atomic(manifest / f"truth-{c:05d}.csv.gz",
                 gzip.compress(_truth_patients(pop, strings), compresslevel=6, mtime=0))
    write_atomic(manifest / f"truth-admissions-{c:05d}.csv.gz",
                 gzip.compress(_truth_admissions(pop, strings), compresslevel=6, mtime=0))
    return {f"{MANIFEST_DIR}/{name}": 0 for name in (
        f"defects-{c:05d}.jsonl", f"records-{c:05d}.json", f"truth-{c:05d}.csv.gz",
        f"truth-admissions-{c:05d}.csv.gz")}


def _csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _truth_patients(pop: Population, strings: Strings) -> bytes:
    p, e = pop.patients, pop.encounters
    n_enc = np.diff(e.offsets)
    n_stays = np.bincount(pop.stays.pat, minlength=pop.n)
    header = ["patient_uuid", "mrn", "ssn", "member_id", "payer", "sex", "birth_date", "race", "ethnicity",
              "age_at_2025_12_31", "utilisation_group", *C.CHRONIC_KEYS, "n_chronic", "n_encounters",
              "n_inpatient_stays", "in_bundle", "lab_si_units"]
    rows = [
        [p.uuid[i], p.mrn[i], p.ssn[i], p.member_id[i], C.PAYERS[p.payer[i]].name, "M" if p.male[i] else "F",
         strings.birth_date[i], C.RACES[p.race[i]][0], C.ETHNICITIES[p.ethnicity[i]][0], f"{p.age[i]:.2f}",
         GROUPS[p.group[i]], *p.chronic[i].astype(int).tolist(), int(p.chronic[i].sum()), int(n_enc[i]),
         int(n_stays[i]), int(p.in_bundle[i]), int(p.lab_si[i])]
        for i in range(pop.n)
    ]
    return _csv_bytes(header, rows)


def _truth_admissions(pop: Population, strings: Strings) -> bytes:
    s, p = pop.stays, pop.patients
    admit, discharge = T.iso_utc(s.admit), T.iso_utc(s.discharge)
    hf, ckd = C.CHRONIC_KEYS.index("heart_failure"), C.CHRONIC_KEYS.index("ckd")
    header = ["stay_id", "visit_number", "patient_uuid", "mrn", "admit_utc", "discharge_utc", "los_days",
              "principal_snomed", "principal_icd10", "via_ed", "discharge_disposition", "age_at_admission",
              "n_chronic", "heart_failure", "ckd", "prior_admissions_365d", "readmit_prob", "is_readmission",
              "readmitted_30d"]
    rows = []
    for k in range(len(s.enc)):
        i, row = int(s.pat[k]), int(s.enc[k])
        reason = C.CONDITIONS[s.reason[k]]
        rows.append([
            strings.enc_uuid[row], strings.enc_visit[row], p.uuid[i], p.mrn[i], admit[k], discharge[k],
            f"{s.los_days[k]:.3f}", reason.snomed, reason.icd10, int(s.via_ed[k]),
            ("01", "06", "03")[s.disposition[k]], f"{s.age[k]:.2f}", int(p.chronic[i].sum()),
            int(p.chronic[i, hf]), int(p.chronic[i, ckd]), int(s.prior_365[k]), f"{s.prob[k]:.4f}",
            int(s.is_readmission[k]), int(s.readmitted_30d[k]),
        ])
    return _csv_bytes(header, rows)
