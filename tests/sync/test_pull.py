"""Pull from the real peer server into local storage: complete, idempotent, conflict-safe."""

from __future__ import annotations

import httpx

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.sync import state
from fhir_service.sync.client import FhirClient
from fhir_service.sync.errors import RemoteRejected
from fhir_service.sync.pull import pull
from fhir_service.sync.push import push
from tests.peer.process import Peer
from tests.sync.conftest import case_bundle, load_example, with_client
from tests.sync.helpers import content, local_all, remote_all

FULL_ACCESS = AccessScope.full()

CASE_TYPES = sorted({e["resource"]["resourceType"] for e in case_bundle()["entry"]})


def test_pull_into_an_empty_database_gives_identical_content(
    store: SqlStore, empty_store: SqlStore, peer: Peer
) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))

    report = with_client(peer.base_url, lambda c: pull(empty_store, c, types=CASE_TYPES))

    assert report.errors == []
    source = local_all(store)
    pulled = local_all(empty_store)
    assert report.counts["created"] == len(source)
    assert sorted(pulled) == sorted(source)
    for key, body in source.items():
        assert content(pulled[key]) == content(body), key


def test_pull_with_nothing_changed_writes_nothing_and_costs_one_search_per_type(
    store: SqlStore, empty_store: SqlStore, peer: Peer
) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))
    with_client(peer.base_url, lambda c: pull(empty_store, c, types=CASE_TYPES))

    again = with_client(peer.base_url, lambda c: pull(empty_store, c, types=CASE_TYPES))

    assert again.counts["created"] == 0 and again.counts["updated"] == 0
    assert again.counts["requests"] == len(CASE_TYPES)


def test_remote_update_is_pulled_and_local_edit_is_not_overwritten(
    store: SqlStore, empty_store: SqlStore, peer: Peer
) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))
    with_client(peer.base_url, lambda c: pull(empty_store, c, types=CASE_TYPES))
    conditions = remote_all(peer.base_url, "Condition")
    changed, guarded = conditions[0], conditions[1]
    for remote in (changed, guarded):
        remote["note"] = [{"text": "reviewed on the remote"}]
        assert (
            httpx.put(f"{peer.base_url}/Condition/{remote['id']}", json=remote).status_code == 200
        )
    with empty_store.begin(FULL_ACCESS) as repo:
        mine = dict(repo.read("Condition", guarded["id"]).resource or {})
        mine["note"] = [{"text": "edited locally"}]
        repo.update("Condition", guarded["id"], mine)

    report = with_client(peer.base_url, lambda c: pull(empty_store, c, types=["Condition"]))

    assert report.counts["updated"] == 1
    assert [e["resource"] for e in report.errors] == [f"Condition/{guarded['id']}"]
    after = local_all(empty_store)
    assert after[("Condition", changed["id"])]["note"][0]["text"] == "reviewed on the remote"
    assert after[("Condition", guarded["id"])]["note"][0]["text"] == "edited locally"


def test_remote_delete_is_found_and_applied(
    store: SqlStore, empty_store: SqlStore, peer: Peer
) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))
    with_client(peer.base_url, lambda c: pull(empty_store, c, types=CASE_TYPES))
    victim = remote_all(peer.base_url, "Observation")[0]
    assert httpx.delete(f"{peer.base_url}/Observation/{victim['id']}").status_code == 200

    report = with_client(
        peer.base_url, lambda c: pull(empty_store, c, types=["Observation"], deletes=True)
    )

    assert report.counts["deleted"] == 1
    assert ("Observation", victim["id"]) not in local_all(empty_store)
    assert len([k for k in local_all(empty_store) if k[0] == "Observation"]) == len(
        remote_all(peer.base_url, "Observation")
    )


def test_everything_on_a_remote_without_it_is_a_clear_error(
    empty_store: SqlStore, peer: Peer
) -> None:
    async def run(c: FhirClient) -> str:
        try:
            await pull(empty_store, c, patient="nobody")
        except RemoteRejected as exc:
            return str(exc)
        return ""

    message = with_client(peer.base_url, run)
    assert "$everything" in message
    assert [r["status"] for r in state.runs(empty_store)] == ["failed"]
