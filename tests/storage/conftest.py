"""Fixtures of the storage tests: a SqlStore on each real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_service.storage import SqlStore


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A store on an upgraded, empty database (SQLite file, then PostgreSQL)."""
    opened = SqlStore.open(database_url, pool_size=25)
    try:
        yield opened
    finally:
        opened.close()
