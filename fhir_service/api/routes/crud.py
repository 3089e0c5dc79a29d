"""Instance and type interactions: read, vread, create, update, patch, delete and their
conditional forms (https://hl7.org/fhir/R4/http.html#read to #delete).

Writes go through validation on write when it is configured
(``fhir_service.api.write_validation``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Request
from starlette.responses import Response

from fhir_service.api.deps import (
    BASE_PATH,
    BaseDep,
    FormatDep,
    IdDep,
    IfMatchDep,
    PatchBody,
    PreferDep,
    ResourceBody,
    StoreDep,
    TypeDep,
    WriteCheckDep,
    logical_id,
    request_format,
    request_store,
    resource_type,
)
from fhir_service.api.negotiation import Format
from fhir_service.api.preconditions import not_modified
from fhir_service.api.prefer import Return
from fhir_service.api.responses import (
    fhir_response,
    outcome_response,
    version_headers,
    write_response,
)
from fhir_service.api.routes import interaction
from fhir_service.api.shaping import parse_shape
from fhir_service.api.write_validation import WriteCheck
from fhir_service.errors import InvalidRequest, Issue, NotFound
from fhir_service.storage import Stored, StoredResult

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

_CONTROL = frozenset({"_format", "_pretty"})


def _criteria(request: Request) -> str:
    """Criteria of a conditional interaction: the query minus ``_format`` and ``_pretty``."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in _CONTROL]
    if not pairs:
        raise InvalidRequest(
            f"{request.method} on a resource type needs search criteria in the URL "
            "(https://hl7.org/fhir/R4/http.html#cond-update)"
        )
    return urlencode(pairs)


def _check_body_type(body: dict[str, object], resource_type: str) -> None:
    actual = body.get("resourceType")
    if actual != resource_type:
        raise InvalidRequest(
            f"The body's resourceType '{actual}' does not match the URL type '{resource_type}'",
            expression="resourceType",
        )


def _written(
    result: StoredResult, prefer: Return, fmt: Format, base: str, check: WriteCheck | None
) -> Response:
    """The write's response, with the issues of validation on write when there are any."""
    issues = check.issues_of(result.stored.location) if check is not None else []
    return write_response(result, prefer, fmt, base, issues)


def _read_response(stored: Stored, request: Request, fmt: Format, type: str) -> Response:
    headers = version_headers(stored, "")
    if not_modified(
        stored, request.headers.get("if-none-match"), request.headers.get("if-modified-since")
    ):
        return Response(status_code=304, headers=headers)
    resource = stored.resource or {}
    query = request.query_params if request.scope["query_string"] else {}
    if "_summary" in query or "_elements" in query:
        resource = parse_shape(dict(query), type).apply(resource)
    return fhir_response(resource, 200, fmt, headers)


@router.get("/{type}/{id}", openapi_extra=interaction("read"))
async def read(
    type: Annotated[str, Path()], id: Annotated[str, Path()], request: Request
) -> Response:
    """https://hl7.org/fhir/R4/http.html#read, with If-None-Match / If-Modified-Since (#cread).

    The hottest route: the checks of ``TypeDep``, ``IdDep``, ``StoreDep`` and ``FormatDep``
    are called directly, in that order (solving them as dependencies cost FastAPI more
    than the read), and the read is awaited through ``Store.run_read`` (on SQLite it runs
    right on the event loop).
    """
    type, id = resource_type(type), logical_id(id)
    store, fmt = request_store(request), request_format(request)
    stored = await store.run_read(lambda repo: repo.read(type, id))
    return _read_response(stored, request, fmt, type)


@router.get("/{type}/{id}/_history/{vid}", openapi_extra=interaction("vread"))
async def vread(
    type: Annotated[str, Path()], id: Annotated[str, Path()], vid: str, request: Request
) -> Response:
    """https://hl7.org/fhir/R4/http.html#vread (run as ``read`` is)"""
    type, id = resource_type(type), logical_id(id)
    store, fmt = request_store(request), request_format(request)
    if not (vid.isascii() and vid.isdigit()) or len(vid) > 18:
        raise NotFound(f"{type}/{id} has no version '{vid[:40]}'", expression="vid")
    version = int(vid)
    stored = await store.run_read(lambda repo: repo.vread(type, id, version))
    return _read_response(stored, request, fmt, type)


@router.post("/{type}", openapi_extra=interaction("create", conditionalCreate=True))
def create(
    type: TypeDep,
    body: ResourceBody,
    store: StoreDep,
    fmt: FormatDep,
    base: BaseDep,
    prefer: PreferDep,
    check: WriteCheckDep,
    if_none_exist: Annotated[str | None, Header(alias="if-none-exist")] = None,
) -> Response:
    """https://hl7.org/fhir/R4/http.html#create and conditional create (#ccreate).

    A client ``id`` in the body is ignored: the server assigns the id.
    """
    _check_body_type(body, type)
    criteria = if_none_exist.strip() if if_none_exist and if_none_exist.strip() else None
    with store.begin(before_write=check) as repo:
        result = repo.create({k: v for k, v in body.items() if k != "id"}, if_none_exist=criteria)
    return _written(result, prefer, fmt, base, check)


