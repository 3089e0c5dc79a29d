"""Sync state in one unit of work: the id map, checkpoints and a run's progress, with the
local resources and the repository on the same connection
(https://hl7.org/fhir/R4/http.html#transaction).

A page pulled from the remote, the id-map rows and the checkpoint that covers it are
written in one database transaction (``SyncState.unit``), so a crash at any point leaves
either all of it or none. The unit carries the ``AccessScope`` its caller passes: the
repository applies it to every resource operation, ``LocalResources`` to every read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from fhir_service.storage.access import AccessScope
from fhir_service.storage.engine import BEGIN_OPTION
from fhir_service.storage.jobs import JobRef, now, report_in
from fhir_service.storage.repository import BeforeWrite
from fhir_service.storage.sql_repository import SqlRepository
from fhir_service.storage.store import SqlStore
from fhir_service.storage.sync_local import LocalResources
from fhir_service.storage.sync_tables import sync_checkpoint, sync_id_map

BATCH = 500


class RunLost(Exception):
    """The run was cancelled or taken over by another process: stop carrying it out."""


@dataclass(frozen=True)
class MapRow:
    """One id-map row: local (type, id) <-> remote id and the versions last exchanged."""

    type: str
    local_id: str
    remote_id: str
    local_version: int | None
    remote_version: str | None
    deleted: bool = False


def _row(r: Any) -> MapRow:
    return MapRow(r.type, r.local_id, r.remote_id, r.local_version, r.remote_version, r.deleted)


class SyncState:
    """The sync tables and the local resources on one connection, inside ``scope``."""

    def __init__(self, conn: Connection, scope: AccessScope) -> None:
        self._conn = conn
        self.scope = scope
        self.local = LocalResources(conn, scope)

    @classmethod
    @contextmanager
    def unit(
        cls, store: SqlStore, scope: AccessScope, before_write: BeforeWrite | None = None
    ) -> Iterator[tuple[SyncState, SqlRepository]]:
        """One write transaction: the sync state and the resource repository (both inside
        ``scope``) on one connection; ``before_write`` sees every version it stores."""
        with store.engine.connect() as conn:
            conn = conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield (
                    cls(conn, scope),
                    SqlRepository(conn, scope=scope, before_write=before_write),
                )

    @classmethod
    @contextmanager
    def reading(cls, store: SqlStore, scope: AccessScope) -> Iterator[SyncState]:
        """Reads outside a write transaction (each statement sees the last commit)."""
        with store.engine.connect() as conn:
            yield cls(conn, scope)

    def _map_rows(
        self, remote: str, keys: Iterable[tuple[str, str]], side: str
    ) -> dict[tuple[str, str], MapRow]:
        """Id-map rows keyed by (type, id) on ``side`` (``local_id`` or ``remote_id``)."""
        column = sync_id_map.c[side]
        found: dict[tuple[str, str], MapRow] = {}
        by_type: dict[str, list[str]] = {}
        for rtype, id in keys:
            by_type.setdefault(rtype, []).append(id)
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), BATCH):
                rows = self._conn.execute(
                    sa.select(sync_id_map).where(
                        sync_id_map.c.remote == remote,
                        sync_id_map.c.type == rtype,
                        column.in_(ids[start : start + BATCH]),
                    )
                )
                for r in rows:
                    found[(r.type, getattr(r, side))] = _row(r)
        return found

    def map_by_local(
        self, remote: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], MapRow]:
        """Id-map rows by local (type, id)."""
        return self._map_rows(remote, keys, "local_id")

    def map_by_remote(
        self, remote: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], MapRow]:
        """Id-map rows by remote (type, id)."""
        return self._map_rows(remote, keys, "remote_id")

    def mapped(self, remote: str, rtype: str) -> list[MapRow]:
        """The id-map rows of one type not marked deleted."""
        rows = self._conn.execute(
            sa.select(sync_id_map).where(
                sync_id_map.c.remote == remote,
                sync_id_map.c.type == rtype,
                sync_id_map.c.deleted.is_(False),
            )
        ).all()
        return [
            MapRow(r.type, r.local_id, r.remote_id, r.local_version, r.remote_version) for r in rows
        ]

    def mapped_count(self, remote: str, rtype: str) -> int:
        """How many id-map rows one type has on the remote."""
        return int(
            self._conn.execute(
                sa.select(sa.func.count())
                .select_from(sync_id_map)
                .where(sync_id_map.c.remote == remote, sync_id_map.c.type == rtype)
            ).scalar_one()
        )

    def _upsert(self, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
        if not rows:
            return
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        self._conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)

    def save_map(self, remote: str, rows: Iterable[MapRow]) -> None:
        """Insert or update id-map rows."""
        self._upsert(
            sync_id_map,
            [
                {
                    "remote": remote,
                    "type": r.type,
                    "local_id": r.local_id,
                    "remote_id": r.remote_id,
                    "local_version": r.local_version,
                    "remote_version": r.remote_version,
                    "deleted": r.deleted,
                }
                for r in rows
            ],
            ["remote", "type", "local_id"],
        )

    def checkpoint(self, remote: str, name: str) -> str | None:
        """The named checkpoint of the remote; None when there is none."""
        value: str | None = self._conn.execute(
            sa.select(sync_checkpoint.c.value).where(
                sync_checkpoint.c.remote == remote, sync_checkpoint.c.name == name
            )
        ).scalar_one_or_none()
        return value

    def set_checkpoint(self, remote: str, name: str, value: str) -> None:
        self._upsert(
            sync_checkpoint,
            [{"remote": remote, "name": name, "value": value, "updated_at": now()}],
            ["remote", "name"],
        )

    def delete_checkpoint(self, remote: str, name: str) -> None:
        self._conn.execute(
            sa.delete(sync_checkpoint).where(
                sync_checkpoint.c.remote == remote, sync_checkpoint.c.name == name
            )
        )

    def record_progress(
        self, run: JobRef, counts: dict[str, int], errors: list[dict[str, str]]
    ) -> None:
        """Write the run's counts and errors so far and beat its heartbeat (in this unit's
        transaction). ``RunLost`` when this process no longer holds the run (cancelled, or
        taken over): the unit rolls back and the run stops."""
        done = sum(counts.values())
        progress = {"counts": counts, "errors": errors}
        if not report_in(self._conn, run, f"{done} resources, {len(errors)} errors", progress):
            raise RunLost(f"sync run {run.id} is no longer this process's to carry out")
