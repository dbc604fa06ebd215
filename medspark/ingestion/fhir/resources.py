"""The FHIR R4 resource parser shared by the NDJSON and Bundle formats: resource JSON text to typed bronze rows.

Both formats reduce their input to *resource records* (one JSON text per resource, with its lineage) and hand
them to :func:`parse_resources`, so a Patient reads the same whether it came from a bulk-export line or from a
transaction Bundle entry. Built-in Spark functions only.

Routing (each record to exactly one of ``fhir_patient``, ``fhir_encounter``, ``fhir_condition``,
``fhir_medicationrequest``, ``fhir_procedure``, ``fhir_observation``, ``fhir_other``; see the rules above
``_typed_candidates``): a record whose text starts with ``{"resourceType":"<T>"`` goes to ``T``'s entity without
being parsed first, which lets each entity's DataFrame skip the records of the others; other records are routed
by their parsed ``resourceType``; records whose type cannot be known go to ``fhir_other``.

Reading a record:

1. **Validity**: ``from_json`` of ``"[" + text + "]"`` with strict options. Wrapping the text in an array makes
   Spark reject what it silently accepts after a bare object (``{..} xyz``, ``{..}{..}``); ``{..},{..}`` gives
   two elements and fails the size check. Typed entities read only ``resourceType`` here; ``fhir_other`` reads
   an envelope of string elements (raw JSON text for objects: ``Bundle.identifier`` is an object,
   ``Account.subject`` an array, so no shape is assumed) that are parsed again, small, afterwards.
2. **Typed parse** (typed entities): ``from_json`` of the text with the entity's explicit schema
   (:mod:`.schemas`); FHIR primitives are read as strings and cast here, so a bad value is quarantined under
   its FHIR element name. A wrong structure sets Spark's ``_corrupt_record`` (partial results keep the rest).

Quarantine reasons (first that applies wins):

- ``invalid_encoding`` -- the record's bytes are not valid UTF-8 (``is_valid_utf8``).
- the format splitter's verdict for a whole file or entry (``bundle_invalid``, ``empty_file``,
  ``missing_field:resource``).
- ``invalid_json`` -- not exactly one well-formed JSON object.
- ``unknown_resource_type`` -- ``resourceType`` absent or not a FHIR type name (``^[A-Z][A-Za-z]*$``).
- ``invalid_json:<element>`` -- well-formed JSON, but ``meta``/``identifier``/``extension``/``subject``/
  ``patient`` (fhir_other) or a boolean has the wrong JSON type; ``invalid_json:schema`` -- an element a typed
  entity reads has the wrong structure.
- ``missing_identifier`` -- a Patient with neither ``id`` nor an ``identifier`` value; an Encounter, Condition,
  MedicationRequest, Procedure or Observation without a patient link (``subject`` with a ``reference`` or a
  logical ``identifier.value``). FHIR allows an Observation or Encounter without ``subject`` (the spec examples
  have panel members without one), but medspark keys every clinical fact by person, so such rows wait in
  quarantine rather than enter tables silver reads. Other resource types are never quarantined for it.
- ``invalid_date:<element>`` -- e.g. ``invalid_date:birthDate``, ``invalid_date:period.start``.
- ``invalid_number:<element>`` -- e.g. ``invalid_number:valueQuantity.value``.

Dates: a FHIR ``dateTime``/``instant`` becomes a UTC ``timestamp``: partial values (``YYYY``, ``YYYY-MM``,
``YYYY-MM-DD``) map to the start of the period at 00:00 UTC, offsets are applied, a time without offset
(invalid FHIR, seen in the wild) is read as UTC; the result does not depend on the session time zone. A FHIR
``date`` (``birthDate``) becomes a ``date`` the same way.

``_raw`` is passed through untouched. ``extensions`` maps each top-level extension url to its JSON text as
Spark's JSON reader re-serialises it (compact, same keys in the same order, numbers printed back from doubles);
several extensions with one url become one JSON array text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from medspark.ingestion.contract import LINEAGE_IN, bad_cast
from medspark.ingestion.fhir import schemas

# Input columns of parse_resources besides the lineage: the entry's Bundle fullUrl, and a reason the format's
# splitter already decided (a whole file that cannot be split, an entry without resource).
RECORD_COLUMNS = (*LINEAGE_IN, "_full_url", "_split_reason")

TYPED_ENTITIES: Mapping[str, str] = {
    "Patient": "fhir_patient",
    "Encounter": "fhir_encounter",
    "Condition": "fhir_condition",
    "MedicationRequest": "fhir_medicationrequest",
    "Procedure": "fhir_procedure",
    "Observation": "fhir_observation",
}
OTHER_ENTITY = "fhir_other"
ENTITIES: tuple[str, ...] = (*TYPED_ENTITIES.values(), OTHER_ENTITY)

US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
US_CORE_BIRTHSEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"

_BOM = "\ufeff"
# Strict JSON: no NaN/Infinity, no single quotes (Spark's defaults accept both; FHIR JSON is RFC 8259 JSON).
_STRICT_JSON = {"allowNonNumericNumbers": "false", "allowSingleQuotes": "false", "mode": "PERMISSIVE"}
_RESOURCE_TYPE_PATTERN = r"^[A-Z][A-Za-z]{0,63}$"
_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"
# Patient/<id> (relative or absolute, optionally versioned) or urn:uuid:<id>: the id part of a patient link.
_PATIENT_REFERENCE_PATTERN = r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
_URN_UUID = "urn:uuid:"


# --- small column helpers -------------------------------------------------------------------------------
def _blank(text: Column) -> Column:
    """True where a string is absent or only whitespace."""
    return text.isNull() | (sf.trim(text) == "")


def _starts_with_any(text: Column, prefixes: str) -> Column:
    return sf.substring(text, 1, 1).isin(*prefixes)


def fhir_timestamp(text: Column) -> Column:
    """A FHIR ``dateTime``/``instant`` text as a UTC timestamp; null when absent or invalid.

    Partial dates are completed to the start of their period at 00:00 UTC and a missing offset is read as
    ``Z``; ``try_to_timestamp`` with a fixed pattern then validates strictly (month 13, Feb 30, hour 25 -> null).
    """
    length = sf.length(text)
    has_offset = text.endswith("Z") | sf.substring(text, -6, 1).isin("+", "-")
    completed = (
        sf.when(length == 4, sf.concat(text, sf.lit("-01-01T00:00:00Z")))
        .when(length == 7, sf.concat(text, sf.lit("-01T00:00:00Z")))
        .when(length == 10, sf.concat(text, sf.lit("T00:00:00Z")))
        .when(has_offset, text)
        .otherwise(sf.concat(text, sf.lit("Z")))
    )
    return sf.try_to_timestamp(completed, sf.lit(_TIMESTAMP_FORMAT))


def fhir_date(text: Column) -> Column:
    """A FHIR ``date`` text (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``) as a date, partial dates at their start."""
    length = sf.length(text)
    completed = (
        sf.when(length == 4, sf.concat(text, sf.lit("-01-01")))
        .when(length == 7, sf.concat(text, sf.lit("-01")))
        .otherwise(text)
    )
    return sf.try_to_date(completed, "yyyy-MM-dd")


def _fhir_boolean(text: Column) -> Column:
    return sf.when(text == "true", sf.lit(True)).when(text == "false", sf.lit(False))


def _reference_struct(text: Column) -> Column:
    """A Reference's JSON text (an object, or an array whose first element is taken) as a struct."""
    return sf.when(text.startswith("{"), sf.from_json(text, schemas.SUBJECT_JSON)).when(
        text.startswith("["), sf.get(sf.from_json(text, f"array<{schemas.SUBJECT_JSON}>"), 0)
    )


