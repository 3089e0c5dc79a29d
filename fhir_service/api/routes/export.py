"""Bulk Data ``$export`` (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

- Kick-off: ``GET|POST /fhir/$export``, ``/fhir/Patient/$export``, ``/fhir/Group/{id}/$export``
  with ``Prefer: respond-async`` -> 202 and ``Content-Location`` of the status URL.
- Status: ``GET /fhir/$export-status/{job}`` -> 202 with ``X-Progress`` and ``Retry-After``
  while running, then 200 with the manifest; ``DELETE`` cancels (202).
- Files: ``GET /fhir/$export-file/{job}/{name}`` as ``application/fhir+ndjson``.

Parameters: ``_outputFormat``, ``_type``, ``_since``, ``patient`` (POST) and the service's
``_deidentify=true``. ``_typeFilter`` and ``_elements`` are answered with 400.
A client with an export still queued or running gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from fhir_service.api.auth.compartment import PatientCompartment
from fhir_service.api.body import json_object, parse_json, read_body
from fhir_service.api.deps import BaseDep, IdDep, SettingsDep, StoreDep
from fhir_service.api.responses import fhir_response, outcome_response
from fhir_service.errors import InvalidRequest, Issue, NotFound, UnknownResourceType
from fhir_service.export.jobs import ExportParams, Job, Level
from fhir_service.export.runner import ExportRunner
from fhir_service.fhir.models import model_class
from fhir_service.fhir.references import parse_reference
from fhir_service.storage import format_instant

NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
UNSUPPORTED = ("_typeFilter", "_elements", "includeAssociatedData")
RETRY_AFTER = "2"
_FILE_NAME = re.compile(r"^[A-Za-z-]+-\d+\.ndjson$")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the export worker on the application's database for the app's lifetime."""
    engine = getattr(app.state.store, "engine", None)
    if engine is None:
        yield
        return
    settings = app.state.settings
    runner = ExportRunner(
        engine,
        settings.export_dir.resolve(),
        compartment=functools.cache(lambda: PatientCompartment.load(settings.package_cache)),
        deid_secret=settings.deid_secret,
    )
    app.state.export_runner = runner
    task = asyncio.create_task(runner.serve())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(lifespan=lifespan)


def _runner(request: Request) -> ExportRunner:
    runner: ExportRunner | None = getattr(request.app.state, "export_runner", None)
    if runner is None:
        raise NotFound("Bulk export is not available on this store")
    return runner


def _client(request: Request) -> str:
    access = getattr(request.state, "access", None)
    return str(getattr(access, "client_id", "anonymous"))


def _since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"_since '{value[:40]}' is not a FHIR instant", expression="_since"
        ) from None
    if since.tzinfo is None:
        raise InvalidRequest("_since needs a timezone", expression="_since")
    return since


def _types(value: str) -> list[str]:
    types = [t.strip() for t in value.split(",") if t.strip()]
    for name in types:
        try:
            model_class(name)
        except UnknownResourceType:
            raise InvalidRequest(
                f"_type: unknown resource type '{name[:64]}'", expression="_type"
            ) from None
    return types


async def _parameters(request: Request) -> list[tuple[str, Any]]:
    """(name, value) pairs from the query string (GET) or a Parameters body (POST)."""
    pairs: list[tuple[str, Any]] = list(request.query_params.multi_items())
    if request.method != "POST":
        return pairs
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    if not raw.strip():
        return pairs
    body = json_object(parse_json(raw))
    if body.get("resourceType") != "Parameters":
        raise InvalidRequest("The $export POST body must be a Parameters resource")
    for parameter in body.get("parameter") or []:
        name = parameter.get("name")
        values = [v for k, v in parameter.items() if k.startswith("value")]
        if isinstance(name, str) and values:
            pairs.append((name, values[0]))
    return pairs


def _params(level: Level, pairs: list[tuple[str, Any]], group: str | None) -> ExportParams:
    types: list[str] | None = None
    since: datetime | None = None
    patients: list[str] | None = None
    deidentify = False
    for name, value in pairs:
        if name in UNSUPPORTED:
            raise InvalidRequest(f"{name} is not supported by this server", expression=name)
        if name == "_outputFormat":
            if value not in NDJSON_FORMATS:
                raise InvalidRequest(
                    f"_outputFormat '{str(value)[:60]}' is not supported; use "
                    "application/fhir+ndjson",
                    expression="_outputFormat",
                )
        elif name == "_type":
            types = (types or []) + _types(str(value))
        elif name == "_since":
            since = _since(str(value))
        elif name == "_deidentify":
            deidentify = str(value).lower() == "true"
        elif name == "patient":
            reference = value.get("reference") if isinstance(value, dict) else None
            parsed = parse_reference(reference) if isinstance(reference, str) else None
            if parsed is None or parsed.resource_type != "Patient" or level == "system":
                raise InvalidRequest(
                    "patient needs a Patient reference on Patient or Group $export",
                    expression="patient",
                )
            patients = (patients or []) + [parsed.id]
    return ExportParams(level, types, since, patients, group, deidentify)


