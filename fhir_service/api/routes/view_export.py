"""$viewdefinition-export (https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionExport.html):
ViewDefinitions run asynchronously into files, by the FHIR asynchronous request pattern
(https://hl7.org/fhir/R4/async.html), as a job of the one job runner
(``views.export_kind``).

- Kick-off: ``POST /fhir/$viewdefinition-export`` or ``/fhir/ViewDefinition/$viewdefinition-export``
  with ``Prefer: respond-async`` and a Parameters body: ``view`` (1..*, parts ``name``,
  ``viewReference`` to ``ViewDefinition/{id}`` or ``Binary/{id}``, or ``viewResource``),
  ``clientTrackingId``, ``_format`` (csv, ndjson, json, parquet; default ndjson),
  ``patient`` (at most one), ``_since``. ``group`` and ``source``, or a second patient,
  are 400 not-supported. Every view is checked before the job is queued: an unknown
  reference is 404, an invalid view 422 naming it; the caller's scopes must cover
  searching each view's resource type (403). Answer 202, ``Content-Location`` the status
  URL and a Parameters (``exportId``, ``clientTrackingId``, ``status`` accepted,
  ``location``).
- Status: ``GET /fhir/$viewdefinition-export-status/{id}`` -> 202 with ``status``
  accepted or in-progress (``X-Progress``, ``Retry-After``); 202 with ``status`` failed
  and the error; 200 with ``status`` completed, ``_format``, ``exportStartTime``,
  ``exportEndTime``, ``exportDuration`` and one ``output`` (``name``, ``location``) per view.
- Cancel: ``DELETE`` on the status URL -> 202; the files go and the status is then 404.
- Files: ``GET /fhir/$viewdefinition-export-file/{id}/{name}``.

The job reads with the caller's scope (a patient-scoped token exports its compartment's
rows only). Status, cancel and files belong to the client that started the job (another
client: 404) and need its current scopes to still cover the views' types (403).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.responses import FileResponse, Response

from fhir_service.api.auth.context import AccessContext, request_access
from fhir_service.api.deps import BASE_PATH, BaseDep, StoreDep
from fhir_service.api.jobs import runner_of
from fhir_service.api.openapi import documented
from fhir_service.api.parameters import parameter_value, parameters_of
from fhir_service.api.responses import fhir_response, outcome_response
from fhir_service.api.routes import operation
from fhir_service.api.routes.views import patient_id, since_instant, stored_view
from fhir_service.errors import (
    InvalidRequest,
    InvalidView,
    Issue,
    NotFound,
    Unprocessable,
)
from fhir_service.storage.ids import format_instant
from fhir_service.storage.jobs import Job
from fhir_service.storage.repository import Store
from fhir_service.views import export_kind, parse_view
from fhir_service.views.export_kind import ViewExportRequest, ViewExports
from fhir_service.views.writers import MEDIA_TYPES, format_of

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

DEFINITION = "http://sql-on-fhir.org/OperationDefinition/$viewdefinition-export"
RETRY_AFTER = "2"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UNSUPPORTED = ("group", "source")


class NotSupported(InvalidRequest):
    code = "not-supported"


async def _parameters(request: Request) -> list[dict[str, Any]]:
    params = await parameters_of(request)
    if params is None:
        raise InvalidRequest("$viewdefinition-export needs a Parameters body with a view")
    return params


def _view(
    repo_store: Store, index: int, parts: Any, problems: list[Issue]
) -> dict[str, Any] | None:
    """``{"name", "view"}`` of one ``view`` parameter; None (and a problem) when it is bad."""
    where = f"Parameters.parameter[{index}]"
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise InvalidRequest(
            "view needs parts: name, viewReference or viewResource", expression=where
        )
    found: dict[str, Any] = {p.get("name"): p for p in parts}
    name = parameter_value(found["name"]) if "name" in found else None
    raw: Any = None
    if "viewResource" in found:
        raw = found["viewResource"].get("resource")
    elif "viewReference" in found:
        ref = parameter_value(found["viewReference"])
        ref = ref.get("reference") if isinstance(ref, dict) else ref
        if not isinstance(ref, str):
            raise InvalidRequest("viewReference must be a Reference", expression=where)
        with repo_store.begin(readonly=True) as repo:
            raw = stored_view(repo, ref)
    else:
        raise InvalidRequest("view needs a viewReference or a viewResource", expression=where)
    try:
        view = parse_view(raw)
    except InvalidView as exc:
        problems.append(Issue("error", "invalid", f"view {index + 1}: {exc.diagnostics}", [where]))
        return None
    name = name if name is not None else view.name or f"view{index + 1}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            f"view name {name!r}: letters, digits, '_', '-' and '.', at most 64", expression=where
        )
    return {"name": name, "view": raw}


def _kick_off_request(
    store: Store, access: AccessContext, params: list[dict[str, Any]]
) -> ViewExportRequest:
    views: list[dict[str, Any]] = []
    problems: list[Issue] = []
    fmt, patient, since, tracking = "ndjson", None, None, None
    for index, param in enumerate(params):
        name = param["name"]
        if name in _UNSUPPORTED:
            raise NotSupported(f"The {name} parameter is not supported", expression=name)
        if name == "view":
            item = _view(store, index, param.get("part"), problems)
            if item is not None:
                views.append(item)
        elif name == "_format":
            fmt = format_of(str(parameter_value(param)))
        elif name == "patient":
            if patient is not None:
                raise NotSupported("Only one patient parameter is supported", expression=name)
            patient = patient_id(parameter_value(param))
        elif name == "_since":
            since = since_instant(parameter_value(param))
        elif name == "clientTrackingId":
            tracking = str(parameter_value(param))[:200]
    if problems:
        raise Unprocessable(problems[0].diagnostics, issues=problems[1:])
    if not views:
        raise InvalidRequest("$viewdefinition-export needs at least one view", expression="view")
    names = [v["name"] for v in views]
    if len(set(names)) != len(names):
        raise InvalidRequest("Each exported view needs its own name", expression="view")
    for item in views:
        access.require(item["view"]["resource"], "s")
    return ViewExportRequest(
        views=views,
        format=fmt,
        patient=patient,
        since=since,
        client_tracking_id=tracking,
        scopes=access.scopes.texts() if access.scopes is not None else None,
        owner_patient=access.patient,
    )


def _parameters_body(pairs: list[tuple[str, str, Any]]) -> dict[str, Any]:
    parameter = []
    for name, kind, value in pairs:
        if kind == "part":
            parameter.append({"name": name, "part": value})
        elif value is not None:
            parameter.append({"name": name, kind: value})
    return {"resourceType": "Parameters", "parameter": parameter}


def _head(job: Job, base: str, status: str) -> list[tuple[str, str, Any]]:
    request = ViewExportRequest.from_dict(job.params)
    return [
        ("exportId", "valueString", job.id),
        ("clientTrackingId", "valueString", request.client_tracking_id),
        ("status", "valueCode", status),
        ("location", "valueUri", f"{base}/$viewdefinition-export-status/{job.id}"),
    ]


_OPERATION = operation("viewdefinition-export", DEFINITION)


async def _kick_off(request: Request, store: Store, base: str, prefer: str | None) -> Response:
    if "respond-async" not in (prefer or ""):
        raise InvalidRequest(
            "$viewdefinition-export needs the header Prefer: respond-async", expression="Prefer"
        )
    access = request_access(request)
    params = await _parameters(request)
    asked = await asyncio.to_thread(_kick_off_request, store, access, params)
    runner = runner_of(request, "View export")
    job = await asyncio.to_thread(export_kind.create, runner.jobs, access.client_id, asked)
    runner.wake()
    status_url = f"{base}/$viewdefinition-export-status/{job.id}"
    body = _parameters_body(_head(job, base, "accepted"))
    return fhir_response(body, 202, headers={"Content-Location": status_url})


@router.post("/$viewdefinition-export", openapi_extra=_OPERATION)
async def export_system(
    request: Request, store: StoreDep, base: BaseDep, prefer: Annotated[str | None, Header()] = None
) -> Response:
    """Kick off an export of the Parameters' views (the system-level form)."""
    return await _kick_off(request, store, base, prefer)


