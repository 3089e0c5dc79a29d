"""FHIR responses: JSON bodies, version headers and OperationOutcomes
(https://hl7.org/fhir/R4/http.html#read, https://hl7.org/fhir/R4/http.html#ops).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import format_datetime
from typing import Any

import orjson
from starlette.responses import Response

from fhir_service.api.negotiation import FHIR_JSON, Format
from fhir_service.api.prefer import Return
from fhir_service.errors import Issue
from fhir_service.fhir.outcome import operation_outcome
from fhir_service.storage import Stored, StoredResult


def dump(body: dict[str, Any], pretty: bool = False) -> bytes:
    """JSON bytes of a resource; indented when ``pretty``."""
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)


def fhir_response(
    body: dict[str, Any] | None,
    status: int = 200,
    fmt: Format | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response with a JSON body (or none) in the negotiated media type."""
    fmt = fmt or Format()
    if body is None:
        return Response(b"", status_code=status, headers=headers)
    media_type = f"{fmt.media_type}; charset=utf-8"
    return Response(dump(body, fmt.pretty), status, headers, media_type)


def outcome_response(
    issues: list[Issue],
    status: int,
    fmt: Format | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An OperationOutcome response."""
    return fhir_response(operation_outcome(issues), status, fmt, headers)


def http_date(stored: Stored) -> str:
    """``Last-Modified`` of a version (RFC 9110 HTTP-date)."""
    return format_datetime(stored.last_updated, usegmt=True)


def version_headers(stored: Stored, base: str, *, location: bool = False) -> dict[str, str]:
    """``ETag``, ``Last-Modified`` and, for writes, ``Location`` (with ``_history``)."""
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored)}
    if location:
        headers["Location"] = f"{base}/{stored.location}"
        headers["Content-Location"] = headers["Location"]
    return headers


def error_format() -> Format:
    """Errors are written as FHIR JSON whatever went wrong with negotiation."""
    return Format(FHIR_JSON, False)


_DONE = {
    "created": "Created",
    "updated": "Updated",
    "unchanged": "No change: the content equals the current version of",
    "existing": "Found existing",
    "deleted": "Deleted",
}


def write_response(
    result: StoredResult,
    prefer: Return,
    fmt: Format,
    base: str,
    issues: Sequence[Issue] = (),
) -> Response:
    """The answer to a create, update or patch: 201 when created, else 200, with
    ``Location``, ``ETag``, ``Last-Modified`` and the body ``Prefer: return=`` asks for;
    ``issues`` (of validation on write) follow the first issue of an OperationOutcome."""
    stored = result.stored
    status = 201 if result.created else 200
    headers = version_headers(stored, base, location=True)
    if prefer == "minimal":
        return fhir_response(None, status, fmt, headers)
    if prefer == "OperationOutcome":
        text = f"{_DONE[result.outcome]} {stored.location}"
        done = Issue("information", "informational", text)
        return outcome_response([done, *issues], status, fmt, headers)
    return fhir_response(stored.resource, status, fmt, headers)
