"""Generator → bronze → silver: one person per generated patient across five formats, every record accounted for,
defects caught by the gate, no direct identifier in silver, re-runs are no-ops and a killed run resumes exactly."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medspark.config import load_config
from medspark.config.model import MedsparkConfig
from medspark.ingestion.job import ingest
from medspark.privacy.scan import find_identifiers
from medspark.silver import job as silver_job
from medspark.silver import omop
from medspark.silver.job import build_silver
from medspark.synthetic import generate

pytestmark = pytest.mark.slow

PATIENTS = 24
RUN_DATE = "2026-01-15"


def _config(lakehouse: Path) -> MedsparkConfig:
    return load_config("test", environ={}, lakehouse=str(lakehouse),
                       overrides=[f"silver.run_date={RUN_DATE}"])


def _table(spark: SparkSession, lakehouse: Path, layer: str, name: str) -> DataFrame:
    return spark.read.format("delta").load(str(lakehouse / layer / name))


def _truth(src: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted((src / "_manifest").glob("truth-0*.csv.gz")):
        with gzip.open(path, "rt", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


@pytest.fixture(scope="module")
def built(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("silver")
    src = root / "src"
    generate(src, patients=PATIENTS, seed=1, defect_rate=0.02, chunk_patients=100, workers=1)
    config = _config(root / "lh")
    ingest(spark, config, str(src))
    first = build_silver(spark, config)
    return {"root": root, "src": src, "config": config, "first": first}


def test_one_person_per_generated_patient(spark: SparkSession, built: dict) -> None:
    persons = _table(spark, built["root"] / "lh", "silver", "person")
    assert persons.count() == PATIENTS == len(_truth(built["src"]))
    assert persons.select("person_id").distinct().count() == PATIENTS
    # birth dates agree with the ground truth, person by person (a wrong merge or split would break the multiset)
    truth_births = sorted(r["birth_date"] for r in _truth(built["src"]))
    silver_births = sorted(str(r["birth_datetime"].date()) for r in persons.select("birth_datetime").collect())
    assert silver_births == truth_births


def test_every_table_is_cdm_shaped_and_every_record_is_accounted_for(spark: SparkSession, built: dict) -> None:
    lakehouse = built["root"] / "lh"
    for table in ("person", "visit_occurrence", "condition_occurrence", "drug_exposure", "procedure_occurrence",
                  "measurement", "observation_period", "location", "payer_plan_period", "cost"):
        frame = _table(spark, lakehouse, "silver", table)
        assert tuple(frame.columns) == omop.columns(table), table
        assert frame.count() > 0, table
    tables = {t.table: t for t in built["first"].tables}
    assert tables and all(t.balanced for t in tables.values())
    log = _table(spark, lakehouse, "ops", "run_log").where("job = 'silver' AND table_name IS NOT NULL")
    assert log.where("rows_read != rows_written + rows_quarantined").count() == 0
    assert log.count() == len(tables)
    # visits: the generator's encounters are the visits; claims and HL7 visits resolve onto them through the
    # FHIR Encounter, the only record holding both the encounter id and the visit number. Where bronze quarantined
    # that Encounter (an injected defect), the CSV encounter and the HL7/X12 visit cannot be linked: one more visit.
    encounters = sum(int(r["n_encounters"]) for r in _truth(built["src"]))
    lost_bridges = _table(spark, lakehouse, "quarantine", "fhir_encounter").count()
    visits = _table(spark, lakehouse, "silver", "visit_occurrence").count()
    assert encounters <= visits <= encounters + lost_bridges


def test_unknown_codes_are_quarantined_by_the_gate(spark: SparkSession, built: dict) -> None:
    lakehouse, src = built["root"] / "lh", built["src"]
    manifest = [json.loads(line) for path in sorted((src / "_manifest").glob("defects-*.jsonl"))
                for line in path.read_text().splitlines()]
    unknown = [d for d in manifest if d["layer"] == "silver"]
    assert unknown
    quarantine = _table(spark, lakehouse, "quarantine", "silver_condition_occurrence")
    caught = {}
    for r in quarantine.collect():
        caught.setdefault(r["_source_record_hash"], set()).update(r["_failed_checks"])
    for defect in unknown:  # the record that carries the unknown code (a CSV row, an X12 claim) is found ...
        bronze = _table(spark, lakehouse, "bronze", defect["entity"]).where(
            (sf.col("_source_file") == "file:" + str(src) + "/" + defect["file"])
            & (sf.col("_record_position") == defect["position"])).collect()
        assert len(bronze) == 1, defect
        # ... in the silver quarantine, rejected by the check for codes the vocabulary does not know
        assert "condition_occurrence.condition_source_concept_id.known" in caught[bronze[0]["_record_hash"]], defect
    conditions = _table(spark, lakehouse, "silver", "condition_occurrence")
    assert conditions.where("condition_source_concept_id = 0").count() == 0  # none reached silver


def test_no_direct_identifier_reaches_silver(spark: SparkSession, built: dict) -> None:
    truth = _truth(built["src"])
    needles = {
        "ssn": [r["ssn"] for r in truth] + [r["ssn"].replace("-", "") for r in truth],
        "mrn": [r["mrn"] for r in truth],
        "member_id": [r["member_id"] for r in truth if r["member_id"]],
        "patient_uuid": [r["patient_uuid"] for r in truth],
    }
    names = _table(spark, built["root"] / "lh", "bronze", "synthea_patients").select("FIRST", "LAST").collect()
    needles["name"] = sorted({n for r in names for n in (r["FIRST"], r["LAST"]) if n and len(n) > 3})
    hits = find_identifiers(spark, str(built["root"] / "lh" / "silver"), needles)
    assert hits == {}, hits
    # the scan itself can fail: bronze holds all of them in clear
    assert find_identifiers(spark, str(built["root"] / "lh" / "bronze"), needles)


def test_a_rerun_is_a_no_op(spark: SparkSession, built: dict) -> None:
    lakehouse = built["root"] / "lh"
    versions = {t: _table(spark, lakehouse, "silver", t).inputFiles() for t in ("person", "measurement")}
    again = build_silver(spark, built["config"])
    assert again.plan is None
    assert {t: _table(spark, lakehouse, "silver", t).inputFiles() for t in versions} == versions


def test_a_late_hl7_a08_update_changes_the_person_keeps_history_and_survives_a_kill(
        spark: SparkSession, built: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    lakehouse, config = built["root"] / "lh", built["config"]
    crashed = built["root"] / "crashed"
    shutil.copytree(lakehouse, crashed)  # the same lakehouse, to replay the update with a kill in the middle
    patient = _truth(built["src"])[0]
    ssn = patient["ssn"]
    # A demographic update (new address) for a known patient, delivered after the first silver run.
    a08 = "\r".join([
        "MSH|^~\\&|MEDSPARK-ADT|MEDSPARK GENERAL|MEDSPARK-LAKE|MEDSPARK|20261101090000-0500||ADT^A08^ADT_A01|"
        "UPD0000000001|P|2.5",
        "EVN|A08|20261101090000-0500",
        f"PID|1||{patient['mrn']}^^^MEDSPARK^MR~{ssn}^^^SSA^SS||DOE^JANE||{patient['birth_date'].replace('-', '')}|"
        f"{patient['sex']}|||1 Elm Street^^Worcester^MA^01608^USA^H||||||||{ssn}",
    ]) + "\r"
    update_dir = built["root"] / "src" / "hl7v2-late"
    update_dir.mkdir()
    (update_dir / "a08.hl7").write_bytes(a08.encode("utf-8"))
    ingest(spark, config, str(built["root"] / "src"))
    result = build_silver(spark, config)
    assert result.plan is not None and result.plan.from_batch == built["first"].plan.to_batch  # only the new batch
    persons = _table(spark, lakehouse, "silver", "person")
    assert persons.count() == PATIENTS  # the update joined the known person through MRN and SSN
    locations = _table(spark, lakehouse, "silver", "location").where("zip = '01608' AND city = 'Worcester'")
    assert locations.count() == 1
    new_location = locations.first()["location_id"]
    updated = persons.where(sf.col("location_id") == new_location).collect()
    assert len(updated) == 1
    history = _table(spark, lakehouse, "silver", "person_history").where(
        sf.col("person_id") == updated[0]["person_id"]).orderBy("valid_from").collect()
    assert [h["is_current"] for h in history] == [False, True]
    assert history[0]["valid_to"] == history[1]["valid_from"]
    assert history[0]["location_id"] != new_location and history[1]["location_id"] == new_location

    # The same delivery on the copy, with the silver run killed after its first MERGE, then run again.
    crashed_config = _config(crashed)
    ingest(spark, crashed_config, str(built["root"] / "src"))
    real_merge = silver_job._merge_table

    def dying_merge(*args, **kwargs):  # type: ignore[no-untyped-def]
        real_merge(*args, **kwargs)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(silver_job, "_merge_table", dying_merge)
    with pytest.raises(KeyboardInterrupt):
        build_silver(spark, crashed_config)
    monkeypatch.setattr(silver_job, "_merge_table", real_merge)
    resumed = build_silver(spark, crashed_config)
    assert resumed.plan is not None and resumed.plan.replay and resumed.plan.run_seq == result.plan.run_seq
    for table in (*omop.TABLES, "person_identifier", "visit_identifier"):
        assertDataFrameEqual(_table(spark, crashed, "silver", table), _table(spark, lakehouse, "silver", table))
    # history rows are stamped with each lakehouse's own planning time: compare everything else
    timeless = ("valid_from", "valid_to")
    assertDataFrameEqual(_table(spark, crashed, "silver", "person_history").drop(*timeless),
                         _table(spark, lakehouse, "silver", "person_history").drop(*timeless))


def test_research_views_are_de_identified(spark: SparkSession, built: dict) -> None:
    from medspark.privacy.job import build_research

    lakehouse = built["root"] / "lh"
    result = build_research(spark, built["config"])
    assert result.tables["person"] == PATIENTS
    person_view = _table(spark, lakehouse, "research", "person")
    assert person_view.where("month_of_birth IS NOT NULL OR day_of_birth IS NOT NULL").count() == 0
    silver_ids = {r["person_id"] for r in _table(spark, lakehouse, "silver", "person").collect()}
    assert not silver_ids & {r["person_id"] for r in person_view.collect()}  # keyed research ids, not silver ids
    zips = {r["zip"] for r in _table(spark, lakehouse, "research", "location").collect()}
    assert zips and all(z is None or len(z) == 3 for z in zips)
    truth = _truth(built["src"])
    hits = find_identifiers(spark, str(lakehouse / "research"), {"ssn": [r["ssn"] for r in truth],
                                                                 "mrn": [r["mrn"] for r in truth]})
    assert hits == {}
    # written clustered on maintain.zorder's columns: each file holds its own person_id range (data skipping works
    # after every refresh, not only after `medspark maintain`)
    ranges = sorted(tuple(r) for r in _table(spark, lakehouse, "research", "condition_occurrence")
                    .groupBy(sf.col("_metadata.file_path"))
                    .agg(sf.min("person_id"), sf.max("person_id")).drop("file_path").collect())
    assert len(ranges) >= 2, ranges
    assert all(before[1] < after[0] for before, after in itertools.pairwise(ranges)), ranges


def test_a_table_over_its_threshold_fails_the_run_and_leaves_silver_unchanged(spark: SparkSession,
                                                                               built: dict) -> None:
    from medspark.errors import DataQualityError

    lakehouse, config = built["root"] / "lh", built["config"]
    patient = _truth(built["src"])[1]
    reading = {"device_id": "bedside-9", "patient_mrn": patient["mrn"], "timestamp": "2026-01-10T08:00:00Z",
               "metric": "heart_rate", "value": 900, "unit": "/min"}  # implausible: the only measurement of the run
    late = built["root"] / "src" / "vitals-late"
    late.mkdir()
    (late / "v.jsonl").write_text(json.dumps(reading) + "\n")
    ingest(spark, config, str(built["root"] / "src"))
    before = {t: _table(spark, lakehouse, "silver", t).inputFiles() for t in ("measurement", "person")}
    with pytest.raises(DataQualityError, match="measurement"):
        build_silver(spark, config)
    assert {t: _table(spark, lakehouse, "silver", t).inputFiles() for t in before} == before
    results = _table(spark, lakehouse, "ops", "dq_results").where(
        "check_id = 'measurement.value_as_number.heart_rate' AND NOT success")
    assert results.count() == 1 and results.first()["unexpected_count"] == 1
