"""Fixtures of the export tests: the app on a real database with an export directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings

SECRET = "test-export-secret"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    return tmp_path / "exports"


@pytest.fixture
def client(database_url: str, export_dir: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, export_dir=export_dir, deid_secret=SECRET)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def kick_off(client: TestClient, path: str, **kwargs: Any) -> str:
    """Kick off an export; the status URL from Content-Location."""
    response = client.request(kwargs.pop("method", "GET"), path, headers=ASYNC, **kwargs)
    assert response.status_code == 202, response.text
    return str(response.headers["content-location"])


def wait_manifest(client: TestClient, status_url: str) -> dict[str, Any]:
    """Poll the status URL as a client does (honouring 202) until the manifest arrives."""
    deadline = time.monotonic() + 60
    while True:
        response = client.get(status_url)
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert "x-progress" in response.headers and "retry-after" in response.headers
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.05)


def download(
    client: TestClient, manifest: dict[str, Any], key: str = "output"
) -> list[dict[str, Any]]:
    """Every resource of the manifest's files (``output`` or ``deleted``)."""
    resources = []
    for item in manifest[key]:
        response = client.get(item["url"])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in response.content.splitlines() if line]
        assert len(lines) == item["count"]
        assert all(r["resourceType"] == item["type"] for r in lines)
        resources.extend(lines)
    return resources
