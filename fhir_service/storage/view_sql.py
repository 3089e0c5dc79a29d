"""ViewDefinitions run inside PostgreSQL: a view plan compiled into one SELECT over the
stored JSONB (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#processing-algorithm).

A plan is the part of a view that SQL can express exactly (``fhir_service.views.sql_plan``
builds it): element paths become SQL/JSON path queries in lax mode, whose automatic
unwrapping of arrays gives FHIRPath's flattening of collections
(https://www.postgresql.org/docs/current/functions-json.html#FUNCTIONS-SQLJSON-PATH);
``forEach`` and ``forEachOrNull`` become ``[LEFT] JOIN LATERAL jsonb_array_elements(...)
WITH ORDINALITY``; nested selects are further lateral joins (their cross product);
``where`` becomes the query's WHERE. Every column comes back as the JSON array of its
values (NULL where the focus is null), so the caller applies the column rules
(collection, at most one value) exactly as the Python runner does.

Rows come in the Python runner's order: resources by id, then each iteration's index,
outer before inner, in the order the selects are written.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, JSONPATH, aggregate_order_by

from fhir_service.storage.repository import Repository
from fhir_service.storage.sql_repository import SqlRepository
from fhir_service.storage.tables import resource
from fhir_service.storage.view_scan import current_resources

# Path steps (FHIRPath functions of the specification's required subset).


@dataclass(frozen=True)
class Member:
    """An element by its JSON name (a choice element with its type suffix)."""

    key: str


@dataclass(frozen=True)
class Choice:
    """A choice element without ``ofType``: the value of whichever of its keys is present."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class Extension:
    """``extension('url')``."""

    url: str


@dataclass(frozen=True)
class First:
    """``first()``."""


@dataclass(frozen=True)
class Exists:
    """``exists()``."""


@dataclass(frozen=True)
class Empty:
    """``empty()``."""


@dataclass(frozen=True)
class Equals:
    """``= literal``: empty when the collection is, else whether it is exactly [literal]."""

    literal: str | bool | int


@dataclass(frozen=True)
class Where:
    """``where(path = literal)``: the items whose path gives exactly [literal]."""

    path: tuple[Step, ...]
    literal: str | bool | int


@dataclass(frozen=True)
class Join:
    """``join('separator')`` of strings."""

    separator: str


@dataclass(frozen=True)
class ResourceKey:
    """``getResourceKey()``: the resource's id."""


@dataclass(frozen=True)
class ReferenceKey:
    """``getReferenceKey([type])``: the id part of each literal reference (of that type)."""

    type: str | None


Step = (
    Member
    | Choice
    | Extension
    | First
    | Exists
    | Empty
    | Equals
    | Where
    | Join
    | ResourceKey
    | ReferenceKey
)
Path = tuple[Step, ...]


@dataclass(frozen=True)
class PlanColumn:
    """A column: its name and path."""

    name: str
    path: Path


@dataclass(frozen=True)
class PlanSelect:
    """A select: its columns, then its nested selects, then its ``union_all`` branches;
    ``for_each`` iterates (with ``or_null``: one row of nulls when the iteration finds
    nothing)."""

    columns: tuple[PlanColumn, ...] = ()
    selects: tuple[PlanSelect, ...] = ()
    union_all: tuple[PlanSelect, ...] = ()
    for_each: Path | None = None
    or_null: bool = False


@dataclass(frozen=True)
class WhereClause:
    """A view's ``where``: true when every (``any_of`` False) or some (True) path gives
    exactly [true]."""

    paths: tuple[Path, ...]
    any_of: bool = False


@dataclass(frozen=True)
class ViewPlan:
    """A view SQL can run: its resource type, root select and where clauses."""

    resource: str
    root: PlanSelect
    where: tuple[WhereClause, ...] = ()

    @property
    def columns(self) -> list[str]:
        """The column names in row order."""
        out: list[str] = []

        def walk(select: PlanSelect) -> None:
            out.extend(c.name for c in select.columns)
            for child in select.selects:
                walk(child)
            if select.union_all:
                walk(select.union_all[0])

        walk(self.root)
        return out


_EMPTY = sa.literal_column("'[]'::jsonb", JSONB)
_TRUE = sa.literal_column("'[true]'::jsonb", JSONB)
_NOT_NULL = ' ? (@.type() != "null")'


def _quoted(text: str) -> str:
    """A SQL/JSON path string literal (JSON string syntax)."""
    return json.dumps(text)


def _jsonb(value: Any) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(json.dumps(value)), JSONB)


