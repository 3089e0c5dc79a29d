"""PATCH with FHIRPath Patch (https://hl7.org/fhir/R4/fhirpatch.html) over HTTP, alone and
in transaction and batch Bundles, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

from tests.api.helpers import FHIR_JSON, assert_outcome, patient
from tests.fhir.patch_helpers import operation, patch

MRN = {"system": "http://example.org/mrn", "value": "fp-1"}
SSN = {"system": "http://example.org/ssn", "value": "fp-2"}


def _create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _patch(
    client: TestClient, url: str, body: Any, content_type: str = FHIR_JSON, **headers: str
) -> Any:
    return client.patch(
        url, content=json.dumps(body), headers={"Content-Type": content_type, **headers}
    )


def _version(client: TestClient, url: str) -> str:
    return str(client.get(url).json()["meta"]["versionId"])


def test_each_operation_type_over_http(client: TestClient) -> None:
    pid = _create(client, patient(identifier=[MRN, SSN], name=[{"given": ["Ann", "Beth"]}]))
    url = f"/fhir/Patient/{pid}"
    body = patch(
        operation("add", "Patient", name="birthDate", value={"valueDate": "1930-01-01"}),
        operation(
            "add",
            "Patient",
            name="contact",
            value={"part": [{"name": "name", "valueHumanName": {"text": "a name"}}]},
        ),
        operation(
            "insert",
            "Patient.identifier",
            index=0,
            value={"valueIdentifier": {"system": "http://example.org/x", "value": "0"}},
        ),
        operation("delete", "Patient.identifier.where(system = 'http://example.org/ssn')"),
        operation("replace", "Patient.name[0].given[1]", value={"valueString": "Bea"}),
        operation("move", "Patient.name[0].given", source=1, destination=0),
    )
    response = _patch(client, url, body, **{"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    stored = client.get(url).json()
    assert stored["birthDate"] == "1930-01-01"
    assert stored["contact"] == [{"name": {"text": "a name"}}]
    assert [i["value"] for i in stored["identifier"]] == ["0", "fp-1"]
    assert stored["name"][0]["given"] == ["Bea", "Ann"]
    assert stored["meta"]["versionId"] == "2"


@pytest.mark.parametrize("content_type", ["application/json", "application/json+fhir"])
def test_other_fhir_json_media_types_carry_a_fhirpath_patch(
    client: TestClient, content_type: str
) -> None:
    pid = _create(client, patient(gender="male"))
    body = patch(operation("replace", "Patient.gender", value={"valueCode": "female"}))
    response = _patch(client, f"/fhir/Patient/{pid}", body, content_type)
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "female"


def test_json_patch_still_works_and_fhir_json_must_be_parameters(client: TestClient) -> None:
    pid = _create(client, patient(gender="male"))
    url = f"/fhir/Patient/{pid}"
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    assert _patch(client, url, ops, "application/json-patch+json").json()["gender"] == "female"
    assert_outcome(_patch(client, url, ops), 400, "Parameters")
    assert_outcome(_patch(client, url, patient(gender="other")), 400, "Parameters")
    assert_outcome(_patch(client, url, patch(), "application/json-patch+json"), 400, "array")
    assert_outcome(_patch(client, url, patch(), "text/plain"), 415, "Content-Type")
    assert _version(client, url) == "2"


def test_stale_if_match_changes_nothing(client: TestClient) -> None:
    pid = _create(client, patient(gender="male"))
    url = f"/fhir/Patient/{pid}"
    body = patch(operation("replace", "Patient.gender", value={"valueCode": "female"}))
    assert _patch(client, url, body, **{"If-Match": 'W/"1"'}).status_code == 200
    stale = _patch(client, url, body, **{"If-Match": 'W/"1"'})
    assert_outcome(stale, 412, "version")
    assert _version(client, url) == "2"


def test_unknown_and_deleted_targets(client: TestClient) -> None:
    body = patch(operation("delete", "Patient.gender"))
    assert_outcome(_patch(client, "/fhir/Patient/nobody", body), 404, "Patient/nobody")
    pid = _create(client, patient())
    client.delete(f"/fhir/Patient/{pid}")
    assert_outcome(_patch(client, f"/fhir/Patient/{pid}", body), 410, "deleted")


@pytest.mark.parametrize(
    ("op", "status", "words"),
    [
        (operation("delete", "Patient.identifier..value"), 400, "not a valid FHIRPath"),
        (operation("delete", "Patient.identifier"), 422, "selects 2 elements"),
        (
            operation("insert", "Patient.identifier", index=5, value={"valueIdentifier": MRN}),
            422,
            "out of range",
        ),
        (operation("move", "Patient.identifier", source=2, destination=0), 422, "out of range"),
        (operation("replace", "Patient.gender", value={"valueInteger": 3}), 422, "does not fit"),
        (operation("replace", "Patient.id", value={"valueId": "someone-else"}), 422, "id"),
        (
            operation(
                "replace", "Patient.identifier[0]", value={"valueIdentifier": {"system": 42}}
            ),
            422,
            "identifier",
        ),
        (
            operation("add", "Patient", name="birthDate", value={"valueDate": "31/12/1999"}),
            422,
            "birthDate",
        ),
        (
            operation("add", "Patient", name="name", value={"valueIdentifier": MRN}),
            422,
            "does not fit",
        ),
        (operation("explode", "Patient"), 400, "unknown patch operation type"),
        (operation("replace", "Patient.gender"), 400, "missing value"),
    ],
)
def test_hostile_patches_are_4xx_and_write_nothing(
    client: TestClient, op: dict[str, Any], status: int, words: str
) -> None:
    pid = _create(client, patient(identifier=[MRN, SSN], gender="male"))
    url = f"/fhir/Patient/{pid}"
    assert_outcome(_patch(client, url, patch(op)), status, words)
    stored = client.get(url).json()
    assert stored["meta"]["versionId"] == "1"
    assert stored["identifier"] == [MRN, SSN]
    assert stored["gender"] == "male"


def test_a_patch_that_removes_a_required_element_is_refused(client: TestClient) -> None:
    oid = _create(
        client, {"resourceType": "Observation", "status": "final", "code": {"text": "size"}}
    )
    url = f"/fhir/Observation/{oid}"
    assert_outcome(
        _patch(client, url, patch(operation("delete", "Observation.status"))), 422, "status"
    )
    assert client.get(url).json()["status"] == "final"


def _transaction(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _patch_entry(url: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"resource": parameters, "request": {"method": "PATCH", "url": url}}


def test_transaction_patch_entry_with_parameters_resolves_urn_uuid(client: TestClient) -> None:
    pid = _create(client, patient(identifier=[MRN]))
    practitioner_urn = "urn:uuid:7d2b8c1e-0000-4000-8000-0000000000a1"
    bundle = _transaction(
        "transaction",
        {
            "fullUrl": practitioner_urn,
            "resource": {"resourceType": "Practitioner", "name": [{"family": "Who"}]},
            "request": {"method": "POST", "url": "Practitioner"},
        },
        _patch_entry(
            f"Patient/{pid}",
            patch(
                operation(
                    "add",
                    "Patient",
                    name="generalPractitioner",
                    value={"valueReference": {"reference": practitioner_urn}},
                ),
                operation("replace", "Patient.identifier[0].value", value={"valueString": "fp-9"}),
            ),
        ),
    )
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "200 OK"]
    practitioner_id = entries[0]["response"]["location"].split("/")[1]
    stored = client.get(f"/fhir/Patient/{pid}").json()
    assert stored["generalPractitioner"] == [{"reference": f"Practitioner/{practitioner_id}"}]
    assert stored["identifier"][0]["value"] == "fp-9"


def test_transaction_with_conditional_patch_and_json_patch_binary(client: TestClient) -> None:
    pid = _create(client, patient(identifier=[MRN], gender="male"))
    json_patch = [{"op": "add", "path": "/active", "value": True}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(json_patch).encode()).decode(),
    }
    bundle = _transaction(
        "transaction",
        _patch_entry(
            "Patient?identifier=http://example.org/mrn|fp-1",
            patch(operation("replace", "Patient.gender", value={"valueCode": "female"})),
        ),
        _patch_entry(f"Patient/{pid}", binary),
    )
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.text
    stored = client.get(f"/fhir/Patient/{pid}").json()
    assert (stored["gender"], stored["active"], stored["meta"]["versionId"]) == (
        "female",
        True,
        "3",
    )


def test_transaction_with_a_failing_patch_changes_nothing(client: TestClient) -> None:
    pid = _create(client, patient(identifier=[MRN, SSN]))
    before = client.get("/fhir/_history").json()["total"]
    bundle = _transaction(
        "transaction",
        {
            "resource": {"resourceType": "Practitioner"},
            "request": {"method": "POST", "url": "Practitioner"},
        },
        _patch_entry(f"Patient/{pid}", patch(operation("delete", "Patient.identifier"))),
    )
    assert_outcome(client.post("/fhir", json=bundle), 422, "Bundle.entry[1]", "selects 2")
    assert client.get("/fhir/_history").json()["total"] == before
    assert client.get("/fhir/Practitioner/_history").json()["total"] == 0


def test_batch_patch_entries_are_independent(client: TestClient) -> None:
    pid = _create(client, patient(identifier=[MRN, SSN], gender="male"))
    bundle = _transaction(
        "batch",
        _patch_entry(f"Patient/{pid}", patch(operation("delete", "Patient.identifier"))),
        _patch_entry(
            f"Patient/{pid}",
            patch(operation("replace", "Patient.gender", value={"valueCode": "female"})),
        ),
        {
            "resource": {"resourceType": "Patient"},
            "request": {"method": "PATCH", "url": f"Patient/{pid}"},
        },
    )
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    statuses = [e["response"]["status"][:3] for e in entries]
    assert statuses == ["422", "200", "400"]
    assert entries[0]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "female"


def test_capability_statement_lists_both_patch_formats(client: TestClient) -> None:
    formats = client.get("/fhir/metadata").json()["patchFormat"]
    assert set(formats) >= {"application/json-patch+json", "application/fhir+json"}


def test_fhirpy_sends_a_fhirpath_patch(live_server: str) -> None:
    client = SyncFHIRClient(live_server)
    created = client.resource("Patient", gender="male", identifier=[MRN])
    created.save()
    patched = client.patch(
        "Patient",
        created.id,
        resourceType="Parameters",
        parameter=patch(operation("replace", "Patient.gender", value={"valueCode": "female"}))[
            "parameter"
        ],
    )
    assert patched["gender"] == "female"
    assert client.reference("Patient", created.id).to_resource()["meta"]["versionId"] == "2"
