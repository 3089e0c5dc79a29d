"""Sync runs as database-held jobs: queue, claim, heartbeat, give back, recover
(DESIGN.md, "When one machine is not enough"; asynchronous pattern of
https://hl7.org/fhir/R4/async.html).

A run started over HTTP is a ``sync_run`` row with ``params``: ``queued`` -> ``running``
-> ``succeeded`` | ``partial`` | ``failed``. Workers claim the oldest queued run with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (inside SQLite's write transaction
there), so two service processes never carry out the same run; each claim counts one
``attempt``, the fencing token of ``state.RunRef``. A run waits while an older run of the
same remote and direction is queued or running, so pushes (or pulls) to one remote never
overlap. A running run whose heartbeat is older than the stale limit (its process died)
is queued again by ``recover`` and starts over: push and pull resume from the id map and
their checkpoints, so a second attempt adds nothing twice and loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fhir_service.storage.jobs import read_connection, write_connection
from fhir_service.sync.state import RunRef, now, remote_key
from fhir_service.sync.tables import sync_run

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class ClaimedRun:
    """A run this process claimed: what to do, against which remote."""

    ref: RunRef
    direction: str
    remote: str
    patient: str | None
    types: list[str] | None


def scope_of(direction: str, patient: str | None) -> str:
    """The ``scope`` text of a run (as the ``sync`` command records it)."""
    if not patient:
        return "changed"
    return f"{'patient' if direction == 'push' else 'everything'}:{patient}"


class SyncJobs:
    """The queued and running sync runs of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def queue(
        self, remote: str, direction: str, patient: str | None, types: list[str] | None
    ) -> dict[str, Any]:
        """Record a queued run; the run as recorded (before any worker could claim it)."""
        with write_connection(self.engine) as conn, conn.begin():
            row = conn.execute(
                sa.insert(sync_run)
                .values(
                    remote=remote_key(remote),
                    direction=direction,
                    scope=scope_of(direction, patient),
                    status="queued",
                    started_at=now(),
                    counts={},
                    errors=[],
                    params={"patient": patient, "types": types},
                    attempts=0,
                )
                .returning(*sync_run.c)
            ).one()
        return dict(row._mapping)

    def claim(self) -> ClaimedRun | None:
        """Mark the oldest claimable queued run running under a new attempt; None when
        there is none."""
        older = sync_run.alias("older")
        waiting = (
            sa.select(older.c.id)
            .where(
                older.c.remote == sync_run.c.remote,
                older.c.direction == sync_run.c.direction,
                older.c.status.in_(ACTIVE),
                older.c.params.is_not(None),
                older.c.id < sync_run.c.id,
            )
            .exists()
        )
        query = sa.select(sync_run.c.id).where(
            sync_run.c.status == "queued", sync_run.c.params.is_not(None), ~waiting
        )
        with read_connection(self.engine) as conn, conn.begin():
            if conn.execute(query.limit(1)).first() is None:
                return None  # nothing queued: no write transaction (SQLite's write lock)
        query = query.order_by(sync_run.c.id).limit(1).with_for_update(skip_locked=True)
        with write_connection(self.engine) as conn, conn.begin():
            found = conn.execute(query).scalar_one_or_none()
            if found is None:
                return None
            row = conn.execute(
                sa.update(sync_run)
                .where(sync_run.c.id == found, sync_run.c.status == "queued")
                .values(
                    status="running",
                    heartbeat=now(),
                    attempts=sync_run.c.attempts + 1,
                    counts={},
                    errors=[],
                )
                .returning(sync_run)
            ).one()
        return _claimed(row)

    def beat(self, run: RunRef) -> bool:
        """Record that this process still carries the run out; False when it lost it."""
        with write_connection(self.engine) as conn, conn.begin():
            result = conn.execute(
                sa.update(sync_run)
                .where(
                    sync_run.c.id == run.id,
                    sync_run.c.attempts == run.attempt,
                    sync_run.c.status == "running",
                )
                .values(heartbeat=now())
            )
        return bool(result.rowcount)

    def give_back(self, run: RunRef) -> bool:
        """Queue a run this process stops carrying out (it shuts down) for another worker."""
        with write_connection(self.engine) as conn, conn.begin():
            result = conn.execute(
                sa.update(sync_run)
                .where(
                    sync_run.c.id == run.id,
                    sync_run.c.attempts == run.attempt,
                    sync_run.c.status == "running",
                )
                .values(status="queued")
            )
        return bool(result.rowcount)

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running runs whose process stopped beating; how many."""
        limit = now() - stale_after
        with write_connection(self.engine) as conn, conn.begin():
            result = conn.execute(
                sa.update(sync_run)
                .where(
                    sync_run.c.status == "running",
                    sync_run.c.params.is_not(None),
                    sync_run.c.heartbeat < limit,
                )
                .values(status="queued")
            )
        return int(result.rowcount)


def _claimed(row: Any) -> ClaimedRun:
    params = row.params or {}
    return ClaimedRun(
        ref=RunRef(row.id, row.attempts),
        direction=row.direction,
        remote=row.remote,
        patient=params.get("patient"),
        types=params.get("types"),
    )
