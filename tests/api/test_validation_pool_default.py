"""The validation pool a serving process opens by default
(``Settings.validation_pool_size``, docs/storage.md#validation-beside-the-sql-work):
one worker on SQLite, none on PostgreSQL; ``FHIR_SERVICE_VALIDATION_WORKERS`` overrides."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings


def _pool_workers(settings: Settings) -> int:
    app = create_app(settings)
    with TestClient(app):
        pool = app.state.store.validation_pool
        return 0 if pool is None else int(pool.workers)


def test_one_worker_on_sqlite_none_on_postgresql(database_url: str) -> None:
    expected = 1 if database_url.startswith("sqlite") else 0
    assert _pool_workers(Settings(database_url=database_url)) == expected


def test_the_setting_overrides_the_default(database_url: str) -> None:
    assert _pool_workers(Settings(database_url=database_url, validation_workers=0)) == 0
    assert _pool_workers(Settings(database_url=database_url, validation_workers=2)) == 2
