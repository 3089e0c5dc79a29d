"""`fhir-service sync push|pull|status` end to end against the real peer."""

from __future__ import annotations

import json
import subprocess
import sys

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from tests.peer.process import Peer
from tests.sync.conftest import CASE, case_bundle, load_example
from tests.sync.helpers import remote_all

FULL_ACCESS = AccessScope.full()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_service", "sync", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_push_one_case_then_status(sqlite_url: str, peer: Peer) -> None:
    store = SqlStore.open(sqlite_url)
    try:
        load_example(store)
        with store.begin(FULL_ACCESS) as repo:
            repo.create({"resourceType": "Patient", "name": [{"family": "Other"}]})
    finally:
        store.close()

    pushed = cli(
        "push", "--remote", peer.base_url, "--database-url", sqlite_url, "--case", str(CASE)
    )
    assert pushed.returncode == 0, pushed.stderr
    assert "succeeded" in pushed.stderr

    patients = remote_all(peer.base_url, "Patient")
    assert len(patients) == 1 and patients[0]["name"][0].get("family") != "Other"
    conditions = [e for e in case_bundle()["entry"] if e["resource"]["resourceType"] == "Condition"]
    assert len(remote_all(peer.base_url, "Condition")) == len(conditions)

    status = cli("status", "--database-url", sqlite_url, "--json")
    assert status.returncode == 0
    (run,) = json.loads(status.stdout)
    assert run["direction"] == "push" and run["status"] == "succeeded"
    assert run["scope"].startswith("patient:")
    assert run["counts"]["created"] == len(case_bundle()["entry"])
    assert run["ended_at"] is not None


def test_without_a_remote_the_command_says_so(sqlite_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fhir_service", "sync", "pull", "--database-url", sqlite_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "FHIR_SERVICE_REMOTE_URL": ""},
    )
    assert result.returncode == 2
    assert "no remote" in result.stderr
