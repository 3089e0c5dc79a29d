"""`fhir-service export`: a system-level Bulk Data export written to a directory
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html), optionally de-identified with the
rules of ``fhir_service.export.deidentify``.

Writes ``<Type>-<n>.ndjson`` files and a ``manifest.json`` shaped like the Bulk Data
manifest (file URLs relative to the directory).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from fhir_service.api.auth.compartment import PatientCompartment
from fhir_service.errors import FhirServiceError
from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.jobs import ExportParams
from fhir_service.export.run import run_export
from fhir_service.fhir.models import model_class
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, format_instant


def export_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the files.")],
    deidentify: Annotated[
        bool, typer.Option("--deidentify", help="Apply the de-identification rules.")
    ] = False,
    types: Annotated[
        str | None, typer.Option("--type", help="Comma-separated resource types.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only resources changed after this instant.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
    ] = None,
) -> None:
    """Export current resources as NDJSON files (one per type) into OUTPUT."""
    settings = Settings()
    try:
        type_list = [t.strip() for t in types.split(",") if t.strip()] if types else None
        for name in type_list or []:
            model_class(name)
        since_at = datetime.fromisoformat(since) if since else None
        if since_at is not None and since_at.tzinfo is None:
            raise ValueError("--since needs a timezone")
    except (ValueError, FhirServiceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    secret = settings.deid_secret
    if deidentify and not secret:
        typer.echo("error: --deidentify needs FHIR_SERVICE_DEID_SECRET", err=True)
        raise typer.Exit(2)
    try:
        store = SqlStore.open(database_url or settings.database_url)
    except (SQLAlchemyError, FhirServiceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    started = datetime.now(UTC)
    try:
        compartment = PatientCompartment.load(settings.package_cache)
        deidentifier = (
            Deidentifier(secret, compartment.patients, reference_year=started.year)
            if deidentify and secret
            else None
        )
        params = ExportParams(types=type_list, since=since_at, deidentify=deidentify)
        result = run_export(
            store.engine, params, output, compartment=compartment, deidentifier=deidentifier
        )
    except FhirServiceError as exc:
        typer.echo(f"error: {exc.diagnostics}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    manifest = {
        "transactionTime": format_instant(started),
        "request": "fhir-service export",
        "requiresAccessToken": False,
        "output": [{"type": f.type, "url": f.name, "count": f.count} for f in result.output],
        "deleted": [{"type": f.type, "url": f.name, "count": f.count} for f in result.deleted],
        "error": [],
    }
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    total = sum(f.count for f in result.output)
    typer.echo(f"exported {total} resources in {len(result.output)} files to {output}")


def register(app: typer.Typer) -> None:
    """Add the `export` command."""
    app.command("export")(export_command)