async def _kick_off(
    request: Request, level: Level, base: str, prefer: str | None, group: str | None = None
) -> Response:
    if "respond-async" not in (prefer or ""):
        raise InvalidRequest("$export needs the header Prefer: respond-async", expression="Prefer")
    params = _params(level, await _parameters(request), group)
    if params.deidentify and not request.app.state.settings.deid_secret:
        raise InvalidRequest("De-identified export is not configured (deid_secret)")
    runner = _runner(request)
    client = _client(request)
    if await asyncio.to_thread(runner.jobs.active_for, client) is not None:
        return outcome_response(
            [Issue("error", "throttled", "An export of this client is still in progress")],
            429,
            headers={"Retry-After": RETRY_AFTER},
        )
    job = await asyncio.to_thread(runner.jobs.create, client, str(request.url), params)
    runner.wake()
    return outcome_response(
        [Issue("information", "informational", "Export accepted")],
        202,
        headers={"Content-Location": f"{base}/$export-status/{job.id}"},
    )


@router.api_route("/$export", methods=["GET", "POST"])
async def export_system(
    request: Request, base: BaseDep, prefer: Annotated[str | None, Header()] = None
) -> Response:
    """System-level export."""
    return await _kick_off(request, "system", base, prefer)


@router.api_route("/Patient/$export", methods=["GET", "POST"])
async def export_patients(
    request: Request, base: BaseDep, prefer: Annotated[str | None, Header()] = None
) -> Response:
    """Patient-level export: the compartments of all (or the given) patients."""
    return await _kick_off(request, "patient", base, prefer)


@router.api_route("/Group/{id}/$export", methods=["GET", "POST"])
async def export_group(
    request: Request,
    id: IdDep,
    base: BaseDep,
    store: StoreDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Group-level export: the compartments of the Group's Patient members."""
    with store.begin(readonly=True) as repo:
        repo.read("Group", id)
    return await _kick_off(request, "group", base, prefer, group=id)


async def _own_job(request: Request, job_id: str) -> Job:
    job = await asyncio.to_thread(_runner(request).jobs.get, job_id)
    if job is None or job.client_id != _client(request) or job.status == "cancelled":
        raise NotFound(f"No export job '{job_id[:40]}'")
    return job


@router.get("/$export-status/{job_id}")
async def export_status(
    request: Request, job_id: str, base: BaseDep, settings: SettingsDep
) -> Response:
    """Status: 202 while running, 200 with the manifest, 500 with an outcome on failure."""
    job = await _own_job(request, job_id)
    if job.status in ("queued", "running"):
        return Response(
            status_code=202, headers={"X-Progress": job.progress, "Retry-After": RETRY_AFTER}
        )
    if job.status == "failed":
        return outcome_response([Issue("error", "exception", job.error or "Export failed")], 500)
    files = f"{base}/$export-file/{job.id}"
    manifest = {
        "transactionTime": format_instant(job.transaction_time),
        "request": job.request,
        "requiresAccessToken": settings.auth_mode == "smart",
        "output": [
            {"type": f["type"], "url": f"{files}/{f['name']}", "count": f["count"]}
            for f in job.output.get("output", [])
        ],
        "deleted": [
            {"type": f["type"], "url": f"{files}/{f['name']}", "count": f["count"]}
            for f in job.output.get("deleted", [])
        ],
        "error": [],
    }
    headers = {"Expires": format_datetime(job.expires, usegmt=True)} if job.expires else None
    response = fhir_response(manifest, 200, headers=headers)
    response.headers["content-type"] = "application/json"
    return response


@router.delete("/$export-status/{job_id}")
async def export_cancel(request: Request, job_id: str) -> Response:
    """Cancel a job (its files are deleted)."""
    job = await _own_job(request, job_id)
    await asyncio.to_thread(_runner(request).jobs.cancel, job.id)
    return outcome_response([Issue("information", "informational", "Export cancelled")], 202)


@router.get("/$export-file/{job_id}/{name}")
async def export_file(request: Request, job_id: str, name: str) -> Response:
    """One NDJSON output file of a completed job."""
    job = await _own_job(request, job_id)
    runner = _runner(request)
    path = runner.directory(job.id) / name
    if job.status != "completed" or not _FILE_NAME.match(name) or not path.is_file():
        raise NotFound(f"No export file '{name[:80]}'")
    headers = {"Expires": format_datetime(job.expires, usegmt=True)} if job.expires else None
    return FileResponse(path, media_type="application/fhir+ndjson", headers=headers)
