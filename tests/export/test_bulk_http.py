"""Bulk Data $export over HTTP, step by step as the IG describes
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi.testclient import TestClient

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.jobs import job
from tests.export.conftest import ASYNC, download, kick_off, wait_manifest

FULL_ACCESS = AccessScope.full()


def _patient(client: TestClient, family: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family}], "gender": "female"}
    response = client.post("/fhir/Patient", json=body)
    assert response.status_code == 201
    return str(response.json()["id"])


# What the R4 vital signs profiles require of a heart rate (validation on write checks it).
VITAL_SIGNS = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            }
        ]
    }
]
UCUM = "http://unitsofmeasure.org"


def _observation(client: TestClient, patient: str, value: float) -> str:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2021-05-01T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "system": UCUM, "code": "/min"},
    }
    response = client.post("/fhir/Observation", json=body)
    assert response.status_code == 201
    return str(response.json()["id"])


def _seed(client: TestClient) -> dict[str, set[str]]:
    patients = {_patient(client, f"Family{i}") for i in range(3)}
    observations = {_observation(client, p, 60 + i) for i, p in enumerate(sorted(patients))}
    return {"Patient": patients, "Observation": observations}


def test_system_round_trip_matches_database(client: TestClient, database_url: str) -> None:
    created = _seed(client)
    status_url = kick_off(client, "/fhir/$export?_outputFormat=application/fhir%2Bndjson")
    manifest = wait_manifest(client, status_url)
    assert manifest["request"].endswith("/fhir/$export?_outputFormat=application/fhir%2Bndjson")
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    datetime.fromisoformat(manifest["transactionTime"])
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Observation"}
    exported = download(client, manifest)
    assert {(r["resourceType"], r["id"]) for r in exported} == {
        (t, i) for t, ids in created.items() for i in ids
    }
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            for resource in exported:
                stored = repo.read(resource["resourceType"], resource["id"]).resource
                assert stored == resource
    finally:
        store.close()


def test_type_and_since_with_deletes(client: TestClient) -> None:
    created = _seed(client)
    only = kick_off(client, "/fhir/$export?_type=Observation")
    exported = download(client, wait_manifest(client, only))
    assert {r["id"] for r in exported} == created["Observation"]

    time.sleep(0.01)
    since = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    changed = sorted(created["Patient"])[0]
    removed = sorted(created["Observation"])[0]
    put = {"resourceType": "Patient", "id": changed, "gender": "male"}
    assert client.put(f"/fhir/Patient/{changed}", json=put).status_code == 200
    assert client.delete(f"/fhir/Observation/{removed}").status_code in (200, 204)
    status_url = kick_off(client, "/fhir/$export", params={"_since": since})
    manifest = wait_manifest(client, status_url)
    exported = download(client, manifest)
    assert [(r["resourceType"], r["id"], r["gender"]) for r in exported] == [
        ("Patient", changed, "male")
    ]
    deleted = download(client, manifest, "deleted")
    assert [e["request"] for b in deleted for e in b["entry"]] == [
        {"method": "DELETE", "url": f"Observation/{removed}"}
    ]


def test_patient_and_group_exports(client: TestClient) -> None:
    created = _seed(client)
    chosen = sorted(created["Patient"])[1]
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{chosen}"}}],
    }
    group_id = client.post("/fhir/Group", json=group).json()["id"]
    everyone = download(client, wait_manifest(client, kick_off(client, "/fhir/Patient/$export")))
    # Group.member puts a Group in its members' compartments (CompartmentDefinition-patient).
    assert {r["resourceType"] for r in everyone} == {"Patient", "Observation", "Group"}
    assert len(everyone) == 7
    members = download(
        client, wait_manifest(client, kick_off(client, f"/fhir/Group/{group_id}/$export"))
    )
    assert {r["id"] for r in members if r["resourceType"] == "Patient"} == {chosen}
    assert [r["subject"]["reference"] for r in members if r["resourceType"] == "Observation"] == [
        f"Patient/{chosen}"
    ]
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "patient", "valueReference": {"reference": f"Patient/{chosen}"}}],
    }
    posted = kick_off(client, "/fhir/Patient/$export", method="POST", json=parameters)
    assert {r["id"] for r in download(client, wait_manifest(client, posted))} >= {chosen}
    assert client.get("/fhir/Group/nope/$export", headers=ASYNC).status_code == 404


def test_cancel_removes_the_job(client: TestClient, export_dir: object) -> None:
    _seed(client)
    status_url = kick_off(client, "/fhir/$export")
    response = client.delete(status_url)
    assert response.status_code == 202
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(status_url).status_code == 404
    assert client.delete(status_url).status_code == 404


def test_second_export_of_a_client_is_throttled(client: TestClient, database_url: str) -> None:
    now = datetime.now(UTC)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                job.insert().values(
                    id="busy-job",
                    kind="export",
                    state="running",
                    owner="anonymous",
                    active_key="export:anonymous",
                    local=False,
                    params={
                        "export": {"level": "system"},
                        "request": "x",
                        "transaction_time": now.isoformat(),
                    },
                    progress={},
                    message="running",
                    attempt=1,
                    worker="another-process",
                    created=now,
                    heartbeat=now,
                )
            )
    finally:
        engine.dispose()
    response = client.get("/fhir/$export", headers=ASYNC)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["issue"][0]["code"] == "throttled"
    assert client.delete("/fhir/$export-status/busy-job").status_code == 202
    assert client.get("/fhir/$export", headers=ASYNC).status_code == 202


def test_bad_requests_are_400_outcomes(client: TestClient) -> None:
    bad = [
        ("/fhir/$export?_outputFormat=text/csv", ASYNC),
        ("/fhir/$export?_type=NoSuchType", ASYNC),
        ("/fhir/$export?_since=yesterday", ASYNC),
        ("/fhir/$export?_since=2024-01-01T00:00:00", ASYNC),
        ("/fhir/$export?includeAssociatedData=LatestProvenanceResources", ASYNC),
        ("/fhir/$export", {}),
    ]
    for path, headers in bad:
        response = client.get(path, headers=headers)
        assert response.status_code == 400, path
        assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/$export-status/unknown").status_code == 404
    assert client.get("/fhir/$export-file/unknown/Patient-1.ndjson").status_code == 404
