"""Building FHIRPath Patch Parameters in tests (https://hl7.org/fhir/R4/fhirpatch.html)."""

from __future__ import annotations

from typing import Any

_INTEGER_PARTS = ("index", "source", "destination")


def operation(type: str, path: str, **parts: Any) -> dict[str, Any]:
    """One ``operation`` parameter; ``value`` is given as the part's value[x]/part keys."""
    built: list[dict[str, Any]] = [
        {"name": "type", "valueCode": type},
        {"name": "path", "valueString": path},
    ]
    for name, given in parts.items():
        if name == "value":
            built.append({"name": "value", **given})
        elif name in _INTEGER_PARTS:
            built.append({"name": name, "valueInteger": given})
        else:
            built.append({"name": name, "valueString": given})
    return {"name": "operation", "part": built}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    """The Parameters resource of ``operations``."""
    return {"resourceType": "Parameters", "parameter": list(operations)}