@router.put("/{type}/{id}", openapi_extra=interaction("update", updateCreate=True))
def update(
    type: TypeDep,
    id: IdDep,
    body: ResourceBody,
    store: StoreDep,
    fmt: FormatDep,
    base: BaseDep,
    prefer: PreferDep,
    check: WriteCheckDep,
    if_match: IfMatchDep,
) -> Response:
    """https://hl7.org/fhir/R4/http.html#update; an unknown id creates the resource (201)."""
    _check_body_type(body, type)
    if body.get("id") != id:
        raise InvalidRequest(
            f"The body's id '{body.get('id')}' does not match the URL id '{id}'",
            expression="id",
        )
    with store.begin(before_write=check) as repo:
        result = repo.update(type, id, body, if_match=if_match)
    return _written(result, prefer, fmt, base, check)


@router.put("/{type}", openapi_extra=interaction("update", conditionalUpdate=True))
def conditional_update(
    type: TypeDep,
    body: ResourceBody,
    request: Request,
    store: StoreDep,
    fmt: FormatDep,
    base: BaseDep,
    prefer: PreferDep,
    check: WriteCheckDep,
    if_match: IfMatchDep,
) -> Response:
    """https://hl7.org/fhir/R4/http.html#cond-update: PUT /Type?criteria."""
    _check_body_type(body, type)
    criteria = _criteria(request)
    with store.begin(before_write=check) as repo:
        result = repo.conditional_update(type, criteria, body, if_match=if_match)
    return _written(result, prefer, fmt, base, check)


@router.patch("/{type}/{id}", openapi_extra=interaction("patch"))
def patch(
    type: TypeDep,
    id: IdDep,
    operations: PatchBody,
    store: StoreDep,
    fmt: FormatDep,
    base: BaseDep,
    prefer: PreferDep,
    check: WriteCheckDep,
    if_match: IfMatchDep,
) -> Response:
    """https://hl7.org/fhir/R4/http.html#patch with JSON Patch (RFC 6902) or FHIRPath Patch
    (https://hl7.org/fhir/R4/fhirpatch.html)."""
    with store.begin(before_write=check) as repo:
        result = repo.patch(type, id, operations, if_match=if_match)
    return _written(result, prefer, fmt, base, check)


@router.patch("/{type}", openapi_extra=interaction("patch"))
def conditional_patch(
    type: TypeDep,
    operations: PatchBody,
    request: Request,
    store: StoreDep,
    fmt: FormatDep,
    base: BaseDep,
    prefer: PreferDep,
    check: WriteCheckDep,
    if_match: IfMatchDep,
) -> Response:
    """https://hl7.org/fhir/R4/http.html#patch, conditional: PATCH /Type?criteria patches the
    one match (404 when none, 412 when several)."""
    criteria = _criteria(request)
    with store.begin(before_write=check) as repo:
        result = repo.conditional_patch(type, criteria, operations, if_match=if_match)
    return _written(result, prefer, fmt, base, check)


def _deleted_response(markers: list[Stored], what: str, prefer: str, fmt: Format) -> Response:
    headers = version_headers(markers[0], "") if markers else {}
    headers.pop("Last-Modified", None)
    if prefer == "minimal":
        return Response(status_code=204, headers=headers)
    text = (
        f"Deleted {', '.join(m.location for m in markers)}"
        if markers
        else f"Nothing to delete: {what} does not exist or is already deleted"
    )
    return outcome_response([Issue("information", "informational", text)], 200, fmt, headers)


@router.delete("/{type}/{id}", openapi_extra=interaction("delete"))
def delete(
    type: TypeDep,
    id: IdDep,
    store: StoreDep,
    fmt: FormatDep,
    prefer: PreferDep,
    if_match: IfMatchDep,
) -> Response:
    """https://hl7.org/fhir/R4/http.html#delete: 200 with an OperationOutcome, or 204 when
    ``Prefer: return=minimal``; a later read answers 410 Gone."""
    with store.begin() as repo:
        marker = repo.delete(type, id, if_match=if_match)
    return _deleted_response([marker] if marker else [], f"{type}/{id}", prefer, fmt)


@router.delete("/{type}", openapi_extra=interaction("delete", conditionalDelete="single"))
def conditional_delete(
    type: TypeDep, request: Request, store: StoreDep, fmt: FormatDep, prefer: PreferDep
) -> Response:
    """https://hl7.org/fhir/R4/http.html#3.1.0.7.1 (single mode: several matches give 412)."""
    criteria = _criteria(request)
    with store.begin() as repo:
        markers = repo.conditional_delete(type, criteria)
    return _deleted_response(markers, f"{type}?{criteria}", prefer, fmt)
