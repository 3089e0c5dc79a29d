"""What the background job tables (``export_job``, ``reindex_job``, ``sync_run``) and their
workers share.

Each worker is one asyncio task per process: it polls its table, claims queued jobs
(``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, inside SQLite's write
transaction), runs them in a worker thread, and now and then queues again the
running jobs whose heartbeat stopped (their process died), so any replica picks them
up (DESIGN.md, "When one machine is not enough").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine

from fhir_service.storage.engine import BEGIN_OPTION

log = logging.getLogger(__name__)

RECOVER_EVERY = 30.0
"""Seconds between looks for jobs whose worker stopped beating."""


def read_connection(engine: Engine) -> Connection:
    """A connection whose transactions only read (deferred on SQLite)."""
    return engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"})


def write_connection(engine: Engine) -> Connection:
    """A connection whose transactions write (SQLite's write lock taken at BEGIN)."""
    return engine.connect().execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


async def poll_forever(
    name: str,
    *,
    recover: Callable[[], object],
    steps: list[Callable[[], object]],
    wake: asyncio.Event,
    poll_interval: float,
    recover_every: float = RECOVER_EVERY,
) -> None:
    """Run ``recover`` every ``recover_every`` seconds and ``steps`` at every poll (or as
    soon as ``wake`` is set), each in a worker thread, until the task is cancelled. A
    step that raises is logged by its type only and tried again at the next poll."""
    last_recover = -math.inf
    while True:
        try:
            if time.monotonic() - last_recover >= recover_every:
                await asyncio.to_thread(recover)
                last_recover = time.monotonic()
            for step in steps:
                await asyncio.to_thread(step)
        except Exception as exc:
            log.error("%s worker: %s", name, type(exc).__name__)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_interval)
