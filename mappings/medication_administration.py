"""MedicationAdministrations: one per administration the case implies (mappings/schedule.py).

mCODE CancerRelatedMedicationAdministration
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-related-medication-administration.html)
on MedicationAdministration (https://hl7.org/fhir/R4/medicationadministration.html): each
day of each given cycle, ``times_per_day`` on each such day, with that administration's
dose (``dosage.dose``: the absolute dose when the report gives it or the course gives the
BSA, else the dose as ordered, e.g. ``mg/m2``, with mCODE's ``normalizationBasis``).
``effective[x]`` is required: a cycle-1 administration of a course with a known start is
dated (day 1 = the start, marked as derived); other administrations get an
``effectivePeriod`` carrying the data-absent-reason extension and a note placing them
(cycle, day, the report's time). Continuous dosing is one administration whose
``effectivePeriod`` spans the course (R4: "a long running infusion" or a period of
administration), ``in-progress`` while the course is active. Keys:
``<drug>-c<cycle>-d<day>[-<n>]``, ``<drug>-c<cycle>`` when the days are not stated,
``<drug>-continuous``.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Drug, MedicationCourse
from mappings.common import (
    absent_date_ext,
    concept,
    derived_mark,
    fact_reference,
    intent_extension,
    note,
    patient_ref,
    profile,
    quantity,
    time_text,
)
from mappings.context import MappingContext
from mappings.dosage import dose_text, normalization_extension, times_text
from mappings.medication_request import course_intent, course_reasons
from mappings.schedule import (
    Administration,
    administration_date,
    administrations,
    per_bsa,
    per_weight,
)

PROFILE = "mcode-cancer-related-medication-administration"


def map_medication_administrations(case: Case, ctx: MappingContext) -> list[Resource]:
    """Every administration of every course."""
    return [
        MedicationAdministration.model_validate(_administration(case, ctx, course, drug, a))
        for course in case.medication_courses
        for drug in course.drugs
        for a in administrations(course, drug)
    ]


def _administration(
    case: Case, ctx: MappingContext, course: MedicationCourse, drug: Drug, a: Administration
) -> dict[str, Any]:
    ongoing = drug.continuous and course.status == "active"
    res: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": ctx.resource_id("MedicationAdministration", a.key),
        "meta": profile(PROFILE),
        "identifier": [ctx.identifier("MedicationAdministration", a.key)],
        "status": "in-progress" if ongoing else "completed",
        "medicationCodeableConcept": concept(drug),
        "subject": patient_ref(case, ctx),
        **_effective(course, a, ctx),
        "request": ctx.reference("MedicationRequest", drug.key),
    }
    ext = intent_extension(course_intent(case, course)) + normalization_extension(a.dose)
    if ext:
        res["extension"] = ext
    if reasons := course_reasons(case, course):
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in reasons]
    given = a.absolute or a.dose
    text = f"{dose_text(given, drug)}, {_place(drug, a)}"
    notes = [note(_place(drug, a).capitalize() + _course_time(course))]
    if given is not None:
        res["dosage"] = {"text": text, "dose": quantity(given)}
        if drug.route is not None:
            res["dosage"]["route"] = concept(drug.route)
    else:
        # mad-1: a dosage needs a dose or a rate; with neither reported, the text is a note.
        notes.append(note(f"Dosage in the report: {text}"))
    if a.calculated and a.dose is not None and course.body_surface_area is not None:
        notes.append(
            note(
                f"Dose calculated from the order, {a.dose.value:g} {a.dose.unit}, and the "
                f"body surface area, {course.body_surface_area.value:g} m2"
            )
        )
    elif a.absolute is None and (per_bsa(a.dose) or per_weight(a.dose)):
        assert a.dose is not None
        notes.append(note(f"Dose as ordered ({a.dose.unit}); the absolute dose is not stated"))
    notes += [
        note(o.note)
        for o in course.cycle_overrides
        if o.drug == drug.key and o.cycle == a.cycle and o.note
    ]
    if course.cycles is None and not drug.continuous:
        notes.append(note("The number of cycles is not stated; recorded as given at least once"))
    res["note"] = notes
    return res


def _place(drug: Drug, a: Administration) -> str:
    if drug.continuous:
        return f"{times_text(drug.times_per_day)}, continuous"
    place = f"cycle {a.cycle}"
    if a.day is not None:
        place += f" day {a.day}"
    if drug.times_per_day > 1:
        place += f", dose {a.dose_of_day} of {drug.times_per_day} that day"
    return place


def _course_time(course: MedicationCourse) -> str:
    if course.start is None:
        return "; course start not stated"
    return f"; course start in the report: {time_text(course.start)}"


def _effective(course: MedicationCourse, a: Administration, ctx: MappingContext) -> dict[str, Any]:
    """effectiveDateTime when the date follows from the case; a period for continuous
    dosing; otherwise an effectivePeriod saying the date is unknown."""
    day = administration_date(course, a, ctx.anchor_date)
    if day is not None:
        recorded = f"{course.start}, cycle {a.cycle} day {a.day}"
        return {
            "effectiveDateTime": day.isoformat(),
            "_effectiveDateTime": derived_mark(recorded, ctx),
        }
    if a.cycle is None and a.day is None and course.start is not None:
        bounds: dict[str, Any] = {}
        for name, rt in (("start", course.start), ("end", course.end)):
            value = rt.resolve(ctx.anchor_date) if rt is not None else None
            if value is not None and rt is not None and not rt.approximate:
                bounds |= {name: value.isoformat(), f"_{name}": derived_mark(str(rt), ctx)}
        if bounds:
            return {"effectivePeriod": bounds}
    return {"effectivePeriod": absent_date_ext()}
