"""``SqlStore``: units of work on one database (https://hl7.org/fhir/R4/http.html#transaction).

The transaction boundary is the request: ``begin()`` opens one database
transaction, hands out a repository bound to it, commits when the block ends
and rolls back on any exception, so every write is all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.engine import Engine

from fhir_service.storage.engine import BEGIN_OPTION, create_engine
from fhir_service.storage.migrate import check_schema_current
from fhir_service.storage.repository import BeforeWrite, Repository, Store
from fhir_service.storage.sql_repository import SqlRepository, utc_now


class SqlStore:
    """The resource store on SQLite or PostgreSQL.

    On SQLite, ``open`` adds a second engine with one connection per thread: a read by
    id (tens of microseconds from SQLite's page cache) then runs on the event loop on a
    connection of the loop's own, which it never waits for, instead of paying a thread
    pool round trip that costs more than the read (``inline_reads``, ``begin(inline=True)``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utc_now,
        inline_engine: Engine | None = None,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._inline_engine = inline_engine

    @classmethod
    def open(cls, url: str, *, check_schema: bool = True, pool_size: int = 20) -> SqlStore:
        """A store on ``url``; with ``check_schema`` it refuses a database that is behind."""
        engine = create_engine(url, pool_size=pool_size)
        if check_schema:
            try:
                check_schema_current(engine)
            except BaseException:
                engine.dispose()
                raise
        inline = create_engine(url, per_thread=True) if engine.dialect.name == "sqlite" else None
        return cls(engine, inline_engine=inline)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def inline_reads(self) -> bool:
        """Whether ``begin(readonly=True, inline=True)`` may run on the event loop."""
        return self._inline_engine is not None

    @contextmanager
    def begin(
        self,
        *,
        readonly: bool = False,
        before_write: BeforeWrite | None = None,
        inline: bool = False,
    ) -> Iterator[SqlRepository]:
        """One unit of work; a write unit is one database transaction, which on SQLite
        takes the write lock up front. ``before_write`` sees every resource version stored
        (see ``BeforeWrite``).

        A ``readonly`` unit runs in autocommit on both databases: each statement reads its
        own committed snapshot, as under PostgreSQL's READ COMMITTED inside a transaction
        too, so BEGIN and COMMIT would only cost two statements (a fifth of a read by id).
        Work that needs one snapshot across statements (``$export``) begins its own.
        An ``inline`` unit (readonly, when ``inline_reads``) runs on the calling thread's own
        connection."""
        engine = self.engine
        if inline:
            if not readonly or self._inline_engine is None:
                raise ValueError("an inline unit is a read on a store with inline_reads")
            engine = self._inline_engine
        with engine.connect() as conn:
            if readonly and conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            elif readonly:
                conn = conn.execution_options(**{BEGIN_OPTION: "AUTOCOMMIT"})
            with conn.begin():
                yield SqlRepository(conn, clock=self._clock, before_write=before_write)

    def close(self) -> None:
        self.engine.dispose()
        if self._inline_engine is not None:
            self._inline_engine.dispose()


def as_protocols(store: SqlStore, repo: SqlRepository) -> tuple[Store, Repository]:
    """The SQL classes seen through the protocols (mypy checks that they conform)."""
    return store, repo