@router.post("/ViewDefinition/$viewdefinition-export", openapi_extra=_OPERATION)
async def export_type(
    request: Request, store: StoreDep, base: BaseDep, prefer: Annotated[str | None, Header()] = None
) -> Response:
    """Kick off an export of the Parameters' views."""
    return await _kick_off(request, store, base, prefer)


async def _own_job(request: Request, job_id: str) -> Job:
    """The caller's own, not cancelled view export; NotFound otherwise (another client's
    job is as unknown as no job), Forbidden when its scopes no longer cover the views."""
    access = request_access(request)
    runner = runner_of(request, "View export")
    job = await asyncio.to_thread(runner.jobs.get, job_id, export_kind.KIND)
    if job is None or job.owner != access.client_id or job.state == "cancelled":
        raise NotFound(f"No view export '{job_id[:40]}'")
    recorded = ViewExportRequest.from_dict(job.params)
    if recorded.owner_patient != access.patient:
        # The same client with another patient context (or none) is someone else.
        raise NotFound(f"No view export '{job_id[:40]}'")
    for item in recorded.views:
        access.require(item["view"]["resource"], "s")
    return job


@router.get(
    "/$viewdefinition-export-status/{job_id}",
    openapi_extra=documented(answers={200: "Parameters", 202: "Parameters"}),
)
async def export_status(request: Request, job_id: str, base: BaseDep) -> Response:
    """202 while queued or running (and, as the operation says, when failed); 200 with
    the outputs when completed."""
    job = await _own_job(request, job_id)
    if job.state in ("queued", "running"):
        status = "accepted" if job.state == "queued" else "in-progress"
        body = _parameters_body(_head(job, base, status))
        headers = {"X-Progress": job.message[:100], "Retry-After": RETRY_AFTER}
        return fhir_response(body, 202, headers=headers)
    if job.state == "failed":
        pairs = [*_head(job, base, "failed"), ("error", "valueString", job.error or "failed")]
        return fhir_response(_parameters_body(pairs), 202)
    result = job.result or {}
    request_params = ViewExportRequest.from_dict(job.params)
    started = datetime.fromisoformat(result["started"])
    ended = datetime.fromisoformat(result["ended"])
    files = f"{base}/$viewdefinition-export-file/{job.id}"
    pairs = [
        *_head(job, base, "completed"),
        ("_format", "valueCode", request_params.format),
        ("exportStartTime", "valueInstant", format_instant(started)),
        ("exportEndTime", "valueInstant", format_instant(ended)),
        ("exportDuration", "valueInteger", round((ended - started).total_seconds())),
    ]
    for item in result.get("output", []):
        parts = [
            {"name": "name", "valueString": item["name"]},
            {"name": "location", "valueUri": f"{files}/{item['file']}"},
        ]
        pairs.append(("output", "part", parts))
    expires = {"Expires": format_datetime(job.expires, usegmt=True)} if job.expires else None
    return fhir_response(_parameters_body(pairs), 200, headers=expires)


