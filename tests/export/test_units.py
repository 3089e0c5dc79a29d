"""The NDJSON writer, the de-identification rules and export jobs, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

from fhir_service.export import kind as export_kind
from fhir_service.export.deidentify import Deidentifier, shift_date
from fhir_service.export.kind import Exports
from fhir_service.export.ndjson import NdjsonWriter
from fhir_service.export.params import ExportParams
from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import get_registry
from fhir_service.storage import SqlStore
from fhir_service.storage.job_runner import JobRunner
from fhir_service.storage.jobs import Jobs, job
from fhir_service.storage.tables import resource, resource_version


def test_writer_splits_files_at_the_size_limit(tmp_path: Path) -> None:
    resource = {"resourceType": "Observation", "id": "x" * 50}
    line = len(orjson.dumps(resource)) + 1
    with NdjsonWriter(tmp_path, max_bytes=line * 3) as writer:
        for _ in range(7):
            writer.write("Observation", resource)
        writer.write("Patient", {"resourceType": "Patient", "id": "p"})
    files = writer.files
    assert [(f.type, f.name, f.count) for f in files] == [
        ("Observation", "Observation-1.ndjson", 3),
        ("Observation", "Observation-2.ndjson", 3),
        ("Observation", "Observation-3.ndjson", 1),
        ("Patient", "Patient-1.ndjson", 1),
    ]
    for item in files:
        content = (tmp_path / item.name).read_bytes()
        assert len(content) <= line * 3
        assert len(content.splitlines()) == item.count


def test_shift_date_keeps_precision() -> None:
    assert shift_date("2020-03-01", 1) == "2020-02-29"
    assert shift_date("2020-03-01T10:20:30.5+02:00", 366) == "2019-03-01T10:20:30.5+02:00"
    assert shift_date("2020-03", 31) == "2020-01"
    assert shift_date("2020", 400) == "2019"


def test_ages_over_89_are_generalized() -> None:
    deid = Deidentifier("k", lambda r: {"p1"}, reference_year=2024)
    old = deid.apply({"resourceType": "Patient", "id": "p1", "birthDate": "1920-06-15"})
    assert old["birthDate"] == "1934"
    older = deid.apply({"resourceType": "Patient", "id": "p1", "birthDate": "1930-06-15"})
    assert older["birthDate"] == "1934"
    young = deid.apply({"resourceType": "Patient", "id": "p1", "birthDate": "1990-06-15"})
    assert len(young["birthDate"]) == 10 and young["birthDate"] < "1989-06-15"
    age = {"value": 97, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
    condition = deid.apply({"resourceType": "Condition", "id": "c", "onsetAge": age})
    assert condition["onsetAge"]["value"] == 90
    assert deid.pseudonym("Patient", "p1") == Deidentifier(
        "k", lambda r: set(), reference_year=2000
    ).pseudonym("Patient", "p1")
    assert deid.pseudonym("Patient", "p1") != Deidentifier(
        "other", lambda r: set(), reference_year=2000
    ).pseudonym("Patient", "p1")


def test_claim_runs_each_job_once_and_recover_requeues_stale(database_url: str) -> None:
    store = SqlStore.open(database_url)
    engine = store.engine
    try:
        jobs = Jobs.of(store)
        first = export_kind.create(jobs, "a", "r1", ExportParams())
        second = export_kind.create(jobs, "b", "r2", ExportParams(types=["Patient"]))
        assert first is not None and second is not None
        assert export_kind.create(jobs, "a", "r3", ExportParams()) is None, "one per client"
        claimed = [jobs.claim(["export"]) for _ in range(3)]
        assert [j.id if j else None for j in claimed] == [first.id, second.id, None]
        assert export_kind.get(jobs, second.id).params.types == ["Patient"]  # type: ignore[union-attr]
        assert jobs.recover(timedelta(minutes=5)) == 0
        old = datetime.now(UTC) - timedelta(hours=1)
        with engine.begin() as conn:
            conn.execute(job.update().where(job.c.id == first.id).values(heartbeat=old))
        assert jobs.recover(timedelta(minutes=5)) == 1
        again = jobs.claim(["export"])
        assert again is not None and again.id == first.id and again.attempt == 2
        assert claimed[0] is not None and not jobs.beat(claimed[0].ref), "the first claim lost it"
        assert jobs.cancel(first.id)
        assert not jobs.report(again.ref, "x")
        assert first.id in jobs.expired("export")
        jobs.delete(first.id)
        with engine.connect() as conn:
            left = conn.execute(sa.select(job.c.id)).scalars().all()
        assert left == [second.id]
    finally:
        store.close()


def test_runner_runs_then_sweeps_expired_files(database_url: str, tmp_path: Path) -> None:
    store = SqlStore.open(database_url)
    engine = store.engine
    try:
        with engine.begin() as conn:
            conn.execute(
                resource_version.insert().values(
                    seq=1,
                    type="Patient",
                    id="p1",
                    version=1,
                    last_updated=datetime.now(UTC),
                    deleted=False,
                    method="POST",
                    body={"resourceType": "Patient", "id": "p1"},
                )
            )
            conn.execute(
                resource.insert().values(type="Patient", id="p1", version=1, deleted=False, seq=1)
            )
        exports = Exports(store, tmp_path, compartment=lambda: compartment_paths(get_registry()))
        runner = JobRunner(Jobs.of(store), [exports.kind()])
        made = export_kind.create(runner.jobs, "a", "r", ExportParams())
        assert made is not None
        assert runner.run_pending() == 1
        done = export_kind.get(runner.jobs, made.id)
        assert done is not None and done.status == "completed"
        assert done.output["output"] == [
            {"type": "Patient", "name": "Patient-1.ndjson", "count": 1}
        ]
        lines = (exports.directory(made.id) / "Patient-1.ndjson").read_bytes().splitlines()
        assert [orjson.loads(x) for x in lines] == [{"resourceType": "Patient", "id": "p1"}]
        assert exports.sweep() == 0
        with engine.begin() as conn:
            conn.execute(job.update().values(expires=datetime.now(UTC) - timedelta(seconds=1)))
        assert exports.sweep() == 1
        assert not exports.directory(made.id).exists() and runner.jobs.get(made.id) is None
    finally:
        store.close()
