"""The OpenAPI document at ``/openapi.json``: request bodies and error responses declared.

The FHIR routes read their bodies themselves (FHIR JSON, JSON Patch, form-encoded
searches), so FastAPI cannot infer them. ``documented`` gives the ``openapi_extra`` of
a route: its request body (a FHIR resource object, named by ``resourceType``), its
answers in ``application/fhir+json`` and the error statuses of its kind of interaction,
each an OperationOutcome. ``install`` completes the generated document for every route:

- a request body is kept only on methods that carry one (a GET or DELETE shares the
  ``openapi_extra`` of its POST twin);
- every operation lists the errors any request may get (400, 401, 403, 404, 429, 503),
  those with a body also 408, 413 and 415;
- a ``{type}`` path parameter lists the resource types (an unknown one is a 404);
- FastAPI's default 200 is removed where the route declares another success status;
- FastAPI's 422 ``HTTPValidationError`` is removed: a request that fails FastAPI's own
  validation gets 400 with an OperationOutcome (fhir_service.api.errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    304: "Not Modified",
    400: "Bad request: an invalid parameter, header or body",
    401: "Unauthorized: no valid access token (when authorization is enabled)",
    403: "Forbidden: the token's scopes do not allow this",
    404: "Not found: no such resource, type or route",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "The client was too slow sending its body",
    409: "Conflict: a version conflict or a write that breaks a reference",
    410: "Gone: the resource is deleted",
    412: "Precondition failed: If-Match or conditional criteria with several matches",
    413: "The body is larger than the server accepts",
    415: "Unsupported Content-Type",
    422: "Unprocessable: the resource breaks a FHIR rule or profile",
    429: "Too many requests; see Retry-After",
    500: "The job failed",
    503: "The database is unavailable; retry after Retry-After",
}
ANY_REQUEST = (400, 401, 403, 404, 429, 503)
"""Errors any request may get: a bad parameter, missing or insufficient authorization,
an unknown path or id, rate limiting, an unavailable database."""
WITH_BODY = (408, 413, 415)
"""Errors of a request that carries a body."""


def resource_schema(type_name: str | None = None) -> dict[str, Any]:
    """The JSON schema of a FHIR resource object; ``type_name`` fixes its ``resourceType``."""
    kind: dict[str, Any] = {"type": "string"}
    if type_name:
        kind = {"type": "string", "enum": [type_name]}
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": kind},
        "additionalProperties": True,
    }


OUTCOME = resource_schema("OperationOutcome")
JSON_PATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        },
    },
}


def _fhir_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {FHIR_JSON: {"schema": schema}, JSON: {"schema": schema}}


def _answer(status: int, schema: dict[str, Any] | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": _REASONS.get(status, "OK")}
    if schema is not None:
        answer["content"] = _fhir_content(schema)
    return answer


Answer = str | None | dict[str, Any]
"""A success answer: the resource type of its body ("" any type), None for no body, or
the OpenAPI ``content`` of a body that is not a FHIR resource."""


def _success(status: int, kind: Answer) -> dict[str, Any]:
    if isinstance(kind, dict):
        return {"description": _REASONS.get(status, "OK"), "content": kind}
    return _answer(status, None if kind is None else resource_schema(kind or None))


def error_responses(statuses: Iterable[int]) -> dict[str, Any]:
    """``responses`` entries for error ``statuses``, each an OperationOutcome."""
    return {str(status): _answer(status, OUTCOME) for status in statuses}


def documented(
    *,
    body: str | None = None,
    patch: bool = False,
    form: bool = False,
    answers: Mapping[int, Answer] | None = None,
    errors: Iterable[int] = (),
) -> dict[str, Any]:
    """The ``openapi_extra`` declaring a route's body and responses.

    ``body``: the request body is a FHIR resource of that type ("" for any type);
    ``patch``: also JSON Patch; ``form``: a form-encoded search (alone without ``body``).
    ``answers``: success status -> its body (``Answer``); 200 with any resource if none.
    ``errors``: the statuses of failures particular to the route, besides those any
    request may get (``ANY_REQUEST``) and those of a body (``WITH_BODY``).
    """
    extra: dict[str, Any] = {}
    content: dict[str, Any] = {}
    if body is not None:
        content.update(_fhir_content(resource_schema(body or None)))
    if patch:
        content[JSON_PATCH] = {"schema": JSON_PATCH_SCHEMA}
    if form:
        content[FORM] = {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}
    if content:
        extra["requestBody"] = {"required": body is not None, "content": content}
    responses = {
        str(status): _success(status, kind) for status, kind in (answers or {200: ""}).items()
    }
    responses.update(error_responses(errors))
    extra["responses"] = responses
    return extra


_NO_BODY = {"get", "head", "delete", "options"}
_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"
_FASTAPI_DEFAULT = "Successful Response"


def _complete(operation: dict[str, Any], method: str, types: list[str]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == "type":
            parameter["schema"] = {"type": "string", "enum": types}
    if method in _NO_BODY:
        operation.pop("requestBody", None)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, answer in list(responses.items()):
        content = answer.get("content", {})
        for media_type, entry in list(content.items()):
            if entry.get("schema", {}).get("$ref") == _FASTAPI_VALIDATION:
                del content[media_type]
        if status == "422" and not content:
            del responses[status]
    default = responses.get("200", {})
    declared = [s for s in responses if s.startswith("2") and s != "200"]
    if declared and default.get("description") == _FASTAPI_DEFAULT:
        del responses["200"]  # FastAPI's own 200 on a route that answers another 2xx
    statuses = [*ANY_REQUEST, *(WITH_BODY if "requestBody" in operation else ())]
    for status, answer in error_responses(statuses).items():
        responses.setdefault(status, answer)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, completed as the module docstring says."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    from fhir_service.api.routes.metadata import resource_types  # it imports this module

    types = list(resource_types())
    for path in document.get("paths", {}).values():
        for method, operation in path.items():
            if isinstance(operation, dict):
                _complete(operation, method, types)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if "components" in document and not schemas:
        document["components"].pop("schemas", None)
    if "components" in document and not document["components"]:
        del document["components"]
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