def patient_id_of(reference: Column) -> Column:
    """The id part of a patient reference (``Patient/x``, ``.../Patient/x/_history/2``, ``urn:uuid:x``)."""
    from_path = sf.regexp_extract(reference, _PATIENT_REFERENCE_PATTERN, 1)
    return sf.when(reference.startswith(_URN_UUID), sf.substring(reference, len(_URN_UUID) + 1, 1 << 20)).when(
        from_path != "", from_path
    )


def _codings(concepts: Column) -> Column:
    """All codings of an array of CodeableConcepts, in order (null concepts/codings skipped)."""
    return sf.flatten(sf.array_compact(concepts["coding"]))


def _codes(concepts: Column) -> Column:
    """All codes of an array of CodeableConcepts, in order."""
    return _codings(concepts)["code"]


def _first_code(concept: Column) -> Column:
    return sf.get(concept["coding"], 0)["code"]


def _first_present(values: Column) -> Column:
    """The first non-null element of an array (e.g. ``participant.individual.reference``)."""
    return sf.get(sf.array_compact(values), 0)


def _non_empty(items: Column) -> Column:
    return sf.when(sf.size(items) > 0, items)


def _extension_pairs(texts: Column) -> Column:
    """``extension`` JSON texts as ``array<struct<url, json>>`` (extensions without url are left out)."""
    return sf.filter(
        sf.transform(texts, lambda text: sf.struct(sf.get_json_object(text, "$.url").alias("url"), text.alias("json"))),
        lambda pair: pair["url"].isNotNull(),
    )


