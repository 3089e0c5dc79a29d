"""batch and transaction Bundles at the service base (https://hl7.org/fhir/R4/http.html#transaction).

A transaction runs in one database transaction: any failing entry rolls everything
back and the response is that entry's OperationOutcome. Batch entries are
independent, each answered with its own status. Validation on write
(``fhir_service.api.write_validation``) checks every entry written: an invalid entry
fails a transaction with 400 (the OperationOutcome names the entry) and a batch entry
with 422.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from fhir_service.api.deps import BASE_PATH, FormatDep, ResourceBody, StoreDep, WriteCheckDep
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import interaction
from fhir_service.errors import InvalidRequest, NotValid

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])


@router.post("/", include_in_schema=False, openapi_extra=interaction("transaction", batch=True))
@router.post("", openapi_extra=interaction("transaction", batch=True))
def transaction_or_batch(
    body: ResourceBody, store: StoreDep, fmt: FormatDep, check: WriteCheckDep
) -> Response:
    """POST [base] (with or without a trailing slash) with a ``transaction`` or ``batch`` Bundle."""
    if body.get("resourceType") != "Bundle":
        raise InvalidRequest(
            f"POST to the base needs a Bundle, not '{body.get('resourceType')}'",
            expression="resourceType",
        )
    kind = body.get("type")
    if kind not in ("transaction", "batch"):
        raise InvalidRequest(
            f"Bundle.type must be transaction or batch, not '{kind}'", expression="Bundle.type"
        )
    try:
        with store.begin(before_write=check) as repo:
            result = repo.transaction(body) if kind == "transaction" else repo.batch(body)
    except NotValid as exc:
        # The transaction fails as a whole: 400, naming the entry that failed validation
        # (https://hl7.org/fhir/R4/http.html#transaction-response); a batch entry keeps its 422.
        raise InvalidRequest(
            exc.diagnostics, expression=exc.expression, issues=exc.extra_issues
        ) from None
    if check is not None:
        result = check.annotate(result)
    return fhir_response(result, 200, fmt)
