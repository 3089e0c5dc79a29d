"""`fhir-service view run`: a SQL on FHIR v2 ViewDefinition run over an NDJSON file or
the database (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html).

Rows are written as resources are read, to ``-o FILE`` or to stdout. An invalid view
(or one that fails on a resource) exits with 2 and the reason on stderr. With ``-o``,
a progress line goes to stderr every ``PROGRESS_EVERY`` rows. ``--deidentify`` runs the
view over the resources as the de-identified export writes them (``--deid-rules FILE``:
other rules, as for ``fhir-service export``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import orjson
import typer

from fhir_service.errors import FhirServiceError
from fhir_service.export.deid_rules import Rules, load_rules
from fhir_service.export.deidentify import Deidentifier
from fhir_service.search import registry as search_registry
from fhir_service.search.compartment import compartment_paths
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.errors import DatabaseError
from fhir_service.storage.view_scan import scan_resources
from fhir_service.views import parse_view, run_view
from fhir_service.views.ndjson import read_ndjson
from fhir_service.views.sql_plan import stored_rows
from fhir_service.views.writers import FORMATS, format_of, write_chunks

PROGRESS_EVERY = 100_000
view_app = typer.Typer(
    help="SQL on FHIR v2 views: ViewDefinitions to tables.", no_args_is_help=True
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _counted(
    rows: Iterator[dict[str, Any]], progress: bool, total: list[int]
) -> Iterator[dict[str, Any]]:
    """The rows, counted into ``total[0]``; a progress line every PROGRESS_EVERY rows."""
    for count, row in enumerate(rows, start=1):
        total[0] = count
        if progress and count % PROGRESS_EVERY == 0:
            typer.echo(f"{count} rows", err=True)
        yield row


def _deidentifier(settings: Settings, rules_file: Path | None) -> Deidentifier:
    """The export's de-identifier with the configured secret (and ``rules_file``)."""
    if not settings.deid_secret:
        raise FhirServiceError("--deidentify needs FHIR_SERVICE_DEID_SECRET")
    rules: Rules | None = load_rules(rules_file) if rules_file is not None else None
    search_registry.configure(settings.package_cache)
    patients_of = compartment_paths(search_registry.get_registry()).patients
    year = datetime.now(UTC).year
    return Deidentifier(settings.deid_secret, patients_of, reference_year=year, rules=rules)


def _deidentified(
    resources: Iterable[dict[str, Any]], deidentifier: Deidentifier
) -> Iterator[dict[str, Any]]:
    for resource in resources:
        yield deidentifier.apply(resource)


@view_app.command("run")
def run_command(
    view_file: Annotated[Path, typer.Argument(help="The ViewDefinition (JSON).")],
    input_file: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Resources as NDJSON (default: the database)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="|".join(FORMATS))] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Output file (default stdout).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
    ] = None,
    deidentify: Annotated[
        bool,
        typer.Option("--deidentify", help="Run over the de-identified resources (as export)."),
    ] = False,
    deid_rules: Annotated[
        Path | None,
        typer.Option(
            "--deid-rules",
            help="De-identification rules (JSON, the shape of the package's deid_rules.json).",
        ),
    ] = None,
) -> None:
    """Run VIEW_FILE and write its rows as CSV, JSON (one array), NDJSON or Parquet."""
    settings = Settings()
    deidentifier: Deidentifier | None = None
    if deid_rules is not None and not deid_rules.is_file():
        raise _fail(f"no such rules file: {deid_rules}")
    try:
        raw = orjson.loads(view_file.read_bytes())
        view = parse_view(raw)
        fmt = format_of(fmt)
        if deid_rules is not None and not deidentify:
            raise FhirServiceError("--deid-rules needs --deidentify")
        if deidentify:
            deidentifier = _deidentifier(settings, deid_rules)
    except OSError as exc:
        raise _fail(f"cannot read {view_file}: {exc}") from None
    except orjson.JSONDecodeError as exc:
        raise _fail(f"{view_file} is not JSON: {exc}") from None
    except FhirServiceError as exc:
        raise _fail(exc.diagnostics) from None
    if input_file is not None and not input_file.is_file():
        raise _fail(f"no such input file: {input_file}")
    total = [0]
    with ExitStack() as stack:
        try:
            rows: Iterator[dict[str, Any]]
            if input_file is not None:
                resources: Iterable[dict[str, Any]] = read_ndjson(input_file)
                if deidentifier is not None:
                    resources = _deidentified(resources, deidentifier)
                rows = run_view(view, resources)
            else:
                store = SqlStore.open(database_url or settings.database_url)
                stack.callback(store.close)
                repo = stack.enter_context(store.begin(AccessScope.full(), readonly=True))
                if deidentifier is not None:  # each resource de-identified here: not in SQL
                    stored = scan_resources(repo, view.resource)
                    rows = run_view(view, _deidentified(stored, deidentifier))
                else:
                    rows = stored_rows(repo, raw, view)
            sink: BinaryIO = stack.enter_context(output.open("wb")) if output else sys.stdout.buffer
            rows = _counted(rows, output is not None, total)
            for chunk in write_chunks(view, rows, fmt):
                sink.write(chunk)
            sink.flush()
        except FhirServiceError as exc:
            if output is not None:
                output.unlink(missing_ok=True)
            raise _fail(exc.diagnostics) from None
        except DatabaseError as exc:
            raise _fail(f"database: {exc}") from None
    if output is not None:
        typer.echo(f"wrote {total[0]} rows to {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add the `view` command group."""
    app.add_typer(view_app, name="view")
