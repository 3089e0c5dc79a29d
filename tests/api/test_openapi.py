"""The OpenAPI document of the app (/openapi.json, behind /docs)."""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

from fastapi.testclient import TestClient


def test_every_operation_has_an_id_of_its_own(client: TestClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns of a duplicate id and goes on
        document = client.get("/openapi.json").json()
    ids = Counter(
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    )
    assert ids and not [name for name, n in ids.items() if n > 1]
    export = document["paths"]["/fhir/$export"]
    assert set(export) == {"get", "post"}


FHIR_JSON = "application/fhir+json"
WRITES = {"post", "put", "patch"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_writes_declare_a_fhir_resource_body(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path, method, operation in _operations(document):
        if method not in WRITES or not path.startswith("/fhir"):
            continue
        content = operation["requestBody"]["content"]
        if path.endswith("/_search"):  # a search by POST sends its parameters as a form
            assert set(content) == {"application/x-www-form-urlencoded"}
            continue
        assert {FHIR_JSON, "application/json"} <= set(content), (method, path)
        schema = content[FHIR_JSON]["schema"]
        assert schema["type"] == "object" and schema["required"] == ["resourceType"]
        assert schema["properties"]["resourceType"]["type"] == "string"
    paths = document["paths"]
    for method in ("put", "patch"):
        content = paths["/fhir/{type}/{id}"][method]["requestBody"]["content"]
        assert ("application/json-patch+json" in content) == (method == "patch")
    bundle = paths["/fhir"]["post"]["requestBody"]["content"][FHIR_JSON]["schema"]
    assert bundle["properties"]["resourceType"]["enum"] == ["Bundle"]
    parameters = paths["/fhir/$export"]["post"]["requestBody"]["content"][FHIR_JSON]["schema"]
    assert parameters["properties"]["resourceType"]["enum"] == ["Parameters"]
    # A GET shares the route metadata of its POST twin but declares no body.
    assert "requestBody" not in paths["/fhir/$export"]["get"]
    assert "requestBody" not in paths["/fhir/{type}/{id}"]["get"]


def test_errors_are_declared_as_operation_outcomes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(document)
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        assert {"400", "404", "503"} <= set(responses), (method, path)
        if path == "/auth/token":  # OAuth errors (RFC 6749), not FHIR
            continue
        for status, answer in responses.items():
            if status.startswith("4") or status.startswith("5"):
                schema = answer["content"][FHIR_JSON]["schema"]
                assert schema["properties"]["resourceType"]["enum"] == ["OperationOutcome"]
    create = document["paths"]["/fhir/{type}"]["post"]["responses"]
    assert {"201", "409", "412", "413", "415", "422"} <= set(create)
    assert FHIR_JSON in create["201"]["content"]
    assert "410" in document["paths"]["/fhir/{type}/{id}"]["get"]["responses"]
    # A kick-off answers 202, never the 200 FastAPI lists by default.
    kick_off = document["paths"]["/fhir/$export"]["post"]["responses"]
    assert "202" in kick_off and "200" not in kick_off


def test_a_request_fastapi_rejects_is_the_declared_400(client: TestClient) -> None:
    """FastAPI's own validation of a parameter answers 400 with an OperationOutcome, as
    declared, not the 422 FastAPI documents by default."""
    document = client.get("/openapi.json").json()
    declared = document["paths"]["/sync/runs/{run_id}"]["get"]["responses"]
    response = client.get(f"/sync/runs/{'x' * 37}")  # run ids have at most 36 characters
    assert response.status_code == 400 and "422" not in declared
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert response.json()["resourceType"] == "OperationOutcome"
