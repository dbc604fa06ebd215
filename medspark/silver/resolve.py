"""One person (or one visit) across sources: connected components of the identifier graph, on DataFrames.

Every staged record names its subject by identifiers (``system``, pseudonymised ``value``). Two records describe
the same subject when they share an identifier, directly or through a chain of records (CSV: Synthea id + SSN;
FHIR: Synthea id + MRN + SSN; HL7: MRN + SSN + member id; X12: member id + SSN; vitals: MRN). The subject is the
connected component of the bipartite record–identifier graph.

Components are found by min-label propagation: every identifier node starts with its own key as label; a record
takes the smallest label of its identifiers, an identifier the smallest label of its records; repeat until no
label changes (as many rounds as the longest chain of records, 2–4 in practice). Lineage is cut every round with a
local checkpoint so the plan does not grow.

Stability across runs: a crosswalk (``node`` → ``subject_id``) persists every identifier ever seen. A component
that contains a known identifier keeps the known id (the smallest, if a new record links two known subjects — that
merge is counted and reported); a new component gets ``surrogate_id`` of its smallest node key, which does not
depend on run order within the component's first run.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medspark.silver.keys import surrogate_id

MAX_ROUNDS = 30


@dataclass(frozen=True)
class Resolution:
    """Result of :func:`resolve` (all DataFrames locally checkpointed)."""

    records: DataFrame  # _record_key, subject_id
    crosswalk: DataFrame  # node, subject_id: the new crosswalk rows (nodes not known before, or re-pointed)
    merged: int  # known subjects merged into another by a new record linking them


def _checkpoint(frame: DataFrame) -> DataFrame:
    return frame.localCheckpoint(eager=True)


def resolve(record_nodes: DataFrame, crosswalk: DataFrame) -> Resolution:
    """Assign a subject id to every record.

    Args:
        record_nodes: ``_record_key string, node string``: one row per (record, identifier node); a record without
            any identifier must not be passed (the caller quarantines it).
        crosswalk: ``node string, subject_id bigint``: the persisted crosswalk (may be empty).
    """
    edges = _checkpoint(record_nodes.select("_record_key", "node").distinct())
    nodes = edges.select("node").distinct()
    known = crosswalk.join(nodes, "node", "left_semi")
    # A node's initial label is its own key; known nodes are labelled by their subject so that components holding a
    # known node converge on the smallest known subject (labels "0<id>" sort before any "1<node>").
    labels = _checkpoint(
        nodes.join(known, "node", "left")
        .select("node", sf.when(sf.col("subject_id").isNotNull(),
                                sf.concat(sf.lit("0"), sf.lpad(sf.col("subject_id").cast("string"), 20, "0")))
                .otherwise(sf.concat(sf.lit("1"), sf.col("node"))).alias("label"))
    )
    for _ in range(MAX_ROUNDS):
        record_labels = edges.join(labels, "node").groupBy("_record_key").agg(sf.min("label").alias("label"))
        new_labels = _checkpoint(
            edges.join(record_labels, "_record_key").groupBy("node").agg(sf.min("label").alias("label"))
        )
        changed = new_labels.join(labels.withColumnRenamed("label", "old"), "node") \
            .where(sf.col("label") != sf.col("old")).limit(1).count()
        labels = new_labels
        if changed == 0:
            break
    else:  # pragma: no cover - a chain longer than MAX_ROUNDS records
        raise RuntimeError(f"identifier graph did not converge in {MAX_ROUNDS} rounds")
    subject = sf.when(sf.col("label").startswith("0"), sf.substring("label", 2, 20).cast("bigint")) \
        .otherwise(surrogate_id(sf.substring("label", 2, 100000)))
    node_subjects = _checkpoint(labels.select("node", subject.alias("subject_id")))
    records = _checkpoint(
        edges.join(node_subjects, "node").groupBy("_record_key").agg(sf.min("subject_id").alias("subject_id"))
    )
    changed_nodes = node_subjects.join(known, ["node", "subject_id"], "left_anti")
    merged = known.join(node_subjects.withColumnRenamed("subject_id", "new_id"), "node") \
        .where(sf.col("subject_id") != sf.col("new_id")).select("subject_id").distinct().count()
    return Resolution(records=records, crosswalk=_checkpoint(changed_nodes), merged=merged)
