"""Many rows into one table through the driver, without SQLAlchemy's per-row parameter
work: the search index rows of a unit of work, the audit trail's batches.

SQLite: one ``executemany`` of tuples (SQLite runs it in process, row by row, cheaply).
PostgreSQL: one statement whatever the row count, each column sent as one array,
``INSERT INTO t (...) SELECT * FROM unnest(%s::type[], ...)``
(https://www.postgresql.org/docs/current/functions-array.html): an ``executemany`` there
is one statement per row through the driver's pipeline, whose work per row is Python
(32-34 µs of CPU per row for 60 index rows, against 10-11 µs as arrays).
Only the columns with a bind processor (dates) pass through it; on PostgreSQL every
other value becomes the one Python type its array needs (an array cannot mix ints and
floats). The statement and the converters are built once per table and columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

_Convert = Callable[[Any], Any]
_PLANS: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[_Convert | None, ...]]] = {}


def insert_many(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the caller's
    transaction."""
    if not rows:
        return
    sql, converters = _plan(conn.dialect, table, tuple(columns))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(sql, _arrays(rows, converters))
        return
    if any(converters):
        rows = [_converted(row, converters) for row in rows]
    conn.exec_driver_sql(sql, rows)


def _plan(
    dialect: Dialect, table: sa.Table, names: tuple[str, ...]
) -> tuple[str, tuple[_Convert | None, ...]]:
    key = (dialect.name, table.name, names)
    plan = _PLANS.get(key)
    if plan is None:
        columns = [table.c[name] for name in names]
        into = f"INSERT INTO {table.name} ({', '.join(names)}) "
        if dialect.name == "postgresql":
            # The arrays' element types without the columns' collations (the rows take
            # the column's collation as they are inserted).
            types = [re.sub(r' COLLATE "[^"]*"', "", c.type.compile(dialect)) for c in columns]
            sql = into + f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in types)})"
            converters = tuple(_array_converter(c, dialect) for c in columns)
        else:
            marker = "?" if dialect.paramstyle == "qmark" else "%s"
            sql = into + f"VALUES ({', '.join([marker] * len(columns))})"
            converters = tuple(_processor(c, dialect) for c in columns)
        plan = _PLANS[key] = (sql, converters)
    return plan


def _processor(column: sa.Column[Any], dialect: Dialect) -> _Convert | None:
    process: _Convert | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process


def _array_converter(column: sa.Column[Any], dialect: Dialect) -> _Convert | None:
    process = _processor(column, dialect)
    if process is not None:
        return process
    python_type = column.type.python_type
    return python_type if python_type in (float, int, str) else None


def _converted(row: tuple[Any, ...], converters: tuple[_Convert | None, ...]) -> tuple[Any, ...]:
    return tuple(
        value if convert is None or value is None else convert(value)
        for value, convert in zip(row, converters, strict=True)
    )


def _arrays(
    rows: list[tuple[Any, ...]], converters: tuple[_Convert | None, ...]
) -> tuple[list[Any], ...]:
    """The rows as one list per column, converted (None stays None): the parameters of
    one execution (a tuple; a list would be taken for many)."""
    return tuple(
        list(values)
        if convert is None
        else [None if value is None else convert(value) for value in values]
        for values, convert in zip(zip(*rows, strict=True), converters, strict=True)
    )
