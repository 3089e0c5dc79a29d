"""History at instance, type and system level (https://hl7.org/fhir/R4/http.html#history)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from tests.api.helpers import assert_outcome, patient


def _follow(client: TestClient, url: str) -> list[dict]:
    entries: list[dict] = []
    while url:
        parts = urlsplit(url)
        page = client.get(parts.path + (f"?{parts.query}" if parts.query else "")).json()
        assert page["type"] == "history"
        entries.extend(page.get("entry", []))
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), "")
    return entries


def test_instance_history_newest_first_with_delete(client: TestClient) -> None:
    client.put("/fhir/Patient/h1", json=patient(id="h1", gender="male"))
    client.put("/fhir/Patient/h1", json=patient(id="h1", gender="female"))
    client.delete("/fhir/Patient/h1")
    bundle = client.get("/fhir/Patient/h1/_history").json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    versions = [e["response"]["etag"] for e in bundle["entry"]]
    assert versions == ['W/"3"', 'W/"2"', 'W/"1"']
    deleted, second, first = bundle["entry"]
    assert "resource" not in deleted
    assert deleted["request"] == {"method": "DELETE", "url": "Patient/h1"}
    assert second["resource"]["gender"] == "female"
    assert first["request"]["method"] == "PUT"
    assert_outcome(client.get("/fhir/Patient/never/_history"), 404, "Patient/never")


def test_type_and_system_history_with_paging(client: TestClient) -> None:
    for i in range(7):
        client.put(f"/fhir/Patient/p{i}", json=patient(id=f"p{i}"))
    client.post(
        "/fhir/Observation",
        json={"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
    )
    first = client.get("/fhir/Patient/_history?_count=3").json()
    assert first["total"] == 7
    assert len(first["entry"]) == 3
    assert any(link["relation"] == "next" for link in first["link"])
    entries = _follow(client, "http://testserver/fhir/Patient/_history?_count=3")
    ids = [e["resource"]["id"] for e in entries]
    assert sorted(ids) == [f"p{i}" for i in range(7)]
    assert ids == [f"p{i}" for i in reversed(range(7))]
    everything = _follow(client, "http://testserver/fhir/_history?_count=5")
    assert len(everything) == 8
    assert everything[0]["resource"]["resourceType"] == "Observation"


def test_paging_is_stable_while_writes_happen(client: TestClient) -> None:
    for i in range(4):
        client.put(f"/fhir/Patient/s{i}", json=patient(id=f"s{i}"))
    page = client.get("/fhir/_history?_count=2").json()
    client.put("/fhir/Patient/late", json=patient(id="late"))
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = _follow(client, next_url)
    seen = [e["resource"]["id"] for e in page["entry"] + rest]
    assert seen == ["s3", "s2", "s1", "s0"]


def test_since_filters_versions(client: TestClient) -> None:
    client.put("/fhir/Patient/old", json=patient(id="old"))
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert client.get("/fhir/_history", params={"_since": future}).json()["total"] == 0
    assert client.get("/fhir/_history", params={"_since": past}).json()["total"] == 1
    assert client.get("/fhir/Patient/_history?_since=2000-01-01").json()["total"] == 1
