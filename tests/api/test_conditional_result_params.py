"""Conditional create, update, patch and delete whose criteria hold only result parameters
(https://hl7.org/fhir/R4/search.html#return) answer 400, as empty criteria do: such
criteria select every resource of the type, so with one candidate it would be returned,
overwritten or deleted. On SQLite and PostgreSQL, over HTTP and in a transaction."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import FHIR_JSON, assert_outcome

RESULT_ONLY = ["_count=1", "_sort=_id", "_elements=id", "_summary=true", "_include=*&_count=5"]


def _one_patient(client: TestClient) -> str:
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", "active": True})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _unchanged(client: TestClient, id: str) -> None:
    current = client.get(f"/fhir/Patient/{id}")
    assert current.status_code == 200, current.text
    assert current.json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient?_summary=count").json()["total"] == 1


@pytest.mark.parametrize("criteria", RESULT_ONLY)
def test_result_parameters_alone_are_no_criteria(client: TestClient, criteria: str) -> None:
    id = _one_patient(client)
    headers = {"Content-Type": FHIR_JSON}
    body = {"resourceType": "Patient", "active": False}
    created = client.post(
        "/fhir/Patient", json=body, headers={**headers, "If-None-Exist": criteria}
    )
    assert_outcome(created, 400, "result parameters")
    assert_outcome(client.put(f"/fhir/Patient?{criteria}", json=body, headers=headers), 400)
    patch = [{"op": "replace", "path": "/active", "value": False}]
    patched = client.patch(
        f"/fhir/Patient?{criteria}",
        json=patch,
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert_outcome(patched, 400)
    assert_outcome(client.delete(f"/fhir/Patient?{criteria}"), 400)
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"Patient?{criteria}"}}],
    }
    assert_outcome(client.post("/fhir", json=transaction, headers=headers), 400)
    _unchanged(client, id)


def test_a_selecting_parameter_beside_them_still_works(client: TestClient) -> None:
    id = _one_patient(client)
    response = client.delete(f"/fhir/Patient?_id={id}&_count=1")
    assert response.status_code in (200, 204), response.text
    assert client.get(f"/fhir/Patient/{id}").status_code == 410
