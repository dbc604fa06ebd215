"""The OMOP CDM v5.4 tables medspark writes to silver: their columns and types, as the CDM specifies them.

The DDL follows the OHDSI CDM v5.4 specification (``OMOP_CDMv5.4_Field_Level.csv``): CDM ``integer`` is Spark
``int``, ``bigint`` stays ``bigint`` for the ids medspark derives from hashes (the CDM allows bigint ids), ``float``
is ``double``, ``varchar(n)`` is ``string``. Every silver table adds three lineage columns after the CDM columns:
which bronze table, record and version the row was built from, so any silver row can be traced to its raw record.
"""

from __future__ import annotations

from functools import cache

from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

LINEAGE_DDL = "_source string, _source_record_hash string, _source_version timestamp"
LINEAGE = ("_source", "_source_record_hash", "_source_version")

# Ids medspark derives (person, visit, event ids) are bigint: 63-bit hashes of natural keys (medspark.silver.keys).
CDM_DDL: dict[str, str] = {
    "person": """
        person_id bigint, gender_concept_id int, year_of_birth int, month_of_birth int, day_of_birth int,
        birth_datetime timestamp, race_concept_id int, ethnicity_concept_id int, location_id bigint,
        provider_id bigint, care_site_id bigint, person_source_value string, gender_source_value string,
        gender_source_concept_id int, race_source_value string, race_source_concept_id int,
        ethnicity_source_value string, ethnicity_source_concept_id int""",
    "observation_period": """
        observation_period_id bigint, person_id bigint, observation_period_start_date date,
        observation_period_end_date date, period_type_concept_id int""",
    "visit_occurrence": """
        visit_occurrence_id bigint, person_id bigint, visit_concept_id int, visit_start_date date,
        visit_start_datetime timestamp, visit_end_date date, visit_end_datetime timestamp,
        visit_type_concept_id int, provider_id bigint, care_site_id bigint, visit_source_value string,
        visit_source_concept_id int, admitted_from_concept_id int, admitted_from_source_value string,
        discharged_to_concept_id int, discharged_to_source_value string, preceding_visit_occurrence_id bigint""",
    "condition_occurrence": """
        condition_occurrence_id bigint, person_id bigint, condition_concept_id int, condition_start_date date,
        condition_start_datetime timestamp, condition_end_date date, condition_end_datetime timestamp,
        condition_type_concept_id int, condition_status_concept_id int, stop_reason string, provider_id bigint,
        visit_occurrence_id bigint, visit_detail_id bigint, condition_source_value string,
        condition_source_concept_id int, condition_status_source_value string""",
    "drug_exposure": """
        drug_exposure_id bigint, person_id bigint, drug_concept_id int, drug_exposure_start_date date,
        drug_exposure_start_datetime timestamp, drug_exposure_end_date date, drug_exposure_end_datetime timestamp,
        verbatim_end_date date, drug_type_concept_id int, stop_reason string, refills int, quantity double,
        days_supply int, sig string, route_concept_id int, lot_number string, provider_id bigint,
        visit_occurrence_id bigint, visit_detail_id bigint, drug_source_value string, drug_source_concept_id int,
        route_source_value string, dose_unit_source_value string""",
    "procedure_occurrence": """
        procedure_occurrence_id bigint, person_id bigint, procedure_concept_id int, procedure_date date,
        procedure_datetime timestamp, procedure_end_date date, procedure_end_datetime timestamp,
        procedure_type_concept_id int, modifier_concept_id int, quantity int, provider_id bigint,
        visit_occurrence_id bigint, visit_detail_id bigint, procedure_source_value string,
        procedure_source_concept_id int, modifier_source_value string""",
    "measurement": """
        measurement_id bigint, person_id bigint, measurement_concept_id int, measurement_date date,
        measurement_datetime timestamp, measurement_time string, measurement_type_concept_id int,
        operator_concept_id int, value_as_number double, value_as_concept_id int, unit_concept_id int,
        range_low double, range_high double, provider_id bigint, visit_occurrence_id bigint, visit_detail_id bigint,
        measurement_source_value string, measurement_source_concept_id int, unit_source_value string,
        unit_source_concept_id int, value_source_value string, measurement_event_id bigint,
        meas_event_field_concept_id int""",
    "observation": """
        observation_id bigint, person_id bigint, observation_concept_id int, observation_date date,
        observation_datetime timestamp, observation_type_concept_id int, value_as_number double,
        value_as_string string, value_as_concept_id int, qualifier_concept_id int, unit_concept_id int,
        provider_id bigint, visit_occurrence_id bigint, visit_detail_id bigint, observation_source_value string,
        observation_source_concept_id int, unit_source_value string, qualifier_source_value string,
        value_source_value string, observation_event_id bigint, obs_event_field_concept_id int""",
    "death": """
        person_id bigint, death_date date, death_datetime timestamp, death_type_concept_id int,
        cause_concept_id int, cause_source_value string, cause_source_concept_id int""",
    "location": """
        location_id bigint, address_1 string, address_2 string, city string, state string, zip string,
        county string, location_source_value string, country_concept_id int, country_source_value string,
        latitude double, longitude double""",
    "provider": """
        provider_id bigint, provider_name string, npi string, dea string, specialty_concept_id int,
        care_site_id bigint, year_of_birth int, gender_concept_id int, provider_source_value string,
        specialty_source_value string, specialty_source_concept_id int, gender_source_value string,
        gender_source_concept_id int""",
    "care_site": """
        care_site_id bigint, care_site_name string, place_of_service_concept_id int, location_id bigint,
        care_site_source_value string, place_of_service_source_value string""",
    "payer_plan_period": """
        payer_plan_period_id bigint, person_id bigint, payer_plan_period_start_date date,
        payer_plan_period_end_date date, payer_concept_id int, payer_source_value string,
        payer_source_concept_id int, plan_concept_id int, plan_source_value string, plan_source_concept_id int,
        sponsor_concept_id int, sponsor_source_value string, sponsor_source_concept_id int, family_source_value string,
        stop_reason_concept_id int, stop_reason_source_value string, stop_reason_source_concept_id int""",
    "cost": """
        cost_id bigint, cost_event_id bigint, cost_domain_id string, cost_type_concept_id int,
        currency_concept_id int, total_charge double, total_cost double, total_paid double, paid_by_payer double,
        paid_by_patient double, paid_patient_copay double, paid_patient_coinsurance double,
        paid_patient_deductible double, paid_by_primary double, paid_ingredient_cost double,
        paid_dispensing_fee double, payer_plan_period_id bigint, amount_allowed double, revenue_code_concept_id int,
        revenue_code_source_value string,
        drg_concept_id int, drg_source_value string""",
}

