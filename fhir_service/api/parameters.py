"""Operation input as a Parameters resource (https://hl7.org/fhir/R4/parameters.html): the
body read and checked once for every operation that takes one."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from fhir_service.api.body import check_json, read_body
from fhir_service.errors import InvalidRequest


def parameter_value(param: dict[str, Any]) -> Any:
    """The ``value[x]`` of one ``Parameters.parameter`` (None without one)."""
    for key, value in param.items():
        if key.startswith("value"):
            return value
    return None


async def parameters_of(request: Request) -> list[dict[str, Any]] | None:
    """The ``parameter`` entries of the request's Parameters body (None for an empty
    body); 400 for a body that is not JSON, not a Parameters resource, or an entry
    without a name."""
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body is not valid JSON") from None
    check_json(body)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("The body must be a Parameters resource")
    params = body.get("parameter") or []
    if not isinstance(params, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in params
    ):
        raise InvalidRequest("Parameters.parameter entries need a name")
    return params
