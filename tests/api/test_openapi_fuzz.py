"""A bounded schemathesis run over /openapi.json against the real app.

The app runs in-process (TestClient, lifespan started once) on a SQLite file holding the
example case (examples/ivc-leiomyosarcoma, loaded as its transaction Bundle), so reads,
searches and writes meet real resources. Every operation of the document gets a few
generated requests (``EXAMPLES`` each, derandomized so that a run is reproducible, no
shrinking; about 40 s here); each response must be:

- no server error (5xx), not even the 503 the document declares for an unavailable
  database (the database is up);
- a status code the document declares for that operation;
- a content type the document declares for that status;
- a body that matches the declared schema (a FHIR resource object, a Bundle, an
  OperationOutcome).

Excluded: ``/fhir/$export-file/{job_id}/{name}`` (a file download, streamed from disk)
and ``/sync/runs`` POST (queues a run that a background worker starts against a remote);
the web view (``/ui``) and ``/docs`` are not in the document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import upgrade

EXAMPLES = 10
EXAMPLE_BUNDLE = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "ivc-leiomyosarcoma"
    / "bundle-transaction.json"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = (
    schemathesis.openapi.from_dict(
        create_app(Settings(database_url="sqlite://", base_url=None)).openapi()
    )
    .exclude(path_regex=r"^/fhir/\$export-file/")
    .exclude(path="/sync/runs", method="POST")
)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app on a SQLite file with the example case loaded."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fhir.sqlite3'}"
    upgrade(url)
    app = create_app(Settings(database_url=url, base_url=None))
    with TestClient(app, raise_server_exceptions=False) as client:
        loaded = client.post(
            "/fhir",
            content=EXAMPLE_BUNDLE.read_bytes(),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert loaded.status_code == 200, loaded.text
        yield client


def _send(client: TestClient, case: Any) -> Any:
    """Send the generated request through the TestClient (requests-style kwargs to httpx)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers"),
        "params": kwargs.get("params"),
        "cookies": kwargs.get("cookies") or None,
    }
    if "json" in kwargs:
        request["content"] = json.dumps(kwargs["json"]).encode()
    elif isinstance(kwargs.get("data"), bytes | str):
        request["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        request["data"] = kwargs["data"]
    return client.request(**request)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, fuzz_client: TestClient) -> None:
    response = _send(fuzz_client, case)
    case.validate_response(response, checks=CHECKS)
