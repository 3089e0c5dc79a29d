"""Pathology specimens (https://hl7.org/fhir/R4/specimen.html).

R4 Specimen.collection has no link to the procedure that collected it; the R5
element Specimen.collection.procedure is carried by its cross-version extension
(https://hl7.org/fhir/R4/versions.html#extensions). The collection date and body
site are those of that procedure; the figures of the report go in a note.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.specimen import Specimen

from mappings.case.model import Case, PathologyReport
from mappings.case.model import Procedure as CaseProcedure
from mappings.common import body_site, concept, notes, patient_ref, set_datetime
from mappings.context import MappingContext

COLLECTION_PROCEDURE = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Specimen.collection.procedure"
)


def map_specimens(case: Case, ctx: MappingContext) -> list[Resource]:
    """One Specimen per pathology report that names its specimen."""
    return [
        Specimen.model_validate(_specimen(case, ctx, report))
        for report in case.pathology
        if report.specimen is not None
    ]


def _procedure(case: Case, key: str | None) -> CaseProcedure | None:
    return next((p for p in case.procedures if p.key == key), None)


def _specimen(case: Case, ctx: MappingContext, report: PathologyReport) -> dict[str, Any]:
    spec = report.specimen
    assert spec is not None
    data: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": ctx.resource_id("Specimen", spec.key),
        "identifier": [ctx.identifier("Specimen", spec.key)],
        "type": concept(spec),
        "subject": patient_ref(case, ctx),
    }
    collection: dict[str, Any] = {}
    proc = _procedure(case, spec.collected_by)
    if proc is not None:
        collection["extension"] = [
            {"url": COLLECTION_PROCEDURE, "valueReference": ctx.reference("Procedure", proc.key)}
        ]
        collection["method"] = {"text": proc.text}
        if proc.body_sites:
            collection["bodySite"] = body_site(proc.body_sites[0])
        if proc.when is not None:
            set_datetime(collection, "collectedDateTime", proc.when, ctx)
            collection.pop("note", None)
    if collection:
        data["collection"] = collection
    figures = f"Figures: {', '.join(spec.figures)}" if spec.figures else None
    collected = f"Collected by: {proc.text}" if proc is not None else None
    data["note"] = notes(case, spec.key, collected, figures, spec.note)
    if not data["note"]:
        del data["note"]
    return data
