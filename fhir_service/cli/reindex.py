"""`fhir-service search reindex`: rebuild the search index of stored resources
(https://hl7.org/fhir/R4/search.html), e.g. after the search parameters changed or for
data written before the search tables existed.

Runs a reindex job (``fhir_service.storage.reindex_run``) in this process: short
transactions of ``--batch`` resources, in id order per type, so the server keeps serving
reads and writes meanwhile; prints progress; ends with ANALYZE.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from fhir_service.errors import FhirServiceError
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, reindex_run
from fhir_service.storage.errors import DatabaseError
from fhir_service.storage.jobs import Jobs

search_app = typer.Typer(help="Search index maintenance.", no_args_is_help=True)


def reindex(store: SqlStore, types: list[str] | None, batch: int, echo: bool = True) -> int:
    """Reindex every resource of ``types`` (default: every stored type) as a reindex job
    run in this process (listed by ``GET /fhir/$reindex`` like the server's jobs);
    returns the count."""
    jobs = Jobs.of(store)
    claimed = reindex_run.create(jobs, types, "fhir-service search reindex", started=True)
    if claimed is None:
        raise FhirServiceError("The reindex job could not be started")
    per_type: dict[str, int] = {}
    started = time.monotonic()

    def progress(resource_type: str, count: int) -> None:
        per_type[resource_type] = per_type.get(resource_type, 0) + count
        if echo:
            rate = sum(per_type.values()) / max(time.monotonic() - started, 1e-6)
            typer.echo(f"{resource_type}: {per_type[resource_type]} reindexed ({rate:,.0f}/s)")

    try:
        outcome = reindex_run.run_job(jobs, claimed, batch=batch, on_batch=progress)
    except BaseException as exc:
        jobs.fail(claimed.ref, type(exc).__name__)
        raise
    if outcome != "completed":
        raise FhirServiceError(f"Reindex job {claimed.id} was cancelled")
    return sum(per_type.values())


@search_app.command("reindex")
def reindex_command(
    resource_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only this resource type (repeatable).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Resources per transaction.")] = 500,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
    ] = None,
) -> None:
    """Rebuild the search index rows of stored resources, batch by batch, with progress."""
    settings = Settings()
    search_registry.configure(settings.package_cache)
    try:
        store = SqlStore.open(database_url or settings.database_url)
    except (DatabaseError, FhirServiceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        total = reindex(store, resource_type, batch)
    except FhirServiceError as exc:
        typer.echo(f"error: {exc.diagnostics}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"reindexed {total} resources")


def register(app: typer.Typer) -> None:
    """Add the `search` command group."""
    app.add_typer(search_app, name="search")
