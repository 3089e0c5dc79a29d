"""Shared fixtures: real databases (a SQLite file and PostgreSQL) and the shared data folder.

PostgreSQL: a fresh, uniquely named database is created per test session from
FHIR_SERVICE_TEST_POSTGRES_URL through an admin connection and dropped at the
end. Without that variable PostgreSQL tests skip, unless
FHIR_SERVICE_REQUIRE_POSTGRES=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from fhir_service.storage import upgrade

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
_KEEP_TABLES = {"alembic_version"}


def _postgres_admin_url() -> str | None:
    url = os.environ.get("FHIR_SERVICE_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("FHIR_SERVICE_REQUIRE_POSTGRES") == "1":
        pytest.fail("FHIR_SERVICE_REQUIRE_POSTGRES=1 but FHIR_SERVICE_TEST_POSTGRES_URL is unset")
    pytest.skip("PostgreSQL not configured: set FHIR_SERVICE_TEST_POSTGRES_URL")
    return None


@contextmanager
def _new_postgres_database() -> Iterator[str]:
    """A new, upgraded PostgreSQL database (its tables never analyzed), dropped afterwards."""
    admin_url = _postgres_admin_url()
    assert admin_url is not None
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"fhir_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at FHIR_SERVICE_TEST_POSTGRES_URL is not reachable: {exc}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """An upgraded PostgreSQL database created for this test session (dropped afterwards)."""
    with _new_postgres_database() as url:
        yield url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, as new as a production one on its first
    day: no table has planner statistics (the session's database may have some, from
    tests that ran ANALYZE)."""
    with _new_postgres_database() as url:
        yield url


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n not in _KEEP_TABLES]
            if names:
                tables = ", ".join(f'"{n}"' for n in names)
                conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An upgraded, empty SQLite database file in the test's temporary directory."""
    url = f"sqlite:///{tmp_path / 'fhir.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    _empty_postgres(postgres_session_url)
    return postgres_session_url


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """An upgraded, empty database URL: a SQLite file, then PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (../shared/data beside the repository)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data absent ({SHARED_DATA})")
    return SHARED_DATA
