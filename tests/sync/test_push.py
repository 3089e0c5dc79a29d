"""Push to the real peer server: create, no duplicates, update, conflicts, references."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.sync.client import FhirClient
from fhir_service.sync.push import push
from tests.peer.process import Peer
from tests.sync.conftest import case_bundle, load_example, with_client
from tests.sync.helpers import remote_all

FULL_ACCESS = AccessScope.full()


def case_types() -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in case_bundle()["entry"]:
        rtype = entry["resource"]["resourceType"]
        counts[rtype] = counts.get(rtype, 0) + 1
    return counts


def test_push_example_case_twice_creates_each_resource_once(store: SqlStore, peer: Peer) -> None:
    load_example(store)
    expected = case_types()

    first = with_client(peer.base_url, lambda c: push(store, c))
    assert first.errors == []
    assert first.counts["created"] == sum(expected.values())
    assert first.modes["transaction"] >= 1

    second = with_client(peer.base_url, lambda c: push(store, c))
    assert second.counts["created"] == 0
    assert second.counts["updated"] == 0

    for rtype, count in expected.items():
        assert len(remote_all(peer.base_url, rtype)) == count, rtype


def test_local_change_updates_the_remote_with_a_new_version(store: SqlStore, peer: Peer) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))
    with store.begin(FULL_ACCESS) as repo:
        patient = repo.search("Patient", [])[0]
    before = httpx.get(f"{peer.base_url}/Patient/{patient.id}").json()
    body = dict(patient.resource or {})
    body["gender"] = "other" if body.get("gender") != "other" else "unknown"
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", patient.id, body)

    report = with_client(peer.base_url, lambda c: push(store, c))

    assert report.counts["updated"] == 1
    assert report.errors == []
    after = httpx.get(f"{peer.base_url}/Patient/{patient.id}").json()
    assert after["gender"] == body["gender"]
    assert after["meta"]["versionId"] != before["meta"]["versionId"]
    assert len(remote_all(peer.base_url, "Patient")) == 1


def test_remote_change_is_reported_not_overwritten(store: SqlStore, peer: Peer) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))
    with store.begin(FULL_ACCESS) as repo:
        patient = repo.search("Patient", [])[0]
    remote = httpx.get(f"{peer.base_url}/Patient/{patient.id}").json()
    remote["birthDate"] = "1901-01-01"
    assert httpx.put(f"{peer.base_url}/Patient/{patient.id}", json=remote).status_code == 200
    body = dict(patient.resource or {})
    body["gender"] = "other" if body.get("gender") != "other" else "unknown"
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", patient.id, body)

    report = with_client(peer.base_url, lambda c: push(store, c))

    assert report.counts["conflict"] == 1
    assert [e["resource"] for e in report.errors] == [f"Patient/{patient.id}"]
    after = httpx.get(f"{peer.base_url}/Patient/{patient.id}").json()
    assert after["birthDate"] == "1901-01-01"
    assert after["gender"] == remote["gender"]

    again = with_client(peer.base_url, lambda c: push(store, c))
    assert again.counts["conflict"] == 1 and again.counts["updated"] == 0
    assert httpx.get(f"{peer.base_url}/Patient/{patient.id}").json() == after


def test_references_point_at_remote_resources(store: SqlStore, peer: Peer) -> None:
    load_example(store)
    with_client(peer.base_url, lambda c: push(store, c))
    conditions = remote_all(peer.base_url, "Condition")
    assert conditions
    for condition in conditions:
        reference = condition["subject"]["reference"]
        assert httpx.get(f"{peer.base_url}/{reference}").status_code == 200


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_batch_or_single_requests_when_transactions_are_not_used(
    store: SqlStore, peer: Peer, mode: str
) -> None:
    load_example(store)

    async def run(c: FhirClient) -> Any:
        return await push(store, c, modes=(mode,))

    report = with_client(peer.base_url, run)
    assert report.errors == []
    assert report.modes[mode] >= 1 and report.modes["transaction"] == 0
    assert report.counts["created"] == len(case_bundle()["entry"])
    assert len(remote_all(peer.base_url, "Patient")) == 1
    again = with_client(peer.base_url, run)
    assert again.counts["created"] == again.counts["updated"] == 0


def test_remote_assigned_ids_are_mapped_and_references_rewritten(
    store: SqlStore, peer: Peer
) -> None:
    load_example(store)

    async def post_all(c: FhirClient) -> Any:
        return await push(store, c, client_ids=False, chunk_size=200)

    first = with_client(peer.base_url, post_all)
    assert first.errors == [] and first.counts["created"] == len(case_bundle()["entry"])
    with store.begin(FULL_ACCESS) as repo:
        patient = repo.search("Patient", [])[0]
    (remote_patient,) = remote_all(peer.base_url, "Patient")
    assert remote_patient["id"] != patient.id
    for condition in remote_all(peer.base_url, "Condition"):
        assert condition["subject"]["reference"] == f"Patient/{remote_patient['id']}"

    body = dict(patient.resource or {})
    body["gender"] = "other" if body.get("gender") != "other" else "unknown"
    with store.begin(FULL_ACCESS) as repo:
        repo.update("Patient", patient.id, body)
    second = with_client(peer.base_url, post_all)
    assert second.counts["updated"] == 1 and second.counts["created"] == 0
    (after,) = remote_all(peer.base_url, "Patient")
    assert after["id"] == remote_patient["id"] and after["gender"] == body["gender"]
