"""The Patient compartment from the core CompartmentDefinition
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html).

The definition names, for each resource type, the search parameters whose references
put a resource into a patient's compartment (https://hl7.org/fhir/R4/compartmentdefinition.html).
``patient_compartment`` gives those parameters; ``compartment_paths`` reduces each
parameter's FHIRPath expression to its element paths (``Observation.subject.where(resolve()
is Patient)`` -> ``subject``) so that ``PatientCompartment.patients`` finds the patients
of a resource from its content. A Patient is in its own compartment. Types the definition
does not list are in no patient's compartment.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_service.fhir.references import parse_reference
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


def _strip_calls(expression: str) -> str:
    """``expression`` without ``.where(...)``, ``.as(...)``, ``.ofType(...)`` and ``as X``."""
    text = expression.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    text = text.split(" as ")[0].strip()
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "." and text[i + 1 :].startswith(("where(", "as(", "ofType(", "exists(")):
            depth = 0
            j = text.index("(", i)
            while j < len(text):
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            i = j + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def element_paths(expression: str, resource_type: str) -> list[tuple[str, ...]]:
    """The element paths (below the resource) of ``expression`` for ``resource_type``."""
    paths = []
    for part in expression.split("|"):
        path = _strip_calls(part)
        head, _, rest = path.partition(".")
        if head == resource_type and rest:
            paths.append(tuple(rest.split(".")))
    return paths


def _values(value: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        if isinstance(value, list):
            yield from value
        else:
            yield value
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict) and path[0] in item:
            yield from _values(item[path[0]], path[1:])


@dataclass(frozen=True)
class PatientCompartment:
    """Element paths per resource type that link a resource to a patient."""

    paths: dict[str, tuple[tuple[str, ...], ...]]

    def covers(self, resource_type: str) -> bool:
        """Whether resources of this type can belong to a patient compartment."""
        return resource_type in self.paths

    def patients(self, resource: dict[str, Any]) -> set[str]:
        """Ids of the patients in whose compartment ``resource`` is."""
        rtype = resource.get("resourceType", "")
        found: set[str] = set()
        if rtype == "Patient" and isinstance(resource.get("id"), str):
            found.add(resource["id"])
        for path in self.paths.get(rtype, ()):
            for value in _values(resource, path):
                reference = value.get("reference") if isinstance(value, dict) else None
                parsed = parse_reference(reference) if isinstance(reference, str) else None
                if parsed is not None and parsed.resource_type == "Patient":
                    found.add(parsed.id)
        return found

    def contains(self, resource: dict[str, Any], patient_id: str) -> bool:
        """Whether ``resource`` is in the compartment of ``Patient/patient_id``."""
        return patient_id in self.patients(resource)


_PATHS: weakref.WeakKeyDictionary[Registry, PatientCompartment] = weakref.WeakKeyDictionary()


def compartment_paths(registry: Registry) -> PatientCompartment:
    """The element paths of the Patient compartment's parameters in ``registry``."""
    found = _PATHS.get(registry)
    if found is None:
        paths: dict[str, tuple[tuple[str, ...], ...]] = {"Patient": ()}
        for rtype, params in patient_compartment(registry).items():
            walked: list[tuple[str, ...]] = []
            for code in params:
                param = registry.get(rtype, code)
                if param is not None:
                    walked.extend(element_paths(param.expression, rtype))
            paths[rtype] = tuple(walked)
        found = _PATHS[registry] = PatientCompartment(paths)
    return found
