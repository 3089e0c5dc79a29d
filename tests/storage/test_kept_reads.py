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


def _on_kept(store: SqlStore, sql: str) -> list[tuple[object, ...]]:
    """The rows of ``sql`` run on a kept read connection (the only one: ``pool_size=2``
    gives the store one read thread)."""
    work = lambda repo: [tuple(row) for row in repo._conn.exec_driver_sql(sql)]  # noqa: E731
    return asyncio.run(store.run_read(FULL, work))


def test_postgresql_keeps_one_plan_the_read_by_id_and_it_is_an_index_lookup(
    postgres_url: str,
) -> None:
    """The read by id is the one statement prepared on a kept read connection, prepared
    while the tables are empty, and its kept plan stays the primary-key lookup after they
    have grown (sequential scans are off there); vreads are planned per execution."""
    store = SqlStore.open(postgres_url, pool_size=2)
    try:
        assert read_threads(store.engine) == 1
        for i in range(10):  # empty tables: past psycopg's and PostgreSQL's thresholds
            with pytest.raises(NotFound):
                _read(store, f"missing-{i}")
        with store.begin(FULL) as repo:
            for i in range(300):
                repo.update("Patient", f"p{i}", {**PATIENT, "id": f"p{i}"})
        for i in range(10):
            assert _read(store, f"p{i}").id == f"p{i}"
            vread = lambda repo, i=i: repo.vread("Patient", f"p{i}", 1)  # noqa: E731
            assert asyncio.run(store.run_read(FULL, vread)).version_id == 1
        prepared = _on_kept(
            store, "SELECT name, statement, generic_plans FROM pg_prepared_statements"
        )
        assert len(prepared) == 1, prepared
        name, statement, generic_plans = prepared[0]
        assert "FROM resource AS r JOIN resource_version" in str(statement)
        assert int(str(generic_plans)) > 0
        plan = "\n".join(
            str(row[0]) for row in _on_kept(store, f"EXPLAIN EXECUTE {name}('Patient', 'p1')")
        )
        assert "Index Scan using resource_pkey" in plan and "Seq Scan" not in plan, plan
    finally:
        store.close()


def test_a_kept_connection_discarded_never_returns_to_the_pool(postgres_url: str) -> None:
    """A kept read connection runs with settings of its own (sequential scans off): when a
    statement on it fails it is closed for good, and the pool's units keep the defaults."""
    store = SqlStore.open(postgres_url, pool_size=2)
    try:
        assert _on_kept(store, "SHOW enable_seqscan") == [("off",)]
        with pytest.raises(sa.exc.DBAPIError):
            _on_kept(store, "SELECT 1/0")
        for _ in range(4):
            with store.begin(FULL) as repo:
                shown = repo._conn.exec_driver_sql("SHOW enable_seqscan").scalar_one()
                mode = repo._conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one()
            assert (shown, mode) == ("on", "force_custom_plan")
        assert _on_kept(store, "SHOW enable_seqscan") == [("off",)]  # a new kept one
    finally:
        store.close()
