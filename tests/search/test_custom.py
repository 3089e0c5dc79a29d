"""A custom SearchParameter POSTed to the server is indexed on later writes, found
by search, and applied to earlier resources by `search reindex`
(https://hl7.org/fhir/R4/searchparameter.html)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from fhir_service.cli.reindex import reindex
from fhir_service.storage import SqlStore
from tests.search.helpers import ids, search

Post = Callable[[dict[str, Any]], dict[str, Any]]
EYE = "http://example.org/fhir/StructureDefinition/eye-colour"


def _patient(colour: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "extension": [{"url": EYE, "valueCode": colour}]}


def test_custom_search_parameter(client: TestClient, post: Post, database_url: str) -> None:
    before = post(_patient("blue"))["id"]
    unknown = search(client, "/fhir/Patient?eye-colour=blue")
    assert ids(unknown) == {before}, "an unknown parameter is ignored (lenient)"
    post(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/eye-colour",
            "name": "EyeColour",
            "status": "active",
            "description": "Eye colour of the patient",
            "code": "eye-colour",
            "base": ["Patient"],
            "type": "token",
            "expression": f"Patient.extension('{EYE}').value",
        }
    )
    after = post(_patient("blue"))["id"]
    brown = post(_patient("brown"))["id"]
    # Later writes are indexed at once. The earlier Patient only by a reindex: the
    # SearchParameter's own background job (the app's worker looks every 2 s, so it may
    # have run by now) or the command below.
    found = ids(search(client, "/fhir/Patient?eye-colour=blue"))
    assert after in found and found <= {before, after}
    assert ids(search(client, "/fhir/Patient?eye-colour=brown")) == {brown}
    store = SqlStore.open(database_url)
    try:
        assert reindex(store, ["Patient"], batch=2, echo=False) == 3  # every Patient
    finally:
        store.close()
    assert ids(search(client, "/fhir/Patient?eye-colour=blue")) == {before, after}


def _patient_params(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    (patient,) = [r for r in response.json()["rest"][0]["resource"] if r["type"] == "Patient"]
    return {p["name"]: p for p in patient["searchParam"]}


def test_capability_statement_lists_custom_parameters(client: TestClient, post: Post) -> None:
    before = _patient_params(client)
    assert before["family"] == {
        "name": "family",
        "definition": "http://hl7.org/fhir/SearchParameter/individual-family",
        "type": "string",
    }
    assert "eye-colour" not in before
    created = post(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/eye-colour",
            "name": "EyeColour",
            "status": "active",
            "description": "Eye colour of the patient",
            "code": "eye-colour",
            "base": ["Patient"],
            "type": "token",
            "expression": f"Patient.extension('{EYE}').value",
        }
    )
    assert _patient_params(client)["eye-colour"] == {
        "name": "eye-colour",
        "definition": "http://example.org/fhir/SearchParameter/eye-colour",
        "type": "token",
    }
    assert client.delete(f"/fhir/SearchParameter/{created['id']}").status_code in (200, 204)
    assert "eye-colour" not in _patient_params(client)
