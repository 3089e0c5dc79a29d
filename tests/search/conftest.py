"""Fixtures of the search tests: the API on a real database (SQLite, then PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from tests.api.conftest import live_server, settings_for

__all__ = ["live_server"]


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(database_url))) as test_client:
        yield test_client


@pytest.fixture
def post(client: TestClient) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """POST a resource and return it as stored."""

    def create(resource: dict[str, Any]) -> dict[str, Any]:
        response = client.post(f"/fhir/{resource['resourceType']}", json=resource)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create
