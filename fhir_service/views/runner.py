"""Rows of a view, one resource at a time
(https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html#processing-algorithm).

``run_view`` is a generator: it reads the next resource only when the rows of the
previous one have been taken, so memory does not grow with the number of resources.
A view whose selects only nest columns (no ``forEach``, ``forEachOrNull``, ``repeat`` or
``unionAll``) gives one row per resource: its columns are listed once, in order, and
evaluated in turn, without building the row from the parts of each select.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import product
from typing import Any

from fhir_service.errors import InvalidView
from fhir_service.views.definition import ROW_INDEX, Column, Select, View
from fhir_service.views.fastpath import walker_of
from fhir_service.views.fhirpath import Expression, to_value

Row = dict[str, Any]


def _column_value(column: Column, focus: Any, variables: Mapping[str, Any]) -> Any:
    if focus is None and ROW_INDEX not in column.path:
        values: list[Any] = []
    else:
        values = column.expression(focus, variables)
    if not column.plain:
        values = [v for v in map(to_value, values) if v is not None]
    if column.collection:
        return values
    if not values:
        return None
    if len(values) > 1:
        raise InvalidView(
            f"column {column.name!r} ({column.path}) returned {len(values)} values; "
            "set collection: true or narrow the path (spec: column.collection)"
        )
    value = values[0]
    if column.integer and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _repeat(
    paths: tuple[Expression, ...], node: Any, variables: Mapping[str, Any]
) -> Iterator[Any]:
    """The nodes reached by applying ``paths`` recursively, depth first (select.repeat)."""
    for path in paths:
        for child in path(node, variables):
            yield child
            yield from _repeat(paths, child, variables)


def _foci(select: Select, focus: Any, variables: Mapping[str, Any]) -> list[tuple[Any, int]]:
    if focus is None:
        return [(None, variables[ROW_INDEX])]
    if select.for_each is not None:
        return list(enumerate_nodes(select.for_each(focus, variables)))
    if select.for_each_or_null is not None:
        found = list(enumerate_nodes(select.for_each_or_null(focus, variables)))
        return found or [(None, 0)]
    if select.repeat:
        return list(enumerate_nodes(_repeat(select.repeat, focus, variables)))
    return [(focus, variables[ROW_INDEX])]


def enumerate_nodes(nodes: Iterable[Any]) -> Iterator[tuple[Any, int]]:
    """``(node, index)`` pairs: the index is what %rowIndex gives inside the iteration."""
    for index, node in enumerate(nodes):
        yield node, index


def _rows(select: Select, focus: Any, variables: Mapping[str, Any]) -> list[Row]:
    out: list[Row] = []
    for node, index in _foci(select, focus, variables):
        inner = variables if index == variables[ROW_INDEX] else {**variables, ROW_INDEX: index}
        own: Row = {c.name: _column_value(c, node, inner) for c in select.columns}
        if not select.selects and not select.union_all:
            out.append(own)
            continue
        parts: list[list[Row]] = [[own]]
        for child in select.selects:
            parts.append(_rows(child, node, inner))
        if select.union_all:
            # A null focus (forEachOrNull found nothing) gives one all-null row, not one per branch.
            branches = select.union_all if node is not None else select.union_all[:1]
            parts.append([row for branch in branches for row in _rows(branch, node, inner)])
        for combination in product(*parts):
            row: Row = {}
            for part in combination:
                row.update(part)
            out.append(row)
    return out


def _included(view: View, resource: Any, variables: Mapping[str, Any]) -> bool:
    for path, expression in view.where:
        result = [to_value(n) for n in expression(resource, variables)]
        if not result:
            return False
        if len(result) != 1 or not isinstance(result[0], bool):
            raise InvalidView(f"where path {path!r} must return a boolean, got {result!r}")
        if not result[0]:
            return False
    return True


Getter = Callable[[Any, Mapping[str, Any]], Any]


def _flat_columns(select: Select) -> list[Column] | None:
    """The columns of a select tree without forEach, forEachOrNull, repeat or unionAll,
    in the view's column order (one row per resource); None for any other tree."""
    if select.for_each or select.for_each_or_null or select.repeat or select.union_all:
        return None
    columns = list(select.columns)
    for child in select.selects:
        inner = _flat_columns(child)
        if inner is None:
            return None
        columns.extend(inner)
    return columns


def _getter(column: Column) -> Getter:
    """The value of ``column`` on a focus: a single plain value of a direct walker is read
    by the walker itself, without the general conversions of ``_column_value``."""
    walk = walker_of(column.expression)
    if walk is None or not column.plain or column.collection or column.integer:
        return lambda focus, variables: _column_value(column, focus, variables)

    def single(focus: Any, variables: Mapping[str, Any]) -> Any:
        if type(focus) is not dict:
            return _column_value(column, focus, variables)
        values = walk([focus])
        if not values:
            return None
        if len(values) > 1:
            return _column_value(column, focus, variables)  # raises the error
        return values[0]

    return single


def run_view(view: View, resources: Iterable[Mapping[str, Any]]) -> Iterator[Row]:
    """The rows of ``view`` over ``resources`` (those of another type are skipped), in
    the order of the resources, each row's keys in the view's column order."""
    flat = _flat_columns(view.root)
    names = [c.name for c in flat] if flat is not None else []
    getters = [_getter(c) for c in flat] if flat is not None else []
    for resource in resources:
        if resource.get("resourceType") != view.resource:
            continue
        variables = {**view.constants, ROW_INDEX: 0, "resource": resource, "rootResource": resource}
        if view.where and not _included(view, resource, variables):
            continue
        if flat is not None:  # one row per resource, its columns evaluated in turn
            yield dict(zip(names, [get(resource, variables) for get in getters], strict=True))
            continue
        # Rows are built in the view's column order (own columns, nested selects, unionAll).
        yield from _rows(view.root, resource, variables)
