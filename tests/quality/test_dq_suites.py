"""The suites in conf/quality: all 14 silver tables, unique ids, real columns; YAML errors are one-line ConfigErrors.

No Spark here: loading and validating suites is driver-side configuration.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from medspark.errors import ConfigError
from medspark.quality.gate import CheckOutcome, TableValidation, _class_name
from medspark.quality.results import result_records
from medspark.quality.suite import EXPECTATIONS, Suite, load_suite, load_suites
from medspark.silver import omop

QUALITY = Path(__file__).resolve().parents[2] / "conf" / "quality"
TABLES = {
    "person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "measurement", "observation", "death", "location", "provider", "care_site",
    "payer_plan_period", "cost",
}
EVENT_PREFIX = {
    "condition_occurrence": "condition", "drug_exposure": "drug", "procedure_occurrence": "procedure",
    "measurement": "measurement", "observation": "observation",
}


def _named_columns(check: dict) -> list[tuple[str, str]]:
    """(table, column) pairs a raw YAML check names, read from the YAML itself (not from medspark's model)."""
    kwargs = check.get("kwargs") or {}
    names = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs] + kwargs.get("column_list", [])
    for kind in ("in_reference", "concept_domain"):
        if kind in check:
            names.append(check[kind]["column"])
    return names


def test_every_silver_table_has_a_suite_with_unique_ids_and_real_columns() -> None:
    files = sorted(QUALITY.glob("*.yaml"))
    assert {f.stem for f in files} == TABLES
    all_ids: list[str] = []
    for path in files:
        raw = yaml.safe_load(path.read_text())
        table = raw["table"]
        assert table == path.stem
        assert 8 <= len(raw["checks"]) <= 35, path
        schema = {f.name for f in omop.schema(table).fields}
        for check in raw["checks"]:
            all_ids.append(check["id"])
            assert check["id"].startswith(table + ".")
            for column in _named_columns(check):
                assert column in schema, (check["id"], column)
            ref = check.get("in_reference")
            if ref:
                assert ref["table"] in ("person", "visit_occurrence"), check["id"]
                assert ref["ref_column"] in {f.name for f in omop.schema(ref["table"]).fields}
    assert len(all_ids) == len(set(all_ids))
    suites = load_suites(QUALITY)
    assert set(suites) == TABLES
    assert sum(len(s.checks) for s in suites.values()) == len(all_ids)


def test_event_suites_quarantine_unknown_source_codes_and_warn_on_unmapped() -> None:
    suites = load_suites(QUALITY)
    for table, prefix in EVENT_PREFIX.items():
        known = suites[table].check(f"{table}.{prefix}_source_concept_id.known")
        mapped = suites[table].check(f"{table}.{prefix}_concept_id.mapped")
        assert (known.severity, known.kind) == ("error", "expression")
        assert (mapped.severity, mapped.kind) == ("warn", "expression")
        assert suites[table].check(f"{table}.person_id.in_person").in_reference is not None
        assert suites[table].check(f"{table}.visit_occurrence_id.in_visit_occurrence").in_reference is not None
    person = suites["person"].check("person.gender_concept_id.in_set")
    assert person.parsed_kwargs["value_set"] == [8507, 8532, 0]
    heart_rate = suites["measurement"].check("measurement.value_as_number.heart_rate").expression
    assert heart_rate is not None
    assert heart_rate.sql == "measurement_concept_id <> 3027018 OR value_as_number BETWEEN 20 AND 300"


def test_every_supported_type_is_a_great_expectations_class() -> None:
    import great_expectations.expectations as gxe

    for name in EXPECTATIONS:
        cls = getattr(gxe, _class_name(name))
        assert cls.expectation_type == name


