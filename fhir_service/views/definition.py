"""A ViewDefinition parsed and checked into a compiled tree
(https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html).

Everything the specification says must be rejected before running is rejected here
with InvalidView: no ``resource``, no ``select``, a bad column name, a column name
used twice, more than one of ``forEach``/``forEachOrNull``/``repeat`` on one select,
``unionAll`` branches whose columns differ in name or order, a constant without
exactly one ``value[x]``, an unknown ``%constant``, an unparseable path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fhirpathpy.engine.nodes import ResourceNode

from fhir_service.errors import InvalidView
from fhir_service.views.fhirpath import Expression, compile_path, is_fast

_TEMPORAL = {"date", "dateTime", "instant", "time"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
ROW_INDEX = "rowIndex"
"""%rowIndex: the index of the current element of the nearest forEach/forEachOrNull/repeat."""


@dataclass(frozen=True)
class Column:
    """ViewDefinition.select.column."""

    name: str
    path: str
    expression: Expression
    type: str | None = None
    collection: bool = False
    plain: bool = False
    """The expression is a direct walker: its values are plain JSON already."""
    integer: bool = False
    """The column's FHIR type is an integer type."""


@dataclass(frozen=True)
class Select:
    """ViewDefinition.select (also each ``unionAll`` branch and the root of the view)."""

    columns: tuple[Column, ...] = ()
    selects: tuple[Select, ...] = ()
    union_all: tuple[Select, ...] = ()
    for_each: Expression | None = None
    for_each_or_null: Expression | None = None
    repeat: tuple[Expression, ...] = ()

    @property
    def names(self) -> list[str]:
        """The column names this select produces, in the specification's order: its own
        columns, then nested selects', then the unionAll's (the first branch's)."""
        out = [c.name for c in self.columns]
        for child in self.selects:
            out.extend(child.names)
        if self.union_all:
            out.extend(self.union_all[0].names)
        return out


@dataclass(frozen=True)
class View:
    """A compiled ViewDefinition."""

    resource: str
    root: Select
    where: tuple[tuple[str, Expression], ...] = ()
    constants: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    column_types: dict[str, str | None] = field(default_factory=dict)
    collection_columns: frozenset[str] = frozenset()

    @property
    def columns(self) -> list[str]:
        """The view's column names, in order."""
        return self.root.names


def _constant_value(constant: Any) -> tuple[str, Any]:
    if not isinstance(constant, dict):
        raise InvalidView("ViewDefinition.constant entries must be objects")
    name = constant.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidView(f"ViewDefinition.constant.name {name!r} is not a valid name")
    values = [(k, v) for k, v in constant.items() if k.startswith("value")]
    if len(values) != 1:
        raise InvalidView(f"constant {name!r} must have exactly one value[x]")
    key, value = values[0]
    fhir_type = key[len("value") :]
    fhir_type = fhir_type[:1].lower() + fhir_type[1:]
    if fhir_type in _TEMPORAL:
        return name, ResourceNode.create_node(value, fhir_type)
    if isinstance(value, float):
        return name, Decimal(str(value))
    return name, value


