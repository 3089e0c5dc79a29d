"""Sync state access: runs, the id map and checkpoints, inside the caller's DB transaction.

A page pulled from the remote, the id-map rows and the checkpoint that covers it
are written in one database transaction (``unit``), so a crash at any point
leaves either all of it or none (https://hl7.org/fhir/R4/http.html#transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from fhir_service.storage import SqlRepository, SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.engine import BEGIN_OPTION
from fhir_service.sync.tables import sync_checkpoint, sync_id_map, sync_run


def now() -> datetime:
    return datetime.now(UTC)


def remote_key(base_url: str) -> str:
    """The key under which state for a remote is kept: its base URL without trailing slash."""
    return base_url.rstrip("/")


@contextmanager
def unit(store: SqlStore) -> Iterator[tuple[Connection, SqlRepository]]:
    """One write transaction: the sync tables and the resource repository on one connection."""
    with store.engine.connect() as conn:
        conn = conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            yield conn, SqlRepository(conn, scope=AccessScope.full())


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


def _map_rows(
    conn: Connection, remote: str, keys: Iterable[tuple[str, str]], side: str
) -> dict[tuple[str, str], MapRow]:
    """Id-map rows keyed by (type, id) on ``side`` (``local_id`` or ``remote_id``)."""
    column = sync_id_map.c[side]
    found: dict[tuple[str, str], MapRow] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, id in keys:
        by_type.setdefault(rtype, []).append(id)
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                sa.select(sync_id_map).where(
                    sync_id_map.c.remote == remote,
                    sync_id_map.c.type == rtype,
                    column.in_(ids[start : start + 500]),
                )
            )
            for r in rows:
                found[(r.type, getattr(r, side))] = _row(r)
    return found


def map_by_local(conn: Connection, remote: str, keys: Iterable[tuple[str, str]]) -> dict:
    """Id-map rows by local (type, id)."""
    return _map_rows(conn, remote, keys, "local_id")


def map_by_remote(conn: Connection, remote: str, keys: Iterable[tuple[str, str]]) -> dict:
    """Id-map rows by remote (type, id)."""
    return _map_rows(conn, remote, keys, "remote_id")


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def save_map(conn: Connection, remote: str, rows: Iterable[MapRow]) -> None:
    """Insert or update id-map rows."""
    _upsert(
        conn,
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


def get_checkpoint(conn: Connection, remote: str, name: str) -> str | None:
    return conn.execute(
        sa.select(sync_checkpoint.c.value).where(
            sync_checkpoint.c.remote == remote, sync_checkpoint.c.name == name
        )
    ).scalar_one_or_none()


def delete_checkpoint(conn: Connection, remote: str, name: str) -> None:
    conn.execute(
        sa.delete(sync_checkpoint).where(
            sync_checkpoint.c.remote == remote, sync_checkpoint.c.name == name
        )
    )


def set_checkpoint(conn: Connection, remote: str, name: str, value: str) -> None:
    _upsert(
        conn,
        sync_checkpoint,
        [{"remote": remote, "name": name, "value": value, "updated_at": now()}],
        ["remote", "name"],
    )


@dataclass(frozen=True)
class RunRef:
    """A run as one process holds it: its id and the attempt (claim) that process made.

    Progress and the end of a run are written only while the run is ``running`` under
    that attempt, a fencing token: a process that lost the run (its heartbeat went stale
    and another worker took it over, or it gave it back on shutdown) changes nothing.
    """

    id: int
    attempt: int


def _held(run: RunRef) -> sa.ColumnElement[bool]:
    return sa.and_(
        sync_run.c.id == run.id,
        sync_run.c.attempts == run.attempt,
        sync_run.c.status == "running",
    )


def start_run(store: SqlStore, remote: str, direction: str, scope: str) -> RunRef:
    """Record a run that the calling process carries out itself (the ``sync`` command).
    Earlier such runs of the same kind left ``running`` (their process died) become
    ``interrupted``; runs queued over HTTP belong to the workers (``jobs``)."""
    with unit(store) as (conn, _):
        conn.execute(
            sa.update(sync_run)
            .where(
                sync_run.c.remote == remote,
                sync_run.c.direction == direction,
                sync_run.c.status == "running",
                sync_run.c.params.is_(None),
            )
            .values(status="interrupted")
        )
        started = now()
        run_id = conn.execute(
            sa.insert(sync_run)
            .values(
                remote=remote,
                direction=direction,
                scope=scope,
                status="running",
                started_at=started,
                heartbeat=started,
                attempts=1,
                counts={},
                errors=[],
            )
            .returning(sync_run.c.id)
        ).scalar_one()
    return RunRef(int(run_id), 1)


def record_progress(
    conn: Connection, run: RunRef, counts: dict[str, int], errors: list[dict[str, str]]
) -> None:
    """Write the run's counts and errors so far and beat its heartbeat (in the page's
    transaction)."""
    conn.execute(
        sa.update(sync_run).where(_held(run)).values(counts=counts, errors=errors, heartbeat=now())
    )


def finish_run(
    store: SqlStore,
    run: RunRef,
    status: str,
    counts: dict[str, int],
    errors: list[dict[str, str]],
) -> bool:
    """End the run; False when this process no longer holds it (nothing written)."""
    with unit(store) as (conn, _):
        result = conn.execute(
            sa.update(sync_run)
            .where(_held(run))
            .values(status=status, ended_at=now(), counts=counts, errors=errors)
        )
    return bool(result.rowcount)


def runs(store: SqlStore, remote: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, as plain dicts."""
    query = sa.select(sync_run).order_by(sync_run.c.id.desc()).limit(limit)
    if remote is not None:
        query = query.where(sync_run.c.remote == remote)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def run(store: SqlStore, run_id: int) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(sync_run).where(sync_run.c.id == run_id)).first()
    return None if row is None else dict(row._mapping)
