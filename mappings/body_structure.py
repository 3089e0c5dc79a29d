"""The primary tumour as an mCODE Tumor (BodyStructure).

https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-tumor.html: identifier,
location (the first body site of the primary cancer), locationQualifier (laterality,
when coded), description (extent and the other sites), morphology, patient, and the
relatedCondition extension pointing at the primary cancer Condition.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bodystructure import BodyStructure
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Diagnosis
from mappings.common import MCODE, concept, patient_ref, profile
from mappings.context import MappingContext

TUMOR_PROFILE = "mcode-tumor"
RELATED_CONDITION = MCODE + "mcode-related-condition"
IDENTIFIER_TYPE = {
    "coding": [{"system": "http://hl7.org/fhir/resource-types", "code": "BodyStructure"}]
}
"""Pattern of mCODE's body structure identifier (the mcode-tumor identifier slice),
https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-body-structure-identifier.html"""


def tumor_key(diagnosis_key: str) -> str:
    """The fact key of the Tumor made from the primary cancer ``diagnosis_key``."""
    return f"tumor-{diagnosis_key}"


def map_body_structures(case: Case, ctx: MappingContext) -> list[Resource]:
    """One Tumor per primary cancer diagnosis that names a body site."""
    return [
        BodyStructure.model_validate(_tumor(case, ctx, d))
        for d in case.diagnoses
        if d.role == "primary" and d.body_sites
    ]


def _tumor(case: Case, ctx: MappingContext, d: Diagnosis) -> dict[str, Any]:
    key = tumor_key(d.key)
    site = d.body_sites[0]
    data: dict[str, Any] = {
        "resourceType": "BodyStructure",
        "id": ctx.resource_id("BodyStructure", key),
        "meta": profile(TUMOR_PROFILE),
        "extension": [
            {"url": RELATED_CONDITION, "valueReference": ctx.reference("Condition", d.key)}
        ],
        # The plain business identifier (used for conditional create), and the same
        # value typed as mCODE's tumour identifier slice demands.
        "identifier": [
            ctx.identifier("BodyStructure", key),
            {"use": "usual", "type": IDENTIFIER_TYPE, **ctx.identifier("BodyStructure", key)},
        ],
        "location": concept(site),
        "patient": patient_ref(case, ctx),
    }
    if site.laterality is not None and site.laterality.codes:
        data["locationQualifier"] = [concept(site.laterality)]
    if d.morphology is not None:
        data["morphology"] = concept(d.morphology)
    parts: list[str | None] = [d.text]
    parts += [f"Also involving: {s.text}" for s in d.body_sites[1:]]
    if d.extent:
        parts.append(f"Extent: {d.extent}")
    data["description"] = ". ".join(p.rstrip(".") for p in parts if p) + "."
    return data
