"""Resources validated in worker processes, beside the caller's other work.

Validating a resource against the R4B models is pure Python work (a third of
a transaction's time when it loads a Bundle), so it cannot share one
interpreter with the database work. A ``ValidationPool`` runs tasks on batches of
resources in worker processes: ``first_invalid`` answers which resource is the
first invalid one; the caller validates that one again itself (``parse_resource``)
to raise the very error an inline validation would have raised. The caller does
not queue behind a worker: a task not answered when the caller needs it, or
whose worker died (killed, out of memory; the pool is then replaced), is
run by the caller itself; only a task a worker has already taken is waited for.
While the workers start (importing the models takes them a second or two), tasks
are not handed to them at all: the caller validates. A slow or lost worker costs
speed, never a check.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from typing import Any, TypeVar

import orjson

from fhir_service.errors import InvalidResource
from fhir_service.fhir.models import parse_resource

T = TypeVar("T")

RUNNING_WAIT_S = 10.0
"""How long ``result`` waits for a task a worker has taken (a hung worker costs this)."""


Bodies = bytes | Sequence[Any]
"""Resources sent to a worker: a JSON array (``packed``), or the list itself."""


def packed(bodies: list[Any]) -> Bodies:
    """``bodies`` as one JSON array (orjson writes and reads it several times faster than
    pickle does the dicts), or the list itself when it holds what JSON cannot."""
    try:
        return orjson.dumps(bodies)
    except TypeError:
        return bodies


def unpacked(bodies: Bodies) -> Sequence[Any]:
    return orjson.loads(bodies) if isinstance(bodies, bytes) else bodies


def first_invalid(bodies: Bodies) -> int:
    """The position of the first body that is not a valid resource, or -1."""
    for position, body in enumerate(unpacked(bodies)):
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
    """``workers`` processes validating batches of resources; started by the first task.
    Until they have imported the models, ``submit`` hands out futures no worker takes,
    which ``result`` answers inline. A task is a module-level function, pickled by name."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a validation pool needs at least one worker")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._warmed: Future[None] | None = None
        self._prepared: dict[Any, Future[Any]] = {}
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
                self._warmed = self._executor.submit(_warm_up)
            return self._executor

    def warmed(self, timeout: float) -> bool:
        """Start the workers if they are not running, and wait up to ``timeout`` seconds
        until they take tasks; True when they do."""
        self._running()
        warmed = self._warmed
        if warmed is None:  # closed meanwhile by another thread
            return False
        wait([warmed], timeout=timeout)
        return warmed.done() and not warmed.cancelled() and warmed.exception() is None

    def prepare(self, key: Any, task: Callable[..., Any], *args: Any) -> None:
        """Run ``task(*args)`` in the worker once (per ``key``, until the workers are
        replaced) before it takes other tasks: what later tasks need loaded (a validator's
        imports and definitions), so that the caller never waits behind it. Until it is
        done, ``submit`` hands out futures no worker takes."""
        executor = self._running()
        with self._lock:
            if key in self._prepared or executor is not self._executor:
                return
            try:
                self._prepared[key] = executor.submit(task, *args)
            except (BrokenProcessPool, RuntimeError):
                return

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        """A future of ``task(*args)`` computed in a worker; while the workers warm up, a
        future that stays pending (a task queued behind their imports would keep the
        caller waiting)."""
        executor = self._running()
        warmed = self._warmed
        if warmed is not None and not warmed.done():
            return Future()
        if not all(f.done() for f in list(self._prepared.values())):
            return Future()
        try:
            return executor.submit(task, *args)
        except (BrokenProcessPool, RuntimeError):  # broken, or closed by another thread
            self._replace(executor)
            self._running()  # new workers start; this task is not queued behind them
            return Future()

    def result(self, future: Future[T], inline: Callable[[], T]) -> T:
        """The answer of a task from ``submit``. A task handed to a worker (running there,
        or among the two or three in its pipe) is waited for, up to ``RUNNING_WAIT_S``:
        the worker finishes it about as soon as the caller could. One still queued here
        (its worker starting, or busy with earlier ones) is withdrawn and answered by
        ``inline()``, as is one whose worker died or that failed there in any other way
        (here it then fails as it would have inline)."""
        if not future.done() and future.running():
            wait([future], timeout=RUNNING_WAIT_S)
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is None:
                return future.result()
            # A worker that died broke its executor: the next ``submit`` replaces it.
        else:
            future.cancel()
        return inline()

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop ``broken`` unless another thread has replaced it already."""
        with self._lock:
            if self._executor is not broken:
                return
            self._executor = None
            self._prepared = {}
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (they are started again on the next batch)."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._warmed = None
            self._prepared = {}
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@cache
def shared_pool(workers: int) -> ValidationPool:
    """The process's one pool of ``workers`` workers (stores and apps opened one after
    another share it instead of each starting processes of their own)."""
    return ValidationPool(workers)
