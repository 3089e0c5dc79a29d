"""MedicationAdministrations: one per drug per cycle (per dose step when the dose changes).

mCODE CancerRelatedMedicationAdministration
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-related-medication-administration.html)
on MedicationAdministration (https://hl7.org/fhir/R4/medicationadministration.html).
``effective[x]`` is required: cycle 1 is dated from a known course start (day 1 = the
start); other cycles and unknown starts get an ``effectivePeriod`` carrying the
data-absent-reason extension and a note placing the administration (cycle, days,
the report's time). Keys: ``<drug>-c<cycle>`` or ``<drug>-c<cycle>-s<step>``.

A course reported as given without a cycle count (e.g. the PD-1 inhibitor of PRaG)
gets one administration standing for "given"; a course still active with no
schedule (e.g. anlotinib maintenance) gets none: its MedicationRequest (status
active) says the drug is being taken.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Drug, MedicationCourse
from mappings.case.types import Quantity
from mappings.common import (
    absent_date_ext,
    concept,
    derived_mark,
    fact_reference,
    intent_extension,
    note,
    patient_ref,
    profile,
    time_text,
)
from mappings.context import MappingContext
from mappings.medication_request import (
    course_intent,
    course_reasons,
    days_text,
    dosage,
)

PROFILE = "mcode-cancer-related-medication-administration"

Step = tuple[Quantity | None, list[int]]


def administration_key(drug: Drug, cycle: int, step: int | None = None) -> str:
    """``ai-ifosfamide-c2`` or ``ai-ifosfamide-c2-s1``."""
    key = f"{drug.key}-c{cycle}"
    return key if step is None else f"{key}-s{step}"


def cycles_given(course: MedicationCourse) -> int:
    """Cycles to record: the stated count, else one for a finished course, else none."""
    if course.cycles is not None:
        return course.cycles
    return 1 if course.status in ("completed", "stopped") else 0


def steps(course: MedicationCourse, drug: Drug, cycle: int) -> list[Step]:
    """The dose steps of ``drug`` in ``cycle``: the override's, else the usual dose and days."""
    for override in course.cycle_overrides:
        if override.drug == drug.key and override.cycle == cycle:
            return [(s.dose, s.days) for s in override.steps]
    return [(drug.dose, drug.days)]


def map_medication_administrations(case: Case, ctx: MappingContext) -> list[Resource]:
    """Every administration of every course."""
    out: list[Resource] = []
    for course in case.medication_courses:
        for drug in course.drugs:
            for cycle in range(1, cycles_given(course) + 1):
                cycle_steps = steps(course, drug, cycle)
                for i, (dose, days) in enumerate(cycle_steps, start=1):
                    key = administration_key(drug, cycle, i if len(cycle_steps) > 1 else None)
                    res = _administration(case, ctx, course, drug, cycle, dose, days, key)
                    out.append(MedicationAdministration.model_validate(res))
    return out


def _administration(
    case: Case,
    ctx: MappingContext,
    course: MedicationCourse,
    drug: Drug,
    cycle: int,
    dose: Quantity | None,
    days: list[int],
    key: str,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": ctx.resource_id("MedicationAdministration", key),
        "meta": profile(PROFILE),
        "identifier": [ctx.identifier("MedicationAdministration", key)],
        "status": "completed",
        "medicationCodeableConcept": concept(drug),
        "subject": patient_ref(case, ctx),
        "effectivePeriod": _effective(course, cycle, days, ctx),
        "request": ctx.reference("MedicationRequest", drug.key),
    }
    given = _dosage(drug, dose, days)
    if dose is not None:
        res["dosage"] = given
    if ext := intent_extension(course_intent(case, course)):
        res["extension"] = ext
    if reasons := course_reasons(case, course):
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in reasons]
    place = f"Cycle {cycle}" + (f", {days_text(days)}" if days else "")
    if course.cycles is None:
        place += " (the number of cycles is not stated; recorded as given at least once)"
    if course.start is not None:
        place += f"; course start in the report: {time_text(course.start)}"
    res["note"] = [note(place)]
    if dose is None:
        # mad-1: a dosage needs a dose or a rate; with neither reported, keep its text as a note.
        res["note"].append(note(f"Dosage in the report: {given['text']}"))
    return res


def _effective(
    course: MedicationCourse, cycle: int, days: list[int], ctx: MappingContext
) -> dict[str, Any]:
    """Dates of cycle 1 from a known course start (day 1 = start); otherwise unknown."""
    start = course.start.resolve(ctx.anchor_date) if course.start is not None else None
    if start is None or cycle != 1 or not days or course.start is None or course.start.approximate:
        return absent_date_ext()
    first = start + timedelta(days=days[0] - 1)
    last = start + timedelta(days=days[-1] - 1)
    return {
        "start": first.isoformat(),
        "_start": derived_mark(f"{course.start}, cycle 1 day {days[0]}", ctx),
        "end": last.isoformat(),
        "_end": derived_mark(f"{course.start}, cycle 1 day {days[-1]}", ctx),
    }


def _dosage(drug: Drug, dose: Quantity | None, days: list[int]) -> dict[str, Any]:
    """MedicationAdministration.dosage: text as written, route and dose."""
    full = dosage(drug, dose, days)
    result: dict[str, Any] = {"text": full["text"]}
    if "route" in full:
        result["route"] = full["route"]
    if dose is not None:
        result["dose"] = full["doseAndRate"][0]["doseQuantity"]
    return result
