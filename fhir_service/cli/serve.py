"""`fhir-service serve [--host H] [--port P] [--workers N]`: the FHIR API at /fhir with
uvicorn, in N processes sharing one listening socket (default: one per core).

Each process builds the application from the environment and keeps its share of the
database connections; background jobs (export, reindex, sync) are claimed in the
database, so each runs in exactly one process (docs/deployment.md, "Several processes").

Refuses to start on a database whose schema is behind, naming the command that
fixes it (`fhir-service db upgrade`), and in smart mode without the configured base URL
(or audience and issuer) that tokens are checked against.
"""

from __future__ import annotations

import copy
import os
import socket
from typing import Annotated, Any

import typer
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from fhir_service.api.slow_clients import PROTOCOL
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


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, plus the root logger (the service's own loggers
    and its libraries') at ``level``: applied in every serving process."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": "%(levelname)s %(name)s %(message)s"}
    config["handlers"]["plain"] = {
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["plain"], "level": level.upper()}
    return config


def run(settings: Settings, sock: socket.socket, workers: int = 1) -> None:
    """Serve ``settings``' database on the bound ``sock`` in ``workers`` processes until
    interrupted.

    The database URL and the number of processes reach each process's factory through
    ``FHIR_SERVICE_DATABASE_URL`` and ``FHIR_SERVICE_WORKERS``.
    """
    os.environ["FHIR_SERVICE_DATABASE_URL"] = settings.database_url
    os.environ["FHIR_SERVICE_WORKERS"] = str(workers)
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level),
        access_log=False,
        http=PROTOCOL,
        timeout_keep_alive=5,
        workers=workers,
    )
    server = uvicorn.Server(config)
    if workers == 1:
        server.run(sockets=[sock])
    else:
        Multiprocess(config, sockets=[sock]).run()


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Serving processes (default FHIR_SERVICE_WORKERS, else one per core).",
        ),
    ] = None,
) -> None:
    """Serve the FHIR R4 API at /fhir (CapabilityStatement at /fhir/metadata)."""
    settings = Settings()
    prepare_packages(settings, required=False)
    problem = settings.smart_problem() or check_database(settings)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    run(settings, listen(host, port), workers or settings.serving_processes())


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve_command)
