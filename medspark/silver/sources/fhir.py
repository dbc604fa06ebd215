"""FHIR R4 bronze tables (NDJSON and Bundles alike) staged into person, visit, event, provider and care-site records.

Identifier decisions:

- A Patient's ``resource_id`` is emitted as system ``fhir-patient``, never as ``synthea``: only medspark's generator
  and Synthea guarantee ``Patient.id == Synthea Id``; a real FHIR server assigns its own ids. Its ``identifier``
  elements are normalised (:func:`~medspark.silver.sources._common.fhir_identifier_system`): Synthea's own system
  ``https://github.com/synthetichealth/synthea`` gives ``synthea``, so a Synthea export links to the CSV through
  that identifier; the silver matcher may also treat ``synthea`` and ``fhir-patient`` as one system
  (``silver.matching.equivalent_systems``).
- Clinical resources name their patient by reference: ``Patient/<id>``, an absolute or versioned URL, or
  ``urn:uuid:<id>`` give ``fhir-patient:<id>`` (bronze ``patient_id``); a conditional reference
  ``Patient?identifier=<system>|<value>`` gives the normalised system of ``<system>``.
- Encounters: ``resource_id`` is ``fhir-encounter``; identifiers with medspark's visit system
  (``urn:oid:2.16.840.1.113883.3.4242.2``) are ``visit``, Synthea's system ``synthea-encounter``, others
  ``other:<system>``. ``Encounter/<id>`` references give ``fhir-encounter``, conditional ones the normalised system.
- Practitioners (``Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|<npi>`` or ``Practitioner/<id>``) give
  ``provider_source`` = the NPI (or id); organisations (``serviceProvider``) give ``care_site_source`` = the
  identifier value or id. Each encounter also yields a bare provider and care-site record for them.

Events: the coding is the first whose system is a known vocabulary, else the first coded one with vocabulary
``other:<system>``. Observations with components (blood pressure panels) give one event per coded component;
otherwise one event: ``valueQuantity`` -> ``value_as_number``/``unit_source_value``, ``valueInteger`` ->
``value_as_number``, a coded value -> ``value_source_value`` = its code, ``valueString``/``valueBoolean`` ->
``value_source_value``. A resource with nothing coded is ``_unstaged`` (``no_code``). ``_source_version`` is
``meta.lastUpdated``, else the file's modification time.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.silver.sources._common import (
    LINEAGE,
    NPI_SYSTEM,
    SYNTHEA_SYSTEM,
    UNSTAGED,
    VISIT_SYSTEM,
    chosen_coding,
    clean,
    explode_items,
    fhir_identifier_system,
    has_no_items,
    identifier,
    identifiers,
    no_rows,
    one,
    other_system,
    person_identifier,
    to_record,
    unstaged,
    with_lineage,
)

# Conditional reference: Type?identifier=system|value (the system part may be absent: "identifier=value").
_CONDITIONAL = r"^[A-Za-z]+\?identifier=(?:([^|]*)\|)?(.+)$"
_LITERAL_ID = r"(?:^|/)[A-Za-z]+/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
_URN_UUID = "urn:uuid:"
_FHIR_IDENTIFIERS = "array<struct<system:string,value:string,type_code:string>>"


def _lineage(resources: DataFrame, source: str) -> DataFrame:
    return resources.transform(with_lineage, source, sf.col("last_updated"))


def reference_id(reference: Column) -> Column:
    """The id (literal reference, ``urn:uuid:``) or identifier value (conditional reference) a reference names."""
    conditional = sf.regexp_extract(reference, _CONDITIONAL, 2)
    literal = sf.regexp_extract(reference, _LITERAL_ID, 1)
    return (
        sf.when(reference.startswith(_URN_UUID), sf.substring(reference, len(_URN_UUID) + 1, 1 << 20))
        .when(conditional != "", conditional)
        .when(literal != "", literal)
    )


def _is_conditional(reference: Column) -> Column:
    return reference.rlike(_CONDITIONAL)


def _conditional_system(reference: Column) -> Column:
    return sf.nullif(sf.regexp_extract(reference, _CONDITIONAL, 1), sf.lit(""))


def patient_identifiers(reference: Column, patient_id: Column) -> Column:
    """How a clinical resource names its patient, as normalised identifiers (empty when it names none)."""
    conditional = person_identifier(
        fhir_identifier_system(_conditional_system(reference), sf.lit(None)), reference_id(reference)
    )
    return identifiers(
        one(identifier("fhir-patient", patient_id)),
        one(sf.when(_is_conditional(reference), conditional)),
    )


def _visit_system(system: Column) -> Column:
    return (
        sf.when(system == VISIT_SYSTEM, sf.lit("visit"))
        .when(system == SYNTHEA_SYSTEM, sf.lit("synthea-encounter"))
        .otherwise(other_system(system))
    )


def encounter_identifiers(reference: Column) -> Column:
    """How a resource names its encounter, as normalised visit identifiers (empty when none)."""
    system = sf.when(_is_conditional(reference), _visit_system(_conditional_system(reference))).otherwise(
        sf.lit("fhir-encounter")
    )
    return identifiers(one(sf.when(reference.isNotNull(), identifier(system, reference_id(reference)))))


def _provider_value(reference: Column) -> Column:
    """NPI (or other identifier value / id) of a Practitioner reference."""
    return clean(reference_id(reference))


def _npi(reference: Column) -> Column:
    return sf.when(_conditional_system(reference) == NPI_SYSTEM, reference_id(reference))


# ---- Patient -----------------------------------------------------------------------------------------------------


def stage_patients(patients: DataFrame) -> dict[str, DataFrame]:
    """``fhir_patient`` -> ``person`` (every row).

    Output ``person`` columns: ``PERSON_RECORD``; identifiers = ``fhir-patient:<resource_id>`` + each
    ``identifier`` normalised; race/ethnicity = the first US Core code; given name = the first given name;
    street = the address lines joined by a space.
    """
    rows = _lineage(patients, "fhir_patient")
    own = sf.transform(
        sf.coalesce(sf.col("identifiers"), sf.array().cast(_FHIR_IDENTIFIERS)),
        lambda i: person_identifier(fhir_identifier_system(i["system"], i["type_code"]), i["value"]),
    )
    persons = rows.select(
        *LINEAGE,
        identifiers(one(identifier("fhir-patient", sf.col("resource_id"))), own).alias("identifiers"),
        "birth_date",
        sf.col("gender").alias("gender_source"),
        sf.get(sf.col("race_codes"), 0).alias("race_source"),
        sf.get(sf.col("ethnicity_codes"), 0).alias("ethnicity_source"),
        sf.col("deceased_datetime").alias("death_datetime"),
        sf.get(sf.col("name_given"), 0).alias("given_name"),
        sf.col("name_family").alias("family_name"),
        sf.nullif(sf.array_join(sf.col("address_line"), " "), sf.lit("")).alias("street"),
        sf.col("address_city").alias("city"),
        sf.col("address_state").alias("state"),
        sf.col("address_postal_code").alias("zip"),
    )
    return {"person": to_record(persons, "person"), "_unstaged": no_rows(rows, UNSTAGED)}


# ---- Encounter ---------------------------------------------------------------------------------------------------


def stage_encounters(encounters: DataFrame) -> dict[str, DataFrame]:
    """``fhir_encounter`` -> ``visit`` (every row) + bare ``provider`` / ``care_site`` records it references.

    ``visit``: identifiers ``fhir-encounter:<resource_id>`` + normalised ``identifier`` elements;
    ``visit_class_source`` = ``class.code``; ``period``; ``provider_source`` = the practitioner's NPI/id;
    ``care_site_source`` = the ``serviceProvider`` identifier value/id (else the location's).
    """
    rows = _lineage(encounters, "fhir_encounter")
    own = sf.transform(
        sf.coalesce(sf.col("identifiers"), sf.array().cast(_FHIR_IDENTIFIERS)),
        lambda i: identifier(_visit_system(i["system"]), i["value"]),
    )
    provider = _provider_value(sf.col("practitioner_reference"))
    care_site = sf.coalesce(
        clean(reference_id(sf.col("service_provider_reference"))), clean(reference_id(sf.col("location_reference")))
    )
    visits = rows.select(
        *LINEAGE,
        patient_identifiers(sf.col("patient_reference"), sf.col("patient_id")).alias("person_identifiers"),
        identifiers(one(identifier("fhir-encounter", sf.col("resource_id"))), own).alias("visit_identifiers"),
        sf.col("class_code").alias("visit_class_source"),
        sf.col("period_start").alias("visit_start"),
        sf.col("period_end").alias("visit_end"),
        provider.alias("provider_source"),
        care_site.alias("care_site_source"),
        sf.col("practitioner_reference").alias("_practitioner_reference"),
    )
    providers = visits.where(sf.col("provider_source").isNotNull()).select(
        "*",
        sf.col("provider_source").alias("provider_source_value"),
        _npi(sf.col("_practitioner_reference")).alias("npi"),
        sf.col("care_site_source").alias("care_site_source_value"),
    )
    care_sites = visits.where(sf.col("care_site_source").isNotNull()).select(
        "*", sf.col("care_site_source").alias("care_site_source_value")
    )
    return {
        "visit": to_record(visits, "visit"),
        "provider": to_record(providers, "provider"),
        "care_site": to_record(care_sites, "care_site"),
        "_unstaged": no_rows(rows, UNSTAGED),
    }


# ---- clinical events ---------------------------------------------------------------------------------------------

_EVENT_ITEM = (
    "struct<vocabulary_id:string,code:string,value_as_number:double,value_source_value:string,unit_source_value:string>"
)


def _item(coding: Column, number: Column, text: Column, unit: Column) -> Column:
    """One event's coded value, or null when ``coding`` is null."""
    return sf.when(
        coding.isNotNull(),
        sf.struct(
            coding["vocabulary_id"].alias("vocabulary_id"),
            coding["code"].alias("code"),
            number.cast("double").alias("value_as_number"),
            text.alias("value_source_value"),
            unit.alias("unit_source_value"),
        ),
    )


def _items(*items: Column) -> Column:
    return sf.array_compact(sf.array(*[item.cast(_EVENT_ITEM) for item in items]))


def _stage_events(
    resources: DataFrame,
    source: str,
    *,
    items: Column,
    start: Column,
    end: Column | None,
    event_kind: str,
    quantity: Column | None = None,
) -> dict[str, DataFrame]:
    """Common shape of the clinical stagers: one event per element of ``items``; none -> ``_unstaged``."""
    rows = _lineage(resources, source).withColumn("_items", items)
    events = explode_items(rows, sf.col("_items")).select(
        *LINEAGE,
        patient_identifiers(sf.col("patient_reference"), sf.col("patient_id")).alias("person_identifiers"),
        encounter_identifiers(sf.col("encounter_reference")).alias("visit_identifiers"),
        sf.col("_item.vocabulary_id").alias("vocabulary_id"),
        sf.col("_item.code").alias("code"),
        start.alias("event_start"),
        (end if end is not None else sf.lit(None)).cast("timestamp").alias("event_end"),
        sf.col("_item.value_as_number").alias("value_as_number"),
        sf.col("_item.value_source_value").alias("value_source_value"),
        sf.col("_item.unit_source_value").alias("unit_source_value"),
        sf.lit(event_kind).alias("event_kind"),
        (quantity if quantity is not None else sf.lit(None)).cast("double").alias("quantity"),
        sf.lit("EHR").alias("type_source"),
    )
    return {
        "event": to_record(events, "event"),
        "_unstaged": unstaged(rows.where(has_no_items(sf.col("_items"))), "no_code"),
    }


def _coded(codings: Column) -> Column:
    none = sf.lit(None)
    return _items(_item(chosen_coding(codings), none, none, none))


def stage_conditions(conditions: DataFrame) -> dict[str, DataFrame]:
    """``fhir_condition`` -> ``event`` (``condition``): onset .. abatement, start falling back to recordedDate."""
    return _stage_events(
        conditions,
        "fhir_condition",
        items=_coded(sf.col("code_codings")),
        start=sf.coalesce(sf.col("onset_datetime"), sf.col("recorded_datetime")),
        end=sf.col("abatement_datetime"),
        event_kind="condition",
    )


def stage_medication_requests(requests: DataFrame) -> dict[str, DataFrame]:
    """``fhir_medicationrequest`` -> ``event`` (``drug``) from ``medicationCodeableConcept``, start = authoredOn.

    A request naming its drug only by ``medicationReference`` (a Medication resource bronze does not type) is
    ``_unstaged`` as ``no_code``.
    """
    return _stage_events(
        requests,
        "fhir_medicationrequest",
        items=_coded(sf.col("medication_codings")),
        start=sf.col("authored_on"),
        end=None,
        event_kind="drug",
    )


def stage_procedures(procedures: DataFrame) -> dict[str, DataFrame]:
    """``fhir_procedure`` -> ``event`` (``procedure``): performed start .. end."""
    return _stage_events(
        procedures,
        "fhir_procedure",
        items=_coded(sf.col("code_codings")),
        start=sf.col("performed_start"),
        end=sf.col("performed_end"),
        event_kind="procedure",
    )


def stage_observations(observations: DataFrame) -> dict[str, DataFrame]:
    """``fhir_observation`` -> ``event`` (``observation``): one per coded component, else one for the code.

    Start = ``effective[x]``, falling back to ``issued``.
    """
    none = sf.lit(None)
    components = sf.filter(
        sf.transform(
            sf.col("components"),
            lambda c: _item(
                chosen_coding(c["code_codings"]), c["value_quantity"]["value"], none, c["value_quantity"]["unit"]
            ).cast(_EVENT_ITEM),
        ),
        lambda item: item.isNotNull(),
    )
    quantity = sf.col("value_quantity")
    coded_value = sf.get(sf.filter(sf.col("value_codeable_concept"), lambda c: clean(c["code"]).isNotNull()), 0)
    text = sf.coalesce(
        sf.trim(coded_value["code"]),
        sf.col("value_string"),
        sf.col("value_boolean").cast("string"),
    )
    number = sf.coalesce(quantity["value"], sf.col("value_integer").cast("double"))
    main = _items(_item(chosen_coding(sf.col("code_codings")), number, text, quantity["unit"]))
    items = sf.when(sf.coalesce(sf.size(components), sf.lit(0)) > 0, components).otherwise(main)
    return _stage_events(
        observations,
        "fhir_observation",
        items=items,
        start=sf.coalesce(sf.col("effective_datetime"), sf.col("issued")),
        end=None,
        event_kind="observation",
    )


STAGERS: dict[str, Callable[[DataFrame], dict[str, DataFrame]]] = {
    "fhir_patient": stage_patients,
    "fhir_encounter": stage_encounters,
    "fhir_condition": stage_conditions,
    "fhir_medicationrequest": stage_medication_requests,
    "fhir_procedure": stage_procedures,
    "fhir_observation": stage_observations,
}
