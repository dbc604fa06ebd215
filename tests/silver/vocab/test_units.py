"""standardise_measurements on literal rows; expected values worked out by hand from the conversion factors."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from medspark.silver.units import standardise_measurements
from medspark.silver.vocab import load_vocabulary

IN_DDL = "id int, measurement_concept_id int, value_as_number double, unit_source_value string"
OUT_DDL = f"{IN_DDL}, unit_concept_id int, _unit_converted_from string"


def test_standardise_measurements(spark: SparkSession) -> None:
    rows = spark.createDataFrame([
        (1, 3000483, 5.0, "mmol/L"),      # glucose (mass concept) reported in mmol/L
        (2, 2000000042, 7.0, "mmol/L"),   # LOINC 15074-8 glucose in SI -> 2339-0 in mg/dL
        (3, 3000483, 100.0, "mg/dL"),     # already canonical
        (4, 3020891, 98.6, "degF"),       # monitor in Fahrenheit
        (5, 3020891, 37.2, "degC"),
        (6, 3027018, 72.0, "bpm"),
        (7, 3025315, 154.0, "lb"),
        (8, 3036277, 70.0, "in"),
        (9, 3027114, 5.0, "mmol/L"),      # total cholesterol
        (10, 3000963, 135.0, "g/L"),      # hemoglobin
        (11, 3004249, 120.0, "mm[Hg]"),
        (12, 3004249, 118.0, "mmHg"),
        (13, 3004249, 1.0, "furlong"),
        (14, 3004249, 1.0, None),
        (15, 3024171, None, "breaths/min"),
        (16, 3000285, 140.0, "mmol/L"),   # sodium: mmol/L is its unit, no rule
    ], IN_DDL)
    expected = spark.createDataFrame([
        (1, 3000483, 90.08, "mmol/L", 8840, "mmol/L"),          # 5 * 18.016
        (2, 3000483, 126.112, "mmol/L", 8840, "mmol/L"),        # 7 * 18.016
        (3, 3000483, 100.0, "mg/dL", 8840, None),
        (4, 3020891, 37.0, "degF", 586323, "[degF]"),           # (98.6 - 32) * 5 / 9
        (5, 3020891, 37.2, "degC", 586323, None),
        (6, 3027018, 72.0, "bpm", 8541, None),
        (7, 3025315, 69.85322498, "lb", 9529, "[lb_av]"),       # 154 * 0.45359237
        (8, 3036277, 177.8, "in", 8582, "[in_i]"),              # 70 * 2.54
        (9, 3027114, 193.35, "mmol/L", 8840, "mmol/L"),         # 5 * 38.67
        (10, 3000963, 13.5, "g/L", 8713, "g/L"),                # 135 / 10
        (11, 3004249, 120.0, "mm[Hg]", 8876, None),
        (12, 3004249, 118.0, "mmHg", 8876, None),
        (13, 3004249, 1.0, "furlong", 0, None),
        (14, 3004249, 1.0, None, 0, None),
        (15, 3024171, None, "breaths/min", 8541, None),
        (16, 3000285, 140.0, "mmol/L", 8753, None),
    ], OUT_DDL)
    result = standardise_measurements(rows, load_vocabulary(spark))
    assertDataFrameEqual(result, expected, rtol=1e-9, atol=1e-9)
