"""The one job runner of a service process: it runs every registered kind of job from the
``job`` table (``storage.jobs``), each kind with its own concurrency limit
(asynchronous pattern of https://hl7.org/fhir/R4/async.html).

``JobRunner.serve()`` is an asyncio task. At every poll (or when woken) it runs each
kind's ``maintain`` step (reindex: jobs for changed SearchParameters; export: expired
files), claims queued jobs of the kinds with a free slot and runs each in a thread of
its own. While a job runs, the runner beats its heartbeat every quarter of the stale
limit and looks at every poll whether the job is still its own: when it was cancelled
or taken over, the job's ``JobContext`` reports ``stopped`` and the kind's step ends at
its next look. Now and then it queues again the jobs whose heartbeat went stale (their
process died), so any process takes them over. When the task is cancelled (the service
stops) the jobs under way are stopped and given back to the queue.

A kind supplies only its step (``JobKind.run``: do the work, report progress with
``JobContext.report``, end with ``complete`` or ``fail``) and its progress; a step that
raises fails its job with the error's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_service.errors import FhirServiceError
from fhir_service.storage.jobs import Job, JobRef, Jobs

log = logging.getLogger(__name__)

RECOVER_EVERY = 30.0
"""Seconds between looks for jobs whose runner stopped beating."""
STOP_WAIT = 30.0
"""Seconds a stopping service waits for the jobs under way to stop."""


class JobContext:
    """What a kind's step has of its job: progress, end, and whether to stop."""

    def __init__(self, jobs: Jobs, job: Job) -> None:
        self.jobs = jobs
        self.job = job
        self.ref: JobRef = job.ref
        self._stop = threading.Event()
        self.last_beat = time.monotonic()

    @property
    def stopped(self) -> bool:
        """The job was cancelled, taken over, or the service stops: end without a result."""
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def report(self, message: str, progress: dict[str, Any] | None = None) -> bool:
        """Record progress; False (and ``stopped``) when the job is no longer this
        process's to run."""
        if self.stopped:
            return False
        if not self.jobs.report(self.ref, message, progress):
            self.stop()
            return False
        self.last_beat = time.monotonic()
        return True

    def complete(
        self,
        result: dict[str, Any] | None = None,
        *,
        message: str = "completed",
        progress: dict[str, Any] | None = None,
        expires: datetime | None = None,
    ) -> bool:
        """End the job with its result; False when it is no longer this process's."""
        return self.jobs.complete(
            self.ref, result, message=message, progress=progress, expires=expires
        )

    def fail(
        self,
        error: str,
        *,
        result: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
        expires: datetime | None = None,
    ) -> bool:
        """End the job as failed; False when it is no longer this process's."""
        return self.jobs.fail(self.ref, error, result=result, progress=progress, expires=expires)


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its name, its step, how many may run at once in one process, and
    an optional step the runner takes at every poll."""

    name: str
    run: Callable[[Job, JobContext], None]
    limit: int = 1
    maintain: Callable[[], object] | None = None


def error_text(exc: BaseException) -> str:
    """What a failed job shows of the error that ended it."""
    return exc.diagnostics if isinstance(exc, FhirServiceError) else type(exc).__name__


class JobRunner:
    """Runs the jobs of the registered kinds on one database."""

    def __init__(
        self,
        jobs: Jobs,
        kinds: list[JobKind],
        *,
        poll_interval: float = 1.0,
        stale_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.jobs = jobs
        self.kinds = {kind.name: kind for kind in kinds}
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self._running: dict[str, JobContext] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stepping = threading.Lock()
        self._stopping = threading.Event()

    def wake(self) -> None:
        """Look for queued jobs now rather than at the next poll."""
        if self._wake is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to wake
                self._loop.call_soon_threadsafe(self._wake.set)

    def run_claimed(self, job: Job, context: JobContext | None = None) -> JobContext:
        """Run one claimed job in this thread to its end (or until it is stopped)."""
        context = context or JobContext(self.jobs, job)
        with self._lock:
            self._running[job.id] = context
        try:
            self.kinds[job.kind].run(job, context)
        except Exception as exc:
            log.warning("%s job %s failed: %s", job.kind, job.id, type(exc).__name__)
            context.fail(error_text(exc))
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        return context

    def run_pending(self) -> int:
        """Run queued jobs of the registered kinds one after another in this thread,
        until none is left; how many ran."""
        ran = 0
        self.maintain()
        while (job := self.jobs.claim(list(self.kinds))) is not None:
            self.run_claimed(job)
            ran += 1
        return ran

    def maintain(self) -> None:
        """Each kind's step of every poll; one that raises is logged and tried again."""
        for kind in self.kinds.values():
            if kind.maintain is None:
                continue
            try:
                kind.maintain()
            except Exception as exc:
                log.error("%s jobs: %s", kind.name, type(exc).__name__)

    def _free_kinds(self) -> list[str]:
        with self._lock:
            busy = [c.job.kind for c in self._running.values()]
        return [k.name for k in self.kinds.values() if busy.count(k.name) < k.limit]

    def _start(self, job: Job) -> None:
        context = JobContext(self.jobs, job)

        def work() -> None:
            try:
                self.run_claimed(job, context)
            finally:
                self.wake()

        thread = threading.Thread(target=work, name=f"job-{job.kind}-{job.id[:8]}", daemon=True)
        with self._lock:
            self._running[job.id] = context
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def claim_into_free_slots(self) -> int:
        """Claim queued jobs for every kind with a free slot and start them; how many."""
        started = 0
        while not self._stopping.is_set() and (free := self._free_kinds()):
            job = self.jobs.claim(free)
            if job is None:
                break
            self._start(job)
            started += 1
        return started

    def watch_running(self, beat_every: float) -> None:
        """Stop the jobs that are no longer this process's; beat the others when due."""
        with self._lock:
            contexts = list(self._running.values())
        for context in contexts:
            if time.monotonic() - context.last_beat < beat_every and self.jobs.holds(context.ref):
                continue
            if time.monotonic() - context.last_beat >= beat_every:
                context.last_beat = time.monotonic()
                if self.jobs.beat(context.ref):
                    continue
            context.stop()

    def _step(self, last_recover: float, recover_every: float, beat_every: float) -> float:
        with self._stepping:
            if self._stopping.is_set():
                return last_recover
            if time.monotonic() - last_recover >= recover_every:
                self.jobs.recover(self.stale_after)
                last_recover = time.monotonic()
            self.watch_running(beat_every)
            self.maintain()
            self.claim_into_free_slots()
        return last_recover

    async def serve(self) -> None:
        """Run, watch and recover jobs until the task is cancelled; then stop the jobs
        under way and give them back to the queue."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        stale = self.stale_after.total_seconds()
        recover_every = min(RECOVER_EVERY, stale / 2)
        beat_every = stale / 4
        last_recover = -math.inf
        try:
            while True:
                try:
                    last_recover = await asyncio.to_thread(
                        self._step, last_recover, recover_every, beat_every
                    )
                except Exception as exc:
                    log.error("job runner: %s", type(exc).__name__)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(self.poll_interval, beat_every))
        finally:
            self._stopping.set()
            await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        with self._stepping:  # the step under way (it claims no more) ends first
            pass
        with self._lock:
            contexts = list(self._running.values())
        for context in contexts:
            context.stop()
        deadline = time.monotonic() + STOP_WAIT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for context in contexts:
            self.jobs.give_back(context.ref)
