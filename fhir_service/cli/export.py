"""`fhir-service export`: a system-level Bulk Data export written to a directory
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html), optionally de-identified with the
rules of ``fhir_service.export.deidentify``.

Writes ``<Type>-<n>.ndjson`` files and a ``manifest.json`` shaped like the Bulk Data
manifest (file URLs relative to the directory; de-identified exports add the account of
what was removed and scrubbed as ``extension.deidentification``). The options are checked
like the parameters of a ``$export`` kick-off (``--type-filter`` is ``_typeFilter``,
``--elements`` is ``_elements``, ``--deid-rules FILE`` is ``_deidRules``); a mistake exits
with 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fhir_service.api.export_params import check_type_filters, export_params
from fhir_service.errors import FhirServiceError
from fhir_service.export.deid_rules import Rules, load_rules
from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.run import run_export
from fhir_service.search import registry as search_registry
from fhir_service.search.compartment import compartment_paths
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, format_instant
from fhir_service.storage.access import AccessScope
from fhir_service.storage.errors import DatabaseError


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
    type_filters: Annotated[
        list[str] | None,
        typer.Option(
            "--type-filter", help="Type?search-query; repeatable (a resource matching any is kept)."
        ),
    ] = None,
    elements: Annotated[
        str | None,
        typer.Option("--elements", help="Comma-separated Type.element or element names."),
    ] = None,
    deid_rules: Annotated[
        Path | None,
        typer.Option(
            "--deid-rules",
            help="De-identification rules (JSON, the shape of the package's deid_rules.json).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
    ] = None,
) -> None:
    """Export current resources as NDJSON files (one per type) into OUTPUT."""
    settings = Settings()
    pairs: list[tuple[str, str]] = [("_typeFilter", f) for f in type_filters or []]
    for name, value in (("_type", types), ("_since", since), ("_elements", elements)):
        if value is not None:
            pairs.append((name, value))
    if deidentify:
        pairs.append(("_deidentify", "true"))
    secret = settings.deid_secret
    if deidentify and not secret:
        typer.echo("error: --deidentify needs FHIR_SERVICE_DEID_SECRET", err=True)
        raise typer.Exit(2)
    rules: Rules | None = None
    try:
        if deid_rules is not None:
            if not deidentify:
                raise FhirServiceError("--deid-rules needs --deidentify")
            rules = load_rules(deid_rules)
        params = export_params("system", pairs, None)
        store = SqlStore.open(database_url or settings.database_url)
    except (DatabaseError, FhirServiceError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        check_type_filters(store.scoped(AccessScope.full()), params)
    except FhirServiceError as exc:
        store.close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    started = datetime.now(UTC)
    try:
        search_registry.configure(settings.package_cache)
        compartment = compartment_paths(search_registry.get_registry())
        deidentifier = (
            Deidentifier(secret, compartment.patients, reference_year=started.year, rules=rules)
            if deidentify and secret
            else None
        )
        result = run_export(
            store, params, output, compartment=compartment, deidentifier=deidentifier
        )
    except FhirServiceError as exc:
        typer.echo(f"error: {exc.diagnostics}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    manifest: dict[str, object] = {
        "transactionTime": format_instant(started),
        "request": "fhir-service export",
        "requiresAccessToken": False,
        "output": [{"type": f.type, "url": f.name, "count": f.count} for f in result.output],
        "deleted": [{"type": f.type, "url": f.name, "count": f.count} for f in result.deleted],
        "error": [],
    }
    if deidentifier is not None:
        manifest["extension"] = {"deidentification": deidentifier.report()}
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    total = sum(f.count for f in result.output)
    typer.echo(f"exported {total} resources in {len(result.output)} files to {output}")


def register(app: typer.Typer) -> None:
    """Add the `export` command."""
    app.command("export")(export_command)
