"""`fhir-service demo`: set up the embedded SQLite database under var/, load the example
case (examples/ivc-leiomyosarcoma), print the address and curl examples, then serve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fhir_service.api.write_validation import AppValidator, write_check
from fhir_service.cli.first_need import prepare_packages
from fhir_service.cli.load import LoadError, load_all, providers_first
from fhir_service.cli.serve import listen, run
from fhir_service.errors import FhirServiceError
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.errors import DatabaseError

EXAMPLE_CASE = Path("examples/ivc-leiomyosarcoma/case.yaml")
DEMO_DATABASE = Path("var/fhir-service.sqlite3")


def curl_examples(base: str) -> str:
    """A few requests to try against ``base`` (the /fhir address)."""
    return "\n".join(
        [
            f"  curl -s {base}/metadata | head -c 400",
            f"  curl -s '{base}/Patient/_history?_count=5'",
            f"  curl -s '{base}/Observation/_history?_count=3&_pretty=true'",
            f"  curl -s 'http://{base.split('/')[2]}/readyz'",
            f"  curl -s -X POST {base}/Patient -H 'Content-Type: application/fhir+json' \\",
            """       -d '{"resourceType":"Patient","name":[{"family":"Demo"}]}' -i""",
        ]
    )


def demo_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    case: Annotated[Path, typer.Option("--case", help="Case file to load.")] = EXAMPLE_CASE,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve afterwards.")] = True,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Serving processes (default: one per core)."),
    ] = None,
) -> None:
    """Create or upgrade the SQLite database, load the example case and serve it."""
    url = f"sqlite:///{DEMO_DATABASE.resolve()}"
    settings = Settings(database_url=url)
    problem = settings.smart_problem() if serve else None
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    processes = workers or settings.serving_processes()
    sock = listen(host, port, processes) if serve else None
    prepare_packages(settings, required=True)
    try:
        revision = upgrade(url)
        store = SqlStore.open(url)
    except (FhirServiceError, DatabaseError) as exc:
        typer.echo(f"error: cannot prepare {DEMO_DATABASE}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"database {DEMO_DATABASE} at revision {revision}")
    try:
        validator = AppValidator(settings.package_cache)
        report = load_all(
            store,
            providers_first([case], anchor_date=settings.anchor_date),
            checks=lambda: write_check(
                validator, settings.validate_on_write, settings.unknown_profiles
            ),
        )
    except LoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if report.failed:
        for line in report.failed:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(report.statuses.items()))
    typer.echo(f"loaded {case}: {report.entries} resources ({statuses})")
    base = f"http://{host}:{port}/fhir"
    typer.echo(f"\nOpen the case timeline in a browser: http://{host}:{port}/ui")
    typer.echo(f"\nFHIR R4 API at {base}  (health: http://{host}:{port}/healthz)\n")
    typer.echo("Try:\n" + curl_examples(base) + "\n")
    if sock is not None:
        run(settings, sock, processes)


def register(app: typer.Typer) -> None:
    """Add the `demo` command."""
    app.command("demo")(demo_command)
