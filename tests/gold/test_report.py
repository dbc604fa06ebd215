"""The gold report: an offline HTML page that shows suppressed cells as suppressed and skips missing tables."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from medspark.cli.main import main
from medspark.config import load_config
from medspark.errors import UsageError
from medspark.gold.report import prepare_out_dir, write_report

RARE_NAME = "Rare <b>disease</b> & co"  # markup in a concept name must be escaped, not rendered

TABLES: dict[str, tuple[str, list[tuple[object, ...]]]] = {
    "gold/person_counts": (
        "dimension string, value string, persons bigint, persons_suppressed boolean",
        [("year_of_birth", "1950", 25, False), ("year_of_birth", "1951", None, True),
         ("gender_concept_id", "8507", 40, False), ("gender_concept_id", "8532", 35, False)],
    ),
    "gold/person_pyramid": (
        "age_band string, band_start int, sex string, persons bigint, persons_suppressed boolean",
        [("70-74", 70, "8507", 30, False), ("70-74", 70, "8532", 45, False), ("75-79", 75, "8507", None, True),
         ("75-79", 75, "8532", 22, False), ("unknown", None, "8532", 13, False), ("70-74", 70, "0", None, True)],
    ),
    "gold/condition_prevalence": (
        "concept_id int, concept_name string, stratum string, stratum_value string, persons bigint, "
        "denominator bigint, prevalence_per_1000 double, persons_suppressed boolean, denominator_suppressed boolean",
        [(320128, "Essential hypertension", "overall", "all", 120, 1000, 120.0, False, False),
         (4000001, RARE_NAME, "overall", "all", None, 1000, None, True, False),
         (320128, "Essential hypertension", "sex", "female", 70, 520, 134.6, False, False)],
    ),
    "gold/model_metrics_demo": (
        "model string, estimator string, version int, auc_roc double, auc_pr double, brier double, threshold double, "
        "tp bigint, fp bigint, tn bigint, fn bigint, n_test bigint, metrics_json string",
        [("demo", "forest", 1, 0.61, 0.30, 0.20, 0.5, 3, 20, 60, 17, 100, "{}"),
         ("demo", "forest", 2, 0.77, 0.45, 0.15, 0.5, 25, 12, 50, 13, 100, "{}")],
    ),
    "gold/model_calibration_demo": (
        "model string, estimator string, version int, bin int, mean_predicted double, observed_rate double, n bigint, "
        "n_suppressed boolean",
        [("demo", "forest", 2, 0, 0.1, 0.12, 80, False), ("demo", "forest", 2, 1, None, None, None, True)],
    ),
    "gold/model_roc_demo": (
        "model string, estimator string, version int, threshold double, tp bigint, fp bigint, tpr double, "
        "fpr double, tp_suppressed boolean, fp_suppressed boolean",
        [("demo", "forest", 2, 0.8, 12, None, 0.3, None, False, True),
         ("demo", "forest", 2, 0.5, 25, 12, 0.65, 0.2, False, False),
         ("demo", "forest", 2, 0.2, 35, 40, 0.9, 0.6, False, False),
         ("demo", "forest", 1, 0.5, 20, 20, 0.5, 0.3, False, False),
         ("demo", "baseline", 2, 0.5, None, 30, None, 0.4, True, False)],
    ),
    "ops/dq_results": (
        "run_id string, run_date date, table_name string, check_id string, expectation_type string, category string, "
        "element_count bigint, unexpected_count bigint, unexpected_fraction double, threshold double, success boolean",
        [("silver-20260101T000000Z-old", dt.date(2026, 1, 1), "person", "person.old_failure", "expression",
          "plausibility", 100, 50, 0.5, 0.05, False),
         ("silver-20260201T000000Z-new", dt.date(2026, 2, 1), "person", "person.year_of_birth.range",
          "expect_column_values_to_be_between", "plausibility", 100, 7, 0.07, 0.05, False),
         ("silver-20260201T000000Z-new", dt.date(2026, 2, 1), "person", "person.person_id.unique",
          "expect_column_values_to_be_unique", "conformance", 100, 0, 0.0, 0.0, True),
         ("silver-20260201T000000Z-new", dt.date(2026, 2, 1), "visit_occurrence", "visit.dates.order",
          "expect_column_pair_values_a_to_be_greater_than_b", "plausibility", 300, 0, 0.0, 0.0, True)],
    ),
}


@pytest.fixture()
def report_html(spark: SparkSession, tmp_path: Path) -> str:
    root = tmp_path / "lakehouse"
    for table, (schema, rows) in TABLES.items():
        spark.createDataFrame(rows, schema).write.format("delta").save(f"{root}/{table}")
    config = load_config("test", lakehouse=str(root), environ={})
    path = write_report(spark, config, tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    return path.read_text(encoding="utf-8")


def _row(page: str, first_cell: str) -> list[str]:
    """The cell texts of the table row whose first cell is ``first_cell`` (escaped as in the page)."""
    for row in re.findall(r"<tr>(.*?)</tr>", page):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting with {first_cell!r}")


def test_report_is_offline_suppression_safe_and_skips_missing_tables(report_html: str) -> None:
    page = report_html
    assert "http://" not in page and "https://" not in page and "<script" not in page
    images = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert len(images) >= 6 and all(src.startswith("data:image/png;base64,") for src in images)
    assert 'alt="population pyramid"' in page and 'alt="ROC curve of model demo"' in page
    for title in ("Population", "Top prevalences", "Length of stay and cost", "Strongest association rules",
                  "Condition trajectories", "Patient segments", "Risk models", "30-day readmission rates",
                  "Data quality (latest run)"):
        assert f"<h2>{title}</h2>" in page

    # Suppressed cells are words, never numbers; a suppressed rate is not recomputed from its denominator.
    assert _row(page, RARE_NAME) == [RARE_NAME, "suppressed", "1,000", "suppressed"]
    assert _row(page, "Essential hypertension") == ["Essential hypertension", "120", "1,000", "120.0"]
    assert "<b>disease</b>" not in page
    assert "1 suppressed year-of-birth cells not drawn" in page
    assert _row(page, "Male") == ["Male", "40"]
    # Newest model version only; confusion counts of 1..10 are hidden even though gold publishes them unflagged.
    assert _row(page, "forest") == ["forest", "2", "0.770", "0.450", "0.150", "0.50", "25", "12", "50", "13", "100"]
    assert "0.610" not in page
    assert "1 suppressed calibration bins not drawn" in page
    assert "2 suppressed ROC points not drawn" in page  # of the newest version only
    assert "No ROC curve for baseline: every point of it is suppressed" in page
    assert "1 suppressed age band × sex cells not drawn" in page
    # persons of unknown age or of another sex are listed, not drawn; suppressed ones as suppressed
    assert _row(page, "unknown") == ["unknown", "Female", "13"]
    assert _row(page, "70-74") == ["70-74", "Unknown", "suppressed"]

    for missing in ("gold/visit_stats", "gold/association_rules", "gold/condition_trajectories",
                    "gold/segment_scores", "gold/segment_profiles", "gold/readmission_rates",
                    "gold/drug_prevalence", "gold/feature_importance_demo"):
        assert f"{missing} does not exist in this lakehouse: skipped." in page

    # Data quality: the latest run only.
    assert "Run silver-20260201T000000Z-new of 2026-02-01: 3 checks on 2 tables, 1 failed." in page
    assert _row(page, "visit_occurrence") == ["visit_occurrence", "1", "1", "0", "0"]
    assert _row(page, "person")[:5] == ["person", "2", "1", "1", "0"]
    assert "person.year_of_birth.range" in page and "person.old_failure" not in page


def test_bad_out_is_a_one_line_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing_file = tmp_path / "report.html"
    existing_file.write_text("not a directory")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        prepare_out_dir(existing_file)
    code = main(["--config", "test", "--lakehouse", str(tmp_path / "lake"), "report", "--out", str(existing_file)])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error == f"medspark: error: --out {existing_file} exists and is not a directory"
