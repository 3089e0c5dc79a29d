"""Dosage instructions of a medication course: timing, dose as ordered and as calculated.

R4 Dosage (https://hl7.org/fhir/R4/dosage.html) and Timing
(https://hl7.org/fhir/R4/datatypes.html#Timing). One Dosage per dose step of each run of
cycles dosed alike; Dosages of one run share a ``sequence`` (concurrent), runs follow each
other in ``sequence`` order. ``timing.repeat``: ``frequency`` administrations per
``period`` = the cycle length (days 1 and 8 of a 21-day cycle: 2 per 21 d, never "every
day"), ``count`` the administrations ordered in the run (only when the
number of cycles ordered is known), ``boundsPeriod.start`` the first
day when known, and ``Timing.event`` the dates when every administration of the Dosage
falls in a dated cycle 1; the days within the cycle are the project extension ``cycle-day`` (one
per day; R4's ``timing-daysOfCycle`` may only be used on PlanDefinition and RequestGroup
actions). Continuous dosing is ``frequency``/1 d bounded by the course. ``doseAndRate``
carries the dose with ``type`` ``ordered`` and, when the BSA is known, the absolute dose
with ``type`` ``calculated`` (http://terminology.hl7.org/CodeSystem/dose-rate-type, as in
R4's chemotherapy example PlanDefinition KDN5). docs/mapping.md, "Schedules".
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from mappings.case.model import Drug, MedicationCourse
from mappings.case.types import Quantity
from mappings.common import MCODE, PROJECT_EXTENSION, concept, derived_mark, number, quantity
from mappings.context import MappingContext
from mappings.schedule import (
    Run,
    Step,
    absolute_dose,
    cycles_ordered,
    per_bsa,
    per_weight,
    runs,
)

CYCLE_DAY = PROJECT_EXTENSION + "cycle-day"
"""On a Timing: one day of the cycle (1 = the cycle's first day) on which the dose is given."""
DOSE_RATE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"
"""https://hl7.org/fhir/R4/codesystem-dose-rate-type.html: ordered | calculated."""
NORMALIZATION_BASIS = MCODE + "mcode-normalization-basis"
"""mCODE STU4 NormalizationBasis: what a dose is normalized by (NormalizationBasisVS)."""
_BASIS = {
    "bsa": ("301898006", "Body surface area (observable entity)"),
    "weight": ("363804004", "Body weight characteristic (observable entity)"),
}
SNOMED = "http://snomed.info/sct"
_TIMES = {1: "once daily", 2: "twice daily", 3: "three times daily", 4: "four times daily"}
_UNIT_WORDS = {"d": "day", "wk": "week", "mo": "month"}


def normalization_extension(dose: Quantity | None) -> list[dict[str, Any]]:
    """mCODE's normalizationBasis for a dose per body surface area or per body weight."""
    basis = "bsa" if per_bsa(dose) else "weight" if per_weight(dose) else None
    if basis is None:
        return []
    code, display = _BASIS[basis]
    return [
        {
            "url": NORMALIZATION_BASIS,
            "valueCodeableConcept": {
                "coding": [{"system": SNOMED, "code": code, "display": display}]
            },
        }
    ]


def times_text(times_per_day: int) -> str:
    """``once daily``, ``twice daily``, ``5 times daily``."""
    return _TIMES.get(times_per_day, f"{times_per_day} times daily")


def days_text(days: tuple[int, ...] | list[int]) -> str:
    """Cycle days as written: ``days 1-3``, ``day 1``, ``days 1, 8``."""
    days = list(days)
    if not days:
        return ""
    if len(days) == 1:
        return f"day {days[0]}"
    if days == list(range(days[0], days[-1] + 1)):
        return f"days {days[0]}-{days[-1]}"
    return "days " + ", ".join(str(d) for d in days)


def dose_text(dose: Quantity | None, drug: Drug) -> str:
    """``40 mg ivgtt``: the dose and route as written; what is missing is said so
    (``po (dose not stated)``, ``dose and route not stated``)."""
    route = drug.route_as_written or (drug.route.text if drug.route is not None else None)
    shown = [f"{dose.value:g} {dose.unit}" if dose is not None else None, route]
    missing = [name for name, value in zip(("dose", "route"), shown, strict=True) if not value]
    text = " ".join(v for v in shown if v)
    if not missing:
        return text
    absent = " and ".join(missing) + " not stated"
    return f"{text} ({absent})" if text else absent


def cycle_text(course: MedicationCourse) -> str:
    """``each 21-day cycle`` or ``each cycle (cycle length not stated)``."""
    length = course.cycle_length
    if length is None:
        return "each cycle (cycle length not stated)"
    return f"each {length.value:g}-{_UNIT_WORDS.get(length.unit, length.unit)} cycle"


def schedule_text(course: MedicationCourse, drug: Drug, run: Run, step: Step) -> str:
    """When the step is given: ``on days 1, 8 of each 21-day cycle, cycles 1-6`` (``twice
    daily on ...`` for two a day: one a day is what listing the days says)."""
    if drug.continuous:
        return f"{times_text(drug.times_per_day)}, continuous"
    if not step.days and not has_cycles(course):
        return "schedule not stated"
    times = f"{times_text(drug.times_per_day)} " if drug.times_per_day > 1 else ""
    when = (
        f"{times}on {days_text(step.days)} of {cycle_text(course)}"
        if step.days
        else f"days of {cycle_text(course)} not stated"
    )
    if run.cycles is None:
        overridden = any(o.drug == drug.key for o in course.cycle_overrides)
        return when + (", cycles without an override" if overridden else "")
    last = run.first + run.cycles - 1
    return when + (f", cycle {last}" if last == run.first else f", cycles {run.first}-{last}")


def has_cycles(course: MedicationCourse) -> bool:
    """True when the case says anything of the course's cycles (length or counts)."""
    return any(v is not None for v in (course.cycle_length, course.cycles, course.cycles_planned))


def _bounds_start(course: MedicationCourse, run: Run, ctx: MappingContext) -> date | None:
    if run.first != 1 or course.start is None or course.start.approximate:
        return None
    return course.start.resolve(ctx.anchor_date)


def timing(
    course: MedicationCourse, drug: Drug, run: Run, step: Step, ctx: MappingContext
) -> dict[str, Any]:
    """The Timing of one step of a run (see the module docstring)."""
    result: dict[str, Any] = {"code": {"text": schedule_text(course, drug, run, step)}}
    repeat: dict[str, Any] = {}
    start = _bounds_start(course, run, ctx)
    if drug.continuous:
        repeat = {"frequency": drug.times_per_day, "period": 1, "periodUnit": "d"}
        bounds: dict[str, Any] = {}
        if start is not None and course.start is not None:
            bounds |= {"start": start.isoformat(), "_start": derived_mark(str(course.start), ctx)}
        end = course.end.resolve(ctx.anchor_date) if course.end is not None else None
        if end is not None and course.end is not None and not course.end.approximate:
            bounds |= {"end": end.isoformat(), "_end": derived_mark(str(course.end), ctx)}
        if bounds:
            repeat["boundsPeriod"] = bounds
    elif step.days:
        per_cycle = len(step.days) * drug.times_per_day
        result["extension"] = [{"url": CYCLE_DAY, "valueInteger": d} for d in step.days]
        if run.cycles is not None and cycles_ordered(course) is not None:
            repeat["count"] = run.cycles * per_cycle
        if course.cycle_length is not None:
            repeat |= {
                "frequency": per_cycle,
                "period": number(course.cycle_length.value),
                "periodUnit": course.cycle_length.unit,
            }
        if start is not None and course.start is not None:
            repeat["boundsPeriod"] = {
                "start": start.isoformat(),
                "_start": derived_mark(f"{course.start}, cycle 1 day 1", ctx),
            }
            if run.cycles == 1 and cycles_ordered(course) is not None:
                # Every administration of this Dosage falls in cycle 1: all dated.
                days = [d for d in step.days for _ in range(drug.times_per_day)]
                result["event"] = [(start + timedelta(days=d - 1)).isoformat() for d in days]
                result["_event"] = [
                    derived_mark(f"{course.start}, cycle 1 day {d}", ctx) for d in days
                ]
    if repeat:
        result["repeat"] = repeat
    return result


def dose_and_rate(course: MedicationCourse, step: Step) -> list[dict[str, Any]]:
    """The dose as ordered and, when calculated from the BSA, the absolute dose."""
    if step.dose is None:
        return []
    out = [{"type": _rate_type("ordered"), "doseQuantity": quantity(step.dose)}]
    absolute, calculated = absolute_dose(course, step.dose, None)
    if calculated and absolute is not None:
        out.append({"type": _rate_type("calculated"), "doseQuantity": quantity(absolute)})
    return out


def _rate_type(code: str) -> dict[str, Any]:
    return {"coding": [{"system": DOSE_RATE_TYPE, "code": code, "display": code.capitalize()}]}


def request_dosages(
    course: MedicationCourse, drug: Drug, ctx: MappingContext
) -> list[dict[str, Any]]:
    """MedicationRequest.dosageInstruction: one Dosage per step of each run."""
    out: list[dict[str, Any]] = []
    all_runs = runs(course, drug)
    for sequence, run in enumerate(all_runs, start=1):
        for step in run.steps:
            dosage: dict[str, Any] = {
                "text": f"{dose_text(step.dose, drug)}, {schedule_text(course, drug, run, step)}"
                + _bsa_text(course, step),
                "timing": timing(course, drug, run, step, ctx),
            }
            if len(all_runs) > 1 or len(run.steps) > 1:
                dosage = {"sequence": sequence, **dosage}
            if drug.route is not None:
                dosage["route"] = concept(drug.route)
            if rates := dose_and_rate(course, step):
                dosage["doseAndRate"] = rates
            out.append(dosage)
    return out


def _bsa_text(course: MedicationCourse, step: Step) -> str:
    if not per_bsa(step.dose):
        return ""
    bsa = course.body_surface_area
    if bsa is None:
        return " (dose per body surface area as ordered; the BSA is not stated)"
    absolute, _ = absolute_dose(course, step.dose, None)
    assert absolute is not None
    return f" (BSA {bsa.value:g} m2: {absolute.value:g} {absolute.unit})"


def plan_text(course: MedicationCourse) -> str:
    """Cycles planned and given, e.g. ``6 cycles planned, 4 given``."""
    given = course.cycles
    if course.cycles_planned is not None:
        given_text = f"{given} given" if given is not None else "number given not stated"
        return f"{course.cycles_planned} cycles planned, {given_text}"
    if given is not None:
        if course.status == "completed":
            return f"{given} cycles given, course completed"
        return f"{given} cycles given, number planned not stated"
    return "number of cycles not stated"
