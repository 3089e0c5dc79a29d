"""Sync runs as database-held jobs: queue, claim, heartbeat, give back, recover
(DESIGN.md, "When one machine is not enough"; asynchronous pattern of
https://hl7.org/fhir/R4/async.html).

A run started over HTTP is a ``sync_run`` row with ``params``: ``queued`` -> ``running``
-> ``succeeded`` | ``partial`` | ``failed``. ``SyncJobs`` is storage's ``SyncRuns``
(``fhir_service.storage.sync_runs``: claiming with ``SELECT ... FOR UPDATE SKIP LOCKED``,
one run at a time per remote and direction, the attempt as fencing token, recovery of
runs whose heartbeat went stale) with the run's parameters and scope text made here. A
recovered run starts over: push and pull resume from the id map and their checkpoints,
so a second attempt adds nothing twice and loses nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhir_service.storage import SqlStore
from fhir_service.storage.sync_runs import ClaimedRun, RunRef, SyncRuns
from fhir_service.sync.state import remote_key

__all__ = ["ClaimedRun", "SyncJobs", "scope_of"]


def scope_of(direction: str, patient: str | None) -> str:
    """The ``scope`` text of a run (as the ``sync`` command records it)."""
    if not patient:
        return "changed"
    return f"{'patient' if direction == 'push' else 'everything'}:{patient}"


class SyncJobs:
    """The queued and running sync runs of one database."""

    def __init__(self, runs: SyncRuns) -> None:
        self.runs = runs

    @classmethod
    def of(cls, store: SqlStore) -> SyncJobs:
        """The jobs on the store's database."""
        return cls(SyncRuns.of(store))

    def queue(
        self, remote: str, direction: str, patient: str | None, types: list[str] | None
    ) -> dict[str, Any]:
        """Record a queued run; the run as recorded (before any worker could claim it)."""
        return self.runs.queue(
            remote_key(remote),
            direction,
            scope_of(direction, patient),
            {"patient": patient, "types": types},
        )

    def claim(self) -> ClaimedRun | None:
        """Mark the oldest claimable queued run running under a new attempt; None when
        there is none."""
        return self.runs.claim()

    def beat(self, run: RunRef) -> bool:
        """Record that this process still carries the run out; False when it lost it."""
        return self.runs.beat(run)

    def give_back(self, run: RunRef) -> bool:
        """Queue a run this process stops carrying out (it shuts down) for another worker."""
        return self.runs.give_back(run)

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running runs whose process stopped beating; how many."""
        return self.runs.recover(stale_after)
