"""Storage: the Repository protocol and its SQL implementation (SQLite, PostgreSQL).

    store = SqlStore.open(url)              # refuses a schema that is behind
    with store.begin(scope) as repo:        # one database transaction, one access scope
        repo.create({...})

``upgrade(url)`` runs the alembic migrations; ``check_schema_current(engine)``
raises ``SchemaNotCurrent`` naming ``fhir-service db upgrade``.
"""

from fhir_service.storage.access import AccessScope, Grant
from fhir_service.storage.engine import create_engine
from fhir_service.storage.migrate import (
    SchemaNotCurrent,
    check_schema_current,
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
    "format_instant",
    "head_revision",
    "upgrade",
]
