"""Transaction and batch Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from fhir_service.errors import InvalidRequest, InvalidResource, NotFound, PreconditionFailed
from fhir_service.fhir.references import iter_references
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.repository import iter_pages

FULL_ACCESS = AccessScope.full()

PATIENT_URN = "urn:uuid:6f1c3a52-1b6e-4c55-9d7f-0d9b1d3f5a11"
ORG = {"system": "http://hospital.example/org", "value": "IVC-CENTER"}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def case_bundle() -> dict[str, Any]:
    """Patient, Condition, Observation linked by urn:uuid, also in contained and extension."""
    condition = {
        "resourceType": "Condition",
        "contained": [
            {
                "resourceType": "Provenance",
                "id": "p1",
                "recorded": "2022-03-01T00:00:00Z",
                "target": [{"reference": PATIENT_URN}],
                "agent": [{"who": {"reference": PATIENT_URN}}],
            }
        ],
        "extension": [
            {
                "url": "http://example.org/fhir/StructureDefinition/related",
                "valueReference": {"reference": PATIENT_URN},
            }
        ],
        "subject": {"reference": PATIENT_URN},
        "code": {"text": "Leiomyosarcoma of the inferior vena cava"},
    }
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Tumour size"},
        "subject": {"reference": PATIENT_URN},
        "focus": [{"reference": "urn:uuid:0e0c44a4-2f3c-4b43-9c0c-6c6a9e1e2b22"}],
    }
    return bundle(
        "transaction",
        post(observation, "urn:uuid:1b7b6bd0-4cc4-4a0e-8c3f-3a4d8e9a7c33"),
        post(condition, "urn:uuid:0e0c44a4-2f3c-4b43-9c0c-6c6a9e1e2b22"),
        post({"resourceType": "Patient", "gender": "female"}, PATIENT_URN),
    )


def all_versions(store: SqlStore) -> list[tuple[str, str, int, bool]]:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        return [(s.resource_type, s.id, s.version_id, s.deleted) for s in iter_pages(repo)]


def test_urn_uuid_references_are_rewritten_everywhere(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(case_bundle())
    assert response["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["201 Created"] * 3
    locations = [e["response"]["location"] for e in response["entry"]]
    obs_ref, cond_ref, patient_ref = (loc.split("/_history")[0] for loc in locations)
    assert patient_ref.startswith("Patient/") and cond_ref.startswith("Condition/")
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        condition = repo.read("Condition", cond_ref.split("/")[1]).resource
        observation = repo.read("Observation", obs_ref.split("/")[1]).resource
    assert condition is not None and observation is not None
    refs = list(iter_references(condition))
    assert refs == [patient_ref] * 4
    assert sorted(iter_references(observation)) == sorted([patient_ref, cond_ref])


def test_one_bad_entry_leaves_the_database_as_before(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        existing = repo.create({"resourceType": "Patient", "gender": "male"}).stored
    before = all_versions(store)
    bad = case_bundle()
    bad["entry"].append(
        {
            "request": {"method": "PUT", "url": f"Patient/{existing.id}"},
            "resource": {"resourceType": "Patient", "id": existing.id, "gender": "female"},
        }
    )
    bad["entry"].append({"request": {"method": "DELETE", "url": f"Patient/{existing.id}"}})
    bad["entry"].append(post({"resourceType": "Observation", "status": "no-such-status"}))
    with pytest.raises(InvalidResource) as info, store.begin(FULL_ACCESS) as repo:
        repo.transaction(bad)
    assert info.value.expression[0].startswith("Bundle.entry[5].resource")
    assert all_versions(store) == before


def test_processing_order_and_response_entries(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        old = repo.create({"resourceType": "Patient", "gender": "male"}).stored
        kept = repo.create({"resourceType": "Patient", "gender": "female"}).stored
    tx = bundle(
        "transaction",
        {"request": {"method": "GET", "url": f"Patient/{kept.id}"}},
        {
            "request": {"method": "PUT", "url": f"Patient/{kept.id}"},
            "resource": {"resourceType": "Patient", "id": kept.id, "gender": "other"},
        },
        post({"resourceType": "Patient", "gender": "unknown"}),
        {"request": {"method": "DELETE", "url": f"Patient/{old.id}"}},
    )
    with store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(tx)
    get, put, created, deleted = response["entry"]
    # GET runs after PUT, so it sees version 2
    assert get["response"]["status"] == "200 OK" and get["resource"]["gender"] == "other"
    assert get["response"]["etag"] == 'W/"2"'
    assert put["response"]["status"] == "200 OK"
    assert put["response"]["location"] == f"Patient/{kept.id}/_history/2"
    assert created["response"]["status"] == "201 Created"
    assert deleted["response"]["status"] == "204 No Content"
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.history("Patient", old.id).entries[0].deleted


def test_delete_runs_before_post_and_put(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    tx = bundle(
        "transaction",
        {
            "request": {"method": "PUT", "url": "Patient/p1"},
            "resource": {"resourceType": "Patient", "id": "p1", "gender": "female"},
        },
        {"request": {"method": "DELETE", "url": "Patient/p1"}},
    )
    with store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(tx)
        current = repo.read("Patient", "p1")
    assert response["entry"][0]["response"]["status"] == "201 Created"
    assert current.version_id == 3


def test_conditional_references_and_if_none_exist(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        org = repo.create({"resourceType": "Organization", "identifier": [ORG], "name": "IVC"})
    tx = bundle(
        "transaction",
        post(
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "IMP",
                },
                "serviceProvider": {
                    "reference": f"Organization?identifier={ORG['system']}|IVC-CENTER"
                },
                "subject": {"reference": "urn:uuid:aa"},
            },
        ),
        post(
            {"resourceType": "Organization", "identifier": [ORG], "name": "IVC again"},
            "urn:uuid:org",
            ifNoneExist=f"identifier={ORG['system']}|IVC-CENTER",
        ),
        post(
            {"resourceType": "Patient", "managingOrganization": {"reference": "urn:uuid:org"}},
            "urn:uuid:aa",
        ),
    )
    with store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(tx)
        encounter_id = response["entry"][0]["response"]["location"].split("/")[1]
        encounter = repo.read("Encounter", encounter_id).resource
        patient_id = response["entry"][2]["response"]["location"].split("/")[1]
        patient = repo.read("Patient", patient_id).resource
        orgs = repo.search("Organization", [])
    assert response["entry"][1]["response"]["status"] == "200 OK"
    org_ref = f"Organization/{org.stored.id}"
    assert encounter is not None and encounter["serviceProvider"]["reference"] == org_ref
    assert encounter["subject"]["reference"] == f"Patient/{patient_id}"
    assert patient is not None and patient["managingOrganization"]["reference"] == org_ref
    assert len(orgs) == 1


def test_conditional_reference_without_single_match_fails(store: SqlStore) -> None:
    ref = {"reference": "Organization?identifier=http://hospital.example/org|NONE"}
    tx = bundle("transaction", post({"resourceType": "Patient", "managingOrganization": ref}))
    with pytest.raises(NotFound), store.begin(FULL_ACCESS) as repo:
        repo.transaction(tx)
    with store.begin(FULL_ACCESS) as repo:
        for _ in range(2):
            repo.create({"resourceType": "Organization", "identifier": [ORG]})
    ref["reference"] = f"Organization?identifier={ORG['system']}|IVC-CENTER"
    with pytest.raises(PreconditionFailed), store.begin(FULL_ACCESS) as repo:
        repo.transaction(tx)


def test_same_if_none_exist_twice_in_one_bundle_creates_one(store: SqlStore) -> None:
    condition = f"identifier={ORG['system']}|IVC-CENTER"
    tx = bundle(
        "transaction",
        post(
            {"resourceType": "Organization", "identifier": [ORG]},
            "urn:uuid:o1",
            ifNoneExist=condition,
        ),
        post(
            {"resourceType": "Organization", "identifier": [ORG]},
            "urn:uuid:o2",
            ifNoneExist=condition,
        ),
        post({"resourceType": "Patient", "managingOrganization": {"reference": "urn:uuid:o2"}}),
    )
    with store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(tx)
        orgs = repo.search("Organization", [])
    assert [e["response"]["status"] for e in response["entry"]] == [
        "201 Created",
        "200 OK",
        "201 Created",
    ]
    assert len(orgs) == 1


def test_unresolved_urn_and_wrong_bundle_type_are_client_errors(store: SqlStore) -> None:
    tx = bundle(
        "transaction",
        post(
            {
                "resourceType": "Patient",
                "link": [{"other": {"reference": "urn:uuid:missing"}, "type": "seealso"}],
            }
        ),
    )
    with pytest.raises(InvalidRequest, match="urn:uuid:missing"), store.begin(FULL_ACCESS) as repo:
        repo.transaction(tx)
    with pytest.raises(InvalidRequest, match=r"Bundle\.type"), store.begin(FULL_ACCESS) as repo:
        repo.transaction(bundle("collection"))
    with pytest.raises(InvalidRequest, match="method"), store.begin(FULL_ACCESS) as repo:
        repo.transaction(bundle("transaction", {"request": {"method": "FETCH", "url": "Patient"}}))
    assert all_versions(store) == []


def test_stale_if_match_in_a_transaction_rolls_back(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
        repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1", "gender": "male"})
    before = all_versions(store)
    tx = bundle(
        "transaction",
        post({"resourceType": "Patient"}),
        {
            "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": 'W/"1"'},
            "resource": {"resourceType": "Patient", "id": "p1", "gender": "female"},
        },
    )
    with pytest.raises(PreconditionFailed), store.begin(FULL_ACCESS) as repo:
        repo.transaction(tx)
    assert all_versions(store) == before


def test_patch_entry_with_binary_json_patch(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    ops = [{"op": "add", "path": "/gender", "value": "female"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(ops).encode()).decode(),
    }
    tx = bundle(
        "transaction", {"request": {"method": "PATCH", "url": "Patient/p1"}, "resource": binary}
    )
    with store.begin(FULL_ACCESS) as repo:
        response = repo.transaction(tx)
        current = repo.read("Patient", "p1")
    assert response["entry"][0]["response"]["etag"] == 'W/"2"'
    assert current.resource is not None and current.resource["gender"] == "female"


def test_batch_entries_are_independent(store: SqlStore) -> None:
    batch = bundle(
        "batch",
        post({"resourceType": "Patient", "gender": "female"}),
        post({"resourceType": "Patient", "birthDate": "not-a-date"}),
        {"request": {"method": "GET", "url": "Patient/unknown"}},
        {
            "request": {"method": "PUT", "url": "Patient/p2"},
            "resource": {"resourceType": "Patient", "id": "p2"},
        },
    )
    with store.begin(FULL_ACCESS) as repo:
        response = repo.batch(batch)
    assert response["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "404 Not Found", "201 Created"]
    bad = response["entry"][1]["response"]["outcome"]
    assert bad["resourceType"] == "OperationOutcome"
    assert bad["issue"][0]["expression"][0].startswith("Bundle.entry[1].resource.birthDate")
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert len(repo.search("Patient", [])) == 2
