"""``fhir-service jobs list``: the newest jobs of every kind, one line each."""

from __future__ import annotations

from typer.testing import CliRunner

from fhir_service.cli.jobs import jobs_app
from fhir_service.export import kind as export_kind
from fhir_service.export.params import ExportParams
from fhir_service.storage import SqlStore, reindex_run
from fhir_service.storage.jobs import Jobs


def test_jobs_list_shows_every_kind(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        jobs = Jobs.of(store)
        exported = export_kind.create(jobs, "lab", "r", ExportParams())
        reindexed = reindex_run.create(jobs, ["Patient"], "test")
        assert exported is not None and reindexed is not None
        assert jobs.cancel(reindexed.id)
    finally:
        store.close()
    listed = CliRunner().invoke(jobs_app, ["list", "--database-url", database_url])
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line.split()[1:3] for line in listed.output.splitlines()}
    assert lines == {exported.id: ["export", "queued"], reindexed.id: ["reindex", "cancelled"]}
    only = CliRunner().invoke(
        jobs_app, ["list", "--database-url", database_url, "--kind", "export"]
    )
    assert [line.split()[0] for line in only.output.splitlines()] == [exported.id]
