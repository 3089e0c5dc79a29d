"""OperationOutcome built from our issues (https://hl7.org/fhir/R4/operationoutcome.html)."""

from __future__ import annotations

from typing import Any

from fhir_service.errors import Issue

_LINE_EXT = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"
_COL_EXT = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col"


def issue_json(issue: Issue) -> dict[str, Any]:
    """One OperationOutcome.issue as JSON."""
    out: dict[str, Any] = {"severity": issue.severity, "code": issue.code}
    extensions = []
    if issue.line is not None:
        extensions.append({"url": _LINE_EXT, "valueInteger": issue.line})
    if issue.column is not None:
        extensions.append({"url": _COL_EXT, "valueInteger": issue.column})
    if extensions:
        out = {"extension": extensions, **out}
    if issue.diagnostics:
        out["diagnostics"] = issue.diagnostics
    if issue.expression:
        out["expression"] = list(issue.expression)
    return out


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource; an empty list gives the spec's 'all OK' information issue."""
    if not issues:
        issues = [Issue("information", "informational", "All OK")]
    return {"resourceType": "OperationOutcome", "issue": [issue_json(i) for i in issues]}
