"""Pull from a remote whose CapabilityStatement lists no resource types.

``rest.resource`` is 0..* (https://hl7.org/fhir/R4/capabilitystatement.html): the Medplum
router of tests/peer started with ``--capabilities bare`` declares only transaction and
batch. `fhir-service sync pull` into an empty database must still pull every type this
server serves (or those ``--types`` names), and never exit 0 having pulled nothing. Run
against the pinned router (4.5.2) and the current one (5.2.x, tests/peer/medplum-5), into
a SQLite file and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from fhir_service.api.routes.metadata import resource_types
from fhir_service.storage import SqlStore
from fhir_service.sync.capabilities import served_types
from fhir_service.sync.push import push
from tests.peer.process import ROUTER_4, ROUTER_5, Peer, start_peer
from tests.sync.conftest import case_bundle, load_example, with_client
from tests.sync.helpers import content, local_all, remote_all

CASE_TYPES = sorted({e["resource"]["resourceType"] for e in case_bundle()["entry"]})


@pytest.fixture(params=[ROUTER_4, ROUTER_5], ids=["medplum-4.5.2", "medplum-5.2"])
def bare_peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """The peer with a CapabilityStatement that lists no resource types."""
    server = start_peer(router=request.param, capabilities="bare")
    try:
        yield server
    finally:
        server.stop()


def sync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_service", "sync", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_peer_lists_no_types(bare_peer: Peer) -> None:
    statement = httpx.get(f"{bare_peer.base_url}/metadata", timeout=30).json()
    (rest,) = statement["rest"]
    assert "resource" not in rest
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}


def test_pull_into_an_empty_database_pulls_every_type(
    empty_store: SqlStore, database_url: str, bare_peer: Peer
) -> None:
    load_example(empty_store)
    pushed = with_client(bare_peer.base_url, lambda c: push(empty_store, c))
    assert pushed.errors == [] and pushed.modes["transaction"] > 0  # POSTs: remote ids

    done = sync("pull", "--remote", bare_peer.base_url, "--database-url", database_url)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "nothing to do" not in done.stderr
    assert f"types {len(served_types())}" in done.stderr
    target = SqlStore.open(database_url)
    try:
        pulled = local_all(target)
    finally:
        target.close()
    remote = {
        (rtype, body["id"]): body
        for rtype in CASE_TYPES
        for body in remote_all(bare_peer.base_url, rtype)
    }
    assert len(remote) == len(case_bundle()["entry"])
    assert sorted(pulled) == sorted(remote)
    for key, body in remote.items():
        assert content(pulled[key]) == content(body), key


def test_types_names_what_is_pulled(
    empty_store: SqlStore, database_url: str, bare_peer: Peer
) -> None:
    load_example(empty_store)
    with_client(bare_peer.base_url, lambda c: push(empty_store, c))

    done = sync(
        "pull",
        "--remote",
        bare_peer.base_url,
        "--database-url",
        database_url,
        "--types",
        "Condition,Patient",
    )

    assert done.returncode == 0, done.stderr[-2000:]
    target = SqlStore.open(database_url)
    try:
        pulled = local_all(target)
    finally:
        target.close()
    assert {k[0] for k in pulled} == {"Condition", "Patient"}
    assert len(pulled) == len(remote_all(bare_peer.base_url, "Condition")) + 1

    unknown = sync(
        "pull",
        "--remote",
        bare_peer.base_url,
        "--database-url",
        database_url,
        "--types",
        "Patient,NoSuchType",
    )
    assert unknown.returncode == 2
    assert "NoSuchType" in unknown.stderr


def test_served_types_are_those_of_the_capability_statement() -> None:
    assert served_types() == resource_types()
