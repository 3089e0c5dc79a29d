"""Errors of an external FHIR server, typed from HTTP status and OperationOutcome.

https://hl7.org/fhir/R4/http.html#summary and https://hl7.org/fhir/R4/operationoutcome.html

    RemoteError                      502  the remote answered with an error
    ├── RemoteUnavailable            502  408, 429, 5xx: temporary, retried (honours Retry-After)
    ├── RemoteUnreachable            502  connection refused, dropped, timed out, cut body: retried
    ├── RemoteAuthError              502  401/403, or the token endpoint refused us
    ├── RemoteNotFound               502  404/410
    ├── RemoteConflict               502  409/412: a version conflict (If-Match)
    ├── RemoteRejected               502  any other 4xx
    └── RemoteUnsupported            502  the remote cannot do what the run was asked to do
"""

from __future__ import annotations

from typing import Any

from fhir_service.errors import FhirServiceError, Issue


def outcome_text(body: Any) -> str:
    """The diagnostics/details of an OperationOutcome body, joined; '' for anything else."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts: list[str] = []
    for issue in body.get("issue") or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if text:
            parts.append(str(text))
    return "; ".join(parts)


class RemoteError(FhirServiceError):
    """The external FHIR server failed a request; ``status`` is its HTTP status (0: none)."""

    status = 502
    code = "transient"

    def __init__(
        self,
        diagnostics: str,
        *,
        remote_status: int = 0,
        outcome: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        text = outcome_text(outcome)
        message = f"{diagnostics}: {text}" if text else diagnostics
        super().__init__(message, issues=[] if not text else [Issue("error", "exception", text)])
        self.remote_status = remote_status
        self.outcome = outcome
        self.retry_after = retry_after


class RemoteUnavailable(RemoteError):
    """408, 429 or 5xx: worth retrying later."""


class RemoteUnreachable(RemoteError):
    """No usable HTTP answer: connect error, timeout, dropped connection, truncated body."""


class RemoteAuthError(RemoteError):
    code = "security"


class RemoteNotFound(RemoteError):
    code = "not-found"


class RemoteConflict(RemoteError):
    code = "conflict"


class RemoteRejected(RemoteError):
    code = "processing"


class RemoteUnsupported(RemoteError):
    """Nothing of what the run was asked to do can be done with this remote (e.g. it answers
    no search of any type to pull): the run fails rather than succeed having done nothing."""

    code = "not-supported"


TRANSIENT = (RemoteUnavailable, RemoteUnreachable)


def error_for_status(
    status: int, method: str, url: str, body: Any, retry_after: float | None
) -> RemoteError:
    """The typed error for an HTTP error status."""
    outcome = body if isinstance(body, dict) else None
    message = f"{method} {url} -> {status}"
    kind: type[RemoteError]
    if status in (408, 429) or status >= 500:
        kind = RemoteUnavailable
    elif status in (401, 403):
        kind = RemoteAuthError
    elif status in (404, 410):
        kind = RemoteNotFound
    elif status in (409, 412):
        kind = RemoteConflict
    else:
        kind = RemoteRejected
    return kind(message, remote_status=status, outcome=outcome, retry_after=retry_after)
