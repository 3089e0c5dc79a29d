"""`fhir-service validate`: the DESIGN.md contract, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PATIENT_URL = "urn:uuid:2d1e6a7c-8c0b-4c53-9c55-0c7f1f0e0a01"
MISSING_URL = "urn:uuid:2d1e6a7c-8c0b-4c53-9c55-0c7f1f0e0a99"

# A transaction with three mistakes: 'mail' is not an AdministrativeGender code, the
# Observation lacks its required status (1..1), and its subject points at an entry
# that is not in the Bundle.
BROKEN_BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": PATIENT_URL,
            "resource": {"resourceType": "Patient", "gender": "mail"},
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "fullUrl": "urn:uuid:2d1e6a7c-8c0b-4c53-9c55-0c7f1f0e0a02",
            "resource": {
                "resourceType": "Observation",
                "code": {"text": "body weight"},
                "subject": {"reference": MISSING_URL},
            },
            "request": {"method": "POST", "url": "Observation"},
        },
    ],
}

VALID_PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "gender": "female",
    "birthDate": "1970-01-01",
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_service", "validate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def broken(tmp_path: Path, package_root: Path) -> Path:
    path = tmp_path / "broken-bundle.json"
    path.write_text(json.dumps(BROKEN_BUNDLE, indent=2))
    return path


@pytest.fixture
def valid(tmp_path: Path, package_root: Path) -> Path:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(VALID_PATIENT, indent=2))
    return path


def test_broken_bundle_reports_reference_code_and_missing_element(broken: Path) -> None:
    result = run_cli(str(broken), "--format", "json")
    assert result.returncode == 1, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    errors = {
        (issue["code"], issue["expression"][0])
        for issue in outcome["issue"]
        if issue["severity"] == "error"
    }
    assert errors == {
        ("code-invalid", "Bundle.entry[0].resource/*Patient/null*/.gender"),
        ("structure", "Bundle.entry[1].resource"),
        ("not-found", "Bundle.entry[1].resource/*Observation/null*/.subject"),
    }
    by_code = {i["code"]: i for i in outcome["issue"] if i["severity"] == "error"}
    assert "Observation.status: minimum required = 1" in by_code["structure"]["diagnostics"]
    assert MISSING_URL in by_code["not-found"]["diagnostics"]
    # Line and column of the gender value in the indented file written above.
    lines = broken.read_text().splitlines()
    gender_line = next(i for i, text in enumerate(lines, 1) if '"gender"' in text)
    line_ext = by_code["code-invalid"]["extension"][0]
    assert line_ext["valueInteger"] == gender_line


def test_text_format_names_locations_and_lines(broken: Path) -> None:
    result = run_cli(str(broken))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"-- {broken} --", "*FAILURE*: 3 errors, 0 warnings, 0 notes"]
    assert lines[2].startswith("  Error @ Bundle.entry[0].resource/*Patient/null*/.gender (line ")


def test_valid_file_exits_zero(valid: Path) -> None:
    result = run_cli(str(valid), "--format", "json")
    assert result.returncode == 0, result.stdout
    outcome = json.loads(result.stdout)
    assert all(i["severity"] not in ("error", "fatal") for i in outcome["issue"])


def test_several_files_give_an_array_and_the_worst_status(valid: Path, broken: Path) -> None:
    result = run_cli(str(valid), str(broken), "--format", "json")
    assert result.returncode == 1
    outcomes = json.loads(result.stdout)
    assert [o["resourceType"] for o in outcomes] == ["OperationOutcome", "OperationOutcome"]


def test_unavailable_profile_is_an_error(valid: Path) -> None:
    result = run_cli(str(valid), "--profile", "http://example.org/StructureDefinition/none")
    assert result.returncode == 1
    assert "is not available in the installed FHIR packages" in result.stdout


def test_unreadable_file_and_bad_format_are_usage_errors(tmp_path: Path, valid: Path) -> None:
    assert run_cli(str(tmp_path / "absent.json")).returncode == 2
    assert run_cli(str(valid), "--format", "xml").returncode == 2


def test_malformed_json_is_fatal_with_a_line(tmp_path: Path, package_root: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "resourceType": "Patient",\n  "name": [ {"family": "X"}\n}\n')
    result = run_cli(str(path), "--format", "json")
    assert result.returncode == 1
    [issue] = json.loads(result.stdout)["issue"]
    assert issue["severity"] == "fatal"
    assert issue["extension"][0]["valueInteger"] == 4
