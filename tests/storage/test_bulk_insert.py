"""``storage.bulk_insert.insert_many`` on both databases: what goes in comes back, with
the values a naive array would refuse or change (ints among floats, NULLs, quotes,
braces, backslashes, commas, non-ASCII text, timestamps through their bind processor)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from fhir_service.storage import create_engine
from fhir_service.storage.bulk_insert import insert_many
from fhir_service.storage.tables import UtcDateTime

_meta = sa.MetaData()
_table = sa.Table(
    "bulk_insert_probe",
    _meta,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
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


def test_rows_come_back_as_written(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        _meta.drop_all(engine)
        _meta.create_all(engine)
        with engine.begin() as conn:
            insert_many(conn, _table, COLUMNS, ROWS)
            insert_many(conn, _table, COLUMNS, [])  # nothing to insert: no statement
        with engine.connect() as conn:
            got = conn.execute(
                sa.select(*(_table.c[name] for name in COLUMNS)).order_by(_table.c.seq)
            ).all()
        assert [tuple(row) for row in got] == [
            (name, None if value is None else float(value), count, at, note)
            for name, value, count, at, note in ROWS
        ]
        assert isinstance(got[0][1], float)
    finally:
        _meta.drop_all(engine)
        engine.dispose()


_text_meta = sa.MetaData()
_text_table = sa.Table(
    "bulk_insert_text_probe",
    _text_meta,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
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
    engine = create_engine(database_url)
    try:
        _text_meta.drop_all(engine)
        _text_meta.create_all(engine)
        with engine.begin() as conn:
            insert_many(conn, _text_table, TEXT_COLUMNS, TEXT_ROWS)
            insert_many(conn, _text_table, TEXT_COLUMNS, TEXT_ROWS[:1])  # a second batch
            if engine.dialect.name == "sqlite":
                insert_many(conn, _text_table, TEXT_COLUMNS, NUL_ROWS)
        with engine.connect() as conn:
            got = conn.execute(
                sa.select(*(_text_table.c[name] for name in TEXT_COLUMNS)).order_by(
                    _text_table.c.seq
                )
            ).all()
        nul_rows = NUL_ROWS if engine.dialect.name == "sqlite" else []
        assert [tuple(row) for row in got] == [*TEXT_ROWS, TEXT_ROWS[0], *nul_rows]
    finally:
        _text_meta.drop_all(engine)
        engine.dispose()
