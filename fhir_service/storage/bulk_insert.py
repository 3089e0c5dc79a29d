"""Many rows into one table through the driver, without SQLAlchemy's per-row parameter
work: the search index rows of a unit of work, the audit trail's batches.

SQLite: one statement whatever the row count, the rows sent as one JSON array text,
``INSERT INTO t (...) SELECT value->>0, ... FROM json_each(?)``
(https://www.sqlite.org/json1.html#jeach): the rows are parsed in C, with the interpreter
released, where an ``executemany`` binds each row's values in Python under it (27-34 µs
per audit row against 5-7 µs; on a busy server the writer thread held the interpreter
the request loop needed). Tables with a ``Float`` column keep the ``executemany`` of
tuples, which binds doubles as they are: SQLite's conversion of decimal text to a double
has not been exact on every version and platform, and a search index value must come
back exactly as extracted.
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

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

_Convert = Callable[[Any], Any]
_FROM_JSON = " FROM json_each(?)"
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
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
        rows = _converted_rows(rows, converters)
    if sql.endswith(_FROM_JSON):
        # A value orjson would write in another form than the driver (a datetime without
        # its bind processor) raises instead.
        array = orjson.dumps(rows, option=_STRICT).decode()
        if "\\u0000" not in array:  # SQLite's JSON text ends a string at a NUL
            conn.exec_driver_sql(sql, (array,))
            return
        sql = _values_sql(table, columns)
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
            converters = tuple(_processor(c, dialect) for c in columns)
            if any(isinstance(c.type, sa.Float) for c in columns):
                sql = _values_sql(table, names)
            else:
                values = ", ".join(f"value->>{i}" for i in range(len(columns)))
                sql = into + f"SELECT {values}{_FROM_JSON}"
        plan = _PLANS[key] = (sql, converters)
    return plan


def _values_sql(table: sa.Table, names: Sequence[str]) -> str:
    """SQLite's insert of one row of bound values, for ``executemany``."""
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _processor(column: sa.Column[Any], dialect: Dialect) -> _Convert | None:
    process: _Convert | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process


def _array_converter(column: sa.Column[Any], dialect: Dialect) -> _Convert | None:
    process = _processor(column, dialect)
    if process is not None:
        return process
    python_type = column.type.python_type
    return python_type if python_type in (float, int, str) else None


def _converted_rows(
    rows: list[tuple[Any, ...]], converters: tuple[_Convert | None, ...]
) -> list[tuple[Any, ...]]:
    """The rows with the values of the columns that have a converter converted (None
    stays None); the other columns' values are not visited."""
    which = [(i, convert) for i, convert in enumerate(converters) if convert is not None]
    out: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for i, convert in which:
            value = values[i]
            if value is not None:
                values[i] = convert(value)
        out.append(tuple(values))
    return out


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
