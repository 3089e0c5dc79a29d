"""Request dependencies and their ``Annotated`` aliases.

The application holds the Settings and one Store on ``app.state``; every route
opens its own unit of work (``store.begin()``), so the transaction boundary is
the request. The dependencies are ``async`` because they do no I/O: FastAPI runs
them on the event loop instead of sending each to the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request

from fhir_service.api.body import json_object, parse_json, read_body
from fhir_service.api.negotiation import (
    JSON_PATCH,
    RESOURCE_BODY_TYPES,
    Format,
    check_content_type,
    response_format,
)
from fhir_service.api.preconditions import if_match_version
from fhir_service.api.prefer import Return, return_preference
from fhir_service.errors import (
    InvalidRequest,
    NotFound,
    UnknownResourceType,
    UnsupportedMediaType,
)
from fhir_service.fhir.models import model_class
from fhir_service.settings import Settings
from fhir_service.storage import Store
from fhir_service.storage.ids import ID_PATTERN

BASE_PATH = "/fhir"


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_format(request: Request) -> Format:
    """The response format asked by ``_format``, ``Accept`` and ``_pretty`` (415 if none fits)."""
    return response_format(dict(request.query_params), request.headers.get("accept"))


async def get_base(request: Request) -> str:
    """The absolute service base: ``Settings.base_url`` or this request's ``…/fhir``."""
    configured = request.app.state.settings.base_url
    if configured:
        return str(configured).rstrip("/")
    return str(request.base_url).rstrip("/") + BASE_PATH


async def checked_type(type: Annotated[str, Path(alias="type")]) -> str:
    """The resource type of the URL; 404 'Unknown resource type' when the models lack it.

    The URL names no existing endpoint then (https://hl7.org/fhir/R4/http.html#general),
    hence 404 rather than the 400 given for a wrong ``resourceType`` in a body.
    """
    try:
        model_class(type)
    except UnknownResourceType:
        raise NotFound(f"Unknown resource type '{type}'", expression="type") from None
    return type


async def checked_id(id: Annotated[str, Path(alias="id")]) -> str:
    """The logical id of the URL; 400 unless it is a FHIR id (https://hl7.org/fhir/R4/datatypes.html#id)."""
    if not ID_PATTERN.match(id):
        raise InvalidRequest(
            f"'{id[:80]}' is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", expression="id"
        )
    return id


async def if_match(if_match: Annotated[str | None, Header(alias="if-match")] = None) -> int | None:
    return if_match_version(if_match)


async def prefer(prefer: Annotated[str | None, Header(alias="prefer")] = None) -> Return:
    return return_preference(prefer)


async def resource_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object: FHIR JSON media type, size limit, JSON checks."""
    check_content_type(request.headers.get("content-type"), RESOURCE_BODY_TYPES)
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    return json_object(parse_json(raw))


async def patch_body(request: Request) -> list[Any]:
    """A JSON Patch document (https://hl7.org/fhir/R4/http.html#patch)."""
    content_type = request.headers.get("content-type")
    if not content_type:
        raise UnsupportedMediaType(
            f"PATCH needs Content-Type: {JSON_PATCH}", expression="Content-Type"
        )
    check_content_type(content_type, frozenset({JSON_PATCH}))
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    value = parse_json(raw)
    if not isinstance(value, list):
        raise InvalidRequest("A JSON Patch document must be a JSON array of operations")
    return value


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
FormatDep = Annotated[Format, Depends(get_format)]
BaseDep = Annotated[str, Depends(get_base)]
TypeDep = Annotated[str, Depends(checked_type)]
IdDep = Annotated[str, Depends(checked_id)]
IfMatchDep = Annotated[int | None, Depends(if_match)]
PreferDep = Annotated[Return, Depends(prefer)]
ResourceBody = Annotated[dict[str, Any], Depends(resource_body)]
PatchBody = Annotated[list[Any], Depends(patch_body)]
