"""`fhir-service map`: the DESIGN.md contract, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IVC_CASE = REPO / "examples" / "ivc-leiomyosarcoma" / "case.yaml"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_service", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def test_map_writes_a_transaction_bundle_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    result = run_cli("map", str(IVC_CASE), "-o", str(out), "--anchor-date", "2022-03-01")
    assert result.returncode == 0, result.stderr
    bundle = json.loads(out.read_text())
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "transaction"
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} >= {
        "Patient",
        "Condition",
        "Procedure",
        "MedicationAdministration",
        "Observation",
        "DiagnosticReport",
    }


def test_map_prints_a_collection_bundle_to_stdout() -> None:
    result = run_cli("map", str(IVC_CASE), "--bundle-type", "collection")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["type"] == "collection"


def test_the_anchor_date_moves_every_date_consistently(tmp_path: Path) -> None:
    a = json.loads(run_cli("map", str(IVC_CASE), "--anchor-date", "2020-01-01").stdout)
    b = json.loads(run_cli("map", str(IVC_CASE), "--anchor-date", "2021-01-01").stdout)
    dates_a = [r for r in json.dumps(a).split('"') if r[:4] == "2020"]
    assert dates_a, "day 0 events carry the anchor date"
    assert not [r for r in json.dumps(b).split('"') if r[:4] == "2020"]


BAD_UNIT_CASE = """\
schema_version: "1.0"
case: {id: bad-unit, title: Bad unit}
source: {citation: Test}
anchor: {event: day of diagnosis}
patient: {key: patient, sex: female, age: {value: 50, unit: a}, age_at: day 0}
labs:
  - key: hb
    text: Haemoglobin
    value: 12
    unit: grams per decilitre
"""


def test_a_bad_case_file_exits_2_naming_field_and_line(tmp_path: Path) -> None:
    case = tmp_path / "case.yaml"
    case.write_text(BAD_UNIT_CASE)
    out = tmp_path / "out.json"
    result = run_cli("map", str(case), "-o", str(out))
    assert result.returncode == 2
    assert "labs[0]" in result.stderr
    assert f"{case}:" in result.stderr
    assert not out.exists(), "nothing is written for a bad case file"
    assert "Traceback" not in result.stderr


def test_unknown_field_and_missing_file_and_bad_options(tmp_path: Path) -> None:
    case = tmp_path / "case.yaml"
    case.write_text(
        BAD_UNIT_CASE.replace("source: {citation: Test}", "source: {citation: T, doii: x}")
    )
    result = run_cli("map", str(case))
    assert result.returncode == 2
    assert "source" in result.stderr and ":3:" in result.stderr
    assert run_cli("map", str(tmp_path / "missing.yaml")).returncode == 2
    assert run_cli("map", str(IVC_CASE), "--bundle-type", "document").returncode == 2
    assert run_cli("map", str(IVC_CASE), "--anchor-date", "yesterday").returncode == 2


def test_map_reports_every_error_of_a_case_file_at_once(tmp_path: Path) -> None:
    text = IVC_CASE.read_text()
    assert "schema_version:" in text
    broken = tmp_path / "broken.yaml"
    # Two unknown fields far apart: both are reported, each with its line.
    broken.write_text("bogus_top: 1\n" + text + "another_bogus: 2\n")
    result = run_cli("map", str(broken))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, result.stderr
    assert "bogus_top: unknown field 'bogus_top'" in errors[0]
    assert "another_bogus: unknown field 'another_bogus'" in errors[1]
    assert "2 errors in" in result.stderr


def test_validate_on_a_case_file_says_to_map_it_first() -> None:
    result = run_cli("validate", str(IVC_CASE))
    assert result.returncode == 2
    assert "is a case file, not FHIR JSON; map it first: `fhir-service map" in result.stderr


def test_map_explains_each_error_with_line_column_field_and_hint(tmp_path: Path) -> None:
    case = REPO / "examples" / "synthetic-intrahepatic-cholangiocarcinoma" / "case.yaml"
    lines = case.read_text().splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("  title: "))
    planned = next(i for i, line in enumerate(lines) if line.startswith("    cycles_planned: "))
    lines[title] = "  title: 2024"
    lines[planned] = "    cycles_planed: 8"
    broken = tmp_path / "broken.yaml"
    broken.write_text("\n".join(lines) + "\n")
    result = run_cli("map", str(broken))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {broken}:{title + 1}:3: case.title: expected text, got the number 2024; "
        'write it in quotes ("2024") if it is meant as text',
        f"error: {broken}:{planned + 1}:5: medication_courses[0].cycles_planed: "
        "unknown field 'cycles_planed'; did you mean 'cycles_planned'?",
    ]
    assert "2 errors in" in result.stderr