def _extensions_map(pairs: Column) -> Column:
    """Extension (url, json) pairs as ``map<url, json>``; several with one url become one JSON array text.

    ``pairs`` must be a column of its own (not an expression): it is read once per distinct url.
    """
    urls = sf.array_distinct(sf.transform(pairs, lambda pair: pair["url"]))

    def json_of(url: Column) -> Column:
        same = sf.filter(pairs, lambda pair: pair["url"] == url)
        return sf.when(sf.size(same) == 1, sf.get(same, 0)["json"]).otherwise(
            sf.concat(sf.lit("["), sf.array_join(sf.transform(same, lambda pair: pair["json"]), ","), sf.lit("]"))
        )

    return sf.when(pairs.isNotNull(), sf.map_from_arrays(urls, sf.transform(urls, json_of)))


def _extension_json(url: str) -> Column:
    """JSON texts of the top-level extensions with ``url`` (needs the ``_extension_pairs`` column)."""
    return sf.filter(sf.col("_extension_pairs"), lambda pair: pair["url"] == url)["json"]


def _us_core_codes(url: str) -> Column:
    """ombCategory and detailed codes of a US Core race/ethnicity extension; null when there are none."""
    parts = sf.transform(
        _extension_json(url),
        lambda text: sf.from_json(
            text, "struct<extension: array<struct<url: string, valueCoding: struct<code: string>>>>"
        )["extension"],
    )
    codes = sf.filter(sf.flatten(sf.array_compact(parts)), lambda part: part["url"].isin("ombCategory", "detailed"))[
        "valueCoding"
    ]["code"]
    return _non_empty(sf.array_compact(codes))


def _quantity(quantity: Column, value: Column) -> Column:
    """A Quantity struct with its value already cast; null when the Quantity is absent."""
    return sf.when(
        quantity.isNotNull(),
        sf.struct(
            value.alias("value"),
            quantity["unit"].alias("unit"),
            quantity["system"].alias("system"),
            quantity["code"].alias("code"),
        ),
    )


# --- per-entity specifications -------------------------------------------------------------------------
Value = Callable[[str], Column]  # FHIR element path -> its typed value (a column computed once)


@dataclass(frozen=True)
class _EntitySpec:
    """How one typed entity is read: its JSON schema, the primitives it casts and its output columns."""

    json_schema: str | None = None
    # (FHIR element path, kind, text of the element from the typed struct); kinds: timestamp, date, double,
    # int, boolean. Each is cast once into a hidden column and checked for a failed cast in that order.
    primitives: Sequence[tuple[str, str, Callable[[Column], Column]]] = ()
    columns: Callable[[Column, Value], list[Column]] = lambda typed, value: []
    extra_reasons: Callable[[Column], list[tuple[Column, str]]] = lambda typed: []
    needs_patient_link: bool = False
    is_patient: bool = False


def _patient_columns(t: Column, value: Value) -> list[Column]:
    names = t["name"]
    name = sf.coalesce(
        sf.get(sf.filter(names, lambda n: n["use"] == "official"), 0),
        sf.get(sf.filter(names, lambda n: n["use"] == "usual"), 0),
        sf.get(names, 0),
    )
    address = sf.get(t["address"], 0)
    return [
        value("birthDate").alias("birth_date"),
        t["gender"].alias("gender"),
        value("deceasedDateTime").alias("deceased_datetime"),
        value("deceasedBoolean").alias("deceased_boolean"),
        name["family"].alias("name_family"),
        name["given"].alias("name_given"),
        address["line"].alias("address_line"),
        address["city"].alias("address_city"),
        address["state"].alias("address_state"),
        address["postalCode"].alias("address_postal_code"),
        address["country"].alias("address_country"),
        t["telecom"].alias("telecom"),
        _first_code(t["maritalStatus"]).alias("marital_status_code"),
        _us_core_codes(US_CORE_RACE).alias("race_codes"),
        _us_core_codes(US_CORE_ETHNICITY).alias("ethnicity_codes"),
        sf.get_json_object(sf.get(_extension_json(US_CORE_BIRTHSEX), 0), "$.valueCode").alias("birth_sex"),
    ]


