"""The Delta tables of a lakehouse: listing them and resolving the names operators type.

``medspark history``, ``restore`` and ``maintain`` all name tables the same way: ``<layer>/<table>``, or a bare
table name searched in the layers. Listing goes through the Hadoop FileSystem of the session, so it works for a
local path and for any URI Spark can read (``s3a://``, ``abfss://``, ``hdfs://``); a table is a directory directly
under a layer that holds a ``_delta_log``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from medspark.config.model import MedsparkConfig
from medspark.errors import UsageError
from medspark.io.delta import table_exists

log = logging.getLogger(__name__)

# Search order for bare names (the order ``medspark history`` always used, with the newer layers added).
LAYERS = ("bronze", "silver", "research", "gold", "quarantine", "ops", "restricted")
_LOG_DIR = "_delta_log"


@dataclass(frozen=True)
class TableRef:
    """One Delta table of the lakehouse."""

    layer: str
    name: str
    path: str

    @property
    def key(self) -> str:
        """``<layer>/<table>``, the name used in config keys, the run log and messages."""
        return f"{self.layer}/{self.name}"


def list_tables(spark: SparkSession, config: MedsparkConfig, layers: tuple[str, ...] = LAYERS) -> list[TableRef]:
    """Every Delta table directly under the given layers, sorted by layer order then name.

    Only directory listings (one per layer, one existence check per directory): no table is opened.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    found: list[TableRef] = []
    for layer in layers:
        root = jvm.org.apache.hadoop.fs.Path(config.table_path(layer, "").rstrip("/"))
        filesystem = root.getFileSystem(hadoop_conf)
        if not filesystem.exists(root):
            continue
        names = sorted(
            str(status.getPath().getName())
            for status in filesystem.listStatus(root)
            if status.isDirectory() and filesystem.exists(jvm.org.apache.hadoop.fs.Path(status.getPath(), _LOG_DIR))
        )
        found += [TableRef(layer, name, config.table_path(layer, name)) for name in names if not name.startswith(".")]
    log.info("found %d Delta tables under %s", len(found), config.lakehouse)
    return found


def resolve_table(spark: SparkSession, config: MedsparkConfig, name: str, *, unique: bool = False) -> TableRef:
    """The table an operator means by ``name``: ``<layer>/<table>`` or a bare table name.

    A bare name is searched in ``LAYERS`` order and the first layer holding it wins, unless ``unique``: then a
    name found in several layers is refused (commands that change a table must not guess, e.g. ``person`` is in
    silver and in research).

    Raises:
        UsageError: no such table, an unknown layer, or (``unique``) an ambiguous bare name.
    """
    text = name.strip().strip("/")
    layer, sep, table = text.partition("/")
    if sep:
        if layer not in LAYERS or not table or "/" in table:
            raise UsageError(f"no Delta table '{name}' under {config.lakehouse} (expected <layer>/<table>, "
                             f"layers: {', '.join(LAYERS)})")
        candidates = [TableRef(layer, table, config.table_path(layer, table))]
    else:
        if not text:
            raise UsageError("a table name is required, e.g. bronze/fhir_patient")
        candidates = [TableRef(layer, text, config.table_path(layer, text)) for layer in LAYERS]
    matches: list[TableRef] = []
    for candidate in candidates:
        if table_exists(spark, candidate.path):
            matches.append(candidate)
            if not unique:
                break
    if not matches:
        raise UsageError(f"no Delta table '{name}' under {config.lakehouse}")
    if len(matches) > 1:
        raise UsageError(f"'{name}' is in several layers ({', '.join(m.key for m in matches)}); name one, "
                         f"e.g. {matches[0].key}")
    return matches[0]
