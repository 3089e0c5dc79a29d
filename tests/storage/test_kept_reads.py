"""``SqlStore.run_read`` on connections its threads keep (SQLite: the event loop's own;
PostgreSQL: the store's read threads): every commit is seen at once, no more than
``read_threads`` connections are held however many reads wait, a connection the server
dropped is replaced within the read that found it, and ``close`` gives them all back."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from fhir_service.errors import NotFound
from fhir_service.storage import SqlStore, Stored
from fhir_service.storage.access import AccessScope
from fhir_service.storage.store import read_threads

FULL = AccessScope.full()
PATIENT = {"resourceType": "Patient", "name": [{"family": "Kept"}]}


def _read(store: SqlStore, id: str) -> Stored:
    return asyncio.run(store.run_read(FULL, lambda repo: repo.read("Patient", id)))


def _backends(admin: sa.Engine, database: str) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            ).scalar_one()
        )


def test_every_commit_is_seen_and_a_miss_is_not_found(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL) as repo:
            repo.update("Patient", "p1", {**PATIENT, "id": "p1"})
        assert _read(store, "p1").version_id == 1
        for version in (2, 3):
            with store.begin(FULL) as repo:
                changed = {**PATIENT, "id": "p1", "birthDate": f"19{version}0-01-01"}
                repo.update("Patient", "p1", changed)
            assert _read(store, "p1").version_id == version
        with pytest.raises(NotFound):
            _read(store, "p2")
    finally:
        store.close()


def test_postgresql_reads_hold_at_most_read_threads_connections(postgres_url: str) -> None:
    store = SqlStore.open(postgres_url, pool_size=10)
    database = store.engine.url.database
    admin = sa.create_engine(store.engine.url.set(database="postgres"))
    try:
        with store.begin(FULL) as repo:
            for i in range(20):
                repo.update("Patient", f"p{i}", {**PATIENT, "id": f"p{i}"})
        idle = _backends(admin, database)

        async def many() -> list[Stored]:
            reads = [
                store.run_read(FULL, lambda repo, i=i: repo.read("Patient", f"p{i % 20}"))
                for i in range(200)
            ]
            return await asyncio.gather(*reads)

        assert [s.id for s in asyncio.run(many())] == [f"p{i % 20}" for i in range(200)]
        assert read_threads(store.engine) == 4
        # The pool kept the write's connection; the reads added their threads' own.
        assert _backends(admin, database) <= max(idle, 1) + read_threads(store.engine)
        store.close()
        # Every kept connection closed: the server's backends end soon after their
        # clients hang up (not at once: a backend notices the closed socket itself).
        deadline = time.monotonic() + 30
        while _backends(admin, database) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _backends(admin, database) == 0
    finally:
        store.close()
        admin.dispose()


def test_postgresql_read_survives_a_dropped_connection(postgres_url: str) -> None:
    """A real fault: the server ends the backend of the kept read connection; the read
    that finds it gone runs again on a new connection and answers."""
    store = SqlStore.open(postgres_url)
    admin = sa.create_engine(store.engine.url.set(database="postgres"))
    try:
        with store.begin(FULL) as repo:
            repo.update("Patient", "p1", {**PATIENT, "id": "p1"})
        pids = asyncio.run(
            store.run_read(
                FULL, lambda repo: repo._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            )
        )
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pids})
        assert _read(store, "p1").version_id == 1
        assert _read(store, "p1").version_id == 1
    finally:
        store.close()
        admin.dispose()