@router.delete(
    "/$viewdefinition-export-status/{job_id}",
    openapi_extra=documented(answers={202: "OperationOutcome"}),
)
async def export_cancel(request: Request, job_id: str) -> Response:
    """Cancel the export; its files are deleted and its status is then 404."""
    job = await _own_job(request, job_id)
    runner = runner_of(request, "View export")
    await asyncio.to_thread(runner.jobs.cancel, job.id, ended_too=True)
    runner.wake()
    return outcome_response([Issue("information", "informational", "View export cancelled")], 202)


@router.get(
    "/$viewdefinition-export-file/{job_id}/{name}",
    openapi_extra=documented(answers={200: {t: {"schema": {}} for t in MEDIA_TYPES.values()}}),
)
async def export_file(request: Request, job_id: str, name: str) -> Response:
    """One output file of a completed view export."""
    job = await _own_job(request, job_id)
    outputs = (job.result or {}).get("output", []) if job.state == "completed" else []
    exports: ViewExports = request.app.state.view_exports
    path = exports.directory(job.id) / name
    if not any(o["file"] == name for o in outputs) or not _NAME.match(name) or not path.is_file():
        raise NotFound(f"No view export file '{name[:80]}'")
    fmt = ViewExportRequest.from_dict(job.params).format
    return FileResponse(path, media_type=MEDIA_TYPES[fmt])
