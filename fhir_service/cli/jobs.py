"""`fhir-service jobs work`: the job runner without the HTTP API, and `fhir-service jobs
list`: the newest jobs of every kind (docs/architecture.md, "Background jobs").

`jobs work` runs the same runner as a service process (export, reindex and sync jobs
of the ``job`` table, with the ``FHIR_SERVICE_*`` settings) until SIGTERM or SIGINT;
then the jobs under way are given back to the queue. Several such processes, and the
service's, share the work on one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from fhir_service.api.jobs import job_runner
from fhir_service.errors import FhirServiceError
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.errors import DatabaseError
from fhir_service.storage.jobs import Jobs

jobs_app = typer.Typer(help="Background jobs (export, reindex, sync).", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default: FHIR_SERVICE_DATABASE_URL)."),
]


def _open(url: str | None, settings: Settings) -> SqlStore:
    try:
        return SqlStore.open(url or settings.database_url)
    except (FhirServiceError, DatabaseError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _work(store: SqlStore, settings: Settings) -> None:
    runner = job_runner(store, settings)
    task = asyncio.create_task(runner.serve())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@jobs_app.command("work")
def work_command(database_url: DatabaseUrl = None) -> None:
    """Run queued jobs of every kind until stopped (SIGTERM or SIGINT)."""
    settings = Settings()
    search_registry.configure(settings.package_cache)
    store = _open(database_url, settings)
    try:
        asyncio.run(_work(store, settings))
    finally:
        store.close()


@jobs_app.command("list")
def list_command(
    database_url: DatabaseUrl = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
) -> None:
    """The newest jobs, newest first: id, kind, state, progress."""
    store = _open(database_url, Settings())
    try:
        for job in Jobs.of(store).recent(kind, limit=limit):
            line = f"{job.id}  {job.kind:8} {job.state:11} {job.message}"
            typer.echo(line + (f"  error: {job.error}" if job.error else ""))
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    """Add the `jobs` command group."""
    app.add_typer(jobs_app, name="jobs")
