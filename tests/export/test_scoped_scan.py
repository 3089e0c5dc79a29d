"""An export job reads only what the scope of its owner reaches, whatever its parameters
ask for: the scans apply the recorded scopes inside their SQL
(https://build.fhir.org/ig/HL7/bulk-data/export.html#response---complete-status,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_service.api.auth.context import AccessContext
from fhir_service.api.auth.export_scopes import authorize_kick_off
from fhir_service.errors import NotFound
from fhir_service.export import kind as export_kind
from fhir_service.export.kind import Exports
from fhir_service.export.params import ExportParams
from fhir_service.export.run import ExportResult, run_export
from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.search.compartment import compartment_paths
from fhir_service.search.registry import get_registry
from fhir_service.storage import AccessScope, Grant, SqlStore
from fhir_service.storage.job_runner import JobRunner
from fhir_service.storage.jobs import Jobs

ALL_TYPES = ["Condition", "Group", "Observation", "Patient"]


def _observation(id: str, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """Two patients, each with an Observation and a Condition, a Group of both; then
    p2's Observation and Condition deleted."""
    store = SqlStore.open(database_url)
    with store.begin(AccessScope.full()) as repo:
        for patient in ("p1", "p2"):
            repo.update("Patient", patient, {"resourceType": "Patient", "id": patient})
            repo.update("Observation", f"o-{patient}", _observation(f"o-{patient}", patient))
            condition = {
                "resourceType": "Condition",
                "id": f"c-{patient}",
                "subject": {"reference": f"Patient/{patient}"},
            }
            repo.update("Condition", f"c-{patient}", condition)
        group = {
            "resourceType": "Group",
            "id": "g",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("p1", "p2")],
        }
        repo.update("Group", "g", group)
    with store.begin(AccessScope.full()) as repo:
        repo.delete("Observation", "o-p2")
        repo.delete("Condition", "c-p2")
    try:
        yield store
    finally:
        store.close()


def _export(store: SqlStore, params: ExportParams, directory: Path) -> ExportResult:
    return run_export(store, params, directory, compartment=compartment_paths(get_registry()))


def _written(directory: Path, result: ExportResult) -> set[str]:
    refs = set()
    for item in result.output:
        for line in (directory / item.name).read_bytes().splitlines():
            body = orjson.loads(line)
            refs.add(f"{body['resourceType']}/{body['id']}")
    return refs


def _deleted(directory: Path, result: ExportResult) -> set[str]:
    urls = set()
    for item in result.deleted:
        for line in (directory / item.name).read_bytes().splitlines():
            urls.add(orjson.loads(line)["entry"][0]["request"]["url"])
    return urls


@pytest.mark.parametrize("types", [None, ALL_TYPES])
def test_system_scope_of_one_type_exports_only_that_type(
    store: SqlStore, tmp_path: Path, types: list[str] | None
) -> None:
    """A job recorded with ``system/Observation.rs`` writes Observations only, also when
    its parameters name every type (or none)."""
    params = ExportParams(types=types, scopes=["system/Observation.rs"])
    result = _export(store, params, tmp_path)
    assert _written(tmp_path, result) == {"Observation/o-p1"}
    assert {item.type for item in result.output} == {"Observation"}


def test_unrestricted_job_exports_everything(store: SqlStore, tmp_path: Path) -> None:
    """Without recorded scopes (open mode, the command line) the scans reach every type."""
    result = _export(store, ExportParams(), tmp_path)
    assert _written(tmp_path, result) == {
        "Condition/c-p1",
        "Group/g",
        "Observation/o-p1",
        "Patient/p1",
        "Patient/p2",
    }


def test_deleted_resources_stay_inside_the_scope(store: SqlStore, tmp_path: Path) -> None:
    """``_since`` lists the deletes of the types the scope reaches, no others."""
    since = datetime.now(UTC) - timedelta(hours=1)
    params = ExportParams(types=ALL_TYPES, since=since, scopes=["system/Observation.rs"])
    result = _export(store, params, tmp_path)
    assert _deleted(tmp_path, result) == {"Observation/o-p2"}
    everything = _export(store, ExportParams(since=since), tmp_path / "all")
    assert _deleted(tmp_path / "all", everything) == {"Observation/o-p2", "Condition/c-p2"}


def test_patient_scope_reaches_only_its_patients_compartment(
    store: SqlStore, tmp_path: Path
) -> None:
    """A ``patient/`` scope recorded with its patient reaches only that patient's
    compartment (its Patient and the Group it is a member of), on a system-level export."""
    params = ExportParams(types=ALL_TYPES, scopes=["patient/*.rs"], owner_patient="p2")
    assert _written(tmp_path, _export(store, params, tmp_path)) == {"Patient/p2", "Group/g"}
    without = ExportParams(types=ALL_TYPES, scopes=["patient/*.rs"])
    assert _written(tmp_path / "none", _export(store, without, tmp_path / "none")) == set()


def test_group_outside_the_scope_is_not_found(store: SqlStore, tmp_path: Path) -> None:
    """A Group export reads the Group inside the scope: one it cannot read is unknown."""
    params = ExportParams(level="group", group="g", scopes=["system/Observation.rs"])
    with pytest.raises(NotFound):
        _export(store, params, tmp_path)
    wider = ExportParams(
        level="group",
        group="g",
        types=["Observation"],
        scopes=["system/Observation.rs", "system/Group.rs"],
    )
    assert _written(tmp_path, _export(store, wider, tmp_path)) == {"Observation/o-p1"}


def test_runner_runs_a_job_with_its_owners_scope(store: SqlStore, tmp_path: Path) -> None:
    """Through the worker: the job's stored scopes decide what it writes."""
    exports = Exports(store, tmp_path, compartment=lambda: compartment_paths(get_registry()))
    runner = JobRunner(Jobs.of(store), [exports.kind()])
    params = ExportParams(types=ALL_TYPES, scopes=["system/Observation.rs"])
    job = export_kind.create(runner.jobs, "narrow", "r", params)
    assert job is not None
    assert runner.run_pending() == 1
    done = export_kind.get(runner.jobs, job.id)
    assert done is not None and done.status == "completed", done
    assert done.output["output"] == [
        {"type": "Observation", "name": "Observation-1.ndjson", "count": 1}
    ]
    lines = (exports.directory(job.id) / "Observation-1.ndjson").read_bytes().splitlines()
    assert [orjson.loads(x)["id"] for x in lines] == ["o-p1"]


def test_kick_off_records_the_owners_scopes_and_patient() -> None:
    """The parameters a kick-off stores carry the scope the job will read with."""
    scopes = ScopeSet.parse("system/Observation.rs patient/Condition.rs")
    access = AccessContext(client_id="c", scopes=scopes, patient="p1")
    params = ExportParams.from_json(authorize_kick_off(access, ExportParams()).to_json())
    assert params.scopes == ["system/Observation.rs", "patient/Condition.rs"]
    assert params.owner_patient == "p1"
    assert params.access_scope() == access.scope
    assert params.access_scope().grants == (
        Grant("Observation", frozenset("rs"), "all"),
        Grant("Condition", frozenset("rs"), "compartment"),
    )
    assert ExportParams().access_scope() == AccessScope.full()
