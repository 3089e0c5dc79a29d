"""Storage: the Repository protocol and its SQL implementation (SQLite, PostgreSQL).

    store = SqlStore.open(url)              # refuses a schema that is behind
    with store.begin(scope) as repo:        # one database transaction, one access scope
        repo.create({...})

``upgrade(url)`` runs the alembic migrations; ``store.check_schema()`` (and
``check_schema_current(engine)``) raises ``SchemaNotCurrent`` naming
``fhir-service db upgrade``. The database failures callers handle are named in
``storage.errors``.
"""

from fhir_service.storage.access import AccessScope, Grant
from fhir_service.storage.engine import create_engine, redacted_url
from fhir_service.storage.migrate import (
    SchemaNotCurrent,
    check_schema_current,
    database_revision,
    head_revision,
    upgrade,
)
from fhir_service.storage.repository import (
    BeforeWrite,
    HistoryPage,
    Repository,
    SearchPage,
    Store,
    Stored,
    StoredResult,
)
from fhir_service.storage.sql_repository import SqlRepository, format_instant
from fhir_service.storage.store import ScopedStore, SqlStore

__all__ = [
    "AccessScope",
    "BeforeWrite",
    "Grant",
    "HistoryPage",
    "Repository",
    "SchemaNotCurrent",
    "ScopedStore",
    "SearchPage",
    "SqlRepository",
    "SqlStore",
    "Store",
    "Stored",
    "StoredResult",
    "check_schema_current",
    "create_engine",
    "database_revision",
    "format_instant",
    "head_revision",
    "redacted_url",
    "upgrade",
]
