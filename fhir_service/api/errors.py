"""Every error as an OperationOutcome (https://hl7.org/fhir/R4/http.html#ops).

- ``FhirServiceError``: its own status and issues;
- request validation and JSON decode errors: 400;
- unknown routes 404, wrong methods 405 with ``Allow`` naming every method some route
  serves on that path (RFC 9110 section 15.5.6), other HTTP errors their status;
- a client that went away before its body was read: logged as such, no traceback;
- database rejections of a value: 400;
- an unreachable database, a transient database failure or a pool that stayed busy:
  503 with Retry-After;
- anything unexpected: 500 with a generic OperationOutcome. The log names the
  exception type and the code location only, never the message (which may quote
  request data) nor the body.
"""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from fhir_service.api.responses import outcome_response
from fhir_service.errors import FhirServiceError, Issue
from fhir_service.storage.errors import DatabaseBusy, DatabaseUnavailable, DataRejected

log = logging.getLogger("fhir_service.api")

_HTTP_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirServiceError)
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return outcome_response(exc.issues, exc.status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        issues.append(Issue("error", "invalid", f"{err.get('msg')} ({where})", [where]))
    return outcome_response(issues or [Issue("error", "invalid", "Invalid request")], 400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        text = f"No FHIR interaction at {request.method} {request.url.path}"
    elif status == 405:
        text = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        text = str(exc.detail)
    severity = "error" if status >= 400 else "information"
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return outcome_response(
        [Issue(severity, _HTTP_CODES.get(status, "exception"), text)], status, headers=headers
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method of the routes whose path pattern matches the request's path."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex, served = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and served and regex.match(path):
            methods.update(served)
    return sorted(methods)


async def _data_error(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: the database rejected a value", request.method, request.url.path)
    return outcome_response(
        [Issue("error", "invalid", "The database rejected a value of the request as invalid")],
        400,
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """The database could not be reached or answered with a transient failure (a
    connection the server closed, a lock wait that ran out), or every pooled connection
    stayed busy for the pool timeout: 503 with Retry-After."""
    log.error(
        "%s %s: database unavailable (%s)", request.method, request.url.path, type(exc).__name__
    )
    return outcome_response(
        [Issue("error", "transient", "The database is unavailable; retry the request")],
        503,
        headers={"Retry-After": "1"},
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection before sending its whole body: nobody reads the
    answer, and nothing went wrong on this side."""
    log.info(
        "%s %s: the client disconnected before its body arrived", request.method, request.url.path
    )
    return outcome_response([Issue("error", "incomplete", "The request body is incomplete")], 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s %s raised %s\n%s", request.method, request.url.path, type(exc).__name__, frames)
    return outcome_response(
        [Issue("fatal", "exception", "Internal server error; the server log has details")], 500
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(FhirServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DataRejected, _data_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(DatabaseBusy, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
