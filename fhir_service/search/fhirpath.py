"""SearchParameter expressions compiled once into Python functions
(https://hl7.org/fhir/R4/searchparameter-definitions.html#SearchParameter.expression,
https://hl7.org/fhirpath/).

Most core expressions are unions of simple paths (``Patient.name | Person.name``),
optionally with ``as``/``ofType``, ``where(resolve() is Type)``,
``where(field='value')`` or ``extension('url')``. Those are compiled here into
direct walkers over the JSON (fast on the write path); any other expression is
compiled with fhirpathpy. Only the union branches rooted at the resource type
(or at ``Resource``/``DomainResource``) are kept for that type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

Node = tuple[Any, str | None]
"""A value reached by an expression and the choice type it was reached through."""

Evaluator = Callable[[dict[str, Any]], list[Node]]
_Step = Callable[[list[Node]], list[Node]]

_GENERIC_ROOTS = ("Resource", "DomainResource")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESOLVE_IS = re.compile(r"where\(resolve\(\) is ([A-Za-z]+)\)")
_WHERE_EQ = re.compile(r"where\(([A-Za-z]+) *= *'([^']*)'\)")
_AS_CALL = re.compile(r"(?:as|ofType)\(([A-Za-z]+)\)")
_EXTENSION = re.compile(r"extension\('([^']*)'\)")


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside parentheses and quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _root_of(part: str) -> str:
    match = _IDENT.match(part.lstrip("("))
    return match.group(0) if match else ""


def branches_for(expression: str, resource_type: str) -> list[str]:
    """The union branches of ``expression`` that apply to ``resource_type``."""
    return [
        part
        for part in split_top(expression, "|")
        if _root_of(part) in (resource_type, *_GENERIC_ROOTS)
    ]


def _children(nodes: list[Node], name: str, may_be_choice: bool = True) -> list[Node]:
    """The children ``name`` of ``nodes``; where ``name`` may be a choice element
    (``value[x]``), also a ``valueQuantity``-like key, with its type."""
    out: list[Node] = []
    for value, _ in nodes:
        if not isinstance(value, dict):
            continue
        found = value.get(name)
        choice = None
        if found is None and may_be_choice:
            for key, item in value.items():
                if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                    found, choice = item, key[len(name) :]
                    break
        if found is None:
            continue
        if isinstance(found, list):
            out.extend((item, choice) for item in found if item is not None)
        else:
            out.append((found, choice))
    return out


def _of_type(type_name: str) -> _Step:
    wanted = type_name[:1].upper() + type_name[1:]

    def step(nodes: list[Node]) -> list[Node]:
        return [(v, c) for v, c in nodes if c is None or c == wanted]

    return step


def _resolve_is(type_name: str) -> _Step:
    def step(nodes: list[Node]) -> list[Node]:
        out = []
        for value, choice in nodes:
            ref = value.get("reference") if isinstance(value, dict) else None
            if isinstance(ref, str) and _reference_type(ref) == type_name:
                out.append((value, choice))
        return out

    return step


def _reference_type(reference: str) -> str | None:
    parts = reference.split("/_history/")[0].split("/")
    return parts[-2] if len(parts) >= 2 else None


def _where_eq(field: str, literal: str) -> _Step:
    def step(nodes: list[Node]) -> list[Node]:
        return [(v, c) for v, c in nodes if isinstance(v, dict) and v.get(field) == literal]

    return step


def _extension(url: str) -> _Step:
    def step(nodes: list[Node]) -> list[Node]:
        out: list[Node] = []
        for value, _ in nodes:
            if isinstance(value, dict):
                out.extend(
                    (ext, None)
                    for ext in value.get("extension") or []
                    if isinstance(ext, dict) and ext.get("url") == url
                )
        return out

    return step


def _child_step(name: str, may_be_choice: bool = True) -> _Step:
    return lambda nodes: _children(nodes, name, may_be_choice)


class _ElementPaths:
    """Which element paths of R4 are choice elements, from fhirpathpy's R4 model
    (https://hl7.org/fhir/R4/formats.html#choice): a step to an element known not to be
    one skips looking for ``name[Type]`` keys."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.types: dict[str, str] = model["path2Type"]
        self.choices: set[str] = set(model["choiceTypePaths"])
        self.elsewhere: dict[str, str] = model["pathsDefinedElsewhere"]
        self.known: set[str] = set()
        for path in (*self.types, *self.choices):
            parts = path.split(".")
            self.known.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))

    def step(self, context: str | None, name: str) -> tuple[bool, str | None]:
        """Whether ``context.name`` may be a choice element, and the context after it
        (None where unknown: every later step then looks for choices)."""
        if context is None:
            return True, None
        path = self.elsewhere.get(f"{context}.{name}", f"{context}.{name}")
        if path in self.choices or path not in self.known:
            return True, None
        type_name = self.types.get(path)
        if type_name is None or type_name == "BackboneElement":
            return False, path  # a backbone element: its children are under its path
        return False, None if type_name.startswith("System.") else type_name


_ELEMENT_PATHS = _ElementPaths(models["r4"])


