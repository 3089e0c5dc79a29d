"""Request dependencies and their ``Annotated`` aliases.

The application holds the Settings and one Store on ``app.state``; every route
opens its own unit of work (``store.begin()``), so the transaction boundary is
the request. The dependencies are ``async`` because they do no I/O: FastAPI runs
them on the event loop instead of sending each to the thread pool. Each is a plain
function too, for the hot routes (read, vread) that call them directly: FastAPI spends
more on solving a dependency than these checks cost.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request

from fhir_service.api.body import json_object, parse_json, read_body
from fhir_service.api.negotiation import (
    FHIR_JSON,
    JSON,
    JSON_PATCH,
    RESOURCE_BODY_TYPES,
    Format,
    check_content_type,
    response_format,
)
from fhir_service.api.preconditions import if_match_version
from fhir_service.api.prefer import Return, return_preference
from fhir_service.api.write_validation import WriteCheck, write_check
from fhir_service.errors import (
    InvalidRequest,
    NotFound,
    UnknownResourceType,
    UnsupportedMediaType,
)
from fhir_service.fhir.fhirpath_patch import is_fhirpath_patch
from fhir_service.fhir.models import model_class
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings
from fhir_service.storage import Store
from fhir_service.storage.ids import ID_PATTERN

BASE_PATH = "/fhir"


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def request_store(request: Request) -> Store:
    """The store this request works on: the application's store seen through the
    caller's access scope (``app.state.store_view``, installed by the security layer)."""
    viewed: Store = request.app.state.store_view(request)
    return viewed


def request_format(request: Request) -> Format:
    """The response format asked by ``_format``, ``Accept`` and ``_pretty`` (415 if none fits)."""
    query = dict(request.query_params) if request.scope["query_string"] else {}
    return response_format(query, request.headers.get("accept"))


def resource_type(type: str) -> str:
    """The resource type of the URL; 404 'Unknown resource type' when the models lack it.

    The URL names no existing endpoint then (https://hl7.org/fhir/R4/http.html#general),
    hence 404 rather than the 400 given for a wrong ``resourceType`` in a body.
    """
    try:
        model_class(type)
    except UnknownResourceType:
        raise NotFound(f"Unknown resource type '{type}'", expression="type") from None
    return type


def logical_id(id: str) -> str:
    """The logical id of the URL; 400 unless it is a FHIR id (https://hl7.org/fhir/R4/datatypes.html#id)."""
    if not ID_PATTERN.match(id):
        raise InvalidRequest(
            f"'{id[:80]}' is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", expression="id"
        )
    return id


async def get_store(request: Request) -> Store:
    return request_store(request)


async def get_format(request: Request) -> Format:
    return request_format(request)


async def get_base(request: Request) -> str:
    """The absolute service base: ``Settings.base_url`` or this request's ``…/fhir``."""
    configured = request.app.state.settings.base_url
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/") + BASE_PATH


async def checked_type(type: Annotated[str, Path(alias="type")]) -> str:
    return resource_type(type)


async def checked_id(id: Annotated[str, Path(alias="id")]) -> str:
    return logical_id(id)


async def if_match(if_match: Annotated[str | None, Header(alias="if-match")] = None) -> int | None:
    return if_match_version(if_match)


async def prefer(prefer: Annotated[str | None, Header(alias="prefer")] = None) -> Return:
    return return_preference(prefer)


async def resource_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object: FHIR JSON media type, size limit, JSON checks."""
    check_content_type(request.headers.get("content-type"), RESOURCE_BODY_TYPES)
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    return json_object(parse_json(raw))


async def patch_body(request: Request) -> list[Any] | dict[str, Any]:
    """A patch (https://hl7.org/fhir/R4/http.html#patch): a JSON Patch array sent as
    ``application/json-patch+json``, or a FHIRPath Patch Parameters resource sent as FHIR
    JSON (https://hl7.org/fhir/R4/fhirpatch.html); ``application/json`` may carry either."""
    content_type = request.headers.get("content-type")
    if not content_type:
        raise UnsupportedMediaType(
            f"PATCH needs Content-Type: {JSON_PATCH} or {FHIR_JSON}", expression="Content-Type"
        )
    check_content_type(content_type, RESOURCE_BODY_TYPES | {JSON_PATCH})
    media_type = content_type.split(";", 1)[0].strip().lower()
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    value = parse_json(raw)
    if isinstance(value, list) and media_type in (JSON_PATCH, JSON):
        return value
    if media_type == JSON_PATCH:
        raise InvalidRequest("A JSON Patch document must be a JSON array of operations")
    if not is_fhirpath_patch(value):
        raise InvalidRequest(
            "A FHIRPath Patch must be a Parameters resource "
            "(https://hl7.org/fhir/R4/fhirpatch.html)",
            expression="resourceType",
        )
    return value


async def get_write_check(request: Request) -> WriteCheck | None:
    """Validation on write for this request (None when the setting is ``off``).

    Every write needs the core package's SearchParameters to index what it writes: without
    them the write answers 503 (``PackageNotInstalled``) instead of storing a resource that
    no search would find."""
    search_registry.get_registry()
    settings = request.app.state.settings
    return write_check(
        request.app.state.validator, settings.validate_on_write, settings.unknown_profiles
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
FormatDep = Annotated[Format, Depends(get_format)]
BaseDep = Annotated[str, Depends(get_base)]
TypeDep = Annotated[str, Depends(checked_type)]
IdDep = Annotated[str, Depends(checked_id)]
IfMatchDep = Annotated[int | None, Depends(if_match)]
PreferDep = Annotated[Return, Depends(prefer)]
ResourceBody = Annotated[dict[str, Any], Depends(resource_body)]
PatchBody = Annotated[list[Any] | dict[str, Any], Depends(patch_body)]
WriteCheckDep = Annotated[WriteCheck | None, Depends(get_write_check)]
