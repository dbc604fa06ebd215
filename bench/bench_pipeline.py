"""Scaling benchmark (issue 5 §4): the whole pipeline at growing population sizes, as an operator would run it.

    python bench/bench_pipeline.py --patients 10000 [--patients 100000 ...] [--work DIR] [--keep]
                                   [--out bench/results/pipeline.json] [--plot docs/benchmarks-pipeline.png]

For each size: ``medspark generate`` (seed 42, timed on its own), then ``medspark pipeline`` (bronze, silver,
research, gold) as a subprocess of the ``medspark`` console script, with a configuration file written for the run
(``local[*]``, shuffle partitions sized for the machine's cores and the source size), a fresh lakehouse and the
pseudonym key from ``MEDSPARK_PSEUDONYM_KEY`` (a random one, never printed, when it is unset). Recorded per size:

- wall seconds per stage, parsed from the pipeline's summary lines (``  <stage> <status> <seconds> s``), and the
  wall time of the whole ``medspark pipeline`` process (JVM start-up and the Delta JAR resolution included);
- records/s: input records are the generator's own counts (``<source>/_manifest/summary.json``, every record
  written); this costs nothing, whereas counting bronze rows would need a second Spark session;
- peak RSS of the pipeline's process tree (the CLI's Python process, the driver JVM -- which in local mode is also
  the executor -- and Python workers), sampled every second, with the load average seen meanwhile;
- bytes on disk per lakehouse layer, the source size, machine, versions and git commit.

Results are merged into the JSON file keyed by patient count, so sizes can be run at different times. Sizes below
10,000 patients are marked ``smoke``: they show that the script works, not how the pipeline scales. ``--plot`` draws
time vs size from the JSON (no run needed with ``--patients`` omitted) and rewrites the Markdown table next to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "pipeline.json"
STAGES = ("bronze", "silver", "research", "gold")
LAYERS = ("bronze", "quarantine", "silver", "research", "gold", "ops")
SEED = 42
SMOKE_BELOW = 10_000
# Issue 5: 1,000,000 patients may cost at most 12x 100,000, i.e. 1.2x linear growth.
NEAR_LINEAR_TOLERANCE = 1.2
TARGET_END_TO_END_SECONDS = 3600.0
TARGET_PATIENTS = 1_000_000
ISSUE_SIZES = (10_000, 100_000, 1_000_000)
# Shuffle partitions: two per core at least, more as the source grows (about 256 MiB of source text per partition;
# adaptive execution coalesces the small ones, so too many costs little and too few spills).
SOURCE_BYTES_PER_PARTITION = 256 * 2**20
_STAGE_LINE = re.compile(r"^ {2}(?P<stage>\S+)\s+(?P<status>succeeded|skipped|failed)\s+(?P<seconds>\d+(?:\.\d+)?) s\b")


# ------------------------------------------------------------------------------------------------ pure helpers
def parse_pipeline_summary(stdout: str) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The run id and ``{stage: {"status", "seconds"}}`` from ``PipelineResult.summary()`` output.

    Only the first block (from ``pipeline run <id>`` to the first blank line) is read: the stages' own summaries
    follow it and are not parsed.
    """
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("pipeline run ")), None)
    if start is None:
        return None, {}
    run_id = lines[start][len("pipeline run "):].strip() or None
    stages: dict[str, dict[str, Any]] = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        match = _STAGE_LINE.match(line)
        if match:
            stages[match["stage"]] = {"status": match["status"], "seconds": float(match["seconds"])}
    return run_id, stages


def shuffle_partitions(cores: int, source_bytes: int) -> int:
    """At least two per core; one per ``SOURCE_BYTES_PER_PARTITION`` of source; a multiple of the core count."""
    cores = max(1, cores)
    wanted = max(2 * cores, math.ceil(source_bytes / SOURCE_BYTES_PER_PARTITION))
    return math.ceil(wanted / cores) * cores


