"""Model specs: validation, the long-to-wide transform, encodings, group split, and a spec trained end to end."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.errors import ConfigError
from medspark.gold.modelspec import (
    ModelSpec,
    PivotLong,
    build_model_examples,
    derive_record_aggregates,
    encoding_stages,
    load_model_spec,
    split_groups,
    train_from_spec,
)
from medspark.gold.risk import readmission_feature_columns

CONF = Path(__file__).resolve().parents[2] / "conf" / "models"


def test_shipped_specs_validate() -> None:
    for name in ("readmission", "diabetes130", "physionet2012"):
        spec = load_model_spec(CONF / f"{name}.yaml")
        assert spec.name == name
    assert load_model_spec(CONF / "readmission.yaml").features.numeric == readmission_feature_columns()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\nsource: {format: csv, path: a.csv}\nlabel: {column: y, positive_values: [1]}\n"
         "features: {numeric: [a]}\nsplit: {group: g, test_fraction: 0.2}\nmodle: {}\n", "unknown key 'modle'"),
        ("name: x\nsource: {format: csv, path: a.csv}\nlabel: {column: y, positive_values: [1], "
         "positive_expression: 'y > 0'}\nfeatures: {numeric: [a]}\nsplit: {group: g, test_fraction: 0.2}\n",
         "exactly one of positive_values"),
        ("name: x\nsource: {format: csv, path: a.csv}\nlabel: {column: y, positive_values: [1]}\n"
         "features: {numeric: [a]}\nsplit: {group: g, test_fraction: 1.5}\n", "split.test_fraction"),
        ("name: x\nsource: {format: csv, path: a.csv}\nlabel: {column: y, positive_values: [1]}\n"
         "features: {numeric: [a]}\n", "missing required value 'split'"),
        ("name: [x\n", "not valid YAML"),
    ],
)
def test_bad_specs_fail_with_one_line(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message) as info:
        load_model_spec(path)
    assert "\n" not in str(info.value)


PIVOT = PivotLong(id="rid", parameter="p", value="v", time="t", parameters=["HR", "Na"], static=["Age"],
                  aggregates=["mean", "min", "max", "last", "count"])


def test_pivot_long_aggregates(spark: SparkSession) -> None:
    rows = [
        ("1", "00:00", "Age", 54.0),
        ("1", "00:07", "HR", 70.0),
        ("1", "01:30", "HR", 90.0),
        ("1", "47:59", "HR", 80.0),  # the latest time wins "last", past 24 h
        ("1", "12:00", "HR", -1.0),  # missing: ignored
        ("1", "12:00", "RecordID", 1.0),  # not a listed parameter
        ("2", "00:00", "Age", -1.0),
        ("2", "03:00", "Na", 140.0),
        ("2", "03:00", "Na", 138.0),  # same time: the larger value is "last"
    ]
    records = spark.createDataFrame(rows, "rid string, t string, p string, v double")
    expected = spark.createDataFrame(
        [
            ("1", 80.0, 70.0, 90.0, 80.0, 3, -1.0, -1.0, -1.0, -1.0, 0, 54.0),
            ("2", -1.0, -1.0, -1.0, -1.0, 0, 139.0, 138.0, 140.0, 140.0, 2, -1.0),
        ],
        "rid string, HR_mean double, HR_min double, HR_max double, HR_last double, HR_count bigint, "
        "Na_mean double, Na_min double, Na_max double, Na_last double, Na_count bigint, Age double",
    )
    assertDataFrameEqual(derive_record_aggregates(records, PIVOT), expected)


def _spec(**over: object) -> ModelSpec:
    raw: dict[str, object] = {
        "name": "toy",
        "source": {"format": "csv", "path": "toy.csv", "options": {"header": "true"}},
        "label": {"column": "outcome", "positive_values": ["yes"]},
        "features": {"numeric": ["a"], "categorical": ["colour"], "encoding": "index"},
        "split": {"group": "g", "test_fraction": 0.3, "seed": 1},
        "model": {"random_forest": {"grid": {"numTrees": [5], "maxDepth": [3]}}},
    }
    raw.update(over)
    return ModelSpec.model_validate(raw)


def test_examples_and_encodings(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("g1", "yes", "1.5", "red"), ("g2", "no", None, "blue"), ("g3", "no", "2", None), ("g4", None, "3", "red")],
        "g string, outcome string, a string, colour string",
    )
    examples = build_model_examples(frame, _spec())
    expected = spark.createDataFrame(
        [("g1", 1, 1.5, "red"), ("g2", 0, -1.0, "blue"), ("g3", 0, 2.0, "__missing__")],
        "g string, label int, a double, colour string",
    )
    assertDataFrameEqual(examples, expected)

    stages, inputs = encoding_stages(_spec().features)
    assert inputs == ["colour__code"]
    indexer = stages[0].fit(examples)
    coded = stages[1].transform(indexer.transform(examples))
    assert "ml_attr" not in coded.schema["colour__code"].metadata  # plain numbers, no nominal metadata
    codes = {r.colour: r.colour__code for r in coded.collect()}
    assert codes["red"] != codes["blue"] and set(codes.values()) == {0.0, 1.0, 2.0}

    one_hot = _spec(features={"numeric": ["a"], "categorical": ["colour"], "encoding": "one_hot"})
    stages, inputs = encoding_stages(one_hot.features)
    assert inputs == ["colour__onehot"]
    fitted = stages[0].fit(examples)
    encoder = stages[1].fit(fitted.transform(examples))
    # 3 levels, the indexer's "unseen" level, and the encoder's invalid slot (dropped as the last one).
    assert encoder.transform(fitted.transform(examples)).first()["colour__onehot"].size == 4
    unseen = spark.createDataFrame([("g9", 0, 1.0, "green")], "g string, label int, a double, colour string")
    assert encoder.transform(fitted.transform(unseen)).first()["colour__onehot"].indices.tolist() == [3]


def test_split_groups_keeps_groups_together(spark: SparkSession) -> None:
    rows = [(f"p{i % 50}", i) for i in range(400)]
    examples = spark.createDataFrame(rows, "g string, i int")
    spec = _spec(split={"group": "g", "test_fraction": 0.3, "seed": 4, "sample_fraction": 0.6})
    train, test = split_groups(examples, spec.split)
    train_groups = {r.g for r in train.select("g").distinct().collect()}
    test_groups = {r.g for r in test.select("g").distinct().collect()}
    assert not train_groups & test_groups
    assert 15 <= len(train_groups | test_groups) <= 45  # about 60 % of 50 groups kept
    assert train.count() + test.count() == 8 * len(train_groups | test_groups)


def test_train_from_spec_reads_a_tar_of_long_files(spark: SparkSession, tmp_path: Path) -> None:
    """A PhysioNet-shaped toy: one long file per stay in a tar.gz, outcomes in a CSV, death when HR is high."""
    rng = np.random.default_rng(3)
    n = 240
    hr_level = rng.uniform(60, 120, size=n)
    died = (rng.uniform(size=n) < 1 / (1 + np.exp(-(hr_level - 95) / 6))).astype(int)
    archive = tmp_path / "data" / "toy-set.tar.gz"
    archive.parent.mkdir()
    long_rows = []
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(n):
            rid = 1000 + i
            lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", f"00:00,Age,{40 + i % 50}"]
            for hour in range(0, 48, 6):
                value = round(hr_level[i] + rng.normal(0, 5), 1)
                lines.append(f"{hour:02d}:15,HR,{value}")
                long_rows.append((str(rid), hour * 60 + 15, value))
            payload = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(f"toy-set/{rid}.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    outcomes = pd.DataFrame({"RecordID": [str(1000 + i) for i in range(n)], "death": died})
    outcomes.to_csv(tmp_path / "data" / "outcomes.csv", index=False)

    spec = ModelSpec.model_validate({
        "name": "toy_icu",
        "source": {"format": "csv", "path": "toy-set.tar.gz", "archive": "tar", "members": "toy-set/*.txt",
                   "file_stem_column": "RecordID", "options": {"header": "true"},
                   "ddl": "Time string, Parameter string, Value double"},
        "transform": {"pivot_long": {"id": "RecordID", "parameter": "Parameter", "value": "Value", "time": "Time",
                                     "parameters": ["HR"], "static": ["Age"]}},
        "join": {"source": {"format": "csv", "path": "outcomes.csv", "options": {"header": "true"},
                            "ddl": "RecordID string, death int"}, "key": "RecordID"},
        "label": {"column": "death", "positive_values": [1]},
        "features": {"from_transform": True},
        "split": {"group": "RecordID", "test_fraction": 0.3, "seed": 2},
        "model": {"random_forest": {"grid": {"numTrees": [20], "maxDepth": [3]}}},
        "evaluation": {"threshold": 0.5},
    })
    result = train_from_spec(spark, spec, data_root=tmp_path / "data", seed=1, work_dir=tmp_path / "work")
    assert result.feature_columns == ("HR_mean", "HR_min", "HR_max", "HR_last", "HR_count", "Age")

    # The per-stay features, recomputed with pandas from the rows written into the archive.
    reference = pd.DataFrame(long_rows, columns=["RecordID", "minute", "HR"]).groupby("RecordID")["HR"]
    train_rows = result.train.toPandas().set_index("RecordID")
    test_rows = result.test.toPandas().set_index("RecordID")
    both = pd.concat([train_rows, test_rows])
    assert len(both) == n and not set(train_rows.index) & set(test_rows.index)
    np.testing.assert_allclose(both.loc[reference.mean().index, "HR_mean"], reference.mean(), rtol=1e-9)
    np.testing.assert_allclose(both.loc[reference.last().index, "HR_last"], reference.last(), rtol=1e-9)
    assert (both["HR_count"] == 8).all()
    assert both.loc["1003", "Age"] == 43.0
    assert both.loc["1003", "label"] == died[3]

    forest = result.metrics["random_forest"]
    assert forest["n"] == len(test_rows) and forest["threshold"] == 0.5
    assert forest["auc_roc"] > 0.75  # HR drives the outcome
    assert {name for name, _ in forest["feature_importances"]} == set(result.feature_columns)
    assert result.metrics["baseline_logistic"]["auc_roc"] > 0.75
