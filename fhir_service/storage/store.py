"""``SqlStore``: units of work on one database (https://hl7.org/fhir/R4/http.html#transaction).

The transaction boundary is the request: ``begin(scope)`` opens one database
transaction, hands out a repository bound to it and to the caller's access scope,
commits when the block ends and rolls back on any exception, so every write is
all-or-nothing. No unit of work opens without a scope; ``scoped(scope)`` is the store as
one caller sees it (the ``Store`` protocol the api layer hands its routes).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from fhir_service.fhir.validation_pool import ValidationPool, shared_pool
from fhir_service.storage.access import AccessScope
from fhir_service.storage.checkpoint import Checkpointer
from fhir_service.storage.engine import BEGIN_OPTION, SQLITE_BUSY_TIMEOUT_MS, create_engine
from fhir_service.storage.migrate import check_schema_current
from fhir_service.storage.repository import BeforeWrite, Journal, Repository, Store
from fhir_service.storage.sql_repository import SqlRepository, utc_now

T = TypeVar("T")

READ_THREADS = 4
"""At most this many threads run a PostgreSQL store's ``run_read`` work, each on a pooled
connection it keeps; never more than half the pool (``read_threads``)."""
_AUTOCOMMIT = {
    "sqlite": {BEGIN_OPTION: "AUTOCOMMIT"},
    "postgresql": {"isolation_level": "AUTOCOMMIT"},
}


def read_threads(engine: Engine) -> int:
    """The threads for ``run_read`` on ``engine``: ``READ_THREADS``, at most half its
    pool's connections (at least one), so that writes and searches always find some."""
    size = getattr(engine.pool, "size", None)
    pooled = size() if callable(size) else 2
    return max(1, min(READ_THREADS, pooled // 2))


_NEVER = 2**31
"""psycopg's ``prepare_threshold`` that no statement reaches (None would refuse the
explicit ``prepare=True`` too)."""


def _plan_reads_by_id_once(conn: Connection) -> None:
    """Let PostgreSQL keep one plan of the read by id on a kept read connection, where
    every other connection plans each execution anew (``force_custom_plan``, engine.py):
    planning was a fifth of what a read by id cost the server, on the cores our
    processes need. Only the read by id is prepared (``driver_execute(prepare=True)``;
    psycopg prepares nothing else on this connection), and sequential scans are off on
    it, so the one plan kept is the primary-key lookup whatever the tables' statistics
    were when it was made; vreads and compartment checks stay planned per execution."""
    driver = conn.connection.driver_connection
    driver.prepare_threshold = _NEVER  # type: ignore[union-attr]
    conn.exec_driver_sql("SET plan_cache_mode = auto")
    conn.exec_driver_sql("SET enable_seqscan = off")


def _discard(conn: Connection) -> None:
    """Close a kept connection for good: its session settings must not reach the pool."""
    if conn.dialect.name == "postgresql" and not conn.invalidated:
        conn.invalidate()
    conn.close()


class SqlStore:
    """The resource store on SQLite or PostgreSQL.

    On SQLite, ``open`` adds a second engine with one connection per thread for the short
    reads that async routes await (``run_read``): a read by id (tens of microseconds from
    SQLite's page cache) runs on the event loop on a connection of the loop's own instead
    of paying a thread pool round trip that costs more than the read. On a SQLite file it
    also starts the ``Checkpointer`` that copies the write-ahead log into the database
    after write commits, beside the requests; ``close`` stops it.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utc_now,
        read_engine: Engine | None = None,
        validation_pool: ValidationPool | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._read_engine = read_engine
        self.validation_pool = validation_pool
        self._kept = threading.local()
        self._kept_lock = threading.Lock()
        self._kept_connections: set[Connection] = set()
        self._readers = ThreadPoolExecutor(read_threads(engine), thread_name_prefix="fhir-read")
        self._checkpointer = checkpointer

    @classmethod
    def open(
        cls,
        url: str,
        *,
        check_schema: bool = True,
        pool_size: int = 20,
        pool_timeout: float = 30.0,
        validation_workers: int = 0,
    ) -> SqlStore:
        """A store on ``url``; with ``check_schema`` it refuses a database that is behind.
        With ``validation_workers``, transactions validate the resources they create in
        that many worker processes (``shared_pool``), beside their SQL work."""
        pool = shared_pool(validation_workers) if validation_workers > 0 else None
        engine = create_engine(url, pool_size=pool_size, pool_timeout=pool_timeout)
        if check_schema:
            try:
                check_schema_current(engine)
            except BaseException:
                engine.dispose()
                raise
        if engine.dialect.name == "sqlite":
            read_engine = create_engine(url, per_thread=True)
            path = engine.url.database
            checkpointer = (
                Checkpointer(path, SQLITE_BUSY_TIMEOUT_MS) if path and path != ":memory:" else None
            )
            return cls(
                engine, read_engine=read_engine, validation_pool=pool, checkpointer=checkpointer
            )
        return cls(engine, validation_pool=pool)

    def check_schema(self) -> None:
        """Raise ``SchemaNotCurrent`` unless the database is at the shipped head revision."""
        check_schema_current(self.engine)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def scoped(self, scope: AccessScope, journal: Journal | None = None) -> ScopedStore:
        """This store as a caller with ``scope`` sees it; ``journal`` records what it touches."""
        return ScopedStore(self, scope, journal)

    def begin(
        self,
        scope: AccessScope,
        *,
        readonly: bool = False,
        before_write: BeforeWrite | None = None,
        journal: Journal | None = None,
    ) -> AbstractContextManager[SqlRepository]:
        """One unit of work; a write unit is one database transaction, which on SQLite
        takes the write lock up front. ``before_write`` sees every resource version stored
        (see ``BeforeWrite``).

        A ``readonly`` unit runs in autocommit on both databases: each statement reads its
        own committed snapshot, as under PostgreSQL's READ COMMITTED inside a transaction
        too, so BEGIN and COMMIT would only cost two statements (a fifth of a read by id).
        Work that needs one snapshot across statements (``$export``) begins its own."""
        return self._unit(scope, journal, readonly, before_write)

    async def run_read(
        self, scope: AccessScope, work: Callable[[Repository], T], journal: Journal | None = None
    ) -> T:
        """``work`` on a readonly unit, awaited, on a connection the running thread keeps:
        with a read engine (SQLite) right here, on the event loop; else (PostgreSQL, whose
        every statement is a network round trip that must not hold the event loop) in one
        of the store's ``read_threads``."""
        if self._read_engine is not None:
            return self._kept_read(self._read_engine, scope, journal, work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._readers, self._kept_read, self.engine, scope, journal, work
        )

    def _kept_read(
        self,
        engine: Engine,
        scope: AccessScope,
        journal: Journal | None,
        work: Callable[[Repository], T],
    ) -> T:
        """``work`` on this thread's readonly repository on ``engine``, opened on first use
        and kept: in autocommit no transaction outlives a statement, so only the connection
        stays (a unit per read cost an eighth of a read by id on SQLite; a pool checkout
        and return per read a third of one on PostgreSQL). A database error discards the
        connection; a read that found it lost (the server restarted, say) runs once more
        on a new one, and a later read opens one."""
        for attempt in (1, 2):
            conn, repo = self._kept_unit(engine)
            repo.scope, repo.journal = scope, journal
            try:
                return work(repo)
            except SQLAlchemyError as exc:
                del self._kept.unit
                with self._kept_lock:
                    self._kept_connections.discard(conn)
                _discard(conn)
                lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
                if attempt == 2 or not lost:
                    raise
            finally:
                repo.scope, repo.journal = AccessScope.of(()), None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _kept_unit(self, engine: Engine) -> tuple[Connection, SqlRepository]:
        """This thread's kept connection on ``engine`` and its repository."""
        unit: tuple[Connection, SqlRepository] | None = getattr(self._kept, "unit", None)
        if unit is None:
            conn = engine.connect().execution_options(**_AUTOCOMMIT[engine.dialect.name])
            if engine.dialect.name == "postgresql":
                _plan_reads_by_id_once(conn)
            repo = SqlRepository(conn, scope=AccessScope.of(()), clock=self._clock)
            unit = self._kept.unit = (conn, repo)
            with self._kept_lock:
                self._kept_connections.add(conn)
        return unit

    @contextmanager
    def _unit(
        self,
        scope: AccessScope,
        journal: Journal | None,
        readonly: bool,
        before_write: BeforeWrite | None,
    ) -> Iterator[SqlRepository]:
        if not isinstance(scope, AccessScope):
            raise TypeError("a unit of work needs an AccessScope")
        with self.engine.connect() as conn:
            if readonly and conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            elif readonly:
                conn = conn.execution_options(**{BEGIN_OPTION: "AUTOCOMMIT"})
            with conn.begin():
                yield SqlRepository(
                    conn,
                    scope=scope,
                    journal=journal,
                    clock=self._clock,
                    before_write=before_write,
                    validation_pool=None if readonly else self.validation_pool,
                )
        if not readonly and self._checkpointer is not None:
            self._checkpointer.committed()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._readers.shutdown(wait=True)
        with self._kept_lock:
            kept, self._kept_connections = self._kept_connections, set()
        for conn in kept:
            _discard(conn)
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()


class ScopedStore:
    """A ``SqlStore`` as one caller sees it: every unit of work carries its scope."""

    def __init__(self, store: SqlStore, scope: AccessScope, journal: Journal | None) -> None:
        self._store = store
        self.scope = scope
        self._journal = journal

    def begin(
        self, *, readonly: bool = False, before_write: BeforeWrite | None = None
    ) -> AbstractContextManager[SqlRepository]:
        return self._store.begin(
            self.scope, readonly=readonly, before_write=before_write, journal=self._journal
        )

    async def run_read(self, work: Callable[[Repository], T]) -> T:
        return await self._store.run_read(self.scope, work, self._journal)

    def close(self) -> None:
        """The store's owner closes it; a caller's view has nothing of its own to close."""


def as_protocols(store: ScopedStore, repo: SqlRepository) -> tuple[Store, Repository]:
    """The SQL classes seen through the protocols (mypy checks that they conform)."""
    return store, repo