def _encounter_columns(t: Column, value: Value) -> list[Column]:
    return [
        t["status"].alias("status"),
        t["class"]["system"].alias("class_system"),
        t["class"]["code"].alias("class_code"),
        _non_empty(_codings(t["type"])).alias("type_codings"),
        value("period.start").alias("period_start"),
        value("period.end").alias("period_end"),
        t["serviceProvider"]["reference"].alias("service_provider_reference"),
        _first_present(t["participant"]["individual"]["reference"]).alias("practitioner_reference"),
        _non_empty(_codings(t["reasonCode"])).alias("reason_codings"),
        _first_code(t["hospitalization"]["dischargeDisposition"]).alias("discharge_disposition_code"),
        _first_present(t["location"]["location"]["reference"]).alias("location_reference"),
    ]


def _condition_columns(t: Column, value: Value) -> list[Column]:
    return [
        _first_code(t["clinicalStatus"]).alias("clinical_status"),
        _first_code(t["verificationStatus"]).alias("verification_status"),
        _non_empty(_codes(t["category"])).alias("category_codes"),
        t["code"]["coding"].alias("code_codings"),
        sf.coalesce(value("onsetDateTime"), value("onsetPeriod.start")).alias("onset_datetime"),
        sf.coalesce(value("abatementDateTime"), value("abatementPeriod.start")).alias("abatement_datetime"),
        value("recordedDate").alias("recorded_datetime"),
        t["encounter"]["reference"].alias("encounter_reference"),
    ]


def _first_dosage(t: Column) -> Column:
    return sf.get(t["dosageInstruction"], 0)


def _first_dose(t: Column) -> Column:
    return _first_present(_first_dosage(t)["doseAndRate"]["doseQuantity"])


def _medication_request_columns(t: Column, value: Value) -> list[Column]:
    dosage = _first_dosage(t)
    return [
        t["status"].alias("status"),
        t["intent"].alias("intent"),
        t["medicationCodeableConcept"]["coding"].alias("medication_codings"),
        t["medicationReference"]["reference"].alias("medication_reference"),
        value("authoredOn").alias("authored_on"),
        t["encounter"]["reference"].alias("encounter_reference"),
        t["requester"]["reference"].alias("requester_reference"),
        dosage["text"].alias("dosage_text"),
        value("dosageInstruction.timing.repeat.frequency").alias("dosage_frequency"),
        value("dosageInstruction.timing.repeat.period").alias("dosage_period"),
        dosage["timing"]["repeat"]["periodUnit"].alias("dosage_period_unit"),
        _quantity(_first_dose(t), value("dosageInstruction.doseAndRate.doseQuantity.value")).alias("dose_quantity"),
    ]


def _procedure_columns(t: Column, value: Value) -> list[Column]:
    return [
        t["status"].alias("status"),
        t["code"]["coding"].alias("code_codings"),
        sf.coalesce(value("performedDateTime"), value("performedPeriod.start")).alias("performed_start"),
        value("performedPeriod.end").alias("performed_end"),
        t["encounter"]["reference"].alias("encounter_reference"),
    ]


def _component_value(component: Column) -> Column:
    return component["valueQuantity"]["value"].try_cast("double")


def _observation_columns(t: Column, value: Value) -> list[Column]:
    components = sf.transform(
        t["component"],
        lambda c: sf.struct(
            c["code"]["coding"].alias("code_codings"),
            _quantity(c["valueQuantity"], _component_value(c)).alias("value_quantity"),
        ),
    )
    return [
        t["status"].alias("status"),
        _non_empty(_codes(t["category"])).alias("category_codes"),
        t["code"]["coding"].alias("code_codings"),
        sf.coalesce(value("effectiveDateTime"), value("effectivePeriod.start"), value("effectiveInstant")).alias(
            "effective_datetime"
        ),
        value("issued").alias("issued"),
        _quantity(t["valueQuantity"], value("valueQuantity.value")).alias("value_quantity"),
        t["valueCodeableConcept"]["coding"].alias("value_codeable_concept"),
        t["valueString"].alias("value_string"),
        value("valueBoolean").alias("value_boolean"),
        value("valueInteger").alias("value_integer"),
        components.alias("components"),
        t["encounter"]["reference"].alias("encounter_reference"),
    ]


def _observation_reasons(t: Column) -> list[tuple[Column, str]]:
    bad_component = sf.exists(t["component"], lambda c: bad_cast(c["valueQuantity"]["value"], _component_value(c)))
    return [(sf.coalesce(bad_component, sf.lit(False)), "invalid_number:component.valueQuantity.value")]


