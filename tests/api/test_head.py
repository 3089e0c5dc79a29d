"""HEAD on the FHIR API's reads (RFC 9110 section 9.3.2): the GET's status and headers,
no content, over real HTTP; operations and other paths refuse it (405); the audit trail
records the HEAD as a HEAD."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.storage.engine import create_engine
from tests.api.conftest import settings_for

FHIR_JSON = "application/fhir+json"


def _exchange(origin: str, requests: bytes) -> bytes:
    """Everything the server sends back for ``requests`` on one connection, which the
    last request closes."""
    parts = urlsplit(origin)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(requests)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _head_of(response: bytes) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers (lower-case names) and what follows the head."""
    head, _, rest = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def test_head_of_a_read_is_the_get_without_content(live_server: str) -> None:
    created = httpx.post(
        f"{live_server}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Head"}]},
        headers={"Content-Type": FHIR_JSON},
    )
    assert created.status_code == 201
    path = f"/fhir/Patient/{created.json()['id']}"
    got = httpx.get(f"{live_server.removesuffix('/fhir')}{path}")
    # A HEAD, then a GET on the same connection: were any content sent after the HEAD's
    # head, it would stand where the GET's status line must.
    answer = _exchange(
        live_server.removesuffix("/fhir"),
        f"HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n"
        f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(),
    )
    status, headers, rest = _head_of(answer)
    assert status == "HTTP/1.1 200 OK"
    assert headers["etag"] == got.headers["etag"] == 'W/"1"'
    assert headers["last-modified"] == got.headers["last-modified"]
    assert headers["content-type"] == got.headers["content-type"]
    assert int(headers["content-length"]) == len(got.content) > 0
    second_status, _, body = _head_of(rest)
    assert second_status == "HTTP/1.1 200 OK"
    assert body == got.content


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/fhir/Patient?family=Head", 200),
        ("/fhir/Patient/_history", 200),
        ("/fhir/metadata", 200),
        ("/fhir/Patient/no-such-id", 404),
        ("/fhir/Patient/bad_id!", 400),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/fhir/$export", 405),  # an operation: a GET would start an export
        ("/fhir/Patient/$export", 405),
        ("/ui", 405),
    ],
)
def test_head_answers_reads_and_refuses_the_rest(live_server: str, path: str, status: int) -> None:
    origin = live_server.removesuffix("/fhir")
    host = urlsplit(origin).netloc  # the Host a GET by httpx sends: self links alike
    answer = _exchange(
        origin, f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    line, headers, rest = _head_of(answer)
    assert line.split(" ")[1] == str(status), line
    assert rest == b""  # no content, whatever the status
    if status == 200 and path.startswith("/fhir"):
        get = httpx.get(origin + path, headers={"Accept": FHIR_JSON})
        assert int(headers["content-length"]) == len(get.content)


def test_a_head_is_audited_as_a_head(database_url: str) -> None:
    app = create_app(settings_for(database_url))
    with TestClient(app) as client:
        assert client.head("/fhir/Patient/no-such-id").status_code == 404
        assert client.head("/fhir/Patient").status_code == 200
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT method, subtype, status FROM audit_event ORDER BY seq")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("HEAD", "read", 404), ("HEAD", "search-type", 200)]
