"""Liveness (``/healthz``) and readiness (``/readyz``, checks the database and its schema).

Neither needs a token in any auth mode: orchestrators probe without credentials. The
readiness check reads the schema revision, never a resource, so it needs no access
scope and tells a caller nothing but ready or not.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from fhir_service.api.responses import outcome_response
from fhir_service.errors import FhirServiceError, Issue
from fhir_service.storage import SqlStore
from fhir_service.storage.errors import DatabaseError

router = APIRouter()


@router.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """The database answers and its schema is current; 503 with an OperationOutcome if not."""
    try:
        database: SqlStore = request.app.state.store
        database.check_schema()
    except FhirServiceError as exc:
        return outcome_response(exc.issues, 503)
    except DatabaseError as exc:
        text = f"The database is not reachable ({type(exc).__name__})"
        return outcome_response([Issue("error", "transient", text)], 503)
    return JSONResponse({"status": "ready"})
