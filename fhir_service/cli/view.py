"""`fhir-service view run`: a SQL on FHIR v2 ViewDefinition run over an NDJSON file or
the database (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html).

Rows are written as resources are read, to ``-o FILE`` or to stdout. An invalid view
(or one that fails on a resource) exits with 2 and the reason on stderr. With ``-o``,
a progress line goes to stderr every ``PROGRESS_EVERY`` rows.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import orjson
import typer

from fhir_service.errors import FhirServiceError
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.errors import DatabaseError
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
) -> None:
    """Run VIEW_FILE and write its rows as CSV, JSON (one array), NDJSON or Parquet."""
    try:
        raw = orjson.loads(view_file.read_bytes())
        view = parse_view(raw)
        fmt = format_of(fmt)
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
            if input_file is not None:
                rows: Iterator[dict[str, Any]] = run_view(view, read_ndjson(input_file))
            else:
                store = SqlStore.open(database_url or Settings().database_url)
                stack.callback(store.close)
                repo = stack.enter_context(store.begin(AccessScope.full(), readonly=True))
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
