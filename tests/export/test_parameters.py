"""Bulk Data v2 kick-off parameters over HTTP, on SQLite and PostgreSQL: ``_typeFilter``
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#_typefilter-experimental-query-parameter),
``_elements``, deleted resources of Patient and Group ``_since`` exports, and the
``$export`` operations in the CapabilityStatement."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.export.conftest import ASYNC, download, kick_off, wait_manifest

SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")
BULK = "http://hl7.org/fhir/uv/bulkdata"


def _create(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post(f"/fhir/{body['resourceType']}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _patient(client: TestClient, family: str, gender: str) -> str:
    body = {"resourceType": "Patient", "name": [{"family": family}], "gender": gender}
    return _create(client, body)


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


def _observation(client: TestClient, patient: str, code: str, status: str = "final") -> str:
    body = {
        "resourceType": "Observation",
        "status": status,
        "category": VITAL_SIGNS,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2021-05-01T10:00:00Z",
        "valueQuantity": {"value": 60, "unit": "/min", "system": UCUM, "code": "/min"},
    }
    return _create(client, body)


def _ids(resources: list[dict[str, Any]], resource_type: str) -> set[str]:
    return {r["id"] for r in resources if r["resourceType"] == resource_type}


def _export(client: TestClient, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
    return wait_manifest(client, kick_off(client, path, params=params))


def test_type_filter_keeps_resources_matching_any_filter(client: TestClient) -> None:
    adams = _patient(client, "Adams", "female")
    baker = _patient(client, "Baker", "male")
    carter = _patient(client, "Carter", "female")
    davis = _patient(client, "Davis", "female")
    heart_rate = _observation(client, adams, "8867-4")
    glucose = _observation(client, baker, "2339-0")  # not a vital sign
    amended = _observation(client, carter, "8867-4", status="amended")
    organization = _create(client, {"resourceType": "Organization", "name": "Clinic"})
    filters = [
        ("_typeFilter", "Patient?gender=female&family=Carter"),
        ("_typeFilter", "Patient?family=Adams"),
        ("_typeFilter", "Observation?code=http://loinc.org|2339-0"),
        ("_typeFilter", "Observation?status=amended"),
    ]
    exported = download(client, _export(client, "/fhir/$export", filters))
    assert _ids(exported, "Patient") == {adams, carter}
    assert _ids(exported, "Observation") == {glucose, amended}
    assert heart_rate not in _ids(exported, "Observation")
    # A type without a filter is exported whole.
    assert _ids(exported, "Organization") == {organization}

    typed = [("_type", "Observation"), ("_typeFilter", "Observation?subject=Patient/" + adams)]
    only = download(client, _export(client, "/fhir/$export", typed))
    assert [(r["resourceType"], r["id"]) for r in only] == [("Observation", heart_rate)]

    # One value may list several queries, comma-delimited; a comma inside a query is a
    # search OR (status amended or preliminary), not the start of another query.
    listed = [("_typeFilter", "Patient?family=Adams,Observation?status=amended,preliminary")]
    one_value = download(client, _export(client, "/fhir/$export", listed))
    assert _ids(one_value, "Patient") == {adams}
    assert _ids(one_value, "Observation") == {amended}

    compartments = download(
        client,
        _export(client, "/fhir/Patient/$export", [("_typeFilter", "Observation?status=final")]),
    )
    assert _ids(compartments, "Observation") == {heart_rate, glucose}
    assert _ids(compartments, "Patient") == {adams, baker, carter, davis}
    assert "Organization" not in {r["resourceType"] for r in compartments}


def test_elements_keep_named_and_mandatory_elements(client: TestClient) -> None:
    patient = _patient(client, "Evans", "female")
    observation = _observation(client, patient, "8867-4")
    organization = _create(client, {"resourceType": "Organization", "name": "Clinic"})
    manifest = _export(client, "/fhir/$export", [("_elements", "Patient.gender,status")])
    exported = {r["resourceType"]: r for r in download(client, manifest)}

    for resource in exported.values():
        tags = {(t.get("system"), t.get("code")) for t in resource["meta"].get("tag", [])}
        assert SUBSETTED in tags, resource["resourceType"]
    assert exported["Patient"]["id"] == patient
    assert set(exported["Patient"]) == {"resourceType", "id", "meta", "gender"}
    # Observation.code is mandatory (1..1) and stays although it was not asked for.
    assert exported["Observation"]["id"] == observation
    assert set(exported["Observation"]) == {"resourceType", "id", "meta", "status", "code"}
    # Organization has no status and no mandatory element: only id and meta remain.
    assert exported["Organization"]["id"] == organization
    assert set(exported["Organization"]) == {"resourceType", "id", "meta"}

    typed = _export(client, "/fhir/$export", [("_elements", "Patient.gender")])
    by_type = {r["resourceType"]: r for r in download(client, typed)}
    assert set(by_type["Patient"]) == {"resourceType", "id", "meta", "gender"}
    # Elements named for another type leave Observation whole.
    assert by_type["Observation"]["subject"] == {"reference": f"Patient/{patient}"}
    assert "tag" not in by_type["Observation"]["meta"]


def test_elements_with_deidentification(client: TestClient) -> None:
    patient = _patient(client, "Foster", "male")
    _observation(client, patient, "8867-4")
    params = [("_elements", "Observation.subject"), ("_deidentify", "true")]
    exported = download(client, _export(client, "/fhir/$export", params))
    observation = next(r for r in exported if r["resourceType"] == "Observation")
    pseudonym = next(r["id"] for r in exported if r["resourceType"] == "Patient")
    assert pseudonym != patient
    assert observation["subject"] == {"reference": f"Patient/{pseudonym}"}
    assert "effectiveDateTime" not in observation and "valueQuantity" not in observation
    assert SUBSETTED in {(t["system"], t["code"]) for t in observation["meta"]["tag"]}


def _deleted(client: TestClient, manifest: dict[str, Any]) -> set[str]:
    return {e["request"]["url"] for b in download(client, manifest, "deleted") for e in b["entry"]}


def test_since_lists_deleted_resources_at_patient_and_group_level(client: TestClient) -> None:
    patients = [_patient(client, f"Family{i}", "female") for i in range(3)]
    observations = [_observation(client, p, "8867-4") for p in patients]
    organization = _create(client, {"resourceType": "Organization", "name": "Clinic"})
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{patients[1]}"}}],
    }
    group_id = _create(client, group)
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    for observation in observations:
        assert client.delete(f"/fhir/Observation/{observation}").status_code in (200, 204)
    assert client.delete(f"/fhir/Patient/{patients[2]}").status_code in (200, 204)
    assert client.delete(f"/fhir/Organization/{organization}").status_code in (200, 204)

    everyone = _export(client, "/fhir/Patient/$export", [("_since", since)])
    assert download(client, everyone) == []
    assert _deleted(client, everyone) == {
        *(f"Observation/{o}" for o in observations),
        f"Patient/{patients[2]}",
    }
    members = _export(client, f"/fhir/Group/{group_id}/$export", [("_since", since)])
    assert _deleted(client, members) == {f"Observation/{observations[1]}"}
    system = _export(client, "/fhir/$export", [("_since", since)])
    assert f"Organization/{organization}" in _deleted(client, system)


def test_bad_filters_and_elements_are_400_outcomes(client: TestClient) -> None:
    bad = [
        [("_typeFilter", "Observation?no-such-parameter=1")],
        [("_typeFilter", "Observation?code:nonsense=1")],
        [("_typeFilter", "Observation?date=yesterday")],
        [("_typeFilter", "Observation?_sort=date")],
        [("_typeFilter", "Observation?_include=Observation:subject")],
        [("_typeFilter", "status=final")],
        [("_typeFilter", "NoSuchType?status=final")],
        [("_typeFilter", "Observation?")],
        [("_type", "Patient"), ("_typeFilter", "Observation?status=final")],
        [("_elements", "Patient.name.given")],
        [("_elements", "Patient.no-such-element")],
        [("_elements", "NoSuchType.id")],
        [("_elements", "no-such-element")],
        [("_type", "Patient"), ("_elements", "status")],
        [("_elements", ",")],
    ]
    for params in bad:
        response = client.get("/fhir/$export", params=params, headers=ASYNC)
        assert response.status_code == 400, (params, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"][0] in ("_typeFilter", "_elements"), outcome
    posted = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_typeFilter", "valueString": "Observation?nope=1"}],
    }
    response = client.post("/fhir/Patient/$export", json=posted, headers=ASYNC)
    assert response.status_code == 400


def test_capability_statement_declares_the_export_operations(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    assert f"{BULK}/CapabilityStatement/bulk-data" in statement["instantiates"]
    rest = statement["rest"][0]
    assert {"name": "export", "definition": f"{BULK}/OperationDefinition/export"} in rest[
        "operation"
    ]
    by_type = {r["type"]: r for r in rest["resource"]}

    def exports(resource_type: str) -> list[str]:
        entries = by_type[resource_type].get("operation", [])
        return [o["definition"] for o in entries if o["name"] == "export"]

    assert exports("Patient") == [f"{BULK}/OperationDefinition/patient-export"]
    assert exports("Group") == [f"{BULK}/OperationDefinition/group-export"]
    assert exports("Observation") == []
