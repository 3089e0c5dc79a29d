"""Migration 0003_sync creates exactly the tables of storage.sync_tables and drops them."""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage import create_engine
from fhir_service.storage.migrate import downgrade_engine, upgrade_engine
from fhir_service.storage.sync_tables import metadata


def test_migration_matches_the_table_definitions(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
            keys = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert set(keys) == {c.name for c in table.primary_key.columns}, table.name
        downgrade_engine(engine, "0002_search")
        left = set(sa.inspect(engine).get_table_names())
        assert not left & {t.name for t in metadata.sorted_tables}
        upgrade_engine(engine)
        assert {t.name for t in metadata.sorted_tables} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
