"""Floors of the serving stack: two ASGI applications served by uvicorn, as ``fhir-service
serve`` is served, by ``bench/concurrency.py`` (https://asgi.readthedocs.io/en/latest/specs/www.html).

- ``app``: answers every request with the same stored Patient's bytes and headers and
  does nothing else (no routing, no database, no security layer, no audit): the reads by
  id per second the HTTP layer alone allows on the machine.
- ``durable_app``: the least a server does that reads from a durable store and keeps an
  audit record of every request, as ours does: the id taken from the path, the stored
  bytes read by primary key from a SQLite file (WAL, ``synchronous=NORMAL``, one
  connection per process), one audit row per request queued for a writer thread that
  commits the queue every 50 ms, the ETag from the stored version. No token, access
  scope, content negotiation, FHIR error handling or security headers. The file is
  ``FLOOR_DATABASE``, made by ``seed_durable``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections import deque
from contextlib import closing
from typing import Any

BODY = json.dumps(
    {
        "resourceType": "Patient",
        "id": "bench-0",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-05T09:50:47.123456+00:00"},
        "name": [{"family": "Family0"}],
    },
    separators=(",", ":"),
).encode()
HEADERS = [
    (b"content-type", b"application/fhir+json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"etag", b'W/"1"'),
    (b"last-modified", b"Sat, 05 Dec 2026 09:50:47 GMT"),
]


async def _lifespan(receive: Any, send: Any) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def seed_durable(path: str, ids: list[str]) -> None:
    """The durable floor's database: one Patient per id, as ``bench/read.py`` seeds ours."""
    with closing(_connect(path)) as connection:
        connection.execute(
            "CREATE TABLE resource (type TEXT, id TEXT, version INTEGER, content TEXT, "
            "PRIMARY KEY (type, id))"
        )
        connection.execute(
            "CREATE TABLE audit (recorded REAL, method TEXT, path TEXT, status INTEGER, "
            "address TEXT)"
        )
        rows = [
            ("Patient", pid, 1, json.dumps({"resourceType": "Patient", "id": pid,
             "meta": {"versionId": "1"}, "name": [{"family": f"Family{i}"}]}))
            for i, pid in enumerate(ids)
        ]  # fmt: skip
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO resource VALUES (?, ?, ?, ?)", rows)
        connection.execute("COMMIT")


_SHAPE = re.compile(r"/fhir/([A-Za-z]{1,64})/([A-Za-z0-9\-.]{1,64})")
_pending: deque[tuple[float, str, str, int, str]] = deque()
_reader: sqlite3.Connection | None = None


def _write_audit(path: str) -> None:
    connection = _connect(path)
    while True:
        time.sleep(0.05)
        batch = [_pending.popleft() for _ in range(len(_pending))]
        if batch:
            connection.execute("BEGIN")
            connection.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?)", batch)
            connection.execute("COMMIT")


async def durable_app(scope: Any, receive: Any, send: Any) -> None:
    global _reader
    if scope["type"] == "lifespan":
        path = os.environ["FLOOR_DATABASE"]
        _reader = _connect(path)
        threading.Thread(target=_write_audit, args=(path,), daemon=True).start()
        await _lifespan(receive, send)
        return
    shape = _SHAPE.fullmatch(scope["path"])
    assert _reader is not None
    row = None
    if shape is not None:
        row = _reader.execute(
            "SELECT version, content FROM resource WHERE type = ? AND id = ?",
            (shape[1], shape[2]),
        ).fetchone()
    status = 200 if row is not None else 404
    body = row[1].encode() if row is not None else b""
    client = scope.get("client")
    _pending.append((time.time(), scope["method"], scope["path"], status, str(client)))
    headers = [(b"content-type", b"application/fhir+json"), (b"content-length", b"%d" % len(body))]
    if row is not None:
        headers.append((b"etag", b'W/"%d"' % row[0]))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
