"""The part of a ViewDefinition PostgreSQL can run exactly, as a plan for
``fhir_service.storage.view_sql`` (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html).

A view compiles when every path is a chain of elements (resolved on the R4 model, a
choice element with or without ``ofType(T)``) with the functions ``first()``,
``exists()``, ``empty()``, ``extension('url')``, ``join('sep')``, ``getResourceKey()``,
``getReferenceKey([T])``, ``where(path = literal)`` and ``path = literal``; its selects
use ``column``, nested ``select``, ``forEach``, ``forEachOrNull`` and ``unionAll`` (not
under forEachOrNull); its ``where`` paths are ``exists()``, ``empty()`` or ``= literal``
tests joined by ``and`` (or all by ``or``). Anything else (``repeat``, constants of
date and time types, ``%rowIndex``, other functions and operators) raises NotExpressible
and the view runs in Python (``run_view``); both give the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from fhir_service.errors import InvalidView
from fhir_service.storage.repository import Repository
from fhir_service.storage.view_scan import scan_resources
from fhir_service.storage.view_sql import (
    Choice,
    Empty,
    Equals,
    Exists,
    Extension,
    First,
    Join,
    Member,
    Path,
    PlanColumn,
    PlanSelect,
    ReferenceKey,
    ResourceKey,
    Step,
    ViewPlan,
    Where,
    WhereClause,
    runs_in_database,
    view_rows,
)
from fhir_service.views.definition import View
from fhir_service.views.fastpath import (
    CHOICE_TYPES,
    call_parts,
    member_type,
    split_path,
    string_literal,
)
from fhir_service.views.runner import run_view

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER_TYPES = ("integer", "positiveInt", "unsignedInt", "integer64")
# Constant types whose FHIRPath equality is JSON equality (no date precision, no units).
_EXACT_CONSTANTS = (
    "valueString", "valueCode", "valueId", "valueUri", "valueUrl", "valueOid", "valueUuid",
    "valueCanonical", "valueMarkdown", "valueBoolean", "valueInteger", "valuePositiveInt",
    "valueUnsignedInt",
)  # fmt: skip

Literal = str | bool | int


class NotExpressible(Exception):
    """The view (or one of its paths) is outside what the SQL plan expresses."""


def _literal(text: str, constants: Mapping[str, Literal]) -> Literal | None:
    """A string literal, ``true``/``false`` or a ``%constant`` of an exact type."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("%"):
        return constants.get(text[1:])
    return string_literal(text)


def _steps(path: str, type_path: str, constants: Mapping[str, Literal]) -> tuple[Path, str]:
    """The plan steps of ``path`` on a focus of static type ``type_path``, and the type
    of its result."""
    equals = _top_level_equals(path)
    if equals is not None:
        literal = _literal(equals[1], constants)
        if literal is None:
            raise NotExpressible(f"{path!r} compares with an unsupported value")
        return (*_steps(equals[0], type_path, constants)[0], Equals(literal)), "boolean"
    parts = split_path(path.strip())
    if parts is None:
        raise NotExpressible(f"{path!r} is not a plain path")
    steps: list[Step] = []
    current = type_path
    i = 0
    while i < len(parts):
        part = parts[i]
        call = call_parts(part)
        if call is None:
            resolved = member_type(current, part) if _IDENT.fullmatch(part) else None
            if resolved is None:
                raise NotExpressible(f"{part!r} is not an element of {current}")
            found, choice = resolved
            if not choice:
                steps.append(Member(part))
                current = found
                i += 1
                continue
            following = call_parts(parts[i + 1]) if i + 1 < len(parts) else None
            if following is None or following[0] != "ofType":
                suffixes = CHOICE_TYPES[found]
                steps.append(Choice(tuple(part + suffix for suffix in suffixes)))
                current = ""  # no static type: only functions may follow
                i += 1
                continue
            if not _IDENT.fullmatch(following[1]):
                raise NotExpressible(f"ofType({following[1]}) is not a type name")
            suffix = following[1][:1].upper() + following[1][1:]
            if suffix not in CHOICE_TYPES[found]:
                raise NotExpressible(f"{part!r} has no type {following[1]}")
            steps.append(Member(part + suffix))
            current = following[1]
            i += 2
            continue
        steps.append(_function(*call, current, constants))
        current = _result_type(steps[-1], current)
        i += 1
    return tuple(steps), current


def _function(name: str, args: str, current: str, constants: Mapping[str, Literal]) -> Step:
    literal = string_literal(args) if args else None
    if name == "first" and not args:
        return First()
    if name == "exists" and not args:
        return Exists()
    if name == "empty" and not args:
        return Empty()
    if name == "getResourceKey" and not args:
        return ResourceKey()
    if name == "getReferenceKey" and (not args or _IDENT.fullmatch(args)):
        return ReferenceKey(args or None)
    if name == "extension" and literal is not None:
        return Extension(literal)
    if name == "join" and (not args or literal is not None) and current == "string":
        return Join(literal or "")
    equals = _top_level_equals(args) if name == "where" else None
    if equals is not None:
        value = _literal(equals[1], constants)
        if value is not None:
            return Where(_steps(equals[0], current, constants)[0], value)
    raise NotExpressible(f"{name}({args}) is not expressed in SQL")


