"""`fhir-service auth generate-key|register-client|list-clients|disable-client|token`: keys
and registered clients of the token endpoint
(https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys),
and an access token asked of a token endpoint as such a client.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import httpx
import typer

from fhir_service.api.auth.clients import register_client
from fhir_service.api.auth.keys import generate_signing_key
from fhir_service.settings import Settings
from fhir_service.storage.clients import ClientRegistry
from fhir_service.storage.errors import DatabaseError
from fhir_service.sync.auth import SmartBackendAuth
from fhir_service.sync.errors import RemoteError

auth_app = typer.Typer(
    help="Access tokens: signing key and registered clients.", no_args_is_help=True
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default FHIR_SERVICE_DATABASE_URL)."),
]


@auth_app.command("generate-key")
def generate_key_command(
    path: Annotated[
        Path | None,
        typer.Option("--path", help="Key file (default FHIR_SERVICE_AUTH_SIGNING_KEY_PATH)."),
    ] = None,
    algorithm: Annotated[str, typer.Option("--alg", help="ES384 or RS256.")] = "ES384",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create the private key that signs the access tokens of POST /auth/token."""
    target = path or Settings().auth_signing_key_path
    if algorithm not in ("ES384", "RS256"):
        typer.echo("error: --alg must be ES384 or RS256", err=True)
        raise typer.Exit(2)
    if target.exists() and not force:
        typer.echo(f"error: {target} exists (use --force to replace it)", err=True)
        raise typer.Exit(2)
    public = generate_signing_key(target, "RS256" if algorithm == "RS256" else "ES384")
    typer.echo(f"signing key written to {target} (kid {public['kid']})")


@auth_app.command("register-client")
def register_client_command(
    name: Annotated[str, typer.Option("--name", help="A name for the client.")],
    scope: Annotated[str, typer.Option("--scope", help="Scopes it may get, e.g. 'system/*.rs'.")],
    jwks: Annotated[
        Path | None, typer.Option("--jwks", help="JWKS file with the client's public keys.")
    ] = None,
    jwks_url: Annotated[
        str | None, typer.Option("--jwks-url", help="URL of the client's JWKS.")
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Patient id for patient/ scopes.")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Client id (default: random).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a client; prints its client id."""
    document = None
    if jwks is not None:
        try:
            document = json.loads(jwks.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            typer.echo(f"error: cannot read {jwks}: {type(exc).__name__}", err=True)
            raise typer.Exit(2) from None
    registry = ClientRegistry.open(database_url or Settings().database_url)
    try:
        with registry.begin() as rows:
            client = register_client(
                rows,
                name=name,
                scope=scope,
                jwks=document,
                jwks_url=jwks_url,
                patient=patient,
                client_id=client_id,
            )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except DatabaseError as exc:
        typer.echo(f"error: cannot store the client: {type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    finally:
        registry.close()
    typer.echo(client.client_id)


@auth_app.command("list-clients")
def list_clients_command(database_url: DatabaseUrl = None) -> None:
    """List the registered clients (id, state, patient, scopes)."""
    registry = ClientRegistry.open(database_url or Settings().database_url)
    try:
        with registry.read() as rows:
            clients = rows.all()
    finally:
        registry.close()
    for client in clients:
        state = "active" if client.active else "disabled"
        typer.echo(f"{client.client_id}\t{state}\t{client.patient or '-'}\t{client.scope}")


@auth_app.command("disable-client")
def disable_client_command(client_id: str, database_url: DatabaseUrl = None) -> None:
    """Disable a client: its assertions are refused from now on."""
    registry = ClientRegistry.open(database_url or Settings().database_url)
    try:
        with registry.begin() as rows:
            found = rows.set_active(client_id, False)
    finally:
        registry.close()
    if not found:
        typer.echo(f"error: no client {client_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"client {client_id} disabled")


@auth_app.command("token")
def token_command(
    token_url: Annotated[str, typer.Option("--token-url", help="The token endpoint's URL.")],
    client_id: Annotated[str, typer.Option("--client-id", help="The registered client id.")],
    private_key: Annotated[
        Path, typer.Option("--private-key", help="The client's private key (PEM).")
    ],
    scope: Annotated[str, typer.Option("--scope", help="Scopes to ask for.")] = "system/*.rs",
) -> None:
    """Print an access token from a SMART token endpoint (client credentials with a signed
    assertion), e.g. for curl or the /ui pages of a server in smart mode."""
    auth = SmartBackendAuth(token_url, client_id, private_key.read_bytes(), scope=scope)

    async def fetch() -> str | None:
        async with httpx.AsyncClient(timeout=30) as http:
            return await auth.header(http)

    try:
        header = asyncio.run(fetch())
    except (RemoteError, httpx.HTTPError, ValueError) as exc:
        typer.echo(f"error: no token: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo((header or "").removeprefix("Bearer "))


def register(app: typer.Typer) -> None:
    """Add the `auth` command group."""
    app.add_typer(auth_app, name="auth")
