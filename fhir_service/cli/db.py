"""`fhir-service db upgrade|status`: the database schema (alembic migrations in the package)."""

from __future__ import annotations

from typing import Annotated

import typer

from fhir_service.cli.first_need import prepare_packages
from fhir_service.errors import FhirServiceError
from fhir_service.settings import Settings
from fhir_service.storage import database_revision, head_revision, redacted_url, upgrade
from fhir_service.storage.errors import DatabaseError

db_app = typer.Typer(help="Database schema: upgrade and status.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
]


def _url(database_url: str | None) -> str:
    return database_url or Settings().database_url


@db_app.command("upgrade")
def upgrade_command(database_url: DatabaseUrl = None) -> None:
    """Bring the database schema up to date (creates the SQLite file if needed)."""
    url = _url(database_url)
    prepare_packages(Settings(), required=False)
    try:
        reached = upgrade(url)
    except (DatabaseError, FhirServiceError) as exc:
        typer.echo(f"error: cannot upgrade {redacted_url(url)}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"database {redacted_url(url)} is at revision {reached}")


@db_app.command("status")
def status_command(database_url: DatabaseUrl = None) -> None:
    """Print the database revision and whether it is current (exit 1 when behind)."""
    url = _url(database_url)
    try:
        current = database_revision(url)
    except (DatabaseError, FhirServiceError) as exc:
        typer.echo(f"error: cannot read {redacted_url(url)}: {exc}", err=True)
        raise typer.Exit(2) from None
    head = head_revision()
    typer.echo(f"database {redacted_url(url)}: revision {current or '(none)'}, shipped head {head}")
    if current != head:
        typer.echo("run `fhir-service db upgrade`", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `db` command group."""
    app.add_typer(db_app, name="db")
