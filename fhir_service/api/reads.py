"""Short reads for async routes: on the event loop when the store allows it, else in the
thread pool (``Store.inline_reads``).

On SQLite a read by id costs tens of microseconds from the page cache, less than handing
it to a worker thread and back; it runs on the loop, on a connection of the loop's own.
On PostgreSQL every statement is a network round trip, which must not hold the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from fhir_service.storage import Repository, Store

T = TypeVar("T")


async def run_read(store: Store, work: Callable[[Repository], T]) -> T:
    """``work`` on a readonly unit of ``store``."""
    if store.inline_reads:
        with store.begin(readonly=True, inline=True) as repo:
            return work(repo)
    return await run_in_threadpool(_in_unit, store, work)


def _in_unit(store: Store, work: Callable[[Repository], T]) -> T:
    with store.begin(readonly=True) as repo:
        return work(repo)