_SPECS: Mapping[str, _EntitySpec] = {
    "fhir_patient": _EntitySpec(
        json_schema=schemas.PATIENT_JSON,
        primitives=(
            ("birthDate", "date", lambda t: t["birthDate"]),
            ("deceasedDateTime", "timestamp", lambda t: t["deceasedDateTime"]),
            ("deceasedBoolean", "boolean", lambda t: t["deceasedBoolean"]),
        ),
        columns=_patient_columns,
        is_patient=True,
    ),
    "fhir_encounter": _EntitySpec(
        json_schema=schemas.ENCOUNTER_JSON,
        primitives=(
            ("period.start", "timestamp", lambda t: t["period"]["start"]),
            ("period.end", "timestamp", lambda t: t["period"]["end"]),
        ),
        columns=_encounter_columns,
        needs_patient_link=True,
    ),
    "fhir_condition": _EntitySpec(
        json_schema=schemas.CONDITION_JSON,
        primitives=(
            ("onsetDateTime", "timestamp", lambda t: t["onsetDateTime"]),
            ("onsetPeriod.start", "timestamp", lambda t: t["onsetPeriod"]["start"]),
            ("abatementDateTime", "timestamp", lambda t: t["abatementDateTime"]),
            ("abatementPeriod.start", "timestamp", lambda t: t["abatementPeriod"]["start"]),
            ("recordedDate", "timestamp", lambda t: t["recordedDate"]),
        ),
        columns=_condition_columns,
        needs_patient_link=True,
    ),
    "fhir_medicationrequest": _EntitySpec(
        json_schema=schemas.MEDICATION_REQUEST_JSON,
        primitives=(
            ("authoredOn", "timestamp", lambda t: t["authoredOn"]),
            (
                "dosageInstruction.timing.repeat.frequency",
                "int",
                lambda t: _first_dosage(t)["timing"]["repeat"]["frequency"],
            ),
            (
                "dosageInstruction.timing.repeat.period",
                "double",
                lambda t: _first_dosage(t)["timing"]["repeat"]["period"],
            ),
            ("dosageInstruction.doseAndRate.doseQuantity.value", "double", lambda t: _first_dose(t)["value"]),
        ),
        columns=_medication_request_columns,
        needs_patient_link=True,
    ),
    "fhir_procedure": _EntitySpec(
        json_schema=schemas.PROCEDURE_JSON,
        primitives=(
            ("performedDateTime", "timestamp", lambda t: t["performedDateTime"]),
            ("performedPeriod.start", "timestamp", lambda t: t["performedPeriod"]["start"]),
            ("performedPeriod.end", "timestamp", lambda t: t["performedPeriod"]["end"]),
        ),
        columns=_procedure_columns,
        needs_patient_link=True,
    ),
    "fhir_observation": _EntitySpec(
        json_schema=schemas.OBSERVATION_JSON,
        primitives=(
            ("effectiveDateTime", "timestamp", lambda t: t["effectiveDateTime"]),
            ("effectivePeriod.start", "timestamp", lambda t: t["effectivePeriod"]["start"]),
            ("effectiveInstant", "timestamp", lambda t: t["effectiveInstant"]),
            ("issued", "timestamp", lambda t: t["issued"]),
            ("valueQuantity.value", "double", lambda t: t["valueQuantity"]["value"]),
            ("valueInteger", "int", lambda t: t["valueInteger"]),
            ("valueBoolean", "boolean", lambda t: t["valueBoolean"]),
        ),
        columns=_observation_columns,
        extra_reasons=_observation_reasons,
        needs_patient_link=True,
    ),
    OTHER_ENTITY: _EntitySpec(),
}

_CASTS: Mapping[str, Callable[[Column], Column]] = {
    "timestamp": fhir_timestamp,
    "date": fhir_date,
    "double": lambda text: text.try_cast("double"),
    "int": lambda text: text.try_cast("int"),
    "boolean": _fhir_boolean,
}
_REASON_OF_KIND = {
    "timestamp": "invalid_date",
    "date": "invalid_date",
    "double": "invalid_number",
    "int": "invalid_number",
    "boolean": "invalid_json",
}


# --- the transform ------------------------------------------------------------------------------------------
def _type_literal(fhir_type: str) -> str:
    """The JSON string literal a resource of ``fhir_type`` contains (its ``resourceType`` value)."""
    return f'"{fhir_type}"'


