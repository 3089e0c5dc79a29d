"""Views over de-identified resources (docs/views.md, "De-identified views"): with
``_deidentify=true`` on ``$viewdefinition-run`` or ``--deidentify`` on ``fhir-service view
run``, every resource goes through the export's de-identification before the view sees it.

A Patient and an Observation carry a planted name, identifier, phone, e-mail, street and
calendar date (ISO and in words) where the view reads them; run plainly the view shows
every planted token (so it does reach them), de-identified none of them, while coded
content stays and the keys still join. A patient-scoped token still sees only its
compartment's rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_service.api import create_app
from fhir_service.cli import view as view_command
from fhir_service.settings import Settings
from tests.security.conftest import (  # noqa: F401  (fixtures)
    ADMIN,
    VITAL_SIGNS,
    Smart,
    World,
    make_smart,
    smart,
    world,
)
from tests.views.test_http import RUN, params

SECRET = "view-deid-secret"
PLANTED = {
    "name": "Quixotia",
    "given": "Zenobius",
    "identifier": "MRN-77341",
    "phone": "555-0199",
    "email": "zq@example.org",
    "street": "12 Hawthorn Lane",
    "birth": "1961-03-12",
    "day": "2021-03-12",
    "words": "12 March 2021",
}
PATIENT = {
    "resourceType": "Patient",
    "id": "planted-patient",
    "gender": "female",
    "birthDate": PLANTED["birth"],
    "name": [{"family": PLANTED["name"], "given": [PLANTED["given"]]}],
    "identifier": [{"system": "urn:test:mrn", "value": PLANTED["identifier"]}],
    "telecom": [
        {"system": "phone", "value": PLANTED["phone"]},
        {"system": "email", "value": PLANTED["email"]},
    ],
    "address": [{"line": [PLANTED["street"]], "city": "Springfield"}],
}
OBSERVATION = {
    "resourceType": "Observation",
    "id": "planted-observation",
    "status": "final",
    "category": VITAL_SIGNS,  # what the R4 heart rate profile requires, as the unit code
    "code": {
        "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
        "text": f"pulse taken by {PLANTED['given']} {PLANTED['name']}",
    },
    "subject": {"reference": "Patient/planted-patient", "display": PLANTED["name"]},
    "effectiveDateTime": f"{PLANTED['day']}T09:30:00Z",
    "valueQuantity": {
        "value": 72,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    },
    "note": [
        {
            "authorString": f"Dr. {PLANTED['name']}",
            "text": f"seen {PLANTED['words']}, call {PLANTED['phone']} or {PLANTED['email']}",
        }
    ],
}
PATIENT_VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "gender", "path": "gender"},
                {"name": "birth", "path": "birthDate"},
                {"name": "family", "path": "name.family", "collection": True},
                {"name": "given", "path": "name.given", "collection": True},
                {"name": "mrn", "path": "identifier.value", "collection": True},
                {"name": "telecom", "path": "telecom.value", "collection": True},
                {"name": "street", "path": "address.line", "collection": True},
            ]
        }
    ],
}
OBSERVATION_VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Observation",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                {"name": "subject_display", "path": "subject.display"},
                {"name": "code", "path": "code.coding.code", "collection": True},
                {"name": "code_text", "path": "code.text"},
                {"name": "effective", "path": "effective.ofType(dateTime)"},
                {"name": "value", "path": "value.ofType(Quantity).value"},
                {"name": "note", "path": "note.text", "collection": True},
                {"name": "author", "path": "note.author.ofType(string)", "collection": True},
            ]
        }
    ],
}
NOTE_RULES = {
    "keep": {"Observation": ["status", "code", "subject", "effective[x]", "note"]},
    "text": {"Observation": ["note.text"]},
}


def _leaks(text: str) -> list[str]:
    return [token for token in PLANTED.values() if token in text]


def _shifted(original: str, shifted: str) -> bool:
    """``shifted`` lies 366 to 730 days before ``original`` (docs/export.md, dates)."""
    days = (date.fromisoformat(original[:10]) - date.fromisoformat(shifted[:10])).days
    return 366 <= days <= 730


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, deid_secret=SECRET)
    with TestClient(create_app(settings)) as test_client:
        for resource in (PATIENT, OBSERVATION):
            stored = test_client.put(
                f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource
            )
            assert stored.status_code in (200, 201), stored.text
        yield test_client


def _rows(client: TestClient, view: dict[str, Any], **values: Any) -> tuple[str, list[Any]]:
    response = client.post(RUN, json=params(view, _format="ndjson", **values))
    assert response.status_code == 200, response.text
    return response.text, [json.loads(line) for line in response.text.splitlines()]


def test_plain_view_shows_the_planted_tokens(client: TestClient) -> None:
    patients, _ = _rows(client, PATIENT_VIEW)
    observations, _ = _rows(client, OBSERVATION_VIEW)
    assert sorted(_leaks(patients + observations)) == sorted(PLANTED.values())


def test_deidentified_view_shows_none(client: TestClient) -> None:
    patients, (patient,) = _rows(client, PATIENT_VIEW, _deidentify=True)
    observations, (observation,) = _rows(client, OBSERVATION_VIEW, _deidentify=True)
    assert _leaks(patients + observations) == []
    assert patient["id"] != PATIENT["id"] and observation["id"] != OBSERVATION["id"]
    assert observation["patient"] == patient["id"]  # the keys still join
    assert patient["gender"] == "female" and _shifted(PLANTED["birth"], patient["birth"])
    assert observation["code"] == ["8867-4"] and observation["value"] == 72
    assert _shifted(PLANTED["day"], observation["effective"])
    assert [patient[c] for c in ("family", "given", "mrn", "telecom", "street")] == [[]] * 5
    assert observation["note"] == [] and observation["code_text"] is None


def test_deidentified_csv_by_query_parameter(client: TestClient) -> None:
    response = client.post(f"{RUN}?_deidentify=true&_format=csv", json=params(OBSERVATION_VIEW))
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1 and rows[0]["code"] == '["8867-4"]'
    assert _leaks(response.text) == []


def test_rules_parameter_keeps_scrubbed_text(client: TestClient) -> None:
    text, (row,) = _rows(
        client, OBSERVATION_VIEW, _deidentify=True, _deidRules=json.dumps(NOTE_RULES)
    )
    assert _leaks(text) == []
    (note,) = row["note"]
    assert note.startswith("seen ") and "[DATE]" in note and "[PHONE]" in note
    assert row["value"] is None  # these rules keep no value[x]


def test_deidentify_needs_a_secret_and_rules_need_deidentify(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url))) as plain:
        refused = plain.post(RUN, json=params(OBSERVATION_VIEW, _deidentify=True))
        assert refused.status_code == 400
        assert "deid_secret" in refused.json()["issue"][0]["diagnostics"]
        rules_alone = plain.post(
            RUN, json=params(OBSERVATION_VIEW, _deidRules=json.dumps(NOTE_RULES))
        )
        assert rules_alone.status_code == 400
        assert "_deidentify" in rules_alone.json()["issue"][0]["diagnostics"]


def test_patient_token_sees_only_its_compartment_deidentified(
    make_smart: Any,  # noqa: F811
) -> None:
    smart_app: Smart = make_smart(deid_secret=SECRET)
    own = {"resourceType": "Patient", "name": [{"family": "Alpha"}]}
    other = {"resourceType": "Patient", "name": [{"family": PLANTED["name"]}]}
    ids = []
    for body in (own, other):
        created = smart_app.client.post(
            "/fhir/Patient", json=body, headers=smart_app.headers(ADMIN)
        )
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        observation = {**OBSERVATION, "subject": {"reference": f"Patient/{patient_id}"}}
        del observation["id"]
        made = smart_app.client.post(
            "/fhir/Observation", json=observation, headers=smart_app.headers(ADMIN)
        )
        assert made.status_code == 201, made.text
        ids.append(patient_id)
    view = {**OBSERVATION_VIEW, "select": [{"column": OBSERVATION_VIEW["select"][0]["column"][:2]}]}

    def run(headers: dict[str, str], **values: Any) -> list[dict[str, Any]]:
        body = params(view, _deidentify=True, **values)
        response = smart_app.client.post(RUN, json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert not {*ids, PLANTED["name"]} & set(response.text.replace('"', " ").split())
        rows: list[dict[str, Any]] = response.json()
        return rows

    everyone = run(smart_app.headers(ADMIN))
    assert len(everyone) == 2 and len({r["patient"] for r in everyone}) == 2
    as_own = smart_app.headers("patient/*.rs", ids[0])
    mine = run(as_own)
    assert len(mine) == 1 and mine[0] in everyone
    assert run(as_own, patient=f"Patient/{ids[1]}") == []


app = typer.Typer()


@app.callback()
def _root() -> None:
    """The view commands on their own, as `fhir-service` registers them."""


view_command.register(app)


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["view", "run", *args, "--format", "json"])


def test_cli_deidentify_over_a_file_and_the_database(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    view_file = tmp_path / "view.json"
    view_file.write_text(json.dumps(OBSERVATION_VIEW))
    input_file = tmp_path / "resources.ndjson"
    input_file.write_text(json.dumps(PATIENT) + "\n" + json.dumps(OBSERVATION) + "\n")
    monkeypatch.setenv("FHIR_SERVICE_DATABASE_URL", database_url)
    monkeypatch.delenv("FHIR_SERVICE_DEID_SECRET", raising=False)
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        for resource in (PATIENT, OBSERVATION):
            client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource)

    missing = _cli([str(view_file), "--deidentify"])
    assert missing.exit_code == 2 and "FHIR_SERVICE_DEID_SECRET" in missing.stderr
    monkeypatch.setenv("FHIR_SERVICE_DEID_SECRET", SECRET)
    plain = _cli([str(view_file), "--input", str(input_file)])
    assert plain.exit_code == 0 and _leaks(plain.stdout)
    outputs = []
    for source in (["--input", str(input_file)], []):
        result = _cli([str(view_file), *source, "--deidentify"])
        assert result.exit_code == 0, result.output
        assert _leaks(result.stdout) == []
        (row,) = json.loads(result.stdout)
        assert row["code"] == ["8867-4"] and _shifted(PLANTED["day"], row["effective"])
        outputs.append(row)
    assert outputs[0] == outputs[1]  # the same secret, the same rows from file and database

    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(NOTE_RULES))
    alone = _cli([str(view_file), "--deid-rules", str(rules_file)])
    assert alone.exit_code == 2 and "--deidentify" in alone.stderr
    absent = _cli([str(view_file), "--deidentify", "--deid-rules", str(tmp_path / "none.json")])
    assert absent.exit_code == 2 and "no such rules file" in absent.stderr
    kept = _cli([str(view_file), "--deidentify", "--deid-rules", str(rules_file)])
    assert kept.exit_code == 0, kept.output
    (row,) = json.loads(kept.stdout)
    assert _leaks(kept.stdout) == [] and "[PHONE]" in row["note"][0]
