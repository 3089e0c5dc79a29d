"""Sync runs over HTTP: ``POST /sync/runs`` queues a push or pull, ``GET /sync/runs/{id}``
reads it, ``DELETE /sync/runs/{id}`` cancels it.

The run is recorded in the database as a queued job (kind ``sync``) before the answer
(202 Accepted with ``Content-Location``, like FHIR's asynchronous pattern,
https://hl7.org/fhir/R4/async.html). The job runner of any replica claims it
(``fhir_service.sync.kind``), writes its counts and errors as it goes, and a run whose
replica died is taken over by another, so any replica can answer the status request.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from fhir_service.api.body import read_body
from fhir_service.api.deps import SettingsDep
from fhir_service.errors import Conflict, InvalidRequest, NotFound
from fhir_service.storage import SqlStore
from fhir_service.storage.job_runner import JobRunner
from fhir_service.sync import state
from fhir_service.sync.auth import same_remote

router = APIRouter(prefix="/sync", tags=["sync"])


def _json(run: dict[str, Any]) -> dict[str, Any]:
    """A run: its parameters, status, counts and errors (``sync.state.as_dict``)."""
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


def _runner(request: Request) -> JobRunner:
    runner: JobRunner | None = getattr(request.app.state, "job_runner", None)
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
    direction = body["direction"]
    job = await asyncio.to_thread(
        state.queue_run,
        _store(request),
        state.remote_key(remote),
        direction,
        state.scope_of(direction, patient or None),
        patient or None,
        types,
    )
    runner.wake()
    return JSONResponse(
        _json(state.as_dict(job)),
        status_code=202,
        headers={"content-location": f"/sync/runs/{job.id}"},
    )


@router.get("/runs")
async def list_runs(request: Request, _count: int = 20) -> Response:
    """The latest sync runs, newest first (``_count`` of them, 1-100)."""
    if not 1 <= _count <= 100:
        raise InvalidRequest("_count must be between 1 and 100", expression="_count")
    runs = await asyncio.to_thread(state.runs, _store(request), None, _count)
    return JSONResponse({"runs": [_json(r) for r in runs]})


@router.get("/runs/{run_id}")
async def read_run(run_id: Annotated[str, Path(max_length=36)], request: Request) -> Response:
    """The run's status, counts and errors."""
    run = await asyncio.to_thread(state.run, _store(request), run_id)
    if run is None:
        raise NotFound(f"Sync run {run_id} is not known")
    return JSONResponse(_json(run))


@router.delete("/runs/{run_id}", status_code=202)
async def cancel_run(run_id: Annotated[str, Path(max_length=36)], request: Request) -> Response:
    """Cancel a queued or running run: a running one stops at its runner's next look;
    what it wrote so far stays (the id map keeps a later run from doing it twice)."""
    runner = _runner(request)
    run = await asyncio.to_thread(state.run, _store(request), run_id)
    if run is None:
        raise NotFound(f"Sync run {run_id} is not known")
    if not await asyncio.to_thread(runner.jobs.cancel, str(run["id"])):
        raise Conflict(f"Sync run {run_id} has already ended ({run['status']})")
    runner.wake()
    cancelled = await asyncio.to_thread(state.run, _store(request), run_id)
    assert cancelled is not None
    return JSONResponse(_json(cancelled), status_code=202)