def _write(tmp_path: Path, text: str, name: str = "person.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
table: person
threshold: 0.02
checks:
  - id: person.person_id.not_null
    category: completeness
    description: key present
    expectation: expect_column_values_to_not_be_null
    kwargs: {column: person_id}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "color: red\n", r"person\.yaml: 'color': unknown key"),
        (GOOD.replace("kwargs: {column: person_id}", "kwargs: {column: person_id, colour: x}"),
         r"person\.yaml: 'checks\[0\] \(person\.person_id\.not_null\)': kwargs\.colour: unknown key"),
        (GOOD.replace("category: completeness", "category: timeliness"),
         r"person\.yaml: 'checks\[0\] \(person\.person_id\.not_null\)\.category'"),
        (GOOD.replace("column: person_id}", "column: persn_id}"),
         r"person\.yaml: 'checks\[0\] \(person\.person_id\.not_null\)': column 'persn_id' is not in person"),
        (GOOD.replace("expect_column_values_to_not_be_null", "expect_column_values_to_be_dazzling"),
         r"unsupported expectation type 'expect_column_values_to_be_dazzling'"),
        (GOOD.replace("threshold: 0.02", "threshold: 1.5"), r"person\.yaml: 'threshold'"),
        (GOOD + GOOD.split("checks:\n")[1], r"duplicate check id 'person\.person_id\.not_null'"),
        (GOOD.replace("id: person.person_id", "id: visit.person_id"), r"must start with 'person\.'"),
        (GOOD.replace("    expectation: expect_column_values_to_not_be_null\n    kwargs: {column: person_id}\n",
                      "    expression: {sql: 'person_id > 0'}\n    kwargs: {column: person_id}\n"),
         r"kwargs belong to an expectation"),
        (GOOD.replace("kwargs: {column: person_id}", "in_reference: {column: person_id, table: person, "
                                                    "ref_column: person_id}"),
         r"give exactly one of expectation, in_reference, concept_domain, expression"),
        ("table: person\nchecks: [\n", r"person\.yaml is not valid YAML at line"),
    ],
)
def test_bad_suites_raise_one_line_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_suite(_write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_between_needs_a_bound_and_file_name_must_match_table(tmp_path: Path) -> None:
    text = GOOD.replace("expect_column_values_to_not_be_null", "expect_column_values_to_be_between") \
        .replace("{column: person_id}", "{column: year_of_birth}")
    with pytest.raises(ConfigError, match=r"kwargs: min_value or max_value is required"):
        load_suite(_write(tmp_path, text))
    (tmp_path / "suites").mkdir()
    _write(tmp_path / "suites", GOOD, name="death.yaml")
    with pytest.raises(ConfigError, match=r"death\.yaml: 'table': 'person' differs from the file name"):
        load_suites(tmp_path / "suites")


def _validation(run_date: dt.date) -> TableValidation:
    suite = Suite.model_validate(yaml.safe_load(GOOD))
    outcomes = (
        CheckOutcome("person.person_id.not_null", "expect_column_values_to_not_be_null", "completeness", "error",
                     True, 40, 1, True),
        CheckOutcome("person.row_count", "expect_table_row_count_to_be_between", "completeness", "warn",
                     False, 40, None, True),
    )
    return TableValidation(suite=suite, run_id="run-7", run_date=run_date, row_count=40, failed_rows=1,
                           outcomes=outcomes, ge_result=None, ge_seconds=0.0)


def test_result_records_are_literal_and_use_the_run_date_not_the_clock() -> None:
    run_date = dt.date(2001, 2, 3)
    expected = [
        ("run-7", run_date, "person", "person.person_id.not_null", "expect_column_values_to_not_be_null",
         "completeness", 40, 1, 0.025, 0.02, True),
        ("run-7", run_date, "person", "person.row_count", "expect_table_row_count_to_be_between",
         "completeness", 40, None, None, None, True),
        ("run-7", run_date, "person", "person.quarantine_rate", "medspark_quarantine_rate", "gate", 40, 1, 0.025,
         0.02, False),
    ]
    assert result_records([_validation(run_date)]) == expected
    assert result_records([_validation(run_date)]) == result_records([_validation(run_date)])
