"""The administrations a medication course implies, and its dosing runs, from the case facts.

A cycled drug is given on ``days`` of each cycle, ``times_per_day`` on each such day, for
the cycles given (``cycles``); the order covers the cycles planned (``cycles_planned``,
else, for a completed course, the cycles given: an R4 MedicationRequest is completed when
"all actions that are implied by the prescription have occurred",
https://hl7.org/fhir/R4/valueset-medicationrequest-status.html). A ``continuous`` drug is
one stretch of daily dosing from the course start to its end. Doses per body surface
area (``mg/m2``) stay as ordered; the absolute dose is the report's ``dose_given``, else
the ordered dose times the course's ``body_surface_area``, else unknown. Used by the
MedicationRequest, MedicationAdministration and AdverseEvent mappings so their keys and
counts agree. docs/mapping.md, "Schedules".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from mappings.case.model import Drug, MedicationCourse
from mappings.case.types import Quantity

PER_BSA = "/m2"
"""The UCUM suffix of a dose per square metre of body surface area (``mg/m2``)."""
PER_WEIGHT = "/kg"


@dataclass(frozen=True)
class Step:
    """One dose on some days of a cycle: as ordered, and as given when known."""

    dose: Quantity | None
    dose_given: Quantity | None
    days: tuple[int, ...]


@dataclass(frozen=True)
class Run:
    """Consecutive cycles dosed alike (``cycles`` None: every cycle without an override,
    count not stated), with their steps."""

    first: int
    cycles: int | None
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Administration:
    """One administration: cycle and day (None for continuous dosing or days not stated),
    the dose as ordered and the absolute dose (``calculated`` when from the BSA)."""

    key: str
    cycle: int | None
    day: int | None
    dose_of_day: int
    dose: Quantity | None
    absolute: Quantity | None
    calculated: bool


def per_bsa(dose: Quantity | None) -> bool:
    """True for a dose per body surface area (``mg/m2``)."""
    return dose is not None and dose.unit.endswith(PER_BSA)


def per_weight(dose: Quantity | None) -> bool:
    """True for a dose per body weight (``mg/kg``)."""
    return dose is not None and dose.unit.endswith(PER_WEIGHT)


def absolute_dose(
    course: MedicationCourse, dose: Quantity | None, given: Quantity | None
) -> tuple[Quantity | None, bool]:
    """The absolute dose and whether it was calculated: the stated ``given``; else a
    per-BSA dose times the course's BSA; else a dose that is absolute already; else None."""
    if given is not None:
        return given, False
    if dose is None:
        return None, False
    if per_bsa(dose):
        bsa = course.body_surface_area
        if bsa is None:
            return None, False
        value = Decimal(str(dose.value)) * Decimal(str(bsa.value))
        unit = dose.unit.removesuffix(PER_BSA)
        return Quantity(value=float(value.normalize()), unit=unit), True
    if per_weight(dose):
        return None, False
    return dose, False


def steps(course: MedicationCourse, drug: Drug, cycle: int | None) -> tuple[Step, ...]:
    """The dose steps of ``drug`` in ``cycle``: its override's, else the usual dose and days."""
    for override in course.cycle_overrides:
        if cycle is not None and override.drug == drug.key and override.cycle == cycle:
            return tuple(Step(s.dose, s.dose_given, tuple(s.days)) for s in override.steps)
    return (Step(drug.dose, drug.dose_given, tuple(drug.days)),)


def cycles_ordered(course: MedicationCourse) -> int | None:
    """The cycles the order covers: planned, else those given by a completed course."""
    if course.cycles_planned is not None:
        return course.cycles_planned
    return course.cycles if course.status == "completed" else None


def cycles_recorded(course: MedicationCourse) -> int:
    """The cycles to record as given: the stated count, else one for a finished course
    (given at least once), else none."""
    if course.cycles is not None:
        return course.cycles
    return 1 if course.status in ("completed", "stopped") else 0


def runs(course: MedicationCourse, drug: Drug) -> list[Run]:
    """The cycles of ``drug`` grouped into runs dosed alike: the cycles ordered, else (the
    number planned not stated) those given, else every cycle; continuous: one run."""
    if drug.continuous:
        return [Run(1, None, steps(course, drug, None))]
    ordered = cycles_ordered(course)
    total = ordered if ordered is not None else course.cycles or None
    overridden = sorted(o.cycle for o in course.cycle_overrides if o.drug == drug.key)
    if total is None:
        usual = Run(1, None, steps(course, drug, None))
        return [usual] + [Run(c, 1, steps(course, drug, c)) for c in overridden]
    out: list[Run] = []
    for cycle in range(1, total + 1):
        these = steps(course, drug, cycle)
        last = out[-1] if out else None
        if last is not None and last.steps == these and last.cycles is not None:
            out[-1] = Run(last.first, last.cycles + 1, these)
        else:
            out.append(Run(cycle, 1, these))
    return out


def administrations(course: MedicationCourse, drug: Drug) -> list[Administration]:
    """Every administration of ``drug`` the record implies, in order: each day of each
    given cycle, ``times_per_day`` on each; one for a stretch of continuous dosing."""
    if drug.continuous:
        if course.status not in ("completed", "stopped", "active"):
            return []
        absolute, calculated = absolute_dose(course, drug.dose, drug.dose_given)
        return [
            Administration(f"{drug.key}-continuous", None, None, 1, drug.dose, absolute, calculated)
        ]
    out: list[Administration] = []
    for cycle in range(1, cycles_recorded(course) + 1):
        for step in steps(course, drug, cycle):
            absolute, calculated = absolute_dose(course, step.dose, step.dose_given)
            days: tuple[int | None, ...] = step.days or (None,)
            for day in days:
                for n in range(1, drug.times_per_day + 1):
                    key = f"{drug.key}-c{cycle}" + (f"-d{day}" if day is not None else "")
                    if drug.times_per_day > 1:
                        key += f"-{n}"
                    out.append(Administration(key, cycle, day, n, step.dose, absolute, calculated))
    return out


def course_administrations(course: MedicationCourse) -> list[Administration]:
    """The administrations of every drug of ``course``."""
    return [a for drug in course.drugs for a in administrations(course, drug)]


def administration_date(course: MedicationCourse, a: Administration, anchor: date) -> date | None:
    """The date of a cycle-1 administration from a known, exact course start (day 1 = the
    start); None otherwise: later cycles may have been delayed and the case gives no dates."""
    if course.start is None or course.start.approximate or a.cycle != 1 or a.day is None:
        return None
    start = course.start.resolve(anchor)
    return None if start is None else start + timedelta(days=a.day - 1)
