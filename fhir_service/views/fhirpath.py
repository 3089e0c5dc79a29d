"""FHIRPath for views: the subset the specification requires
(https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#required-fhirpath-expressionsfunctions)
evaluated by fhirpathpy on the R4 model, plus the functions the specification adds:
``getResourceKey()``, ``getReferenceKey([type])``, ``lowBoundary()`` and
``highBoundary()``; ``extension(url)`` is replaced to return every matching extension.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from fhirpathpy.engine import do_eval
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import FP_Type, ResourceNode, TypeInfo
from fhirpathpy.engine.util import get_data
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhir_service.errors import InvalidView
from fhir_service.views.boundary import high_boundary, low_boundary
from fhir_service.views.fastpath import compile_fast

MODEL = models["r4"]
_PLAIN = (str, int, bool)
_FAST: weakref.WeakSet[Expression] = weakref.WeakSet()
"""The compiled expressions that are direct walkers."""

Expression = Callable[[Any, Mapping[str, Any]], list[Any]]
"""A compiled path: (focus, variables) -> the result nodes."""

_VARIABLE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)|%`([^`]*)`")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_BUILTIN_VARIABLES = {"resource", "rootResource", "context", "ucum", "sct", "loinc"}


def _resource_key(ctx: dict[str, Any], inputs: list[Any]) -> list[str]:
    """getResourceKey(): the resource's id (spec: "getResourceKey : KeyType")."""
    out = []
    for item in inputs:
        data = get_data(item)
        if isinstance(data, Mapping) and isinstance(data.get("id"), str):
            out.append(data["id"])
    return out


def _reference_key(ctx: dict[str, Any], inputs: list[Any], type_info: Any = None) -> list[str]:
    """getReferenceKey([resource]): the id part of a relative reference, the same key
    getResourceKey() gives the referenced resource; empty when the type does not match."""
    wanted = getattr(type_info, "name", None)
    out = []
    for item in inputs:
        data = get_data(item)
        reference = data.get("reference") if isinstance(data, Mapping) else None
        if not isinstance(reference, str) or reference.startswith("#"):
            continue
        parts = reference.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) < 2:
            continue
        if wanted is not None and parts[-2] != wanted:
            continue
        out.append(parts[-1])
    return out


def _extension(ctx: dict[str, Any], inputs: list[Any], url: Any) -> list[Any]:
    """extension(url): every extension of the inputs with that url (FHIRPath, FHIR section)."""
    url = get_data(url[0]) if isinstance(url, list) and url else get_data(url)
    out = []
    for item in inputs:
        data = get_data(item)
        if isinstance(data, Mapping):
            for extension in data.get("extension") or []:
                if isinstance(extension, Mapping) and extension.get("url") == url:
                    out.append(ResourceNode.create_node(extension, "Extension"))
    return out


def _join(ctx: dict[str, Any], inputs: list[Any], separator: Any = "") -> str:
    """join([separator]): the strings joined; an empty input gives '' (FHIRPath 3.0)."""
    separator = separator if isinstance(separator, str) else ""
    values = [get_data(i) for i in inputs]
    if not all(isinstance(v, str) for v in values):
        raise InvalidView("join() requires a collection of strings")
    return separator.join(values)


FUNCTIONS: dict[str, dict[str, Any]] = {
    "getResourceKey": {"fn": _resource_key},
    "getReferenceKey": {"fn": _reference_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
    "join": {"fn": _join, "arity": {0: [], 1: ["String"]}},
    "extension": {"fn": _extension, "arity": {1: ["String"]}},
    "lowBoundary": {"fn": lambda ctx, inputs: [low_boundary(i) for i in inputs if i is not None]},
    "highBoundary": {"fn": lambda ctx, inputs: [high_boundary(i) for i in inputs if i is not None]},
}


def variables_used(path: str) -> set[str]:
    """The ``%name`` variables a path refers to (outside string literals)."""
    text = _STRING.sub("''", path)
    return {plain or quoted for plain, quoted in _VARIABLE.findall(text)}


def compile_path(
    path: str, known_variables: set[str], context: str | None = None
) -> tuple[Expression, str | None]:
    """``path`` compiled once for a focus of static type ``context`` (None: unknown), and
    the static type of its result when known; an unparseable path or an unknown
    ``%variable`` is an InvalidView (spec: "ViewDefinition ... MUST be rejected").

    Paths in the fast subset (``fastpath``) become direct JSON walkers; the others are
    evaluated by fhirpathpy, with a plain JSON focus given its static type."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidView(f"FHIRPath expression must be a non-empty string, got {path!r}")
    unknown = variables_used(path) - known_variables - _BUILTIN_VARIABLES
    if unknown:
        raise InvalidView(f"FHIRPath {path!r} uses undefined constant(s): {sorted(unknown)}")
    try:
        parsed = parse(path)
    except Exception as exc:  # fhirpathpy raises bare exceptions on syntax errors
        raise InvalidView(f"FHIRPath {path!r} does not parse: {exc}") from exc
    node = parsed["children"][0]
    fast = compile_fast(path, context)
    if fast is not None:
        _FAST.add(fast[0])
        return fast

    def evaluate(focus: Any, variables: Mapping[str, Any]) -> list[Any]:
        constants.reset()
        if context is not None and isinstance(focus, Mapping) and "resourceType" not in focus:
            focus = ResourceNode.create_node(focus, context)
        root = [focus]
        ctx = {
            "dataRoot": root,
            "$this": root,
            "vars": {
                "context": focus,
                "resource": focus,
                "ucum": "http://unitsofmeasure.org",
                **variables,
            },
            "model": MODEL,
            "userInvocationTable": FUNCTIONS,
        }
        TypeInfo.model = MODEL  # type: ignore[assignment]  # ofType() reads it
        try:
            result = do_eval(ctx, root, node)
        except InvalidView:
            raise
        except Exception as exc:
            raise InvalidView(f"FHIRPath {path!r} failed: {exc}") from exc
        return result if isinstance(result, list) else [result]

    return evaluate, None


def is_fast(expression: Expression) -> bool:
    """Whether ``expression`` is a direct walker (plain JSON values, no FHIRPath nodes)."""
    return expression in _FAST


def to_value(node: Any) -> Any:
    """A FHIRPath result node as a plain JSON-able value (None for an element that only
    carries a primitive extension)."""
    if type(node) in _PLAIN:
        return node
    data = get_data(node)
    if isinstance(data, Decimal):
        return (
            int(data) if data == data.to_integral_value() and "." not in str(data) else float(data)
        )
    if isinstance(data, FP_Type):
        return str(data)
    if isinstance(data, Mapping):
        if list(data) == ["extension"]:
            return None
        return dict(data)
    return data
