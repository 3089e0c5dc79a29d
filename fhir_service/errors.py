"""One error tree for the whole service.

Every error a client can cause maps to an HTTP status and to one
OperationOutcome issue (https://hl7.org/fhir/R4/operationoutcome.html):
severity, code (from http://hl7.org/fhir/issue-type), diagnostics and an
optional FHIRPath expression saying where the problem is.

    FhirServiceError                 500 exception   (never raised for client mistakes)
    ├── InvalidRequest               400 invalid     malformed JSON, bad parameters, wrong body
    │   ├── InvalidResource          400 structure   resource does not parse per the R4 models
    │   ├── UnknownResourceType      400 not-supported
    │   └── InvalidView              400 invalid     a ViewDefinition the SQL on FHIR rules reject
    ├── Unauthorized                 401 login
    ├── Forbidden                    403 forbidden
    ├── NotFound                     404 not-found
    ├── MethodNotAllowed             405 not-supported
    ├── Conflict                     409 conflict    version or id conflict
    ├── Gone                         410 deleted     read of a deleted resource
    ├── RequestTimeout               408 timeout     the body did not arrive in time
    ├── PreconditionFailed           412 conflict    If-Match mismatch, conditional matched several
    ├── PayloadTooLarge              413 too-costly
    ├── UnsupportedMediaType         415 not-supported
    ├── Unprocessable                422 processing  business rule / validation failed
    │   └── NotValid                 422 processing  validation on write found errors
    └── TooManyRequests              429 throttled

This module imports nothing of ours, so every layer may raise these errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Issue:
    """One OperationOutcome.issue, independent of any model library."""

    severity: str
    code: str
    diagnostics: str
    expression: list[str] = field(default_factory=list)
    line: int | None = None
    column: int | None = None


class FhirServiceError(Exception):
    """Base of every error the service raises on purpose."""

    status: int = 500
    code: str = "exception"
    severity: str = "error"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: list[str] | str | None = None,
        issues: list[Issue] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if isinstance(expression, str):
            expression = [expression]
        self.expression = expression or []
        self.extra_issues = issues or []

    @property
    def issues(self) -> list[Issue]:
        """The OperationOutcome issues: this error first, then any it carries."""
        head = Issue(self.severity, self.code, self.diagnostics, list(self.expression))
        return [head, *self.extra_issues]


class InvalidRequest(FhirServiceError):
    status = 400
    code = "invalid"


class InvalidResource(InvalidRequest):
    code = "structure"


class UnknownResourceType(InvalidRequest):
    code = "not-supported"


class Unauthorized(FhirServiceError):
    status = 401
    code = "login"


class Forbidden(FhirServiceError):
    status = 403
    code = "forbidden"


class NotFound(FhirServiceError):
    status = 404
    code = "not-found"


class MethodNotAllowed(FhirServiceError):
    status = 405
    code = "not-supported"


class Conflict(FhirServiceError):
    status = 409
    code = "conflict"


class Gone(FhirServiceError):
    status = 410
    code = "deleted"


class RequestTimeout(FhirServiceError):
    status = 408
    code = "timeout"


class PreconditionFailed(FhirServiceError):
    status = 412
    code = "conflict"


class PayloadTooLarge(FhirServiceError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(FhirServiceError):
    status = 415
    code = "not-supported"


class Unprocessable(FhirServiceError):
    status = 422
    code = "processing"


class NotValid(Unprocessable):
    """A resource refused by validation on write (422; a transaction holding it fails with
    400 as a whole, https://hl7.org/fhir/R4/http.html#transaction-response)."""


class TooManyRequests(FhirServiceError):
    status = 429
    code = "throttled"


class InvalidView(InvalidRequest):
    """A ViewDefinition that breaks the SQL on FHIR v2 rules
    (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html)."""

    code = "invalid"
