"""Search with third-party clients against the app served by uvicorn: fhirpy's search
builder and fhirclient's FHIRSearch (https://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

from fhirclient.models.observation import Observation as FcObservation
from fhirclient.models.patient import Patient as FcPatient
from fhirclient.server import FHIRServer
from fhirpy import SyncFHIRClient

from tests.search.helpers import VITAL_SIGNS

HEART_RATE = {"value": 60, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}


def test_fhirpy_search_builder(live_server: str) -> None:
    client = SyncFHIRClient(live_server)
    patient = client.resource("Patient", name=[{"family": "Builder"}], birthDate="1970-05-05")
    patient.save()
    for day in ("2020-01-01", "2021-01-01", "2022-01-01"):
        client.resource(
            "Observation",
            status="final",
            category=VITAL_SIGNS["category"],
            code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            subject=patient.to_reference(),
            effectiveDateTime=day,
            valueQuantity=HEART_RATE,
        ).save()
    found = client.resources("Patient").search(name="build").fetch()
    assert [p.id for p in found] == [patient.id]
    observations = client.resources("Observation").search(
        subject=patient.to_reference().reference, date__ge="2021-01-01"
    )
    assert observations.count() == 2
    ordered = observations.sort("-date").fetch()
    assert [o["effectiveDateTime"] for o in ordered] == ["2022-01-01", "2021-01-01"]
    paged = client.resources("Observation").search(code="8867-4").limit(1).fetch_all()
    assert len(paged) == 3
    chained = client.resources("Observation").search(**{"subject:Patient.name": "builder"})
    assert chained.count() == 3


def test_fhirclient_search(live_server: str) -> None:
    server = FHIRServer(None, base_uri=live_server + "/")
    patient = FcPatient({"name": [{"family": "Fhirclient"}], "gender": "female"})
    created = patient.create(server)
    assert created is not None
    patient_id = created["id"]
    observation = FcObservation(
        {
            "status": "final",
            "code": {"text": "weight"},
            "subject": {"reference": f"Patient/{patient_id}"},
        }
    )
    observation.create(server)
    found = FcPatient.where(struct={"family": "fhirclient", "gender": "female"}).perform_resources(
        server
    )
    assert [p.id for p in found] == [patient_id]
    by_subject = FcObservation.where(struct={"subject": f"Patient/{patient_id}"}).perform_resources(
        server
    )
    assert len(by_subject) == 1
