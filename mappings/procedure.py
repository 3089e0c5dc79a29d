"""Procedures: operations (and their parts), not-done items, transfusions, activities, radiotherapy.

- Surgical procedures claim mCODE CancerRelatedSurgicalProcedure
  (https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-related-surgical-procedure.html)
  when they have a reason or an intent; parts of an operation carry ``partOf``.
- A procedure not done has status ``not-done`` and the report's reason as ``statusReason`` text
  (https://hl7.org/fhir/R4/procedure-definitions.html#Procedure.statusReason).
- Transfusions and encounter activities (ventilation, antibiotic therapy) are plain Procedures
  (https://hl7.org/fhir/R4/procedure.html).
- Radiotherapy courses claim mCODE RadiotherapyCourseSummary
  (https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-radiotherapy-course-summary.html),
  whose code is fixed to SNOMED CT 1217123003.

Also holds what the treatment mappings share: the treatment-intent extension and the
resource type each case fact becomes (for references).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhir.resources.R4B.procedure import Procedure as FhirProcedure
from fhir.resources.R4B.resource import Resource

from mappings.case.model import (
    Activity,
    Case,
    Encounter,
    Procedure,
    RadiotherapyCourse,
    Transfusion,
)
from mappings.case.timing import RelativeTime
from mappings.common import (
    PROCEDURE_DURATION,
    absent_date_ext,
    body_site,
    codings,
    concept,
    duration_quantity,
    fact_reference,
    intent_extension,
    note,
    patient_ref,
    period,
    profile,
    put_date,
    time_note,
    time_notes,
    time_text,
    when,
)
from mappings.context import MappingContext
from mappings.substance import product_key

"""mCODE ProcedureIntent extension (treatmentIntent), values from mCODE TreatmentIntentVS."""
RADIOTHERAPY_COURSE_CODE = "snomed:1217123003"
"""Radiotherapy course of treatment: the code mcode-radiotherapy-course-summary fixes."""
RADIOTHERAPY_SESSIONS = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-radiotherapy-sessions"
)
SURGICAL_PROFILE = "mcode-cancer-related-surgical-procedure"
RADIOTHERAPY_PROFILE = "mcode-radiotherapy-course-summary"

COURSE_STATUS = {
    "active": "in-progress",
    "completed": "completed",
    "stopped": "stopped",
    "on-hold": "on-hold",
    "unknown": "unknown",
}
"""Case course status -> Procedure.status (https://hl7.org/fhir/R4/valueset-event-status.html)."""


def inpatient_stay(case: Case, rt: RelativeTime | None, ctx: MappingContext) -> str | None:
    """The key of the inpatient encounter spanning time ``rt`` (its own or a part's dates)."""
    day = rt.resolve(ctx.anchor_date) if rt is not None else None
    if day is None:
        return None
    for enc in case.encounters:
        if enc.kind != "inpatient":
            continue
        spans = [enc, *(e for e in case.encounters if e.part_of == enc.key)]
        if any(_spans_day(e, day, ctx) for e in spans):
            return enc.key
    return None


def _spans_day(enc: Encounter, day: Any, ctx: MappingContext) -> bool:
    start = enc.start.resolve(ctx.anchor_date) if enc.start is not None else None
    if start is None:
        return False
    end = enc.end.resolve(ctx.anchor_date) if enc.end is not None else None
    if end is None and enc.length is not None:
        end = start + timedelta(days=enc.length.days())
    return bool(start <= day <= (end or start))


def map_procedures(case: Case, ctx: MappingContext) -> list[Resource]:
    """Every Procedure of the case."""
    out: list[dict[str, Any]] = []
    for proc in case.procedures:
        out.append(_procedure(case, ctx, proc))
        out.extend(_transfusion(case, ctx, proc, t) for t in proc.transfusions)
    for enc in case.encounters:
        out.extend(_activity(case, ctx, enc, a) for a in enc.activities)
    out.extend(_radiotherapy(case, ctx, rt) for rt in case.radiotherapy_courses)
    return [FhirProcedure.model_validate(p) for p in out]


def _base(ctx: MappingContext, key: str, case: Case) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": ctx.resource_id("Procedure", key),
        "identifier": [ctx.identifier("Procedure", key)],
        "subject": patient_ref(case, ctx),
    }


