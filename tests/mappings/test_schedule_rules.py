"""mappings/schedule.py on small courses: runs of cycles, administrations, absolute doses."""

from __future__ import annotations

from datetime import date
from typing import Any

from mappings.case.model import MedicationCourse
from mappings.case.types import Quantity
from mappings.context import MappingContext
from mappings.dosage import request_dosages
from mappings.schedule import absolute_dose, administrations, runs


def course(**fields: Any) -> MedicationCourse:
    drug = {"key": "d", "text": "Drug", "dose": {"value": 25, "unit": "mg/m2"}, "days": [1, 8]}
    drug |= fields.pop("drug", {})
    data = {"key": "c", "text": "Course", "category": "chemotherapy", "status": "completed"}
    return MedicationCourse.model_validate(data | {"drugs": [drug]} | fields)


def test_bsa_doses_multiply_without_float_noise() -> None:
    c = course(body_surface_area={"value": 1.68, "unit": "m2"})
    dose = Quantity(value=25, unit="mg/m2")
    assert absolute_dose(c, dose, None) == (Quantity(value=42, unit="mg"), True)
    c = course(body_surface_area={"value": 1.72, "unit": "m2"})
    assert absolute_dose(c, Quantity(value=1000, unit="mg/m2"), None)[0] == Quantity(
        value=1720, unit="mg"
    )
    # A stated dose given wins over the calculation; no BSA, no weight: no absolute dose.
    stated = Quantity(value=41, unit="mg")
    assert absolute_dose(c, dose, stated) == (stated, False)
    assert absolute_dose(course(), dose, None) == (None, False)
    assert absolute_dose(c, Quantity(value=5, unit="mg/kg"), None) == (None, False)
    assert absolute_dose(c, Quantity(value=40, unit="mg"), None) == (
        Quantity(value=40, unit="mg"),
        False,
    )


def test_an_override_in_the_middle_splits_the_planned_cycles_into_three_runs() -> None:
    override = {
        "cycle": 3,
        "drug": "d",
        "steps": [{"dose": {"value": 20, "unit": "mg/m2"}, "days": [1]}],
    }
    c = course(cycles_planned=6, cycles=6, cycle_overrides=[override])
    assert [(r.first, r.cycles) for r in runs(c, c.drugs[0])] == [(1, 2), (3, 1), (4, 3)]


def test_runs_without_a_planned_count() -> None:
    stopped = course(status="stopped", cycles=2)
    assert [(r.first, r.cycles) for r in runs(stopped, stopped.drugs[0])] == [(1, 2)]
    unknown = course(status="stopped")
    assert [(r.first, r.cycles) for r in runs(unknown, unknown.drugs[0])] == [(1, None)]


def test_twice_daily_on_two_days_of_two_cycles_is_eight_administrations() -> None:
    c = course(cycles=2, drug={"times_per_day": 2})
    given = administrations(c, c.drugs[0])
    assert [(a.cycle, a.day, a.dose_of_day) for a in given] == [
        (c_, d, n) for c_ in (1, 2) for d in (1, 8) for n in (1, 2)
    ]
    assert len({a.key for a in given}) == 8


def test_none_given_and_continuous_dosing() -> None:
    planned_only = course(status="stopped", cycles=0, cycles_planned=6)
    assert administrations(planned_only, planned_only.drugs[0]) == []
    daily = {"days": [], "continuous": True, "dose": {"value": 500, "unit": "mg"}}
    taken = course(status="active", start="day 0", drug=daily)
    [one] = administrations(taken, taken.drugs[0])
    assert (one.key, one.cycle, one.day) == ("d-continuous", None, None)
    held = course(status="on-hold", drug=daily)
    assert administrations(held, held.drugs[0]) == []


def test_a_single_dated_cycle_lists_its_dates_as_timing_events() -> None:
    c = course(cycles=1, start="day +2", drug={"times_per_day": 2})
    [dosage] = request_dosages(c, c.drugs[0], MappingContext("t", date(2024, 2, 28)))
    # day +2 = 2024-03-01 is day 1 of the cycle; day 8 is 2024-03-08; twice each day
    assert dosage["timing"]["event"] == ["2024-03-01"] * 2 + ["2024-03-08"] * 2
    assert dosage["timing"]["repeat"]["count"] == 4
    many = course(cycles=2, start="day +2")
    [dosage] = request_dosages(many, many.drugs[0], MappingContext("t", date(2024, 2, 28)))
    assert "event" not in dosage["timing"]  # cycle 2 may have been delayed
