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