def _result_type(step: Step, current: str) -> str:
    if isinstance(step, Exists | Empty):
        return "boolean"
    if isinstance(step, ResourceKey | ReferenceKey | Join):
        return "string"
    if isinstance(step, Extension):
        return "Extension"
    return current


def _select(
    raw: Mapping[str, Any], context: str, constants: Mapping[str, Literal], nullable: bool
) -> PlanSelect:
    """A select's plan; ``nullable``: its focus may be null (under forEachOrNull)."""
    if "repeat" in raw:
        raise NotExpressible("repeat runs in Python")
    for_each: Path | None = None
    or_null = "forEachOrNull" in raw
    inner = context
    if "forEach" in raw or or_null:
        path = raw["forEachOrNull" if or_null else "forEach"]
        for_each, inner = _steps(path, context, constants)
    nullable = nullable or or_null
    if raw.get("unionAll") and nullable:
        raise NotExpressible("unionAll under forEachOrNull runs in Python")
    columns = tuple(
        PlanColumn(c["name"], _steps(c["path"], inner, constants)[0]) for c in raw.get("column", [])
    )
    selects = tuple(_select(s, inner, constants, nullable) for s in raw.get("select", []))
    union = tuple(_select(s, inner, constants, False) for s in raw.get("unionAll", []))
    return PlanSelect(columns, selects, union, for_each, or_null)


def _top_level_equals(text: str) -> tuple[str, str] | None:
    """``(left, right)`` of a top-level ``=`` (outside parentheses and quotes), or None."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and ch == "=":
            if text[i - 1 : i] in ("!", "<", ">", "~") or text[i + 1 : i + 2] == "=":
                return None
            return text[:i], text[i + 1 :]
    return None


def _test(text: str, resource: str, constants: Mapping[str, Literal]) -> Path:
    """One where test: ``path.exists()``, ``path.empty()`` or ``path = literal``."""
    path, _ = _steps(text, resource, constants)
    if not path or not isinstance(path[-1], Exists | Empty | Equals):
        raise NotExpressible(f"where {text!r} is not an exists(), empty() or = test")
    return path


def _where(text: str, resource: str, constants: Mapping[str, Literal]) -> WhereClause:
    if text.lstrip().startswith("(") or (" or " in text and " and " in text):
        raise NotExpressible(f"where {text!r} mixes operators")
    any_of = " or " in text
    parts = text.split(" or " if any_of else " and ")
    return WhereClause(tuple(_test(p.strip(), resource, constants) for p in parts), any_of)


def _constants(raw: Mapping[str, Any]) -> dict[str, Literal]:
    """The view's constants whose equality SQL decides exactly; others are left out, so
    a path using them does not compile."""
    out: dict[str, Literal] = {}
    for constant in raw.get("constant", []):
        for key in _EXACT_CONSTANTS:
            if key in constant:
                out[constant["name"]] = constant[key]
    return out


def plan_view(raw: Mapping[str, Any]) -> ViewPlan:
    """The SQL plan of a ViewDefinition already accepted by ``parse_view``, or
    NotExpressible saying what keeps it in Python."""
    resource = raw["resource"]
    constants = _constants(raw)
    root = PlanSelect(selects=tuple(_select(s, resource, constants, False) for s in raw["select"]))
    where = tuple(_where(w["path"], resource, constants) for w in raw.get("where", []))
    return ViewPlan(resource, root, where)


def _value(name: str, values: list[Any] | None, view: View) -> Any:
    """A column's value from its JSON array, by the rules of ``run_view``."""
    values = values or []
    if name in view.collection_columns:
        return values
    if not values:
        return None
    if len(values) > 1:
        raise InvalidView(
            f"column {name!r} returned {len(values)} values; "
            "set collection: true or narrow the path (spec: column.collection)"
        )
    value = values[0]
    if (
        view.column_types.get(name) in _INTEGER_TYPES
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    return value


def rows_of(plan: ViewPlan, view: View, rows: Iterator[Any]) -> Iterator[dict[str, Any]]:
    """Rows of the plan's query as the runner's dictionaries, in column order."""
    names = plan.columns
    for row in rows:
        yield {name: _value(name, values, view) for name, values in zip(names, row, strict=True)}


def run_view_sql(
    repo: Repository,
    plan: ViewPlan,
    view: View,
    *,
    patient: str | None = None,
    since: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of a compiled view over the stored resources, computed in PostgreSQL."""
    return rows_of(plan, view, view_rows(repo, plan, patient=patient, since=since))


def stored_rows(
    repo: Repository,
    raw: Mapping[str, Any],
    view: View,
    *,
    patient: str | None = None,
    since: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of ``view`` (parsed from ``raw``) over the stored resources the unit's
    scope may search: computed inside PostgreSQL when the view compiles, else by the
    Python runner over the storage scan. Both give the same rows in the same order."""
    if runs_in_database(repo):
        try:
            plan = plan_view(raw)
        except NotExpressible:
            pass
        else:
            return run_view_sql(repo, plan, view, patient=patient, since=since)
    return run_view(view, scan_resources(repo, view.resource, patient=patient, since=since))
