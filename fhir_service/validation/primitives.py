"""Primitive values: JSON type, lexical format, and the rules the regexes do not hold.

Formats are the regexes of the R4 primitive type StructureDefinitions
(https://hl7.org/fhir/R4/datatypes.html#primitive), plus: resource ids at most
64 characters, date-times with a time must have a timezone, strings not empty
and without leading or trailing whitespace only, integers in 32-bit range.
"""

from __future__ import annotations

import re
from functools import cache

_NUMBER_TYPES = frozenset({"decimal", "integer", "unsignedInt", "positiveInt"})
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URI_TYPES = frozenset({"uri", "url", "canonical"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


@cache
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def check_primitive(type_code: str, value: object, regex: str | None) -> str | None:
    """A message saying what is wrong with a primitive value, or None when it is valid."""
    if type_code == "boolean":
        return (
            None
            if isinstance(value, bool)
            else f"Error parsing JSON: the primitive value must be a boolean, not {_kind(value)}"
        )
    if type_code in _NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"Error parsing JSON: the primitive value must be a number, not {_kind(value)}"
        if type_code != "decimal":
            if not isinstance(value, int):
                return f"The value '{value}' is not a valid integer"
            if not _INT_MIN <= value <= _INT_MAX:
                return f"The value '{value}' is outside the range of a 32-bit integer"
            if type_code == "positiveInt" and value < 1:
                return f"The value '{value}' must be a positive integer (1 or more)"
            if type_code == "unsignedInt" and value < 0:
                return f"The value '{value}' must not be negative"
        return None
    if not isinstance(value, str):
        return f"Error parsing JSON: the primitive value must be a string, not {_kind(value)}"
    if value == "":
        return "@value cannot be empty"
    if type_code == "id" and not _ID.fullmatch(value):
        if len(value) > 64:
            return f"Invalid Resource id: Too long ({len(value)} chars)"
        return f"Invalid Resource id: Invalid Characters ('{value}')"
    if type_code in ("string", "markdown") and not value.strip():
        return "The string value is only whitespace"
    if type_code in ("dateTime", "instant") and "T" in value and not _has_zone(value):
        return "If a date has a time, it must have a timezone"
    if regex and type_code not in ("string", "markdown") and not _compiled(regex).fullmatch(value):
        return f"The value '{value}' is not a valid {type_code}"
    if type_code in _URI_TYPES and value.startswith("urn:"):
        return _urn_problem(value)
    return None


def _urn_problem(value: str) -> str | None:
    """``urn:uuid:`` and ``urn:oid:`` URIs (https://hl7.org/fhir/R4/datatypes.html#uri):
    a UUID is RFC 4122 hex in lowercase, an OID is dotted numbers (RFC 3001)."""
    if value.startswith("urn:uuid:") and not _UUID.fullmatch(value[9:]):
        return f"UUIDs must be valid and lowercase ({value[9:]})"
    if value.startswith("urn:oid:") and not _OID.fullmatch(value[8:]):
        return f"OIDs must be valid ({value[8:]})"
    return None


def _has_zone(value: str) -> bool:
    return value.endswith("Z") or bool(re.search(r"[+-]\d\d:\d\d$", value))


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
