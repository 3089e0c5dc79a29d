"""Storage's API for the security tables: registered clients, used client assertions
(https://hl7.org/fhir/smart-app-launch/backend-services.html) and the audit trail
(https://hl7.org/fhir/R4/auditevent.html)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_service.storage import SqlStore
from fhir_service.storage.audit_log import AuditRecord, AuditTrail
from fhir_service.storage.clients import Client, ClientRegistry
from fhir_service.storage.errors import DatabaseError


def _client(client_id: str, patient: str | None = None) -> Client:
    jwks = {"keys": [{"kty": "EC", "crv": "P-384", "x": "x", "y": "y", "kid": "k"}]}
    return Client(client_id, "backend", jwks, None, "system/*.rs", patient, True)


def test_clients_are_stored_listed_and_disabled(database_url: str) -> None:
    registry = ClientRegistry.open(database_url)
    try:
        with registry.begin() as rows:
            rows.add(_client("b"))
            rows.add(_client("a", patient="p1"))
        with pytest.raises(DatabaseError), registry.begin() as rows:
            rows.add(_client("a"))  # a taken client id
        with registry.read() as rows:
            assert [c.client_id for c in rows.all()] == ["a", "b"]
            assert rows.get("a") == _client("a", patient="p1")
            assert rows.get("c") is None
        with registry.begin() as rows:
            assert rows.set_active("a", False)
            assert not rows.set_active("c", False)
        with registry.read() as rows:
            found = rows.get("a")
            assert found is not None and not found.active
    finally:
        registry.close()


def test_an_assertion_is_accepted_once_until_it_expires(database_url: str) -> None:
    store = SqlStore.open(database_url)
    registry = ClientRegistry.of(store)
    soon = datetime.now(UTC) + timedelta(minutes=5)
    try:
        with registry.begin() as rows:
            assert rows.remember_assertion("a", "jti-1", soon)
            assert not rows.remember_assertion("a", "jti-1", soon), "a replay"
            assert rows.remember_assertion("b", "jti-1", soon), "another client's jti"
            assert rows.remember_assertion("a", "old", datetime.now(UTC) - timedelta(seconds=1))
        with registry.begin() as rows:
            assert rows.remember_assertion("a", "old", soon), "an expired jti is forgotten"
    finally:
        registry.close()  # the store's engine: closed with the store
        store.close()


def _record(status: int, subtype: str = "read", patient: str | None = None) -> AuditRecord:
    return AuditRecord(
        recorded=datetime.now(UTC),
        client_id="c" * 200,  # stored cut to the column's 128
        patient=patient,
        source="127.0.0.1",
        subtype=subtype,
        method="GET",
        path="/fhir/Patient/p1",
        status=status,
        entities=["Patient/p1"],
    )


def test_the_audit_trail_reads_back_newest_first(database_url: str) -> None:
    store = SqlStore.open(database_url)
    trail = AuditTrail.of(store)
    try:
        trail.append([_record(200, patient="p1"), _record(404), _record(500, "create")])
        entries = trail.search(count=10)
        assert [(e.status, e.outcome, e.action) for e in entries] == [
            (500, "8", "C"),
            (404, "4", "R"),
            (200, "0", "R"),
        ]
        newest = entries[0]
        assert newest.client_id == "c" * 128 and newest.entities == ["Patient/p1"]
        assert newest.recorded.tzinfo is not None
        assert trail.get(newest.seq) == newest
        assert trail.get(newest.seq + 100) is None
        assert [e.status for e in trail.search(count=10, before=newest.seq)] == [404, 200]
        assert [e.status for e in trail.search(count=10, patient="p1")] == [200]
        assert [e.status for e in trail.search(count=10, outcome="4")] == [404]
        assert [e.status for e in trail.search(count=1, action="R")] == [404]
    finally:
        store.close()