def _compile_steps(part: str) -> list[_Step] | None:
    """Steps of a simple path branch after its root, or None when it is not simple."""
    text = part.strip()
    if text.startswith("("):
        close = _closing(text)
        if close is not None and close < len(text) - 1 and text[close + 1] == ".":
            # (Type.path as X).rest
            head = _compile_steps(text[: close + 1])
            rest = _compile_steps("Element" + text[close + 1 :])
            return None if head is None or rest is None else head + rest
    trailing_as: str | None = None
    if text.startswith("(") and text.endswith(")") and len(split_top(text[1:-1], "|")) == 1:
        text = text[1:-1].strip()
    pieces = split_top(text, " as ")
    if len(pieces) == 2 and _IDENT.fullmatch(pieces[1]):
        text, trailing_as = pieces
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1].strip()
    elif len(pieces) > 2:
        return None
    segments = split_top(text, ".")
    steps: list[_Step] = []
    context: str | None = segments[0]
    for segment in segments[1:]:
        if _IDENT.fullmatch(segment):
            may_be_choice, context = _ELEMENT_PATHS.step(context, segment)
            steps.append(_child_step(segment, may_be_choice))
        elif match := _RESOLVE_IS.fullmatch(segment):
            steps.append(_resolve_is(match.group(1)))
        elif match := _WHERE_EQ.fullmatch(segment):
            steps.append(_where_eq(match.group(1), match.group(2)))
        elif match := _AS_CALL.fullmatch(segment):
            steps.append(_of_type(match.group(1)))
            context = None
        elif match := _EXTENSION.fullmatch(segment):
            steps.append(_extension(match.group(1)))
            context = "Extension"
        else:
            return None
    if not _IDENT.fullmatch(segments[0]):
        return None
    if trailing_as is not None:
        steps.append(_of_type(trailing_as))
    return steps


def _closing(text: str) -> int | None:
    """Index of the parenthesis closing the one at ``text[0]``."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def _walker(steps: list[_Step]) -> Evaluator:
    def evaluate(resource: dict[str, Any]) -> list[Node]:
        nodes: list[Node] = [(resource, None)]
        for step in steps:
            nodes = step(nodes)
            if not nodes:
                break
        return nodes

    return evaluate


def _fhirpathpy(part: str) -> Evaluator | None:
    try:
        compiled = fhirpathpy.compile(part, models["r4"])
    except Exception:  # fhirpathpy raises bare Exceptions for what it cannot parse
        return None

    def evaluate(resource: dict[str, Any]) -> list[Node]:
        try:
            result = compiled(resource, {})
        except Exception:  # e.g. functions fhirpathpy does not implement (resolve)
            return []
        return [(value, None) for value in result if value is not None]

    return evaluate


def compile_expression(expression: str, resource_type: str) -> Evaluator | None:
    """One function evaluating ``expression`` on resources of ``resource_type``;
    None when no branch applies or a branch cannot be compiled."""
    return _union(branches_for(expression, resource_type))


def first_elements(expression: str, resource_type: str) -> frozenset[str] | None:
    """The elements of a ``resource_type`` resource where ``expression`` starts (``value``
    for ``Observation.value.as(Quantity)``): without one of them (or a choice of them,
    ``valueQuantity``) it reaches nothing. None when a branch is not a compiled walker
    (a fhirpathpy expression such as ``deceased.exists() and ...`` may yield a value on
    an empty resource)."""
    names: set[str] = set()
    for part in branches_for(expression, resource_type):
        segments = split_top(part, ".")
        if (
            len(segments) < 2
            or not _IDENT.fullmatch(segments[0])
            or not _IDENT.fullmatch(segments[1])
            or _compile_steps(part) is None
        ):
            return None
        names.add(segments[1])
    return frozenset(names) if names else None


def element_names(resource: dict[str, Any]) -> set[str]:
    """The keys of ``resource`` and, of choice keys, their element names (``valueQuantity``
    also gives ``value``): what a first step of ``_children`` may find."""
    names = set(resource)
    for key in resource:
        names.update(_choice_prefixes(key))
    return names


@cache
def _choice_prefixes(key: str) -> tuple[str, ...]:
    return tuple(key[:i] for i in range(1, len(key)) if key[i].isupper())


def _union(parts: list[str], root: str = "") -> Evaluator | None:
    """The union of the branches ``parts`` (each prefixed with ``root``): walkers where
    they are simple paths, fhirpathpy otherwise."""
    evaluators: list[Evaluator] = []
    for part in parts:
        steps = _compile_steps(root + part)
        if steps is not None:
            evaluators.append(_walker(steps))
            continue
        fallback = _fhirpathpy(part)
        if fallback is None:
            return None
        evaluators.append(fallback)
    if not evaluators:
        return None
    if len(evaluators) == 1:
        return evaluators[0]

    def union(resource: dict[str, Any]) -> list[Node]:
        return [node for evaluator in evaluators for node in evaluator(resource)]

    return union


def compile_relative(expression: str) -> Evaluator | None:
    """An expression evaluated on an element rather than a resource (composite components,
    e.g. ``value.as(Quantity) | value.as(Range)``)."""
    return _union(split_top(expression.strip(), "|"), root="Element.")
