"""WAL checkpoints of the SQLite store run in a background thread, not in the commits
(``fhir_service.storage.checkpoint``)."""

from __future__ import annotations

import os
import threading
import time

from sqlalchemy.engine import make_url

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()

PATIENTS = 200  # about 300 log pages: far below the commits' own threshold (10,000)


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]


def test_committed_pages_reach_the_database_file_without_a_commit_checkpointing(
    sqlite_url: str,
) -> None:
    """The commits stay below ``wal_autocheckpoint``, so without the thread the pages would
    stay in the log until the last connection closes and the file keep its size."""
    path = make_url(sqlite_url).database
    assert path is not None
    store = SqlStore.open(sqlite_url)
    try:
        before = os.path.getsize(path)
        with store.begin(FULL_ACCESS) as repo:
            for i in range(PATIENTS):
                repo.create({"resourceType": "Patient", "name": [{"family": f"Wal{i}"}]})
        assert os.path.getsize(f"{path}-wal") > 0
        deadline = time.monotonic() + 30
        while os.path.getsize(path) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(path) > before
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            assert repo.counts()["Patient"] == PATIENTS
    finally:
        store.close()


def test_closing_the_store_stops_its_checkpoint_thread(sqlite_url: str) -> None:
    already = set(_checkpoint_threads())
    store = SqlStore.open(sqlite_url)
    started = set(_checkpoint_threads()) - already
    assert len(started) == 1
    with store.begin(FULL_ACCESS) as repo:
        repo.create({"resourceType": "Patient"})
    store.close()
    assert not any(t.is_alive() for t in started)


def test_a_postgresql_store_has_no_checkpoint_thread(postgres_url: str) -> None:
    already = set(_checkpoint_threads())
    store = SqlStore.open(postgres_url)
    try:
        assert set(_checkpoint_threads()) == already
    finally:
        store.close()


def test_close_right_after_a_commit_never_hangs(sqlite_url: str) -> None:
    """``close`` may come at any point of the thread's loop, also while it settles after
    a commit's wake-up (an early version then waited for a wake-up that never came)."""
    for i in range(40):
        store = SqlStore.open(sqlite_url)
        with store.begin(FULL_ACCESS) as repo:
            repo.create({"resourceType": "Patient", "name": [{"family": f"Close{i}"}]})
        if i % 2:
            time.sleep(0.02)  # close while the thread settles or checkpoints
        closing = threading.Thread(target=store.close)
        closing.start()
        closing.join(timeout=30)
        assert not closing.is_alive(), f"close() hung on round {i}"
