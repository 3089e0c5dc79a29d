"""Concurrent writers on both databases: conditional creates make one resource, and
versioned updates never lose a write (https://hl7.org/fhir/R4/http.html#ccreate)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fhir_service.errors import PreconditionFailed
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()

T = TypeVar("T")
WORKERS = 20
CRITERIA = "identifier=http://hospital.example/mrn|IVC-0001"


def race(work: Callable[[], T], workers: int = WORKERS) -> list[T | Exception]:
    """Run ``work`` in ``workers`` threads released together; results or raised errors."""
    barrier = threading.Barrier(workers)

    def run() -> T | Exception:
        barrier.wait()
        try:
            return work()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: run(), range(workers)))


def new_patient() -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "IVC-0001"}],
    }


def test_concurrent_conditional_creates_make_one_resource(store: SqlStore) -> None:
    def create() -> str:
        with store.begin(FULL_ACCESS) as repo:
            return repo.create(new_patient(), if_none_exist=CRITERIA).outcome

    outcomes = race(create)
    assert Counter(map(str, outcomes)) == {"created": 1, "existing": WORKERS - 1}
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert len(repo.search("Patient", [])) == 1


def test_concurrent_transactions_with_if_none_exist_make_one_resource(store: SqlStore) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p",
                "resource": new_patient(),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": CRITERIA},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "visit"},
                    "subject": {"reference": "urn:uuid:p"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }

    def load() -> str:
        with store.begin(FULL_ACCESS) as repo:
            return str(repo.transaction(bundle)["entry"][0]["response"]["status"])

    outcomes = race(load)
    assert Counter(map(str, outcomes)) == {"201 Created": 1, "200 OK": WORKERS - 1}
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        patients = repo.search("Patient", [])
        observations = repo.search("Observation", [])
    assert len(patients) == 1
    assert len(observations) == WORKERS
    subjects = {o.resource["subject"]["reference"] for o in observations if o.resource}
    assert subjects == {f"Patient/{patients[0].id}"}


def test_concurrent_conditional_updates_make_one_resource(store: SqlStore) -> None:
    def put() -> str:
        with store.begin(FULL_ACCESS) as repo:
            return repo.conditional_update("Patient", CRITERIA, new_patient()).outcome

    outcomes = race(put)
    assert Counter(map(str, outcomes))["created"] == 1
    assert not [o for o in outcomes if isinstance(o, Exception)]
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert len(repo.search("Patient", [])) == 1


def test_concurrent_if_match_updates_let_exactly_one_win(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(new_patient()).stored.id

    def update() -> int:
        with store.begin(FULL_ACCESS) as repo:
            body = {**new_patient(), "id": id, "gender": "female"}
            return repo.update("Patient", id, body, if_match=1).stored.version_id

    outcomes = race(update, workers=10)
    assert sorted(map(str, outcomes)).count("2") == 1
    assert sum(isinstance(o, PreconditionFailed) for o in outcomes) == 9
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.history("Patient", id).total == 2


def test_concurrent_plain_updates_lose_no_version(store: SqlStore) -> None:
    with store.begin(FULL_ACCESS) as repo:
        id = repo.create(new_patient()).stored.id
    counter = iter(range(1000))
    lock = threading.Lock()

    def update() -> int:
        with lock:
            n = next(counter)
        with store.begin(FULL_ACCESS) as repo:
            body = {**new_patient(), "id": id, "multipleBirthInteger": n}
            return repo.update("Patient", id, body).stored.version_id

    versions = race(update, workers=10)
    assert sorted(v for v in versions if isinstance(v, int)) == list(range(2, 12))


def test_concurrent_transactions_claiming_many_identifiers_in_any_order(store: SqlStore) -> None:
    """Each Bundle claims six identifiers (of two types) in its own order; the claims of
    a Bundle are inserted together, in key order, so no two writers deadlock."""
    values = [("Patient", f"P-{i}") for i in range(3)] + [
        ("Practitioner", f"D-{i}") for i in range(3)
    ]
    counter = iter(range(WORKERS))
    lock = threading.Lock()

    def load() -> list[str]:
        with lock:
            n = next(counter)
        order = random.Random(n).sample(values, len(values))
        entries: list[dict[str, object]] = [
            {
                "fullUrl": f"urn:uuid:{rtype}-{value}",
                "resource": {
                    "resourceType": rtype,
                    "identifier": [{"system": "http://hospital.example/ids", "value": value}],
                },
                "request": {
                    "method": "POST",
                    "url": rtype,
                    "ifNoneExist": f"identifier=http://hospital.example/ids|{value}",
                },
            }
            for rtype, value in order
        ]
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": f"visit {n}"},
                    "subject": {"reference": "urn:uuid:Patient-P-0"},
                    "performer": [{"reference": f"urn:uuid:{t}-{v}"} for t, v in order],
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
        with store.begin(FULL_ACCESS) as repo:
            response = repo.transaction(
                {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            )
        return [e["response"]["status"] for e in response["entry"]]

    outcomes = race(load)
    assert not [o for o in outcomes if isinstance(o, Exception)]
    created = Counter(s for statuses in outcomes if isinstance(statuses, list) for s in statuses)
    assert created == {"201 Created": 6 + WORKERS, "200 OK": 6 * (WORKERS - 1)}
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.counts() == {"Patient": 3, "Practitioner": 3, "Observation": WORKERS}
        ids = {
            f"{s.resource_type}/{s.id}"
            for t in ("Patient", "Practitioner")
            for s in repo.search(t, [])
        }
        performers = {
            p["reference"]
            for o in repo.search("Observation", [])
            if o.resource
            for p in o.resource["performer"]
        }
    assert performers == ids
