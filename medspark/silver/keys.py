"""Stable surrogate keys: the same natural key gives the same id in every run, on every cluster.

OMOP ids are integers. medspark derives them from natural keys with Spark's built-in 64-bit xxHash, masked to 63
bits so ids are non-negative. A collision between two natural keys is possible in principle (about 1 in 2^32 at 10^5
keys per table... in practice ~n^2 / 2^64); the job counts distinct keys against distinct ids per run and fails
loudly if it ever happens, instead of silently merging two facts.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as sf

_MASK = (1 << 63) - 1


def surrogate_id(*parts: Column | str) -> Column:
    """A non-negative bigint id from the natural-key ``parts`` (columns or column names); null parts are kept apart
    from empty strings by xxhash64's own null handling."""
    cols = [sf.col(p) if isinstance(p, str) else p for p in parts]
    return sf.xxhash64(*cols).bitwiseAND(sf.lit(_MASK)).cast("bigint")
