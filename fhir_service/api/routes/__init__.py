"""FHIR REST routes, one module per group of interactions (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from typing import Any

INTERACTION = "x-fhir-interaction"
CAPABILITY = "x-fhir-capability"
OPERATION = "x-fhir-operation"
ALL_TYPES = "*"
"""``resource`` of an operation declared on every resource type."""


def interaction(code: str, **capabilities: Any) -> dict[str, Any]:
    """Route metadata naming the FHIR interaction it implements; the CapabilityStatement
    is generated from it (https://hl7.org/fhir/R4/capabilitystatement.html)."""
    extra: dict[str, Any] = {INTERACTION: code}
    if capabilities:
        extra[CAPABILITY] = capabilities
    return extra


def operation(name: str, definition: str, *, resource: str | None = None) -> dict[str, Any]:
    """Route metadata naming the ``$name`` operation it implements (its OperationDefinition
    canonical; ``resource`` for type- or instance-level operations, ``ALL_TYPES`` for those
    of every type), for the CapabilityStatement's ``operation`` entries."""
    return {OPERATION: {"name": name, "definition": definition, "resource": resource}}
