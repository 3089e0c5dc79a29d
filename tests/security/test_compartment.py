"""A patient-scoped token for patient A never reaches patient B: read, vread, history,
search (chained, _include, _revinclude, compartment), $everything, transaction and batch
entries, writes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html,
https://hl7.org/fhir/R4/compartmentdefinition-patient.html)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import assert_outcome
from tests.security.conftest import ADMIN, Smart, World

PATIENT_SCOPES = "patient/*.cruds"


@pytest.fixture
def as_a(smart: Smart, world: World) -> dict[str, str]:
    return smart.headers(PATIENT_SCOPES, world.a)


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("resource", {}).get("resourceType") != "OperationOutcome"
    }


def _b_refs(world: World) -> set[str]:
    return {f"Patient/{world.b}", f"Observation/{world.obs_b}", f"Encounter/{world.enc_b}"}


def test_reads_of_own_compartment_work(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    assert smart.client.get(f"/fhir/Patient/{world.a}", headers=as_a).status_code == 200
    observation = smart.client.get(f"/fhir/Observation/{world.obs_a}", headers=as_a)
    assert observation.status_code == 200
    assert observation.json()["subject"]["reference"] == f"Patient/{world.a}"


def test_read_and_vread_of_b_are_404(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    for path in (
        f"/fhir/Patient/{world.b}",
        f"/fhir/Patient/{world.b}/_history/1",
        f"/fhir/Observation/{world.obs_b}",
        f"/fhir/Observation/{world.obs_b}/_history/1",
        f"/fhir/Encounter/{world.enc_b}",
    ):
        response = smart.client.get(path, headers=as_a)
        assert_outcome(response, 404)
        assert "Bravo" not in response.text


def test_history_never_shows_b(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.b}/_history", headers=as_a), 404)
    for path in ("/fhir/_history", "/fhir/Observation/_history", "/fhir/Patient/_history"):
        response = smart.client.get(path, headers=as_a)
        assert response.status_code == 200, response.text
        seen = _ids(response.json())
        assert not seen & _b_refs(world), path
    system = _ids(smart.client.get("/fhir/_history", headers=as_a).json())
    assert system == {f"Patient/{world.a}", f"Observation/{world.obs_a}"}


def test_deleted_b_resource_stays_hidden(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    admin = smart.headers(ADMIN)
    assert smart.client.delete(f"/fhir/Observation/{world.obs_b}", headers=admin).status_code in (
        200,
        204,
    )
    assert_outcome(smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=as_a), 404)
    history = smart.client.get("/fhir/Observation/_history", headers=as_a).json()
    assert f"Observation/{world.obs_b}" not in str(history)


def test_search_shows_only_a(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    everything = smart.client.get("/fhir/Observation", headers=as_a)
    assert everything.status_code == 200, everything.text
    assert _ids(everything.json()) == {f"Observation/{world.obs_a}"}
    assert everything.json().get("total", 1) == 1
    patients = smart.client.get("/fhir/Patient", headers=as_a).json()
    assert _ids(patients) == {f"Patient/{world.a}"}
    by_subject = smart.client.get(f"/fhir/Observation?subject=Patient/{world.b}", headers=as_a)
    assert by_subject.status_code == 200
    assert _ids(by_subject.json()) == set()
    by_name = smart.client.get("/fhir/Patient?family=Bravo", headers=as_a)
    assert _ids(by_name.json()) == set()


def test_chained_search_cannot_cross(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    chained = smart.client.get("/fhir/Observation?subject:Patient.family=Bravo", headers=as_a)
    assert chained.status_code == 200, chained.text
    assert _ids(chained.json()) == set()
    own = smart.client.get("/fhir/Observation?subject:Patient.family=Alpha", headers=as_a)
    assert _ids(own.json()) == {f"Observation/{world.obs_a}"}
    admin = smart.client.get(
        "/fhir/Observation?subject:Patient.family=Bravo", headers=smart.headers(ADMIN)
    )
    assert _ids(admin.json()) == {f"Observation/{world.obs_b}"}


def test_includes_cannot_cross(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    included = smart.client.get("/fhir/Observation?_include=Observation:subject", headers=as_a)
    assert included.status_code == 200, included.text
    assert _ids(included.json()) == {f"Observation/{world.obs_a}", f"Patient/{world.a}"}
    reverse = smart.client.get("/fhir/Patient?_revinclude=Observation:subject", headers=as_a)
    assert _ids(reverse.json()) == {f"Observation/{world.obs_a}", f"Patient/{world.a}"}
    system = smart.client.get("/fhir?_type=Patient,Observation,Encounter", headers=as_a)
    assert system.status_code == 200, system.text
    assert not _ids(system.json()) & _b_refs(world)


def test_compartment_search_and_everything(
    smart: Smart, world: World, as_a: dict[str, str]
) -> None:
    compartment = smart.client.get(f"/fhir/Patient/{world.b}/Observation", headers=as_a)
    assert compartment.status_code in (200, 404)
    if compartment.status_code == 200:
        assert _ids(compartment.json()) == set()
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.b}/$everything", headers=as_a), 404)
    own = smart.client.get(f"/fhir/Patient/{world.a}/$everything", headers=as_a)
    assert own.status_code == 200, own.text
    assert _ids(own.json()) == {f"Patient/{world.a}", f"Observation/{world.obs_a}"}


def test_transaction_get_entries_cannot_cross(
    smart: Smart, world: World, as_a: dict[str, str]
) -> None:
    read_b = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{world.a}"}},
            {"request": {"method": "GET", "url": f"Patient/{world.b}"}},
        ],
    }
    response = smart.client.post("/fhir", json=read_b, headers=as_a)
    assert_outcome(response, 404, "Bundle.entry[1]")
    assert "Bravo" not in response.text
    search = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "GET", "url": f"Observation?_id={world.obs_b}"}}],
    }
    found = smart.client.post("/fhir", json=search, headers=as_a)
    assert found.status_code == 200, found.text
    searchset = found.json()["entry"][0]["resource"]
    assert searchset.get("entry", []) == []
    assert searchset.get("total", 0) == 0


def test_batch_get_entries_cannot_cross(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{world.b}"}},
            {"request": {"method": "GET", "url": f"Patient/{world.a}"}},
            {"request": {"method": "GET", "url": f"Observation/{world.obs_b}/_history/1"}},
        ],
    }
    response = smart.client.post("/fhir", json=batch, headers=as_a)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["404", "200", "404"]
    assert entries[1]["resource"]["id"] == world.a
    assert "Bravo" not in response.text


def test_writes_outside_the_compartment_are_refused(
    smart: Smart, world: World, as_a: dict[str, str]
) -> None:
    """Content placed outside A's compartment is 403 (it depends on the request alone);
    B's resources do not exist for A: PUT and PATCH are 404, DELETE deletes nothing."""
    for_b = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": f"Patient/{world.b}"},
    }
    assert_outcome(smart.client.post("/fhir/Observation", json=for_b, headers=as_a), 403)
    moved = {**for_b, "id": world.obs_a}
    assert_outcome(
        smart.client.put(f"/fhir/Observation/{world.obs_a}", json=moved, headers=as_a), 403
    )
    # B's resources do not exist for A: PUT onto one is 404, DELETE deletes nothing, a
    # conditional PATCH matching only B's matches nothing (404)
    stolen = {**for_b, "id": world.obs_b, "subject": {"reference": f"Patient/{world.a}"}}
    assert_outcome(
        smart.client.put(f"/fhir/Observation/{world.obs_b}", json=stolen, headers=as_a), 404
    )
    deleted = smart.client.delete(f"/fhir/Observation/{world.obs_b}", headers=as_a)
    never = smart.client.delete("/fhir/Observation/never-existed", headers=as_a)
    assert deleted.status_code == never.status_code
    assert deleted.status_code // 100 == 2
    json_patch = {**as_a, "Content-Type": "application/json-patch+json"}
    for operations in (
        [{"op": "replace", "path": "/status", "value": "amended"}],
        [{"op": "replace", "path": "/subject/reference", "value": f"Patient/{world.a}"}],
    ):
        conditional = smart.client.patch(
            f"/fhir/Observation?_id={world.obs_b}", json=operations, headers=json_patch
        )
        assert_outcome(conditional, 404)
    admin = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=smart.headers(ADMIN))
    assert admin.json()["meta"]["versionId"] == "1"
    assert admin.json()["subject"]["reference"] == f"Patient/{world.b}"
    own = {**for_b, "subject": {"reference": f"Patient/{world.a}"}}
    assert smart.client.post("/fhir/Observation", json=own, headers=as_a).status_code == 201


