"""Validation on write (FHIR_SERVICE_VALIDATE_ON_WRITE, default reject) over the REST API, on
SQLite and PostgreSQL: create, update, conditional create/update, PATCH, batch and
transaction (https://hl7.org/fhir/R4/http.html: 422 for a resource that fails validation,
400 for a transaction as a whole), claimed profiles (mCODE, installed; and one that is not)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.fhir.packages import PackageError
from fhir_service.settings import Settings

FHIR_JSON = {"content-type": "application/fhir+json"}
PATCH_JSON = {"content-type": "application/json-patch+json"}
# "mail" is not in the required binding of Patient.gender (administrative-gender): the
# R4B models accept any code, the validator reports code-invalid at Patient.gender.
BAD = {"resourceType": "Patient", "gender": "mail", "name": [{"family": "Zebediah"}]}
GOOD = {"resourceType": "Patient", "gender": "female", "name": [{"family": "Quill"}]}


@pytest.fixture
def client_in(database_url: str, package_root: Path) -> Iterator[Callable[..., Any]]:
    """Opens a TestClient on the database with validation on write in a given mode."""

    @contextmanager
    def opened(mode: str | None, **more: Any) -> Iterator[TestClient]:
        chosen = {} if mode is None else {"validate_on_write": mode}
        settings = Settings(
            database_url=database_url,
            package_cache=package_root,
            base_url=None,
            **chosen,
            **more,
        )
        with TestClient(create_app(settings)) as client:
            yield client

    yield opened


def errors(outcome: dict[str, Any]) -> list[tuple[str, list[str]]]:
    assert outcome["resourceType"] == "OperationOutcome"
    return [
        (i["code"], i.get("expression", []))
        for i in outcome["issue"]
        if i["severity"] in ("error", "fatal")
    ]


def patients(client: TestClient) -> list[dict[str, Any]]:
    bundle = client.get("/fhir/Patient").json()
    return [e["resource"] for e in bundle.get("entry", [])]


def transaction(kind: str, *resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": "Patient"}} for r in resources
        ],
    }


def test_reject_is_the_default(client_in: Callable[..., Any]) -> None:
    assert Settings().validate_on_write == "reject"
    with client_in(None) as client:
        response = client.post("/fhir/Patient", json=BAD, headers=FHIR_JSON)
        assert response.status_code == 422
        assert ("code-invalid", ["Patient.gender"]) in errors(response.json())
        assert patients(client) == []


def test_off_writes_what_the_models_accept(client_in: Callable[..., Any]) -> None:
    with client_in("off") as client:
        assert client.post("/fhir/Patient", json=BAD, headers=FHIR_JSON).status_code == 201
        assert [p["gender"] for p in patients(client)] == ["mail"]


def test_reject_create_is_422_with_the_issues_and_writes_nothing(
    client_in: Callable[..., Any],
) -> None:
    with client_in("reject") as client:
        response = client.post("/fhir/Patient", json=BAD, headers=FHIR_JSON)
        assert response.status_code == 422
        assert ("code-invalid", ["Patient.gender"]) in errors(response.json())
        assert patients(client) == []
        assert client.post("/fhir/Patient", json=GOOD, headers=FHIR_JSON).status_code == 201


def test_reject_conditional_create(client_in: Callable[..., Any]) -> None:
    with client_in("reject") as client:
        headers = {**FHIR_JSON, "if-none-exist": "family=Zebediah"}
        response = client.post("/fhir/Patient", json=BAD, headers=headers)
        assert response.status_code == 422
        assert patients(client) == []


def test_reject_update_and_conditional_update_keep_the_current_version(
    client_in: Callable[..., Any],
) -> None:
    with client_in("reject") as client:
        good = {**GOOD, "id": "p1", "identifier": [{"system": "urn:s", "value": "1"}]}
        assert client.put("/fhir/Patient/p1", json=good, headers=FHIR_JSON).status_code == 201
        bad = {**good, "gender": "mail"}
        response = client.put("/fhir/Patient/p1", json=bad, headers=FHIR_JSON)
        assert response.status_code == 422
        assert ("code-invalid", ["Patient.gender"]) in errors(response.json())
        conditional = client.put("/fhir/Patient?identifier=urn:s|1", json=bad, headers=FHIR_JSON)
        assert conditional.status_code == 422
        current = client.get("/fhir/Patient/p1").json()
        assert (current["gender"], current["meta"]["versionId"]) == ("female", "1")
        new = client.put("/fhir/Patient?identifier=urn:s|2", json=BAD, headers=FHIR_JSON)
        assert new.status_code == 422
        assert len(patients(client)) == 1


def test_reject_patch_checks_the_patched_resource(client_in: Callable[..., Any]) -> None:
    with client_in(None) as client:
        created = client.put("/fhir/Patient/p1", json={**GOOD, "id": "p1"}, headers=FHIR_JSON)
        assert created.status_code == 201
        operations = [{"op": "replace", "path": "/gender", "value": "mail"}]
        response = client.patch("/fhir/Patient/p1", json=operations, headers=PATCH_JSON)
        assert response.status_code == 422
        assert ("code-invalid", ["Patient.gender"]) in errors(response.json())
        assert client.get("/fhir/Patient/p1").json()["gender"] == "female"
        fine = [{"op": "replace", "path": "/gender", "value": "other"}]
        assert client.patch("/fhir/Patient/p1", json=fine, headers=PATCH_JSON).status_code == 200


def test_reject_fails_the_whole_transaction_with_400_naming_the_entry(
    client_in: Callable[..., Any],
) -> None:
    with client_in(None) as client:
        response = client.post(
            "/fhir", json=transaction("transaction", GOOD, BAD), headers=FHIR_JSON
        )
        assert response.status_code == 400
        outcome = response.json()
        assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[1]:")
        assert ("code-invalid", ["Bundle.entry[1].resource.gender"]) in errors(outcome)
        assert patients(client) == []


def test_reject_fails_only_the_batch_entry(client_in: Callable[..., Any]) -> None:
    with client_in(None) as client:
        response = client.post("/fhir", json=transaction("batch", GOOD, BAD), headers=FHIR_JSON)
        assert response.status_code == 200
        first, second = (e["response"] for e in response.json()["entry"])
        assert first["status"].startswith("201")
        assert second["status"].startswith("422")
        assert ("code-invalid", ["Bundle.entry[1].resource.gender"]) in errors(second["outcome"])
        assert [p["gender"] for p in patients(client)] == ["female"]


def test_warn_writes_and_returns_the_issues(
    client_in: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    with client_in("warn") as client, caplog.at_level(logging.WARNING):
        headers = {**FHIR_JSON, "prefer": "return=OperationOutcome"}
        response = client.post("/fhir/Patient", json=BAD, headers=headers)
        assert response.status_code == 201
        outcome = response.json()
        assert outcome["issue"][0]["severity"] == "information"
        assert ("code-invalid", ["Patient.gender"]) in errors(outcome)
        assert [p["gender"] for p in patients(client)] == ["mail"]
    assert "Patient.gender" in caplog.text
    assert "Zebediah" not in caplog.text and "mail" not in caplog.text


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_warn_puts_issues_in_the_bundle_response(client_in: Callable[..., Any], kind: str) -> None:
    with client_in("warn") as client:
        response = client.post("/fhir", json=transaction(kind, GOOD, BAD), headers=FHIR_JSON)
        assert response.status_code == 200
        first, second = (e["response"] for e in response.json()["entry"])
        assert errors(first.get("outcome", {"resourceType": "OperationOutcome", "issue": []})) == []
        assert ("code-invalid", ["Patient.gender"]) in errors(second["outcome"])
        assert len(patients(client)) == 2


def test_an_empty_package_cache_stops_the_start(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=sqlite_url, package_cache=tmp_path / "empty", validate_on_write="warn"
    )
    with pytest.raises(PackageError), TestClient(create_app(settings)):
        pass


def test_reject_answers_422_where_the_models_alone_answer_400(
    client_in: Callable[..., Any],
) -> None:
    # Month 13 is not a FHIR date (https://hl7.org/fhir/R4/datatypes.html#date).
    body = {"resourceType": "Patient", "birthDate": "1974-13-45"}
    with client_in("off") as client:
        assert client.post("/fhir/Patient", json=body, headers=FHIR_JSON).status_code == 400
    with client_in("reject") as client:
        response = client.post("/fhir/Patient", json=body, headers=FHIR_JSON)
        assert response.status_code == 422
        assert ("invalid", ["Patient.birthDate"]) in errors(response.json())


MCODE_PATIENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient"


def test_a_claimed_installed_profile_is_enforced(client_in: Callable[..., Any]) -> None:
    # mCODE CancerPatient requires identifier and name (hl7.fhir.us.mcode#4.0.0).
    claims = {**GOOD, "meta": {"profile": [MCODE_PATIENT]}}
    with client_in(None) as client:
        refused = client.post("/fhir/Patient", json=claims, headers=FHIR_JSON)
        assert refused.status_code == 422
        texts = [i["diagnostics"] for i in refused.json()["issue"] if i["severity"] == "error"]
        assert any(t.startswith("Patient.identifier") for t in texts)
        assert client.post("/fhir/Patient", json=GOOD, headers=FHIR_JSON).status_code == 201
        complete = {**claims, "identifier": [{"system": "urn:s", "value": "7"}]}
        assert client.post("/fhir/Patient", json=complete, headers=FHIR_JSON).status_code == 201
        entry = transaction("batch", claims)
        status = client.post("/fhir", json=entry, headers=FHIR_JSON).json()["entry"][0]
        assert status["response"]["status"].startswith("422")
        assert len(patients(client)) == 2


UNKNOWN = "http://example.org/fhir/StructureDefinition/not-installed-here"


def test_a_claimed_profile_that_is_not_installed_is_refused_unless_set_to_warn(
    client_in: Callable[..., Any],
) -> None:
    claims = {**GOOD, "meta": {"profile": [UNKNOWN]}}
    with client_in(None) as client:
        refused = client.post("/fhir/Patient", json=claims, headers=FHIR_JSON)
        assert refused.status_code == 422
        assert ("structure", ["Patient.meta.profile[0]"]) in errors(refused.json())
        assert patients(client) == []
    with client_in(None, unknown_profiles="warn") as client:
        headers = {**FHIR_JSON, "prefer": "return=OperationOutcome"}
        stored = client.post("/fhir/Patient", json=claims, headers=headers)
        assert stored.status_code == 201
        warnings = [
            i.get("expression") for i in stored.json()["issue"] if i["severity"] == "warning"
        ]
        assert ["Patient.meta.profile[0]"] in warnings


def test_an_extension_whose_definition_is_not_installed_is_a_warning_on_write(
    client_in: Callable[..., Any],
) -> None:
    extended = {
        **GOOD,
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/eye", "valueCode": "x"}],
    }
    with client_in(None) as client:
        headers = {**FHIR_JSON, "prefer": "return=OperationOutcome"}
        stored = client.post("/fhir/Patient", json=extended, headers=headers)
        assert stored.status_code == 201
        warnings = [
            i.get("expression") for i in stored.json()["issue"] if i["severity"] == "warning"
        ]
        assert ["Patient.extension[0]"] in warnings
        # $validate keeps the HL7 validator's verdict: an unknown extension is an error.
        checked = client.post("/fhir/Patient/$validate", json=extended, headers=FHIR_JSON)
        assert ("structure", ["Patient.extension[0]"]) in errors(checked.json())


def test_a_long_transaction_names_its_first_invalid_entry(client_in: Callable[..., Any]) -> None:
    # Twelve entries: on SQLite batches of them go to the validation worker (by default; none
    # on PostgreSQL: storage/deferred_validation.py), and either way the first invalid one in
    # processing order is the transaction's error.
    many = [{**GOOD, "name": [{"family": f"F{i}"}]} for i in range(12)]
    many[9] = BAD
    many[11] = {**BAD, "gender": "femme"}
    with client_in(None) as client:
        response = client.post("/fhir", json=transaction("transaction", *many), headers=FHIR_JSON)
        assert response.status_code == 400
        outcome = response.json()
        assert outcome["issue"][0]["diagnostics"].startswith("Bundle.entry[9]:")
        assert ("code-invalid", ["Bundle.entry[9].resource.gender"]) in errors(outcome)
        assert patients(client) == []
        fine = transaction("transaction", *many[:9])
        assert client.post("/fhir", json=fine, headers=FHIR_JSON).status_code == 200
        assert len(patients(client)) == 9
