"""Direct JSON walkers for the common FHIRPath of views
(https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#required-fhirpath-expressionsfunctions),
an order of magnitude faster than a general evaluator.

A path compiles here when it is a chain of element names and the functions ``first()``,
``exists()``, ``empty()``, ``ofType(T)`` (after a choice element), ``extension('url')``,
``join(['sep'])``, ``getResourceKey()``, ``getReferenceKey([T])`` and
``where(path = 'literal')``, and every element name resolves statically on the R4 model
from the focus type (so a choice element ``value`` is known to need ``valueQuantity``
etc.). Anything else returns None and is evaluated by fhirpathpy; both give the same
values.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from functools import cache
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhir_service.errors import InvalidView

Walker = Callable[[list[Any]], list[Any]]

_MODEL = models["r4"]
_PATH2TYPE: dict[str, str] = _MODEL["path2Type"]
CHOICE_TYPES: dict[str, list[str]] = _MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = _MODEL["pathsDefinedElsewhere"]
_PARENT: dict[str, str] = _MODEL["type2Parent"]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")
_BACKBONE = ("BackboneElement", "Element")


@cache
def _backbones() -> frozenset[str]:
    prefixes = set()
    for key in (*_PATH2TYPE, *CHOICE_TYPES):
        parts = key.split(".")
        for end in range(2, len(parts)):
            prefixes.add(".".join(parts[:end]))
    return frozenset(prefixes)


def _chain(type_path: str) -> list[str]:
    out = [type_path]
    if "." in type_path:
        out.append("BackboneElement")
    while out[-1] in _PARENT:
        out.append(_PARENT[out[-1]])
    if out[-1] == "BackboneElement":
        out.append("Element")
    return out


def member_type(type_path: str, name: str) -> tuple[str, bool] | None:
    """The static type (or backbone path) of ``name`` under ``type_path`` and whether it
    is a choice element; None when the model does not know it."""
    for owner in _chain(type_path):
        key = f"{owner}.{name}"
        if key in CHOICE_TYPES:
            return key, True
        if key in _ELSEWHERE:
            return _ELSEWHERE[key], False
        found = _PATH2TYPE.get(key)
        if found is not None:
            return (key if found in _BACKBONE else found), False
        if key in _backbones():
            return key, False
    return None


def split_path(path: str) -> list[str] | None:
    """The dot-separated steps of ``path`` (dots inside parentheses and quotes kept)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(path):
        if ch == "'" and (i == 0 or path[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ".":
            parts.append(path[start:i].strip())
            start = i + 1
    parts.append(path[start:].strip())
    return parts if depth == 0 and not quoted and all(parts) else None


def _member(key: str) -> Walker:
    def step(items: list[Any]) -> list[Any]:
        if len(items) == 1:
            # The usual case: one focus, one value or an array.
            item = items[0]
            found = item.get(key) if type(item) is dict else None
            if found is None:
                return []
            if type(found) is list:
                return [v for v in found if v is not None]
            return [found]
        out: list[Any] = []
        for item in items:
            if type(item) is dict:
                found = item.get(key)
                if found is None:
                    continue
                if type(found) is list:
                    out.extend(v for v in found if v is not None)
                else:
                    out.append(found)
        return out

    return step


def _reference_key(wanted: str | None) -> Walker:
    def step(items: list[Any]) -> list[Any]:
        out = []
        for item in items:
            ref = item.get("reference") if isinstance(item, dict) else None
            if not isinstance(ref, str) or ref.startswith("#"):
                continue
            parts = ref.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2 and (wanted is None or parts[-2] == wanted):
                out.append(parts[-1])
        return out

    return step


def _extension(url: str) -> Walker:
    def step(items: list[Any]) -> list[Any]:
        return [
            e
            for item in items
            if isinstance(item, dict)
            for e in item.get("extension") or []
            if isinstance(e, dict) and e.get("url") == url
        ]

    return step


def _join(separator: str) -> Walker:
    def step(items: list[Any]) -> list[Any]:
        if not all(isinstance(i, str) for i in items):
            raise InvalidView("join() requires a collection of strings")
        return [separator.join(items)]

    return step


_ON_EMPTY: weakref.WeakSet[Walker] = weakref.WeakSet()
"""Steps that give an answer on an empty input (exists, empty, join); every other step
maps empty to empty, so a walk stops at the first empty result."""


def _answers_empty(walker: Walker) -> Walker:
    _ON_EMPTY.add(walker)
    return walker


def _where(inner: Walker, literal: str) -> Walker:
    def step(items: list[Any]) -> list[Any]:
        return [item for item in items if inner([item]) == [literal]]

    return step


def string_literal(text: str) -> str | None:
    match = _STRING.fullmatch(text.strip())
    return match.group(1).replace("\\'", "'") if match else None


def call_parts(step: str) -> tuple[str, str] | None:
    match = re.fullmatch(r"([A-Za-z]+)\((.*)\)", step, re.S)
    return (match.group(1), match.group(2).strip()) if match else None


def _compile_steps(
    steps: list[str], type_path: str | None
) -> tuple[list[Walker], str | None] | None:
    walkers: list[Walker] = []
    current = type_path
    i = 0
    while i < len(steps):
        step = steps[i]
        call = call_parts(step)
        if call is None:
            if not _IDENT.fullmatch(step) or current is None:
                return None
            resolved = member_type(current, step)
            if resolved is None:
                return None
            found, choice = resolved
            if choice:
                following = call_parts(steps[i + 1]) if i + 1 < len(steps) else None
                if following is None or following[0] != "ofType":
                    return None
                type_name = following[1]
                if not _IDENT.fullmatch(type_name):
                    return None
                allowed = CHOICE_TYPES[found]
                suffix = type_name[:1].upper() + type_name[1:]
                if suffix not in allowed:
                    return None
                walkers.append(_member(step + suffix))
                current = type_name
                i += 2
                continue
            walkers.append(_member(step))
            current = found
            i += 1
            continue
        name, args = call
        if name == "first" and not args:
            walkers.append(lambda items: items[:1])
        elif name == "exists" and not args:
            walkers.append(_answers_empty(lambda items: [bool(items)]))
            current = "boolean"
        elif name == "empty" and not args:
            walkers.append(_answers_empty(lambda items: [not items]))
            current = "boolean"
        elif name == "getResourceKey" and not args:
            walkers.append(
                lambda items: [
                    i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)
                ]
            )
            current = "string"
        elif name == "getReferenceKey" and (not args or _IDENT.fullmatch(args)):
            walkers.append(_reference_key(args or None))
            current = "string"
        elif name == "extension" and string_literal(args) is not None:
            walkers.append(_extension(str(string_literal(args))))
            current = "Extension"
        elif name == "join" and (not args or string_literal(args) is not None):
            walkers.append(_answers_empty(_join(string_literal(args) or "")))
            current = "string"
        elif name == "where":
            condition = _where_condition(args, current)
            if condition is None:
                return None
            walkers.append(condition)
        else:
            return None
        i += 1
    return walkers, current


def _where_condition(args: str, type_path: str | None) -> Walker | None:
    left, sep, right = args.partition("=")
    if not sep or left.endswith(("!", "<", ">", "~")) or right.startswith("="):
        return None
    literal = string_literal(right)
    steps = split_path(left.strip())
    if literal is None or steps is None:
        return None
    compiled = _compile_steps(steps, type_path)
    if compiled is None:
        return None
    return _where(_run(compiled[0]), literal)


def _run(walkers: list[Walker]) -> Walker:
    if len(walkers) == 1:
        return walkers[0]
    answers_empty = [w in _ON_EMPTY for w in walkers]
    if not any(answers_empty):

        def walk_until_empty(items: list[Any]) -> list[Any]:
            for walker in walkers:
                items = walker(items)
                if not items:
                    return items
            return items

        return walk_until_empty

    def walk(items: list[Any]) -> list[Any]:
        for walker in walkers:
            items = walker(items)
        return items

    return walk


def compile_fast(
    path: str, type_path: str | None
) -> tuple[Callable[[Any, Any], list[Any]], str | None] | None:
    """A walker for ``path`` evaluated on a focus of static type ``type_path`` (a type name
    or a backbone path such as ``Observation.component``) and the static type of its
    result, or None when the path is outside the fast subset."""
    if type_path is None or "%" in path or "$" in path:
        return None
    steps = split_path(path.strip())
    if steps is None:
        return None
    compiled = _compile_steps(steps, type_path)
    if compiled is None:
        return None
    walk = _run(compiled[0])

    def evaluate(focus: Any, variables: Any = None) -> list[Any]:
        return walk([focus.data if isinstance(focus, ResourceNode) else focus])

    return evaluate, compiled[1]