def _paths_of(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise InvalidView(f"{what} must be a FHIRPath string, got {raw!r}")
    return raw


class _Compiler:
    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.types: dict[str, str | None] = {}
        self.collections: set[str] = set()

    def path(self, raw: Any, what: str, context: str | None) -> tuple[Expression, str | None]:
        return compile_path(_paths_of(raw, what), self.known, context)

    def column(self, raw: Any, context: str | None) -> Column:
        if not isinstance(raw, dict):
            raise InvalidView("select.column entries must be objects")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidView(
                f"column name {name!r} must start with a letter and hold only letters, digits and _"
            )
        path = _paths_of(raw.get("path"), f"column {name!r} path")
        collection = raw.get("collection", False)
        if not isinstance(collection, bool):
            raise InvalidView(f"column {name!r}: collection must be true or false")
        col_type = raw.get("type")
        if col_type is not None and not isinstance(col_type, str):
            raise InvalidView(f"column {name!r}: type must be a string")
        self.types.setdefault(name, col_type)
        if collection:
            self.collections.add(name)
        expression, _ = compile_path(path, self.known, context)
        plain = is_fast(expression)
        integer = col_type in ("integer", "positiveInt", "unsignedInt", "integer64")
        return Column(name, path, expression, col_type, collection, plain, integer)

    def select(self, raw: Any, context: str | None) -> Select:
        """A select compiled for a focus of static type ``context``; its columns and
        nested selects see the static type of its forEach/forEachOrNull (repeat: none)."""
        if not isinstance(raw, dict):
            raise InvalidView("select entries must be objects")
        iterations = [k for k in ("forEach", "forEachOrNull", "repeat") if k in raw]
        if len(iterations) > 1:
            raise InvalidView(
                f"a select may have only one of forEach, forEachOrNull, repeat: {iterations}"
            )
        columns = raw.get("column", [])
        selects = raw.get("select", [])
        union = raw.get("unionAll", [])
        for key, value in (("column", columns), ("select", selects), ("unionAll", union)):
            if not isinstance(value, list):
                raise InvalidView(f"select.{key} must be an array")
        repeat_raw = raw.get("repeat", [])
        if not isinstance(repeat_raw, list) or ("repeat" in raw and not repeat_raw):
            raise InvalidView("select.repeat must be a non-empty array of FHIRPath strings")
        for_each = for_each_or_null = None
        inner = context
        if "forEach" in raw:
            for_each, inner = self.path(raw["forEach"], "forEach", context)
        elif "forEachOrNull" in raw:
            for_each_or_null, inner = self.path(raw["forEachOrNull"], "forEachOrNull", context)
        elif "repeat" in raw:
            inner = None
        built = Select(
            columns=tuple(self.column(c, inner) for c in columns),
            selects=tuple(self.select(s, inner) for s in selects),
            union_all=tuple(self.select(s, inner) for s in union),
            for_each=for_each,
            for_each_or_null=for_each_or_null,
            repeat=tuple(self.path(p, "repeat", None)[0] for p in repeat_raw),
        )
        if built.union_all:
            first = built.union_all[0].names
            for branch in built.union_all[1:]:
                if branch.names != first:
                    raise InvalidView(
                        f"unionAll branches must have the same columns in the same order: "
                        f"{first} vs {branch.names}"
                    )
        return built


def parse_view(raw: Any, *, fast: bool = True) -> View:
    """A ViewDefinition (JSON object) compiled, or InvalidView saying why not. With
    ``fast`` False every path is evaluated by fhirpathpy (the reference the direct
    walkers of ``fastpath`` are tested against)."""
    if not isinstance(raw, dict):
        raise InvalidView("a ViewDefinition must be a JSON object")
    if raw.get("resourceType", "ViewDefinition") != "ViewDefinition":
        raise InvalidView(f"expected a ViewDefinition, got {raw.get('resourceType')!r}")
    resource = raw.get("resource")
    if not isinstance(resource, str) or not _NAME.match(resource):
        raise InvalidView("ViewDefinition.resource (the FHIR resource type) is required")
    selects = raw.get("select")
    if not isinstance(selects, list) or not selects:
        raise InvalidView("ViewDefinition.select must be a non-empty array")
    constants_raw = raw.get("constant", [])
    if not isinstance(constants_raw, list):
        raise InvalidView("ViewDefinition.constant must be an array")
    constants = dict(_constant_value(c) for c in constants_raw)
    compiler = _Compiler({*constants, ROW_INDEX})
    context = resource if fast else None
    root = Select(selects=tuple(compiler.select(s, context) for s in selects))
    names = root.names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidView(f"column names must be unique in a view: {duplicates}")
    where_raw = raw.get("where", [])
    if not isinstance(where_raw, list):
        raise InvalidView("ViewDefinition.where must be an array")
    where = []
    for item in where_raw:
        if not isinstance(item, dict):
            raise InvalidView("ViewDefinition.where entries must be objects")
        path = _paths_of(item.get("path"), "where.path")
        where.append((path, compiler.path(path, "where.path", context)[0]))
    name = raw.get("name")
    return View(
        resource=resource,
        root=root,
        where=tuple(where),
        constants=constants,
        name=name if isinstance(name, str) else None,
        column_types=compiler.types,
        collection_columns=frozenset(compiler.collections),
    )
