"""Expectation suites as configuration: the schema of ``conf/quality/<table>.yaml`` and its loader.

A suite lists the checks of one silver table. Each check is either a Great Expectations expectation (its type
name and keyword arguments, run natively by GE) or one of three kinds medspark compiles to a boolean column
(``in_reference``, ``concept_domain``, ``expression``), which GE then validates as "this column is always TRUE".
A new check therefore needs a YAML entry only -- ``expression`` takes any Spark SQL predicate.

Everything is validated once on the driver: unknown keys, wrong types, duplicate ids, and columns the silver
table does not have are :class:`~medspark.errors.ConfigError` with one line naming the file and the key.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medspark.errors import ConfigError
from medspark.silver import omop

Category = Literal["conformance", "completeness", "plausibility"]
Severity = Literal["error", "warn"]

CHECK_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
OK_PREFIX = "_ok__"
# Person attributes an ``expression`` may use; joined by medspark.quality.checks.with_check_columns.
PERSON_COLUMNS = ("_person_year_of_birth", "_person_birth_datetime", "_person_death_date")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- keyword arguments of the supported Great Expectations types ---------------------------------------------------

Scalar = int | float | str | bool


class _ColumnKwargs(_Strict):
    column: str


class NotNullKwargs(_ColumnKwargs):
    """``expect_column_values_to_not_be_null``."""


class BetweenKwargs(_ColumnKwargs):
    """``expect_column_values_to_be_between`` (numbers; dates go through ``expression``)."""

    min_value: int | float | None = None
    max_value: int | float | None = None
    strict_min: bool = False
    strict_max: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> BetweenKwargs:
        if self.min_value is None and self.max_value is None:
            raise ValueError("min_value or max_value is required")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError("min_value is greater than max_value")
        return self


class InSetKwargs(_ColumnKwargs):
    """``expect_column_values_to_be_in_set``."""

    value_set: list[Scalar] = Field(min_length=1)


class RegexKwargs(_ColumnKwargs):
    """``expect_column_values_to_match_regex`` (Java regex, found anywhere in the value: anchor it)."""

    regex: str = Field(min_length=1)


class UniqueKwargs(_ColumnKwargs):
    """``expect_column_values_to_be_unique``."""


class CompoundUniqueKwargs(_Strict):
    """``expect_compound_columns_to_be_unique``."""

    column_list: list[str] = Field(min_length=2)


class PairKwargs(_Strict):
    """``expect_column_pair_values_a_to_be_greater_than_b``."""

    # GE's own keyword names.
    column_A: str
    column_B: str
    or_equal: bool = False


class RowCountKwargs(_Strict):
    """``expect_table_row_count_to_be_between`` (table-level)."""

    min_value: int | None = Field(default=None, ge=0)
    max_value: int | None = Field(default=None, ge=0)


class OfTypeKwargs(_ColumnKwargs):
    """``expect_column_values_to_be_of_type`` (table-level on Spark: the column's type, e.g. ``LongType``)."""

    type_: str = Field(min_length=1)


# GE type name -> (kwargs model, row_level). Row-level checks get a compiled ``_ok__`` column and may quarantine rows.
EXPECTATIONS: dict[str, tuple[type[_Strict], bool]] = {
    "expect_column_values_to_not_be_null": (NotNullKwargs, True),
    "expect_column_values_to_be_between": (BetweenKwargs, True),
    "expect_column_values_to_be_in_set": (InSetKwargs, True),
    "expect_column_values_to_match_regex": (RegexKwargs, True),
    "expect_column_values_to_be_unique": (UniqueKwargs, True),
    "expect_compound_columns_to_be_unique": (CompoundUniqueKwargs, True),
    "expect_column_pair_values_a_to_be_greater_than_b": (PairKwargs, True),
    "expect_table_row_count_to_be_between": (RowCountKwargs, False),
    "expect_column_values_to_be_of_type": (OfTypeKwargs, False),
}


# --- medspark's compiled kinds ---------------------------------------------------------------------------------------


class InReference(_Strict):
    """``column`` (when not null) occurs in ``ref_column`` of the context table ``table``."""

    column: str
    table: str
    ref_column: str


class ConceptDomain(_Strict):
    """``column`` is a concept of one of ``domains`` (and standard, when ``standard``); 0 passes with ``allow_zero``."""

    column: str
    domains: list[str] = Field(min_length=1)
    standard: bool = True
    allow_zero: bool = False


class Expression(_Strict):
    """A Spark SQL predicate that holds for a good row (NULL counts as good); may use ``:run_date`` and
    ``_person_year_of_birth``, ``_person_birth_datetime``, ``_person_death_date``."""

    sql: str = Field(min_length=1)


class Check(_Strict):
    """One check of a suite: exactly one of ``expectation`` (+ ``kwargs``), ``in_reference``, ``concept_domain``,
    ``expression``."""

    id: str
    category: Category
    severity: Severity = "error"
    description: str = Field(min_length=1)
    expectation: str | None = None
    kwargs: dict[str, Any] | None = None
    in_reference: InReference | None = None
    concept_domain: ConceptDomain | None = None
    expression: Expression | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not CHECK_ID.match(value):
            raise ValueError("must be dotted lower-case words, e.g. person.person_id.not_null")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        given = [k for k in ("expectation", "in_reference", "concept_domain", "expression") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of expectation, in_reference, concept_domain, expression")
        if self.expectation is None:
            if self.kwargs is not None:
                raise ValueError("kwargs belong to an expectation")
            return self
        if self.expectation not in EXPECTATIONS:
            raise ValueError(f"unsupported expectation type '{self.expectation}'")
        model, _ = EXPECTATIONS[self.expectation]
        try:
            model.model_validate(self.kwargs or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in ("kwargs", *err["loc"]))
            raise ValueError(f"{where}: {_reason(err)}") from None
        return self

    @property
    def kind(self) -> str:
        """``expectation``, ``in_reference``, ``concept_domain`` or ``expression``."""
        for kind in ("in_reference", "concept_domain", "expression"):
            if getattr(self, kind) is not None:
                return kind
        return "expectation"

    @property
    def row_level(self) -> bool:
        """True when the check judges each row (it has an ``_ok__`` column and may quarantine)."""
        return self.expectation is None or EXPECTATIONS[self.expectation][1]

    @property
    def ok_column(self) -> str:
        """Name of the boolean column that holds the check's verdict per row."""
        return OK_PREFIX + self.id.replace(".", "__")

    @property
    def parsed_kwargs(self) -> dict[str, Any]:
        """The expectation's kwargs, validated and with defaults (empty for compiled kinds)."""
        if self.expectation is None:
            return {}
        model, _ = EXPECTATIONS[self.expectation]
        return model.model_validate(self.kwargs or {}).model_dump()

    def columns(self) -> list[str]:
        """Columns of the checked table this check names (an ``expression``'s columns are not parsed)."""
        if self.in_reference is not None:
            return [self.in_reference.column]
        if self.concept_domain is not None:
            return [self.concept_domain.column]
        kwargs = self.parsed_kwargs
        names = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
        return names + list(kwargs.get("column_list", []))


class Suite(_Strict):
    """The checks of one silver table and its gate threshold."""

    table: str
    # Largest fraction of rows that may fail error-severity row-level checks (they are quarantined) before the
    # whole table fails the gate.
    threshold: float = Field(default=0.01, ge=0.0, le=1.0)
    checks: list[Check] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids(self) -> Suite:
        seen: set[str] = set()
        columns: set[str] = set()
        for check in self.checks:
            if not check.id.startswith(self.table + "."):
                raise ValueError(f"check id '{check.id}' must start with '{self.table}.'")
            if check.id in seen:
                raise ValueError(f"duplicate check id '{check.id}'")
            if check.ok_column in columns:
                raise ValueError(f"check id '{check.id}' collides with another once dots become '__'")
            seen.add(check.id)
            columns.add(check.ok_column)
        return self

    @cached_property
    def row_checks(self) -> tuple[Check, ...]:
        """Row-level checks, in suite order."""
        return tuple(c for c in self.checks if c.row_level)

    @cached_property
    def table_checks(self) -> tuple[Check, ...]:
        """Table-level checks (row count, column types), in suite order."""
        return tuple(c for c in self.checks if not c.row_level)

    def check(self, check_id: str) -> Check:
        """The check with id ``check_id``."""
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(check_id)


def _reason(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing value"
    return str(err["msg"]).removeprefix("Value error, ")


def _describe(path: Path, raw: Any, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    # Name the check by its id as well as its position: "checks[3] (person.year_of_birth.range).kwargs.min_value".
    if len(loc) >= 2 and loc[0] == "checks" and isinstance(loc[1], int):
        check_id = None
        try:
            check_id = raw["checks"][loc[1]].get("id")
        except (AttributeError, IndexError, KeyError, TypeError):
            check_id = None
        head = f"checks[{loc[1]}]" + (f" ({check_id})" if check_id else "")
        where = ".".join([head, *(str(p) for p in loc[2:])])
    return f"{path}: '{where}': {_reason(err)}"


def load_suite(path: str | Path) -> Suite:
    """Read and validate one suite file.

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key, wrong type, duplicate id, unknown column (one line
            naming the file and the key).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read quality suite {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"quality suite {path} is not valid YAML{where}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"quality suite {path} must hold a mapping of keys")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, raw, exc)) from None
    if suite.table in omop.TABLES:
        _check_columns(path, suite)
    return suite


def _check_columns(path: Path, suite: Suite) -> None:
    known = set(omop.columns(suite.table))
    for i, check in enumerate(suite.checks):
        for name in check.columns():
            if name not in known:
                raise ConfigError(f"{path}: 'checks[{i}] ({check.id})': column '{name}' is not in {suite.table}")
        ref = check.in_reference
        if ref is not None and ref.table in omop.TABLES and ref.ref_column not in omop.columns(ref.table):
            raise ConfigError(
                f"{path}: 'checks[{i}] ({check.id}).in_reference.ref_column': '{ref.ref_column}' is not in {ref.table}"
            )


def quality_dir() -> Path:
    """``conf/quality`` of the configuration directory (``$MEDSPARK_CONF_DIR``, ./conf or the checkout's conf/)."""
    from medspark.config.loader import conf_dir

    directory = conf_dir()
    if directory is None or not (directory / "quality").is_dir():
        raise ConfigError("no conf/quality directory (set MEDSPARK_CONF_DIR)")
    return directory / "quality"


def load_suites(directory: str | Path | None = None) -> dict[str, Suite]:
    """Every ``<table>.yaml`` of ``directory`` (default :func:`quality_dir`), keyed by table.

    Raises:
        ConfigError: a suite does not validate, or a file's name is not its ``table``.
    """
    root = Path(directory) if directory is not None else quality_dir()
    suites: dict[str, Suite] = {}
    for path in sorted(root.glob("*.yaml")):
        suite = load_suite(path)
        if suite.table != path.stem:
            raise ConfigError(f"{path}: 'table': '{suite.table}' differs from the file name")
        suites[suite.table] = suite
    return suites
