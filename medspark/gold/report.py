"""``medspark report``: one static, offline HTML page of the published gold tables and the latest data-quality run.

Why it exists: the gold layer is a set of Delta tables, which a clinician or a steering group does not open. The
report turns the small published aggregates into tables and charts that can be mailed or archived as one file:
charts are PNG data URIs, the style sheet is inline, there is no script and no link to a network resource.

What it reads: only ``<lakehouse>/gold/<table>`` and ``ops/dq_results`` -- never research or silver -- so it
publishes nothing that has not already passed small-cell suppression. It never undoes suppression either: a
suppressed count (null, with ``<count>_suppressed`` true) is printed as "suppressed", a rate nulled with it
likewise, and charts leave those cells out instead of estimating them. Nothing is recomputed from the cells
around a suppressed one. A table that does not exist is skipped with a line saying so.

Every table is a small aggregate (at most a few hundred rows); each one is still capped with ``limit`` before it
is collected to pandas on the driver.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as sf

from medspark.config.model import MedsparkConfig
from medspark.errors import EnvironmentProblem, UsageError
from medspark.io import files
from medspark.io.delta import table_exists

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TOP_N = 15
ROW_CAP = 1000  # upper bound on the rows collected from any one table
SUPPRESSED = "suppressed"
MISSING = "–"

# OMOP standard concepts that gold tables carry as ids only (the report reads no vocabulary table).
VISIT_LABELS = {9201: "Inpatient", 9202: "Outpatient", 9203: "Emergency room", 262: "ER and inpatient"}
GENDER_LABELS = {"8507": "Male", "8532": "Female", "0": "Unknown"}
RACE_LABELS = {"8527": "White", "8516": "Black or African American", "8515": "Asian",
               "8557": "Native Hawaiian or Other Pacific Islander", "8657": "American Indian or Alaska Native",
               "0": "Unknown"}
ETHNICITY_LABELS = {"38003563": "Hispanic or Latino", "38003564": "Not Hispanic or Latino", "0": "Unknown"}
MODEL_PREFIXES = ("model_metrics_", "model_calibration_", "model_roc_", "feature_importance_")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 1em}
h1{border-bottom:2px solid #446;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccd}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef}td.num{text-align:right;font-variant-numeric:tabular-nums}
.sup{color:#a33;font-style:italic}.note{color:#555;font-size:.9em}.skip{color:#a60}
img{max-width:100%;display:block;margin:.5em 0}nav ul{columns:2}
"""


# ---- reading ---------------------------------------------------------------------------------------------------


class _Lakehouse:
    """Reads the gold and ops tables the report needs; remembers what it read and what was missing."""

    def __init__(self, spark: SparkSession, config: MedsparkConfig) -> None:
        self._spark = spark
        self._config = config
        self.read_tables: list[tuple[str, int]] = []

    def frame(self, layer: str, table: str) -> DataFrame | None:
        path = self._config.table_path(layer, table)
        if not table_exists(self._spark, path):
            log.info("report: %s/%s not found, section part skipped", layer, table)
            return None
        return self._spark.read.format("delta").load(path)

    def collect(self, layer: str, table: str, frame: DataFrame, limit: int = ROW_CAP) -> pd.DataFrame:
        rows = frame.limit(limit).toPandas()
        self.read_tables.append((f"{layer}/{table}", len(rows)))
        log.info("report: %s/%s, %d rows collected", layer, table, len(rows))
        return rows

    def table_names(self, layer: str) -> list[str]:
        """Names of the directories directly under ``<lakehouse>/<layer>`` (any Hadoop filesystem)."""
        return files.child_directories(self._spark, self._config.table_path(layer, ""))


# ---- formatting ------------------------------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _count(value: Any) -> str:
    return f"{int(value):,}"


def _fixed(digits: int) -> Callable[[Any], str]:
    return lambda value: f"{float(value):,.{digits}f}"


def _text(value: Any) -> str:
    return str(value)


def _names(value: Any) -> str:
    """An array of names (``[a, b]``) or of itemsets (``[[a, b], [c]]``, shown ``a + b → c``)."""
    items = list(value)
    if items and not isinstance(items[0], str) and hasattr(items[0], "__iter__"):
        return " → ".join(" + ".join(str(name) for name in itemset) for itemset in items)
    return " + ".join(str(name) for name in items)


def _yes_no(value: Any) -> str:
    return "yes" if bool(value) else "no"


