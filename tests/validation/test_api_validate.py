"""$validate over the REST API (https://hl7.org/fhir/R4/resource-operation-validate.html)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings

FHIR_JSON = {"content-type": "application/fhir+json"}
MCODE_PATIENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient"
VALIDATE_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"


@pytest.fixture
def client(sqlite_url: str, package_root: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=sqlite_url, package_cache=package_root, base_url=None)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def errors(outcome: dict[str, Any]) -> list[tuple[str, list[str]]]:
    assert outcome["resourceType"] == "OperationOutcome"
    return [
        (i["code"], i.get("expression", []))
        for i in outcome["issue"]
        if i["severity"] in ("error", "fatal")
    ]


def test_system_level_bare_resource(client: TestClient) -> None:
    response = client.post(
        "/fhir/$validate", json={"resourceType": "Patient", "gender": "mail"}, headers=FHIR_JSON
    )
    assert response.status_code == 200
    assert errors(response.json()) == [("code-invalid", ["Patient.gender"])]


def test_type_level_parameters_with_profile(client: TestClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", "gender": "female"}},
            {"name": "profile", "valueUri": MCODE_PATIENT},
            {"name": "mode", "valueCode": "create"},
        ],
    }
    response = client.post("/fhir/Patient/$validate", json=body, headers=FHIR_JSON)
    assert response.status_code == 200
    found = errors(response.json())
    # mCODE CancerPatient needs identifier and name; gender is given.
    assert [where for _, where in found] == [["Patient"], ["Patient"]]
    texts = [i["diagnostics"] for i in response.json()["issue"] if i["severity"] == "error"]
    assert {t.split(":")[0] for t in texts} == {"Patient.identifier", "Patient.name"}


def test_valid_resource_gives_all_ok(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient/$validate?mode=create",
        json={"resourceType": "Patient", "gender": "female"},
        headers=FHIR_JSON,
    )
    assert response.status_code == 200
    assert response.json()["issue"] == [
        {"severity": "information", "code": "informational", "diagnostics": "All OK"}
    ]


def test_wrong_type_bad_mode_and_bad_json_are_400(client: TestClient) -> None:
    wrong = client.post(
        "/fhir/Observation/$validate", json={"resourceType": "Patient"}, headers=FHIR_JSON
    )
    assert wrong.status_code == 400
    assert wrong.json()["resourceType"] == "OperationOutcome"
    mode = client.post(
        "/fhir/$validate?mode=later", json={"resourceType": "Patient"}, headers=FHIR_JSON
    )
    assert mode.status_code == 400
    broken = client.post(
        "/fhir/$validate",
        content=b'{"resourceType": "Patient",\n "active": tru}',
        headers=FHIR_JSON,
    )
    assert broken.status_code == 400
    [issue] = broken.json()["issue"]
    assert issue["diagnostics"] == (
        "The JSON property 'active' has no quotes around the value of the property 'tru'"
    )
    unreadable = client.post("/fhir/$validate", content=b'{"a": [}', headers=FHIR_JSON)
    assert unreadable.status_code == 400
    assert unreadable.json()["issue"][0]["diagnostics"].startswith("Error parsing JSON")


def test_update_mode_needs_an_id(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient/$validate?mode=update", json={"resourceType": "Patient"}, headers=FHIR_JSON
    )
    assert response.status_code == 200
    assert errors(response.json()) == [("required", ["Patient.id"])]


def test_instance_level_validates_the_stored_resource(client: TestClient) -> None:
    created = client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "gender": "male"}, headers=FHIR_JSON
    )
    assert created.status_code == 201
    pid = created.json()["id"]
    response = client.get(f"/fhir/Patient/{pid}/$validate")
    assert response.status_code == 200
    assert errors(response.json()) == []
    profiled = client.get(f"/fhir/Patient/{pid}/$validate", params={"profile": MCODE_PATIENT})
    assert len(errors(profiled.json())) == 2
    assert client.get("/fhir/Patient/nobody/$validate").status_code == 404


def test_capability_statement_declares_validate(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    declared = {"name": "validate", "definition": VALIDATE_DEFINITION}
    rest = statement["rest"][0]
    assert declared in rest["operation"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert declared in by_type["Patient"]["operation"]
    assert declared in by_type["Observation"]["operation"]


def _place(outcome: dict[str, Any], expression: str) -> tuple[int, int]:
    """(line, col) extensions of the first issue at ``expression``."""
    issue = next(i for i in outcome["issue"] if i.get("expression") == [expression])
    values = {e["url"].rsplit("-", 1)[1]: e["valueInteger"] for e in issue["extension"]}
    return values["line"], values["col"]


def _position(text: str, fragment: str) -> tuple[int, int]:
    """1-based line and column where ``fragment`` starts in ``text``."""
    offset = text.index(fragment)
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def test_posted_resource_issues_carry_line_and_column(client: TestClient) -> None:
    text = '{\n  "resourceType": "Patient",\n  "active": true,\n  "gender": "mail"\n}\n'
    response = client.post("/fhir/Patient/$validate", content=text, headers=FHIR_JSON)
    assert response.status_code == 200
    assert _place(response.json(), "Patient.gender") == _position(text, '"mail"')


def test_parameters_resource_issues_are_placed_in_the_posted_text(client: TestClient) -> None:
    text = (
        """{
  "resourceType": "Parameters",
  "parameter": [
    {"name": "mode", "valueCode": "create"},
    {"name": "profile", "valueUri": "PROFILE"},
    {
      "name": "resource",
      "resource": {
        "resourceType": "Patient",
        "gender": "mail"
      }
    }
  ]
}"""
    ).replace("PROFILE", MCODE_PATIENT)
    response = client.post("/fhir/$validate", content=text, headers=FHIR_JSON)
    outcome = response.json()
    assert _place(outcome, "Patient.gender") == _position(text, '"mail"')
    # The profile's missing elements are located at the resource itself.
    assert _place(outcome, "Patient") == _position(text, '{\n        "resourceType": "Patient"')


def test_duplicate_properties_are_reported_not_a_server_error(client: TestClient) -> None:
    # The second "parameter" repeats the first property name; the validator keeps the
    # first one (as the HL7 validator's JSON reader does) and reports the duplicate.
    text = (
        '{"resourceType": "Parameters", '
        '"parameter": [{"name": "resource", "resource": {"resourceType": "Patient", '
        '"gender": "mail"}}], '
        '"parameter": [{"name": "mode", "valueCode": "create"}]}'
    )
    response = client.post("/fhir/$validate", content=text, headers=FHIR_JSON)
    assert response.status_code == 200
    found = errors(response.json())
    assert ("code-invalid", ["Patient.gender"]) in found
    assert any("duplicate" in i.get("diagnostics", "") for i in response.json()["issue"])
