"""Sync state of one remote: runs, the id map and checkpoints, kept by storage
(``storage.jobs``, ``storage.sync_state``; https://hl7.org/fhir/R4/http.html#versioning).

A run is a job of kind ``sync`` on the one job table: ``params`` ``{"remote",
"direction", "scope", "patient", "types"}``, ``owner`` the remote, ``lane`` the remote
and direction (one run at a time of each), ``progress`` ``{"counts", "errors"}`` and
``result`` ``{"status"}``. Runs of the ``sync`` command are ``local`` jobs of its
process; runs queued over HTTP are run by any process's job runner (``sync.kind``).

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
from fhir_service.storage.jobs import Job, Jobs
from fhir_service.storage.jobs import JobRef as RunRef
from fhir_service.storage.repository import BeforeWrite
from fhir_service.storage.sync_state import MapRow, SyncState

__all__ = ["SCOPE", "MapRow", "RunRef", "SyncState"]

KIND = "sync"
EMPTY: dict[str, Any] = {"counts": {}, "errors": []}

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


def scope_of(direction: str, patient: str | None) -> str:
    """The ``scope`` text of a run (as the ``sync`` command records it)."""
    if not patient:
        return "changed"
    return f"{'patient' if direction == 'push' else 'everything'}:{patient}"


def lane(remote: str, direction: str) -> str:
    """Runs of one remote and direction run one after another."""
    return f"{direction} {remote}"


def params_of(
    remote: str, direction: str, scope: str, patient: str | None, types: list[str] | None
) -> dict[str, Any]:
    """The ``params`` of a sync job."""
    return {
        "remote": remote,
        "direction": direction,
        "scope": scope,
        "patient": patient,
        "types": types,
    }


def queue_run(
    store: SqlStore,
    remote: str,
    direction: str,
    scope: str,
    patient: str | None,
    types: list[str] | None,
) -> Job:
    """Record a queued run for the runners of any process."""
    params = params_of(remote, direction, scope, patient, types)
    job = Jobs.of(store).create(
        KIND, params, owner=remote, lane=lane(remote, direction), progress=EMPTY
    )
    assert job is not None  # a sync run has no unique or active key
    return job


def start_run(store: SqlStore, remote: str, direction: str, scope: str) -> RunRef:
    """Record a run that the calling process carries out itself (the ``sync`` command).
    Earlier such runs of the same kind left running (their process died) become
    ``interrupted``; runs queued over HTTP belong to the runners."""
    jobs = Jobs.of(store)
    jobs.interrupt_local(KIND, lane(remote, direction))
    params = params_of(remote, direction, scope, None, None)
    made = jobs.create(
        KIND,
        params,
        owner=remote,
        lane=lane(remote, direction),
        progress=EMPTY,
        local=True,
        started=True,
    )
    assert made is not None  # a sync run has no unique or active key
    return made.ref


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
    """End the run (``succeeded``, ``partial`` or ``failed``); False when this process
    no longer holds it (nothing written)."""
    jobs = Jobs.of(store)
    progress = {"counts": counts, "errors": errors}
    result = {"status": status}
    if status == "failed":
        error = errors[-1].get("message", "failed") if errors else "failed"
        return jobs.fail(run, error, result=result, progress=progress)
    return jobs.complete(run, result, message=status, progress=progress)


def run_status(job: Job) -> str:
    """A run's status: ``queued``, ``running``, ``succeeded``, ``partial`` (some
    conflicts or failed entries), ``failed``, ``cancelled`` or ``interrupted``."""
    return str((job.result or {}).get("status", job.state))


def as_dict(job: Job) -> dict[str, Any]:
    """A run as a plain dict: its parameters, status, counts and errors."""
    return {
        "id": job.id,
        "direction": job.params.get("direction"),
        "remote": job.params.get("remote"),
        "scope": job.params.get("scope"),
        "status": run_status(job),
        "started_at": job.created,
        "ended_at": job.finished,
        "counts": job.progress.get("counts", {}),
        "errors": job.progress.get("errors", []),
        "attempts": job.attempt,
    }


def runs(store: SqlStore, remote: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, as plain dicts."""
    return [as_dict(j) for j in Jobs.of(store).recent(KIND, owner=remote, limit=limit)]


def run(store: SqlStore, run_id: str) -> dict[str, Any] | None:
    """One run as a plain dict; None when there is no such run."""
    job = Jobs.of(store).get(run_id, KIND)
    return as_dict(job) if job is not None else None
