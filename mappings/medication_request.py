"""MedicationRequests: one per drug of each medication course.

mCODE CancerRelatedMedicationRequest
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-related-medication-request.html)
on MedicationRequest (https://hl7.org/fhir/R4/medicationrequest.html): the drug with
its codes (text only when the tables have none), ``dosageInstruction`` with the dose
(UCUM), route, daily timing and the dosage text as written (``40 mg ivgtt, days 1-3``),
``basedOn`` the course's CarePlan, and a ``groupIdentifier`` shared by the drugs of a
course. The report names no prescriber and no order date, so ``requester`` (US Core
requires it for intent ``order``) and ``authoredOn`` carry the data-absent-reason extension.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Drug, MedicationCourse, Regimen
from mappings.case.types import Quantity
from mappings.common import (
    absent_date_ext,
    concept,
    fact_reference,
    intent_extension,
    note,
    patient_ref,
    profile,
    quantity,
)
from mappings.context import MappingContext

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


def days_text(days: list[int]) -> str:
    """Cycle days as written: ``days 1-3``, ``day 1``, ``days 1, 8``."""
    if not days:
        return ""
    if len(days) == 1:
        return f"day {days[0]}"
    if days == list(range(days[0], days[-1] + 1)):
        return f"days {days[0]}-{days[-1]}"
    return "days " + ", ".join(str(d) for d in days)


def dose_text(dose: Quantity | None, drug: Drug, days: list[int]) -> str:
    """The dosage as written in the report, e.g. ``40 mg ivgtt, days 1-3``."""
    parts = []
    if dose is not None:
        parts.append(f"{dose.value:g} {dose.unit}")
    if drug.route_as_written:
        parts.append(drug.route_as_written)
    elif drug.route is not None:
        parts.append(drug.route.text)
    head = " ".join(parts)
    when = days_text(days)
    text = f"{head}, {when}" if head and when else head or when
    missing = [
        label
        for label, value in (("dose", dose), ("route", drug.route), ("days", days))
        if not value
    ]
    if missing:
        text = (
            f"{text} ({', '.join(missing)} not stated)"
            if text
            else f"{', '.join(missing)} not stated"
        )
    return text


def dosage(
    drug: Drug, dose: Quantity | None, days: list[int], course: MedicationCourse | None = None
) -> dict[str, Any]:
    """A Dosage (https://hl7.org/fhir/R4/dosage.html): text, timing, route, dose."""
    result: dict[str, Any] = {"text": dose_text(dose, drug, days)}
    if course is not None and days:
        result["timing"] = {
            "repeat": {"frequency": 1, "period": 1, "periodUnit": "d"},
            "code": {"text": cycle_text(course, days)},
        }
    if drug.route is not None:
        result["route"] = concept(drug.route)
    if dose is not None:
        result["doseAndRate"] = [{"doseQuantity": quantity(dose)}]
    return result


def cycle_text(course: MedicationCourse, days: list[int]) -> str:
    """``once daily on days 1-3 of each 21-day cycle, 2 cycles``."""
    length = (
        f"each {course.cycle_length.value:g}-{_unit_word(course.cycle_length.unit)} cycle"
        if course.cycle_length is not None
        else "each cycle (cycle length not stated)"
    )
    count = f", {course.cycles} cycles" if course.cycles else ""
    return f"once daily on {days_text(days)} of {length}{count}"


def _unit_word(unit: str) -> str:
    return {"d": "day", "wk": "week", "mo": "month"}.get(unit, unit)


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
    if ext := intent_extension(course_intent(case, course)):
        res["extension"] = ext
    if course.stop_reason is not None:
        res["statusReason"] = concept(course.stop_reason)
    if reasons := course_reasons(case, course):
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in reasons]
    instructions = [dosage(drug, drug.dose, drug.days, course)]
    notes = []
    for override in course.cycle_overrides:
        if override.drug != drug.key:
            continue
        for step in override.steps:
            step_dosage = dosage(drug, step.dose, step.days)
            step_dosage["text"] = f"cycle {override.cycle}: {step_dosage['text']}"
            instructions.append(step_dosage)
        if override.note:
            notes.append(note(override.note))
    if len(instructions) > 1:
        for i, instruction in enumerate(instructions, start=1):
            instruction["sequence"] = i
    res["dosageInstruction"] = instructions
    if drug.note:
        notes.append(note(drug.note))
    if notes:
        res["note"] = notes
    return res
