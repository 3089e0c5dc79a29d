"""Fixtures of the sync tests: the real peer server (tests/peer), stores and the example case."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope
from fhir_service.sync.client import FhirClient, RetryPolicy
from tests.peer.process import Peer, start_peer

FULL_ACCESS = AccessScope.full()

REPO_ROOT = Path(__file__).resolve().parents[2]
CASE = REPO_ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
ANCHOR = date(2022, 3, 1)
T = TypeVar("T")


@pytest.fixture
def peer() -> Iterator[Peer]:
    """A fresh peer process (empty in-memory store) for each test."""
    server = start_peer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """The local store: SQLite file, then PostgreSQL."""
    opened = SqlStore.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def empty_store(tmp_path: Path) -> Iterator[SqlStore]:
    """A second, empty local store (SQLite file) to pull into."""
    url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    upgrade(url)
    opened = SqlStore.open(url)
    try:
        yield opened
    finally:
        opened.close()


def with_client(base_url: str, work: Callable[[FhirClient], Awaitable[T]]) -> T:
    """Run ``work`` with a fresh client on ``base_url`` in its own event loop."""

    async def main() -> T:
        async with FhirClient(base_url, retry=RetryPolicy(initial=0.05, max_wait=2.0)) as c:
            return await work(c)

    return asyncio.run(main())


def case_bundle() -> dict[str, Any]:
    from mappings.bundle import build_bundle
    from mappings.case.loader import load_case

    return build_bundle(load_case(CASE), ANCHOR, "transaction")


def load_example(store: SqlStore) -> dict[str, Any]:
    """Load the example case into ``store`` as one transaction; return the response Bundle."""
    bundle = case_bundle()
    for entry in bundle["entry"]:
        # Plain creates: conditional-create criteria belong to the load path, not to sync.
        entry["request"].pop("ifNoneExist", None)
    with store.begin(FULL_ACCESS) as repo:
        return repo.transaction(bundle)
