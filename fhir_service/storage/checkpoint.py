"""WAL checkpoints of a SQLite database in a background thread
(https://www.sqlite.org/wal.html#ckpt, https://www.sqlite.org/pragma.html#pragma_wal_checkpoint).

In WAL mode a commit appends the pages it changed to the write-ahead log; a checkpoint
copies them into the database file and syncs it. SQLite runs that checkpoint in the
commit that pushes the log past ``wal_autocheckpoint`` pages, so one write request in
several waited for it (tens of milliseconds, growing with the database). Here every
write commit wakes a thread that runs a PASSIVE checkpoint on its own connection, beside
the next requests: it waits for no lock and is waited for by none. The commits' own
automatic checkpoint stays as the backstop should this thread fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.02
"""After a commit wakes it, the thread waits this long, so that a run of commits is
copied by one checkpoint: a page that several of them wrote is copied once."""


class Checkpointer:
    """A daemon thread checkpointing the WAL of the SQLite file at ``path`` after commits."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A write transaction committed: its pages are in the log."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread after its current checkpoint."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            while True:
                self._wake.wait()
                self._wake.clear()  # before the stop check: a close() now is seen below
                if self._stop.wait(SETTLE_SECONDS):
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next commit's wake-up tries again
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
        finally:
            conn.close()
