"""Sync runs over HTTP: ``POST /sync/runs`` queues a push or pull, ``GET /sync/runs/{id}`` reads it.

The run is recorded in the database as ``queued`` before the answer (202 Accepted with
``Content-Location``, like FHIR's asynchronous pattern,
https://hl7.org/fhir/R4/async.html). The sync worker of any replica claims it
(``fhir_service.sync.runner``; started here for the application's lifetime), writes its
counts and errors as it goes, and a run whose replica died is taken over by another, so
any replica can answer the status request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Request
from starlette.responses import JSONResponse, Response

from fhir_service.api.background import running
from fhir_service.api.body import read_body
from fhir_service.api.deps import SettingsDep
from fhir_service.api.write_validation import write_check
from fhir_service.errors import InvalidRequest, NotFound
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.sync_runs import SyncRuns
from fhir_service.sync.auth import Auth, remote_auth, same_remote
from fhir_service.sync.runner import SyncRunner


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the sync worker on the application's SQL store for the app's lifetime."""
    store = app.state.store
    if not isinstance(store, SqlStore):
        yield
        return
    settings = app.state.settings
    stale = timedelta(seconds=settings.worker_stale_seconds)
    validator = app.state.validator
    runner = SyncRunner(
        store,
        stale_after=stale,
        auth_for=_credentials(settings),
        checks=lambda: write_check(
            validator, settings.validate_on_write, settings.unknown_profiles
        ),
    )
    app.state.sync_runner = runner
    async with running(runner.serve()):
        yield


def _credentials(settings: Settings) -> Callable[[str], Auth | None]:
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


router = APIRouter(prefix="/sync", tags=["sync"])


def _json(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": run["id"],
        "direction": run["direction"],
        "remote": run["remote"],
        "scope": run["scope"],
        "status": run["status"],
        "started": run["started_at"].isoformat(),
        "ended": run["ended_at"].isoformat() if run["ended_at"] else None,
        "counts": run["counts"],
        "errors": run["errors"],
        "attempts": run["attempts"],
    }


def _store(request: Request) -> SqlStore:
    store = request.app.state.store
    if not isinstance(store, SqlStore):
        raise InvalidRequest("Sync needs the SQL store")
    return store


def _runner(request: Request) -> SyncRunner:
    runner: SyncRunner | None = getattr(request.app.state, "sync_runner", None)
    if runner is None:
        raise InvalidRequest("Sync needs the SQL store")
    return runner


_RUN_REQUEST = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["direction"],
                    "properties": {
                        "direction": {"enum": ["push", "pull"]},
                        "remote": {"type": "string"},
                        "patient": {"type": "string"},
                        "types": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    }
}


@router.post("/runs", status_code=202, openapi_extra=_RUN_REQUEST)
async def start_run(request: Request, settings: SettingsDep) -> Response:
    """Queue a sync run: body ``{"direction": "push"|"pull", "remote"?, "patient"?, "types"?}``."""
    raw = await read_body(request, settings.max_body_bytes)
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not JSON") from None
    if not isinstance(body, dict) or body.get("direction") not in ("push", "pull"):
        raise InvalidRequest('"direction" must be "push" or "pull"', expression="direction")
    types = body.get("types")
    if types is not None and not (
        isinstance(types, list) and all(isinstance(t, str) for t in types)
    ):
        raise InvalidRequest('"types" must be a list of resource type names', expression="types")
    remote = body.get("remote") or settings.remote_url
    if not isinstance(remote, str) or not remote.startswith(("http://", "https://")):
        raise InvalidRequest('No remote: give "remote" or set FHIR_SERVICE_REMOTE_URL')
    allowed = [r for r in (settings.remote_url, *settings.sync_remotes) if r]
    if not any(same_remote(remote, r) for r in allowed):
        raise InvalidRequest(
            f"'{remote[:200]}' is not a configured sync remote: set FHIR_SERVICE_REMOTE_URL "
            "or list it in FHIR_SERVICE_SYNC_REMOTES",
            expression="remote",
        )
    runner = _runner(request)
    patient = body.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise InvalidRequest('"patient" must be a Patient id', expression="patient")
    run = await asyncio.to_thread(
        runner.jobs.queue, remote, body["direction"], patient or None, types
    )
    runner.wake()
    return JSONResponse(
        _json(run), status_code=202, headers={"content-location": f"/sync/runs/{run['id']}"}
    )


@router.get("/runs")
async def list_runs(request: Request, _count: int = 20) -> Response:
    """The latest sync runs, newest first (``_count`` of them, 1-100)."""
    if not 1 <= _count <= 100:
        raise InvalidRequest("_count must be between 1 and 100", expression="_count")
    runs = SyncRuns.of(_store(request)).latest(limit=_count)
    return JSONResponse({"runs": [_json(r) for r in runs]})


MAX_RUN_ID = 2**31 - 1
"""Largest run id the ``sync_run.id`` INTEGER column holds on PostgreSQL (SQLite's is 64-bit);
a larger one is a 400, not a database error."""


@router.get("/runs/{run_id}")
async def read_run(run_id: Annotated[int, Path(ge=1, le=MAX_RUN_ID)], request: Request) -> Response:
    """The run's status, counts and errors."""
    run = SyncRuns.of(_store(request)).get(run_id)
    if run is None:
        raise NotFound(f"Sync run {run_id} is not known")
    return JSONResponse(_json(run))
