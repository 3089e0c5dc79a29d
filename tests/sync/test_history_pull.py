"""History-based pull against a remote that declares system history.

The Medplum peer has no system history, so the remote here is a second instance
of this service (`fhir-service serve` in its own process, on its own SQLite
database): its CapabilityStatement declares `history-system`, and its history
carries deletes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope
from fhir_service.sync.pull import pull
from fhir_service.sync.push import push
from tests.peer.process import Peer, start_fhir_service
from tests.sync.conftest import load_example, with_client
from tests.sync.helpers import content, local_all

FULL_ACCESS = AccessScope.full()


@pytest.fixture
def service_peer(tmp_path: Path) -> Iterator[Peer]:
    url = f"sqlite:///{tmp_path / 'remote.sqlite3'}"
    upgrade(url)
    server = start_fhir_service(url)
    try:
        yield server
    finally:
        server.stop()


def test_history_pull_copies_updates_and_deletes(
    store: SqlStore, empty_store: SqlStore, service_peer: Peer
) -> None:
    base = service_peer.base_url
    load_example(store)
    pushed = with_client(base, lambda c: push(store, c))
    assert pushed.errors == [] and pushed.modes["transaction"] >= 1

    first = with_client(base, lambda c: pull(empty_store, c))
    assert first.errors == []
    source = local_all(store)
    copy = local_all(empty_store)
    assert sorted(copy) == sorted(source)
    for key, body in source.items():
        assert content(copy[key]) == content(body)

    again = with_client(base, lambda c: pull(empty_store, c))
    assert again.counts["requests"] == 1
    assert again.counts["created"] == again.counts["updated"] == 0

    (rtype, victim), (ctype, changed) = sorted(k for k in source if k[0] == "Observation")[:2]
    assert httpx.delete(f"{base}/{rtype}/{victim}").status_code in (200, 204)
    body = httpx.get(f"{base}/{ctype}/{changed}").json()
    body["status"] = "amended"
    assert httpx.put(f"{base}/{ctype}/{changed}", json=body).status_code == 200

    third = with_client(base, lambda c: pull(empty_store, c))
    assert third.errors == []
    assert third.counts["deleted"] == 1 and third.counts["updated"] == 1
    after = local_all(empty_store)
    assert (rtype, victim) not in after
    assert after[(ctype, changed)]["status"] == "amended"
    assert len(after) == len(source) - 1


def test_everything_pulls_one_patient(
    store: SqlStore, empty_store: SqlStore, service_peer: Peer
) -> None:
    base = service_peer.base_url
    load_example(store)
    with store.begin(FULL_ACCESS) as repo:
        other = repo.create({"resourceType": "Patient", "name": [{"family": "Other"}]})
        repo.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "other's"},
                "subject": {"reference": f"Patient/{other.stored.id}"},
            }
        )
    with_client(base, lambda c: push(store, c))
    source = local_all(store)
    (case_patient,) = [k[1] for k in source if k[0] == "Patient" and k[1] != other.stored.id]
    expected = httpx.get(f"{base}/Patient/{case_patient}/$everything", params={"_count": 1000})
    members = {
        (e["resource"]["resourceType"], e["resource"]["id"]) for e in expected.json()["entry"]
    }

    report = with_client(base, lambda c: pull(empty_store, c, patient=case_patient, page_size=10))

    assert report.errors == []
    copy = local_all(empty_store)
    assert set(copy) == members
    assert ("Patient", other.stored.id) not in copy
    for key in members:
        assert content(copy[key]) == content(source[key])
    assert report.counts["requests"] > 1
