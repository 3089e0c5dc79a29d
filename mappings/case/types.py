"""Field types of the case file: keys, code references, units, times, durations, quantities.

Each validates one string form and says what is wrong in plain words; the loader
adds the file, line and field. Code references are checked against the tables in
mappings/terminology (https://hl7.org/fhir/R4/terminologies-systems.html).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from mappings.case import timing
from mappings.terminology import codes
from mappings.terminology.units import ucum_problem

KEY_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
CODE_PATTERN = r"^(?:snomed|loinc|rxnorm|icd10cm|icdo3|atc|ucum):\S+$"


Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=80)]
"""A fact's stable slug (lower case, digits, hyphens), unique across the file."""

KeyRef = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=80)]
"""A reference to another fact's key; checked after parsing (unknown key -> error)."""


class Strict(BaseModel):
    """Base of every case file model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ExplicitCode(Strict):
    """A code written out in full: any code system, taken as written when no table or
    FHIR package in the cache has it (then listed as unchecked by ``fhir-service map``).

    ``system`` is the canonical URI (https://hl7.org/fhir/R4/terminologies-systems.html)
    or one of the prefixes of mappings/terminology/systems.yaml (``snomed``).
    """

    system: str = Field(min_length=1)
    code: str = Field(min_length=1, pattern=r"^[^\s]+(?: [^\s]+)*$")
    display: str = Field(min_length=1)

    @property
    def uri(self) -> str:
        """The canonical system URI (a prefix resolved through systems.yaml)."""
        return codes.systems().get(self.system, self.system)

    def coding(self) -> dict[str, str]:
        """This code as a FHIR Coding (JSON)."""
        return {"system": self.uri, "code": self.code, "display": self.display}

    def __str__(self) -> str:
        return f"{self.uri}|{self.code}"


def _check_system(system: str) -> str:
    if system in codes.systems():
        return system
    if ":" not in system or any(c.isspace() for c in system):
        prefixes = ", ".join(codes.systems())
        raise ValueError(
            f"system {system!r} must be a canonical URI (e.g. http://snomed.info/sct) "
            f"or one of the prefixes {prefixes}"
        )
    return system


def _check_code(value: object) -> str | ExplicitCode:
    if isinstance(value, ExplicitCode):
        return value
    if isinstance(value, dict):
        try:
            explicit = ExplicitCode.model_validate(value)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "code"
                if err["type"] == "missing":
                    problems.append(
                        f"{where}: missing (a written-out code needs system, code and display)"
                    )
                elif err["type"] == "extra_forbidden":
                    problems.append(f"{where}: unknown field (use system, code, display)")
                else:
                    problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            raise ValueError("; ".join(problems)) from None
        _check_system(explicit.system)
        return explicit
    if not isinstance(value, str):
        raise ValueError(
            "a code is 'prefix:code' (e.g. snomed:61977001) or "
            "{system: URI, code: CODE, display: TEXT}"
        )
    try:
        codes.lookup(value.strip())
    except codes.UnknownCode as exc:
        raise ValueError(
            f"{exc}; to use a code the tables do not have, write it out as "
            "{system: URI, code: CODE, display: TEXT} (it is then checked against the FHIR "
            "packages in the cache, or reported as unchecked)"
        ) from None
    return value.strip()


def _check_unit(unit: str) -> str:
    problem = ucum_problem(unit)
    if problem is not None:
        raise ValueError(problem)
    return unit


_EXPLICIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["system", "code", "display"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "code": {"type": "string", "minLength": 1},
        "display": {"type": "string", "minLength": 1},
    },
}

CodeRef = Annotated[
    str | ExplicitCode,
    PlainValidator(_check_code),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": CODE_PATTERN}, _EXPLICIT_SCHEMA]}),
]
"""``prefix:code`` present in the code tables (``snomed:61977001``), or a written-out
``{system, code, display}`` (any code system; checked later against the FHIR packages)."""

UcumUnit = Annotated[str, AfterValidator(_check_unit)]
"""A UCUM code, checked against UCUM's grammar (``mL``, ``g/dL``, ``10*9/L``)."""


def _parse_time(value: object) -> object:
    if isinstance(value, str):
        try:
            return timing.parse_time(value)
        except timing.TimeSyntaxError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, timing.RelativeTime):
        return value
    raise ValueError(
        f"expected a time such as 'day 0', 'day +14', '~month +12' or 'before day 0', got {value!r}"
    )


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
    raise ValueError(
        f"expected a duration: a number and a unit such as '11 h', '100 min' or '~2 wk', "
        f"got {value!r}"
    )


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
