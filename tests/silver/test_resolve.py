"""Connected components of the identifier graph: one subject per chain of shared identifiers, stable across runs."""

from __future__ import annotations

from pyspark.sql import functions as sf

from medspark.silver.resolve import resolve

XWALK = "node string, subject_id bigint"


def _subjects(resolution) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {r["_record_key"]: r["subject_id"] for r in resolution.records.collect()}


def test_chains_of_shared_identifiers_are_one_subject(spark) -> None:
    # csv: synthea+ssn; fhir: synthea+mrn; hl7: mrn+member; x12: member+ssn2 (another ssn of the same person);
    # vitals: mrn. A second person shares nothing with the first.
    edges = spark.createDataFrame([
        ("csv", "synthea|a"), ("csv", "ssn|1"),
        ("fhir", "synthea|a"), ("fhir", "mrn|m"),
        ("hl7", "mrn|m"), ("hl7", "member|x"),
        ("x12", "member|x"), ("x12", "ssn|2"),
        ("vitals", "mrn|m"),
        ("other", "ssn|9"),
    ], "_record_key string, node string")
    result = resolve(edges, spark.createDataFrame([], XWALK))
    subjects = _subjects(result)
    assert len({subjects[k] for k in ("csv", "fhir", "hl7", "x12", "vitals")}) == 1
    assert subjects["other"] != subjects["csv"]
    assert result.crosswalk.count() == 6  # every node is new
    assert result.merged == 0


def test_known_identifiers_keep_their_subject_and_new_ones_join_it(spark) -> None:
    crosswalk = spark.createDataFrame([("ssn|1", 111), ("mrn|m", 222)], XWALK)
    edges = spark.createDataFrame([
        ("late", "ssn|1"), ("late", "member|new"),   # a new identifier for known person 111
        ("new", "synthea|z"),                          # a new person
    ], "_record_key string, node string")
    result = resolve(edges, crosswalk)
    subjects = _subjects(result)
    assert subjects["late"] == 111
    new_rows = {r["node"]: r["subject_id"] for r in result.crosswalk.collect()}
    assert new_rows == {"member|new": 111, "synthea|z": subjects["new"]}
    assert subjects["new"] not in (111, 222)


def test_a_record_linking_two_known_subjects_merges_into_the_smaller(spark) -> None:
    crosswalk = spark.createDataFrame([("ssn|1", 111), ("mrn|m", 222)], XWALK)
    edges = spark.createDataFrame([("bridge", "ssn|1"), ("bridge", "mrn|m")], "_record_key string, node string")
    result = resolve(edges, crosswalk)
    assert _subjects(result) == {"bridge": 111}
    assert {r["node"]: r["subject_id"] for r in result.crosswalk.collect()} == {"mrn|m": 111}
    assert result.merged == 1


def test_new_subject_ids_do_not_depend_on_record_order(spark) -> None:
    rows = [("r1", "ssn|5"), ("r2", "ssn|5"), ("r2", "mrn|q"), ("r3", "mrn|q")]
    first = resolve(spark.createDataFrame(rows, "_record_key string, node string"), spark.createDataFrame([], XWALK))
    shuffled = spark.createDataFrame(list(reversed(rows)), "_record_key string, node string").repartition(2)
    second = resolve(shuffled, spark.createDataFrame([], XWALK))
    assert _subjects(first) == _subjects(second)
    # the id is the hash of the smallest node key, computed independently of the resolver's labels
    mask = sf.lit((1 << 63) - 1)
    expected = spark.range(1).select(sf.xxhash64(sf.lit("mrn|q")).bitwiseAND(mask).alias("id")).first()
    assert set(_subjects(first).values()) == {expected["id"]}
