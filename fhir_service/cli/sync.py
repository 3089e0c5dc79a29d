"""`fhir-service sync push|pull|status [--remote URL]`: synchronize with an external FHIR server.

The remote defaults to ``FHIR_SERVICE_REMOTE_URL``. Authentication: ``--token``
(``FHIR_SERVICE_REMOTE_TOKEN``) for a bearer token, or SMART Backend Services with
``--token-url``, ``--client-id`` and ``--private-key`` (PEM file). See docs/sync.md.
Exit status: 0 when the run had no errors, 1 when it reported conflicts or failed
entries, 2 when it could not run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fhir_service.api.write_validation import AppValidator, write_check
from fhir_service.errors import FhirServiceError
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.errors import DatabaseError
from fhir_service.sync import state
from fhir_service.sync.auth import Auth, remote_auth
from fhir_service.sync.client import FhirClient
from fhir_service.sync.pull import pull
from fhir_service.sync.push import RunReport, push

sync_app = typer.Typer(help="Synchronize with an external FHIR server.", no_args_is_help=True)
console = Console(stderr=True)

Remote = Annotated[
    str | None,
    typer.Option("--remote", help="Remote FHIR base URL (default FHIR_SERVICE_REMOTE_URL)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="FHIR_SERVICE_REMOTE_TOKEN", help="Bearer token."),
]
TokenUrl = Annotated[
    str | None,
    typer.Option("--token-url", envvar="FHIR_SERVICE_REMOTE_TOKEN_URL", help="SMART token URL."),
]
ClientId = Annotated[
    str | None,
    typer.Option("--client-id", envvar="FHIR_SERVICE_REMOTE_CLIENT_ID", help="SMART client id."),
]
PrivateKey = Annotated[
    Path | None,
    typer.Option(
        "--private-key", envvar="FHIR_SERVICE_REMOTE_PRIVATE_KEY", help="SMART signing key (PEM)."
    ),
]


def _auth(
    token: str | None, token_url: str | None, client_id: str | None, key: Path | None
) -> Auth | None:
    try:
        return remote_auth(token, token_url, client_id, key.read_bytes() if key else None)
    except ValueError:
        raise typer.BadParameter("SMART needs --token-url, --client-id and --private-key") from None


def _open(remote: str | None, database_url: str | None) -> tuple[str, SqlStore]:
    settings = Settings()
    url = remote or settings.remote_url
    if not url:
        console.print("error: no remote: pass --remote or set FHIR_SERVICE_REMOTE_URL")
        raise typer.Exit(2)
    try:
        return url, SqlStore.open(database_url or settings.database_url)
    except (FhirServiceError, DatabaseError) as exc:
        console.print(f"error: {exc}")
        raise typer.Exit(2) from None


def _run(store: SqlStore, work: Any) -> RunReport:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("sync", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            report: RunReport = asyncio.run(work(update))
        except FhirServiceError as exc:
            console.print(f"error: {exc}")
            raise typer.Exit(2) from None
        finally:
            store.close()
    return report


def _summary(report: RunReport) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()) if v)
    console.print(f"run {report.run_id}: {report.status}: {counts or 'nothing to do'}")
    for error in report.errors[:20]:
        kind, where = error.get("kind", "error"), error.get("resource", "")
        console.print(f"  {kind}: {where} {error.get('message', '')}")
    if report.errors:
        raise typer.Exit(1)


def _case_patient(store: SqlStore, case_file: Path, anchor: Any) -> str:
    from mappings.bundle import build_bundle
    from mappings.case.loader import load_case

    bundle = build_bundle(load_case(case_file), anchor, "transaction")
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    identifier = patient["identifier"][0]
    with store.begin(AccessScope.full(), readonly=True) as repo:
        found = repo.search(
            "Patient", [("identifier", f"{identifier['system']}|{identifier['value']}")]
        )
    if not found:
        console.print(f"error: the case in {case_file} is not loaded in this database")
        raise typer.Exit(2)
    return found[0].id


@sync_app.command("push")
def push_command(
    remote: Remote = None,
    database_url: DatabaseUrl = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Push one patient's compartment.")
    ] = None,
    case_file: Annotated[
        Path | None, typer.Option("--case", help="Push one loaded case (case file).")
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Entries per Bundle.")
    ] = 50,
    token: Token = None,
    token_url: TokenUrl = None,
    client_id: ClientId = None,
    private_key: PrivateKey = None,
) -> None:
    """Push local changes since the last push (or one patient / case) to the remote."""
    url, store = _open(remote, database_url)
    auth = _auth(token, token_url, client_id, private_key)
    if case_file is not None:
        patient = _case_patient(store, case_file, Settings().anchor_date)

    async def work(update: Any) -> RunReport:
        async with FhirClient(url, auth=auth) as client:
            return await push(
                store, client, patient=patient, chunk_size=chunk_size, progress=update
            )

    _summary(_run(store, work))


@sync_app.command("pull")
def pull_command(
    remote: Remote = None,
    database_url: DatabaseUrl = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--types",
            help="Comma-separated resource types (default: those the remote lists, "
            "else every type this server serves).",
        ),
    ] = None,
    deletes: Annotated[
        bool, typer.Option("--deletes/--no-deletes", help="Look up mapped ids to find deletes.")
    ] = False,
    page_size: Annotated[int, typer.Option("--page-size", min=1)] = 200,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Pull one remote patient with $everything.")
    ] = None,
    token: Token = None,
    token_url: TokenUrl = None,
    client_id: ClientId = None,
    private_key: PrivateKey = None,
) -> None:
    """Pull what changed on the remote since the last pull into the local database."""
    url, store = _open(remote, database_url)
    auth = _auth(token, token_url, client_id, private_key)
    type_list = [t.strip() for t in types.split(",") if t.strip()] if types else None
    settings = Settings()
    validator = AppValidator(settings.package_cache)

    async def work(update: Any) -> RunReport:
        async with FhirClient(url, auth=auth) as client:
            return await pull(
                store,
                client,
                types=type_list,
                page_size=page_size,
                deletes=deletes,
                patient=patient,
                progress=update,
                checks=lambda: write_check(
                    validator, settings.validate_on_write, settings.unknown_profiles
                ),
            )

    _summary(_run(store, work))


@sync_app.command("status")
def status_command(
    remote: Remote = None,
    database_url: DatabaseUrl = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """Show the latest sync runs (all remotes unless --remote is given)."""
    settings = Settings()
    try:
        store = SqlStore.open(database_url or settings.database_url)
    except (FhirServiceError, DatabaseError) as exc:
        console.print(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        rows = state.runs(store, state.remote_key(remote) if remote else None, limit)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    table = Table("run", "direction", "remote", "status", "started", "ended", "counts", "errors")
    for row in rows:
        table.add_row(
            str(row["id"])[:8],
            row["direction"],
            row["remote"],
            row["status"],
            str(row["started_at"])[:19],
            str(row["ended_at"] or "")[:19],
            ", ".join(f"{k} {v}" for k, v in sorted(row["counts"].items()) if v),
            str(len(row["errors"])),
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the `sync` command group."""
    app.add_typer(sync_app, name="sync")
