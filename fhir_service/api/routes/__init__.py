"""FHIR REST routes, one module per group of interactions (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from typing import Any

from fhir_service.api.openapi import documented

INTERACTION = "x-fhir-interaction"
CAPABILITY = "x-fhir-capability"
OPERATION = "x-fhir-operation"
ALL_TYPES = "*"
"""``resource`` of an operation declared on every resource type."""

_WRITE_ERRORS = (409, 412, 422)
_BUNDLE = {200: "Bundle"}
_OPENAPI: dict[str, dict[str, Any]] = {
    "capabilities": documented(answers={200: "CapabilityStatement"}),
    "read": documented(answers={200: "", 304: None}, errors=(410,)),
    "vread": documented(answers={200: "", 304: None}, errors=(410,)),
    "create": documented(body="", answers={200: "", 201: ""}, errors=_WRITE_ERRORS),
    "update": documented(body="", answers={200: "", 201: ""}, errors=_WRITE_ERRORS),
    "patch": documented(body="Parameters", patch=True, errors=_WRITE_ERRORS),
    "delete": documented(answers={200: "", 204: None}, errors=(409, 412)),
    "search-type": documented(form=True, answers=_BUNDLE),
    "search-system": documented(answers=_BUNDLE),
    "search-compartment": documented(answers=_BUNDLE),
    "history-system": documented(answers=_BUNDLE),
    "history-type": documented(answers=_BUNDLE),
    "history-instance": documented(answers=_BUNDLE),
    "transaction": documented(body="Bundle", answers=_BUNDLE, errors=_WRITE_ERRORS),
}
"""The OpenAPI request body and responses of each interaction; a GET or DELETE route
drops the body (fhir_service.api.openapi)."""
_OPERATIONS: dict[str, dict[str, Any]] = {
    "validate": documented(body="", answers={200: "OperationOutcome"}, errors=(422,)),
    "export": documented(body="Parameters", answers={202: "OperationOutcome"}),
    "reindex": documented(body="Parameters", answers={202: "Parameters"}, errors=(409,)),
    "everything": documented(answers=_BUNDLE),
    "document": documented(answers=_BUNDLE, errors=(422,)),
    "viewdefinition-export": documented(
        body="Parameters", answers={200: "Parameters", 202: "Parameters"}, errors=(404, 422)
    ),
    "viewdefinition-run": documented(
        body="Parameters",
        answers={
            200: {
                media_type: {"schema": {}}
                for media_type in (
                    "text/csv",
                    "application/json",
                    "application/x-ndjson",
                    "application/vnd.apache.parquet",
                )
            }
        },
        errors=(422,),
    ),
}
"""The OpenAPI request body (a Parameters resource, or the resource to validate) and
responses of each ``$operation``."""


def interaction(code: str, **capabilities: Any) -> dict[str, Any]:
    """Route metadata naming the FHIR interaction it implements; the CapabilityStatement
    is generated from it (https://hl7.org/fhir/R4/capabilitystatement.html). It carries the
    interaction's OpenAPI request body and responses."""
    extra: dict[str, Any] = {**_OPENAPI.get(code, {}), INTERACTION: code}
    if capabilities:
        extra[CAPABILITY] = capabilities
    return extra


def operation(name: str, definition: str, *, resource: str | None = None) -> dict[str, Any]:
    """Route metadata naming the ``$name`` operation it implements (its OperationDefinition
    canonical; ``resource`` for type- or instance-level operations, ``ALL_TYPES`` for those
    of every type), for the CapabilityStatement's ``operation`` entries, with the
    operation's OpenAPI request body and responses."""
    return {
        **_OPERATIONS.get(name, documented(body="Parameters")),
        OPERATION: {"name": name, "definition": definition, "resource": resource},
    }
