"""Map one case with one mapping function and find its resources by fact key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fhir.resources.R4B.resource import Resource

from fhir_service.fhir.models import dump_resource
from mappings.case.model import Case
from mappings.context import MappingContext

from .conftest import ANCHOR

Mapper = Callable[[Case, MappingContext], Sequence[Resource]]


def run(case: Case, mapper: Mapper) -> list[dict[str, Any]]:
    """The JSON of every resource ``mapper`` makes from ``case`` (day 0 = ANCHOR)."""
    ctx = MappingContext(case_id=case.case.id, anchor_date=ANCHOR)
    return [dump_resource(r) for r in mapper(case, ctx)]


def url(case: Case, resource_type: str, key: str) -> str:
    """The fullUrl the resource made from fact ``key`` has in the case Bundle."""
    return MappingContext(case_id=case.case.id, anchor_date=ANCHOR).full_url(resource_type, key)


def by_key(
    case: Case, resources: list[dict[str, Any]], resource_type: str, key: str
) -> dict[str, Any]:
    """The resource of ``resource_type`` made from fact ``key``."""
    wanted = url(case, resource_type, key).removeprefix("urn:uuid:")
    found = [r for r in resources if r["resourceType"] == resource_type and r["id"] == wanted]
    assert len(found) == 1, f"expected one {resource_type} from {key!r}, found {len(found)}"
    return found[0]


def codes_of(concept: dict[str, Any]) -> set[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept."""
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def note_text(resource: dict[str, Any]) -> str:
    """All Annotation texts of a resource, joined."""
    return " | ".join(n["text"] for n in resource.get("note", []))


SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
UCUM = "http://unitsofmeasure.org"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
