"""Device vitals (bedside-monitor JSON Lines and PhysioNet 2012 long CSV) staged into event records.

Each reading is one ``event`` (``event_kind`` ``device_vital``, ``type_source`` ``EHR``). Parameters with a LOINC
code in :data:`PARAMETER_LOINC` (the generator's metric names and PhysioNet 2012's parameter names) are staged as
LOINC; any other parameter keeps vocabulary ``MedsparkVitals`` with the parameter name as code, so it stays
unmapped (concept 0) and is counted rather than lost. ``unit_source_value`` is the reading's unit, else the
parameter's usual unit (PhysioNet files carry none).

Patients: a JSON Lines reading's ``patient_identifier`` is the hospital MRN (``mrn``). A PhysioNet record id is
not an MRN and matches nothing else: it is ``other:physionet-record``.

Times: ``event_start`` is ``observed_at``. PhysioNet readings only have minutes since ICU admission and the
dataset publishes no admission time, so their ``event_start`` is null and silver's gate quarantines them;
nothing is invented. Readings marked not measured (PhysioNet ``-1``) are staged with ``value_as_number`` null and
``value_source_value`` ``-1`` (the source's own marker), so nothing is dropped silently. PhysioNet's record
descriptors (``RecordID``, ``Age``, ``Gender``, ``ICUType``) describe the stay, not a measurement: they are
``_unstaged`` with reason ``vitals_descriptor``; a reading without parameter is ``_unstaged`` as ``no_code``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf

from medspark.silver.sources._common import (
    LINEAGE,
    UNSTAGED,
    clean,
    identifier,
    identifiers,
    one,
    to_record,
    unstaged,
    with_lineage,
)

SOURCE = "device_vitals"
VOCABULARY = "MedsparkVitals"
LONG_CSV = "long_csv"

# parameter name -> (LOINC code, usual UCUM unit). Generator metrics first, then PhysioNet 2012 parameters.
PARAMETER_LOINC: Mapping[str, tuple[str, str]] = {
    "heart_rate": ("8867-4", "/min"),
    "bp_systolic": ("8480-6", "mm[Hg]"),
    "bp_diastolic": ("8462-4", "mm[Hg]"),
    "temperature": ("8310-5", "Cel"),
    "resp_rate": ("9279-1", "/min"),
    "spo2": ("59408-5", "%"),
    "HR": ("8867-4", "/min"),
    "SysABP": ("8480-6", "mm[Hg]"),
    "DiasABP": ("8462-4", "mm[Hg]"),
    "MAP": ("8478-0", "mm[Hg]"),
    "NISysABP": ("8480-6", "mm[Hg]"),
    "NIDiasABP": ("8462-4", "mm[Hg]"),
    "NIMAP": ("8478-0", "mm[Hg]"),
    "Temp": ("8310-5", "Cel"),
    "RespRate": ("9279-1", "/min"),
    "SaO2": ("2708-6", "%"),
    "Weight": ("29463-7", "kg"),
    "Height": ("8302-2", "cm"),
    "GCS": ("9269-2", "{score}"),
    "Glucose": ("2345-7", "mg/dL"),
    "HCT": ("4544-3", "%"),
    "K": ("2823-3", "mmol/L"),
    "Na": ("2951-2", "mmol/L"),
    "Creatinine": ("2160-0", "mg/dL"),
    "BUN": ("3094-0", "mg/dL"),
    "HCO3": ("1963-8", "mmol/L"),
    "Mg": ("19123-9", "mg/dL"),
    "Platelets": ("777-3", "10*3/uL"),
    "WBC": ("6690-2", "10*3/uL"),
    "pH": ("11558-4", "[pH]"),
    "PaCO2": ("2019-8", "mm[Hg]"),
    "PaO2": ("2703-7", "mm[Hg]"),
    "FiO2": ("3150-0", "1"),
    "Lactate": ("2524-7", "mmol/L"),
    "Urine": ("9187-6", "mL"),
    "ALT": ("1742-6", "U/L"),
    "AST": ("1920-8", "U/L"),
    "ALP": ("6768-6", "U/L"),
    "Bilirubin": ("1975-2", "mg/dL"),
    "Albumin": ("1751-7", "g/dL"),
    "Cholesterol": ("2093-3", "mg/dL"),
    "TroponinI": ("10839-9", "ng/mL"),
    "TroponinT": ("6598-7", "ng/mL"),
}
DESCRIPTORS = ("RecordID", "Age", "Gender", "ICUType")


def stage_readings(readings: DataFrame) -> dict[str, DataFrame]:
    """``device_vitals`` -> ``event`` (one per reading) and ``_unstaged`` (descriptors, readings without parameter).

    Output columns: ``EVENT_RECORD`` / ``UNSTAGED_RECORD`` of ``_common``.
    """
    rows = readings.transform(with_lineage, SOURCE)
    parameter = clean(sf.col("parameter"))
    loinc = sf.create_map(*[sf.lit(x) for name, (code, _) in PARAMETER_LOINC.items() for x in (name, code)])
    units = sf.create_map(*[sf.lit(x) for name, (_, unit) in PARAMETER_LOINC.items() for x in (name, unit)])
    mapped = sf.try_element_at(loinc, parameter)
    is_long = sf.col("layout") == LONG_CSV
    missing = sf.coalesce(sf.col("is_missing"), sf.lit(False))
    patient = sf.when(is_long, identifier("other:physionet-record", sf.col("patient_identifier"))).otherwise(
        identifier("mrn", sf.col("patient_identifier"))
    )
    descriptor = sf.coalesce(is_long & parameter.isin(*DESCRIPTORS), sf.lit(False))
    events = rows.where(~descriptor & parameter.isNotNull()).select(
        *LINEAGE,
        identifiers(one(patient)).alias("person_identifiers"),
        sf.when(mapped.isNotNull(), sf.lit("LOINC")).otherwise(sf.lit(VOCABULARY)).alias("vocabulary_id"),
        sf.coalesce(mapped, parameter).alias("code"),
        sf.col("observed_at").alias("event_start"),
        sf.when(~missing, sf.col("value")).alias("value_as_number"),
        sf.when(missing, sf.lit("-1")).alias("value_source_value"),
        sf.coalesce(clean(sf.col("unit")), sf.try_element_at(units, parameter)).alias("unit_source_value"),
        sf.lit("device_vital").alias("event_kind"),
        sf.lit("EHR").alias("type_source"),
    )
    return {
        "event": to_record(events, "event"),
        UNSTAGED: unstaged(rows.where(descriptor), "vitals_descriptor").unionByName(
            unstaged(rows.where(parameter.isNull()), "no_code")
        ),
    }


STAGERS: dict[str, Callable[[DataFrame], dict[str, DataFrame]]] = {SOURCE: stage_readings}
