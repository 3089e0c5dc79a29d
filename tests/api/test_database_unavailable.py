"""A database that cannot be reached gives 503 with Retry-After and an OperationOutcome,
never a 500 or a stack trace (https://hl7.org/fhir/R4/http.html#ops)."""

from __future__ import annotations

import socket

from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, create_engine


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


def test_unreachable_database_is_503_with_retry_after(sqlite_url: str) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test?connect_timeout=2"
    store = SqlStore(create_engine(url))
    app = create_app(Settings(database_url=sqlite_url, audit_enabled=False), store=store)
    try:
        with TestClient(app) as client:
            for method, path in (("GET", "/fhir/Patient/p1"), ("GET", "/fhir/Patient")):
                response = client.request(method, path)
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                outcome = response.json()
                assert outcome["resourceType"] == "OperationOutcome"
                assert outcome["issue"][0]["code"] == "transient"
                assert "Traceback" not in response.text
    finally:
        store.close()


def test_a_pool_that_stays_busy_is_503_with_retry_after(sqlite_url: str) -> None:
    """Every pooled connection busy past the pool timeout: 503, not a 500."""
    store = SqlStore.open(sqlite_url, pool_size=1, pool_timeout=0.2)
    app = create_app(Settings(database_url=sqlite_url, audit_enabled=False), store=store)
    try:
        with TestClient(app) as client, store.engine.connect(), store.engine.connect():
            response = client.get("/fhir/Patient?name=busy")  # a search: a worker thread
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.json()["issue"][0]["code"] == "transient"
    finally:
        store.close()