def _starts_as(raw: Column, fhir_type: str) -> Column:
    """The text starts with ``{"resourceType":"<type>"`` (also with a space after the colon, or with the opening
    brace lost: a damaged record still belongs to the entity it evidently is)."""
    starts: Column = sf.lit(False)
    for head in (f'"resourceType":"{fhir_type}"', f'"resourceType": "{fhir_type}"'):
        starts = starts | raw.startswith("{" + head) | raw.startswith(head)
    return starts


def _starts_as_typed(raw: Column) -> Column:
    starts: Column = sf.lit(False)
    for fhir_type in TYPED_ENTITIES:
        starts = starts | _starts_as(raw, fhir_type)
    return starts


def _json_text(raw: Column) -> Column:
    return sf.when(raw.startswith(_BOM), sf.substring(raw, 2, 1 << 30)).otherwise(raw)


def _wrapped(json_text: Column) -> Column:
    """``[text]``: parsed as an array, Spark rejects trailing content it would ignore after a bare object."""
    return sf.concat(sf.lit("["), json_text, sf.lit("]"))


def parsed_once(value: Column, name: str) -> Column:
    """``value`` as the output of a one-row generator (``explode(array(value))``), named ``name``.

    Spark's optimizer substitutes an aliased expression into every filter and projection that refers to it
    (``PushPredicateThroughNonJoin``, ``CollapseProject``): the Observation plan held 22 copies of the strict
    validity parse (one in the routing filter, the rest in quarantine conditions). Whole-stage codegen's common
    subexpression elimination hid most of that cost (the 10,000-patient NDJSON ingest took the same time either
    way), but interpreted evaluation and the optimizer itself do not get that help. A generator's output is an
    attribute the optimizer cannot inline, so the plan now parses each text once (2 ``from_json`` in the plan).
    ``explode`` of a one-element array keeps every row, a null one too.
    """
    return sf.explode(sf.array(value)).alias(name)


def _one_object(parsed: Column) -> Column:
    """The single element of a wrapped parse, null unless the text was exactly one JSON object."""
    return sf.when(parsed.isNotNull() & (sf.size(parsed) == 1), sf.get(parsed, 0))


def _envelope_entity(resource_type: Column, raw: Column) -> Column:
    """Entity of a record by its parsed ``resourceType`` (used when the type is not the text's first member)."""
    entity: Column = sf.lit(OTHER_ENTITY)
    for fhir_type, table in reversed(list(TYPED_ENTITIES.items())):
        is_type = (resource_type == fhir_type) & raw.contains(_type_literal(fhir_type))
        entity = sf.when(is_type, sf.lit(table)).otherwise(entity)
    return entity


# Routing (each record to exactly one entity, decided the same way in every pass):
# 1. a record the splitter rejected -> fhir_other;
# 2. else a record whose text starts with {"resourceType":"<T>" for a typed T (see _starts_as) -> that entity,
#    whatever the rest (a truncated Observation line is quarantined in fhir_observation); decided without
#    parsing, which keeps a pass from parsing other entities' records (bulk exports and Synthea write
#    resourceType first);
# 3. else by the parsed resourceType (a typed entity only if the text also contains the type's literal, so each
#    typed pass parses only records that can be of its type), otherwise fhir_other.
def _typed_candidates(records: DataFrame, fhir_type: str) -> DataFrame:
    raw = sf.col("_raw")
    by_prefix = _starts_as(raw, fhir_type)
    maybe_by_envelope = ~_starts_as_typed(raw) & raw.contains(_type_literal(fhir_type))
    return records.filter(sf.col("_split_reason").isNull() & (by_prefix | maybe_by_envelope)).withColumn(
        "_by_prefix", by_prefix
    )


def _other_candidates(records: DataFrame) -> DataFrame:
    return records.filter(sf.col("_split_reason").isNotNull() | ~_starts_as_typed(sf.col("_raw")))


