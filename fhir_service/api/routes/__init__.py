"""FHIR REST routes, one module per group of interactions (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from typing import Any

INTERACTION = "x-fhir-interaction"
CAPABILITY = "x-fhir-capability"


def interaction(code: str, **capabilities: Any) -> dict[str, Any]:
    """Route metadata naming the FHIR interaction it implements; the CapabilityStatement
    is generated from it (https://hl7.org/fhir/R4/capabilitystatement.html)."""
    extra: dict[str, Any] = {INTERACTION: code}
    if capabilities:
        extra[CAPABILITY] = capabilities
    return extra
