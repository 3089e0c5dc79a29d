"""`fhir-service search reindex`: rebuild the search index of stored resources
(https://hl7.org/fhir/R4/search.html), e.g. after the search parameters changed or for
data written before the search tables existed.

Works in short transactions of ``--batch`` resources, in id order per type, so the
server keeps serving reads and writes meanwhile; prints progress; ends with ANALYZE.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from fhir_service.errors import FhirServiceError
from fhir_service.search import registry as search_registry
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.search_index import analyze, reindex_batch

search_app = typer.Typer(help="Search index maintenance.", no_args_is_help=True)


def reindex(store: SqlStore, types: list[str] | None, batch: int, echo: bool = True) -> int:
    """Reindex every resource of ``types`` (default: every stored type); returns the count."""
    with store.begin(readonly=True) as repo:
        known = sorted(repo.counts())
    done = 0
    for resource_type in types or known:
        after = ""
        started = time.monotonic()
        count = 0
        while True:
            with store.engine.begin() as conn:
                ids = reindex_batch(conn, resource_type, after, batch)
            if not ids:
                break
            after = ids[-1]
            count += len(ids)
            if echo:
                rate = count / max(time.monotonic() - started, 1e-6)
                typer.echo(f"{resource_type}: {count} reindexed ({rate:,.0f}/s)")
        done += count
    with store.engine.begin() as conn:
        analyze(conn)
    return done


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
    except (SQLAlchemyError, FhirServiceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        total = reindex(store, resource_type, batch)
    finally:
        store.close()
    typer.echo(f"reindexed {total} resources")


def register(app: typer.Typer) -> None:
    """Add the `search` command group."""
    app.add_typer(search_app, name="search")