def _common_columns(
    resource_type: Column,
    resource_id: Column,
    meta: Column,
    identifiers: Column,
    subject: Column,
    patient: Column | None,
) -> list[Column]:
    """The common bronze columns from parsed elements (``_extension_pairs`` must already be a column)."""
    patient_reference = (
        subject["reference"] if patient is None else sf.coalesce(subject["reference"], patient["reference"])
    )
    links = [subject["reference"], subject["identifier"]["value"]]
    if patient is not None:
        links += [patient["reference"], patient["identifier"]["value"]]
    unlinked: Column = sf.lit(True)
    for link in links:
        unlinked = unlinked & _blank(link)
    identifier_rows = sf.transform(
        identifiers,
        lambda i: sf.struct(
            i["system"].alias("system"),
            i["value"].alias("value"),
            sf.get(i["type"]["coding"], 0)["code"].alias("type_code"),
        ),
    )
    return [
        resource_type.alias("resource_type"),
        resource_id.alias("resource_id"),
        meta["versionId"].alias("version_id"),
        fhir_timestamp(meta["lastUpdated"]).alias("last_updated"),
        sf.col("_full_url").alias("full_url"),
        identifier_rows.alias("identifiers"),
        _extensions_map(sf.col("_extension_pairs")).alias("extensions"),
        patient_reference.alias("patient_reference"),
        patient_id_of(patient_reference).alias("patient_id"),
        meta["lastUpdated"].alias("_last_updated_text"),
        (~unlinked).alias("_patient_linked"),
    ]


def _typed_entity_rows(records: DataFrame, fhir_type: str) -> DataFrame:
    """Rows of the typed entity of ``fhir_type``: one strict validity parse, one typed parse per record."""
    entity = TYPED_ENTITIES[fhir_type]
    spec = _SPECS[entity]
    assert spec.json_schema is not None
    raw = sf.col("_raw")
    json_text = _json_text(raw)
    envelope = sf.from_json(_wrapped(json_text), schemas.ENVELOPE_TYPE_JSON, _STRICT_JSON)
    routed = (
        _typed_candidates(records, fhir_type)
        .select(*RECORD_COLUMNS, "_by_prefix", json_text.alias("_json"), parsed_once(envelope, "_wrapped_env"))
        .select(*RECORD_COLUMNS, "_by_prefix", "_json", _one_object(sf.col("_wrapped_env")).alias("_env"))
        .filter(sf.col("_by_prefix") | (_envelope_entity(sf.col("_env")["resourceType"], raw) == entity))
    )
    typed = routed.withColumn("_typed", sf.from_json("_json", spec.json_schema))
    t = sf.col("_typed")
    with_pairs = typed.withColumn("_extension_pairs", _extension_pairs(t["extension"]))
    common = with_pairs.select(
        "*",
        *_common_columns(
            sf.when(sf.col("_env").isNotNull(), sf.lit(fhir_type)),
            t["id"],
            t["meta"],
            t["identifier"],
            t["subject"],
            None,
        ),
        sf.lit(None).cast("string").alias("_shape_reason"),
    )
    return _build_entity(common, entity)


def _other_entity_rows(records: DataFrame) -> DataFrame:
    """Rows of ``fhir_other``: every record no typed entity takes, with the elements all resources share."""
    raw = sf.col("_raw")
    json_text = _json_text(raw)
    envelope = sf.from_json(_wrapped(json_text), schemas.ENVELOPE_JSON, _STRICT_JSON)
    declared = sf.col("_env")["resourceType"]
    resource_type = sf.when(declared.rlike(_RESOURCE_TYPE_PATTERN), declared)
    routed = (
        _other_candidates(records)
        .select(*RECORD_COLUMNS, json_text.alias("_json"), parsed_once(envelope, "_wrapped_env"))
        .select(*RECORD_COLUMNS, "_json", _one_object(sf.col("_wrapped_env")).alias("_env"))
        .filter(sf.col("_split_reason").isNotNull() | (_envelope_entity(resource_type, raw) == OTHER_ENTITY))
    )
    env = sf.col("_env")
    meta, identifier, extension = env["meta"], env["identifier"], env["extension"]
    parsed_identifiers = sf.when(
        identifier.startswith("["), sf.from_json(identifier, f"array<{schemas.IDENTIFIER_JSON}>")
    ).when(identifier.startswith("{"), sf.array(sf.from_json(identifier, schemas.IDENTIFIER_JSON)))
    extension_texts = sf.when(extension.startswith("["), sf.from_json(extension, "array<string>"))
    parsed = routed.select(
        "*",
        resource_type.alias("_resource_type"),
        sf.when(meta.startswith("{"), sf.from_json(meta, schemas.META_JSON)).alias("_meta"),
        parsed_identifiers.alias("_identifiers"),
        _extension_pairs(extension_texts).alias("_extension_pairs"),
        _reference_struct(env["subject"]).alias("_subject"),
        _reference_struct(env["patient"]).alias("_patient"),
    )
    shapes = [
        (meta, "{", "meta"),
        (identifier, "[{", "identifier"),
        (extension, "[", "extension"),
        (env["subject"], "[{", "subject"),
        (env["patient"], "[{", "patient"),
    ]
    shape_reason: Column = sf.lit(None).cast("string")
    for text, prefixes, element in reversed(shapes):
        shape_reason = sf.when(
            text.isNotNull() & ~_starts_with_any(text, prefixes), sf.lit(f"invalid_json:{element}")
        ).otherwise(shape_reason)
    common = parsed.select(
        "*",
        *_common_columns(
            sf.col("_resource_type"),
            env["id"],
            sf.col("_meta"),
            sf.col("_identifiers"),
            sf.col("_subject"),
            sf.col("_patient"),
        ),
        shape_reason.alias("_shape_reason"),
    )
    return _build_entity(common, OTHER_ENTITY)


