"""SQLAlchemy engines for the two supported databases.

- SQLite (``sqlite:///path``): the embedded default. WAL journal, ``busy_timeout``,
  and every write unit of work opened with ``BEGIN IMMEDIATE`` so writers queue
  on the database lock instead of failing on a stale snapshot
  (https://www.sqlite.org/lang_transaction.html); a larger page cache and checkpoint
  interval than SQLite's defaults (https://www.sqlite.org/pragma.html#pragma_cache_size,
  https://www.sqlite.org/wal.html#ckpt), which keep ingest time linear in database size.
- PostgreSQL through psycopg 3 (``postgresql+psycopg://``), READ COMMITTED.

Bodies are (de)serialized with orjson on both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import SingletonThreadPool

from fhir_service.errors import InvalidRequest

SQLITE_BUSY_TIMEOUT_MS = 60_000
SQLITE_CACHE_KIB = 65_536
"""Page cache per SQLite connection (``PRAGMA cache_size``; SQLite's default is 2 MiB).
Writes into large indexes find their pages here instead of reading them again."""
SQLITE_SCAN_CACHE_KIB = 4_096
"""Page cache of a connection while it streams a long scan (``scan_cache``): the pages of
the bodies it reads are not read again, and a cache of ``SQLITE_CACHE_KIB`` filled by
them would grow the process by as much on a large table and not on a small one."""
_SCAN_CACHE_SET = "fhir_service_scan_cache"
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
"""WAL pages (4 KiB each, about 40 MiB) before a commit copies them into the database
file (``PRAGMA wal_autocheckpoint``; SQLite's default is 1,000). A page written by many
commits in between is copied once."""
BEGIN_OPTION = "fhir_service_sqlite_begin"
"""Execution option: how a SQLite unit begins: ``IMMEDIATE`` (the default: takes the write
lock), ``DEFERRED`` (one read snapshot) or ``AUTOCOMMIT`` (no BEGIN: each statement reads
its own snapshot, as READ COMMITTED does on PostgreSQL)."""


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def driver_execute(
    conn: Connection, sql: str, params: Sequence[Any], *, prepare: bool = False
) -> list[Any]:
    """The rows of ``sql`` (in the driver's parameter style: ``?`` on SQLite, ``%s`` on
    PostgreSQL) run on the connection's driver connection, in its current transaction,
    without SQLAlchemy's per-statement work; a driver error is raised as SQLAlchemy's own,
    as from any other statement (a lost PostgreSQL connection marked invalidated). With
    ``prepare`` psycopg prepares the statement at once (SQLite caches every statement)."""
    error: type[Exception] = conn.dialect.loaded_dbapi.Error
    driver = conn.connection.driver_connection
    options = {"prepare": True} if prepare and conn.dialect.name == "postgresql" else {}
    try:
        return driver.execute(sql, params, **options).fetchall()  # type: ignore[union-attr]
    except error as exc:
        disconnected = conn.dialect.is_disconnect(exc, driver, None)  # type: ignore[arg-type]
        if disconnected:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            sql, params, exc, error, connection_invalidated=disconnected
        ) from exc


def scan_cache(conn: Connection) -> None:
    """Give a SQLite connection the page cache of a streaming scan (``SQLITE_SCAN_CACHE_KIB``)
    until it goes back to the pool, which restores ``SQLITE_CACHE_KIB``
    (https://www.sqlite.org/pragma.html#pragma_cache_size: lowering it frees the pages
    above the new size). Other databases are left alone."""
    if conn.dialect.name != "sqlite":
        return
    driver = conn.connection.driver_connection
    driver.execute(f"PRAGMA cache_size=-{SQLITE_SCAN_CACHE_KIB}")  # type: ignore[union-attr]
    conn.connection.info[_SCAN_CACHE_SET] = True


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs; reject databases we do not support."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise InvalidRequest(f"Unsupported database '{backend}': use sqlite:/// or postgresql://")


def redacted_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(
    url: str, *, pool_size: int = 20, per_thread: bool = False, pool_timeout: float = 30.0
) -> Engine:
    """An engine for ``url`` with the settings this store relies on.

    The pool keeps ``pool_size`` connections open (and as many again under load):
    requests run on the server's worker threads, and a connection opened and closed
    per request costs more than the read it serves. With ``per_thread`` (SQLite only)
    each thread has a connection of its own instead, which it never waits for: the
    event loop's reads (``SqlStore.run_read``). A unit of work waits at most
    ``pool_timeout`` seconds for a pooled connection (then ``sqlalchemy.exc.TimeoutError``).
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
            **(
                {"poolclass": SingletonThreadPool}
                if per_thread
                else {
                    "pool_size": pool_size,
                    "max_overflow": pool_size,
                    "pool_timeout": pool_timeout,
                }
            ),
        )
        _configure_sqlite(engine)
        return engine
    engine = sa.create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
    )
    _ping_idle_connections(engine)
    _plan_each_execution(engine)
    return engine


def _plan_each_execution(engine: Engine) -> None:
    """Plan every execution of a prepared statement with its parameters and the tables'
    current sizes (``plan_cache_mode = force_custom_plan``,
    https://www.postgresql.org/docs/current/runtime-config-query.html#GUC-PLAN-CACHE-MODE).

    psycopg prepares a statement on its fifth execution; PostgreSQL may then keep one
    generic plan for the connection's lifetime, costed for the tables as they were then.
    A plan made while a table was empty, and never replanned because nothing analyzed the
    table since (autovacuum off), reads a type's every index entry once the table is large.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()


IDLE_PING_SECONDS = 1.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use."""


def _ping_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling without a round trip per checkout
    (https://docs.sqlalchemy.org/en/20/core/pooling.html#custom-legacy-pessimistic-ping):
    a connection back in use within ``IDLE_PING_SECONDS`` was alive then; one idle
    longer (the server may have restarted or closed it) answers ``SELECT 1`` first, and
    a dead one is replaced by a new connection."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in")
        if checked_in is not None and time.monotonic() - checked_in < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as exc:
            raise DisconnectionError(type(exc).__name__) from exc


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, and explicit BEGIN (IMMEDIATE for writes) instead of pysqlite's own."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        if record.info.pop(_SCAN_CACHE_SET, False) and dbapi_connection is not None:
            dbapi_connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        if mode != "AUTOCOMMIT":
            connection.exec_driver_sql(f"BEGIN {mode}")
