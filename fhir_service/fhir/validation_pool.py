"""Resources validated in worker processes, beside the caller's other work.

Validating a resource against the R4B models is pure Python work (a third of
a transaction's time when it loads a Bundle), so it cannot share one
interpreter with the database work. A ``ValidationPool`` sends batches of
resources to worker processes and answers, per batch, which resource is the
first invalid one; the caller validates that one again itself (``parse_resource``)
to raise the very error an inline validation would have raised. The caller
never waits for a worker: a batch not answered when the caller needs it, or
whose worker died (killed, out of memory; the pool is then replaced), is
validated by the caller itself. A slow or lost worker costs speed, never a check.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from typing import Any

from fhir_service.errors import InvalidResource
from fhir_service.fhir.models import parse_resource


def first_invalid(bodies: Sequence[Any]) -> int:
    """The position of the first body that is not a valid resource, or -1."""
    for position, body in enumerate(bodies):
        try:
            parse_resource(body)
        except InvalidResource:
            return position
    return -1


def _exit_with_parent() -> None:
    """Worker initializer: end this worker as soon as the process that started it ends,
    however it ended (a server killed with SIGKILL leaves no worker behind)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _warm_up() -> None:
    """Import the models a worker needs before the first batch arrives."""
    parse_resource({"resourceType": "Patient"})


class ValidationPool:
    """``workers`` processes validating batches of resources; started by the first batch
    (which the caller, never waiting, validates itself while they start)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a validation pool needs at least one worker")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _running(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn, not fork: the server's threads and open connections stay behind.
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                )
                self._executor.submit(_warm_up)
            return self._executor

    def submit(self, bodies: Sequence[Any]) -> Future[int]:
        """A future of ``first_invalid(bodies)`` computed in a worker."""
        batch = list(bodies)
        try:
            return self._running().submit(first_invalid, batch)
        except (BrokenProcessPool, RuntimeError):  # broken, or closed by another thread
            self._replace()
            return self._running().submit(first_invalid, batch)

    def result(self, future: Future[int], bodies: Sequence[Any]) -> int:
        """The answer of a batch from ``submit``, never waited for: a batch its worker has
        not finished yet (still starting, or busy with earlier ones) is validated here
        instead, as is one whose worker died or that failed there in any other way (here
        it then fails as inline validation would)."""
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is None:
                return future.result()
            if isinstance(error, BrokenProcessPool):
                self._replace()
        else:
            future.cancel()
        return first_invalid(bodies)

    def _replace(self) -> None:
        with self._lock:
            broken, self._executor = self._executor, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (they are started again on the next batch)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@cache
def shared_pool(workers: int) -> ValidationPool:
    """The process's one pool of ``workers`` workers (stores and apps opened one after
    another share it instead of each starting processes of their own)."""
    return ValidationPool(workers)
