"""Sync state of one remote: runs, the id map and checkpoints, kept by storage
(``storage.sync_runs``, ``storage.sync_state``; https://hl7.org/fhir/R4/http.html#versioning).

Sync is the service's own work: every unit of work it opens carries
``AccessScope.full()`` (``SCOPE``). A page pulled from the remote, the id-map rows and
the checkpoint that covers it are written in one database transaction (``unit``), so a
crash at any point leaves either all of it or none
(https://hl7.org/fhir/R4/http.html#transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fhir_service.storage import SqlRepository, SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.repository import BeforeWrite
from fhir_service.storage.sync_runs import RunRef, SyncRuns
from fhir_service.storage.sync_state import MapRow, SyncState

__all__ = ["SCOPE", "MapRow", "RunRef", "SyncState"]

SCOPE = AccessScope.full()
"""The access scope of sync's units of work: the service's own work reaches everything."""


def remote_key(base_url: str) -> str:
    """The key under which state for a remote is kept: its base URL without trailing slash."""
    return base_url.rstrip("/")


@contextmanager
def unit(
    store: SqlStore, before_write: BeforeWrite | None = None
) -> Iterator[tuple[SyncState, SqlRepository]]:
    """One write transaction: the sync state and the resource repository on one connection
    (``before_write``: validation on write of what it stores)."""
    with SyncState.unit(store, SCOPE, before_write) as pair:
        yield pair


@contextmanager
def reading(store: SqlStore) -> Iterator[SyncState]:
    """The sync state and the local resources for reads outside a write transaction."""
    with SyncState.reading(store, SCOPE) as tx:
        yield tx


def start_run(store: SqlStore, remote: str, direction: str, scope: str) -> RunRef:
    """Record a run that the calling process carries out itself (the ``sync`` command)."""
    return SyncRuns.of(store).start(remote, direction, scope)


def record_progress(
    tx: SyncState, run: RunRef, counts: dict[str, int], errors: list[dict[str, str]]
) -> None:
    """Write the run's counts and errors so far and beat its heartbeat (in the page's
    transaction)."""
    tx.record_progress(run, counts, errors)


def finish_run(
    store: SqlStore,
    run: RunRef,
    status: str,
    counts: dict[str, int],
    errors: list[dict[str, str]],
) -> bool:
    """End the run; False when this process no longer holds it (nothing written)."""
    return SyncRuns.of(store).finish(run, status, counts, errors)


def runs(store: SqlStore, remote: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, as plain dicts."""
    return SyncRuns.of(store).latest(remote, limit)


def run(store: SqlStore, run_id: int) -> dict[str, Any] | None:
    """One run as a plain dict; None when there is no such run."""
    return SyncRuns.of(store).get(run_id)
