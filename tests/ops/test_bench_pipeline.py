"""The pure parts of bench/bench_pipeline.py: reading the pipeline's summary lines, growth ratios and the
super-linear flag, merging results by size, shuffle partition sizing. No Spark, no subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_pipeline as bp

SUMMARY = """pipeline run pipeline-20261207T060000-abc123
  bronze    succeeded    123.4 s
  silver    succeeded     61.0 s
  research  skipped        2.5 s  inputs unchanged since run pipeline-x
  gold      succeeded    300.0 s

bronze: 6 tables
  fhir_patient   succeeded    1.0 s
"""


def test_summary_lines_are_parsed_from_the_first_block_only() -> None:
    run_id, stages = bp.parse_pipeline_summary("some log line\n" + SUMMARY)
    assert run_id == "pipeline-20261207T060000-abc123"
    assert stages == {
        "bronze": {"status": "succeeded", "seconds": 123.4},
        "silver": {"status": "succeeded", "seconds": 61.0},
        "research": {"status": "skipped", "seconds": 2.5},
        "gold": {"status": "succeeded", "seconds": 300.0},
    }


def test_no_summary_gives_nothing() -> None:
    assert bp.parse_pipeline_summary("medspark: error: stage 'silver' failed: x\n") == (None, {})


def test_growth_ratios_and_super_linear_flag() -> None:
    points = [
        (100_000, {"bronze": 100.0, "gold": 50.0, "total": 200.0}),
        (10_000, {"bronze": 20.0, "gold": 10.0, "total": 40.0}),
        (1_000_000, {"bronze": 1000.0, "gold": 700.0, "total": 2500.0}),
    ]
    rows = bp.growth_rows(points)
    assert [(r["from"], r["to"], r["size_ratio"]) for r in rows] == [(10_000, 100_000, 10.0),
                                                                     (100_000, 1_000_000, 10.0)]
    first, second = rows[0]["series"], rows[1]["series"]
    assert first["bronze"] == {"time_ratio": 5.0, "relative": 0.5, "exponent": 0.699, "super_linear": False}
    # 10x -> 12x is exactly at the tolerance (not flagged); 14x is flagged.
    assert second["total"]["time_ratio"] == 12.5 and second["total"]["super_linear"] is True
    assert second["bronze"]["time_ratio"] == 10.0 and second["bronze"]["super_linear"] is False
    assert second["gold"] == {"time_ratio": 14.0, "relative": 1.4, "exponent": 1.146, "super_linear": True}
    at_limit = bp.growth_rows([(1, {"s": 1.0}), (10, {"s": 12.0})])[0]["series"]["s"]
    assert at_limit["super_linear"] is False


def test_a_stage_missing_at_one_size_is_left_out() -> None:
    rows = bp.growth_rows([(10, {"bronze": 1.0, "gold": 2.0}), (20, {"bronze": 2.0})])
    assert set(rows[0]["series"]) == {"bronze"}


def test_merge_keys_by_size_replaces_a_rerun_and_keeps_other_sizes() -> None:
    existing = {"benchmark": "pipeline", "note": "kept",
                "sizes": {"100000": {"patients": 100_000, "v": 1}, "10000": {"patients": 10_000, "v": 1}}}
    merged = bp.merge_results(existing, {"patients": 10_000, "v": 2})
    assert merged["note"] == "kept"
    assert list(merged["sizes"]) == ["10000", "100000"]
    assert merged["sizes"]["10000"] == {"patients": 10_000, "v": 2}
    assert merged["sizes"]["100000"] == {"patients": 100_000, "v": 1}
    assert existing["sizes"]["10000"]["v"] == 1  # the input is not changed

    fresh = bp.merge_results(None, {"patients": 30, "v": 1})
    assert fresh == {"benchmark": "pipeline", "sizes": {"30": {"patients": 30, "v": 1}}}


@pytest.mark.parametrize(("cores", "source_bytes", "expected"), [
    (2, 0, 4),                      # two per core at least
    (2, 500 * 2**20, 4),            # 2 partitions by size -> still 4
    (2, 5 * 2**30, 20),             # 20 x 256 MiB
    (2, 5 * 2**30 + 1, 22),         # 21 rounded up to a multiple of 2
    (4, 3 * 2**30, 12),
])
def test_shuffle_partitions(cores: int, source_bytes: int, expected: int) -> None:
    assert bp.shuffle_partitions(cores, source_bytes) == expected


def test_targets_are_not_measured_without_the_sizes() -> None:
    smoke_only = {"sizes": {"30": {"patients": 30, "smoke": True, "pipeline": {"wall_seconds": 600.0}}}}
    t = bp.targets(smoke_only)
    assert t["near_linear"].startswith("not measured")
    assert t["one_million_under_60_min"].startswith("not measured")
    measured = {"sizes": {"100000": {"pipeline": {"wall_seconds": 300.0}},
                          "1000000": {"pipeline": {"wall_seconds": 3900.0}}}}
    t = bp.targets(measured)
    assert t["near_linear"].startswith("missed: 1,000,000 costs 13.00×")
    assert t["one_million_under_60_min"].startswith("missed: 65.0 min")


def test_page_without_results_says_nothing_was_benchmarked() -> None:
    page = bp.render_doc({"benchmark": "pipeline", "sizes": {}}, None)
    assert "**No size has been benchmarked yet.**" in page
    assert "Not run: 10,000, 100,000, 1,000,000 patients." in page
    assert "## Results" not in page and "![" not in page


def _entry(patients: int, seconds: dict[str, float], wall: float, *, smoke: bool = False) -> dict[str, object]:
    return {
        "patients": patients, "smoke": smoke, "git_commit": "0123456789abcdef", "git_dirty": False,
        "machine": {"cores": 2, "memory_gib": 23.5, "versions": {"pyspark": "4.2.0"}},
        "config": {"shuffle_partitions": 4},
        "input": {"records": 40 * patients, "source_bytes": 50_000 * patients},
        "generate": {"wall_seconds": 1.0},
        "pipeline": {"stages": {s: {"status": "succeeded", "seconds": v} for s, v in seconds.items()},
                     "wall_seconds": wall, "outside_stages_seconds": 20.0, "records_per_second": 1.0,
                     "peak_rss_mib": 4000.0, "peak_rss_by_kind": {"jvm": 3500.0, "python": 500.0},
                     "load_1m_max": 2.1},
        "lakehouse_bytes": {"bronze": 2**20, "ops": 2**10, "total": 2**20 + 2**10},
    }


def test_page_tables_are_well_formed_and_flag_a_super_linear_stage() -> None:
    results = {"sizes": {
        "10000": _entry(10_000, {"bronze": 100.0, "silver": 100.0, "research": 10.0, "gold": 100.0}, 330.0),
        "100000": _entry(100_000, {"bronze": 900.0, "silver": 1500.0, "research": 50.0, "gold": 800.0}, 3270.0),
        "30": _entry(30, {"bronze": 90.0, "silver": 90.0, "research": 9.0, "gold": 90.0}, 300.0, smoke=True),
    }}
    page = bp.render_doc(results, "benchmarks-pipeline.png")
    assert "Benchmarked: 10,000, 100,000 patients." in page and "Not run: 1,000,000 patients." in page
    assert "Super-linear: silver." in page  # 15x for 10x; total 9.9x is not flagged
    assert "## Smoke sizes (not a scaling result)" in page
    for block in page.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            assert len({row.count("|") for row in rows}) == 1, block