# The natural key MERGE upserts on: the CDM primary key (death has one row per person).
PRIMARY_KEY: dict[str, str] = {
    "person": "person_id",
    "observation_period": "observation_period_id",
    "visit_occurrence": "visit_occurrence_id",
    "condition_occurrence": "condition_occurrence_id",
    "drug_exposure": "drug_exposure_id",
    "procedure_occurrence": "procedure_occurrence_id",
    "measurement": "measurement_id",
    "observation": "observation_id",
    "death": "person_id",
    "location": "location_id",
    "provider": "provider_id",
    "care_site": "care_site_id",
    "payer_plan_period": "payer_plan_period_id",
    "cost": "cost_id",
}

TABLES = tuple(CDM_DDL)


_TYPES: dict[str, DataType] = {
    "bigint": LongType(), "int": IntegerType(), "double": DoubleType(), "string": StringType(),
    "date": DateType(), "timestamp": TimestampType(),
}


def parse_ddl(ddl: str) -> StructType:
    """A flat ``name type, ...`` DDL as a StructType (all columns nullable), without a SparkSession."""
    fields = []
    for item in ddl.split(","):
        name, type_name = item.split()
        fields.append(StructField(name, _TYPES[type_name], True))
    return StructType(fields)


@cache
def cdm_schema(table: str) -> StructType:
    """The CDM columns of ``table`` (no lineage)."""
    return parse_ddl(CDM_DDL[table])


@cache
def schema(table: str) -> StructType:
    """The silver schema of ``table``: CDM columns, then the lineage columns."""
    return parse_ddl(CDM_DDL[table] + ", " + LINEAGE_DDL)


def columns(table: str) -> tuple[str, ...]:
    """Column names of the silver table, in order."""
    return tuple(f.name for f in schema(table).fields)
