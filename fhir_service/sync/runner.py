"""The background worker that carries out sync runs queued over HTTP
(DESIGN.md, "When one machine is not enough").

``SyncRunner.serve()`` is an asyncio task of the service: at every poll (or when woken
by a new run) it claims queued runs one at a time (``jobs.SyncJobs.claim``) and carries
each out in a worker thread with its own event loop, beating the run's heartbeat every
quarter of the stale limit. It stops a run when the heartbeat finds the run no longer
its own, and gives the run back to the queue when the service shuts down. Now and then
it queues again the runs whose heartbeat went stale (their process died).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from fhir_service.errors import FhirServiceError
from fhir_service.storage import SqlStore
from fhir_service.storage.jobs import RECOVER_EVERY, poll_forever
from fhir_service.storage.repository import BeforeWrite
from fhir_service.sync import state
from fhir_service.sync.auth import Auth
from fhir_service.sync.client import FhirClient
from fhir_service.sync.jobs import ClaimedRun, SyncJobs
from fhir_service.sync.pull import pull
from fhir_service.sync.push import push

log = logging.getLogger(__name__)

TICK = 0.2
"""Seconds between looks at a running run's task (done, shutting down, time to beat)."""
STOP_WAIT = 30.0
"""Seconds a stopping service waits for the run under way to be given back."""


class SyncRunner:
    """Carries out the queued sync runs of one store."""

    def __init__(
        self,
        store: SqlStore,
        *,
        poll_interval: float = 1.0,
        stale_after: timedelta = timedelta(minutes=2),
        auth_for: Callable[[str], Auth | None] = lambda remote: None,
        checks: Callable[[], BeforeWrite | None] = lambda: None,
    ) -> None:
        """``auth_for(remote)`` gives each run the authentication for its remote (a new
        object per run: each run has its own event loop); ``checks()`` the validation on
        write of each unit of work a pull writes."""
        self.store = store
        self.checks = checks
        self.auth_for = auth_for
        self.jobs = SyncJobs.of(store)
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    def wake(self) -> None:
        """Look for queued runs now rather than at the next poll."""
        self._wake.set()

    def run_pending(self) -> int:
        """Carry out queued runs until none is left (or the service stops); how many."""
        ran = 0
        self._idle.clear()
        try:
            while not self._stopping.is_set() and (claimed := self.jobs.claim()) is not None:
                asyncio.run(self.carry_out(claimed))
                ran += 1
        finally:
            self._idle.set()
        return ran

    async def carry_out(self, claimed: ClaimedRun) -> None:
        """Run one claimed run to its end, beating its heartbeat meanwhile."""
        work = asyncio.create_task(self._work(claimed))
        beat_every = self.stale_after.total_seconds() / 4
        last_beat = time.monotonic()
        while not work.done():
            await asyncio.wait({work}, timeout=TICK)
            if work.done():
                break
            if self._stopping.is_set():
                self.jobs.give_back(claimed.ref)
                work.cancel()
            elif time.monotonic() - last_beat >= beat_every:
                last_beat = time.monotonic()
                if not self.jobs.beat(claimed.ref):
                    log.warning("sync run %s: taken over, stopping", claimed.ref.id)
                    work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work

    async def _work(self, claimed: ClaimedRun) -> None:
        try:
            async with FhirClient(claimed.remote, auth=self.auth_for(claimed.remote)) as client:
                if claimed.direction == "push":
                    await push(self.store, client, patient=claimed.patient, run=claimed.ref)
                else:
                    await pull(
                        self.store,
                        client,
                        types=claimed.types,
                        patient=claimed.patient,
                        run=claimed.ref,
                        checks=self.checks,
                    )
        except Exception as exc:
            # push and pull end the run as failed themselves; this covers what fails
            # before they start (a bad remote URL), and is a no-op after them.
            log.warning("sync run %s failed: %s", claimed.ref.id, type(exc).__name__)
            message = exc.diagnostics if isinstance(exc, FhirServiceError) else str(exc)
            error = {"error": type(exc).__name__, "message": message}
            state.finish_run(self.store, claimed.ref, "failed", {}, [error])

    async def serve(self) -> None:
        """Carry out and recover runs until the task is cancelled; then the run under way
        is given back to the queue before this returns."""
        try:
            await poll_forever(
                "sync",
                recover=lambda: self.jobs.recover(self.stale_after),
                steps=[self.run_pending],
                wake=self._wake,
                poll_interval=self.poll_interval,
                recover_every=min(RECOVER_EVERY, self.stale_after.total_seconds() / 2),
            )
        finally:
            self._stopping.set()
            await asyncio.to_thread(self._idle.wait, STOP_WAIT)
