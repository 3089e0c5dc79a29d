"""Bulk Data ``$export`` (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

- Kick-off: ``GET|POST /fhir/$export``, ``/fhir/Patient/$export``, ``/fhir/Group/{id}/$export``
  with ``Prefer: respond-async`` -> 202 and ``Content-Location`` of the status URL.
- Status: ``GET /fhir/$export-status/{job}`` -> 202 with ``X-Progress`` and ``Retry-After``
  while running, then 200 with the manifest; ``DELETE`` cancels (202).
- Files: ``GET /fhir/$export-file/{job}/{name}`` as ``application/fhir+ndjson``.

Parameters (``fhir_service.api.export_params``): ``_outputFormat``, ``_type``, ``_since``,
``_typeFilter``, ``_elements``, ``patient`` (POST) and the service's ``_deidentify=true``;
``includeAssociatedData`` is answered with 400. A client with an export still queued or
running gets 429 with ``Retry-After`` (one active job per client is a unique index).

Access (``fhir_service.api.auth.export_scopes``) is checked on the parsed parameters the
job runs with; status, files and cancel belong to the client that started the job.
"""

from __future__ import annotations

import asyncio
import re
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from fhir_service.api.auth.context import request_access
from fhir_service.api.auth.export_scopes import (
    authorize_kick_off,
    file_types,
    job_types,
    own_job,
    require_export_scope,
    require_job_scopes,
)
from fhir_service.api.deps import BASE_PATH, BaseDep, IdDep, SettingsDep, StoreDep, request_store
from fhir_service.api.export_params import check_type_filters, export_params, parameter_pairs
from fhir_service.api.jobs import runner_of
from fhir_service.api.openapi import documented, error_responses
from fhir_service.api.responses import fhir_response, outcome_response
from fhir_service.api.routes import operation
from fhir_service.errors import InvalidRequest, Issue, NotFound
from fhir_service.export import kind as export_kind
from fhir_service.export.kind import ExportJob, Exports
from fhir_service.export.params import Level
from fhir_service.storage import format_instant
from fhir_service.storage.job_runner import JobRunner

RETRY_AFTER = "2"
DEFINITIONS = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
_FILE_NAME = re.compile(r"^[A-Za-z-]+-\d+\.ndjson$")


router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])


def _runner(request: Request) -> JobRunner:
    return runner_of(request, "Bulk export")


def _exports(request: Request) -> Exports:
    _runner(request)
    exports: Exports = request.app.state.exports
    return exports


async def _kick_off(
    request: Request, level: Level, base: str, prefer: str | None, group: str | None = None
) -> Response:
    access = request_access(request)
    require_export_scope(access)
    parsed = export_params(level, await parameter_pairs(request), group)
    params = authorize_kick_off(access, parsed)
    if "respond-async" not in (prefer or ""):
        raise InvalidRequest("$export needs the header Prefer: respond-async", expression="Prefer")
    if params.deidentify and not request.app.state.settings.deid_secret:
        raise InvalidRequest("De-identified export is not configured (deid_secret)")
    await asyncio.to_thread(check_type_filters, request_store(request), params)
    runner = _runner(request)
    job = await asyncio.to_thread(
        export_kind.create, runner.jobs, access.client_id, str(request.url), params
    )
    if job is None:
        return outcome_response(
            [Issue("error", "throttled", "An export of this client is still in progress")],
            429,
            headers={"Retry-After": RETRY_AFTER},
        )
    runner.wake()
    return outcome_response(
        [Issue("information", "informational", "Export accepted")],
        202,
        headers={"Content-Location": f"{base}/$export-status/{job.id}"},
    )


