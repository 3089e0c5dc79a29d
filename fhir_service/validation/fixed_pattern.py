"""Fixed and pattern values of ElementDefinition (fixed[x], pattern[x]).

fixed[x]: the instance value must be exactly the same; pattern[x]: the instance
must contain every value the pattern holds, each array item of the pattern
matching some item of the instance
(https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.pattern_x_).
"""

from __future__ import annotations

from typing import Any

import orjson


def equals_fixed(value: Any, fixed: Any) -> bool:
    """Exact equality of JSON values (numbers compare by value)."""
    if isinstance(fixed, dict):
        return (
            isinstance(value, dict)
            and value.keys() == fixed.keys()
            and all(equals_fixed(value[k], fixed[k]) for k in fixed)
        )
    if isinstance(fixed, list):
        return (
            isinstance(value, list)
            and len(value) == len(fixed)
            and all(equals_fixed(v, f) for v, f in zip(value, fixed, strict=True))
        )
    if isinstance(fixed, bool) or isinstance(value, bool):
        return value is fixed
    return bool(value == fixed)


def contains_pattern(value: Any, pattern: Any) -> bool:
    """Whether ``value`` contains ``pattern`` in the sense of pattern[x]."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            contains_pattern(value.get(k), p) for k, p in pattern.items()
        )
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value] if value is not None else []
        return all(any(contains_pattern(v, p) for v in items) for p in pattern)
    return equals_fixed(value, pattern)


def describe(value: Any) -> str:
    """A short text of a JSON value for diagnostics."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
