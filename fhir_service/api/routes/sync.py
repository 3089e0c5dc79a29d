"""Sync runs over HTTP: ``POST /sync/runs`` starts a push or pull, ``GET /sync/runs/{id}`` reads it.

The run is recorded in the database before the answer (202 Accepted with
``Content-Location``, like FHIR's asynchronous pattern,
https://hl7.org/fhir/R4/async.html) and carried out in the background on this
process's event loop; its counts and errors are written as it goes, so any
replica can answer the status request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from fhir_service.api.body import read_body
from fhir_service.api.deps import SettingsDep
from fhir_service.errors import InvalidRequest, NotFound
from fhir_service.storage import SqlStore
from fhir_service.sync import state
from fhir_service.sync.client import FhirClient
from fhir_service.sync.pull import pull
from fhir_service.sync.push import push

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
    }


def _store(request: Request) -> SqlStore:
    store = request.app.state.store
    if not isinstance(store, SqlStore):
        raise InvalidRequest("Sync needs the SQL store")
    return store


async def _carry_out(store: SqlStore, remote: str, body: dict[str, Any], run_id: int) -> None:
    async with FhirClient(remote) as client:
        if body["direction"] == "push":
            await push(store, client, patient=body.get("patient"), run_id=run_id)
        else:
            await pull(
                store, client, types=body.get("types"), patient=body.get("patient"), run_id=run_id
            )


@router.post("/runs", status_code=202)
async def start_run(request: Request, settings: SettingsDep) -> Response:
    """Start a sync run: body ``{"direction": "push"|"pull", "remote"?, "patient"?, "types"?}``."""
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
    store = _store(request)
    patient = body.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise InvalidRequest('"patient" must be a Patient id', expression="patient")
    kind = "patient" if body["direction"] == "push" else "everything"
    scope = f"{kind}:{patient}" if patient else "changed"
    run_id = state.start_run(store, state.remote_key(remote), body["direction"], scope)
    task = asyncio.create_task(_carry_out(store, remote, body, run_id))
    tasks: set[asyncio.Task[None]] = request.app.state.__dict__.setdefault("sync_tasks", set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    run = state.run(store, run_id)
    assert run is not None
    return JSONResponse(
        _json(run), status_code=202, headers={"content-location": f"/sync/runs/{run_id}"}
    )


@router.get("/runs")
async def list_runs(request: Request, _count: int = 20) -> Response:
    """The latest sync runs, newest first (``_count`` of them, 1-100)."""
    if not 1 <= _count <= 100:
        raise InvalidRequest("_count must be between 1 and 100", expression="_count")
    return JSONResponse({"runs": [_json(r) for r in state.runs(_store(request), limit=_count)]})


@router.get("/runs/{run_id}")
async def read_run(run_id: int, request: Request) -> Response:
    """The run's status, counts and errors."""
    run = state.run(_store(request), run_id)
    if run is None:
        raise NotFound(f"Sync run {run_id} is not known")
    return JSONResponse(_json(run))