@dataclass(frozen=True)
class _Col:
    """One displayed column: header, source column, formatter, and whether it is a key (never "suppressed")."""

    header: str
    column: str
    fmt: Callable[[Any], str] = _text
    numeric: bool = True
    key: bool = False


def _flags(row: pd.Series) -> list[str]:
    return [str(c) for c in row.index if str(c).endswith("_suppressed")]


def _cell(row: pd.Series, col: _Col) -> tuple[str, bool]:
    """Display text of one cell and whether it is a suppressed cell.

    A null count whose ``<count>_suppressed`` flag is true is suppressed; a null non-key value in a row with any
    true flag is a rate nulled with its count (suppression.py nulls rates in place, without flags of their own).
    """
    value = row.get(col.column)
    if not _is_null(value):
        return col.fmt(value), False
    own_flag = f"{col.column}_suppressed"
    if own_flag in row.index and bool(row[own_flag]):
        return SUPPRESSED, True
    if not col.key and any(bool(row[flag]) for flag in _flags(row) if not _is_null(row[flag])):
        return SUPPRESSED, True
    return MISSING, False


def _cells(frame: pd.DataFrame, columns: Sequence[_Col]) -> list[list[tuple[str, bool]]]:
    return [[_cell(row, col) for col in columns] for _, row in frame.iterrows()]


