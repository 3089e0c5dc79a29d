"""Background reindex jobs: made for changed SearchParameters and by ``$reindex``, run
by the worker inside the service, claimed once, resumable from their checkpoint
(https://hl7.org/fhir/R4/searchparameter.html)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from fhir_service.search.query import parse_search
from fhir_service.storage import SqlStore, reindex_run
from fhir_service.storage.access import AccessScope
from fhir_service.storage.jobs import Jobs, job
from fhir_service.storage.reindex_run import KIND, ReindexJob, run_job, watch
from fhir_service.storage.search_tables import SEARCH_TABLES
from tests.search.helpers import ids, search
from tests.security.conftest import Smart, make_smart

FULL_ACCESS = AccessScope.full()


def _view(jobs: Jobs, job_id: str) -> ReindexJob:
    found = jobs.get(job_id)
    assert found is not None
    return ReindexJob.of(found)


__all__ = ["make_smart"]

Post = Callable[[dict[str, Any]], dict[str, Any]]
EYE = "http://example.org/fhir/StructureDefinition/eye-colour"
SP_URL = "http://example.org/fhir/SearchParameter/eye-colour"


def _patient(colour: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "extension": [{"url": EYE, "valueCode": colour}]}


def _search_parameter(base: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "SearchParameter",
        "url": SP_URL,
        "name": "EyeColour",
        "status": "active",
        "description": "Eye colour of the patient",
        "code": "eye-colour",
        "base": base,
        "type": "token",
        "expression": f"Patient.extension('{EYE}').value",
    }


def _values(parameters: dict[str, Any]) -> dict[str, Any]:
    """name -> value of a Parameters resource (the last one for repeated names)."""
    found = {}
    for item in parameters["parameter"]:
        found[item["name"]] = next(v for k, v in item.items() if k.startswith("value"))
    return found


def _wait(client: TestClient, url: str) -> dict[str, Any]:
    """Poll a job's status URL until it has ended (200)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = client.get(url)
        if response.status_code == 200:
            return _values(response.json())
        assert response.status_code == 202, response.text
        assert response.headers["X-Progress"]
        time.sleep(0.1)
    raise AssertionError(f"{url} did not end")


