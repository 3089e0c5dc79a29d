"""The service process's one job runner, with the kinds it runs (Bulk Data export,
reindex, sync), and ``GET /jobs``: every kind's jobs read the same way
(asynchronous pattern of https://hl7.org/fhir/R4/async.html).

``job_runner(store, settings)`` registers the kinds with their per-process limits
(``FHIR_SERVICE_EXPORT_JOBS`` for Bulk Data and view exports, ``FHIR_SERVICE_SYNC_JOBS``;
one reindex job); the
application runs it for its lifetime (``lifespan``) and ``fhir-service jobs work`` runs
it without the HTTP API. Each kind's own routes (``$export-status``, ``$reindex``,
``/sync/runs``) answer in their specified shapes from the same table.

- ``GET /jobs`` -> ``{"jobs": [...]}``, newest first (``kind``, ``_count``);
- ``GET /jobs/{id}`` -> one job; ``DELETE /jobs/{id}`` cancels a queued or running job.

These act on the whole database: in smart mode they need ``system/*.cruds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import JSONResponse, Response

from fhir_service.api.background import running
from fhir_service.api.write_validation import AppValidator, write_check
from fhir_service.errors import Conflict, InvalidRequest, NotFound
from fhir_service.export.kind import Exports
from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import get_registry
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.job_runner import JobRunner
from fhir_service.storage.jobs import Job, Jobs
from fhir_service.storage.reindex_run import reindex_kind
from fhir_service.storage.repository import BeforeWrite
from fhir_service.sync.auth import Auth, remote_auth, same_remote
from fhir_service.sync.kind import SyncRuns
from fhir_service.views.export_kind import ViewExports


def credentials(settings: Settings) -> Callable[[str], Auth | None]:
    """The configured authentication, for runs to the configured remote
    (``FHIR_SERVICE_REMOTE_URL``) only: a run to another remote named in its request goes
    without credentials, so they never reach a server the operator did not name.
    Incomplete SMART settings stop the start-up with the reason."""
    key_path = settings.remote_private_key
    key = key_path.read_bytes() if key_path is not None else None
    args = (settings.remote_token, settings.remote_token_url, settings.remote_client_id, key)
    remote_auth(*args)
    configured = settings.remote_url

    def auth_for(remote: str) -> Auth | None:
        if configured is None or not same_remote(remote, configured):
            return None
        return remote_auth(*args)

    return auth_for


def exports(store: SqlStore, settings: Settings) -> Exports:
    """The export step on ``store`` with the configured directory and secret."""
    return Exports(
        store,
        settings.export_dir.resolve(),
        compartment=functools.cache(lambda: compartment_paths(get_registry())),
        deid_secret=settings.deid_secret,
    )


def job_runner(
    store: SqlStore,
    settings: Settings,
    exported: Exports | None = None,
    validator: AppValidator | None = None,
) -> JobRunner:
    """The runner of every kind of job on ``store`` (exports with ``exported``); sync
    pulls apply ``validator``'s validation on write (``FHIR_SERVICE_VALIDATE_ON_WRITE``),
    as the REST API does."""
    checker = validator or AppValidator(settings.package_cache)

    def checks() -> BeforeWrite | None:
        return write_check(checker, settings.validate_on_write, settings.unknown_profiles)

    kinds = [
        (exported or exports(store, settings)).kind(settings.export_jobs),
        reindex_kind(Jobs.of(store)),
        SyncRuns(store, auth_for=credentials(settings), checks=checks).kind(settings.sync_jobs),
        ViewExports(store, settings.export_dir.resolve()).kind(settings.export_jobs),
    ]
    return JobRunner(
        Jobs.of(store),
        kinds,
        poll_interval=settings.job_poll_seconds,
        stale_after=timedelta(seconds=settings.worker_stale_seconds),
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the job runner on the application's database for the app's lifetime."""
    store = app.state.store
    if not isinstance(store, SqlStore):
        yield
        return
    settings = app.state.settings
    app.state.exports = exports(store, settings)
    app.state.view_exports = ViewExports(store, settings.export_dir.resolve())
    runner = job_runner(store, settings, app.state.exports, app.state.validator)
    app.state.job_runner = runner
    async with running(runner.serve()):
        yield


def runner_of(request: Request, what: str) -> JobRunner:
    """The application's job runner; NotFound naming ``what`` when there is none."""
    runner: JobRunner | None = getattr(request.app.state, "job_runner", None)
    if runner is None:
        raise NotFound(f"{what} is not available on this store")
    return runner


def as_json(job: Job) -> dict[str, Any]:
    """A job of any kind: its state, progress, errors and result."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "progress": job.message,
        "details": job.progress,
        "error": job.error,
        "result": job.result,
        "attempts": job.attempt,
        "created": job.created.isoformat(),
        "heartbeat": job.heartbeat.isoformat(),
        "finished": job.finished.isoformat() if job.finished else None,
    }


router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
async def list_jobs(request: Request, kind: str | None = None, _count: int = 50) -> Response:
    """The newest jobs of every kind (or of ``kind``), newest first."""
    if not 1 <= _count <= 200:
        raise InvalidRequest("_count must be between 1 and 200", expression="_count")
    jobs = runner_of(request, "Jobs").jobs
    found = await asyncio.to_thread(jobs.recent, kind, limit=_count)
    return JSONResponse({"jobs": [as_json(j) for j in found]})


async def _job(request: Request, job_id: str) -> Job:
    job = await asyncio.to_thread(runner_of(request, "Jobs").jobs.get, job_id)
    if job is None:
        raise NotFound(f"No job '{job_id[:40]}'")
    return job


@router.get("/{job_id}")
async def read_job(request: Request, job_id: str) -> Response:
    """One job."""
    return JSONResponse(as_json(await _job(request, job_id)))


@router.delete("/{job_id}", status_code=202)
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel a queued or running job of any kind; its runner stops it at its next look."""
    job = await _job(request, job_id)
    if not await asyncio.to_thread(runner_of(request, "Jobs").jobs.cancel, job.id):
        raise Conflict(f"Job {job.id} has already ended ({job.state})")
    return JSONResponse(as_json(await _job(request, job.id)), status_code=202)
