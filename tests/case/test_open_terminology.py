"""Open terminology: written-out codes of any system, UCUM units by grammar, --strict."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from fhir_service.fhir.package_cache import load_definitions
from mappings.bundle import build_bundle
from mappings.case import CaseFileError
from mappings.case.codecheck import check_codes
from mappings.case.loader import loads_case

PACKAGES = Path.home() / ".fhir" / "packages"

CASE = """\
schema_version: "1.0"
case: {id: open-codes, title: Open codes}
source: {citation: Synthetic test case}
anchor: {event: day of surgery}
patient: {key: patient, age: {value: 50, unit: a}, age_at: day 0, sex: female}
presentation:
  key: presentation
  when: day -3
  symptoms:
    - key: bleeding
      text: Rectal bleeding
      codes: [{system: http://snomed.info/sct, code: "12063002", display: Rectal hemorrhage}]
labs:
  - key: hb
    text: Haemoglobin
    codes: [{system: loinc, code: 718-7, display: "Hemoglobin [Mass/volume] in Blood"}]
    when: day -3
    value: 11.2
    unit: {unit}
  - key: neutrophils
    text: Neutrophils
    when: day -3
    value: 1.2
    unit: 10*9/L
adverse_events:
  - key: neutropenia
    text: Neutropenia
    when: day +10
    grade:
      scale: ctcae
      value: "3"
      codes:
        - system: http://terminology.hl7.org/CodeSystem/adverse-event-severity
          code: severe
          display: Severe
"""


def _case(unit: str = "g/dL") -> str:
    return CASE.replace("unit: {unit}", f"unit: {unit}")


def test_written_out_codes_are_loaded_and_mapped_as_written() -> None:
    case = loads_case(_case())
    bundle = build_bundle(case, date(2022, 3, 1), "collection")
    codings = [c for e in bundle["entry"] for c in e["resource"].get("code", {}).get("coding", [])]
    assert {
        "system": "http://loinc.org",
        "code": "718-7",
        "display": "Hemoglobin [Mass/volume] in Blood",
    } in codings
    assert {
        "system": "http://snomed.info/sct",
        "code": "12063002",
        "display": "Rectal hemorrhage",
    } in codings


def test_a_table_reference_absent_from_the_tables_says_how_to_write_it_out() -> None:
    text = _case().replace(
        '[{system: http://snomed.info/sct, code: "12063002", display: Rectal hemorrhage}]',
        "[snomed:12063002]",
    )
    with pytest.raises(CaseFileError) as info:
        loads_case(text)
    assert "unknown code 'snomed:12063002'" in str(info.value)
    assert "{system: URI, code: CODE, display: TEXT}" in str(info.value)


def test_a_written_out_code_needs_a_display() -> None:
    text = _case().replace(", display: Rectal hemorrhage}", "}")
    with pytest.raises(CaseFileError, match="display: missing"):
        loads_case(text)


@pytest.mark.skipif(not (PACKAGES / "hl7.fhir.r4.core#4.0.1").exists(), reason="no R4 package")
def test_codes_are_checked_in_the_tables_and_the_packages_or_reported() -> None:
    case = loads_case(_case())
    uses = {u.code: u for u in check_codes(case, load_definitions(PACKAGES))}
    # Not in the tables and in no FHIR package (SNOMED CT and LOINC are not shipped in them).
    assert not uses["12063002"].checked
    assert not uses["718-7"].checked
    # R4 core defines http://terminology.hl7.org/CodeSystem/adverse-event-severity.
    assert uses["severe"].checked
    assert "CodeSystem http://terminology.hl7.org/CodeSystem/adverse-event-severity" in (
        uses["severe"].found_in or ""
    )
    assert uses["severe"].field == "adverse_events[0].grade.codes[0]"


def test_a_written_out_code_in_the_tables_is_checked_there() -> None:
    text = _case().replace(
        'code: "12063002", display: Rectal hemorrhage', 'code: "84229001", display: Fatigue'
    )
    (use,) = [u for u in check_codes(loads_case(text), None) if u.code == "84229001"]
    assert use.found_in is not None and use.found_in.startswith("mappings/terminology/snomed.yaml")


@pytest.mark.parametrize("unit", ["g/dL", "mg/m2", "10*9/L", "{mitoses}/(10.[HPF])", "mmol/L"])
def test_ucum_units_outside_the_display_table_are_accepted(unit: str) -> None:
    case = loads_case(_case(f'"{unit}"'))
    assert case.labs[0].unit == unit


def test_a_unit_that_is_not_ucum_is_refused_with_the_symbol_at_fault() -> None:
    with pytest.raises(CaseFileError) as info:
        loads_case(_case("foo/bar"))
    message = str(info.value)
    assert "labs[0]" in message
    assert "'foo/bar' is not a UCUM code: 'foo' at position 1 is not a UCUM unit symbol" in message


def test_a_wrong_symbol_after_a_valid_one_is_named() -> None:
    with pytest.raises(CaseFileError, match="'xyz' at position 4"):
        loads_case(_case("mg/xyz"))


def _map(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fhir_service",
            "map",
            str(path),
            "--anchor-date",
            "2022-03-01",
            "-o",
            str(path.with_suffix(".json")),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_map_lists_unchecked_codes_and_strict_refuses_them(tmp_path: Path) -> None:
    case = tmp_path / "case.yaml"
    case.write_text(_case(), encoding="utf-8")
    relaxed = _map(case)
    assert relaxed.returncode == 0, relaxed.stderr
    assert "unchecked (taken as written): labs[0].codes[0]: http://loinc.org|718-7" in (
        relaxed.stderr
    )
    assert case.with_suffix(".json").exists()
    case.with_suffix(".json").unlink()
    strict = _map(case, "--strict")
    assert strict.returncode == 1
    assert "--strict: 2 unchecked code(s)" in strict.stderr
    assert "http://snomed.info/sct|12063002 (Rectal hemorrhage)" in strict.stderr
    assert not case.with_suffix(".json").exists()


def test_strict_accepts_a_case_with_checked_codes_only(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    result = _map_to(repo / "examples" / "ivc-leiomyosarcoma" / "case.yaml", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "unchecked" not in result.stderr


def _map_to(case: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fhir_service",
            "map",
            str(case),
            "--anchor-date",
            "2022-03-01",
            "--strict",
            "-o",
            str(out / "b.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
