"""Pooled PostgreSQL connections that the server closed (a restart, an administrator,
an idle timeout) are replaced before use: the next unit of work succeeds
(https://docs.sqlalchemy.org/en/20/core/pooling.html#disconnect-handling-pessimistic)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import fhir_service.storage.engine as engine_module
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def _terminate(url: str, pid: int) -> bool:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return bool(conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}))
    finally:
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("idle_ping", [0.0, 3600.0])
def test_connections_closed_by_the_server_are_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, idle_ping: float
) -> None:
    """With the pool's only connection killed, the next unit of work pings it (idle long
    enough) and gets a new one; within the window it fails once with a database error
    and the pool then replaces the connection (never a wrong answer)."""
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", idle_ping)
    store = SqlStore.open(postgres_url, pool_size=1)
    try:
        with store.begin(FULL_ACCESS) as repo:
            repo.update("Patient", "p1", PATIENT)
        with store.engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert _terminate(postgres_url, pid)
        if idle_ping == 0.0:
            with store.begin(FULL_ACCESS, readonly=True) as repo:
                assert repo.read("Patient", "p1").resource["gender"] == "female"
        else:
            with pytest.raises(sa.exc.DBAPIError), store.begin(FULL_ACCESS, readonly=True) as repo:
                repo.read("Patient", "p1")
        with store.begin(FULL_ACCESS) as repo:
            updated = repo.update("Patient", "p1", {**PATIENT, "gender": "male"})
        assert updated.stored.version_id == 2
    finally:
        store.close()
