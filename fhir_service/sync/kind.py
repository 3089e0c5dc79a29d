"""Sync runs queued over HTTP as a kind of job on the one job table (``storage.jobs``;
asynchronous pattern of https://hl7.org/fhir/R4/async.html).

The step carries out one claimed push or pull in the runner's thread with its own event
loop, and stops it (the asyncio task is cancelled) as soon as the job's context says it
is no longer this process's to run: cancelled, taken over after a stale heartbeat, or
the service stopping. Push and pull record their counts and errors with each page and
end the run themselves (``state.finish_run``); a run taken over starts again and resumes
from the id map and its checkpoints, so it adds nothing twice and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from fhir_service.errors import FhirServiceError
from fhir_service.storage import SqlStore
from fhir_service.storage.job_runner import JobContext, JobKind
from fhir_service.storage.jobs import Job
from fhir_service.storage.repository import BeforeWrite
from fhir_service.sync import state
from fhir_service.sync.auth import Auth
from fhir_service.sync.client import FhirClient
from fhir_service.sync.pull import pull
from fhir_service.sync.push import push

log = logging.getLogger(__name__)

TICK = 0.2
"""Seconds between looks at whether a run under way is still this process's."""


class SyncRuns:
    """The sync step of one store."""

    def __init__(
        self,
        store: SqlStore,
        *,
        auth_for: Callable[[str], Auth | None] = lambda remote: None,
        checks: Callable[[], BeforeWrite | None] = lambda: None,
    ) -> None:
        """``auth_for(remote)`` gives each run the authentication for its remote (a new
        object per run: each run has its own event loop); ``checks()`` the validation on
        write of each unit of work a pull writes."""
        self.store = store
        self.auth_for = auth_for
        self.checks = checks

    def kind(self, limit: int = 1) -> JobKind:
        """Sync as a kind of job for the process's runner."""
        return JobKind(state.KIND, self.run, limit=limit)

    def run(self, job: Job, context: JobContext) -> None:
        """Carry out one claimed run until it ends or is stopped."""
        asyncio.run(self._watched(job, context))

    async def _watched(self, job: Job, context: JobContext) -> None:
        work = asyncio.create_task(self._work(job, context))
        while not work.done():
            await asyncio.wait({work}, timeout=TICK)
            if not work.done() and context.stopped:
                log.warning("sync run %s: stopped", job.id)
                work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work

    async def _work(self, job: Job, context: JobContext) -> None:
        remote = str(job.params["remote"])
        patient = job.params.get("patient")
        try:
            async with FhirClient(remote, auth=self.auth_for(remote)) as client:
                if job.params["direction"] == "push":
                    await push(self.store, client, patient=patient, run=context.ref)
                else:
                    types = job.params.get("types")
                    await pull(
                        self.store,
                        client,
                        types=types,
                        patient=patient,
                        run=context.ref,
                        checks=self.checks,
                    )
        except Exception as exc:
            # push and pull end the run as failed themselves; this covers what fails
            # before they start (a bad remote URL), and is a no-op after them.
            log.warning("sync run %s failed: %s", job.id, type(exc).__name__)
            message = exc.diagnostics if isinstance(exc, FhirServiceError) else str(exc)
            error = {"error": type(exc).__name__, "message": message}
            state.finish_run(self.store, context.ref, "failed", {}, [error])
