"""`fhir-service serve [--host H] [--port P] [--workers N]`: the FHIR API at /fhir with
uvicorn, in N processes (default: one per core), each listening on the address with a
socket of its own (``SO_REUSEPORT`` on Linux), among which the kernel spreads new
connections.

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
import sys
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


class PerProcessSocket(socket.socket):
    """The address of ``serve --workers N`` on Linux, bound by the supervisor with
    ``SO_REUSEPORT`` and never listened on there: pickled to a serving process (uvicorn
    hands its sockets to the processes it spawns), it arrives as a new socket of that
    process's own, bound to the same address (``_own_socket``). The kernel then spreads
    new connections over the processes' sockets by their addresses and ports
    (https://man7.org/linux/man-pages/man7/socket.7.html, SO_REUSEPORT).

    One socket shared by the processes let the first process to wake accept every
    connection waiting: 16 keep-alive clients connecting together could all land on one
    process and leave the others idle for as long as they stayed connected."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_own_socket, (self.family, self.getsockname()))


def _own_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _spreads_connections() -> bool:
    """SO_REUSEPORT spreads connections over the sockets on Linux only (elsewhere the
    last socket bound may take them all)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listen(host: str, port: int, workers: int = 1) -> socket.socket:
    """A socket bound to host:port, or exit 2 with one clear message when it is taken:
    with several ``workers`` on Linux a ``PerProcessSocket``, else one socket uvicorn's
    processes share.

    Bound before anything says the server is up; uvicorn then serves on this socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    per_process = workers > 1 and _spreads_connections()
    sock = (PerProcessSocket if per_process else socket.socket)(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if per_process:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
    processes = workers or settings.serving_processes()
    run(settings, listen(host, port, processes), processes)


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve_command)