def _td(text: str, suppressed: bool, numeric: bool) -> str:
    if suppressed:
        return f'<td class="num"><span class="sup" title="small cell suppressed">{html.escape(text)}</span></td>'
    return f'<td class="num">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _table(frame: pd.DataFrame, columns: Sequence[_Col]) -> str:
    head = "".join(f"<th>{html.escape(col.header)}</th>" for col in columns)
    body = "".join(
        "<tr>" + "".join(_td(text, hidden, col.numeric) for (text, hidden), col in zip(cells, columns, strict=True))
        + "</tr>"
        for cells in _cells(frame, columns)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _transposed_table(frame: pd.DataFrame, label: _Col, columns: Sequence[_Col]) -> str:
    """One column per row of ``frame`` (headed by ``label``), one row per entry of ``columns``."""
    heads = [text for (text, _), in _cells(frame, [label])]
    cells = _cells(frame, columns)
    head = "<th></th>" + "".join(f"<th>{html.escape(label.header)} {html.escape(h)}</th>" for h in heads)
    body = "".join(
        f"<tr><th>{html.escape(col.header)}</th>" + "".join(_td(*row[i], col.numeric) for row in cells) + "</tr>"
        for i, col in enumerate(columns)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _p(text: str, css: str = "note") -> str:
    return f'<p class="{css}">{html.escape(text)}</p>'


def _skipped(layer: str, table: str) -> str:
    return _p(f"{layer}/{table} does not exist in this lakehouse: skipped.", "skip")


def _suppressed_note(n: int, what: str) -> str:
    return _p(f"{n} suppressed {what} not drawn (small cells are never estimated).") if n else ""


# ---- charts ----------------------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 3.2) -> Figure:
    from matplotlib.figure import Figure

    # A bare Figure renders with the Agg canvas and touches no global pyplot state or GUI backend.
    return Figure(figsize=(width, height), layout="constrained")


def _img(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _hbar(labels: Sequence[str], values: Sequence[float], xlabel: str, alt: str) -> str:
    figure = _figure(7.0, max(1.6, 0.28 * len(labels) + 0.8))
    axes = figure.add_subplot()
    positions = list(range(len(labels)))
    axes.barh(positions, list(values), color="#4a6fa5")
    axes.set_yticks(positions, [_short(label) for label in labels], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    return _img(figure, alt)


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _present(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame[[not _is_null(v) for v in frame[column]]]


# ---- sections --------------------------------------------------------------------------------------------------


@dataclass
class _Section:
    anchor: str
    title: str
    body: str


def _pyramid(lake: _Lakehouse) -> str:
    """Persons by age band and sex from gold/person_pyramid: males to the left, females to the right."""
    frame = lake.frame("gold", "person_pyramid")
    if frame is None:
        return _skipped("gold", "person_pyramid")
    rows = lake.collect("gold", "person_pyramid", frame.orderBy("band_start", "sex"))
    parts = ["<h3>Population pyramid (age at the as-of date)</h3>"]
    bands = sorted({(int(b), str(a)) for a, b in zip(rows["age_band"], rows["band_start"], strict=True)
                    if not _is_null(b)})
    from matplotlib.ticker import FuncFormatter

    male, female = "8507", "8532"
    sides = ((male, "male", -1.0, "#4a6fa5"), (female, "female", 1.0, "#c0504d"))
    position = {start: i for i, (start, _) in enumerate(bands)}
    drawn: list[tuple[str, float, str, pd.DataFrame]] = []
    hidden = 0
    for sex, label, sign, colour in sides:
        side = rows[[str(v) == sex and not _is_null(b) for v, b in zip(rows["sex"], rows["band_start"],
                                                                       strict=True)]]
        shown = _present(side, "persons")
        hidden += len(side) - len(shown)
        drawn.append((label, sign, colour, shown))
    if any(len(shown) for *_, shown in drawn):
        figure = _figure(6.0, max(2.4, 0.22 * len(bands) + 0.8))
        axes = figure.add_subplot()
        for label, sign, colour, shown in drawn:
            axes.barh([position[int(b)] for b in shown["band_start"]], [sign * float(v) for v in shown["persons"]],
                      color=colour, label=label, height=0.85)
        axes.set_yticks(range(len(bands)), [a for _, a in bands], fontsize=7)
        axes.axvline(0, color="#333", linewidth=0.6)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{abs(x):,.0f}"))
        axes.set_xlabel("persons")
        axes.legend(fontsize=8)
        parts.append(_img(figure, "population pyramid"))
    parts.append(_suppressed_note(hidden, "age band × sex cells"))
    other = rows[[str(v) not in (male, female) or _is_null(b)
                  for v, b in zip(rows["sex"], rows["band_start"], strict=True)]]
    if len(other):
        parts.append(_p("Not drawn: persons of another or unknown sex, or of unknown age (with small cells "
                        "suppressed):"))
        other = other.assign(sex_label=[GENDER_LABELS.get(str(v), f"concept {v}") for v in other["sex"]])
        parts.append(_table(other, [_Col("Age band", "age_band", numeric=False, key=True),
                                    _Col("Sex", "sex_label", numeric=False, key=True),
                                    _Col("Persons", "persons", _count)]))
    return "".join(parts)


def _population(lake: _Lakehouse) -> _Section:
    title = "Population"
    frame = lake.frame("gold", "person_counts")
    if frame is None:
        return _Section("population", title, _skipped("gold", "person_counts"))
    counts = lake.collect("gold", "person_counts", frame)
    parts = [_pyramid(lake)]
    years = counts[counts["dimension"] == "year_of_birth"].copy()
    if len(years):
        years["year"] = [int(v) if str(v).lstrip("-").isdigit() else None for v in years["value"]]
        years = years.sort_values("year")
        shown = _present(years, "persons")
        figure = _figure(7.0, 3.0)
        axes = figure.add_subplot()
        axes.bar(list(shown["year"]), [float(v) for v in shown["persons"]], color="#4a6fa5", width=0.9)
        axes.set_xlabel("year of birth")
        axes.set_ylabel("persons")
        parts.append(_img(figure, "persons by year of birth"))
        parts.append(_suppressed_note(len(years) - len(shown), "year-of-birth cells"))
    labelled = (("gender_concept_id", "Sex", GENDER_LABELS), ("race_concept_id", "Race", RACE_LABELS),
                ("ethnicity_concept_id", "Ethnicity", ETHNICITY_LABELS))
    for dimension, header, labels in labelled:
        rows = counts[counts["dimension"] == dimension].copy()
        if not len(rows):
            continue
        rows["label"] = [labels.get(str(v), f"concept {v}") for v in rows["value"]]
        rows = rows.sort_values("label")
        parts.append(f"<h3>{html.escape(header)}</h3>")
        parts.append(_table(rows, [_Col(header, "label", numeric=False, key=True), _Col("Persons", "persons", _count)]))
        if dimension == "gender_concept_id":
            shown = _present(rows, "persons")
            if len(shown):
                parts.append(_hbar(list(shown["label"]), [float(v) for v in shown["persons"]], "persons",
                                   "persons by sex"))
    return _Section("population", title, "".join(parts))


def _prevalence(lake: _Lakehouse) -> _Section:
    parts = [_p(f"Stratum 'overall', top {TOP_N} concepts by persons (suppressed rows sort last).")]
    for domain in ("condition", "drug", "procedure"):
        table = f"{domain}_prevalence"
        parts.append(f"<h3>{html.escape(domain.capitalize())}s</h3>")
        frame = lake.frame("gold", table)
        if frame is None:
            parts.append(_skipped("gold", table))
            continue
        top = frame.where(sf.col("stratum") == "overall").orderBy(sf.col("persons").desc_nulls_last(),
                                                                   sf.col("concept_id"))
        rows = lake.collect("gold", table, top, TOP_N)
        parts.append(_table(rows, [
            _Col("Concept", "concept_name", numeric=False, key=True),
            _Col("Persons", "persons", _count),
            _Col("Denominator", "denominator", _count),
            _Col("Per 1,000", "prevalence_per_1000", _fixed(1)),
        ]))
        shown = _present(rows, "prevalence_per_1000")
        if len(shown):
            parts.append(_hbar([str(v) for v in shown["concept_name"]],
                               [float(v) for v in shown["prevalence_per_1000"]], "per 1,000 persons",
                               f"{domain} prevalence"))
    return _Section("prevalence", "Top prevalences", "".join(parts))


def _visits(lake: _Lakehouse) -> _Section:
    title = "Length of stay and cost"
    frame = lake.frame("gold", "visit_stats")
    if frame is None:
        return _Section("visits", title, _skipped("gold", "visit_stats"))
    rows = lake.collect("gold", "visit_stats", frame.orderBy("visit_concept_id"))
    rows["visit_type"] = [VISIT_LABELS.get(int(v), f"concept {v}") if not _is_null(v) else MISSING
                          for v in rows["visit_concept_id"]]
    parts = [_table(rows, [
        _Col("Visit type", "visit_type", numeric=False, key=True),
        _Col("Visits", "n_visits", _count),
        _Col("Persons", "n_persons", _count),
        _Col("Mean LOS (days)", "mean_los_days", _fixed(2)),
        _Col("Median LOS", "median_los_days", _fixed(1)),
        _Col("P90 LOS", "p90_los_days", _fixed(1)),
        _Col("Costed visits", "n_costed_visits", _count),
        _Col("Total cost", "cost_sum", _fixed(0)),
        _Col("Mean cost", "cost_mean", _fixed(0)),
        _Col("Cost per person-year", "cost_per_person_year", _fixed(1)),
    ])]
    figure = _figure(8.0, 2.8)
    for position, (column, label) in enumerate((("mean_los_days", "mean length of stay (days)"),
                                                ("cost_per_person_year", "cost per person-year"))):
        shown = _present(rows, column)
        axes = figure.add_subplot(1, 2, position + 1)
        axes.bar(list(shown["visit_type"]), [float(v) for v in shown[column]], color="#4a6fa5")
        axes.set_title(label, fontsize=9)
        axes.tick_params(axis="x", labelsize=7)
    parts.append(_img(figure, "length of stay and cost by visit type"))
    return _Section("visits", title, "".join(parts))


def _rules(lake: _Lakehouse) -> _Section:
    title = "Strongest association rules"
    frame = lake.frame("gold", "association_rules")
    if frame is None:
        return _Section("rules", title, _skipped("gold", "association_rules"))
    top = frame.orderBy(sf.col("lift").desc_nulls_last(), sf.col("confidence").desc_nulls_last())
    rows = lake.collect("gold", "association_rules", top, TOP_N)
    body = _p(f"Top {TOP_N} rules by lift.") + _table(rows, [
        _Col("If", "antecedent_names", _names, numeric=False, key=True),
        _Col("Then", "consequent_names", _names, numeric=False, key=True),
        _Col("Basket", "basket", numeric=False, key=True),
        _Col("Persons", "persons", _count),
        _Col("Support", "support", _fixed(3)),
        _Col("Confidence", "confidence", _fixed(3)),
        _Col("Lift", "lift", _fixed(2)),
    ])
    return _Section("rules", title, body)


def _trajectories(lake: _Lakehouse) -> _Section:
    title = "Condition trajectories"
    frame = lake.frame("gold", "condition_trajectories")
    if frame is None:
        return _Section("trajectories", title, _skipped("gold", "condition_trajectories"))
    # One-step patterns are just prevalences (shown above): the section lists patterns of two steps or more.
    top = frame.where(sf.size("sequence") >= 2).orderBy(sf.col("freq").desc_nulls_last(), sf.col("length").desc())
    rows = lake.collect("gold", "condition_trajectories", top, TOP_N)
    rows["steps"] = [len(list(v)) for v in rows["sequence_names"]]
    body = _p(f"Top {TOP_N} sequential patterns of two steps or more by persons (→ separates steps, + joins "
              "conditions recorded together).")
    body += _table(rows, [
        _Col("Trajectory", "sequence_names", _names, numeric=False, key=True),
        _Col("Steps", "steps", _count, key=True),
        _Col("Persons", "freq", _count),
        _Col("Support", "support", _fixed(3)),
    ])
    return _Section("trajectories", title, body)


def _segments(lake: _Lakehouse) -> _Section:
    parts: list[str] = []
    scores_frame = lake.frame("gold", "segment_scores")
    if scores_frame is None:
        parts.append(_skipped("gold", "segment_scores"))
    else:
        scores = lake.collect("gold", "segment_scores", scores_frame.orderBy("k")).sort_values("k")
        parts.append(_table(scores, [_Col("k", "k", _count, key=True), _Col("Silhouette", "silhouette", _fixed(3)),
                                     _Col("Training cost", "training_cost", _fixed(0)),
                                     _Col("Chosen", "chosen", _yes_no, numeric=False)]))
        shown = _present(scores, "silhouette")
        if len(shown):
            figure = _figure(5.0, 2.6)
            axes = figure.add_subplot()
            axes.plot(list(shown["k"]), [float(v) for v in shown["silhouette"]], marker="o", color="#4a6fa5")
            axes.set_xlabel("k")
            axes.set_ylabel("silhouette")
            parts.append(_img(figure, "silhouette by number of segments"))
    profiles_frame = lake.frame("gold", "segment_profiles")
    if profiles_frame is None:
        parts.append(_skipped("gold", "segment_profiles"))
    else:
        profiles = lake.collect("gold", "segment_profiles", profiles_frame.orderBy("segment"))
        measures = [_Col("persons", "persons", _count)] + [
            _Col(str(c).removeprefix("mean_").replace("_", " ") + " (mean)", str(c), _fixed(2))
            for c in profiles.columns if str(c).startswith("mean_")
        ]
        parts.append("<h3>Segment profiles</h3>")
        parts.append(_transposed_table(profiles, _Col("segment", "segment", _text, key=True), measures))
    return _Section("segments", "Patient segments", "".join(parts))


def _latest_version(frame: DataFrame, *keys: str) -> DataFrame:
    """Rows of the newest ``version`` of each ``keys`` group (re-trained models append new versions)."""
    newest = frame.withColumn("_newest", sf.max("version").over(Window.partitionBy(*keys)))
    return newest.where(sf.col("version") == sf.col("_newest")).drop("_newest")


def _model_names(lake: _Lakehouse) -> list[str]:
    names = {table.removeprefix(prefix) for table in lake.table_names("gold") for prefix in MODEL_PREFIXES
             if table.startswith(prefix)}
    return sorted(names)


def _models(lake: _Lakehouse, threshold: int) -> _Section:
    title = "Risk models"
    names = _model_names(lake)
    if not names:
        return _Section("models", title, _p("No gold/model_metrics_*, model_calibration_*, model_roc_* or "
                                            "feature_importance_* tables in this lakehouse: skipped.", "skip"))
    parts = [_p("Held-out test set metrics of the newest version of each estimator: AUC-ROC and AUC-PR, the "
                f"confusion counts at the chosen threshold (counts of 1 to {threshold} are shown as suppressed), "
                "the ROC curve at quantiles of the predicted risk, and calibration.")]
    for name in names:
        parts.append(f"<h3>Model {html.escape(name)}</h3>")
        parts.append(_model_metrics(lake, name, threshold))
        parts.append(_model_roc(lake, name))
        parts.append(_model_calibration(lake, name))
        parts.append(_feature_importance(lake, name))
    return _Section("models", title, "".join(parts))


def _model_metrics(lake: _Lakehouse, name: str, threshold: int) -> str:
    table = f"model_metrics_{name}"
    frame = lake.frame("gold", table)
    if frame is None:
        return _skipped("gold", table)
    rows = lake.collect("gold", table, _latest_version(frame.drop("metrics_json"), "estimator").orderBy("estimator"))
    # The gold job suppresses the confusion counts; tables written before it did are hidden here too (hiding
    # more never undoes suppression).
    for column in ("tp", "fp", "tn", "fn"):
        if column in rows.columns:
            flagged = rows.get(f"{column}_suppressed", [False] * len(rows))
            small = [bool(f) or (not _is_null(v) and 1 <= int(v) <= threshold)
                     for v, f in zip(rows[column], flagged, strict=True)]
            rows[f"{column}_suppressed"] = small
            rows[column] = [None if hidden else v for v, hidden in zip(rows[column], small, strict=True)]
    parts = [_table(rows, [
        _Col("Estimator", "estimator", numeric=False, key=True), _Col("Version", "version", _count, key=True),
        _Col("AUC-ROC", "auc_roc", _fixed(3), key=True), _Col("AUC-PR", "auc_pr", _fixed(3), key=True),
        _Col("Brier", "brier", _fixed(3), key=True), _Col("Threshold", "threshold", _fixed(2), key=True),
        _Col("TP", "tp", _count), _Col("FP", "fp", _count), _Col("TN", "tn", _count), _Col("FN", "fn", _count),
        _Col("Test rows", "n_test", _count, key=True),
    ])]
    if len(rows):
        figure = _figure(6.0, 2.6)
        axes = figure.add_subplot()
        estimators = [str(v) for v in rows["estimator"]]
        positions = list(range(len(estimators)))
        for offset, (column, label) in enumerate((("auc_roc", "AUC-ROC"), ("auc_pr", "AUC-PR"))):
            values = [0.0 if _is_null(v) else float(v) for v in rows[column]]
            axes.bar([p + 0.38 * offset for p in positions], values, width=0.36, label=label)
        axes.axhline(0.5, color="#888", linestyle="--", linewidth=0.8)
        axes.set_xticks([p + 0.19 for p in positions], estimators, fontsize=8)
        axes.set_ylim(0, 1)
        axes.legend(fontsize=8)
        parts.append(_img(figure, f"AUC of model {name}"))
    return "".join(parts)


def _unit_square(xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    """A figure with [0, 1] x [0, 1] axes and the dashed diagonal (ROC chance line, perfect calibration)."""
    figure = _figure(4.5, 3.6)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="#888", linestyle="--", linewidth=0.8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    return figure, axes


def _model_roc(lake: _Lakehouse, name: str) -> str:
    table = f"model_roc_{name}"
    frame = lake.frame("gold", table)
    if frame is None:
        return _skipped("gold", table)
    rows = lake.collect("gold", table, _latest_version(frame, "estimator").orderBy("estimator", "threshold"))
    parts = ["<h4>ROC curve</h4>"]
    curves, hidden, blank = [], 0, []
    for estimator in sorted({str(v) for v in rows["estimator"]}):
        points = rows[rows["estimator"] == estimator].sort_values("threshold", ascending=False)
        shown = points[[not (_is_null(t) or _is_null(f)) for t, f in zip(points["tpr"], points["fpr"], strict=True)]]
        hidden += len(points) - len(shown)
        if len(shown):
            curves.append((estimator, shown))
        else:  # a line from (0, 0) to (1, 1) alone would read as a useless model
            blank.append(estimator)
    if curves:
        figure, axes = _unit_square("false positive rate", "true positive rate")
        for estimator, shown in curves:
            # Every curve runs from (0, 0) (nobody flagged) to (1, 1) (everybody flagged); suppressed points are
            # left out, so the line between two published points may pass over hidden ones.
            axes.plot([0.0, *[float(v) for v in shown["fpr"]], 1.0], [0.0, *[float(v) for v in shown["tpr"]], 1.0],
                      marker=".", label=estimator)
        axes.legend(fontsize=8)
        parts.append(_img(figure, f"ROC curve of model {name}"))
    parts.append(_suppressed_note(hidden, "ROC points"))
    if blank:
        parts.append(_p("No ROC curve for " + ", ".join(blank) + ": every point of it is "
                        "suppressed (too few positive or negative test cases)."))
    return "".join(parts)


def _model_calibration(lake: _Lakehouse, name: str) -> str:
    table = f"model_calibration_{name}"
    frame = lake.frame("gold", table)
    if frame is None:
        return _skipped("gold", table)
    rows = lake.collect("gold", table, _latest_version(frame, "estimator").orderBy("estimator", "bin"))
    parts = ["<h4>Calibration</h4>"]
    figure, axes = _unit_square("mean predicted risk", "observed rate")
    hidden = 0
    for estimator in sorted({str(v) for v in rows["estimator"]}):
        bins = rows[rows["estimator"] == estimator]
        shown = bins[[not (_is_null(p) or _is_null(o)) for p, o in
                      zip(bins["mean_predicted"], bins["observed_rate"], strict=True)]]
        hidden += len(bins) - len(shown)
        axes.plot([float(v) for v in shown["mean_predicted"]], [float(v) for v in shown["observed_rate"]],
                  marker="o", label=estimator)
    if len(rows):
        axes.legend(fontsize=8)
    parts.append(_img(figure, f"calibration of model {name}"))
    parts.append(_suppressed_note(hidden, "calibration bins"))
    parts.append(_table(rows, [
        _Col("Estimator", "estimator", numeric=False, key=True), _Col("Bin", "bin", _count, key=True),
        _Col("Mean predicted", "mean_predicted", _fixed(3)), _Col("Observed rate", "observed_rate", _fixed(3)),
        _Col("N", "n", _count),
    ]))
    return "".join(parts)


def _feature_importance(lake: _Lakehouse, name: str) -> str:
    table = f"feature_importance_{name}"
    frame = lake.frame("gold", table)
    if frame is None:
        return _skipped("gold", table)
    top = _latest_version(frame).orderBy(sf.col("importance").desc_nulls_last(), "feature")
    rows = lake.collect("gold", table, top, TOP_N)
    parts = [f"<h4>Feature importance (top {TOP_N})</h4>"]
    shown = _present(rows, "importance")
    if len(shown):
        parts.append(_hbar([str(v) for v in shown["feature"]], [float(v) for v in shown["importance"]],
                           "importance", f"feature importance of model {name}"))
    parts.append(_table(rows, [_Col("Feature", "feature", numeric=False, key=True),
                               _Col("Importance", "importance", _fixed(4))]))
    return "".join(parts)


def _concept_names(lake: _Lakehouse) -> dict[str, str]:
    """Concept id -> name from the published condition prevalence (the report reads no vocabulary table)."""
    frame = lake.frame("gold", "condition_prevalence")
    if frame is None:
        return {}
    names = frame.where(sf.col("stratum") == "overall").select("concept_id", "concept_name")
    rows = lake.collect("gold", "condition_prevalence (names)", names)
    return {str(c): str(n) for c, n in zip(rows["concept_id"], rows["concept_name"], strict=True) if not _is_null(n)}


def _readmission(lake: _Lakehouse) -> _Section:
    title = "30-day readmission rates"
    frame = lake.frame("gold", "readmission_rates")
    if frame is None:
        return _Section("readmission", title, _skipped("gold", "readmission_rates"))
    order = sf.when(sf.col("stratum") == "overall", 0).when(sf.col("stratum") == "age_group", 1) \
        .when(sf.col("stratum") == "sex", 2).otherwise(3)
    rows = lake.collect("gold", "readmission_rates", frame.orderBy(order, "stratum", "stratum_value"))
    names = _concept_names(lake) if (rows["stratum"] == "condition").any() else {}
    rows["label"] = [names.get(str(v), f"concept {v}") if s == "condition" else str(v)
                     for s, v in zip(rows["stratum"], rows["stratum_value"], strict=True)]
    body = _table(rows, [
        _Col("Stratum", "stratum", numeric=False, key=True), _Col("Value", "label", numeric=False, key=True),
        _Col("Index stays", "index_stays", _count), _Col("Readmissions", "readmissions", _count),
        _Col("Index persons", "index_persons", _count), _Col("Readmitted persons", "readmitted_persons", _count),
        _Col("Rate", "readmission_rate", lambda v: f"{100 * float(v):.1f} %"),
    ])
    return _Section("readmission", title, body)


def _data_quality(lake: _Lakehouse) -> _Section:
    title = "Data quality (latest run)"
    frame = lake.frame("ops", "dq_results")
    if frame is None:
        return _Section("quality", title, _skipped("ops", "dq_results"))
    latest = frame.select("run_id", "run_date").distinct().orderBy(sf.col("run_date").desc_nulls_last(),
                                                                   sf.col("run_id").desc()).limit(1)
    runs = lake.collect("ops", "dq_results (latest run)", latest, 1)
    if not len(runs):
        return _Section("quality", title, _p("ops/dq_results is empty.", "skip"))
    run_id = str(runs["run_id"].iloc[0])
    results = frame.where(sf.col("run_id") == run_id)
    per_table = results.groupBy("table_name").agg(
        sf.count(sf.lit(1)).alias("checks"),
        sf.sum(sf.when(sf.col("success"), 1).otherwise(0)).alias("passed"),
        sf.sum(sf.when(~sf.col("success"), 1).otherwise(0)).alias("failed"),
        sf.sum(sf.when(sf.col("success").isNull(), 1).otherwise(0)).alias("not_evaluated"),
    ).orderBy(sf.col("failed").desc(), "table_name")
    tables = lake.collect("ops", "dq_results (per table)", per_table)
    failed = results.where(~sf.col("success")).orderBy("table_name", "check_id")
    failures = lake.collect("ops", "dq_results (failed)", failed, 100)
    total, n_failed = int(tables["checks"].sum()), int(tables["failed"].sum())
    parts = [_p(f"Run {run_id} of {runs['run_date'].iloc[0]}: {total:,} checks on {len(tables)} tables, "
                f"{n_failed:,} failed."),
             _table(tables, [_Col("Table", "table_name", numeric=False, key=True), _Col("Checks", "checks", _count),
                             _Col("Passed", "passed", _count), _Col("Failed", "failed", _count),
                             _Col("Not evaluated", "not_evaluated", _count)]),
             "<h3>Failed checks</h3>"]
    if len(failures):
        parts.append(_table(failures, [
            _Col("Table", "table_name", numeric=False, key=True), _Col("Check", "check_id", numeric=False, key=True),
            _Col("Category", "category", numeric=False, key=True),
            _Col("Expectation", "expectation_type", numeric=False, key=True),
            _Col("Rows checked", "element_count", _count, key=True),
            _Col("Unexpected rows", "unexpected_count", _count, key=True),
            _Col("Unexpected fraction", "unexpected_fraction", _fixed(4), key=True),
            _Col("Threshold", "threshold", _fixed(4), key=True),
        ]))
        if len(failures) >= 100:
            parts.append(_p("Only the first 100 failed checks are listed."))
    else:
        parts.append(_p("None."))
    return _Section("quality", title, "".join(parts))


# ---- the page --------------------------------------------------------------------------------------------------


def _page(sections: Sequence[_Section], read: Sequence[tuple[str, int]], config: MedsparkConfig) -> str:
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    content = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    sources = "".join(f"<li>{html.escape(table)}: {rows:,} rows</li>" for table, rows in read)
    threshold = config.gold.min_cell_count
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>medspark gold report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>medspark gold report</h1>"
        + _p(f"Generated {generated} from the gold and ops tables of the lakehouse. Counts of 1 to {threshold} "
             "persons, and the rates derived from them, are suppressed in gold and shown as “suppressed” "
             "(this includes complementary suppression, so a suppressed cell is not necessarily small).")
        + f"<nav><ul>{toc}</ul></nav>{content}"
        f'<section id="sources"><h2>Tables read</h2><ul>{sources}</ul></section>'
        "</body></html>"
    )


def prepare_out_dir(out: str | Path) -> Path:
    """The report directory, created if needed.

    Raises:
        UsageError: ``out`` exists and is not a directory, or cannot be created.
    """
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out} cannot be created ({exc.strerror or type(exc).__name__})") from exc
    return directory


def write_report(spark: SparkSession, config: MedsparkConfig, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/report.html`` from the gold tables and ``ops/dq_results`` of ``config.lakehouse``.

    Sections: population (year of birth, sex, race, ethnicity), top condition/drug/procedure prevalences, length
    of stay and cost, the strongest association rules, condition trajectories, patient segments, every risk model
    found in gold (metrics, calibration, feature importance), readmission rates, data quality of the latest run.

    Args:
        spark: the session (reads Delta tables).
        config: the run configuration (lakehouse root, ``gold.min_cell_count``).
        out_dir: local directory for the report; created if needed.

    Returns:
        The path of the HTML file.

    Raises:
        UsageError: ``out_dir`` is not a usable directory.
        EnvironmentProblem: matplotlib is not installed.
    """
    directory = prepare_out_dir(out_dir)
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise EnvironmentProblem("the report needs matplotlib: pip install matplotlib") from exc
    lake = _Lakehouse(spark, config)
    threshold = config.gold.min_cell_count
    sections = [
        _population(lake),
        _prevalence(lake),
        _visits(lake),
        _rules(lake),
        _trajectories(lake),
        _segments(lake),
        _models(lake, threshold),
        _readmission(lake),
        _data_quality(lake),
    ]
    target = directory / REPORT_FILE
    target.write_text(_page(sections, lake.read_tables, config), encoding="utf-8")
    log.info("report: %d sections, %d table reads, written to %s", len(sections), len(lake.read_tables), target)
    return target