def test_transaction_writes_outside_roll_back(
    smart: Smart, world: World, as_a: dict[str, str]
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "mine"},
                    "subject": {"reference": f"Patient/{world.a}"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": world.obs_b,
                    "status": "amended",
                    "code": {"text": "theirs"},
                    "subject": {"reference": f"Patient/{world.b}"},
                },
                "request": {"method": "PUT", "url": f"Observation/{world.obs_b}"},
            },
        ],
    }
    response = smart.client.post("/fhir", json=bundle, headers=as_a)
    # a PUT onto B's id is a PUT onto an id that does not exist for A: 404
    assert_outcome(response, 404, "Bundle.entry[1]")
    admin = smart.headers(ADMIN)
    listed = smart.client.get("/fhir/Observation", headers=admin).json()
    assert len(_ids(listed)) == 2
    b_obs = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=admin).json()
    assert b_obs["status"] == "final"


def test_export_needs_system_scopes(smart: Smart, world: World, as_a: dict[str, str]) -> None:
    for path in ("/fhir/$export", f"/fhir/Group/{world.a}/$export", "/fhir/Patient/$export"):
        assert_outcome(smart.client.get(path, headers=as_a), 403, "$export")
    narrow = smart.headers("system/Patient.read")
    assert_outcome(smart.client.get("/fhir/$export?_type=Observation", headers=narrow), 403)