def _jobs(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/fhir/$reindex")
    assert response.status_code == 200, response.text
    return [
        {
            part["name"]: next(v for k, v in part.items() if k.startswith("value"))
            for part in job["part"]
        }
        for job in response.json().get("parameter", [])
    ]


def _job_for(client: TestClient, reason: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = [j for j in _jobs(client) if j["reason"] == reason]
        if jobs:
            return _wait(client, jobs[0]["location"].replace("http://testserver", ""))
        time.sleep(0.1)
    raise AssertionError(f"no job '{reason}'")


def test_search_parameter_post_reindexes_existing_resources(client: TestClient, post: Post) -> None:
    earlier = {post(_patient("blue"))["id"] for _ in range(3)}
    post(_patient("green"))
    created = post(_search_parameter(["Patient"]))
    job = _job_for(client, f"SearchParameter/{created['id']} created")
    assert job["status"] == "completed"
    assert job["total"] == job["done"] == 4
    assert job["type"] == "Patient"
    assert ids(search(client, "/fhir/Patient?eye-colour=blue&_count=10")) == earlier

    # Deleting the parameter reindexes again; the rows for it are gone.
    assert client.delete(f"/fhir/SearchParameter/{created['id']}").status_code in (200, 204)
    job = _job_for(client, f"SearchParameter/{created['id']} deleted")
    assert job["status"] == "completed"
    strict = client.get("/fhir/Patient?eye-colour=blue", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_reindex_operation_rebuilds_missing_rows(client: TestClient, post: Post) -> None:
    patients = {
        post({"resourceType": "Patient", "name": [{"family": "Rebuilt"}]})["id"] for _ in range(5)
    }
    post({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    store: SqlStore = client.app.state.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        for table in SEARCH_TABLES.values():
            conn.execute(sa.delete(table).where(table.c.res_type == "Patient"))
    assert ids(search(client, "/fhir/Patient?family=rebuilt")) == set()

    response = client.post("/fhir/$reindex?type=Patient")
    assert response.status_code == 202, response.text
    location = response.headers["Content-Location"]
    assert location.startswith("http://testserver/fhir/$reindex/")
    started = _values(response.json())
    assert started["status"] in ("queued", "running", "completed")
    job = _wait(client, location.replace("http://testserver", ""))
    assert job["status"] == "completed"
    assert job["total"] == job["done"] == 5, "only the Patients"
    assert job["progress"] == "5 of 5 resources (100%)"
    assert ids(search(client, "/fhir/Patient?family=rebuilt")) == patients


def test_reindex_by_search_parameter_url(client: TestClient, post: Post) -> None:
    post(_search_parameter(["Patient"]))
    post(_patient("blue"))
    body = {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": SP_URL}]}
    response = client.post("/fhir/$reindex", json=body)
    assert response.status_code == 202, response.text
    job = _wait(client, response.headers["Content-Location"].replace("http://testserver", ""))
    assert job["type"] == "Patient"
    # Done by itself, or absorbed by the job storing the SearchParameter queued when that
    # one starts later: then its reason says which job covered it.
    assert job["status"] == "completed"
    assert re.fullmatch(
        rf"\$reindex of {re.escape(SP_URL)}( \(covered by job [0-9a-f-]{{36}}\))?", job["reason"]
    ), job["reason"]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("type=NoSuchType", 400),
        ("type=Patient,", 400),
        ("url=http://example.org/none", 400),
        ("colour=blue", 400),
    ],
)
def test_reindex_bad_requests(client: TestClient, query: str, status: int) -> None:
    response = client.post(f"/fhir/$reindex?{query}")
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_reindex_status_of_unknown_and_ended_jobs(client: TestClient) -> None:
    assert client.get("/fhir/$reindex/no-such-job").status_code == 404
    assert client.post("/fhir/$reindex", content=b"[1]").status_code == 400
    response = client.post("/fhir/$reindex?type=Patient")
    location = response.headers["Content-Location"].replace("http://testserver", "")
    assert _wait(client, location)["status"] == "completed"
    refused = client.delete(location)
    assert refused.status_code == 409
    assert refused.json()["resourceType"] == "OperationOutcome"


def _family(store: SqlStore, code: str, value: str) -> set[str]:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        request = parse_search(
            repo.search_registry(), ["Patient"], [(code, value), ("_count", "100")]
        )
        return {s.id for s in repo.search_page(request).matches}


class _ProcessDied(Exception):
    """Stands in for a worker process that dies between two batches: a real process
    cannot be killed at that exact point from a test."""


def test_job_resumes_from_its_checkpoint(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            made = sorted(repo.create(_patient("blue")).stored.id for _ in range(7))
            repo.create(_search_parameter(["Patient"]))
        jobs = Jobs(store.engine)
        created = watch(jobs)
        assert [j.params["types"] for j in created] == [["Patient"]]
        assert watch(jobs) == [], "one job per SearchParameter version"
        job = jobs.claim([KIND])
        assert job is not None
        assert jobs.claim([KIND]) is None, "a running job is not claimed twice"

        def die(resource_type: str, count: int) -> None:
            raise _ProcessDied

        with pytest.raises(_ProcessDied):
            run_job(jobs, job, batch=3, on_batch=die)
        halfway = _view(jobs, job.id)
        assert (halfway.status, halfway.done, halfway.total) == ("running", 3, 7)
        assert (halfway.cursor_type, halfway.cursor_id) == ("Patient", made[2])
        # While the job is unfinished, the new parameter finds the reindexed part only.
        assert _family(store, "eye-colour", "blue") == set(made[:3])

        assert jobs.recover(stale_after=timedelta(0)) == 1
        resumed = jobs.claim([KIND])
        assert resumed is not None and resumed.id == job.id
        batches: list[int] = []
        outcome = run_job(jobs, resumed, batch=3, on_batch=lambda t, n: batches.append(n))
        assert outcome == "completed"
        assert batches == [3, 1], "the resumed job starts after its checkpoint"
        finished = _view(jobs, job.id)
        assert (finished.status, finished.done, finished.total) == ("completed", 7, 7)
        assert _family(store, "eye-colour", "blue") == set(made)
    finally:
        store.close()


def test_starting_job_completes_the_queued_jobs_it_covers(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            repo.create(_patient("blue"))
            repo.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
        jobs = Jobs(store.engine)
        first = reindex_run.create(jobs, ["Patient"], "first")
        wider = reindex_run.create(jobs, ["Observation", "Patient"], "wider")
        same = reindex_run.create(jobs, ["Patient"], "same")
        every = reindex_run.create(jobs, None, "every")
        assert first and wider and same and every
        claimed = jobs.claim([KIND])
        assert claimed is not None and claimed.id == first.id
        assert run_job(jobs, claimed) == "completed"
        states = {x.id: _view(jobs, x.id) for x in (wider, same, every)}
        assert states[same.id].status == "completed"
        assert states[same.id].reason == f"same (covered by job {first.id})"
        assert states[wider.id].status == "queued", "Observation is not covered"
        assert states[every.id].status == "queued"

        claimed = jobs.claim([KIND])
        assert claimed is not None and claimed.id == wider.id
        assert run_job(jobs, claimed) == "completed"
        claimed = jobs.claim([KIND])
        assert claimed is not None and claimed.id == every.id
        assert run_job(jobs, claimed) == "completed"
        ended = _view(jobs, every.id)
        assert (ended.done, ended.total) == (2, 2)
    finally:
        store.close()


def test_cancelled_job_stops(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            for _ in range(4):
                repo.create(_patient("blue"))
        jobs = Jobs(store.engine)
        queued = reindex_run.create(jobs, ["Patient"], "test")
        assert queued is not None
        assert jobs.cancel(queued.id)
        assert jobs.claim([KIND]) is None, "a cancelled job is never claimed"

        running = reindex_run.create(jobs, ["Patient"], "test")
        assert running is not None
        claimed = jobs.claim([KIND])
        assert claimed is not None

        def cancel_after_first(resource_type: str, count: int) -> None:
            jobs.cancel(claimed.id)

        assert run_job(jobs, claimed, batch=2, on_batch=cancel_after_first) == "stopped"
        ended = _view(jobs, claimed.id)
        assert (ended.status, ended.done) == ("cancelled", 2)
    finally:
        store.close()


def test_claim_skips_a_job_locked_by_another_worker(postgres_url: str) -> None:
    store = SqlStore.open(postgres_url)
    try:
        jobs = Jobs(store.engine)
        made = reindex_run.create(jobs, ["Patient"], "test")
        assert made is not None
        with store.engine.connect() as other, other.begin():
            other.execute(sa.select(job).where(job.c.id == made.id).with_for_update()).one()
            assert jobs.claim([KIND]) is None, "SKIP LOCKED: no wait, no double claim"
        claimed = jobs.claim([KIND])
        assert claimed is not None and claimed.id == made.id
    finally:
        store.close()


def test_reindex_needs_an_unrestricted_client_in_smart_mode(
    make_smart: Callable[..., Smart],
) -> None:
    smart = make_smart()
    assert smart.client.post("/fhir/$reindex").status_code == 401
    reader = smart.client.post("/fhir/$reindex", headers=smart.headers("system/*.rs"))
    assert reader.status_code == 403
    assert reader.json()["resourceType"] == "OperationOutcome"
    admin = smart.client.post("/fhir/$reindex", headers=smart.headers("system/*.cruds"))
    assert admin.status_code == 202, admin.text
    status = admin.headers["Content-Location"].replace("http://testserver", "")
    listed = smart.client.get(status, headers=smart.headers("system/*.rs"))
    assert listed.status_code in (200, 202)


def test_searches_warn_while_a_reindex_job_of_their_type_runs(
    client: TestClient, post: Post
) -> None:
    patient = post({"resourceType": "Patient", "name": [{"family": "Waiting"}]})["id"]
    store: SqlStore = client.app.state.store  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    # A job another service process is running (fresh heartbeat: not taken over here).
    with store.engine.begin() as conn:
        conn.execute(
            job.insert().values(
                id="other-replica-job",
                kind=KIND,
                state="running",
                local=False,
                params={"types": ["Patient"], "reason": "SearchParameter/x updated"},
                progress={"types": ["Patient"], "total": 10, "done": 4},
                message="4 of 10 resources (40%)",
                attempt=1,
                worker="another-process",
                created=now,
                heartbeat=now + timedelta(hours=1),
            )
        )
    bundle = search(client, "/fhir/Patient?family=waiting")
    assert ids(bundle) == {patient}, "searches keep working"
    (outcome,) = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    (issue,) = outcome["issue"]
    assert (issue["severity"], issue["code"]) == ("warning", "incomplete")
    assert "other-replica-job" in issue["diagnostics"]
    assert "4 of 10" in issue["diagnostics"]
    other_type = search(client, "/fhir/Observation?code=x")
    assert "entry" not in other_type, "no job for Observation"