def _first_reason(candidates: Sequence[tuple[Column, Column | str]]) -> Column:
    """The reason of the first true condition (reasons may be columns), else null."""
    reason: Column = sf.lit(None).cast("string")
    for condition, value in reversed(candidates):
        reason = sf.when(condition, value if isinstance(value, Column) else sf.lit(value)).otherwise(reason)
    return reason


def _build_entity(resources: DataFrame, entity: str) -> DataFrame:
    """Typed rows of one entity, in its bronze schema, from routed records with the common columns."""
    spec = _SPECS[entity]
    typed = sf.col("_typed")
    hidden = {element: f"_value_{i}" for i, (element, _, _) in enumerate(spec.primitives)}
    resources = resources.select(
        "*", *[_CASTS[kind](text(typed)).alias(hidden[element]) for element, kind, text in spec.primitives]
    )

    def value(element: str) -> Column:
        return sf.col(hidden[element])

    identity_missing: Column = sf.lit(False)
    if spec.is_patient:
        has_identifier_value = sf.coalesce(
            sf.exists(sf.col("identifiers"), lambda i: ~_blank(i["value"])), sf.lit(False)
        )
        identity_missing = _blank(sf.col("resource_id")) & ~has_identifier_value
    elif spec.needs_patient_link:
        identity_missing = ~sf.col("_patient_linked")

    candidates: list[tuple[Column, Column | str]] = [
        (~sf.is_valid_utf8(sf.col("_raw")), "invalid_encoding"),
        (sf.col("_split_reason").isNotNull(), sf.col("_split_reason")),
        (sf.col("_env").isNull(), "invalid_json"),
        (sf.col("resource_type").isNull(), "unknown_resource_type"),
        (sf.col("_shape_reason").isNotNull(), sf.col("_shape_reason")),
    ]
    if spec.json_schema is not None:
        candidates.append((typed["_corrupt_record"].isNotNull(), "invalid_json:schema"))
    candidates.append((identity_missing, "missing_identifier"))
    candidates.append((bad_cast(sf.col("_last_updated_text"), sf.col("last_updated")), "invalid_date:meta.lastUpdated"))
    for element, kind, text in spec.primitives:
        candidates.append((bad_cast(text(typed), value(element)), f"{_REASON_OF_KIND[kind]}:{element}"))
    candidates.extend(spec.extra_reasons(typed))

    bronze = schemas.bronze_schema(entity)
    out = resources.select(
        *LINEAGE_IN,
        *schemas.COMMON_COLUMN_NAMES,
        *spec.columns(typed, value),
        _first_reason(candidates).alias("_quarantine_reason"),
    )
    return out.select(*[sf.col(f.name).cast(f.dataType) for f in bronze.fields])


def parse_resources(records: DataFrame) -> dict[str, DataFrame]:
    """Route and type FHIR resource records into the seven ``fhir_*`` bronze entities.

    A pure transform (no reads, writes or actions). Each entity's DataFrame reads ``records`` on its own:
    a record is parsed in full only by the entity it belongs to (see the routing rules above).

    Args:
        records: one row per resource record, columns ``_source_file string, _record_position long,
            _raw string, _full_url string, _split_reason string`` (the last two null unless the record comes
            from a Bundle entry / a file the splitter rejected).

    Returns:
        ``{entity: DataFrame}`` for every entity in :data:`ENTITIES`; each has the columns of
        :func:`medspark.ingestion.fhir.schemas.bronze_schema` (lineage, common, entity columns,
        ``_quarantine_reason``). Every input record is in exactly one of them.
    """
    records = records.select(*RECORD_COLUMNS)
    outputs = {entity: _typed_entity_rows(records, fhir_type) for fhir_type, entity in TYPED_ENTITIES.items()}
    outputs[OTHER_ENTITY] = _other_entity_rows(records)
    return outputs
