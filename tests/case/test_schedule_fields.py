"""Schedule fields of a medication course (cycles planned and given, continuous dosing,
times per day, BSA, the absolute dose given) and the third example case, which uses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings.case import CaseFileError, load_case

from .test_errors import BASE, refuse, write

REPO = Path(__file__).resolve().parents[2]
THIRD = REPO / "examples" / "synthetic-intrahepatic-cholangiocarcinoma" / "case.yaml"

COURSE = "        days: [1, 2, 3]\n    start: month +1\n    end: month +3\n    status: completed\n"


def test_the_third_case_loads_with_its_schedule() -> None:
    case = load_case(THIRD)
    assert case.case.synthetic
    gem_cis, ivosidenib = case.medication_courses
    assert (gem_cis.cycles_planned, gem_cis.cycles, gem_cis.status) == (8, 4, "stopped")
    assert gem_cis.body_surface_area is not None and gem_cis.body_surface_area.unit == "m2"
    assert [d.days for d in gem_cis.drugs] == [[1, 8], [1, 8]]
    assert {d.dose.unit for d in gem_cis.drugs if d.dose} == {"mg/m2"}
    [drug] = ivosidenib.drugs
    assert drug.continuous and drug.days == [] and drug.times_per_day == 1
    assert case.labs[0].unit == "g/dL"


def test_fewer_cycles_given_than_planned_is_not_a_completed_course(tmp_path: Path) -> None:
    err, _ = refuse(tmp_path, COURSE, COURSE + "    cycles: 2\n    cycles_planned: 6\n")
    assert err.field == "medication_courses[0]"
    assert "2 of 6 planned cycles given" in err.message and "status stopped" in err.message


def test_more_cycles_given_than_planned_is_refused(tmp_path: Path) -> None:
    err, _ = refuse(tmp_path, COURSE, COURSE + "    cycles: 7\n    cycles_planned: 6\n")
    assert "exceeds cycles_planned" in err.message


def test_stopped_after_4_of_6_loads(tmp_path: Path) -> None:
    text = BASE.replace(
        "    status: completed\n",
        "    status: stopped\n    cycles: 4\n    cycles_planned: 6\n",
    )
    [course] = load_case(write(tmp_path, text)).medication_courses
    assert (course.cycles, course.cycles_planned) == (4, 6)


def test_continuous_and_cycle_days_exclude_each_other(tmp_path: Path) -> None:
    err, _ = refuse(
        tmp_path, "        days: [1, 2, 3]\n", "        days: [1]\n        continuous: true\n"
    )
    assert err.field == "medication_courses[0].drugs[0]"
    assert "either given on cycle 'days' or 'continuous'" in err.message


def test_body_surface_area_must_be_in_square_metres(tmp_path: Path) -> None:
    err, line = refuse(
        tmp_path, COURSE, COURSE + "    body_surface_area: {value: 170, unit: cm2}\n"
    )
    assert err.field == "medication_courses[0].body_surface_area"
    assert "must be in m2" in err.message
    assert err.line == line + COURSE.count("\n")  # the line after the course's four


def test_override_days_beyond_the_cycle_length(tmp_path: Path) -> None:
    extra = (
        "    cycle_length: 7 d\n    cycles: 2\n    cycle_overrides:\n"
        "      - cycle: 2\n        drug: drug-a\n        steps:\n"
        "          - dose: {value: 20, unit: mg}\n            days: [8]\n"
    )
    err, _ = refuse(tmp_path, COURSE, COURSE + extra)
    assert err.field == "medication_courses[0].cycle_overrides[0].steps[0].days"
    assert "beyond the cycle length" in err.message


def test_a_number_where_text_is_expected_is_explained(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "  title: Tiny case", "  title: 42")
    assert err.field == "case.title"
    assert (
        err.message
        == 'expected text, got the number 42; write it in quotes ("42") if it is meant as text'
    )
    assert "Input should be" not in str(err)
    assert (err.line, err.column) == (line, 3)


def test_a_misspelt_field_gets_a_suggestion(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "    start: month +1\n", "    strat: month +1\n")
    assert err.message == "unknown field 'strat'; did you mean 'start'?"
    assert err.field == "medication_courses[0].strat" and err.line == line


def test_words_for_literals_numbers_and_keys(tmp_path: Path) -> None:
    text = (
        BASE.replace("sex: female", "sex: f")
        .replace("days: [1, 2, 3]", "days: [1, two, 3]")
        .replace("  - key: status-2", "  - key: Status 2")
    )
    with pytest.raises(CaseFileError) as info:
        load_case(write(tmp_path, text))
    messages = {p.field: p.message for p in info.value.problems}
    assert messages["patient.sex"].startswith("'f' is not one of: 'female', 'male'")
    assert (
        messages["medication_courses[0].drugs[0].days[1]"] == "expected a whole number, got 'two'"
    )
    assert messages["disease_status[1].key"].startswith("'Status 2' is not a key")
    assert not any("Input should" in m for m in messages.values())
