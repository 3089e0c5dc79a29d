"""Third-party FHIR clients against the app served by uvicorn over real HTTP:
fhirpy (sync and async) and smart-on-fhir's fhirclient (its own R4 models)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fhirclient.models.bundle import Bundle as FcBundle
from fhirclient.models.observation import Observation as FcObservation
from fhirclient.models.patient import Patient as FcPatient
from fhirclient.server import FHIRServer
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

TRANSACTION = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:0a0b0c0d-0000-4000-8000-00000000000a",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "http://example.org/mrn", "value": "client-1"}],
            },
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": "identifier=http://example.org/mrn|client-1",
            },
        },
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "tumour size"},
                "subject": {"reference": "urn:uuid:0a0b0c0d-0000-4000-8000-00000000000a"},
            },
            "request": {"method": "POST", "url": "Observation"},
        },
    ],
}


def test_fhirpy_sync_crud_and_transaction(live_server: str) -> None:
    client = SyncFHIRClient(live_server)
    patient = client.resource("Patient", name=[{"family": "Sync"}], gender="female")
    patient.save()
    assert patient.id
    assert patient["meta"]["versionId"] == "1"
    fetched = client.reference("Patient", patient.id).to_resource()
    assert fetched["name"][0]["family"] == "Sync"
    patient["gender"] = "male"
    patient.save()
    assert patient["meta"]["versionId"] == "2"
    assert client.reference("Patient", patient.id).to_resource()["gender"] == "male"
    response = client.execute("/", method="post", data=TRANSACTION)
    assert response["type"] == "transaction-response"
    observation_path = response["entry"][1]["response"]["location"].split("/_history")[0]
    observation = client.get(*observation_path.split("/"))
    patient_ref = response["entry"][0]["response"]["location"].split("/_history")[0]
    assert observation["subject"]["reference"] == patient_ref
    patient.delete()
    with pytest.raises(ResourceNotFound):
        client.reference("Patient", patient.id).to_resource()
    assert httpx.get(f"{live_server}/Patient/{patient.id}").status_code == 410


def test_fhirpy_sync_sees_operation_outcome_errors(live_server: str) -> None:
    client = SyncFHIRClient(live_server)
    bad = client.resource("Patient", gender=["not", "a", "code"])
    with pytest.raises(OperationOutcome) as caught:
        bad.save()
    assert "Patient.gender" in str(caught.value)


def test_fhirpy_async_crud(live_server: str) -> None:
    async def scenario() -> None:
        client = AsyncFHIRClient(live_server)
        patient = client.resource("Patient", name=[{"family": "Async"}])
        await patient.save()
        assert patient.id
        fetched = await client.reference("Patient", patient.id).to_resource()
        assert fetched["name"][0]["family"] == "Async"
        patient["active"] = True
        await patient.save()
        again = await client.get("Patient", patient.id)
        assert again["active"] is True
        assert again["meta"]["versionId"] == "2"
        response = await client.execute("/", method="post", data=TRANSACTION)
        statuses = [e["response"]["status"] for e in response["entry"]]
        assert statuses == ["201 Created", "201 Created"]
        await patient.delete()
        with pytest.raises(ResourceNotFound):
            await client.get("Patient", patient.id)

    asyncio.run(scenario())


def test_fhirclient_crud_and_transaction(live_server: str) -> None:
    server = FHIRServer(None, base_uri=live_server)
    patient = FcPatient({"gender": "female", "name": [{"family": "Client", "given": ["Py"]}]})
    created = patient.create(server)
    assert created is not None
    assert created["resourceType"] == "Patient"
    pid = created["id"]
    read = FcPatient.read(pid, server)
    assert read.name[0].family == "Client"
    assert read.meta.versionId == "1"
    read.gender = "other"
    read.update(server)
    assert FcPatient.read(pid, server).gender == "other"

    bundle = FcBundle(TRANSACTION)
    response = bundle.create(server)
    assert response is not None
    result = FcBundle(response)
    assert result.type == "transaction-response"
    observation_id = result.entry[1].response.location.split("/")[1]
    observation = FcObservation.read(observation_id, server)
    assert observation.subject.reference.startswith("Patient/")

    read.delete(server)
    with pytest.raises(Exception, match="410"):
        FcPatient.read(pid, server)
