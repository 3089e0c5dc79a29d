"""``$reindex``: rebuild the search index of stored resources in the background
(https://hl7.org/fhir/R4/searchparameter.html, asynchronous pattern of
https://hl7.org/fhir/R4/async.html).

- ``POST /fhir/$reindex`` (query or Parameters body: ``type``, repeatable or
  comma-separated; ``url`` of a SearchParameter, whose ``base`` types are reindexed;
  neither: every stored type) -> 202, ``Content-Location`` of the job, the job as
  Parameters.
- ``GET /fhir/$reindex/{job}`` -> the job as Parameters (``status``, ``total``, ``done``,
  ``progress``): 202 with ``X-Progress`` while queued or running, then 200.
- ``GET /fhir/$reindex`` -> the 50 newest jobs; ``DELETE /fhir/$reindex/{job}`` cancels.

Jobs (kind ``reindex`` of the one job table, ``storage.jobs``) are also made by the
service's job runner for every SearchParameter created, updated or deleted.
Starting and cancelling needs an unrestricted client (``system/*.cruds``) in smart mode.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_service.api.body import json_object, parse_json, read_body
from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep
from fhir_service.api.jobs import runner_of
from fhir_service.api.openapi import documented
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import operation
from fhir_service.api.routes.definitions import REINDEX
from fhir_service.errors import Conflict, Forbidden, InvalidRequest, NotFound, UnknownResourceType
from fhir_service.fhir.models import model_class
from fhir_service.search.registry import get_registry
from fhir_service.storage import format_instant
from fhir_service.storage import reindex_run as reindexing
from fhir_service.storage.job_runner import JobRunner
from fhir_service.storage.reindex_run import ALL_TYPES, ReindexJob

RETRY_AFTER = "2"


router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])


def _runner(request: Request) -> JobRunner:
    return runner_of(request, "Reindexing")


def _admin(request: Request, what: str) -> None:
    access = getattr(request.state, "access", None)
    if access is not None and not access.unrestricted():
        raise Forbidden(f"{what} needs the scope system/*.cruds")


async def _pairs(request: Request) -> list[tuple[str, str]]:
    """(name, value) pairs from the query string and a Parameters body."""
    pairs = list(request.query_params.multi_items())
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    if not raw.strip():
        return pairs
    body = json_object(parse_json(raw))
    if body.get("resourceType") != "Parameters":
        raise InvalidRequest("The $reindex POST body must be a Parameters resource")
    for parameter in body.get("parameter") or []:
        values = [v for k, v in parameter.items() if k.startswith("value")]
        if isinstance(parameter.get("name"), str) and values and isinstance(values[0], str):
            pairs.append((parameter["name"], values[0]))
    return pairs


def _bases_of(runner: JobRunner, url: str) -> list[str] | None:
    """The ``base`` types of the core or stored SearchParameter ``url`` (None: all)."""
    registry = reindexing.stored_registry(runner.jobs, get_registry())
    for sp in registry.parameters:
        if sp.get("url") == url:
            bases = [b for b in sp.get("base") or [] if isinstance(b, str)]
            return None if set(bases) & ALL_TYPES else bases
    raise InvalidRequest(f"No active SearchParameter with url '{url[:200]}'", expression="url")


def _request(runner: JobRunner, pairs: list[tuple[str, str]]) -> tuple[list[str] | None, str]:
    types: list[str] | None = None
    urls: list[str] = []
    for name, value in pairs:
        if name == "type":
            for item in (t.strip() for t in value.split(",")):
                try:
                    model_class(item)
                except UnknownResourceType:
                    raise InvalidRequest(
                        f"type: unknown resource type '{item[:64]}'", expression="type"
                    ) from None
                types = [*(types or []), item]
        elif name == "url":
            urls.append(value)
        elif not name.startswith("_"):
            raise InvalidRequest(f"Unknown $reindex parameter '{name[:64]}'", expression=name)
    for url in urls:
        bases = _bases_of(runner, url)
        if bases is None:
            return None, f"$reindex of {url}"
        types = [*(types or []), *bases]
    reason = "$reindex" + (f" of {', '.join(urls)}" if urls else "")
    return types, reason


def _parameters(job: ReindexJob, base: str) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [
        {"name": "id", "valueString": job.id},
        {"name": "location", "valueUri": f"{base}/$reindex/{job.id}"},
        {"name": "status", "valueCode": job.status},
        {"name": "reason", "valueString": job.reason},
        *({"name": "type", "valueCode": t} for t in job.types or []),
        {"name": "total", "valueInteger": job.total},
        {"name": "done", "valueInteger": job.done},
        {"name": "progress", "valueString": job.message},
        {"name": "created", "valueInstant": format_instant(job.created)},
    ]
    if job.finished is not None:
        parameter.append({"name": "finished", "valueInstant": format_instant(job.finished)})
    if job.error:
        parameter.append({"name": "error", "valueString": job.error})
    return {"resourceType": "Parameters", "parameter": parameter}


_JOB = documented(answers={200: "Parameters", 202: "Parameters"})
_CANCELLED = documented(answers={202: "Parameters"}, errors=(409,))


@router.post("/$reindex", openapi_extra=operation("reindex", REINDEX))
async def reindex_start(request: Request, base: BaseDep, fmt: FormatDep) -> Response:
    """Queue a reindex job; 202 with the job's status URL."""
    _admin(request, "$reindex")
    runner = _runner(request)
    types, reason = await asyncio.to_thread(_request, runner, await _pairs(request))
    created = await asyncio.to_thread(reindexing.create, runner.jobs, types, reason)
    assert created is not None  # no trigger: no unique key
    job = ReindexJob.of(created)
    runner.wake()
    location = f"{base}/$reindex/{job.id}"
    return fhir_response(_parameters(job, base), 202, fmt, headers={"Content-Location": location})