class _Paths:
    """Compiles paths to JSONB array expressions over a focus."""

    def collection(self, focus: sa.ColumnElement[Any], path: Path) -> sa.ColumnElement[Any]:
        current = focus
        pending = ""
        for step in path:
            if isinstance(step, Member):
                pending += f".{_quoted(step.key)}[*]{_NOT_NULL}"
                continue
            if isinstance(step, Choice):
                keys = " || ".join(f"@.key == {_quoted(key)}" for key in step.keys)
                pending += f' ? (@.type() == "object").keyvalue() ? ({keys}).value[*]{_NOT_NULL}'
                continue
            if isinstance(step, Extension):
                pending += f'."extension"[*] ? (@."url" == {_quoted(step.url)})'
                continue
            if isinstance(step, ResourceKey):
                pending += ' ? (@.type() == "object")."id" ? (@.type() == "string")'
                continue
            if pending or current is focus:
                current = self._query(current, pending)
            pending = ""
            current = self._function(current, step)
        return self._query(current, pending) if pending or current is focus else current

    @staticmethod
    def _query(current: sa.ColumnElement[Any], pending: str) -> sa.ColumnElement[Any]:
        path = sa.cast(sa.literal("lax $[*]" + pending), JSONPATH)
        return sa.func.jsonb_path_query_array(current, path, type_=JSONB)

    def _function(self, items: sa.ColumnElement[Any], step: Step) -> sa.ColumnElement[Any]:
        if isinstance(step, First):
            return sa.func.jsonb_path_query_array(
                items, sa.cast(sa.literal("lax $[0]"), JSONPATH), type_=JSONB
            )
        if isinstance(step, Exists):
            return sa.func.jsonb_build_array(items != _EMPTY, type_=JSONB)
        if isinstance(step, Empty):
            return sa.func.jsonb_build_array(items == _EMPTY, type_=JSONB)
        if isinstance(step, Equals):
            return sa.case(
                (items == _EMPTY, _EMPTY),
                else_=sa.func.jsonb_build_array(items == _jsonb([step.literal]), type_=JSONB),
            )
        element = (
            sa.func.jsonb_array_elements(items)
            .table_valued("value", with_ordinality="ord")
            .render_derived()
            .alias()
        )
        value, ord_ = element.c.value, element.c.ord
        if isinstance(step, Where):
            kept = sa.func.jsonb_agg(aggregate_order_by(value, ord_), type_=JSONB)
            return (
                sa.select(sa.func.coalesce(kept, _EMPTY))
                .select_from(element)
                .where(self.collection(value, step.path) == _jsonb([step.literal]))
                .scalar_subquery()
            )
        if isinstance(step, Join):
            text = value.op("#>>", return_type=sa.Text)(sa.literal_column("'{}'::text[]"))
            joined = sa.func.string_agg(text, aggregate_order_by(sa.literal(step.separator), ord_))
            return sa.func.jsonb_build_array(
                sa.select(sa.func.coalesce(joined, "")).select_from(element).scalar_subquery(),
                type_=JSONB,
            )
        if isinstance(step, ReferenceKey):
            reference = value.op("->>", return_type=sa.Text)("reference")
            parts = sa.func.regexp_match(
                sa.func.rtrim(sa.func.split_part(reference, "/_history/", 1), "/"),
                "([^/]*)/([^/]*)$",
                type_=ARRAY(sa.Text),
            )
            conditions = [
                sa.func.jsonb_typeof(value.op("->", return_type=JSONB)("reference")) == "string",
                sa.not_(reference.startswith("#")),
                parts.is_not(None),
            ]
            if step.type is not None:
                conditions.append(parts[1] == step.type)
            keys = sa.func.jsonb_agg(aggregate_order_by(sa.func.to_jsonb(parts[2]), ord_))
            return (
                sa.select(sa.func.coalesce(keys, _EMPTY))
                .select_from(element)
                .where(*conditions)
                .scalar_subquery()
            )
        raise TypeError(f"not a path step: {step!r}")


