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
    """The resource store on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.engine = engine
        self._clock = clock

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
        return cls(engine)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def begin(
        self, *, readonly: bool = False, before_write: BeforeWrite | None = None
    ) -> Iterator[SqlRepository]:
        """One database transaction; SQLite write units take the write lock up front.
        ``before_write`` sees every resource version stored (see ``BeforeWrite``).

        A ``readonly`` unit on PostgreSQL runs in autocommit: under READ COMMITTED each
        statement sees its own snapshot inside a transaction too, so BEGIN and COMMIT
        would only cost two round trips. On SQLite it is one deferred transaction, whose
        statements share one snapshot."""
        with self.engine.connect() as conn:
            if readonly and conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn = conn.execution_options(**{BEGIN_OPTION: "DEFERRED" if readonly else "IMMEDIATE"})
            with conn.begin():
                yield SqlRepository(conn, clock=self._clock, before_write=before_write)

    def close(self) -> None:
        self.engine.dispose()


def as_protocols(store: SqlStore, repo: SqlRepository) -> tuple[Store, Repository]:
    """The SQL classes seen through the protocols (mypy checks that they conform)."""
    return store, repo