@router.get("/$reindex", openapi_extra=documented(answers={200: "Parameters"}))
async def reindex_list(request: Request, base: BaseDep, fmt: FormatDep) -> Response:
    """The newest jobs, newest first, each as a ``job`` parameter with parts."""
    found = await asyncio.to_thread(_runner(request).jobs.recent, reindexing.KIND)
    jobs = [ReindexJob.of(j) for j in found]
    parameter = [{"name": "job", "part": _parameters(job, base)["parameter"]} for job in jobs]
    return fhir_response({"resourceType": "Parameters", "parameter": parameter}, 200, fmt)


async def _job(request: Request, job_id: str) -> ReindexJob:
    job = await asyncio.to_thread(_runner(request).jobs.get, job_id[:36], reindexing.KIND)
    if job is None:
        raise NotFound(f"No reindex job '{job_id[:40]}'")
    return ReindexJob.of(job)


@router.get("/$reindex/{job_id}", openapi_extra=_JOB)
async def reindex_status(request: Request, job_id: str, base: BaseDep, fmt: FormatDep) -> Response:
    """The job: 202 with ``X-Progress`` while queued or running, 200 when it ended."""
    job = await _job(request, job_id)
    body = _parameters(job, base)
    if job.status in ("queued", "running"):
        headers = {"X-Progress": job.message, "Retry-After": RETRY_AFTER}
        return fhir_response(body, 202, fmt, headers=headers)
    return fhir_response(body, 200, fmt)


@router.delete("/$reindex/{job_id}", openapi_extra=_CANCELLED)
async def reindex_cancel(request: Request, job_id: str, base: BaseDep, fmt: FormatDep) -> Response:
    """Cancel a queued or running job (a running one stops after its current batch)."""
    _admin(request, "Cancelling a reindex job")
    job = await _job(request, job_id)
    runner = _runner(request)
    if not await asyncio.to_thread(runner.jobs.cancel, job.id):
        raise Conflict(f"Reindex job {job.id} has already ended ({job.status})")
    runner.wake()
    cancelled = await _job(request, job.id)
    return fhir_response(_parameters(cancelled, base), 202, fmt)
