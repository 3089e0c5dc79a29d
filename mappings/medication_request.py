"""MedicationRequests: one per drug of each medication course.

mCODE CancerRelatedMedicationRequest
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-related-medication-request.html)
on MedicationRequest (https://hl7.org/fhir/R4/medicationrequest.html): the drug with
its codes (text only when the tables have none), ``dosageInstruction`` with the dose
(UCUM), route, timing and the dosage text as written (``40 mg ivgtt, on days 1-3 of each
cycle``), ``basedOn`` the course's CarePlan, and a ``groupIdentifier`` shared by the drugs
of a course. The schedule (cycle days, cycles planned, continuous dosing) and the dose as
ordered are built in mappings/dosage.py; a dose per body surface area carries mCODE's
``normalizationBasis``. The report names no prescriber and no order date, so
``requester`` (US Core requires it for intent ``order``) and ``authoredOn`` carry the
data-absent-reason extension.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Drug, MedicationCourse, Regimen
from mappings.common import (
    absent_date_ext,
    concept,
    fact_reference,
    intent_extension,
    note,
    patient_ref,
    profile,
)
from mappings.context import MappingContext
from mappings.dosage import has_cycles, normalization_extension, plan_text, request_dosages

PROFILE = "mcode-cancer-related-medication-request"
REQUEST_STATUS = {
    "active": "active",
    "completed": "completed",
    "stopped": "stopped",
    "on-hold": "on-hold",
    "unknown": "unknown",
}
"""Course status -> MedicationRequest.status (https://hl7.org/fhir/R4/valueset-medicationrequest-status.html)."""
URI_SYSTEM = "urn:ietf:rfc:3986"
COURSE_OF_THERAPY = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
"""https://hl7.org/fhir/R4/codesystem-medicationrequest-course-of-therapy.html (continuous)."""


def regimen_of(case: Case, course: MedicationCourse) -> Regimen | None:
    """The regimen a course belongs to, if any."""
    return next((r for r in case.regimens if r.key == course.regimen), None)


def course_intent(case: Case, course: MedicationCourse) -> str | None:
    """The course's treatment intent, else its regimen's."""
    regimen = regimen_of(case, course)
    return course.intent or (regimen.intent if regimen else None)


def course_reasons(case: Case, course: MedicationCourse) -> list[str]:
    """The keys of the course's reasons, else its regimen's."""
    regimen = regimen_of(case, course)
    return course.reasons or (regimen.reasons if regimen else [])


def map_medication_requests(case: Case, ctx: MappingContext) -> list[Resource]:
    """One MedicationRequest per drug of every course."""
    return [
        MedicationRequest.model_validate(_request(case, ctx, course, drug))
        for course in case.medication_courses
        for drug in course.drugs
    ]


def _request(
    case: Case, ctx: MappingContext, course: MedicationCourse, drug: Drug
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": ctx.resource_id("MedicationRequest", drug.key),
        "meta": profile(PROFILE),
        "identifier": [ctx.identifier("MedicationRequest", drug.key)],
        "status": REQUEST_STATUS[course.status],
        "intent": "order",
        "medicationCodeableConcept": concept(drug),
        "subject": patient_ref(case, ctx),
        "_authoredOn": absent_date_ext(),
        "requester": absent_date_ext(),
        "basedOn": [ctx.reference("CarePlan", course.key)],
        "groupIdentifier": {"system": URI_SYSTEM, "value": ctx.full_url("CarePlan", course.key)},
    }
    ext = intent_extension(course_intent(case, course)) + normalization_extension(drug.dose)
    if ext:
        res["extension"] = ext
    if course.stop_reason is not None:
        res["statusReason"] = concept(course.stop_reason)
    if reasons := course_reasons(case, course):
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in reasons]
    res["dosageInstruction"] = request_dosages(course, drug, ctx)
    if drug.continuous:
        res["courseOfTherapyType"] = {
            "coding": [{"system": COURSE_OF_THERAPY, "code": "continuous"}],
            "text": "Continuous long term therapy",
        }
    cycled = has_cycles(course) and not drug.continuous
    notes = [note(f"Cycles: {plan_text(course)}")] if cycled else []
    notes += [note(o.note) for o in course.cycle_overrides if o.drug == drug.key and o.note]
    if drug.note:
        notes.append(note(drug.note))
    if notes:
        res["note"] = notes
    return res
