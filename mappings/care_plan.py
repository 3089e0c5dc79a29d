"""CarePlans: one per medication course, one per regimen, one per set of encounter decisions.

CarePlan (https://hl7.org/fhir/R4/careplan.html):

- a medication course: ``category`` the course kind (chemotherapy, immunotherapy...) with
  its codes, ``activity.reference`` its MedicationRequests, ``partOf`` its regimen,
  ``replaces`` the course it ``follows`` (a followed radiotherapy course goes to
  ``supportingInfo``), status ``revoked`` for a course stopped early (R4 CarePlan has no
  statusReason: the reason is a note and the MedicationRequests' ``statusReason``);
- a regimen (e.g. PRaG): ``activity.outcomeReference`` its radiotherapy Procedures
  (which also point back with ``basedOn``), its courses point to it with ``partOf``;
- the decisions of an encounter (e.g. a tumour board): one activity per decision with
  ``detail.description``; the facts a decision rests on in ``detail.reasonReference``,
  the procedures it led to in ``outcomeReference``.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Encounter, MedicationCourse, Regimen
from mappings.common import (
    concept,
    fact_reference,
    fact_type,
    note,
    patient_ref,
    period,
    put_date,
    time_notes,
    time_text,
)
from mappings.context import MappingContext
from mappings.dosage import days_text, plan_text

PLAN_STATUS = {
    "active": "active",
    "completed": "completed",
    "stopped": "revoked",
    "on-hold": "on-hold",
    "unknown": "unknown",
}
"""Course status -> CarePlan.status (https://hl7.org/fhir/R4/valueset-request-status.html)."""
_REASON_TYPES = {"Condition", "Observation", "DiagnosticReport", "DocumentReference"}
"""Types CarePlan.activity.detail.reasonReference may point to."""


def map_care_plans(case: Case, ctx: MappingContext) -> list[Resource]:
    """CarePlans of the regimens, the medication courses and the encounter decisions."""
    out: list[dict[str, Any]] = [_regimen(case, ctx, r) for r in case.regimens]
    out.extend(_course(case, ctx, c) for c in case.medication_courses)
    out.extend(_decisions(case, ctx, e) for e in case.encounters if e.decisions)
    return [CarePlan.model_validate(p) for p in out]


def _base(case: Case, ctx: MappingContext, key: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": ctx.resource_id("CarePlan", key),
        "identifier": [ctx.identifier("CarePlan", key)],
        "status": status,
        "intent": "plan",
        "subject": patient_ref(case, ctx),
    }


def _regimen(case: Case, ctx: MappingContext, regimen: Regimen) -> dict[str, Any]:
    courses = [c for c in case.medication_courses if c.regimen == regimen.key]
    radiotherapy = [r for r in case.radiotherapy_courses if r.regimen == regimen.key]
    statuses = {c.status for c in courses} | {r.status for r in radiotherapy}
    if "active" in statuses:
        status = "active"
    elif statuses == {"completed"}:
        status = "completed"
    else:
        status = "unknown"
    res = _base(case, ctx, regimen.key, status)
    res["category"] = [concept(regimen)]
    res["title"] = regimen.text
    res["period"] = period(regimen.start, None, ctx)
    if regimen.reasons:
        res["addresses"] = [fact_reference(case, ctx, k) for k in regimen.reasons]
    res["activity"] = [
        {"outcomeReference": [ctx.reference("Procedure", r.key, r.text)]} for r in radiotherapy
    ] + [{"reference": ctx.reference("MedicationRequest", d.key)} for c in courses for d in c.drugs]
    notes = time_notes(("Start", regimen.start))
    if regimen.intent:
        notes.append(note(f"Treatment intent: {regimen.intent}"))
    if regimen.note:
        notes.append(note(regimen.note))
    if notes:
        res["note"] = notes
    return res


def _course(case: Case, ctx: MappingContext, course: MedicationCourse) -> dict[str, Any]:
    res = _base(case, ctx, course.key, PLAN_STATUS[course.status])
    if course.regimen:
        res["partOf"] = [ctx.reference("CarePlan", course.regimen)]
    if course.follows and fact_type(case, course.follows) == "CarePlan":
        res["replaces"] = [ctx.reference("CarePlan", course.follows)]
    res["category"] = [concept(course, course.category)]
    res["title"] = course.text
    res["period"] = period(course.start, course.end, ctx)
    if course.reasons:
        res["addresses"] = [fact_reference(case, ctx, k) for k in course.reasons]
    support = []
    if course.follows and fact_type(case, course.follows) != "CarePlan":
        support.append(fact_reference(case, ctx, course.follows))
    support.extend(ctx.reference("AdverseEvent", k) for k in course.stop_adverse_events)
    if support:
        res["supportingInfo"] = support
    res["activity"] = [
        {"reference": ctx.reference("MedicationRequest", d.key)} for d in course.drugs
    ]
    res["note"] = _course_notes(case, course)
    return res


def _course_notes(case: Case, course: MedicationCourse) -> list[dict[str, str]]:
    notes = time_notes(("Start", course.start), ("End", course.end))
    facts = []
    if course.line is not None:
        facts.append(f"line of therapy {course.line}")
    if course.intent:
        facts.append(f"intent {course.intent}")
    if course.setting:
        facts.append(f"setting {course.setting}")
    if not all(d.continuous for d in course.drugs):
        facts.append(plan_text(course))
    facts.append(
        f"cycle length {course.cycle_length}"
        if course.cycle_length is not None
        else "cycle length not stated"
    )
    notes.append(note("Course: " + ", ".join(facts)))
    if course.follows:
        item = case.get(course.follows)
        notes.append(note(f"Follows: {getattr(item, 'text', course.follows)}"))
    if course.stop_reason is not None:
        codes = ", ".join(str(c) for c in course.stop_reason.codes)
        notes.append(note(f"Stopped: {course.stop_reason.text}" + (f" ({codes})" if codes else "")))
    for override in course.cycle_overrides:
        drug = next(d for d in course.drugs if d.key == override.drug)
        doses = " and ".join(
            f"{s.dose.value:g} {s.dose.unit} {days_text(s.days)}" for s in override.steps
        )
        notes.append(note(f"Cycle {override.cycle} {drug.text} as written: {doses}"))
    if course.note:
        notes.append(note(course.note))
    return notes


def _decisions(case: Case, ctx: MappingContext, enc: Encounter) -> dict[str, Any]:
    res = _base(case, ctx, enc.key, "completed")
    res["category"] = [{"text": f"Decisions of the {enc.text.lower()}"}]
    res["title"] = f"{enc.text}: decisions"
    res["encounter"] = ctx.reference("Encounter", enc.key)
    if enc.reasons:
        res["addresses"] = [fact_reference(case, ctx, k) for k in enc.reasons]
    day = put_date(res, "created", enc.start, ctx)
    activities = []
    for decision in enc.decisions:
        typed = [(fact_type(case, k), k) for k in decision.refs]
        detail: dict[str, Any] = {"status": "completed", "description": decision.text}
        reasons = [ctx.reference(t, k) for t, k in typed if t in _REASON_TYPES]
        if reasons:
            detail["reasonReference"] = reasons
        activity: dict[str, Any] = {"detail": detail}
        outcomes = [ctx.reference(t, k) for t, k in typed if t and t not in _REASON_TYPES]
        if outcomes:
            activity["outcomeReference"] = outcomes
        activities.append(activity)
    res["activity"] = activities
    if enc.start is not None and day is None:
        res["note"] = [
            note(f"Time of the {enc.text.lower()} in the report: {time_text(enc.start)}")
        ]
    return res
