"""CapabilityStatement (https://hl7.org/fhir/R4/http.html#capabilities) and health endpoints."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_capability_statement(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    rest = statement["rest"][0]
    assert rest["mode"] == "server"
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction",
        "batch",
        "history-system",
        "search-system",
    }
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {"Patient", "Observation", "Condition", "Bundle"} <= set(by_type)
    assert "HumanName" not in by_type and "Resource" not in by_type
    codes = {i["code"] for i in by_type["Patient"]["interaction"]}
    assert codes == {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
    assert by_type["Patient"]["conditionalCreate"] is True
    assert by_type["Patient"]["conditionalDelete"] == "single"
    assert "application/json-patch+json" in statement["patchFormat"]


def test_capability_statement_lists_what_the_app_serves(client: TestClient) -> None:
    """Every type-level interaction advertised for Patient answers something other than 404/405."""
    client.put("/fhir/Patient/cap", json={"resourceType": "Patient", "id": "cap"})
    probes = {
        "read": ("GET", "/fhir/Patient/cap"),
        "vread": ("GET", "/fhir/Patient/cap/_history/1"),
        "history-instance": ("GET", "/fhir/Patient/cap/_history"),
        "history-type": ("GET", "/fhir/Patient/_history"),
        "search-type": ("GET", "/fhir/Patient?_id=cap"),
    }
    statement = client.get("/fhir/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    for interaction in patient["interaction"]:
        if interaction["code"] in probes:
            method, url = probes[interaction["code"]]
            assert client.request(method, url).status_code == 200


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
