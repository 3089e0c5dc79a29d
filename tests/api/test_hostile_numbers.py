"""Integers a client sends in paths, queries and headers are range-checked (400, never
5xx: SQLite cannot bind an integer beyond 64 bits, and ``int()`` takes digits of other
scripts that ``str.isdigit`` accepts but not all of them), and a 405 names in ``Allow``
every method the path supports (RFC 9110 section 15.5.6). SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.api.helpers import assert_outcome

HUGE = "784108883844888923741230202880"
HOSTILE = [HUGE, "9223372036854775808", "-9223372036854775809", "-1", "²", "١٢", "1e400"]
PATHS = [
    "/sync/runs/{v}",
    "/sync/runs?_count={v}",
    "/fhir/Patient/p1/_history/{v}",
    "/fhir/Patient?_count={v}",
    "/fhir/Patient/_history?_count={v}",
    "/fhir/_history?_count={v}",
    "/fhir/Patient/p1/$everything?_count={v}",
    "/fhir/Observation?value-quantity={v}",
    "/fhir/RiskAssessment?probability={v}",
    "/fhir/ImmunizationRecommendation?dose-number={v}",
    "/fhir/$reindex/{v}",
    "/fhir/_history?_cursor={v}",
    "/fhir/Patient/_history?_cursor={v}",
    "/fhir/Patient/p1/_history?_cursor={v}",
    "/fhir/AuditEvent/{v}",
    "/fhir/AuditEvent?_cursor={v}",
]


def test_a_sync_run_id_longer_than_a_job_id_is_a_400(client: TestClient) -> None:
    """Run ids are job ids, text of at most 36 characters; any other is unknown (404)."""
    assert_outcome(client.get(f"/sync/runs/{HUGE * 2}"), 400, "run_id")
    assert_outcome(client.get(f"/sync/runs/{HUGE}"), 404)
    assert_outcome(client.get("/sync/runs/0"), 404)


@pytest.mark.parametrize("path", PATHS)
def test_hostile_integers_never_answer_5xx(client: TestClient, path: str) -> None:
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    for value in HOSTILE:
        response = client.get(path.format(v=value))
        assert response.status_code < 500, (path, value, response.text)


def test_hostile_versions_in_if_match_and_vread(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    for value in HOSTILE:
        # Sent as raw header bytes: latin-1 where it can ("²" is one byte), else UTF-8.
        try:
            etag = f'W/"{value}"'.encode("latin-1")
        except UnicodeEncodeError:
            etag = f'W/"{value}"'.encode()
        response = client.put(
            "/fhir/Patient/p1",
            json={"resourceType": "Patient", "id": "p1"},
            headers={"If-Match": etag},  # type: ignore[dict-item]
        )
        assert response.status_code in (400, 412), (value, response.text)
    assert client.get("/fhir/Patient/p1/_history/²").status_code == 404


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _concrete(path: str) -> str:
    names = {"{type}": "Patient", "{id}": "p1", "{vid}": "1", "{name}": "x.ndjson"}
    for placeholder, value in names.items():
        path = path.replace(placeholder, value)
    return path.replace("{job_id}", "j1").replace("{run_id}", "1")


def test_405_allow_lists_every_method_of_the_path(client: TestClient) -> None:
    paths = {_concrete(route.path) for route in client.app.routes if isinstance(route, APIRoute)}
    checked = 0
    for path in sorted(paths):
        answers = {method: client.request(method, path) for method in METHODS}
        supported = {m for m, r in answers.items() if r.status_code != 405}
        for method, response in answers.items():
            if response.status_code == 405:
                checked += 1
                allow = {m.strip() for m in response.headers["allow"].split(",")}
                assert allow - {"HEAD"} == supported, (path, method, allow, supported)
    assert checked >= 8  # /fhir, /sync/runs, Group/{id}/$export, ...


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_bundle_entries_with_odd_version_digits_are_4xx(client: TestClient, kind: str) -> None:
    """Entry ``ifMatch`` and GET ``_history/n`` with digits ``int()`` refuses or a column
    cannot hold: a 4xx (the entry's or the Bundle's), never a 500."""
    created = client.post("/fhir/Patient", json={"resourceType": "Patient"})
    pid = created.json()["id"]
    for entry in (
        {
            "resource": {"resourceType": "Patient", "id": pid, "active": True},
            "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"\u00b9"'},
        },
        {"request": {"method": "GET", "url": f"Patient/{pid}/_history/\u00b9"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}/_history/{'9' * 30}"}},
    ):
        response = client.post(
            "/fhir", json={"resourceType": "Bundle", "type": kind, "entry": [entry]}
        )
        assert response.status_code < 500, response.text
        statuses = [e["response"]["status"] for e in response.json().get("entry", [])]
        assert response.status_code >= 400 or all(not s.startswith("5") for s in statuses)
        assert response.status_code >= 400 or all(s[0] == "4" for s in statuses)
