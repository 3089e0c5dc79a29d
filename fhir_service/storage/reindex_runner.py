"""The background worker that reindexes inside the service
(https://hl7.org/fhir/R4/searchparameter.html).

``ReindexRunner.serve()`` is an asyncio task: every poll it makes jobs for changed
SearchParameters (``reindex_run.watch``), claims queued jobs one at a time and runs
each in a worker thread; every 30 s it queues again the jobs whose worker stopped
beating (a process that died), which then resume from their checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.engine import Engine

from fhir_service.storage.jobs import RECOVER_EVERY, poll_forever
from fhir_service.storage.reindex_jobs import ReindexJob, ReindexJobs
from fhir_service.storage.reindex_run import run_job, watch
from fhir_service.storage.store import SqlStore

log = logging.getLogger(__name__)


class ReindexRunner:
    """Runs the reindex jobs of one database."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch: int = 500,
        poll_interval: float = 2.0,
        stale_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.jobs = ReindexJobs(engine)
        self.batch = batch
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self._wake = asyncio.Event()

    @classmethod
    def of(cls, store: SqlStore, *, stale_after: timedelta = timedelta(minutes=2)) -> ReindexRunner:
        """The runner of the store's database."""
        return cls(store.engine, stale_after=stale_after)

    def wake(self) -> None:
        """Look for changes and queued jobs now rather than at the next poll."""
        self._wake.set()

    def run(self, job: ReindexJob) -> str:
        """Run one claimed job; a job that raises is marked failed."""
        try:
            return run_job(self.jobs, job, batch=self.batch)
        except Exception as exc:
            log.warning("reindex %s failed: %s", job.id, type(exc).__name__)
            self.jobs.fail(job.id, type(exc).__name__)
            return "failed"

    def run_pending(self) -> int:
        """Make jobs for changed SearchParameters, then run queued jobs until none is
        left; how many ran."""
        watch(self.jobs)
        ran = 0
        while (job := self.jobs.claim()) is not None:
            self.run(job)
            ran += 1
        return ran

    async def serve(self) -> None:
        """Run and recover jobs until the task is cancelled."""
        await poll_forever(
            "reindex",
            recover=lambda: self.jobs.recover(self.stale_after),
            steps=[self.run_pending],
            wake=self._wake,
            poll_interval=self.poll_interval,
            recover_every=min(RECOVER_EVERY, self.stale_after.total_seconds() / 2),
        )
