"""Push and pull through a fault-injecting proxy in front of the real peer server.

Under dropped connections, delays, 429/503 with Retry-After and responses cut
mid-way, both directions still converge: every resource once on the remote, and
the pulled copy equal to the source.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.sync.client import FhirClient, RetryPolicy
from fhir_service.sync.pull import pull
from fhir_service.sync.push import RunReport, push
from tests.peer.process import Peer
from tests.sync.conftest import case_bundle, load_example
from tests.sync.fault_proxy import FaultProxy
from tests.sync.helpers import content, local_all, remote_all

FULL_ACCESS = AccessScope.full()

CASE_TYPES = sorted({e["resource"]["resourceType"] for e in case_bundle()["entry"]})


@pytest.fixture(params=["drop", "delay", "429", "503", "cut"])
def proxy(request: pytest.FixtureRequest, peer: Peer) -> Iterator[FaultProxy]:
    origin = peer.base_url.rsplit("/fhir", 1)[0]
    running = FaultProxy(origin, request.param).start()
    try:
        yield running
    finally:
        running.stop()


def run(url: str, work: object) -> tuple[RunReport, int]:
    import asyncio

    async def main() -> tuple[RunReport, int]:
        async with FhirClient(url, retry=RetryPolicy(initial=0.05, max_wait=2.0)) as client:
            report = await work(client)  # type: ignore[operator]
            return report, client.retries

    return asyncio.run(main())


def test_push_and_pull_converge_under_faults(
    sqlite_url: str, empty_store: SqlStore, peer: Peer, proxy: FaultProxy
) -> None:
    store = SqlStore.open(sqlite_url)
    try:
        load_example(store)
        url = f"http://127.0.0.1:{proxy.port}/fhir"
        first, retries = run(url, lambda c: push(store, c, chunk_size=10))
        assert first.errors == []
        with store.begin(FULL_ACCESS) as repo:
            patient = repo.search("Patient", [])[0]
            body = dict(patient.resource or {})
            body["gender"] = "unknown" if body.get("gender") != "unknown" else "other"
            repo.update("Patient", patient.id, body)
        second, more = run(url, lambda c: push(store, c, chunk_size=10))
        assert second.errors == [] and second.counts["updated"] == 1
        pulled, pull_retries = run(
            url, lambda c: pull(empty_store, c, types=CASE_TYPES, page_size=7)
        )
        assert pulled.errors == []

        assert proxy.faults > 0
        if proxy.kind != "delay":
            assert retries + more + pull_retries >= proxy.faults
        source = local_all(store)
        for rtype in CASE_TYPES:
            remote = remote_all(peer.base_url, rtype)
            mine = {k: v for k, v in source.items() if k[0] == rtype}
            assert sorted(r["id"] for r in remote) == sorted(k[1] for k in mine), rtype
            for r in remote:
                assert content(r) == content(mine[(rtype, r["id"])])
        copy = local_all(empty_store)
        assert sorted(copy) == sorted(source)
        for key, body in source.items():
            assert content(copy[key]) == content(body)
    finally:
        store.close()
