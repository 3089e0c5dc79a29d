"""The CapabilityStatement declares every operation the server serves, each with its
OperationDefinition canonical (https://hl7.org/fhir/R4/capabilitystatement-definitions.html#CapabilityStatement.rest.operation)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

CORE = "http://hl7.org/fhir/OperationDefinition/"
BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
NOT_OPERATIONS = {
    "export-status",
    "export-file",
    "viewdefinition-export-status",
    "viewdefinition-export-file",
}
"""The status and file URLs of Bulk Data and view exports: locations the server hands out,
not operations."""


def _declared(statement: dict[str, Any]) -> dict[str | None, dict[str, str]]:
    rest = statement["rest"][0]
    found: dict[str | None, dict[str, str]] = {None: {}}
    for op in rest.get("operation", []):
        found[None][op["name"]] = op["definition"]
    for resource in rest["resource"]:
        ops = resource.get("operation", [])
        found[resource["type"]] = {o["name"]: o["definition"] for o in ops}
    return found


def test_every_served_operation_is_declared_with_its_definition(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    declared = _declared(statement)
    base = statement["implementation"]["url"]
    served = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute):
            served.update(re.findall(r"/\$([a-z-]+)", route.path))
    names = {name for ops in declared.values() for name in ops}
    assert served - NOT_OPERATIONS <= names, served - NOT_OPERATIONS - names

    assert declared[None]["validate"] == f"{CORE}Resource-validate"
    assert declared[None]["export"] == f"{BULK}export"
    assert declared[None]["reindex"] == f"{base}/OperationDefinition/fhir-service-reindex"
    assert declared["Patient"]["everything"] == f"{CORE}Patient-everything"
    assert declared["Patient"]["export"] == f"{BULK}patient-export"
    assert declared["Patient"]["validate"] == f"{CORE}Resource-validate"
    assert declared["Group"]["export"] == f"{BULK}group-export"
    assert "everything" not in declared["Observation"]
    assert declared["Composition"]["document"] == (
        f"{base}/OperationDefinition/fhir-service-composition-document"
    )
    assert "document" not in declared["Observation"]


def test_the_servers_own_operation_definition_resolves(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    definition = _declared(statement)[None]["reindex"]
    response = client.get(definition)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "OperationDefinition"
    assert body["url"] == definition
    assert (body["code"], body["system"], body["kind"]) == ("reindex", True, "operation")
    assert {p["name"] for p in body["parameter"]} == {"type", "url", "return"}
    checked = client.post(
        "/fhir/OperationDefinition/$validate",
        json=body,
        headers={"Content-Type": "application/fhir+json"},
    ).json()
    errors = [i for i in checked["issue"] if i["severity"] in ("error", "fatal")]
    assert errors == [], errors


def test_the_document_operation_definition_resolves_and_names_its_base(
    client: TestClient,
) -> None:
    statement = client.get("/fhir/metadata").json()
    definition = _declared(statement)["Composition"]["document"]
    body = client.get(definition).json()
    assert body["resourceType"] == "OperationDefinition"
    assert body["url"] == definition
    assert body["base"] == f"{CORE}Composition-document"
    assert (body["code"], body["resource"], body["instance"]) == ("document", ["Composition"], True)
    assert (body["system"], body["type"]) == (False, False)
    assert {p["name"]: p["use"] for p in body["parameter"]} == {"persist": "in", "return": "out"}
    checked = client.post(
        "/fhir/OperationDefinition/$validate",
        json=body,
        headers={"Content-Type": "application/fhir+json"},
    ).json()
    errors = [i for i in checked["issue"] if i["severity"] in ("error", "fatal")]
    assert errors == [], errors
