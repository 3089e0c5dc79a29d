"""Hostile shapes of otherwise parseable resources, on SQLite and PostgreSQL:
- a repeating primitive and its ``_name`` shadow of different lengths
  (https://hl7.org/fhir/R4/json.html#primitive) is refused on every write (422; a
  transaction holding it, 400) and reported
  by ``$validate``;
- a CodeableConcept with text only where the binding is required
  (``AdverseEvent.severity``, https://hl7.org/fhir/R4/terminologies.html#required) is
  reported by ``$validate``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import FHIR_JSON, assert_outcome

HEADERS = {"Content-Type": FHIR_JSON}
LONGER_SHADOW = {"given": ["Ann"], "_given": [{"id": "a"}, {"id": "b"}]}
SHORTER_SHADOW = {"given": ["Ann", "Lee"], "_given": [{"id": "a"}]}


def _patient(name: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Doe", **name}]}


def _errors(outcome: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (i["code"], i.get("expression", []))
        for i in outcome["issue"]
        if i["severity"] in ("error", "fatal")
    ]


@pytest.mark.parametrize("name", [LONGER_SHADOW, SHORTER_SHADOW])
def test_shadow_arrays_of_another_length_are_refused_on_write(
    client: TestClient, name: dict[str, Any]
) -> None:
    body = _patient(name)
    # Validation on write (the default, reject) refuses it with 422 and every issue.
    assert_outcome(client.post("/fhir/Patient", json=body, headers=HEADERS), 422, "_given")
    put = client.put("/fhir/Patient/p1", json={**body, "id": "p1"}, headers=HEADERS)
    assert_outcome(put, 422, "_given")
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": body, "request": {"method": "POST", "url": "Patient"}}],
    }
    assert_outcome(client.post("/fhir", json=transaction, headers=HEADERS), 400, "_given")
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 0


def test_shadow_arrays_padded_with_null_are_accepted(client: TestClient) -> None:
    body = _patient({"given": ["Ann", None], "_given": [None, {"id": "b"}]})
    response = client.post("/fhir/Patient", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("name", [LONGER_SHADOW, SHORTER_SHADOW])
def test_validate_reports_shadow_arrays_of_another_length(
    client: TestClient, name: dict[str, Any]
) -> None:
    response = client.post("/fhir/Patient/$validate", json=_patient(name), headers=HEADERS)
    assert response.status_code == 200, response.text
    assert ("structure", ["Patient.name[0].given"]) in _errors(response.json())


def _adverse_event(severity: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "AdverseEvent",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "severity": severity,
    }


def test_validate_reports_text_only_where_a_code_is_required(client: TestClient) -> None:
    text_only = _adverse_event({"text": "severe"})
    response = client.post("/fhir/AdverseEvent/$validate", json=text_only, headers=HEADERS)
    assert response.status_code == 200, response.text
    issues = [i for i in response.json()["issue"] if i["severity"] == "error"]
    assert [(i["code"], i["expression"]) for i in issues] == [
        ("code-invalid", ["AdverseEvent.severity"])
    ]
    assert "adverse-event-severity" in issues[0]["diagnostics"]
    coded = _adverse_event(
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity",
                    "code": "severe",
                }
            ],
            "text": "severe",
        }
    )
    response = client.post("/fhir/AdverseEvent/$validate", json=coded, headers=HEADERS)
    assert _errors(response.json()) == []
