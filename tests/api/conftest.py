"""Fixtures of the REST tests: the app on a real database, in-process and over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from tests.served import serve

BODY_LIMIT = 64 * 1024


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, max_body_bytes=BODY_LIMIT, base_url=None)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """A TestClient on the app over an empty, upgraded database (SQLite, then PostgreSQL)."""
    with TestClient(create_app(settings_for(database_url))) as test_client:
        yield test_client


@pytest.fixture
def live_server(database_url: str) -> Iterator[str]:
    """The app served by uvicorn on a free port in a background thread; yields the /fhir base."""
    with serve(create_app(settings_for(database_url))) as origin:
        yield f"{origin}/fhir"
