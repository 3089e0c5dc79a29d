"""The audit trail: an AuditEvent per read, search, write and refused request, with who,
what, when and outcome, and no resource content (https://hl7.org/fhir/R4/auditevent.html)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import create_engine
from tests.api.helpers import assert_outcome
from tests.security.conftest import ADMIN, Smart, World


def _events(smart: Smart, query: str = "") -> list[dict[str, Any]]:
    response = smart.client.get(f"/fhir/AuditEvent{query}", headers=smart.headers(ADMIN))
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def _who(event: dict[str, Any]) -> str:
    return str(event["agent"][0]["who"]["identifier"]["value"])


def test_reads_writes_and_refusals_are_audited(smart: Smart, world: World) -> None:
    as_a = smart.headers("patient/*.rs", world.a)
    assert smart.client.get(f"/fhir/Patient/{world.a}", headers=as_a).status_code == 200
    assert smart.client.get("/fhir/Observation", headers=as_a).status_code == 200
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.b}", headers=as_a), 404)
    assert_outcome(smart.client.get(f"/fhir/Patient/{world.a}"), 401)
    events = _events(smart, "?_count=10")
    newest_first = [(e["action"], e["subtype"][0]["code"], e["outcome"]) for e in events[:4]]
    assert newest_first == [
        ("R", "read", "4"),
        ("R", "read", "4"),
        ("R", "search-type", "0"),
        ("R", "read", "0"),
    ]
    refused, hidden, search, read = events[:4]
    assert _who(refused) == "unauthenticated"
    assert _who(read) == "test-client"
    assert {"what": {"reference": f"Patient/{world.a}"}} in read["entity"]
    assert search["entity"][0]["what"]["reference"] == f"Observation/{world.obs_a}"
    patient_entity = [e for e in read["entity"] if e.get("role", {}).get("code") == "1"]
    assert patient_entity[0]["what"]["reference"] == f"Patient/{world.a}"
    assert read["recorded"].endswith("Z") or "+" in read["recorded"]
    assert "HTTP 404" in hidden["outcomeDesc"]
    created = _events(smart, "?action=C")
    assert len(created) == 5 and all(e["outcome"] == "0" for e in created)


def test_audit_holds_no_resource_content(smart: Smart, world: World, database_url: str) -> None:
    as_admin = smart.headers(ADMIN)
    smart.client.get("/fhir/Patient?family=Alpha", headers=as_admin)
    smart.client.app.state.security.audit.flush()  # records are stored by a writer thread
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM audit_event")).all()
    finally:
        engine.dispose()
    dump = repr(rows)
    assert rows
    for fact in ("Alpha", "Bravo", "heart rate", "family="):
        assert fact not in dump


def test_audit_events_are_scoped(smart: Smart, world: World) -> None:
    assert_outcome(
        smart.client.get("/fhir/AuditEvent", headers=smart.headers("system/Patient.rs")), 403
    )
    smart.client.get(f"/fhir/Patient/{world.b}", headers=smart.headers("patient/*.rs", world.b))
    as_a = smart.headers("patient/*.rs", world.a)
    smart.client.get(f"/fhir/Patient/{world.a}", headers=as_a)
    mine = smart.client.get("/fhir/AuditEvent", headers=as_a).json()
    patients = {
        e["what"]["reference"]
        for entry in mine["entry"]
        for e in entry["resource"].get("entity", [])
        if e.get("role", {}).get("code") == "1"
    }
    assert patients == {f"Patient/{world.a}"}
    theirs = _events(smart, f"?patient={world.b}")
    assert theirs
    other_id = theirs[0]["id"]
    assert_outcome(smart.client.get(f"/fhir/AuditEvent/{other_id}", headers=as_a), 404)
    admin_read = smart.client.get(f"/fhir/AuditEvent/{other_id}", headers=smart.headers(ADMIN))
    assert admin_read.json()["id"] == other_id


def test_audit_paging(smart: Smart, world: World) -> None:
    first = smart.client.get("/fhir/AuditEvent?_count=2", headers=smart.headers(ADMIN)).json()
    assert len(first["entry"]) == 2
    link = next(x["url"] for x in first["link"] if x["relation"] == "next")
    second = smart.client.get(link.replace("http://testserver", ""), headers=smart.headers(ADMIN))
    ids = {e["resource"]["id"] for e in first["entry"]}
    assert not ids & {e["resource"]["id"] for e in second.json()["entry"]}
    assert_outcome(
        smart.client.get("/fhir/AuditEvent?name=x", headers=smart.headers(ADMIN)), 400, "name"
    )


def test_queued_records_are_stored_at_shutdown(database_url: str) -> None:
    """The writer thread batches records; shutting the application down stores every
    record still queued, one per request."""
    app = create_app(Settings(database_url=database_url))
    with TestClient(app) as client:
        app.state.security.audit.FLUSH_SECONDS = 3600.0  # only shutdown may store them
        for i in range(30):
            assert client.get(f"/fhir/Patient/missing-{i}").status_code == 404
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            paths = conn.execute(sa.text("SELECT path FROM audit_event")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(paths) == sorted(f"/fhir/Patient/missing-{i}" for i in range(30))


def test_a_busy_server_stores_records_in_few_transactions(database_url: str) -> None:
    """Records keep arriving while the writer stores a batch; the writer must not chase
    them one transaction per few records (it did: each transaction then cost more than
    the request it recorded). The trail is the real one; its ``append`` is only counted
    and slowed by 5 ms, as a busy disk would (no real part does so on demand)."""
    import threading
    import time
    from datetime import UTC, datetime

    from fhir_service.api.auth.audit import AuditLog
    from fhir_service.storage.audit_log import AuditRecord, AuditTrail

    engine = create_engine(database_url)
    trail = AuditTrail(engine)
    calls = []

    class SlowTrail(AuditTrail):
        def append(self, records: Any) -> None:
            calls.append(len(records))
            time.sleep(0.005)
            trail.append(records)

    log = AuditLog(SlowTrail(engine))
    total = 3000
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM audit_event")).scalar_one()

    def produce() -> None:
        for i in range(total):
            log.write(
                AuditRecord(datetime.now(UTC), "busy", None, None, "read", "GET",
                            f"/fhir/Patient/p{i}", 200, [f"Patient/p{i}"])
            )  # fmt: skip
            if i % 5 == 0:
                time.sleep(0.001)

    producer = threading.Thread(target=produce)
    started = time.monotonic()
    producer.start()
    producer.join()
    elapsed = time.monotonic() - started
    log.close()
    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT count(*) FROM audit_event")).scalar_one()
    engine.dispose()
    assert after - before == total == sum(calls)
    # About one transaction per FLUSH_SECONDS (50 ms) while the producer runs (~0.7 s, more
    # on a slow machine), not one per 5 ms append as when the writer chased new records.
    flushes = elapsed / AuditLog.FLUSH_SECONDS
    assert len(calls) <= 2 * flushes + 5, (len(calls), round(elapsed, 2), calls[:10])


def test_a_control_character_in_a_path_loses_no_record(database_url: str) -> None:
    """A path may carry any character percent-encoded, NUL included, which PostgreSQL's
    text refuses: the record keeps it visibly replaced, and the other records of its
    batch are stored too (a refused batch would drop every one of them)."""
    app = create_app(Settings(database_url=database_url))
    with TestClient(app) as client:
        app.state.security.audit.FLUSH_SECONDS = 3600.0  # one batch, stored at shutdown
        assert client.get("/fhir/Patient/before").status_code == 404
        assert_outcome(client.get("/fhir/Patient/a%00b%01"), 400, "not a valid FHIR id")
        assert client.get("/fhir/Patient/after").status_code == 404
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            paths = conn.execute(sa.text("SELECT path FROM audit_event ORDER BY seq")).scalars()
            stored = list(paths)
    finally:
        engine.dispose()
    assert stored == ["/fhir/Patient/before", "/fhir/Patient/a\ufffdb\ufffd", "/fhir/Patient/after"]
