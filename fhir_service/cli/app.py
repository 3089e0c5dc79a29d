"""The `fhir-service` command line: one typer app, one module per command group."""

from __future__ import annotations

import typer

from fhir_service import __version__

app = typer.Typer(
    name="fhir-service",
    help="FHIR R4 interoperability service: map, load, validate, serve, sync and export.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fhir-service {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """FHIR R4 interoperability service."""


def _register_commands() -> None:
    """Each command module adds its commands to ``app`` through ``register(app)``."""
    from fhir_service.cli import commands

    for module in commands.MODULES:
        module.register(app)


def main() -> None:
    """Console-script entry point."""
    _register_commands()
    app()
