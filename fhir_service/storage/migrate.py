"""Schema migrations with alembic, run programmatically (https://alembic.sqlalchemy.org/).

``upgrade(url)`` brings a database to the newest revision; ``check_schema_current``
refuses a database that is behind and names the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from fhir_service.errors import FhirServiceError
from fhir_service.storage.engine import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaNotCurrent(FhirServiceError):
    """The database schema is older (or newer) than this version of the service expects."""

    status = 503
    code = "exception"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision shipped with this version."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise FhirServiceError("No migrations are shipped with this package")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def database_revision(url: str) -> str | None:
    """The revision of the database at ``url`` (``None`` for an empty database), read on
    an engine of its own."""
    engine = create_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Run every pending migration on ``engine`` in one transaction."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade_engine(engine: Engine, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` drops every table of the store)."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the database at ``url`` up to ``revision``; returns the revision reached."""
    engine = create_engine(url)
    try:
        upgrade_engine(engine, revision)
        reached = current_revision(engine)
    finally:
        engine.dispose()
    return reached or ""


def check_schema_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the shipped head revision."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaNotCurrent(
            "The database has no schema; run `fhir-service db upgrade` before starting"
        )
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current not in known:
        raise SchemaNotCurrent(
            f"The database schema is at revision {current}, newer than this version knows "
            f"(head {head}); upgrade the service"
        )
    raise SchemaNotCurrent(
        f"The database schema is at revision {current}, behind {head}; "
        "run `fhir-service db upgrade` before starting"
    )
