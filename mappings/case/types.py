"""Field types of the case file: keys, code references, units, times, durations, quantities.

Each validates one string form and says what is wrong in plain words; the loader
adds the file, line and field. Code references are checked against the tables in
mappings/terminology (https://hl7.org/fhir/R4/terminologies-systems.html).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

from mappings.case import timing
from mappings.terminology import codes

KEY_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
CODE_PATTERN = r"^(?:snomed|loinc|rxnorm|icd10cm|icdo3|atc|ucum):\S+$"


class Strict(BaseModel):
    """Base of every case file model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=80)]
"""A fact's stable slug (lower case, digits, hyphens), unique across the file."""

KeyRef = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=80)]
"""A reference to another fact's key; checked after parsing (unknown key -> error)."""


def _check_code(ref: str) -> str:
    try:
        codes.lookup(ref)
    except codes.UnknownCode as exc:
        raise ValueError(str(exc)) from None
    return ref


def _check_unit(unit: str) -> str:
    if not codes.is_ucum_unit(unit):
        raise ValueError(f"unknown UCUM unit {unit!r} (not in mappings/terminology/ucum.yaml)")
    return unit


CodeRef = Annotated[
    str,
    StringConstraints(pattern=CODE_PATTERN),
    AfterValidator(_check_code),
]
"""``prefix:code``, present in the code tables (``snomed:61977001``)."""

UcumUnit = Annotated[str, AfterValidator(_check_unit)]
"""A UCUM unit code present in mappings/terminology/ucum.yaml (``mL``, ``U/L``)."""


def _parse_time(value: object) -> object:
    if isinstance(value, str):
        try:
            return timing.parse_time(value)
        except timing.TimeSyntaxError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, timing.RelativeTime):
        return value
    raise ValueError("a time must be a string such as 'day 0', '~month +12' or 'before day 0'")


def _parse_duration(value: object) -> object:
    if isinstance(value, str):
        try:
            duration = timing.parse_duration(value)
        except timing.TimeSyntaxError as exc:
            raise ValueError(str(exc)) from None
        _check_unit(duration.unit)
        return duration
    if isinstance(value, timing.Duration):
        return value
    raise ValueError("a duration must be a string such as '11 h', '100 min' or '~2 wk'")


When = Annotated[
    timing.RelativeTime,
    BeforeValidator(_parse_time),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": timing.TIME_PATTERN}),
]
"""A time relative to day 0 (see mappings.case.timing)."""

DurationValue = Annotated[
    timing.Duration,
    BeforeValidator(_parse_duration),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": timing.DURATION_PATTERN}),
]
"""A length of time, ``11 h`` (see mappings.case.timing)."""


class Quantity(Strict):
    """A measured amount with a UCUM unit; ``approximate`` when the report says "about"."""

    value: float
    unit: UcumUnit
    approximate: bool = False


class Coded(Strict):
    """A concept: human ``text`` (always), plus zero or more ``codes`` from the tables."""

    text: str
    codes: list[CodeRef] = []


class BodySite(Coded):
    """An anatomical location, with laterality when the report gives it."""

    laterality: Coded | None = None
