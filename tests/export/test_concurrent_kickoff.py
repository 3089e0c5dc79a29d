"""One active export per client, decided by the database: 20 concurrent kick-offs of one
client against a uvicorn-served app give one 202 and 429s
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#response---error-status-1), on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage.job_runner import JobRunner
from fhir_service.storage.jobs import job
from tests.export.conftest import ASYNC, SECRET
from tests.served import serve

BURST = 20


async def _burst(origin: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=origin, timeout=60) as http:
        return await asyncio.gather(
            *(http.get("/fhir/$export", headers=ASYNC) for _ in range(BURST))
        )


def test_concurrent_kick_offs_accept_exactly_one(
    database_url: str, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker is held so that the accepted job stays queued for the whole burst: a job
    # that finished within it would rightly let a later kick-off in.
    monkeypatch.setattr(JobRunner, "claim_into_free_slots", lambda self: 0)
    settings = Settings(database_url=database_url, export_dir=export_dir, deid_secret=SECRET)
    with serve(create_app(settings)) as origin:
        responses = asyncio.run(_burst(origin))
    codes = [r.status_code for r in responses]
    assert codes.count(202) == 1 and codes.count(429) == BURST - 1, codes
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["issue"][0]["code"] == "throttled"
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            statuses = conn.execute(sa.select(job.c.state)).scalars().all()
    finally:
        engine.dispose()
    assert statuses == ["queued"]


def test_the_database_refuses_a_second_active_job(database_url: str) -> None:
    now = datetime.now(UTC)

    def row(job_id: str, state: str) -> dict[str, object]:
        return {
            "id": job_id,
            "kind": "export",
            "state": state,
            "owner": "lab",
            "active_key": "export:lab",
            "local": False,
            "params": {},
            "progress": {},
            "message": state,
            "attempt": 0,
            "created": now,
            "heartbeat": now,
        }

    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(job.insert().values(**row("done", "completed")))
            conn.execute(job.insert().values(**row("old", "completed")))
            conn.execute(job.insert().values(**row("active", "queued")))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(job.insert().values(**row("second", "running")))
    finally:
        engine.dispose()
