"""Patient compartment membership (https://hl7.org/fhir/R4/compartmentdefinition-patient.html).

The core CompartmentDefinition ``patient`` names, for each resource type, the search
parameters whose references put a resource into a patient's compartment
(https://hl7.org/fhir/R4/compartmentdefinition.html). Each parameter's FHIRPath
expression is reduced to its element paths (``Observation.subject.where(resolve() is
Patient)`` -> ``subject``) and the references found there are compared with
``Patient/<id>``. A Patient is in its own compartment. Types the definition does not list
are in no patient's compartment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_service.fhir.package_cache import PackageCache
from fhir_service.fhir.references import parse_reference

CORE_PACKAGE = "hl7.fhir.r4.core#4.0.1"
DEFINITION_FILE = "CompartmentDefinition-patient.json"


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

    @classmethod
    def from_definitions(
        cls, definition: dict[str, Any], search_parameters: list[dict[str, Any]]
    ) -> PatientCompartment:
        """Built from the CompartmentDefinition and the SearchParameters it names."""
        by_code: dict[tuple[str, str], str] = {}
        for parameter in search_parameters:
            for base in parameter.get("base", []):
                by_code[(base, parameter.get("code", ""))] = parameter.get("expression", "")
        paths: dict[str, tuple[tuple[str, ...], ...]] = {}
        for entry in definition.get("resource", []):
            rtype = entry.get("code")
            found: list[tuple[str, ...]] = []
            for param in entry.get("param", []):
                found.extend(element_paths(by_code.get((rtype, param), ""), rtype))
            if found or rtype == "Patient":
                paths[rtype] = tuple(found)
        return cls(paths)

    @classmethod
    def load(cls, package_cache: Path) -> PatientCompartment:
        """From the core package in the cache; PackageError names the install command."""
        cache = PackageCache(package_cache)
        info = cache.package(CORE_PACKAGE)
        definition = json.loads((info.directory / DEFINITION_FILE).read_text(encoding="utf-8"))
        parameters = cache.definitions([CORE_PACKAGE]).search_parameters()
        return cls.from_definitions(definition, parameters)

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