_SYSTEM = operation("export", f"{DEFINITIONS}/export")
_PATIENT = operation("export", f"{DEFINITIONS}/patient-export", resource="Patient")
_GROUP = operation("export", f"{DEFINITIONS}/group-export", resource="Group")
_STATUS = documented(
    answers={
        200: {"application/json": {"schema": {"type": "object", "required": ["output"]}}},
        202: None,
    }
)
"""202 while running, 200 with the manifest (plain JSON); a failed job is a 500 with an
OperationOutcome, as the Bulk Data specification asks."""
_STATUS["responses"]["500"] = error_responses([500])["500"]
_FILE = documented(answers={200: {"application/fhir+ndjson": {"schema": {}}}})
# GET and POST as two routes each, so that each has an OpenAPI operation id of its own.


@router.get("/$export", openapi_extra=_SYSTEM)
@router.post("/$export", openapi_extra=_SYSTEM)
async def export_system(
    request: Request, base: BaseDep, prefer: Annotated[str | None, Header()] = None
) -> Response:
    """System-level export."""
    return await _kick_off(request, "system", base, prefer)


@router.get("/Patient/$export", openapi_extra=_PATIENT)
@router.post("/Patient/$export", openapi_extra=_PATIENT)
async def export_patients(
    request: Request, base: BaseDep, prefer: Annotated[str | None, Header()] = None
) -> Response:
    """Patient-level export: the compartments of all (or the given) patients."""
    return await _kick_off(request, "patient", base, prefer)


@router.get("/Group/{id}/$export", openapi_extra=_GROUP)
@router.post("/Group/{id}/$export", openapi_extra=_GROUP)
async def export_group(
    request: Request,
    id: IdDep,
    base: BaseDep,
    store: StoreDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Group-level export: the compartments of the Group's Patient members."""
    require_export_scope(request_access(request))
    with store.begin(readonly=True) as repo:
        repo.read("Group", id)
    return await _kick_off(request, "group", base, prefer, group=id)


async def _own_job(request: Request, job_id: str) -> ExportJob:
    """The caller's own job; NotFound for another client's, as for no job at all."""
    found = await asyncio.to_thread(export_kind.get, _runner(request).jobs, job_id)
    job = own_job(request_access(request), found)
    if job is None:
        raise NotFound(f"No export job '{job_id[:40]}'")
    return job


@router.get("/$export-status/{job_id}", openapi_extra=_STATUS)
async def export_status(
    request: Request, job_id: str, base: BaseDep, settings: SettingsDep
) -> Response:
    """Status: 202 while running, 200 with the manifest, 500 with an outcome on failure."""
    job = await _own_job(request, job_id)
    require_job_scopes(request_access(request), job, job_types(job), "this export")
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
    if "extension" in job.output:  # the de-identification account (docs/export.md)
        manifest["extension"] = job.output["extension"]
    headers = {"Expires": format_datetime(job.expires, usegmt=True)} if job.expires else None
    response = fhir_response(manifest, 200, headers=headers)
    response.headers["content-type"] = "application/json"
    return response


@router.delete(
    "/$export-status/{job_id}", openapi_extra=documented(answers={202: "OperationOutcome"})
)
async def export_cancel(request: Request, job_id: str) -> Response:
    """Cancel a job (its files are deleted)."""
    job = await _own_job(request, job_id)
    runner = _runner(request)
    await asyncio.to_thread(runner.jobs.cancel, job.id, ended_too=True)
    runner.wake()
    return outcome_response([Issue("information", "informational", "Export cancelled")], 202)


@router.get("/$export-file/{job_id}/{name}", openapi_extra=_FILE)
async def export_file(request: Request, job_id: str, name: str) -> Response:
    """One NDJSON output file of a completed job."""
    job = await _own_job(request, job_id)
    path = _exports(request).directory(job.id) / name
    types = file_types(job, name) if job.status == "completed" else None
    if types is None or not _FILE_NAME.match(name) or not path.is_file():
        raise NotFound(f"No export file '{name[:80]}'")
    require_job_scopes(request_access(request), job, types, "this export file")
    headers = {"Expires": format_datetime(job.expires, usegmt=True)} if job.expires else None
    return FileResponse(path, media_type="application/fhir+ndjson", headers=headers)