def merge_results(existing: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` with ``entry`` stored under its patient count (replacing an earlier run of that size)."""
    merged: dict[str, Any] = {"benchmark": "pipeline", "sizes": {}}
    if existing:
        merged.update({k: v for k, v in existing.items() if k != "sizes"})
        merged["sizes"] = dict(existing.get("sizes", {}))
    merged["sizes"][str(int(entry["patients"]))] = dict(entry)
    merged["sizes"] = {k: merged["sizes"][k] for k in sorted(merged["sizes"], key=int)}
    return merged


def stage_seconds(entry: Mapping[str, Any]) -> dict[str, float]:
    """Seconds per stage plus ``total`` (the ``medspark pipeline`` process's wall time) of one size's entry."""
    pipeline = entry["pipeline"]
    seconds = {stage: float(v["seconds"]) for stage, v in pipeline["stages"].items()}
    seconds["total"] = float(pipeline["wall_seconds"])
    return seconds


def growth_rows(points: Sequence[tuple[int, Mapping[str, float]]],
                tolerance: float = NEAR_LINEAR_TOLERANCE) -> list[dict[str, Any]]:
    """Growth between consecutive sizes: for each series (stage or total), time ratio over size ratio.

    Args:
        points: ``(patients, {series: seconds})``, any order; sorted by patients here.
        tolerance: a series whose time ratio exceeds ``tolerance`` x the size ratio is flagged super-linear.

    Returns:
        One row per consecutive pair: ``from``, ``to``, ``size_ratio`` and ``series`` mapping each series present
        at both sizes to ``time_ratio``, ``relative`` (time ratio / size ratio; 1.0 is linear), ``exponent``
        (log time ratio / log size ratio) and ``super_linear``.
    """
    ordered = sorted(points, key=lambda p: p[0])
    rows: list[dict[str, Any]] = []
    for (n0, t0), (n1, t1) in itertools.pairwise(ordered):
        if n1 == n0:
            continue
        size_ratio = n1 / n0
        series: dict[str, dict[str, Any]] = {}
        for name in t0:
            if name not in t1 or t0[name] <= 0 or t1[name] <= 0:
                continue
            time_ratio = t1[name] / t0[name]
            series[name] = {"time_ratio": round(time_ratio, 3), "relative": round(time_ratio / size_ratio, 3),
                            "exponent": round(math.log(time_ratio) / math.log(size_ratio), 3),
                            "super_linear": time_ratio > tolerance * size_ratio}
        rows.append({"from": n0, "to": n1, "size_ratio": round(size_ratio, 3), "series": series})
    return rows


def directory_bytes(root: Path) -> int:
    """Apparent size of every regular file under ``root`` (0 when it does not exist)."""
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def bench_config_yaml(*, cores: int, partitions: int, driver_memory: str) -> str:
    """The configuration file of a benchmark run (merged onto conf/base.yaml by ``--config FILE``)."""
    return "\n".join([
        "# Written by bench/bench_pipeline.py for one run: local[*], shuffle partitions sized for "
        f"{cores} core(s) and the source size.",
        "profile: bench",
        "spark:",
        "  master: local[*]",
        "  conf:",
        '    spark.ui.enabled: "false"',
        f'    spark.sql.shuffle.partitions: "{partitions}"',
        f'    spark.default.parallelism: "{partitions}"',
        f"    spark.driver.memory: {driver_memory}",
        "    spark.driver.host: 127.0.0.1",
        "    spark.driver.bindAddress: 127.0.0.1",
        f'    spark.databricks.delta.snapshotPartitions: "{max(1, cores)}"',
        "",
    ])


# ---------------------------------------------------------------------------------------------- measurement
@dataclass
class TreeSampler:
    """Samples the RSS of a process and its descendants every ``interval`` seconds in a thread; keeps the peak."""

    pid: int
    interval: float = 1.0
    peak_mib: float = 0.0
    peak_by_kind: dict[str, float] = field(default_factory=dict)
    peak_at_seconds: float = 0.0
    max_by_kind: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    max_load_1m: float = 0.0
    _started: float = field(default_factory=time.perf_counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        by_kind: dict[str, float] = {}
        for proc in procs:
            try:
                name = proc.name()
                # The root is the `medspark` console script: the Python driver (its process name is "medspark").
                kind = ("cli" if proc.pid == self.pid else "jvm" if "java" in name
                        else "python_workers" if "python" in name else "other")
                by_kind[kind] = by_kind.get(kind, 0.0) + proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
        total = sum(by_kind.values())
        self.samples += 1
        self.max_load_1m = max(self.max_load_1m, os.getloadavg()[0])
        for kind, mib in by_kind.items():
            self.max_by_kind[kind] = round(max(self.max_by_kind.get(kind, 0.0), mib), 1)
        if total > self.peak_mib:
            self.peak_mib = total
            self.peak_by_kind = {k: round(v, 1) for k, v in sorted(by_kind.items())}
            self.peak_at_seconds = round(time.perf_counter() - self._started, 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _medspark_cli() -> list[str]:
    script = Path(sys.executable).parent / "medspark"
    if script.exists():
        return [str(script)]
    found = shutil.which("medspark")
    if found is None:
        raise SystemExit("bench_pipeline: the `medspark` console script is not installed (pip install -e .)")
    return [found]


def _child_env(key: str) -> dict[str, str]:
    """This environment without MEDSPARK_* config overrides (the run's config is its file), plus the key."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEDSPARK_") or k in ("MEDSPARK_CONF_DIR",)}
    env["MEDSPARK_PSEUDONYM_KEY"] = key
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def _run_measured(command: list[str], *, env: Mapping[str, str], log_dir: Path, name: str,
                  interval: float) -> dict[str, Any]:
    """Run ``command``; stdout/stderr go to ``<log_dir>/<name>.{out,err}``. Wall time, exit code, peak RSS."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    load_before = os.getloadavg()[0]
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=dict(env), cwd=REPO)
        sampler = TreeSampler(proc.pid, interval=interval)
        sampler.start()
        try:
            code = proc.wait()
        finally:
            sampler.stop()
        seconds = time.perf_counter() - started
    return {"exit_code": code, "wall_seconds": round(seconds, 2), "peak_rss_mib": round(sampler.peak_mib, 1),
            "peak_rss_by_kind": sampler.peak_by_kind, "peak_rss_at_seconds": sampler.peak_at_seconds,
            "max_rss_by_kind": dict(sorted(sampler.max_by_kind.items())), "rss_samples": sampler.samples,
            "load_1m_before": round(load_before, 2), "load_1m_max": round(sampler.max_load_1m, 2),
            "stdout": str(out_path), "stderr": str(err_path)}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False,
                              timeout=30).stdout.strip()
    except OSError:
        return ""


def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Any] = {}
    for package in ("medspark", "pyspark", "delta-spark", "great-expectations"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    try:
        text = subprocess.run([java or "java", "-version"], capture_output=True, text=True, timeout=30).stderr
        found["java"] = text.splitlines()[0] if text else None
    except OSError:
        found["java"] = None
    return found


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS, Python and package versions (bench/common.py's fields plus Java and Delta)."""
    from common import machine_info

    return {**machine_info(), "versions": _versions(), "python_implementation": platform.python_implementation()}


def _manifest_records(source: Path) -> tuple[int, dict[str, int]]:
    summary = json.loads((source / "_manifest" / "summary.json").read_text())
    per_format = {k: int(v) for k, v in summary["records_per_format"].items()}
    return sum(per_format.values()), per_format


def _error_stage(stderr_path: str) -> str | None:
    """The failed stage's name from the CLI's one error line (its message is not copied: it may quote data)."""
    try:
        text = Path(stderr_path).read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^medspark: error: stage '(\w+)' failed", text, flags=re.MULTILINE)
    return match[1] if match else None


# ----------------------------------------------------------------------------------------------------- one size
def run_size(patients: int, *, work: Path, driver_memory: str, partitions: int | None, interval: float,
             keep: bool, key: str, key_origin: str) -> dict[str, Any]:
    """Generate ``patients`` and run the pipeline on them; the result entry for the JSON."""
    root = work / f"pipeline-{patients}"
    source, lakehouse, logs = root / "source", root / "lakehouse", root / "logs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cli = _medspark_cli()
    env = _child_env(key)
    cores = os.cpu_count() or 1
    started_utc = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    _log(f"{patients:,} patients: medspark generate")
    gen = _run_measured([*cli, "generate", "--patients", str(patients), "--seed", str(SEED), "--out", str(source)],
                        env=env, log_dir=logs, name="generate", interval=interval)
    if gen["exit_code"] != 0:
        raise SystemExit(f"bench_pipeline: generate failed with exit code {gen['exit_code']} (see {gen['stderr']})")
    records, records_by_format = _manifest_records(source)
    source_bytes = directory_bytes(source) - directory_bytes(source / "_manifest")
    generator_seconds = json.loads((source / "_manifest" / "summary.json").read_text()).get("seconds")

    partitions = partitions or shuffle_partitions(cores, source_bytes)
    config_text = bench_config_yaml(cores=cores, partitions=partitions, driver_memory=driver_memory)
    config_path = root / "bench-config.yaml"
    config_path.write_text(config_text)

    _log(f"{patients:,} patients: medspark pipeline ({records:,} records, {source_bytes / 2**20:,.0f} MiB, "
         f"{partitions} shuffle partitions)")
    run = _run_measured([*cli, "--config", str(config_path), "--lakehouse", str(lakehouse), "pipeline",
                         "--source", str(source)], env=env, log_dir=logs, name="pipeline", interval=interval)
    run_id, stages = parse_pipeline_summary(Path(run["stdout"]).read_text(errors="replace"))
    if run["exit_code"] != 0 or set(stages) != set(STAGES) or any(s["status"] != "succeeded" for s in stages.values()):
        failed = _error_stage(run["stderr"])
        raise SystemExit(f"bench_pipeline: pipeline at {patients} patients did not succeed (exit {run['exit_code']}, "
                         f"failed stage {failed or 'unknown'}, stages parsed {sorted(stages)}); logs in {logs}")

    layers = {layer: directory_bytes(lakehouse / layer) for layer in LAYERS}
    wall = run["wall_seconds"]
    stage_sum = sum(s["seconds"] for s in stages.values())
    entry: dict[str, Any] = {
        "patients": patients,
        "seed": SEED,
        "smoke": patients < SMOKE_BELOW,
        "started_utc": started_utc,
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD") or None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
        "config": {"file": config_text, "shuffle_partitions": partitions, "driver_memory": driver_memory,
                   "pseudonym_key": key_origin},
        "input": {"records": records, "records_by_format": records_by_format, "source_bytes": source_bytes,
                  "records_counted_from": "generator manifest (<source>/_manifest/summary.json records_per_format)"},
        "generate": {"wall_seconds": gen["wall_seconds"], "generator_seconds": generator_seconds,
                     "peak_rss_mib": gen["peak_rss_mib"], "peak_rss_by_kind": gen["peak_rss_by_kind"]},
        "pipeline": {
            "run_id": run_id,
            "stages": stages,
            "wall_seconds": wall,
            "stage_seconds_sum": round(stage_sum, 1),
            "outside_stages_seconds": round(wall - stage_sum, 1),
            "records_per_second": round(records / wall, 1) if wall else None,
            "stage_records_per_second": {s: round(records / v["seconds"], 1) if v["seconds"] else None
                                         for s, v in stages.items()},
            "peak_rss_mib": run["peak_rss_mib"],
            "peak_rss_by_kind": run["peak_rss_by_kind"],
            "peak_rss_at_seconds": run["peak_rss_at_seconds"],
            "max_rss_by_kind": run["max_rss_by_kind"],
            "rss_sample_interval_seconds": interval,
            "rss_samples": run["rss_samples"],
            "load_1m_before": run["load_1m_before"],
            "load_1m_max": run["load_1m_max"],
        },
        "end_to_end_seconds_with_generate": round(gen["wall_seconds"] + wall, 2),
        "lakehouse_bytes": {**layers, "total": sum(layers.values())},
    }
    if keep:
        entry["kept_work_dir"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return entry


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- plot and doc
def _sized_points(results: Mapping[str, Any], *, include_smoke: bool) -> list[tuple[int, dict[str, float]]]:
    return [(int(n), stage_seconds(e)) for n, e in sorted(results.get("sizes", {}).items(), key=lambda kv: int(kv[0]))
            if include_smoke or not e.get("smoke")]


def plot(results: Mapping[str, Any], path: Path) -> bool:
    """Log-log time vs patients, one line per stage and the total, dashed linear growth from the smallest total.

    Smoke sizes are drawn only when no real size exists (then the title says so). Returns False (and writes
    nothing) when the JSON holds no size at all.
    """
    points = _sized_points(results, include_smoke=False)
    smoke_only = not points
    if smoke_only:
        points = _sized_points(results, include_smoke=True)
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8, 5.5))
    sizes = [n for n, _ in points]
    for name in (*STAGES, "total"):
        xs = [n for n, t in points if name in t]
        ys = [t[name] for _, t in points if name in t]
        ax.plot(xs, ys, marker="o", linewidth=2.5 if name == "total" else 1.5,
                color="black" if name == "total" else None, label=f"{name} (medspark pipeline wall)"
                if name == "total" else name)
    n0, t0 = points[0][0], points[0][1]["total"]
    ax.plot([n0, max(sizes[-1], n0 * 10)], [t0, t0 * max(sizes[-1], n0 * 10) / n0], linestyle="--", color="grey",
            label=f"linear growth from {n0:,} patients")
    ax.plot([TARGET_PATIENTS], [TARGET_END_TO_END_SECONDS], marker="*", markersize=14, linestyle="none",
            color="red", label="target: 1,000,000 patients in 60 min")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_xlabel("generated patients")
    ax.set_ylabel("wall seconds")
    cores = next(iter(results["sizes"].values()))["machine"].get("cores")
    title = f"medspark pipeline: time vs data size ({cores} cores)"
    ax.set_title(title + (" -- SMOKE SIZES ONLY, not a scaling result" if smoke_only else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 600 else f"{value:,.0f} ({value / 60:.1f} min)"


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def _size_table(entries: Iterable[tuple[int, Mapping[str, Any]]]) -> list[str]:
    lines = ["| patients | input records | source MiB | generate s | " + " | ".join(f"{s} s" for s in STAGES)
             + " | outside stages s | pipeline wall s | records/s | peak RSS MiB (by process) | load 1m max "
             "| shuffle partitions | commit |",
             "|" + "---|" * (11 + len(STAGES))]
    for n, e in entries:
        p = e["pipeline"]
        kinds = p.get("peak_rss_by_kind", {})
        lines.append(
            f"| {n:,}{' (smoke)' if e.get('smoke') else ''} | {e['input']['records']:,} | "
            f"{_mib(e['input']['source_bytes'])} | {_fmt_seconds(e['generate']['wall_seconds'])} | "
            + " | ".join(_fmt_seconds(p["stages"].get(s, {}).get("seconds")) for s in STAGES)
            + f" | {_fmt_seconds(p['outside_stages_seconds'])} | {_fmt_seconds(p['wall_seconds'])} | "
            f"{p['records_per_second']:,.0f} | {p['peak_rss_mib']:,.0f} ("
            + ", ".join(f"{kind} {mib:,.0f}" for kind, mib in kinds.items())
            + f") | {p['load_1m_max']} | {e['config']['shuffle_partitions']} | "
            f"`{(e.get('git_commit') or '?')[:8]}`{' (dirty)' if e.get('git_dirty') else ''} |")
    return lines


def _lakehouse_table(entries: Iterable[tuple[int, Mapping[str, Any]]]) -> list[str]:
    lines = ["| patients | " + " | ".join(f"{layer} MiB" for layer in LAYERS) + " | total MiB |",
             "|" + "---|" * (len(LAYERS) + 2)]
    for n, e in entries:
        b = e["lakehouse_bytes"]
        lines.append(f"| {n:,}{' (smoke)' if e.get('smoke') else ''} | "
                     + " | ".join(_mib(b.get(layer, 0)) for layer in LAYERS) + f" | {_mib(b['total'])} |")
    return lines


def _growth_table(rows: list[dict[str, Any]]) -> list[str]:
    series = (*STAGES, "total")
    lines = ["| sizes | size ratio | " + " | ".join(f"{s}: time ratio (÷ size ratio)" for s in series) + " |",
             "|" + "---|" * (len(series) + 2)]
    for row in rows:
        cells = []
        for name in series:
            g = row["series"].get(name)
            if g is None:
                cells.append("–")
                continue
            flag = " **super-linear**" if g["super_linear"] else ""
            cells.append(f"{g['time_ratio']:.2f}× ({g['relative']:.2f}){flag}")
        lines.append(f"| {row['from']:,} → {row['to']:,} | {row['size_ratio']:g}× | " + " | ".join(cells) + " |")
    return lines


def targets(results: Mapping[str, Any]) -> dict[str, str]:
    """The issue's two targets, each ``met``, ``missed`` or ``not measured`` (with the numbers)."""
    sizes = {int(n): e for n, e in results.get("sizes", {}).items() if not e.get("smoke")}
    out: dict[str, str] = {}
    if 100_000 in sizes and TARGET_PATIENTS in sizes:
        ratio = sizes[TARGET_PATIENTS]["pipeline"]["wall_seconds"] / sizes[100_000]["pipeline"]["wall_seconds"]
        out["near_linear"] = f"{'met' if ratio <= 12 else 'missed'}: 1,000,000 costs {ratio:.2f}× 100,000 (≤ 12×)"
    else:
        out["near_linear"] = "not measured: needs both 100,000 and 1,000,000 patients"
    if TARGET_PATIENTS in sizes:
        wall = sizes[TARGET_PATIENTS]["pipeline"]["wall_seconds"]
        out["one_million_under_60_min"] = (f"{'met' if wall < TARGET_END_TO_END_SECONDS else 'missed'}: "
                                           f"{wall / 60:.1f} min (< 60 min)")
    else:
        out["one_million_under_60_min"] = "not measured: 1,000,000 patients not run"
    return out


def render_doc(results: Mapping[str, Any], plot_name: str | None) -> str:
    """``docs/benchmarks-pipeline.md`` from the results (only measured numbers; sizes not run are listed)."""
    sizes = {int(n): e for n, e in results.get("sizes", {}).items()}
    real = sorted((n, e) for n, e in sizes.items() if not e.get("smoke"))
    smoke = sorted((n, e) for n, e in sizes.items() if e.get("smoke"))
    not_run = [n for n in ISSUE_SIZES if n not in sizes]
    cmd = ("cd /work/main && SPARK_LOCAL_IP=127.0.0.1 GX_ANALYTICS_ENABLED=false .venv/bin/python "
           "bench/bench_pipeline.py")
    out = [
        "# Pipeline scaling benchmark (issue 5 §4)",
        "",
        "`bench/bench_pipeline.py` generates a population with `medspark generate` (seed 42) and runs the whole",
        "pipeline on it (`medspark pipeline`: bronze → silver → research → gold) as a subprocess of the `medspark`",
        "command, with a fresh lakehouse, a configuration file written for the run (`local[*]`, shuffle partitions:",
        "two per core, or one per 256 MiB of source text when that is more, rounded to a multiple of the cores) and",
        "the pseudonym key from `MEDSPARK_PSEUDONYM_KEY` (a random one when unset). This page is written by the",
        "script from `bench/results/pipeline.json`; do not edit it by hand.",
        "",
        "What is measured, per size:",
        "",
        "- **stage seconds**: the pipeline's own summary lines (`  <stage> <status> <seconds> s`); each includes the",
        "  stage's fingerprinting and its `ops/run_log` / `ops/pipeline_state` writes. *Outside stages* is the rest of",
        "  the `medspark pipeline` process: Python imports, JVM start-up and Delta JAR resolution, the lock, the",
        "  run record, JVM shutdown.",
        "- **pipeline wall**: the whole `medspark pipeline` process; this is the *end to end* time the targets use.",
        "  Generation is timed separately and not included.",
        "- **records/s**: records written by the generator (its manifest, `_manifest/summary.json`) ÷ pipeline wall.",
        "- **peak RSS**: the highest sum, over one-second samples, of the RSS of the pipeline's process tree: the",
        "  `medspark` CLI (the Python driver), the driver JVM (also the executor in local mode; heap capped by",
        "  `spark.driver.memory`) and Python workers (forked workers share pages, so their sum can overstate them).",
        "  The JSON also has each kind's own maximum and when the peak happened (seconds after start).",
        "- **lakehouse size**: bytes of every file under each layer (Delta logs included), after the run.",
        "- **load 1m max**: the highest one-minute load average during the run. The machine is shared: a load",
        "  above the core count means other jobs took CPU and the times are inflated.",
        "",
        "Growth between two sizes is the time ratio compared with the size ratio; a stage is flagged",
        f"**super-linear** when its time grows more than {NEAR_LINEAR_TOLERANCE}× the size ratio (the issue's target:",
        "1,000,000 patients at most 12× the cost of 100,000). At small sizes fixed costs (JVM start, per-table",
        "Delta commits, per-job scheduling) dominate, so growth there looks sub-linear and says little about scale.",
        "",
        "## Status",
        "",
    ]
    if not real:
        out += ["**No size has been benchmarked yet.** Nothing on this page is a measurement of scaling."]
        if smoke:
            out += ["", "Only smoke sizes (below 10,000 patients, run to check that the script works) are in the "
                    "results; they are shown at the end."]
    else:
        out += [f"Benchmarked: {', '.join(f'{n:,}' for n, _ in real)} patients."]
    if not_run:
        out += ["", f"Not run: {', '.join(f'{n:,}' for n in not_run)} patients."]
    out += ["", "To run (one size at a time if you like; results merge into the JSON by size, then refresh the plot "
            "and this page):", "", "```",
            f"{cmd} --patients 10000 --patients 100000",
            f"{cmd} --patients 1000000        # outside CI: see the disk note below",
            f"{cmd} --plot docs/benchmarks-pipeline.png   # redraw the plot and rewrite this page from the JSON",
            "```", "",
            "Disk: the source is about 52 KB per patient (`bench/results/bronze-10000.json`: 516 MB for 10,000), so",
            "1,000,000 patients need about 52 GB for the source plus the lakehouse, under `--work` (default",
            "`/tmp/medspark-bench-pipeline`). Each size's directory is deleted after it is measured unless `--keep`.",
            ""]
    out += ["## Targets", "", "| target | result |", "|---|---|"]
    t = targets(results)
    out += [f"| near-linear growth: 1,000,000 patients ≤ 12× the wall time of 100,000 | {t['near_linear']} |",
            f"| 1,000,000 patients end to end (pipeline wall) < 60 min on this machine | "
            f"{t['one_million_under_60_min']} |", ""]
    if real:
        out += ["## Results", ""]
        if plot_name:
            out += [f"![time vs data size]({plot_name})", ""]
        out += [*_size_table(real), "", "### Lakehouse size on disk", "", *_lakehouse_table(real), ""]
        rows = growth_rows(_sized_points(results, include_smoke=False))
        out += ["### Growth between consecutive sizes", ""]
        if rows:
            out += [*_growth_table(rows), ""]
            flagged = sorted({name for r in rows for name, g in r["series"].items() if g["super_linear"]})
            out += [f"Super-linear: {', '.join(flagged)}. Each needs an explanation and a fix (issue 5 §4)."
                    if flagged else "No stage grows faster than the tolerance allows between the sizes measured.", ""]
        else:
            out += ["Only one size measured: no growth to report yet.", ""]
        first = real[0][1]["machine"]
        out += ["### Machine", "",
                f"{first.get('cores')} cores, {first.get('memory_gib')} GiB RAM, {first.get('cpu')}; "
                f"{first.get('platform')}; Python {first.get('python')}; versions: "
                + ", ".join(f"{k} {v}" for k, v in first.get("versions", {}).items()) + ".", ""]
    if smoke:
        out += ["## Smoke sizes (not a scaling result)", "",
                "Run only to check the script end to end; fixed costs dominate at these sizes.", ""]
        if plot_name and not real:
            out += [f"![smoke sizes only]({plot_name})", ""]
        out += [*_size_table(smoke), ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, action="append", default=[], help="population size, repeatable")
    parser.add_argument("--work", default="/tmp/medspark-bench-pipeline", help="source and lakehouse per size")
    parser.add_argument("--keep", action="store_true", help="keep each size's source, lakehouse and logs")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="result JSON (merged by size)")
    parser.add_argument("--plot", help="PNG to draw from the JSON; the Markdown page is written next to it")
    parser.add_argument("--doc", help="Markdown page (default: the --plot path with .md)")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--shuffle-partitions", type=int, default=None, help="default: sized from cores and source")
    parser.add_argument("--interval", type=float, default=1.0, help="RSS sampling interval, seconds")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.patients):
        parser.error("--patients must be positive")
    if not args.patients and not args.plot and not args.doc:
        parser.error("nothing to do: give --patients and/or --plot/--doc")

    out = Path(args.out)
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"benchmark": "pipeline", "sizes": {}}
    env_key = os.environ.get("MEDSPARK_PSEUDONYM_KEY", "").strip()
    key, key_origin = (env_key, "environment") if env_key else (secrets.token_hex(32), "random, made for this run")
    for patients in args.patients:
        entry = run_size(patients, work=Path(args.work), driver_memory=args.driver_memory,
                         partitions=args.shuffle_partitions, interval=args.interval, keep=args.keep, key=key,
                         key_origin=key_origin)
        # Re-read before merging: another size may have been written meanwhile.
        results = merge_results(json.loads(out.read_text()) if out.exists() else None, entry)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        stages = ", ".join(f"{s} {v['seconds']:.1f} s" for s, v in entry["pipeline"]["stages"].items())
        _log(f"{patients:,} patients: {stages}; pipeline wall {entry['pipeline']['wall_seconds']:.1f} s; "
             f"peak RSS {entry['pipeline']['peak_rss_mib']:,.0f} MiB; wrote {out}")

    if args.plot or args.doc:
        plot_path = Path(args.plot) if args.plot else None
        doc_path = Path(args.doc) if args.doc else plot_path.with_suffix(".md") if plot_path else None
        drawn = plot(results, plot_path) if plot_path else False
        if plot_path and not drawn:
            _log(f"no sizes in {out}: no plot drawn")
        if doc_path:
            plot_name = os.path.relpath(plot_path, doc_path.parent) if plot_path and drawn else None
            doc_path.parent.mkdir(parents=True, exist_ok=True)
            doc_path.write_text(render_doc(results, plot_name))
            _log(f"wrote {doc_path}" + (f" and {plot_path}" if drawn else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
