"""SQLAlchemy engines for the two supported databases.

- SQLite (``sqlite:///path``): the embedded default. WAL journal, ``busy_timeout``,
  and every write unit of work opened with ``BEGIN IMMEDIATE`` so writers queue
  on the database lock instead of failing on a stale snapshot
  (https://www.sqlite.org/lang_transaction.html).
- PostgreSQL through psycopg 3 (``postgresql+psycopg://``), READ COMMITTED.

Bodies are (de)serialized with orjson on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from fhir_service.errors import InvalidRequest

SQLITE_BUSY_TIMEOUT_MS = 60_000
BEGIN_OPTION = "fhir_service_sqlite_begin"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs; reject databases we do not support."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise InvalidRequest(f"Unsupported database '{backend}': use sqlite:/// or postgresql://")


def create_engine(url: str, *, pool_size: int = 20) -> Engine:
    """An engine for ``url`` with the settings this store relies on.

    The pool keeps ``pool_size`` connections open (and as many again under load):
    requests run on the server's worker threads, and a connection opened and closed
    per request costs more than the read it serves.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
    )


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, and explicit BEGIN (IMMEDIATE for writes) instead of pysqlite's own."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")
