"""Index rows follow writes in the same transaction; `fhir-service search reindex`
rebuilds them (https://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from fhir_service.search.query import parse_search
from fhir_service.search.registry import get_registry
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.search_tables import SEARCH_TABLES

FULL_ACCESS = AccessScope.full()


def _names(store: SqlStore, family: str) -> list[str]:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        request = parse_search(get_registry(), ["Patient"], [("family", family)])
        return [s.id for s in repo.search_page(request).matches]


def _rows(store: SqlStore, id: str) -> int:
    with store.engine.connect() as conn:
        return sum(
            conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.res_id == id)
            ).scalar_one()
            for t in SEARCH_TABLES.values()
        )


def test_index_replaced_on_update_and_removed_on_delete(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            created = repo.create({"resourceType": "Patient", "name": [{"family": "Before"}]})
        id = created.stored.id
        assert _names(store, "before") == [id]
        with store.begin(FULL_ACCESS) as repo:
            repo.update(
                "Patient", id, {"resourceType": "Patient", "id": id, "name": [{"family": "After"}]}
            )
        assert _names(store, "before") == []
        assert _names(store, "after") == [id]
        with store.begin(FULL_ACCESS) as repo:
            repo.delete("Patient", id)
        assert _names(store, "after") == []
        assert _rows(store, id) == 0
    finally:
        store.close()


def test_failed_transaction_leaves_no_index_rows(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with pytest.raises(RuntimeError), store.begin(FULL_ACCESS) as repo:
            repo.create({"resourceType": "Patient", "name": [{"family": "Rolledback"}]})
            raise RuntimeError("abort")
        assert _names(store, "rolledback") == []
        with store.engine.connect() as conn:
            left = sum(
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in SEARCH_TABLES.values()
            )
        assert left == 0
    finally:
        store.close()


def test_reindex_command_rebuilds_missing_rows(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            ids = [
                repo.create({"resourceType": "Patient", "name": [{"family": f"Re{i}"}]}).stored.id
                for i in range(7)
            ]
            repo.delete("Patient", ids[-1])
        with store.engine.begin() as conn:
            for table in SEARCH_TABLES.values():
                conn.execute(sa.delete(table))
        assert _names(store, "re") == []
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fhir_service",
                "search",
                "reindex",
                "--batch",
                "3",
                "--database-url",
                database_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "Patient: 3 reindexed" in result.stdout
        assert "reindexed 7 resources" in result.stdout
        assert sorted(_names(store, "re")) == sorted(ids[:-1])
    finally:
        store.close()
