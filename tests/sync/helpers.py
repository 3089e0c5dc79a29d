"""Reading both sides of a sync for comparison (direct HTTP to the peer, repository locally),
filling a store, and killing a process mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import httpx

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.tables import resource

FULL_ACCESS = AccessScope.full()


def remote_all(base_url: str, rtype: str) -> list[dict[str, Any]]:
    """Every resource of a type on the remote, read directly over HTTP."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = httpx.get(
            f"{base_url}/{rtype}", params={"_count": 1000, "_offset": offset}, timeout=60
        ).json()
        entries = page.get("entry") or []
        out += [e["resource"] for e in entries]
        offset += len(entries)
        if not entries or offset >= page.get("total", 0):
            return out


def remote_total(base_url: str, rtype: str) -> int:
    page = httpx.get(f"{base_url}/{rtype}", params={"_count": 1}, timeout=30).json()
    return int(page.get("total", 0))


def content(body: dict[str, Any]) -> dict[str, Any]:
    """A resource without id and meta: what must be equal on both sides."""
    return {k: v for k, v in body.items() if k not in ("id", "meta")}


def local_all(store: SqlStore) -> dict[tuple[str, str], dict[str, Any]]:
    """Every current, non-deleted local resource by (type, id)."""
    with store.engine.connect() as conn:
        keys = [
            (r.type, r.id)
            for r in conn.execute(resource.select().where(resource.c.deleted.is_(False)))
        ]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        for rtype, id in keys:
            body = repo.read(rtype, id).resource
            assert body is not None
            out[(rtype, id)] = body
    return out


def fill(store: SqlStore, count: int) -> None:
    with store.begin(FULL_ACCESS) as repo:
        patient = repo.create({"resourceType": "Patient", "name": [{"family": "Resume"}]})
        for i in range(count - 1):
            repo.create(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": f"measurement {i}"},
                    "subject": {"reference": f"Patient/{patient.stored.id}"},
                    "valueInteger": i,
                }
            )


def kill_when(process: subprocess.Popen[bytes], reached: object) -> None:
    """SIGKILL ``process`` as soon as ``reached()`` is true; fail if it ended first."""
    deadline = time.monotonic() + 300
    while not reached():  # type: ignore[operator]
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
