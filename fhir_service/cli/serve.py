"""`fhir-service serve [--host H] [--port P]`: the FHIR API at /fhir with uvicorn.

Refuses to start on a database whose schema is behind, naming the command that
fixes it (`fhir-service db upgrade`), and in smart mode without the configured base URL
(or audience and issuer) that tokens are checked against.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Annotated

import typer
import uvicorn

from fhir_service.api.slow_clients import header_deadline
from fhir_service.cli.first_need import prepare_packages
from fhir_service.errors import FhirServiceError
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.errors import DatabaseError


def check_database(settings: Settings) -> str | None:
    """None when the database is reachable and current, else the reason it is not."""
    try:
        SqlStore.open(settings.database_url).close()
    except FhirServiceError as exc:
        return exc.diagnostics
    except DatabaseError as exc:
        return f"cannot open the database: {type(exc).__name__}: {exc}"
    return None


APP_FACTORY = "fhir_service.api.app:app_from_environment"
"""The application factory uvicorn imports; it reads the same ``FHIR_SERVICE_*`` settings."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or exit 2 with one clear message when it is taken.

    Bound before anything says the server is up; uvicorn then serves on this socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        typer.echo(
            f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; another program "
            "may be using the port: choose another with --port (`PORT=8001 make demo`)",
            err=True,
        )
        raise typer.Exit(2) from None
    return sock


def run(settings: Settings, sock: socket.socket) -> None:
    """Serve ``settings``' database on the bound ``sock`` until interrupted (one worker).

    The database URL is handed to the factory through ``FHIR_SERVICE_DATABASE_URL``.
    """
    os.environ["FHIR_SERVICE_DATABASE_URL"] = settings.database_url
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=header_deadline(settings.header_read_timeout),
        timeout_keep_alive=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
) -> None:
    """Serve the FHIR R4 API at /fhir (CapabilityStatement at /fhir/metadata)."""
    settings = Settings()
    prepare_packages(settings, required=False)
    problem = settings.smart_problem() or check_database(settings)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    run(settings, listen(host, port))


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve_command)
