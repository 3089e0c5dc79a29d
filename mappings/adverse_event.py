"""Adverse events of treatments (https://hl7.org/fhir/R4/adverseevent.html).

The event is text-coded (codes where the tables have them); ``suspectEntity`` names
the MedicationAdministrations of the causing medication course (R4 allows
Immunization, Procedure, Substance, Medication, MedicationAdministration,
MedicationStatement or Device there) or the causing Procedure. R4 AdverseEvent has no
note; the report's remark travels in the R5 AdverseEvent.note cross-version extension
(https://hl7.org/fhir/R4/versions.html#extensions).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.adverseevent import AdverseEvent
from fhir.resources.R4B.resource import Resource

from mappings.case.model import AdverseEvent as CaseAdverseEvent
from mappings.case.model import Case
from mappings.common import codings, concept, patient_ref, put_date, time_note
from mappings.context import MappingContext
from mappings.schedule import course_administrations

SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
"""https://hl7.org/fhir/R4/codesystem-adverse-event-seriousness.html"""
SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
"""https://hl7.org/fhir/R4/codesystem-adverse-event-severity.html (mild | moderate | severe),
the required binding of R4 AdverseEvent.severity."""
CTCAE_SEVERITY = {
    "1": ("mild", "Mild"),
    "2": ("moderate", "Moderate"),
    "3": ("severe", "Severe"),
}
"""CTCAE grade -> AdverseEvent.severity. CTCAE v5.0 (NCI, 2017) defines Grade 1 as "Mild",
Grade 2 as "Moderate" and Grade 3 as "Severe or medically significant but not immediately
life-threatening". Grades 4 (life-threatening) and 5 (death) lie beyond R4's three levels,
so they are given no severity code; the grade is kept as text."""
NOTE_EXTENSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent.note"


def map_adverse_events(case: Case, ctx: MappingContext) -> list[Resource]:
    """One AdverseEvent (actuality actual) per reported adverse event."""
    return [AdverseEvent.model_validate(_event(case, ctx, e)) for e in case.adverse_events]


def _suspects(case: Case, ctx: MappingContext, key: str) -> list[dict[str, Any]]:
    course = next((c for c in case.medication_courses if c.key == key), None)
    if course is not None:
        return [
            {"instance": ctx.reference("MedicationAdministration", a.key)}
            for a in course_administrations(course)
        ]
    procedure_keys = {p.key for p in case.procedures} | {r.key for r in case.radiotherapy_courses}
    if key in procedure_keys:
        return [{"instance": ctx.reference("Procedure", key)}]
    return []


def _severity(e: CaseAdverseEvent) -> dict[str, Any] | None:
    """AdverseEvent.severity from the grade: the case's own codes, else a CTCAE grade 1-3
    as its R4 severity; None when no code applies (R4's binding is required)."""
    assert e.grade is not None
    text = f"{_SCALES.get(e.grade.scale, e.grade.scale)} grade {e.grade.value}"
    if e.grade.codes:
        return {"coding": codings(e.grade.codes), "text": text}
    level = CTCAE_SEVERITY.get(e.grade.value) if e.grade.scale == "ctcae" else None
    if level is None:
        return None
    code, display = level
    return {"coding": [{"system": SEVERITY, "code": code, "display": display}], "text": text}


_SCALES = {"ctcae": "CTCAE", "clavien-dindo": "Clavien-Dindo", "other": "Other"}


def _event(case: Case, ctx: MappingContext, e: CaseAdverseEvent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": ctx.resource_id("AdverseEvent", e.key),
        "identifier": ctx.identifier("AdverseEvent", e.key),
        "actuality": "actual",
        "event": concept(e),
        "subject": patient_ref(case, ctx),
    }
    put_date(data, "date", e.when, ctx)
    if e.serious is not None:
        code = "serious" if e.serious else "non-serious"
        data["seriousness"] = {"coding": [{"system": SERIOUSNESS, "code": code}]}
    if e.grade is not None:
        severity = _severity(e)
        if severity is not None:
            data["severity"] = severity
    suspects = [s for k in e.caused_by for s in _suspects(case, ctx, k)]
    if suspects:
        data["suspectEntity"] = suspects
    remarks = [{"text": e.note}] if e.note else []
    if e.grade is not None and "severity" not in data:
        remarks.append({"text": f"Grade in the report: {e.grade.scale} {e.grade.value}"})
    if e.when is not None and (not e.when.is_known or e.when.approximate):
        remarks.append(time_note(e.when))
    remarks += [{"text": n.text} for n in case.notes if e.key in n.about]
    if remarks:
        data["extension"] = [{"url": NOTE_EXTENSION, "valueAnnotation": r} for r in remarks]
    return data
