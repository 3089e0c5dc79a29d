"""Bad case files are refused with the field, line and column of the problem."""

from pathlib import Path

import pytest

from mappings.case import CaseFileError, load_case

BASE = """\
schema_version: "1.0"
case:
  id: tiny
  title: Tiny case
source:
  citation: Synthetic test case
anchor:
  event: day of surgery
  procedure: surgery
patient:
  key: patient
  age: {value: 50, unit: a}
  age_at: before day 0
  sex: female
diagnoses:
  - key: cancer
    text: Cancer
    codes: [snomed:363346000]
    role: primary
    verification_status: confirmed
    clinical_status: active
procedures:
  - key: surgery
    text: Surgery
    when: day 0
    reasons: [cancer]
    complications:
      - key: fever
        text: Fever
        when: day +2
medication_courses:
  - key: chemo
    text: Chemotherapy
    category: chemotherapy
    drugs:
      - key: drug-a
        text: Drug A
        dose: {value: 40, unit: mg}
        days: [1, 2, 3]
    start: month +1
    end: month +3
    status: completed
disease_status:
  - key: status-1
    when: month +6
    status: stable
    diagnosis: cancer
  - key: status-2
    when: month +9
    status: stable
    diagnosis: cancer
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refuse(tmp_path: Path, old: str, new: str) -> tuple[CaseFileError, int]:
    """Load BASE with ``old`` replaced by ``new``; return the error and the line of ``new``."""
    assert BASE.count(old) == 1
    text = BASE.replace(old, new)
    line = text[: text.rindex(new)].count("\n") + 1 if new else 0
    with pytest.raises(CaseFileError) as info:
        load_case(write(tmp_path, text))
    return info.value, line


def test_the_base_file_loads(tmp_path: Path) -> None:
    case = load_case(write(tmp_path, BASE))
    assert [d.key for d in case.diagnoses] == ["cancer"]


def test_unknown_field(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "    text: Drug A\n", "    text: Drug A\n        colour: red\n")
    assert err.field == "medication_courses[0].drugs[0].colour"
    assert err.message == "unknown field 'colour'"
    assert (err.line, err.column) == (line + 1, 9)


def test_bad_unit(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "dose: {value: 40, unit: mg}", "dose: {value: 40, unit: mgs}")
    assert err.field == "medication_courses[0].drugs[0].dose.unit"
    assert "'mgs' is not a UCUM code" in err.message
    assert err.line == line
    assert str(err) == f"{err.source}:{line}:{err.column}: {err.field}: {err.message}"
    assert err.source.endswith("case.yaml")


def test_wrong_type(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "days: [1, 2, 3]", "days: [1, two, 3]")
    assert err.field == "medication_courses[0].drugs[0].days[1]"
    assert err.line == line


def test_bad_time(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "start: month +1", "start: month 1")
    assert err.field == "medication_courses[0].start"
    assert "bad time 'month 1'" in err.message
    assert (err.line, err.column) == (line, 5)


def test_unknown_code(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "codes: [snomed:363346000]", "codes: [snomed:999999999]")
    assert err.field == "diagnoses[0].codes[0]"
    assert "unknown code 'snomed:999999999'" in err.message
    assert err.line == line


def test_unknown_code_system(tmp_path: Path) -> None:
    err, _ = refuse(tmp_path, "codes: [snomed:363346000]", "codes: [mesh:D000001]")
    assert err.field == "diagnoses[0].codes[0]"


def test_unknown_cross_reference(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "    reasons: [cancer]", "    reasons: [cancr]")
    assert err.field == "procedures[0].reasons[0]"
    assert err.message == "unknown key 'cancr'"
    assert err.line == line


def test_cross_reference_of_the_wrong_kind(tmp_path: Path) -> None:
    err, _ = refuse(
        tmp_path,
        "    diagnosis: cancer\n  - key: status-2",
        "    diagnosis: chemo\n  - key: status-2",
    )
    assert err.field == "disease_status[0].diagnosis"
    assert "is a MedicationCourse, expected a diagnosis" in err.message


def test_duplicate_key(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "  - key: status-2", "  - key: status-1")
    assert err.field == "disease_status[1].key"
    assert err.message == "duplicate key 'status-1'"
    assert (err.line, err.column) == (line, 5)


def test_course_end_before_start(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "end: month +3", "end: day +10")
    assert err.field == "medication_courses[0].end"
    assert "before start" in err.message
    assert err.line == line


def test_complication_before_its_procedure(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "when: day +2", "when: before day 0")
    assert err.field == "procedures[0].complications[0].when"
    assert err.line == line


def test_disease_status_not_ascending(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "when: month +9", "when: month +3")
    assert err.field == "disease_status[1].when"
    assert "not ascending" in err.message
    assert err.line == line


def test_missing_required_field(tmp_path: Path) -> None:
    err, _ = refuse(tmp_path, "  sex: female\n", "")
    assert err.field == "patient.sex"
    assert err.message == "missing required field"
    assert err.line == BASE.splitlines().index("patient:") + 1


def test_yaml_syntax_error(tmp_path: Path) -> None:
    err, line = refuse(tmp_path, "  title: Tiny case", "  title: [Tiny case")
    assert err.message.startswith("YAML syntax error")
    assert err.field == ""
    assert err.line is not None and err.line >= line


def test_duplicate_yaml_mapping_key(tmp_path: Path) -> None:
    err, _ = refuse(tmp_path, "  title: Tiny case", "  title: Tiny case\n  title: Again")
    assert err.message.startswith("YAML syntax error")
    assert err.line is not None


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaseFileError, match="must be a YAML mapping"):
        load_case(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(CaseFileError, match="cannot read"):
        load_case(tmp_path / "absent.yaml")


def test_all_problems_are_listed_in_line_order(tmp_path: Path) -> None:
    text = BASE.replace("unit: mg}", "unit: mgs}").replace("sex: female", "sex: femme")
    with pytest.raises(CaseFileError) as info:
        load_case(write(tmp_path, text))
    fields = [p.field for p in info.value.problems]
    assert fields == ["patient.sex", "medication_courses[0].drugs[0].dose.unit"]
    assert info.value.field == "patient.sex"
