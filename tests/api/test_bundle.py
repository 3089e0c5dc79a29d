"""batch and transaction Bundles at POST /fhir (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import assert_outcome

IDENT = {"system": "http://example.org/mrn", "value": "tx-1"}


def _transaction(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _patient_entry() -> dict:
    return {
        "fullUrl": "urn:uuid:6f4d3c1e-0000-4000-8000-000000000001",
        "resource": {"resourceType": "Patient", "identifier": [IDENT]},
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": "identifier=http://example.org/mrn|tx-1",
        },
    }


def _observation_entry() -> dict:
    return {
        "fullUrl": "urn:uuid:6f4d3c1e-0000-4000-8000-000000000002",
        "resource": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": "urn:uuid:6f4d3c1e-0000-4000-8000-000000000001"},
        },
        "request": {"method": "POST", "url": "Observation"},
    }


def test_transaction_resolves_urn_uuid_references(client: TestClient) -> None:
    response = client.post("/fhir", json=_transaction(_patient_entry(), _observation_entry()))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_location, observation_location = (e["response"]["location"] for e in bundle["entry"])
    patient_id = patient_location.split("/")[1]
    observation = client.get("/fhir/" + observation_location.split("/_history")[0]).json()
    assert observation["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_with_one_bad_entry_changes_nothing(client: TestClient) -> None:
    before = client.get("/fhir/_history").json()["total"]
    bad = {
        "resource": {"resourceType": "Observation", "status": "final", "valueBoolean": "maybe"},
        "request": {"method": "POST", "url": "Observation"},
    }
    response = client.post("/fhir", json=_transaction(_patient_entry(), bad))
    assert_outcome(response, 400, "Bundle.entry[1]")
    assert client.get("/fhir/_history").json()["total"] == before
    assert client.get("/fhir/Patient/_history").json()["total"] == 0


def test_transaction_is_idempotent_with_if_none_exist(client: TestClient) -> None:
    client.post("/fhir", json=_transaction(_patient_entry()))
    again = client.post("/fhir", json=_transaction(_patient_entry())).json()
    assert again["entry"][0]["response"]["status"] == "200 OK"
    assert client.get("/fhir/Patient/_history").json()["total"] == 1


def test_batch_entries_are_independent(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "b1"},
                "request": {"method": "PUT", "url": "Patient/b1"},
            },
            {
                "resource": {"resourceType": "Patient", "id": "b2", "gender": 5},
                "request": {"method": "PUT", "url": "Patient/b2"},
            },
            {"request": {"method": "GET", "url": "Patient/missing"}},
        ],
    }
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses[0].startswith("201")
    assert statuses[1].startswith("422")  # refused by validation on write (the default)
    assert statuses[2].startswith("404")
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient/b1").status_code == 200
    assert client.get("/fhir/Patient/b2").status_code == 404


def test_post_to_base_needs_transaction_or_batch_bundle(client: TestClient) -> None:
    assert_outcome(client.post("/fhir", json={"resourceType": "Patient"}), 400, "Bundle")
    collection = {"resourceType": "Bundle", "type": "collection", "entry": []}
    assert_outcome(client.post("/fhir", json=collection), 400, "collection")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_large_transaction_with_one_malformed_entry_changes_nothing(
    client: TestClient, method: str
) -> None:
    """Past 8 written resources the app validates them in its worker process while it
    already writes rows and extracts index values from them: a malformed shape that the
    index extraction meets before validation has answered must still end as the entry's
    400, for a create (POST) as for a create-on-update (PUT)."""
    before = client.get("/fhir/_history").json()["total"]
    for malformed in (
        {"subject": "Patient/not-an-object", "code": ["not", "a", "CodeableConcept"]},
        {"valueBoolean": "maybe"},
        {"effectiveDateTime": {"start": 1}, "identifier": "x"},
    ):
        entries = []
        for n in range(20):
            resource = {"resourceType": "Observation", "status": "final", "code": {"text": "w"}}
            url = "Observation"
            if method == "PUT":
                resource["id"] = f"malformed-test-{n}"
                url = f"Observation/malformed-test-{n}"
            entries.append(
                {
                    "fullUrl": f"urn:uuid:6f4d3c1e-0000-4000-8000-{n:012d}",
                    "resource": resource,
                    "request": {"method": method, "url": url},
                }
            )
        entries[13]["resource"].update(malformed)
        response = client.post("/fhir", json=_transaction(*entries))
        assert_outcome(response, 400, "Bundle.entry[13]")
        assert client.get("/fhir/_history").json()["total"] == before