def _procedure(case: Case, ctx: MappingContext, proc: Procedure) -> dict[str, Any]:
    res = _base(ctx, proc.key, case)
    if proc.reasons or proc.intent:
        res["meta"] = profile(SURGICAL_PROFILE)
    if ext := intent_extension(proc.intent):
        res["extension"] = ext
    if proc.part_of:
        res["partOf"] = [ctx.reference("Procedure", proc.part_of)]
    res["status"] = proc.status
    if proc.status_reason:
        res["statusReason"] = {"text": proc.status_reason}
    res["code"] = concept(proc)
    notes: list[dict[str, str]] = []
    if stay := inpatient_stay(case, proc.when, ctx):
        res["encounter"] = ctx.reference("Encounter", stay)
    if proc.status == "not-done":
        if proc.when is not None:
            notes.append(note(f"Time in the report: {time_text(proc.when)}"))
    else:
        _performed(res, proc.when, proc.duration is not None, ctx, notes)
    if proc.duration is not None:
        res.setdefault("extension", []).append(
            {"url": PROCEDURE_DURATION, "valueDuration": duration_quantity(proc.duration)}
        )
        if proc.duration.approximate:
            notes.append(note(f"Duration in the report: {proc.duration} (approximate)"))
    if proc.reasons:
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in proc.reasons]
    if proc.body_sites:
        res["bodySite"] = [body_site(s) for s in proc.body_sites]
    if proc.complications:
        res["complication"] = [concept(c) for c in proc.complications]
        res["complicationDetail"] = [ctx.reference("Condition", c.key) for c in proc.complications]
    if proc.figures:
        notes.append(note(f"Figures: {', '.join(proc.figures)}"))
    if proc.note:
        notes.append(note(proc.note))
    if notes:
        res["note"] = notes
    if proc.devices:
        res["focalDevice"] = [
            {"manipulated": ctx.reference("Device", d.key, d.text)} for d in proc.devices
        ]
    return res


def _performed(
    res: dict[str, Any],
    rt: RelativeTime | None,
    as_period: bool,
    ctx: MappingContext,
    notes: list[dict[str, str]],
) -> None:
    """performed[x]: a dateTime (a Period when a duration is known); unknown -> absent reason."""
    day = when(rt, ctx)
    if day is None:
        res["performedPeriod"] = absent_date_ext()
    elif as_period:
        res["performedPeriod"] = {}
        put_date(res["performedPeriod"], "start", rt, ctx)
    else:
        put_date(res, "performedDateTime", rt, ctx)
    if rt is not None and (not rt.is_known or rt.approximate):
        notes.append(time_note(rt))


def _transfusion(
    case: Case, ctx: MappingContext, proc: Procedure, t: Transfusion
) -> dict[str, Any]:
    res = _base(ctx, t.key, case)
    res["partOf"] = [ctx.reference("Procedure", proc.key)]
    res["status"] = "completed"
    res["code"] = concept(t)
    if stay := inpatient_stay(case, proc.when, ctx):
        res["encounter"] = ctx.reference("Encounter", stay)
    notes: list[dict[str, str]] = []
    _performed(res, proc.when, False, ctx, notes)
    notes.append(note(f"Given during {proc.text.strip()}"))
    if t.note:
        notes.append(note(t.note))
    # The product and the amount given: a Substance with instance.quantity (mappings.substance).
    res["usedReference"] = [ctx.reference("Substance", product_key(t.key), t.product)]
    res["note"] = notes
    return res


def _activity(case: Case, ctx: MappingContext, enc: Encounter, act: Activity) -> dict[str, Any]:
    res = _base(ctx, act.key, case)
    res["status"] = "completed"
    res["code"] = concept(act)
    res["encounter"] = ctx.reference("Encounter", enc.key)
    notes: list[dict[str, str]] = []
    if act.when is None:
        res["performedPeriod"] = absent_date_ext()
        notes.append(note(f"During the encounter '{enc.text}'; no time given"))
    else:
        _performed(res, act.when, False, ctx, notes)
    if act.reasons:
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in act.reasons]
    if act.note:
        notes.append(note(act.note))
    res["note"] = notes
    return res


def _radiotherapy(case: Case, ctx: MappingContext, course: RadiotherapyCourse) -> dict[str, Any]:
    res = _base(ctx, course.key, case)
    res["meta"] = profile(RADIOTHERAPY_PROFILE)
    ext = intent_extension(course.intent)
    if course.fractions is not None:
        ext.append({"url": RADIOTHERAPY_SESSIONS, "valueUnsignedInt": course.fractions})
    if ext:
        res["extension"] = ext
    if course.regimen:
        res["basedOn"] = [ctx.reference("CarePlan", course.regimen)]
    res["status"] = COURSE_STATUS[course.status]
    res["code"] = {
        "coding": codings([RADIOTHERAPY_COURSE_CODE, *course.codes]),
        "text": course.text,
    }
    res["performedPeriod"] = period(course.start, course.end, ctx)
    if course.reasons:
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in course.reasons]
    if course.body_sites:
        res["bodySite"] = [body_site(s) for s in course.body_sites]
    notes = time_notes(("Start", course.start), ("End", course.end))
    if course.setting:
        notes.append(note(f"Treatment setting: {course.setting}"))
    if course.follows:
        notes.append(note(f"Follows: {_fact_text(case, course.follows)}"))
    if course.dose is not None:
        notes.append(note(f"Total dose: {course.dose.value:g} {course.dose.unit}"))
    missing = [
        label
        for label, value in (("modality and technique", None), ("dose", course.dose))
        if value is None
    ]
    if course.fractions is None:
        missing.append("number of sessions")
    notes.append(note(f"Not reported: {', '.join(missing)}"))
    if course.note:
        notes.append(note(course.note))
    res["note"] = notes
    return res


def _fact_text(case: Case, key: str) -> str:
    item = case.get(key)
    return str(getattr(item, "text", key))
