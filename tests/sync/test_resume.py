"""Crash safety: a real `fhir-service sync push|pull` process killed with SIGKILL mid-run,
then run again, leaves every resource on both sides exactly once with equal content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.jobs import job
from fhir_service.sync import state
from tests.peer.process import Peer
from tests.sync.helpers import content, fill, kill_when, local_all, remote_all, remote_total

COUNT = 1500


def sync_command(direction: str, remote: str, database_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fhir_service",
        "sync",
        direction,
        "--remote",
        remote,
        "--database-url",
        database_url,
        *extra,
    ]


def test_push_killed_half_way_then_resumed(database_url: str, peer: Peer) -> None:
    store = SqlStore.open(database_url)
    try:
        fill(store, COUNT)
        push = subprocess.Popen(
            sync_command("push", peer.base_url, database_url, "--chunk-size", "10"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kill_when(push, lambda: remote_total(peer.base_url, "Observation") >= COUNT // 3)
        assert remote_total(peer.base_url, "Observation") < COUNT - 1

        done = subprocess.run(
            sync_command("push", peer.base_url, database_url), capture_output=True, timeout=600
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]

        observations = remote_all(peer.base_url, "Observation")
        assert len(observations) == COUNT - 1
        assert len({o["id"] for o in observations}) == COUNT - 1
        assert len(remote_all(peer.base_url, "Patient")) == 1
        mine = local_all(store)
        for remote in observations:
            assert content(remote) == content(mine[("Observation", remote["id"])])
        statuses = [r["status"] for r in state.runs(store, state.remote_key(peer.base_url))]
        assert statuses == ["succeeded", "interrupted"]
    finally:
        store.close()


def test_pull_killed_half_way_then_resumed(database_url: str, peer: Peer, tmp_path: Path) -> None:
    source = SqlStore.open(database_url)
    target_url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    upgrade(target_url)
    target = SqlStore.open(target_url)
    try:
        fill(source, COUNT)
        pushed = subprocess.run(
            sync_command("push", peer.base_url, database_url), capture_output=True, timeout=600
        )
        assert pushed.returncode == 0, pushed.stderr.decode()[-2000:]

        def pulled() -> int:
            with target.engine.connect() as conn:
                query = sa.select(job.c.progress).where(job.c.kind == "sync")
                progress = conn.execute(query).scalars().all()
            return sum(int(p["counts"].get("created", 0)) for p in progress)

        pull = subprocess.Popen(
            sync_command(
                "pull",
                peer.base_url,
                target_url,
                "--types",
                "Patient,Observation",
                "--page-size",
                "20",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kill_when(pull, lambda: pulled() >= COUNT // 3)
        assert len(local_all(target)) < COUNT

        done = subprocess.run(
            sync_command("pull", peer.base_url, target_url, "--types", "Patient,Observation"),
            capture_output=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]

        theirs = local_all(target)
        mine = local_all(source)
        assert sorted(theirs) == sorted(mine)
        for key, body in mine.items():
            assert content(theirs[key]) == content(body)
    finally:
        source.close()
        target.close()
