"""Where a FHIRPath expression points inside a resource, for FHIRPath Patch
(https://hl7.org/fhir/R4/fhirpatch.html).

fhirpathpy returns copies of what it selects, not references into the input. So
the expression is evaluated on a copy whose every JSON object carries a marker
naming its place (JSON keys and list indexes from the root). A primitive carries
no marker: an expression selecting primitives must end in ``.name`` or
``.name[index]``, and the part before it locates their parent. The copy leaves out
primitive extensions (``_name``, https://hl7.org/fhir/R4/json.html#primitive): a
path cannot select them; they follow their primitive when it is deleted or moved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhir_service.errors import InvalidRequest, Unprocessable
from fhir_service.fhir.element_fields import class_at, element

Location = tuple[str | int, ...]
"""A place in a resource: JSON keys and list indexes from the root, () the root."""

_MARK = "\x00location"
"""Marker key: no FHIRPath identifier can name it."""

_LAST_STEP = re.compile(
    r"^(?:(?P<parent>.+)\.)?(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?$"
)


class _RaiseOnError(ErrorListener):
    def syntaxError(
        self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise ValueError(f"column {column + 1}: {msg}")


def check_syntax(expression: str) -> None:
    """Raise ValueError unless ``expression`` is one whole FHIRPath expression
    (fhirpathpy's own parser silently recovers from syntax errors)."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_RaiseOnError())
    tokens = CommonTokenStream(lexer)
    parser = FHIRPathParser(tokens)
    parser.removeErrorListeners()
    parser.addErrorListener(_RaiseOnError())
    parser.expression()
    if tokens.LA(1) != Token.EOF:
        token = tokens.LT(1)
        raise ValueError(f"column {token.column + 1}: unexpected '{token.text}'")


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Callable[..., list[Any]] | str:
    """The compiled expression, or why it does not parse (cached either way)."""
    try:
        check_syntax(expression)
        compiled: Callable[..., list[Any]] = fhirpathpy.compile(expression, models["r4"])
    except Exception as exc:  # the antlr4 runtime and fhirpathpy raise many kinds
        return str(exc)
    return compiled


def compile_path(expression: str, where: str) -> Callable[..., list[Any]]:
    """A FHIRPath expression compiled for the R4 model; InvalidRequest when it does not parse."""
    compiled = _compiled(expression)
    if isinstance(compiled, str):
        raise InvalidRequest(
            f"'{expression}' is not a valid FHIRPath expression: {compiled}", expression=where
        )
    return compiled


def get(resource: Any, location: Location) -> Any:
    """The node at ``location``."""
    node = resource
    for step in location:
        node = node[step]
    return node


def _marked(node: Any, location: Location, table: list[Location]) -> Any:
    if isinstance(node, dict):
        copy = {
            key: _marked(value, (*location, key), table)
            for key, value in node.items()
            if not key.startswith("_")
        }
        copy[_MARK] = len(table)
        table.append(location)
        return copy
    if isinstance(node, list):
        return [_marked(value, (*location, i), table) for i, value in enumerate(node)]
    return node


def _evaluate(
    resource: dict[str, Any], expression: str, where: str
) -> tuple[list[Any], list[Location]]:
    table: list[Location] = []
    marked = _marked(resource, (), table)
    compiled = compile_path(expression, where)
    try:
        results = compiled(marked)
    except Exception as exc:  # fhirpathpy raises bare Exceptions (unknown function, ...)
        raise Unprocessable(
            f"The path '{expression}' cannot be evaluated: {exc}", expression=where
        ) from None
    return results, table


def select(resource: dict[str, Any], expression: str, where: str) -> list[Location]:
    """The locations of the elements ``expression`` selects in ``resource``."""
    results, table = _evaluate(resource, expression, where)
    if all(isinstance(r, dict) and _MARK in r for r in results):
        return [table[r[_MARK]] for r in results]
    if any(isinstance(r, dict) for r in results):
        raise Unprocessable(
            f"The path '{expression}' selects values that are not elements of the resource",
            expression=where,
        )
    locations = _primitive_locations(resource, expression, where)
    if len(locations) != len(results):
        raise Unprocessable(
            f"The path '{expression}' selects values whose place in the resource cannot be "
            "found; end it with the element name, optionally with an [index]",
            expression=where,
        )
    return locations


def _primitive_locations(resource: dict[str, Any], expression: str, where: str) -> list[Location]:
    match = _LAST_STEP.match(expression.strip())
    if match is None:
        raise Unprocessable(
            f"The path '{expression}' selects primitive values: it must end with the "
            "element name, optionally with an [index]",
            expression=where,
        )
    parent, name, index = match["parent"], match["name"], match["index"]
    parents = select(resource, parent, where) if parent else [()]
    locations: list[Location] = []
    for location in parents:
        node = get(resource, location)
        cls = class_at(resource, location)
        found = element(cls, name) if isinstance(node, dict) and cls is not None else None
        key = next((k for k in found.keys if k in node), None) if found else None
        if key is None:
            continue
        value = node[key]
        if isinstance(value, list):
            locations += [(*location, key, i) for i in range(len(value))]
        else:
            locations.append((*location, key))
    if index is None:
        return locations
    # FHIRPath indexes the whole collection: name.given[1] is the second given of all names.
    return locations[int(index) : int(index) + 1]


def select_parent(resource: dict[str, Any], expression: str, where: str) -> tuple[Location, str]:
    """For a path naming a list (``Patient.identifier``): the location of the one
    element holding it and the list's element name."""
    match = _LAST_STEP.match(expression.strip())
    if match is None or match["index"] is not None or match["parent"] is None:
        compile_path(expression, where)
        raise Unprocessable(
            f"The path '{expression}' must name a list: an expression followed by "
            "'.' and an element name",
            expression=where,
        )
    parents = select(resource, match["parent"], where)
    if len(parents) != 1 or not isinstance(get(resource, parents[0]), dict):
        raise Unprocessable(
            f"The path '{match['parent']}' selects {len(parents)} elements, expected one",
            expression=where,
        )
    return parents[0], match["name"]
