"""``storage.bulk_insert.insert_many`` on both databases: what goes in comes back, with
the values a naive array would refuse or change (ints among floats, NULLs, quotes,
braces, backslashes, commas, non-ASCII text, timestamps through their bind processor)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from fhir_service.storage import create_engine
from fhir_service.storage.bulk_insert import insert_many
from fhir_service.storage.tables import UtcDateTime

_meta = sa.MetaData()


def _probe(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A table of ``_meta`` with an autoincrement ``seq`` (the insert order) and ``columns``."""
    seq = sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True)
    return sa.Table(name, _meta, seq, *columns)


_table = _probe(
    "bulk_insert_probe",
    sa.Column("name", sa.String(64)),
    sa.Column("value", sa.Float),
    sa.Column("count", sa.Integer),
    sa.Column("at", UtcDateTime()),
    sa.Column("note", sa.Text),
)
COLUMNS = ("name", "value", "count", "at", "note")
ROWS = [
    ('a,b{c}"q\\', 1, 7, datetime(2020, 1, 1, 12, 0, tzinfo=UTC), None),
    ("ü'x", 2.5, None, None, "NULL"),
    (None, None, 0, datetime(2021, 6, 30, 23, 59, 59, 123456, tzinfo=UTC), ""),
]


def _round_trip(
    database_url: str, table: sa.Table, columns: tuple[str, ...], batches: Callable[[str], list]
) -> list[tuple[Any, ...]]:
    """The rows of ``table`` (``columns``, in insert order) after inserting each batch of
    ``batches(dialect name)`` with ``insert_many`` in one transaction."""
    engine = create_engine(database_url)
    try:
        _meta.drop_all(engine)
        _meta.create_all(engine)
        with engine.begin() as conn:
            for batch in batches(engine.dialect.name):
                insert_many(conn, table, columns, batch)
        with engine.connect() as conn:
            query = sa.select(*(table.c[name] for name in columns)).order_by(table.c.seq)
            return [tuple(row) for row in conn.execute(query)]
    finally:
        _meta.drop_all(engine)
        engine.dispose()


def test_rows_come_back_as_written(database_url: str) -> None:
    # An empty batch: nothing to insert, no statement.
    got = _round_trip(database_url, _table, COLUMNS, lambda _dialect: [ROWS, []])
    assert got == [
        (name, None if value is None else float(value), count, at, note)
        for name, value, count, at, note in ROWS
    ]
    assert isinstance(got[0][1], float)


_text_table = _probe(
    "bulk_insert_text_probe",
    sa.Column("name", sa.String(64)),
    sa.Column("count", sa.BigInteger),
    sa.Column("flag", sa.Boolean),
    sa.Column("at", UtcDateTime()),
    sa.Column("note", sa.Text),
)
TEXT_COLUMNS = ("name", "count", "flag", "at", "note")
# Text that JSON escapes or that looks like another type, integers at the edges of 64
# bits, booleans, NULLs: a table without a Float column goes to SQLite as one JSON array.
TEXT_ROWS = [
    ('a,b{c}"q\\', 7, True, datetime(2020, 1, 1, 12, 0, tzinfo=UTC), None),
    ("ü'x\n\t\u2028😀", -(2**63), False, None, "NULL"),
    ("007", 2**63 - 1, None, datetime(2021, 6, 30, 23, 59, 59, 123456, tzinfo=UTC), ""),
    ("1.50", 0, True, None, "[1, 2]"),
    ("\x01\x1f control", None, False, None, "{}"),
]
# SQLite keeps a NUL in text (PostgreSQL refuses one), and its JSON functions end a
# string there: such a batch goes row by row.
NUL_ROWS = [("a\x00b", 1, True, None, "\x00")]


def test_rows_without_floats_come_back_as_written(database_url: str) -> None:
    def batches(dialect: str) -> list:
        return [TEXT_ROWS, TEXT_ROWS[:1], *([NUL_ROWS] if dialect == "sqlite" else [])]

    got = _round_trip(database_url, _text_table, TEXT_COLUMNS, batches)
    nul_rows = NUL_ROWS if database_url.startswith("sqlite") else []
    assert got == [*TEXT_ROWS, TEXT_ROWS[0], *nul_rows]
