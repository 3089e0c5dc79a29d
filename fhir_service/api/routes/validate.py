"""The $validate operation (https://hl7.org/fhir/R4/resource-operation-validate.html).

``POST /fhir/$validate`` and ``POST /fhir/{type}/$validate`` take a Parameters
resource (``resource``, ``mode``, ``profile``) or the bare resource, with ``mode``
and ``profile`` also accepted in the query; ``GET /fhir/{type}/{id}/$validate``
validates the stored resource. The answer is 200 with an OperationOutcome of every
issue, errors included: the operation succeeded in validating. Issues of a posted
body carry its line and column (extensions operationoutcome-issue-line and -col). A
body that is not JSON, or a request that cannot be validated, is a 400 with an
OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from fhir_service.api.body import check_json, read_body
from fhir_service.api.deps import BASE_PATH, FormatDep, IdDep, StoreDep, TypeDep
from fhir_service.api.negotiation import RESOURCE_BODY_TYPES, check_content_type
from fhir_service.api.parameters import parameter_value
from fhir_service.api.responses import outcome_response
from fhir_service.api.routes import ALL_TYPES, operation
from fhir_service.errors import InvalidRequest, Issue
from fhir_service.validation.json_syntax import Pointer, parse_json
from fhir_service.validation.options import Options

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

MODES = ("create", "update", "delete", "profile")
DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"


@dataclass
class _Request:
    """What to validate: the resource, where it sits in the body text, mode and profiles."""

    resource: dict[str, Any] | None
    at: Pointer
    mode: str | None
    profiles: list[str]


def _split(body: dict[str, Any], query: dict[str, list[str]]) -> _Request:
    """The resource (a Parameters' ``resource`` or the bare body), mode and profiles, from
    the body and the query."""
    modes = list(query.get("mode", []))
    profiles = list(query.get("profile", []))
    resource: dict[str, Any] | None = body
    at: Pointer = ()
    if body.get("resourceType") == "Parameters":
        resource = None
        for index, param in enumerate(body.get("parameter") or []):
            if not isinstance(param, dict):
                raise InvalidRequest("Parameters.parameter must hold objects")
            name = param.get("name")
            if name == "resource":
                resource = param.get("resource")
                at = ("parameter", index, "resource")
                if not isinstance(resource, dict):
                    raise InvalidRequest("The 'resource' parameter holds no resource")
            elif name == "mode":
                modes.append(str(parameter_value(param)))
            elif name == "profile":
                profiles.append(str(parameter_value(param)))
    if len(modes) > 1:
        raise InvalidRequest("The mode parameter may be given once", expression="mode")
    mode = modes[0] if modes else None
    if mode is not None and mode not in MODES:
        raise InvalidRequest(
            f"mode must be one of {', '.join(MODES)}, not {mode!r}", expression="mode"
        )
    return _Request(resource, at, mode, profiles)


def _validate(
    request: Request,
    asked: _Request,
    type_: str | None,
    id_: str | None = None,
    text: str | None = None,
) -> list[Issue]:
    """The issues of the asked resource; with the body ``text``, each carries its line
    and column (as ``fhir-service validate`` reports them)."""
    resource, mode = asked.resource, asked.mode
    if mode == "delete":
        return [
            Issue(
                "information",
                "informational",
                "No rule of this server prevents deleting the resource",
            )
        ]
    if resource is None:
        raise InvalidRequest("No resource to validate: give it as the body or as 'resource'")
    if type_ is not None and resource.get("resourceType") != type_:
        raise InvalidRequest(
            f"The resource is a {resource.get('resourceType')}, not a {type_}",
            expression="resourceType",
        )
    options = Options(profiles=tuple(asked.profiles))
    validator = request.app.state.validator.get()
    if text is None:
        issues = validator.validate_resource(resource, options)
    else:
        issues = validator.validate_text(text, options, at=asked.at)
    rtype = str(resource.get("resourceType"))
    if mode == "update" and not resource.get("id"):
        issues.append(
            Issue("error", "required", "An update needs the resource id", [f"{rtype}.id"])
        )
    if mode == "update" and id_ is not None and resource.get("id") != id_:
        issues.append(
            Issue("error", "invalid", f"The id does not match the URL id {id_}", [f"{rtype}.id"])
        )
    return issues


def _query(request: Request) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        found.setdefault(key, []).append(value)
    return found


async def _body(request: Request) -> tuple[dict[str, Any], str]:
    check_content_type(request.headers.get("content-type"), RESOURCE_BODY_TYPES)
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    if not raw.strip():
        raise InvalidRequest("The request body is empty; a resource or Parameters is required")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = parse_json(raw.decode("utf-8", errors="replace"))
        issues = [f.issue for f in parsed.findings] or [
            Issue("fatal", "invalid", "The body is not valid JSON")
        ]
        raise InvalidRequest(issues[0].diagnostics, issues=issues[1:]) from None
    check_json(value)
    if not isinstance(value, dict):
        raise InvalidRequest("The body must be a JSON object: a resource or Parameters")
    return value, raw.decode("utf-8")


async def _answer(request: Request, fmt: Any, type_: str | None) -> Response:
    body, text = await _body(request)
    # Split the body as the validator reads the text: with a duplicate property the
    # validator keeps the first value where orjson keeps the last.
    read = parse_json(text).value
    asked = _split(read if isinstance(read, dict) else body, _query(request))
    issues = await run_in_threadpool(_validate, request, asked, type_, None, text)
    return outcome_response(issues, 200, fmt)


@router.post("/$validate", openapi_extra=operation("validate", DEFINITION))
async def validate_system(request: Request, fmt: FormatDep) -> Response:
    """Validate the resource of the body, whatever its type."""
    return await _answer(request, fmt, None)


@router.post(
    "/{type}/$validate", openapi_extra=operation("validate", DEFINITION, resource=ALL_TYPES)
)
async def validate_type(type: TypeDep, request: Request, fmt: FormatDep) -> Response:
    """Validate a resource of the URL's type."""
    return await _answer(request, fmt, type)


@router.get(
    "/{type}/{id}/$validate", openapi_extra=operation("validate", DEFINITION, resource=ALL_TYPES)
)
async def validate_instance(
    type: TypeDep, id: IdDep, request: Request, fmt: FormatDep, store: StoreDep
) -> Response:
    """Validate the current version of a stored resource (``mode`` and ``profile`` in the query)."""
    asked = _split({}, _query(request))

    def read() -> dict[str, Any]:
        with store.begin(readonly=True) as repo:
            return repo.read(type, id).resource or {}

    asked.resource = await run_in_threadpool(read)
    issues = await run_in_threadpool(_validate, request, asked, type, id)
    return outcome_response(issues, 200, fmt)