@dataclass
class _Query:
    """The FROM clause, columns, order and conditions built while walking the selects."""

    source: sa.FromClause
    names: Iterator[int]
    columns: list[sa.ColumnElement[Any]] = field(default_factory=list)
    order: list[sa.ColumnElement[Any]] = field(default_factory=list)
    conditions: list[sa.ColumnElement[bool]] = field(default_factory=list)

    def add(
        self, paths: _Paths, select: PlanSelect, focus: sa.ColumnElement[Any], nullable: bool
    ) -> None:
        if select.for_each is not None:
            items = sa.func.jsonb_array_elements(paths.collection(focus, select.for_each))
            node = (
                items.table_valued("value", with_ordinality="ord")
                .render_derived()
                .lateral(f"each{next(self.names)}")
            )
            outer = select.or_null or nullable
            self.source = self.source.join(node, sa.true(), isouter=outer)
            if outer and not select.or_null:
                # Under a null focus one row of nulls (as the runner does); otherwise an
                # iteration that finds nothing drops the row.
                self.conditions.append(sa.or_(focus.is_(None), node.c.ord.is_not(None)))
            self.order.append(node.c.ord)
            focus, nullable = node.c.value, outer
        for column in select.columns:
            values = paths.collection(focus, column.path)
            if nullable:
                values = sa.case((focus.is_(None), sa.null()), else_=values)
            self.columns.append(values.label(f"c{len(self.columns)}"))
        for child in select.selects:
            self.add(paths, child, focus, nullable)
        if select.union_all:
            if nullable:
                raise TypeError("unionAll under a focus that may be null is not planned")
            self._union(paths, select.union_all, focus)

    def _union(
        self, paths: _Paths, branches: tuple[PlanSelect, ...], focus: sa.ColumnElement[Any]
    ) -> None:
        """unionAll: each branch's rows over the focus, branch after branch, as one lateral
        subquery (its column order the branches share; its order the branch number, then
        the branch's own iteration indexes)."""
        one = sa.select(sa.literal(1).label("one")).subquery(f"one{next(self.names)}")
        parts = []
        for branch in branches:
            part = _Query(one, self.names)
            part.add(paths, branch, focus, False)
            parts.append(part)
        width = max(len(part.order) for part in parts)
        selects = []
        for number, part in enumerate(parts):
            padding = [sa.null()] * (width - len(part.order))
            order = [
                sa.cast(o, sa.BigInteger).label(f"o{i}")
                for i, o in enumerate([*part.order, *padding])
            ]
            selects.append(
                sa.select(*part.columns, sa.literal(number).label("branch"), *order)
                .select_from(part.source)
                .where(*part.conditions)
            )
        union = sa.union_all(*selects).lateral(f"union{next(self.names)}")
        self.source = self.source.join(union, sa.true())
        for i in range(len(parts[0].columns)):
            self.columns.append(union.c[f"c{i}"].label(f"c{len(self.columns)}"))
        self.order.extend([union.c.branch, *(union.c[f"o{i}"] for i in range(width))])


def _statement(plan: ViewPlan, source: sa.Subquery, key: sa.ColumnElement[Any]) -> sa.Select[Any]:
    paths = _Paths()
    query = _Query(source, itertools.count(1))
    query.add(paths, plan.root, source.c.body, False)
    stmt = sa.select(*query.columns).select_from(query.source)
    for clause in plan.where:
        tests = [paths.collection(source.c.body, p) == _TRUE for p in clause.paths]
        stmt = stmt.where(sa.or_(*tests) if clause.any_of else sa.and_(*tests))
    if query.conditions:
        stmt = stmt.where(*query.conditions)
    return stmt.order_by(key, *query.order)


def runs_in_database(repo: Repository) -> bool:
    """Whether ``repo`` reads a PostgreSQL database, where plans run."""
    return isinstance(repo, SqlRepository) and repo.connection.dialect.name == "postgresql"


def view_rows(
    repo: Repository,
    plan: ViewPlan,
    *,
    patient: str | None = None,
    since: datetime | None = None,
    batch: int = 1000,
) -> Iterator[Sequence[Any]]:
    """The rows of ``plan`` over the current stored ``plan.resource`` resources the unit's
    scope may search (``patient``: only that compartment; ``since``: changed after), each a
    tuple of JSON arrays (or None) in column order. Resources are taken ``batch`` at a
    time in id order (keyset pages, so a readonly autocommit unit streams too)."""
    if not runs_in_database(repo) or not isinstance(repo, SqlRepository):
        raise TypeError("view_rows needs a PostgreSQL SqlRepository unit of work")
    repo.require(plan.resource, "s")
    after: str | None = None
    while True:
        page = current_resources(repo, plan.resource, patient, since)
        if after is not None:
            page = page.where(resource.c.id > after)
        source = page.order_by(resource.c.id).limit(batch).subquery("r")
        last = repo.connection.execute(sa.select(sa.func.max(source.c.id))).scalar()
        if last is None:
            return
        for row in repo.connection.execute(_statement(plan, source, source.c.id)):
            yield tuple(row)
        after = last


def view_rows_over(
    connection: sa.Connection, plan: ViewPlan, resources: Sequence[Any]
) -> list[Sequence[Any]]:
    """The rows of ``plan`` over the given resources (JSON objects, in their order), run
    in PostgreSQL without storing them."""
    items = (
        sa.func.jsonb_array_elements(_jsonb(list(resources)))
        .table_valued("value", with_ordinality="ord")
        .render_derived()
        .alias("input")
    )
    source = (
        sa.select(items.c.value.label("body"), items.c.ord.label("ord"))
        .where(items.c.value.op("->>", return_type=sa.Text)("resourceType") == plan.resource)
        .subquery("r")
    )
    return [tuple(row) for row in connection.execute(_statement(plan, source, source.c.ord))]
