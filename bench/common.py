"""Shared benchmark helpers: machine info, wall/CPU timing, peak RSS of this process tree (driver JVM included)."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import pyspark

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "platform": platform.platform(),
    }


@dataclass
class Measurement:
    """Wall time, CPU time of the tree and peak RSS of the process tree during a block."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    peak_rss_by_kind: dict[str, float] = field(default_factory=dict)


def _tree() -> list[psutil.Process]:
    me = psutil.Process()
    try:
        return [me, *me.children(recursive=True)]
    except psutil.Error:
        return [me]


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
        except psutil.Error:
            pass
    return total


@contextmanager
def measure(interval: float = 0.25) -> Iterator[Measurement]:
    """Measure a block; RSS is sampled every ``interval`` seconds (driver JVM and Python workers included)."""
    result = Measurement()
    stop = threading.Event()
    cpu_start = _cpu(_tree())

    def poll() -> None:
        while not stop.is_set():
            by_kind: dict[str, float] = {}
            me = os.getpid()
            for p in _tree():
                try:
                    # the benchmark's own Python process (the Spark driver's Python side) apart from the pyspark
                    # workers it forks: RSS counts pages a fork shares with its parent once per process
                    kind = "jvm" if "java" in p.name() else "driver_python" if p.pid == me else "python_workers"
                    by_kind[kind] = by_kind.get(kind, 0.0) + p.memory_info().rss / 2**20
                except psutil.Error:
                    continue
            total = sum(by_kind.values())
            if total > result.peak_rss_mib:
                result.peak_rss_mib = total
                result.peak_rss_by_kind = {k: round(v, 1) for k, v in by_kind.items()}
            stop.wait(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        stop.set()
        thread.join()
        result.cpu_seconds = max(0.0, _cpu(_tree()) - cpu_start)
        result.peak_rss_mib = round(result.peak_rss_mib, 1)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return out
