"""The read shortcut (``fhir_service.api.read_shortcut``) answers exactly as the router.

Every request below is sent to two applications on one database: the service as built,
and the same application without the shortcut (the router alone). Status, body and every
header but ``date`` must be the same, for reads it answers (found, conditional, shaped,
another format) and for those it hands on (unknown or invalid ids, deleted resources,
unknown types, paths an earlier route owns, formats refused).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.api.read_shortcut import ReadShortcut
from tests.api.conftest import settings_for

PATIENT = {"resourceType": "Patient", "name": [{"family": "Shortcut"}], "gender": "female"}


@pytest.fixture
def pair(database_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    with_shortcut = create_app(settings_for(database_url))
    router_alone = create_app(settings_for(database_url))
    router_alone.user_middleware = [
        m for m in router_alone.user_middleware if m.cls is not ReadShortcut
    ]
    assert len(router_alone.user_middleware) == len(with_shortcut.user_middleware) - 1
    with TestClient(with_shortcut) as fast, TestClient(router_alone) as plain:
        yield fast, plain


def _same(fast: TestClient, plain: TestClient, path: str, **headers: str) -> int:
    a = fast.get(path, headers=headers)
    b = plain.get(path, headers=headers)
    assert a.status_code == b.status_code, path
    assert a.content == b.content, path
    assert {k: v for k, v in a.headers.items() if k != "date"} == {
        k: v for k, v in b.headers.items() if k != "date"
    }, path
    return a.status_code


def test_answers_as_the_router_does(pair: tuple[TestClient, TestClient]) -> None:
    fast, plain = pair
    created = fast.post("/fhir/Patient", json=PATIENT)
    assert created.status_code == 201
    pid = created.json()["id"]
    gone = fast.post("/fhir/Patient", json=PATIENT).json()["id"]
    assert fast.delete(f"/fhir/Patient/{gone}").status_code in (200, 204)
    etag = created.headers["etag"]

    expected = {
        f"/fhir/Patient/{pid}": 200,
        f"/fhir/Patient/{pid}?_summary=true": 200,
        f"/fhir/Patient/{pid}?_elements=gender": 200,
        f"/fhir/Patient/{pid}?_format=application/json&_pretty=true": 200,
        f"/fhir/Patient/{gone}": 410,
        "/fhir/Patient/no-such-patient": 404,
        "/fhir/Patient/bad_id!": 400,
        "/fhir/Patiens/x": 404,
        "/fhir/OperationDefinition/fhir-service-reindex": 200,
        "/fhir/$export-status/abc": 404,
        "/fhir/Patient/_history": 200,
    }
    for path, status in expected.items():
        assert _same(fast, plain, path) == status, path
    assert _same(fast, plain, f"/fhir/Patient/{pid}", **{"if-none-match": etag}) == 304
    assert _same(fast, plain, f"/fhir/Patient/{pid}", accept="application/xml") == 415
    assert _same(fast, plain, f"/fhir/Patient/{pid}", accept="text/json;q=0.5, */*") == 200


def test_takes_only_what_the_router_gives_the_read_route(
    pair: tuple[TestClient, TestClient],
) -> None:
    fast, _ = pair
    fast.get("/fhir/metadata")  # the middleware stack is built by the first request
    layer = fast.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, ReadShortcut):
        layer = layer.app
    scope = {"type": "http", "method": "GET", "path": "", "headers": []}

    def takes(path: str, method: str = "GET") -> bool:
        return layer._is_read({**scope, "path": path, "method": method}) is not None

    assert takes("/fhir/Patient/abc") and takes("/fhir/Observation/a.b-1")
    # Routes ahead of the read own these, whatever a stored resource's id is.
    assert not takes("/fhir/OperationDefinition/fhir-service-reindex")
    assert not takes("/fhir/AuditEvent/12")
    assert not takes("/fhir/$export-status/abc")
    assert not takes("/fhir/Patient/$export")
    # Not a read at all.
    assert not takes("/fhir/Patient/abc", "HEAD") and not takes("/fhir/Patient/abc", "DELETE")
    assert not takes("/fhir/Patient/abc/_history") and not takes("/fhir/Patient")
