"""GET Composition/{id}/$document over real HTTP (https://hl7.org/fhir/R4/composition-operation-document.html):
the example case stored from its transaction Bundle is served back as a document holding
what `fhir-service map --bundle-type document` puts in it, valid by the document rules
(https://hl7.org/fhir/R4/documents.html), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_service.api import create_app
from fhir_service.settings import Settings
from tests.served import serve

REPO = Path(__file__).resolve().parents[2]
IVC = REPO / "examples" / "ivc-leiomyosarcoma"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
COMPOSITION_KEY_SYSTEM = "urn:ietf:rfc:3986"


def _post(base: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(base, json=body, headers=FHIR_JSON, timeout=120)


def _mapped_document() -> dict[str, Any]:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "fhir_service", "map", str(IVC / "case.yaml")),
            *("--bundle-type", "document", "--anchor-date", "2022-03-01"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _key(resource: dict[str, Any]) -> str:
    """The mapped identity of a resource: its business identifier (kept by the server), or
    its id (resources PUT to their mapped id)."""
    identifier = resource.get("identifier")
    if isinstance(identifier, list):
        identifier = identifier[0] if identifier else None
    if isinstance(identifier, dict) and identifier.get("system") == COMPOSITION_KEY_SYSTEM:
        return str(identifier["value"])
    return f"urn:uuid:{resource['id']}"


@pytest.fixture
def stored_case(database_url: str) -> Iterator[tuple[str, str]]:
    """The IVC case posted as its transaction Bundle to a server with the default body
    limit: (base, Composition id)."""
    with serve(create_app(Settings(database_url=database_url, base_url=None))) as origin:
        base = f"{origin}/fhir"
        transaction = json.loads((IVC / "bundle-transaction.json").read_text())
        response = _post(base, transaction)
        assert response.status_code == 200, response.text
        found = httpx.get(f"{base}/Composition", timeout=60).json()
        (entry,) = found["entry"]
        yield base, entry["resource"]["id"]


def test_the_stored_case_is_served_as_its_document(stored_case: tuple[str, str]) -> None:
    base, composition_id = stored_case
    response = httpx.get(f"{base}/Composition/{composition_id}/$document", timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["type"] == "document"
    assert bundle["identifier"]["system"] and bundle["identifier"]["value"]
    assert bundle["timestamp"]
    first = bundle["entry"][0]
    assert first["resource"]["resourceType"] == "Composition"
    assert first["fullUrl"] == f"{base}/Composition/{composition_id}"

    # The same resources as the document the mapping writes.
    expected = sorted(_key(e["resource"]) for e in _mapped_document()["entry"])
    assert sorted(_key(e["resource"]) for e in bundle["entry"]) == expected

    # Every fullUrl is the resource's URL here, and every reference resolves to one.
    urls = set()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{base}/{resource['resourceType']}/{resource['id']}"
        urls.add(f"{resource['resourceType']}/{resource['id']}")
    dangling = [
        ref
        for entry in bundle["entry"]
        for ref in _references(entry["resource"])
        if ref.removeprefix(f"{base}/") not in urls
    ]
    assert dangling == []

    checked = _post(f"{base}/Bundle/$validate", bundle).json()
    errors = [i for i in checked["issue"] if i["severity"] in ("error", "fatal")]
    assert errors == [], errors


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return own + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def test_posting_the_case_again_keeps_one_composition(stored_case: tuple[str, str]) -> None:
    base, composition_id = stored_case
    transaction = json.loads((IVC / "bundle-transaction.json").read_text())
    again = _post(base, transaction)
    assert again.status_code == 200, again.text
    found = httpx.get(f"{base}/Composition", timeout=60).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [composition_id]
    assert found["entry"][0]["resource"]["meta"]["versionId"] == "1"
    document = httpx.get(f"{base}/Composition/{composition_id}/$document", timeout=120)
    assert len(document.json()["entry"]) == len(_mapped_document()["entry"])


def test_each_request_is_a_new_document(stored_case: tuple[str, str]) -> None:
    base, composition_id = stored_case
    url = f"{base}/Composition/{composition_id}/$document"
    first, second = httpx.get(url, timeout=120).json(), httpx.get(url, timeout=120).json()
    assert first["identifier"]["value"] != second["identifier"]["value"]
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]


def _small_document(base: str) -> str:
    """A Composition whose entries reference each other in a cycle and a missing resource;
    its id."""
    patient = _post(f"{base}/Patient", {"resourceType": "Patient"}).json()["id"]
    subject = {"reference": f"Patient/{patient}"}
    first = _post(
        f"{base}/Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "a"},
            "subject": subject,
        },
    ).json()
    second = _post(
        f"{base}/Observation",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "b"},
            "subject": subject,
            "derivedFrom": [{"reference": f"Observation/{first['id']}"}],
        },
    ).json()
    first["derivedFrom"] = [{"reference": f"Observation/{second['id']}"}]
    updated = httpx.put(
        f"{base}/Observation/{first['id']}", json=first, headers=FHIR_JSON, timeout=60
    )
    assert updated.status_code == 200, updated.text
    composition = {
        "resourceType": "Composition",
        "status": "final",
        "type": {"text": "note"},
        "subject": subject,
        "date": "2024-01-01",
        "author": [subject],
        "title": "Cycle",
        "section": [
            {
                "title": "Results",
                "entry": [
                    {"reference": f"Observation/{first['id']}"},
                    {"reference": "Observation/no-such-observation"},
                ],
            }
        ],
    }
    created = _post(f"{base}/Composition", composition)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_cycles_are_followed_once_and_missing_targets_left_out(live_server: str) -> None:
    composition = _small_document(live_server)
    bundle = httpx.get(f"{live_server}/Composition/{composition}/$document", timeout=60).json()
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "Composition"
    assert sorted(kinds[1:]) == ["Observation", "Observation", "Patient"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("persist=true", 422),
        ("persist=yes", 400),
        ("persist=false&persist=true", 400),
        ("graph=http://example.org/GraphDefinition/x", 422),
        ("id=other", 400),
    ],
)
def test_unsupported_and_bad_parameters_are_4xx_outcomes(
    live_server: str, query: str, status: int
) -> None:
    composition = _small_document(live_server)
    response = httpx.get(f"{live_server}/Composition/{composition}/$document?{query}", timeout=60)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_persist_false_is_what_the_server_does_anyway(live_server: str) -> None:
    composition = _small_document(live_server)
    url = f"{live_server}/Composition/{composition}/$document?persist=false"
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, response.text
    stored = httpx.get(f"{live_server}/Bundle", timeout=60).json()
    assert stored["type"] == "searchset" and not stored.get("entry")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("Composition/no-such-composition/$document", 404),
        ("Composition/bad%20id!/$document", 400),
        ("Composition/" + "x" * 65 + "/$document", 400),
    ],
)
def test_unknown_or_malformed_ids(live_server: str, path: str, status: int) -> None:
    response = httpx.get(f"{live_server}/{path}", timeout=60)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_deleted_composition_is_gone(live_server: str) -> None:
    composition = _small_document(live_server)
    assert httpx.delete(f"{live_server}/Composition/{composition}", timeout=60).is_success
    response = httpx.get(f"{live_server}/Composition/{composition}/$document", timeout=60)
    assert response.status_code == 410, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
