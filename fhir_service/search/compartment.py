"""The Patient compartment from the core CompartmentDefinition
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html).
"""

from __future__ import annotations

import json
from functools import cache

from fhir_service.search.registry import Registry

PATIENT_COMPARTMENT = "CompartmentDefinition-patient.json"


@cache
def _load(path: str) -> dict[str, tuple[str, ...]]:
    with open(path, encoding="utf-8-sig") as handle:
        definition = json.load(handle)
    return {
        entry["code"]: tuple(entry["param"])
        for entry in definition.get("resource") or []
        if entry.get("param")
    }


def patient_compartment(registry: Registry) -> dict[str, tuple[str, ...]]:
    """Resource type -> the parameters that put a resource in a Patient's compartment."""
    if registry.definitions is None:
        return {}
    for info in registry.definitions.packages:
        path = info.directory / PATIENT_COMPARTMENT
        if path.exists():
            return _load(str(path))
    return {}
