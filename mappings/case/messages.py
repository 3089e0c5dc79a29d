"""Plain-words messages for the model's validation errors (wrong types, literals, patterns).

Each pydantic error (https://docs.pydantic.dev/latest/errors/validation_errors/) becomes
one sentence that names what was expected, what was found, and how to fix it, with a
"did you mean" for misspelt field names. The loader adds the file, line, column and field.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

from mappings.case.model import Case
from mappings.case.types import KEY_PATTERN

_KINDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list (e.g. [a, b], or one '- ' item per line)",
    "model_type": "a mapping of fields (name: value, one per line or {name: value})",
    "model_attributes_type": "a mapping of fields (name: value, one per line or {name: value})",
    "dict_type": "a mapping of fields (name: value, one per line or {name: value})",
}


def describe(err: Any) -> str:
    """One plain sentence for a pydantic error dict (``type``, ``loc``, ``msg``, ``input``)."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_field(tuple(err["loc"]))
    if kind == "missing":
        return "missing required field"
    if kind in _KINDS:
        message = f"expected {_KINDS[kind]}, got {_shown(value)}"
        if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
            message += f'; write it in quotes ("{value}") if it is meant as text'
        return message
    if kind == "literal_error":
        return f"{_shown(value)} is not one of: {ctx.get('expected', '')}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == KEY_PATTERN:
            return (
                f"{_shown(value)} is not a key: use lower-case letters, digits and single "
                "hyphens, e.g. 'liver-metastases'"
            )
        return f"{_shown(value)} does not have the expected form ({ctx.get('pattern')})"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{_shown(value)} is too small: the least allowed is {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{_shown(value)} is too large: the most allowed is {ctx.get('le', ctx.get('lt'))}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"
    return str(err["msg"]).removeprefix("Value error, ")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"the value {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (an empty value)"
    return repr(value)


def _unknown_field(loc: tuple[Any, ...]) -> str:
    name = str(loc[-1])
    message = f"unknown field {name!r}"
    model = _model_at(loc[:-1])
    if model is not None:
        close = difflib.get_close_matches(name, list(model.model_fields), n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return message


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class holding the fields at ``loc`` (list indexes skipped)."""
    model: type[BaseModel] | None = Case
    for step in loc:
        if isinstance(step, int):
            continue
        if model is None or step not in model.model_fields:
            return None
        model = _model_of(model.model_fields[step].annotation)
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None
